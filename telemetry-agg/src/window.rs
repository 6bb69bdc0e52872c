//! Tumbling event-time windows: the [`Aggregator`].

use std::collections::VecDeque;

use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use telemetry_core::{Fingerprint, Labels, METRIC_NAME, Sample};

use crate::aggregate::{AggregateSet, AggregateValues, DistinctSource, Flags, WindowAggregate};
use crate::error::{AggError, ConfigError, MergeError};

/// Default window width: one minute.
pub const DEFAULT_WINDOW_MS: i64 = 60_000;
/// Default allowed lateness: 10 seconds (scrapers' clock skew).
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 10_000;
/// Largest allowed lateness: 5 minutes.
pub const MAX_ALLOWED_LATENESS_MS: i64 = 300_000;

/// How series are grouped into aggregation keys. The metric name (`__name__`) is always kept,
/// so a key never mixes metric families.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// One key per series (all labels).
    #[default]
    Series,
    /// Keep only these labels (PromQL `by (…)`), plus the metric name.
    By(Vec<String>),
    /// Drop these labels (PromQL `without (…)`); the metric name stays.
    Without(Vec<String>),
}

impl Grouping {
    /// The key labels of a series.
    pub fn key_labels(&self, series: &Labels) -> Labels {
        match self {
            Grouping::Series => series.clone(),
            Grouping::By(names) => {
                let mut keep: SmallVec<[&str; 8]> = names.iter().map(String::as_str).collect();
                keep.push(METRIC_NAME);
                series.keep_only(&keep)
            }
            Grouping::Without(names) => {
                let drop: SmallVec<[&str; 8]> =
                    names.iter().map(String::as_str).filter(|n| *n != METRIC_NAME).collect();
                series.without(&drop)
            }
        }
    }
}

/// What to do when a new key or series would exceed its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyOverflow {
    /// Refuse with [`AggError::TooManyKeys`] / [`AggError::TooManySeries`].
    #[default]
    Reject,
    /// Evict the least recently seen 1/64 of the keys (or series). An evicted key's open
    /// windows are emitted at once as records marked `partial`.
    EvictIdle,
}

/// What to do when a sample needs a new window and the cap on open windows is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowOverflow {
    /// Refuse with [`AggError::TooManyWindows`].
    #[default]
    Reject,
    /// Close the oldest open window early (its records are marked `partial`); samples that
    /// later arrive for it count as late.
    CloseOldest,
}

/// Aggregator settings. `Default` gives 1-minute windows, 10 s lateness, one key per series,
/// count/sum/min/max/mean, at most 8 open windows, 100,000 keys and 1,000,000 series, and
/// rejection on overflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AggregatorConfig {
    /// Window width in ms; windows are `[k·width, (k+1)·width)` since the Unix epoch.
    pub window_ms: i64,
    /// How far behind the largest timestamp seen a sample may be and still be aggregated:
    /// the watermark is `max timestamp − allowed lateness`, and a window closes when the
    /// watermark reaches its end. `0..=300_000` ms.
    pub allowed_lateness_ms: i64,
    /// How series map to keys.
    pub grouping: Grouping,
    /// The aggregates kept per key and window.
    pub aggregates: AggregateSet,
    /// Most windows open at once.
    pub max_open_windows: usize,
    /// Most keys (output label sets) tracked.
    pub max_keys: usize,
    /// Most series tracked.
    pub max_series: usize,
    /// Policy when a cap on keys or series is reached.
    pub key_overflow: KeyOverflow,
    /// Policy when the cap on open windows is reached.
    pub window_overflow: WindowOverflow,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            window_ms: DEFAULT_WINDOW_MS,
            allowed_lateness_ms: DEFAULT_ALLOWED_LATENESS_MS,
            grouping: Grouping::Series,
            aggregates: AggregateSet::default(),
            max_open_windows: 8,
            max_keys: 100_000,
            max_series: 1_000_000,
            key_overflow: KeyOverflow::Reject,
            window_overflow: WindowOverflow::Reject,
        }
    }
}

impl AggregatorConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window_ms <= 0 {
            return Err(ConfigError::WindowWidth(self.window_ms));
        }
        if !(0..=MAX_ALLOWED_LATENESS_MS).contains(&self.allowed_lateness_ms) {
            return Err(ConfigError::Lateness { got: self.allowed_lateness_ms, max: MAX_ALLOWED_LATENESS_MS });
        }
        for (v, what) in
            [(self.max_open_windows, "max_open_windows"), (self.max_keys, "max_keys"), (self.max_series, "max_series")]
        {
            if v == 0 {
                return Err(ConfigError::ZeroCap { what });
            }
        }
        self.aggregates.validate()
    }
}

/// A handle to a registered series: cheap to copy, checked on every use (a handle to an evicted
/// series is refused with [`AggError::StaleSeriesRef`], never misattributed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesRef {
    index: u32,
    generation: u32,
}

/// What happened to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Added to its window.
    Aggregated,
    /// Its window had already closed: counted in [`AggStats::late_samples`], not aggregated.
    Late {
        /// Start of the sample's (closed) window.
        window_start_ms: i64,
    },
}

/// Counters of what the aggregator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AggStats {
    /// Samples added to a window (stale markers and non-finite values included; each window
    /// counts those separately).
    pub aggregated: u64,
    /// Samples whose window had closed.
    pub late_samples: u64,
    /// Samples refused with an error (caps under the `Reject` policies, bad weights).
    pub rejected_samples: u64,
    /// Series evicted under [`KeyOverflow::EvictIdle`].
    pub evicted_series: u64,
    /// Keys evicted under [`KeyOverflow::EvictIdle`].
    pub evicted_keys: u64,
    /// Windows closed early under [`WindowOverflow::CloseOldest`].
    pub forced_window_closes: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Records emitted.
    pub records_emitted: u64,
}

/// The aggregate of one key over one window: the output record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowRecord {
    /// The metric name (`__name__`), empty when the key has none.
    pub metric: String,
    /// Fingerprint of `labels`: the key's stable id.
    pub fingerprint: Fingerprint,
    /// The key's labels.
    pub labels: Labels,
    /// Window start, ms since the epoch (inclusive).
    pub start_ms: i64,
    /// Window end, ms since the epoch (exclusive).
    pub end_ms: i64,
    /// `true` when the window was emitted before the watermark closed it (key eviction or
    /// window overflow): more samples may have belonged to it.
    pub partial: bool,
    /// The values.
    pub values: AggregateValues,
    /// The mergeable state, for rollups and for merging partial aggregates of several workers.
    pub state: WindowAggregate,
}

impl WindowRecord {
    /// Merges another record of the same key and window (for example the same window
    /// aggregated by two workers) and recomputes the values.
    ///
    /// # Errors
    /// [`MergeError::Records`] when the labels or windows differ; [`MergeError`] from the state.
    pub fn merge(&mut self, o: &WindowRecord, set: &AggregateSet) -> Result<(), MergeError> {
        if self.labels != o.labels {
            return Err(MergeError::Records("labels"));
        }
        if (self.start_ms, self.end_ms) != (o.start_ms, o.end_ms) {
            return Err(MergeError::Records("window"));
        }
        self.state.merge(&o.state)?;
        self.partial |= o.partial;
        self.values = self.state.values(set, self.end_ms - self.start_ms);
        Ok(())
    }
}

/// Rolls records up into windows of `width_ms` (for example 60 one-minute records into one
/// hour), merging the states of records with equal labels whose windows fall into the same
/// epoch-aligned wider window. The result is sorted by window start, then labels.
///
/// The input should hold every record of the wider windows it covers: counter pieces are
/// compacted once merged (see [`CounterAgg::compact`](crate::CounterAgg::compact)).
///
/// # Errors
/// [`MergeError::Records`] when `width_ms` is not positive or a record's window straddles a
/// boundary of the wider windows; [`MergeError`] when states were built differently.
pub fn rollup(
    records: impl IntoIterator<Item = WindowRecord>,
    width_ms: i64,
    set: &AggregateSet,
) -> Result<Vec<WindowRecord>, MergeError> {
    if width_ms <= 0 {
        return Err(MergeError::Records("rollup width"));
    }
    let mut out: AHashMap<(i64, Labels), WindowRecord> = AHashMap::new();
    for r in records {
        let start = window_start(r.start_ms, width_ms);
        let end = start.saturating_add(width_ms);
        if r.end_ms > end || r.end_ms <= r.start_ms {
            return Err(MergeError::Records("window"));
        }
        match out.entry((start, r.labels.clone())) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let acc = e.get_mut();
                acc.state.merge(&r.state)?;
                acc.partial |= r.partial;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(WindowRecord { start_ms: start, end_ms: end, ..r });
            }
        }
    }
    let mut v: Vec<WindowRecord> = out.into_values().collect();
    for r in &mut v {
        r.state.compact();
        r.values = r.state.values(set, width_ms);
    }
    v.sort_by(|a, b| (a.start_ms, &a.labels).cmp(&(b.start_ms, &b.labels)));
    Ok(v)
}

const NONE: u32 = u32::MAX;

/// `start <= ts < start + width` without overflow (`ts = i64::MAX` belongs to the last window
/// even though that window's end saturates at `i64::MAX`).
#[inline]
fn in_window(start: i64, width: i64, ts: i64) -> bool {
    ts >= start && (ts.wrapping_sub(start) as u64) < width as u64
}

/// Start of the epoch-aligned window of width `width_ms` (> 0) holding `ts_ms`. Timestamps
/// within one width of `i64::MIN` fall into a window that starts at `i64::MIN`.
#[inline]
pub(crate) fn window_start(ts_ms: i64, width_ms: i64) -> i64 {
    ts_ms.checked_sub(ts_ms.rem_euclid(width_ms)).unwrap_or(i64::MIN)
}

/// Per-series data read on every sample.
#[derive(Debug, Clone, Copy)]
struct SeriesHot {
    generation: u32,
    live: bool,
    group: u32,
    group_generation: u32,
    fingerprint: u64,
    distinct_hash: Option<u64>,
    last_seen: i64,
}

#[derive(Debug, Clone)]
struct SeriesCold {
    labels: Labels,
}

#[derive(Debug, Clone, Copy)]
struct GroupHot {
    generation: u32,
    live: bool,
    last_seen: i64,
}

#[derive(Debug, Clone)]
struct GroupCold {
    labels: Labels,
    fingerprint: Fingerprint,
}

#[derive(Debug)]
struct OpenWindow {
    start: i64,
    end: i64,
    /// Position in `aggs` for each key index, or `NONE`.
    slot_of: Vec<u32>,
    aggs: Vec<(u32, WindowAggregate)>,
}

impl OpenWindow {
    fn new(start: i64, end: i64) -> Self {
        OpenWindow { start, end, slot_of: Vec::new(), aggs: Vec::new() }
    }

    fn take(&mut self, group: u32) -> Option<WindowAggregate> {
        let pos = *self.slot_of.get(group as usize)?;
        if pos == NONE {
            return None;
        }
        self.slot_of[group as usize] = NONE;
        let (_, agg) = self.aggs.swap_remove(pos as usize);
        if let Some((moved, _)) = self.aggs.get(pos as usize) {
            self.slot_of[*moved as usize] = pos;
        }
        Some(agg)
    }
}

/// Tumbling-window aggregation over event time. See the [crate docs](crate) for an example.
///
/// Samples enter through a [`SeriesRef`] ([`series_ref`](Self::series_ref) once per series,
/// then [`push`](Self::push) per sample: no hashing and no allocation per sample for known
/// series) or directly with their labels ([`push_labels`](Self::push_labels)). Closed
/// windows become [`WindowRecord`]s, taken with [`drain_records`](Self::drain_records).
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    flags: Flags,
    distinct_label: Option<String>,
    series_hot: Vec<SeriesHot>,
    series_cold: Vec<SeriesCold>,
    series_by_fp: AHashMap<u64, SmallVec<[u32; 1]>>,
    free_series: Vec<u32>,
    live_series: usize,
    groups_hot: Vec<GroupHot>,
    groups_cold: Vec<GroupCold>,
    groups_by_fp: AHashMap<u64, SmallVec<[u32; 1]>>,
    free_groups: Vec<u32>,
    live_groups: usize,
    windows: VecDeque<OpenWindow>,
    max_ts: i64,
    /// Windows ending at or before this instant are closed: the watermark, or later when a
    /// window was closed early or everything was flushed.
    closed_until: i64,
    out: Vec<WindowRecord>,
    stats: AggStats,
    /// Keep last-seen times (only eviction reads them).
    track_idle: bool,
}

impl Aggregator {
    /// An aggregator with the given settings.
    ///
    /// # Errors
    /// [`ConfigError`] from [`AggregatorConfig::validate`].
    pub fn new(cfg: AggregatorConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let distinct_label = match &cfg.aggregates.distinct {
            Some(d) => match &d.source {
                DistinctSource::Label(l) => Some(l.clone()),
                DistinctSource::Values => None,
            },
            None => None,
        };
        let cfg_track_idle = cfg.key_overflow == KeyOverflow::EvictIdle;
        Ok(Aggregator {
            flags: Flags::of(&cfg.aggregates),
            distinct_label,
            cfg,
            series_hot: Vec::new(),
            series_cold: Vec::new(),
            series_by_fp: AHashMap::new(),
            free_series: Vec::new(),
            live_series: 0,
            groups_hot: Vec::new(),
            groups_cold: Vec::new(),
            groups_by_fp: AHashMap::new(),
            free_groups: Vec::new(),
            live_groups: 0,
            windows: VecDeque::new(),
            max_ts: i64::MIN,
            closed_until: i64::MIN,
            out: Vec::new(),
            stats: AggStats::default(),
            track_idle: cfg_track_idle,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> AggStats {
        self.stats
    }

    /// The watermark: largest timestamp seen minus the allowed lateness (`i64::MIN` before any
    /// sample).
    pub fn watermark(&self) -> i64 {
        self.max_ts.saturating_sub(self.cfg.allowed_lateness_ms)
    }

    /// Number of open windows.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Number of tracked keys.
    pub fn keys(&self) -> usize {
        self.live_groups
    }

    /// Number of tracked series.
    pub fn series(&self) -> usize {
        self.live_series
    }

    /// Approximate bytes held by the open windows (aggregates and their index).
    pub fn window_memory_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|w| {
                w.slot_of.capacity() * 4
                    + (w.aggs.capacity() - w.aggs.len()) * std::mem::size_of::<(u32, WindowAggregate)>()
                    + w.aggs.iter().map(|(_, a)| 4 + a.memory_bytes()).sum::<usize>()
            })
            .sum()
    }

    /// Approximate bytes held by open windows and by the key and series tables (label strings
    /// are shared with the caller and not counted).
    pub fn memory_bytes(&self) -> usize {
        let windows = self.window_memory_bytes();
        let tables = self.series_hot.capacity() * std::mem::size_of::<SeriesHot>()
            + self.series_cold.capacity() * std::mem::size_of::<SeriesCold>()
            + self.series_by_fp.capacity() * (8 + std::mem::size_of::<SmallVec<[u32; 1]>>() + 8)
            + self.groups_hot.capacity() * std::mem::size_of::<GroupHot>()
            + self.groups_cold.capacity() * std::mem::size_of::<GroupCold>()
            + self.groups_by_fp.capacity() * (8 + std::mem::size_of::<SmallVec<[u32; 1]>>() + 8);
        windows + tables
    }

    /// Registers a series (or finds it) and returns its handle. Allocates for a new series only.
    ///
    /// # Errors
    /// [`AggError::TooManySeries`] / [`AggError::TooManyKeys`] when a cap is reached under
    /// [`KeyOverflow::Reject`].
    pub fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AggError> {
        let fp = labels.fingerprint().as_u64();
        if let Some(cands) = self.series_by_fp.get(&fp) {
            for &i in cands {
                if self.series_cold[i as usize].labels == *labels {
                    return Ok(SeriesRef { index: i, generation: self.series_hot[i as usize].generation });
                }
            }
        }
        if self.live_series >= self.cfg.max_series {
            match self.cfg.key_overflow {
                KeyOverflow::Reject => {
                    return Err(AggError::TooManySeries { limit: self.cfg.max_series, labels: labels.to_string() });
                }
                KeyOverflow::EvictIdle => self.evict_series(),
            }
        }
        let key_labels = self.cfg.grouping.key_labels(labels);
        let (group, group_generation) = self.resolve_group(&key_labels)?;
        let distinct_hash = self
            .distinct_label
            .as_deref()
            .and_then(|l| labels.get(l).map(|v| Fingerprint::of_sorted_pairs([(l, v)]).as_u64()));
        let hot = SeriesHot {
            generation: 0,
            live: true,
            group,
            group_generation,
            fingerprint: fp,
            distinct_hash,
            last_seen: i64::MIN,
        };
        let cold = SeriesCold { labels: labels.clone() };
        let index = match self.free_series.pop() {
            Some(i) => {
                let generation = self.series_hot[i as usize].generation.wrapping_add(1);
                self.series_hot[i as usize] = SeriesHot { generation, ..hot };
                self.series_cold[i as usize] = cold;
                i
            }
            None => {
                let i = u32::try_from(self.series_hot.len())
                    .map_err(|_| AggError::TooManySeries { limit: u32::MAX as usize, labels: labels.to_string() })?;
                self.series_hot.push(hot);
                self.series_cold.push(cold);
                i
            }
        };
        self.series_by_fp.entry(fp).or_default().push(index);
        self.live_series += 1;
        Ok(SeriesRef { index, generation: self.series_hot[index as usize].generation })
    }

    /// Finds or creates the key for `key_labels`.
    fn resolve_group(&mut self, key_labels: &Labels) -> Result<(u32, u32), AggError> {
        let fp = key_labels.fingerprint();
        if let Some(cands) = self.groups_by_fp.get(&fp.as_u64()) {
            for &i in cands {
                if self.groups_cold[i as usize].labels == *key_labels {
                    return Ok((i, self.groups_hot[i as usize].generation));
                }
            }
        }
        if self.live_groups >= self.cfg.max_keys {
            match self.cfg.key_overflow {
                KeyOverflow::Reject => {
                    return Err(AggError::TooManyKeys { limit: self.cfg.max_keys, labels: key_labels.to_string() });
                }
                KeyOverflow::EvictIdle => self.evict_groups(),
            }
        }
        let hot = GroupHot { generation: 0, live: true, last_seen: i64::MIN };
        let cold = GroupCold { labels: key_labels.clone(), fingerprint: fp };
        let index = match self.free_groups.pop() {
            Some(i) => {
                let generation = self.groups_hot[i as usize].generation.wrapping_add(1);
                self.groups_hot[i as usize] = GroupHot { generation, ..hot };
                self.groups_cold[i as usize] = cold;
                i
            }
            None => {
                let i = u32::try_from(self.groups_hot.len())
                    .map_err(|_| AggError::TooManyKeys { limit: u32::MAX as usize, labels: key_labels.to_string() })?;
                self.groups_hot.push(hot);
                self.groups_cold.push(cold);
                i
            }
        };
        self.groups_by_fp.entry(fp.as_u64()).or_default().push(index);
        self.live_groups += 1;
        Ok((index, self.groups_hot[index as usize].generation))
    }

    /// Indices of the least recently seen 1/64 of the live entries.
    fn idle_batch(last_seen: impl Iterator<Item = (i64, u32)>, live: usize) -> Vec<u32> {
        let mut v: Vec<(i64, u32)> = last_seen.collect();
        let n = (live / 64).max(1).min(v.len());
        if n < v.len() {
            v.select_nth_unstable(n);
        }
        v.truncate(n);
        v.into_iter().map(|(_, i)| i).collect()
    }

    fn evict_series(&mut self) {
        let victims = Self::idle_batch(
            self.series_hot.iter().enumerate().filter(|(_, s)| s.live).map(|(i, s)| (s.last_seen, i as u32)),
            self.live_series,
        );
        for i in victims {
            let s = &mut self.series_hot[i as usize];
            s.live = false;
            s.generation = s.generation.wrapping_add(1);
            let fp = s.fingerprint;
            if let Some(c) = self.series_by_fp.get_mut(&fp) {
                c.retain(|x| *x != i);
                if c.is_empty() {
                    self.series_by_fp.remove(&fp);
                }
            }
            self.series_cold[i as usize] = SeriesCold { labels: Labels::empty() };
            self.free_series.push(i);
            self.live_series -= 1;
            self.stats.evicted_series += 1;
        }
    }

    fn evict_groups(&mut self) {
        let victims = Self::idle_batch(
            self.groups_hot.iter().enumerate().filter(|(_, g)| g.live).map(|(i, g)| (g.last_seen, i as u32)),
            self.live_groups,
        );
        for g in victims {
            // Emit what the key has in open windows, marked partial.
            let mut taken = Vec::new();
            for w in &mut self.windows {
                if let Some(agg) = w.take(g) {
                    taken.push((w.start, w.end, agg));
                }
            }
            for (start, end, agg) in taken {
                self.emit(g, start, end, agg, true);
            }
            let h = &mut self.groups_hot[g as usize];
            h.live = false;
            h.generation = h.generation.wrapping_add(1);
            let fp = self.groups_cold[g as usize].fingerprint.as_u64();
            if let Some(c) = self.groups_by_fp.get_mut(&fp) {
                c.retain(|x| *x != g);
                if c.is_empty() {
                    self.groups_by_fp.remove(&fp);
                }
            }
            self.groups_cold[g as usize].labels = Labels::empty();
            self.free_groups.push(g);
            self.live_groups -= 1;
            self.stats.evicted_keys += 1;
        }
    }

    fn emit(&mut self, group: u32, start: i64, end: i64, mut agg: WindowAggregate, partial: bool) {
        agg.shrink();
        let cold = &self.groups_cold[group as usize];
        let values = agg.values(&self.cfg.aggregates, end - start);
        self.out.push(WindowRecord {
            metric: cold.labels.metric_name().unwrap_or("").to_string(),
            fingerprint: cold.fingerprint,
            labels: cold.labels.clone(),
            start_ms: start,
            end_ms: end,
            partial,
            values,
            state: agg,
        });
        self.stats.records_emitted += 1;
    }

    fn close_front(&mut self, partial: bool) {
        if let Some(w) = self.windows.pop_front() {
            self.closed_until = self.closed_until.max(w.end);
            self.stats.windows_closed += 1;
            // Records of one window come in the order their keys first had a sample in it.
            self.out.reserve(w.aggs.len());
            for (g, agg) in w.aggs {
                self.emit(g, w.start, w.end, agg, partial);
            }
        }
    }

    fn close_ready(&mut self) {
        let wm = self.watermark();
        self.closed_until = self.closed_until.max(wm);
        while self.windows.front().is_some_and(|w| w.end <= wm) {
            self.close_front(false);
        }
    }

    /// Feeds buffered values of open windows to their sketches (done anyway when a window
    /// closes), so that [`memory_bytes`](Self::memory_bytes) reflects the sketches' size.
    pub fn shrink_open(&mut self) {
        for w in &mut self.windows {
            for (_, a) in &mut w.aggs {
                a.flush_sketches();
            }
        }
    }

    /// Moves event time forward to `ts_ms` without a sample (for example from a clock when the
    /// stream is idle), closing the windows the new watermark passes.
    pub fn advance_to(&mut self, ts_ms: i64) {
        if ts_ms > self.max_ts {
            self.max_ts = ts_ms;
            self.close_ready();
        }
    }

    /// Closes every open window (on shutdown). Samples that arrive afterwards for those
    /// windows count as late.
    pub fn flush(&mut self) {
        while !self.windows.is_empty() {
            self.close_front(false);
        }
    }

    /// Takes the records of the windows closed so far.
    pub fn drain_records(&mut self) -> Vec<WindowRecord> {
        std::mem::take(&mut self.out)
    }

    /// Registers `labels` if needed and adds one sample with weight `weight`.
    ///
    /// # Errors
    /// As [`series_ref`](Self::series_ref) and [`push`](Self::push).
    pub fn push_labels(&mut self, labels: &Labels, sample: Sample, weight: f64) -> Result<Outcome, AggError> {
        let r = self.series_ref(labels).inspect_err(|_| self.stats.rejected_samples += 1)?;
        self.push(r, sample, weight)
    }

    /// Adds one sample of a registered series with weight `weight` (1 for unsampled data).
    ///
    /// # Errors
    /// [`AggError::StaleSeriesRef`] for a handle of an evicted series, [`AggError::Weight`] for a
    /// weight that is not finite and positive, [`AggError::TooManyWindows`] and
    /// [`AggError::TooManyKeys`] under the `Reject` policies.
    #[inline]
    pub fn push(&mut self, r: SeriesRef, sample: Sample, weight: f64) -> Result<Outcome, AggError> {
        let hot = match self.series_hot.get(r.index as usize) {
            Some(h) if h.live && h.generation == r.generation => *h,
            _ => {
                self.stats.rejected_samples += 1;
                return Err(AggError::StaleSeriesRef { index: r.index, generation: r.generation });
            }
        };
        if !(weight > 0.0 && weight.is_finite()) {
            self.stats.rejected_samples += 1;
            return Err(AggError::Weight(weight.to_string()));
        }
        let ts = sample.timestamp_ms;
        let mut group = hot.group;
        let gh = self.groups_hot[group as usize];
        if !gh.live || gh.generation != hot.group_generation {
            group = match self.reresolve_group(r.index) {
                Ok(g) => g,
                Err(e) => {
                    self.stats.rejected_samples += 1;
                    return Err(e);
                }
            };
        }
        let wi = match self.find_window(ts) {
            Some(i) => i,
            None => {
                let width = self.cfg.window_ms;
                let start = window_start(ts, width);
                let end = start.saturating_add(width);
                // Late: the window has closed, or (closing oldest windows first) it is older
                // than every open window while no window can be opened without closing one.
                let older_than_open = self.windows.front().is_some_and(|f| start < f.start)
                    && self.at_window_cap()
                    && self.cfg.window_overflow == WindowOverflow::CloseOldest;
                if end <= self.closed_until || older_than_open {
                    self.stats.late_samples += 1;
                    return Ok(Outcome::Late { window_start_ms: start });
                }
                match self.open_window(start, end) {
                    Ok(i) => i,
                    Err(e) => {
                        self.stats.rejected_samples += 1;
                        return Err(e);
                    }
                }
            }
        };
        if self.track_idle {
            self.series_hot[r.index as usize].last_seen = ts;
            self.groups_hot[group as usize].last_seen = ts;
        }
        let flags = self.flags;
        let w = &mut self.windows[wi];
        let g = group as usize;
        if g >= w.slot_of.len() {
            w.slot_of.resize(self.groups_hot.len().max(g + 1), NONE);
        }
        let mut pos = w.slot_of[g];
        if pos == NONE {
            pos = w.aggs.len() as u32;
            w.aggs.push((group, WindowAggregate::new(&self.cfg.aggregates)));
            w.slot_of[g] = pos;
        }
        w.aggs[pos as usize].1.observe(flags, hot.fingerprint, sample, weight, hot.distinct_hash);
        self.stats.aggregated += 1;
        if ts > self.max_ts {
            self.max_ts = ts;
            if self.windows.front().is_some_and(|f| f.end <= self.watermark()) {
                self.close_ready();
            } else {
                self.closed_until = self.closed_until.max(self.watermark());
            }
        }
        Ok(Outcome::Aggregated)
    }

    /// The key of series `index` was evicted since the series was registered: find or
    /// recreate it (rare path).
    #[cold]
    fn reresolve_group(&mut self, index: u32) -> Result<u32, AggError> {
        let key_labels = self.cfg.grouping.key_labels(&self.series_cold[index as usize].labels);
        let (g, generation) = self.resolve_group(&key_labels)?;
        let s = &mut self.series_hot[index as usize];
        s.group = g;
        s.group_generation = generation;
        Ok(g)
    }

    fn at_window_cap(&self) -> bool {
        self.windows.len() >= self.cfg.max_open_windows
    }

    #[inline]
    fn find_window(&self, ts: i64) -> Option<usize> {
        // Most samples hit the newest window: search from the back.
        for (i, w) in self.windows.iter().enumerate().rev() {
            if w.start <= ts {
                return in_window(w.start, self.cfg.window_ms, ts).then_some(i);
            }
        }
        None
    }

    fn open_window(&mut self, start: i64, end: i64) -> Result<usize, AggError> {
        if self.at_window_cap() {
            match self.cfg.window_overflow {
                WindowOverflow::Reject => {
                    return Err(AggError::TooManyWindows { limit: self.cfg.max_open_windows, window_start_ms: start });
                }
                WindowOverflow::CloseOldest => {
                    self.close_front(true);
                    self.stats.forced_window_closes += 1;
                }
            }
        }
        let pos = self.windows.partition_point(|w| w.start < start);
        let mut w = OpenWindow::new(start, end);
        w.slot_of.reserve(self.groups_hot.len());
        self.windows.insert(pos, w);
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn windows_close_by_watermark_and_count_late_samples() {
        let mut a = Aggregator::new(AggregatorConfig::default()).unwrap();
        let s = lbl(&[("__name__", "m"), ("i", "1")]);
        let r = a.series_ref(&s).unwrap();
        for t in (0..60_000).step_by(1000) {
            assert_eq!(a.push(r, Sample::new(t, 1.0), 1.0).unwrap(), Outcome::Aggregated);
        }
        // 65 s: watermark 55 s, first window still open; a sample at 59 s is on time.
        a.push(r, Sample::new(65_000, 2.0), 1.0).unwrap();
        assert_eq!(a.push(r, Sample::new(59_500, 1.0), 1.0).unwrap(), Outcome::Aggregated);
        assert!(a.drain_records().is_empty());
        // 70 s: watermark 60 s closes [0, 60 s).
        a.push(r, Sample::new(70_000, 2.0), 1.0).unwrap();
        let recs = a.drain_records();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].start_ms, recs[0].end_ms), (0, 60_000));
        assert_eq!(recs[0].values.count, Some(61.0));
        assert_eq!(recs[0].metric, "m");
        assert_eq!(a.push(r, Sample::new(1_000, 1.0), 1.0).unwrap(), Outcome::Late { window_start_ms: 0 });
        assert_eq!(a.stats().late_samples, 1);
        a.flush();
        let recs = a.drain_records();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].values.sum, Some(4.0));
        assert_eq!(a.push(r, Sample::new(70_001, 1.0), 1.0).unwrap(), Outcome::Late { window_start_ms: 60_000 });
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let mut a = Aggregator::new(AggregatorConfig::default()).unwrap();
        let r = a.series_ref(&lbl(&[("__name__", "m")])).unwrap();
        a.push(r, Sample::new(i64::MIN, 1.0), 1.0).unwrap();
        a.push(r, Sample::new(i64::MAX, 1.0), 1.0).unwrap();
        a.flush();
        let recs = a.drain_records();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].start_ms, i64::MIN);
        assert_eq!(recs[1].end_ms, i64::MAX);
        assert!(rollup(recs, 3_600_000, &AggregateSet::default()).is_ok());
    }

    #[test]
    fn negative_timestamps_align_to_epoch() {
        let mut a = Aggregator::new(AggregatorConfig::default()).unwrap();
        let r = a.series_ref(&lbl(&[("__name__", "m")])).unwrap();
        a.push(r, Sample::new(-1, 1.0), 1.0).unwrap();
        a.flush();
        let recs = a.drain_records();
        assert_eq!((recs[0].start_ms, recs[0].end_ms), (-60_000, 0));
    }

    #[test]
    fn group_by_rolls_up_instances() {
        let cfg = AggregatorConfig {
            grouping: Grouping::By(vec!["job".into()]),
            aggregates: AggregateSet {
                counter: true,
                distinct: Some(crate::DistinctConfig { source: DistinctSource::Label("instance".into()) }),
                ..AggregateSet::default()
            },
            ..AggregatorConfig::default()
        };
        let mut a = Aggregator::new(cfg).unwrap();
        for i in 0..5 {
            let s = lbl(&[("__name__", "req_total"), ("job", "api"), ("instance", &format!("h{i}"))]);
            let r = a.series_ref(&s).unwrap();
            for t in 0..10 {
                a.push(r, Sample::new(t * 1000, (t * (i + 1)) as f64), 1.0).unwrap();
            }
        }
        a.flush();
        let recs = a.drain_records();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].labels, lbl(&[("__name__", "req_total"), ("job", "api")]));
        assert_eq!(recs[0].values.count, Some(50.0));
        // Increase per series 9·(i+1): 9·15 = 135.
        assert_eq!(recs[0].values.increase, Some(135.0));
        assert_eq!(recs[0].values.distinct.map(f64::round), Some(5.0));
    }

    #[test]
    fn without_keeps_metric_name() {
        let g = Grouping::Without(vec!["instance".into(), "__name__".into()]);
        let k = g.key_labels(&lbl(&[("__name__", "m"), ("instance", "a"), ("job", "j")]));
        assert_eq!(k, lbl(&[("__name__", "m"), ("job", "j")]));
    }

    #[test]
    fn key_cap_rejects_or_evicts() {
        let cfg = AggregatorConfig { max_keys: 2, ..AggregatorConfig::default() };
        let mut a = Aggregator::new(cfg.clone()).unwrap();
        for i in 0..2 {
            a.push_labels(&lbl(&[("__name__", "m"), ("i", &i.to_string())]), Sample::new(0, 1.0), 1.0).unwrap();
        }
        let e = a.push_labels(&lbl(&[("__name__", "m"), ("i", "9")]), Sample::new(0, 1.0), 1.0).unwrap_err();
        assert!(matches!(e, AggError::TooManyKeys { limit: 2, .. }));
        assert_eq!(a.stats().rejected_samples, 1);

        let mut a = Aggregator::new(AggregatorConfig { key_overflow: KeyOverflow::EvictIdle, ..cfg }).unwrap();
        let r0 = a.series_ref(&lbl(&[("__name__", "m"), ("i", "0")])).unwrap();
        a.push(r0, Sample::new(0, 1.0), 1.0).unwrap();
        a.push_labels(&lbl(&[("__name__", "m"), ("i", "1")]), Sample::new(1, 1.0), 1.0).unwrap();
        a.push_labels(&lbl(&[("__name__", "m"), ("i", "2")]), Sample::new(2, 1.0), 1.0).unwrap();
        assert_eq!(a.keys(), 2);
        let recs = a.drain_records();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].partial);
        assert_eq!(recs[0].labels.get("i"), Some("0"));
        // The series handle still works: its key is recreated (evicting another).
        a.push(r0, Sample::new(3, 5.0), 1.0).unwrap();
        assert_eq!(a.stats().evicted_keys, 2);
    }

    #[test]
    fn window_cap_rejects_or_closes_oldest() {
        let cfg = AggregatorConfig { max_open_windows: 2, allowed_lateness_ms: 300_000, ..AggregatorConfig::default() };
        let mut a = Aggregator::new(cfg.clone()).unwrap();
        let s = lbl(&[("__name__", "m")]);
        a.push_labels(&s, Sample::new(0, 1.0), 1.0).unwrap();
        a.push_labels(&s, Sample::new(60_000, 1.0), 1.0).unwrap();
        let e = a.push_labels(&s, Sample::new(120_000, 1.0), 1.0).unwrap_err();
        assert!(matches!(e, AggError::TooManyWindows { limit: 2, window_start_ms: 120_000 }));

        let mut a = Aggregator::new(AggregatorConfig { window_overflow: WindowOverflow::CloseOldest, ..cfg }).unwrap();
        a.push_labels(&s, Sample::new(0, 1.0), 1.0).unwrap();
        a.push_labels(&s, Sample::new(60_000, 1.0), 1.0).unwrap();
        a.push_labels(&s, Sample::new(120_000, 1.0), 1.0).unwrap();
        let recs = a.drain_records();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].partial && recs[0].start_ms == 0);
        assert_eq!(a.push_labels(&s, Sample::new(5, 1.0), 1.0).unwrap(), Outcome::Late { window_start_ms: 0 });
        assert_eq!(a.stats().forced_window_closes, 1);
    }

    #[test]
    fn evicted_series_ref_is_refused() {
        let cfg =
            AggregatorConfig { max_series: 1, key_overflow: KeyOverflow::EvictIdle, ..AggregatorConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        let r0 = a.series_ref(&lbl(&[("__name__", "a")])).unwrap();
        let r1 = a.series_ref(&lbl(&[("__name__", "b")])).unwrap();
        assert!(matches!(a.push(r0, Sample::new(0, 1.0), 1.0), Err(AggError::StaleSeriesRef { .. })));
        assert_eq!(a.push(r1, Sample::new(0, 1.0), 1.0).unwrap(), Outcome::Aggregated);
    }

    #[test]
    fn config_is_validated_and_serde_readable() {
        let bad = AggregatorConfig { allowed_lateness_ms: 300_001, ..AggregatorConfig::default() };
        assert!(matches!(Aggregator::new(bad), Err(ConfigError::Lateness { got: 300_001, .. })));
        let cfg: AggregatorConfig = serde_json::from_str(
            r#"{"window_ms": 60000, "grouping": {"by": ["job"]},
                "aggregates": {"ddsketch": {"alpha": 0.02, "max_bins": 1024}, "quantiles": [0.9]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.grouping, Grouping::By(vec!["job".into()]));
        assert_eq!(cfg.aggregates.quantiles, vec![0.9]);
        assert!(cfg.aggregates.count);
        assert!(Aggregator::new(cfg).is_ok());
    }
}
