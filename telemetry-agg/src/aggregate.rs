//! Per-window aggregate state: what is selected ([`AggregateSet`]), the mergeable state
//! ([`WindowAggregate`]) and the values read from it ([`AggregateValues`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use telemetry_core::Sample;

use crate::error::{ConfigError, MergeError};
use crate::sketch::{DdSketch, DdSketchConfig, DistinctCount, Moments, TDigestSketch};

/// The quantiles reported by default: p50, p95, p99.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// What a distinct count counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistinctSource {
    /// Distinct sample values (by bit pattern).
    Values,
    /// Distinct values of this label among the series that fed the key (for example the
    /// number of `instance`s behind a rolled-up family). Series without the label do not count.
    Label(String),
}

/// HyperLogLog distinct-count settings (precision 14: see [`DistinctCount`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistinctConfig {
    /// What to count.
    pub source: DistinctSource,
}

/// t-digest settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TDigestConfig {
    /// Most centroids kept (the `tdigest` crate's `max_size`), `10..=10000`; default 100.
    pub compression: usize,
}

impl Default for TDigestConfig {
    fn default() -> Self {
        TDigestConfig { compression: 100 }
    }
}

/// Which aggregates a window keeps. Count, sum, min and max cost a few instructions per sample;
/// the sketches cost memory per key and per window (see the crate docs for figures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AggregateSet {
    /// Weighted count (Σ weight) and the raw number of kept samples.
    pub count: bool,
    /// Weighted sum (Σ weight · value).
    pub sum: bool,
    /// Smallest value.
    pub min: bool,
    /// Largest value.
    pub max: bool,
    /// Weighted mean (Σ weight · value / Σ weight).
    pub mean: bool,
    /// Weighted population standard deviation (Welford/West, Chan merge).
    pub stddev: bool,
    /// Earliest sample (by timestamp).
    pub first: bool,
    /// Latest sample (by timestamp).
    pub last: bool,
    /// Counter increase, rate and resets, per series and summed over the key's series.
    pub counter: bool,
    /// Quantiles from a t-digest.
    pub tdigest: Option<TDigestConfig>,
    /// Quantiles from a DDSketch.
    pub ddsketch: Option<DdSketchConfig>,
    /// Quantiles reported from the sketches (default p50, p95, p99).
    pub quantiles: Vec<f64>,
    /// HyperLogLog distinct count.
    pub distinct: Option<DistinctConfig>,
}

impl Default for AggregateSet {
    /// Count, sum, min, max and mean; no sketches; quantiles p50/p95/p99 if a sketch is added.
    fn default() -> Self {
        AggregateSet {
            count: true,
            sum: true,
            min: true,
            max: true,
            mean: true,
            stddev: false,
            first: false,
            last: false,
            counter: false,
            tdigest: None,
            ddsketch: None,
            quantiles: DEFAULT_QUANTILES.to_vec(),
            distinct: None,
        }
    }
}

impl AggregateSet {
    /// Every aggregate, with default sketch settings and a distinct count of values.
    pub fn all() -> Self {
        AggregateSet {
            stddev: true,
            first: true,
            last: true,
            counter: true,
            tdigest: Some(TDigestConfig::default()),
            ddsketch: Some(DdSketchConfig::default()),
            distinct: Some(DistinctConfig { source: DistinctSource::Values }),
            ..AggregateSet::default()
        }
    }

    /// Checks quantiles and sketch parameters.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for &q in &self.quantiles {
            if !(0.0..=1.0).contains(&q) {
                return Err(ConfigError::Quantile(q));
            }
        }
        if let Some(t) = &self.tdigest
            && !(10..=10_000).contains(&t.compression)
        {
            return Err(ConfigError::TDigestCompression(t.compression));
        }
        if let Some(d) = &self.ddsketch {
            if !(d.alpha > 0.0 && d.alpha < 1.0) {
                return Err(ConfigError::DdSketchAlpha(d.alpha));
            }
            if d.max_bins == 0 {
                return Err(ConfigError::ZeroCap { what: "DDSketch max_bins" });
            }
        }
        Ok(())
    }
}

/// One series' counter progress inside a window: first and last sample and the increase
/// between them, with resets handled as PromQL's `increase` does (a drop means the counter
/// restarted from zero, so the new value itself is the increase since the previous sample;
/// Prometheus `promql/functions.go`, `extrapolatedRate`). No extrapolation to window edges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    /// Earliest sample.
    pub first: Sample,
    /// Latest sample.
    pub last: Sample,
    /// Increase from `first` to `last`.
    pub increase: f64,
    /// Number of resets seen.
    pub resets: u64,
    /// Samples whose timestamp fell strictly between `first` and `last` after later samples
    /// had arrived: they cannot be placed without the raw data and are left out of the
    /// increase (they change it only if a reset hides between them).
    pub out_of_order: u64,
}

#[inline]
fn counter_delta(prev: f64, cur: f64) -> (f64, u64) {
    if cur >= prev { (cur - prev, 0) } else { (cur, 1) }
}

impl CounterState {
    fn new(s: Sample) -> Self {
        CounterState { first: s, last: s, increase: 0.0, resets: 0, out_of_order: 0 }
    }

    #[inline]
    fn add(&mut self, s: Sample) {
        if s.timestamp_ms > self.last.timestamp_ms {
            let (d, r) = counter_delta(self.last.value, s.value);
            self.increase += d;
            self.resets += r;
            self.last = s;
        } else if s.timestamp_ms < self.first.timestamp_ms {
            let (d, r) = counter_delta(s.value, self.first.value);
            self.increase += d;
            self.resets += r;
            self.first = s;
        } else {
            self.out_of_order += 1;
        }
    }

    fn key(&self) -> (i64, i64, u64, u64, u64) {
        (
            self.first.timestamp_ms,
            self.last.timestamp_ms,
            self.first.value.to_bits(),
            self.last.value.to_bits(),
            self.increase.to_bits(),
        )
    }
}

/// One series' counter pieces, sorted by time. Raw ingestion makes one piece per window;
/// merging windows concatenates pieces, and the increase across the gap between two pieces is
/// added only when the pieces are read ([`CounterAgg::totals`]) or compacted
/// ([`CounterAgg::compact`]): so merges are associative and commutative whatever the order in
/// which the pieces arrive, and a piece that later falls between two others is not counted
/// twice.
pub type CounterPieces = SmallVec<[CounterState; 1]>;

/// Folds time-sorted pieces of one series into one: the pieces' increases plus, between a piece
/// and the next that starts after it ends, the step between them (reset-aware). Overlapping
/// pieces (the same series split between workers over interleaved samples) add their
/// increases without a step, an approximation.
fn fold_pieces(pieces: &[CounterState]) -> Option<CounterState> {
    let mut it = pieces.iter();
    let mut acc = *it.next()?;
    for p in it {
        acc.increase += p.increase;
        acc.resets += p.resets;
        acc.out_of_order += p.out_of_order;
        if acc.last.timestamp_ms < p.first.timestamp_ms {
            let (d, r) = counter_delta(acc.last.value, p.first.value);
            acc.increase += d;
            acc.resets += r;
        }
        if p.last.timestamp_ms > acc.last.timestamp_ms {
            acc.last = p.last;
        }
    }
    Some(acc)
}

/// Counter state of every series that fed a key, by series fingerprint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CounterAgg {
    /// Per-series pieces, keyed by the series' [`Fingerprint`](telemetry_core::Fingerprint) value.
    pub series: HashMap<u64, CounterPieces, ahash::RandomState>,
}

impl CounterAgg {
    #[inline]
    fn add(&mut self, series: u64, s: Sample) {
        let pieces = self.series.entry(series).or_default();
        if pieces.is_empty() {
            pieces.push(CounterState::new(s));
            return;
        }
        // The piece that starts last at or before `s` (or the first one).
        let i = pieces.partition_point(|p| p.first.timestamp_ms <= s.timestamp_ms).saturating_sub(1);
        pieces[i].add(s);
    }

    fn merge(&mut self, o: &CounterAgg) {
        for (k, v) in &o.series {
            let pieces = self.series.entry(*k).or_default();
            pieces.extend(v.iter().copied());
            pieces.sort_unstable_by_key(CounterState::key);
        }
    }

    /// Folds each series' pieces into one (see [`CounterPieces`]). Exact when no piece of the
    /// covered time is still to come, as when a rollup has merged every window it spans.
    pub fn compact(&mut self) {
        for pieces in self.series.values_mut() {
            if pieces.len() > 1
                && let Some(one) = fold_pieces(pieces)
            {
                pieces.clear();
                pieces.push(one);
            }
        }
    }

    /// Sum of the series' increases (in fingerprint order, for reproducible rounding) and of
    /// their resets.
    pub fn totals(&self) -> (f64, u64) {
        let mut keys: Vec<&u64> = self.series.keys().collect();
        keys.sort_unstable();
        let mut inc = 0.0;
        let mut resets = 0;
        for k in keys {
            if let Some(c) = fold_pieces(&self.series[k]) {
                inc += c.increase;
                resets += c.resets;
            }
        }
        (inc, resets)
    }
}

mod nonfinite {
    //! Infinite min/max (an empty aggregate) as `null`, which every serde format carries.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn ser<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_some(v) } else { s.serialize_none() }
    }
    pub fn de_min<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
    pub fn de_max<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }
}

/// The mergeable state of one key in one window.
///
/// Values enter with a weight (1 for unsampled data, `1/p` after probabilistic sampling; see
/// [`sampling`](crate::sampling)). Count and sum are weighted, so they estimate the unsampled
/// count and sum without bias; min, max, mean, standard deviation and quantiles are computed
/// from the values themselves, never scaled.
///
/// Stale markers and other non-finite values are counted (`stale`, `non_finite`) and kept out
/// of the value aggregates.
///
/// Count, sum, min and max sit inline (one cache line); the other components, when selected,
/// sit in one boxed [`Extras`] allocated when the key's window opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowAggregate {
    /// Kept samples (unweighted).
    pub samples: u64,
    /// Σ weight: the estimated number of samples before sampling.
    pub weight: f64,
    /// Σ weight · value.
    pub sum: f64,
    /// Smallest value (`+∞` when empty).
    #[serde(serialize_with = "nonfinite::ser", deserialize_with = "nonfinite::de_min")]
    pub min: f64,
    /// Largest value (`−∞` when empty).
    #[serde(serialize_with = "nonfinite::ser", deserialize_with = "nonfinite::de_max")]
    pub max: f64,
    /// Stale markers seen.
    pub stale: u64,
    /// NaN (other than the stale marker) and infinite values seen.
    pub non_finite: u64,
    /// The other selected components.
    pub extras: Option<Box<Extras>>,
}

/// The components of a [`WindowAggregate`] beyond count, sum, min and max; each is present
/// when selected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extras {
    /// Mean and variance accumulator (standard deviation).
    pub moments: Option<Moments>,
    /// Earliest sample.
    pub first: Option<Sample>,
    /// Latest sample.
    pub last: Option<Sample>,
    /// t-digest.
    pub tdigest: Option<TDigestSketch>,
    /// DDSketch.
    pub ddsketch: Option<DdSketch>,
    /// HyperLogLog.
    pub distinct: Option<DistinctCount>,
    /// Counter pieces per series.
    pub counter: Option<CounterAgg>,
    /// Values not yet fed to the sketches: they are fed in sorted batches of up to
    /// [`SKETCH_BATCH`], so the per-sample path writes one buffer and the sketches' memory is
    /// touched once per batch, in order.
    #[serde(default)]
    pub pending: Vec<f64>,
}

/// Values buffered per key before they are sorted and fed to the t-digest and the DDSketch.
pub const SKETCH_BATCH: usize = 64;

/// Compact switches read on the per-sample path.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub any_extra: bool,
    pub moments: bool,
    pub first: bool,
    pub last: bool,
    pub counter: bool,
    pub sketches: bool,
    pub distinct: bool,
}

impl Flags {
    pub(crate) fn of(set: &AggregateSet) -> Self {
        let mut f = Flags {
            any_extra: false,
            moments: set.stddev,
            first: set.first,
            last: set.last,
            counter: set.counter,
            sketches: set.tdigest.is_some() || set.ddsketch.is_some(),
            distinct: set.distinct.is_some(),
        };
        f.any_extra = f.moments || f.first || f.last || f.counter || f.sketches || f.distinct;
        f
    }
}

#[inline]
fn earlier(a: &Sample, b: &Sample) -> bool {
    (a.timestamp_ms, a.value.to_bits()) < (b.timestamp_ms, b.value.to_bits())
}

impl Extras {
    fn new(set: &AggregateSet) -> Self {
        Extras {
            moments: set.stddev.then(Moments::default),
            first: None,
            last: None,
            tdigest: set.tdigest.map(|t| TDigestSketch::new(t.compression)),
            ddsketch: set.ddsketch.map(DdSketch::new),
            distinct: set.distinct.as_ref().map(|_| DistinctCount::new()),
            counter: set.counter.then(CounterAgg::default),
            pending: Vec::new(),
        }
    }

    /// Feeds the pending values to the sketches.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.pending);
        batch.sort_unstable_by(f64::total_cmp);
        if let Some(d) = &mut self.ddsketch {
            for &v in &batch {
                d.add(v);
            }
        }
        match &mut self.tdigest {
            Some(t) => {
                t.add_sorted(batch);
                self.pending = Vec::with_capacity(SKETCH_BATCH);
            }
            None => {
                batch.clear();
                self.pending = batch;
            }
        }
    }

    #[inline]
    fn observe(&mut self, f: Flags, series_fp: u64, s: Sample, w: f64, distinct_hash: Option<u64>) {
        let v = s.value;
        if f.moments
            && let Some(m) = &mut self.moments
        {
            m.add(v, w);
        }
        if f.first && self.first.as_ref().is_none_or(|x| earlier(&s, x)) {
            self.first = Some(s);
        }
        if f.last && self.last.as_ref().is_none_or(|x| earlier(x, &s)) {
            self.last = Some(s);
        }
        if f.counter
            && let Some(c) = &mut self.counter
        {
            c.add(series_fp, s);
        }
        if f.sketches {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(SKETCH_BATCH);
            }
            self.pending.push(v);
            if self.pending.len() >= SKETCH_BATCH {
                self.flush();
            }
        }
        if f.distinct
            && let Some(h) = &mut self.distinct
        {
            h.insert(distinct_hash.unwrap_or_else(|| crate::sampling::mix64(v.to_bits())));
        }
    }

    fn merge(&mut self, o: &Extras) -> Result<(), MergeError> {
        fn shape<T>(a: &Option<T>, b: &Option<T>, what: &'static str) -> Result<(), MergeError> {
            if a.is_some() != b.is_some() { Err(MergeError::Shape(what)) } else { Ok(()) }
        }
        shape(&self.moments, &o.moments, "stddev")?;
        shape(&self.tdigest, &o.tdigest, "tdigest")?;
        shape(&self.ddsketch, &o.ddsketch, "ddsketch")?;
        shape(&self.distinct, &o.distinct, "distinct")?;
        shape(&self.counter, &o.counter, "counter")?;
        self.flush();
        let flushed;
        let o = if o.pending.is_empty() {
            o
        } else {
            let mut c = o.clone();
            c.flush();
            flushed = c;
            &flushed
        };
        // Sketch merges can fail: do them before touching anything else.
        let mut td = self.tdigest.clone();
        if let (Some(a), Some(b)) = (&mut td, &o.tdigest) {
            a.merge(b)?;
        }
        let mut dd = self.ddsketch.clone();
        if let (Some(a), Some(b)) = (&mut dd, &o.ddsketch) {
            a.merge(b)?;
        }
        self.tdigest = td;
        self.ddsketch = dd;
        if let (Some(a), Some(b)) = (&mut self.distinct, &o.distinct) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.moments, &o.moments) {
            a.merge(b);
        }
        if let Some(b) = &o.first
            && self.first.as_ref().is_none_or(|a| earlier(b, a))
        {
            self.first = Some(*b);
        }
        if let Some(b) = &o.last
            && self.last.as_ref().is_none_or(|a| earlier(a, b))
        {
            self.last = Some(*b);
        }
        if let (Some(a), Some(b)) = (&mut self.counter, &o.counter) {
            a.merge(b);
        }
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.pending.capacity() * 8
            + self.tdigest.as_ref().map_or(0, |t| t.heap_bytes())
            + self.ddsketch.as_ref().map_or(0, |d| d.heap_bytes())
            + self.distinct.as_ref().map_or(0, |d| d.heap_bytes())
            + self.counter.as_ref().map_or(0, |c| c.series.capacity() * (8 + std::mem::size_of::<CounterPieces>() + 1))
    }
}

impl WindowAggregate {
    /// An empty aggregate with the components `set` selects.
    pub fn new(set: &AggregateSet) -> Self {
        let f = Flags::of(set);
        WindowAggregate {
            samples: 0,
            weight: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            stale: 0,
            non_finite: 0,
            extras: f.any_extra.then(|| Box::new(Extras::new(set))),
        }
    }

    /// Adds one sample of series `series_fp` with weight `w` (> 0). `distinct_hash` is the item
    /// for the distinct count (a label value's hash, or `None` to hash the value).
    #[inline]
    pub(crate) fn observe(&mut self, f: Flags, series_fp: u64, s: Sample, w: f64, distinct_hash: Option<u64>) {
        let v = s.value;
        if !v.is_finite() {
            if s.is_stale() {
                self.stale += 1;
            } else {
                self.non_finite += 1;
            }
            return;
        }
        self.samples += 1;
        self.weight += w;
        self.sum += w * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if f.any_extra
            && let Some(x) = &mut self.extras
        {
            x.observe(f, series_fp, s, w, distinct_hash);
        }
    }

    /// Adds one sample of series `series` with weight `weight` (> 0) outside an
    /// [`Aggregator`](crate::Aggregator): `set` must be the set this aggregate was built with.
    /// The distinct count (if any) counts values.
    pub fn add(&mut self, set: &AggregateSet, series: telemetry_core::Fingerprint, sample: Sample, weight: f64) {
        self.observe(Flags::of(set), series.as_u64(), sample, weight, None);
    }

    /// Merges `o` into `self`. Count, min, max, first, last, the distinct count and the
    /// DDSketch merge exactly in any order; sums and moments merge up to floating-point
    /// rounding (exactly when the values are integers below 2^53); counter increases are
    /// computed from time-sorted pieces, so they do not depend on the merge order; the t-digest
    /// merges within its error bounds.
    ///
    /// # Errors
    /// [`MergeError`] when the two were built with different aggregate sets or parameters.
    pub fn merge(&mut self, o: &WindowAggregate) -> Result<(), MergeError> {
        match (&mut self.extras, &o.extras) {
            (Some(a), Some(b)) => a.merge(b)?,
            (None, None) => {}
            _ => return Err(MergeError::Shape("extras")),
        }
        self.samples += o.samples;
        self.weight += o.weight;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.stale += o.stale;
        self.non_finite += o.non_finite;
        Ok(())
    }

    /// Feeds buffered values to the sketches.
    pub fn flush_sketches(&mut self) {
        if let Some(x) = &mut self.extras {
            x.flush();
        }
    }

    /// Folds counter pieces (see [`CounterAgg::compact`]).
    pub fn compact(&mut self) {
        if let Some(c) = self.extras.as_mut().and_then(|x| x.counter.as_mut()) {
            c.compact();
        }
    }

    /// Feeds buffered values to the sketches and releases spare capacity (called when a
    /// window closes).
    pub fn shrink(&mut self) {
        if let Some(x) = &mut self.extras {
            x.flush();
            x.pending = Vec::new();
            if let Some(t) = &mut x.tdigest {
                t.shrink();
            }
        }
    }

    /// Approximate bytes held, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.extras.as_ref().map_or(0, |x| x.heap_bytes())
    }

    /// Reads the selected values. `window_ms` is the window width, used for the rate.
    pub fn values(&self, set: &AggregateSet, window_ms: i64) -> AggregateValues {
        let nonempty = self.samples > 0;
        let opt = |sel: bool, v: f64| (sel && nonempty).then_some(v);
        let flushed;
        let x = match self.extras.as_deref() {
            Some(x) if !x.pending.is_empty() => {
                let mut c = x.clone();
                c.flush();
                flushed = c;
                Some(&flushed)
            }
            x => x,
        };
        let (increase, resets) = match (x.and_then(|x| x.counter.as_ref()), set.counter) {
            (Some(c), true) if !c.series.is_empty() => {
                let (i, r) = c.totals();
                (Some(i), Some(r))
            }
            _ => (None, None),
        };
        let qs = |f: &dyn Fn(f64) -> Option<f64>| -> Vec<Quantile> {
            set.quantiles.iter().filter_map(|&q| f(q).map(|value| Quantile { q, value })).collect()
        };
        AggregateValues {
            samples: self.samples,
            count: set.count.then_some(self.weight),
            sum: opt(set.sum, self.sum),
            min: opt(set.min, self.min),
            max: opt(set.max, self.max),
            mean: opt(set.mean, self.sum / self.weight),
            stddev: x.and_then(|x| x.moments.as_ref()).filter(|_| set.stddev).and_then(|m| m.variance()).map(f64::sqrt),
            first: x.and_then(|x| x.first).filter(|_| set.first),
            last: x.and_then(|x| x.last).filter(|_| set.last),
            tdigest: x.and_then(|x| x.tdigest.as_ref()).filter(|_| nonempty).and_then(|t| {
                let v = t.quantiles(&set.quantiles)?;
                Some(set.quantiles.iter().zip(v).map(|(&q, value)| Quantile { q, value }).collect())
            }),
            ddsketch: x.and_then(|x| x.ddsketch.as_ref()).filter(|_| nonempty).map(|d| qs(&|q| d.quantile(q))),
            distinct: x.and_then(|x| x.distinct.as_ref()).map(|d| d.estimate()),
            increase,
            rate: increase.map(|i| i / (window_ms as f64 / 1000.0)),
            resets,
            stale: self.stale,
            non_finite: self.non_finite,
        }
    }
}

/// One estimated quantile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The quantile, in `[0, 1]`.
    pub q: f64,
    /// Its estimated value.
    pub value: f64,
}

/// The values of one key in one window. A field is `None` when its aggregate is not selected
/// or the window holds no finite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateValues {
    /// Kept samples (unweighted).
    pub samples: u64,
    /// Weighted count: an unbiased estimate of the number of samples before sampling.
    pub count: Option<f64>,
    /// Weighted sum: an unbiased estimate of the sum before sampling.
    pub sum: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Weighted mean.
    pub mean: Option<f64>,
    /// Weighted population standard deviation.
    pub stddev: Option<f64>,
    /// Earliest sample.
    pub first: Option<Sample>,
    /// Latest sample.
    pub last: Option<Sample>,
    /// Quantiles from the t-digest.
    pub tdigest: Option<Vec<Quantile>>,
    /// Quantiles from the DDSketch.
    pub ddsketch: Option<Vec<Quantile>>,
    /// Estimated distinct count.
    pub distinct: Option<f64>,
    /// Counter increase within the window, summed over the key's series (reset-aware, not
    /// extrapolated to the window edges).
    pub increase: Option<f64>,
    /// `increase` per second of window width.
    pub rate: Option<f64>,
    /// Counter resets seen.
    pub resets: Option<u64>,
    /// Stale markers seen.
    pub stale: u64,
    /// Other non-finite values seen.
    pub non_finite: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(agg: &mut WindowAggregate, set: &AggregateSet, pts: &[(i64, f64)]) {
        let f = Flags::of(set);
        for &(t, v) in pts {
            agg.observe(f, 7, Sample::new(t, v), 1.0, None);
        }
    }

    #[test]
    fn counter_increase_handles_resets_like_promql() {
        let set = AggregateSet { counter: true, ..AggregateSet::default() };
        let mut a = WindowAggregate::new(&set);
        // 10 → 15 (+5), reset to 3 (+3), → 7 (+4): 12.
        feed(&mut a, &set, &[(0, 10.0), (1000, 15.0), (2000, 3.0), (3000, 7.0)]);
        let v = a.values(&set, 60_000);
        assert_eq!(v.increase, Some(12.0));
        assert_eq!(v.resets, Some(1));
        assert_eq!(v.rate, Some(12.0 / 60.0));
    }

    #[test]
    fn counter_merge_bridges_windows() {
        let set = AggregateSet { counter: true, ..AggregateSet::default() };
        let mut a = WindowAggregate::new(&set);
        let mut b = WindowAggregate::new(&set);
        feed(&mut a, &set, &[(0, 10.0), (1000, 15.0)]);
        feed(&mut b, &set, &[(2000, 3.0), (3000, 7.0)]);
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut ba = b.clone();
        ba.merge(&a).unwrap();
        assert_eq!(ab.values(&set, 1).increase, Some(12.0));
        assert_eq!(ba.values(&set, 1).increase, Some(12.0));
    }

    #[test]
    fn stale_and_nan_are_counted_not_aggregated() {
        let set = AggregateSet::all();
        let mut a = WindowAggregate::new(&set);
        feed(&mut a, &set, &[(0, 1.0), (1, f64::NAN), (2, telemetry_core::STALE_NAN), (3, f64::INFINITY), (4, 3.0)]);
        let v = a.values(&set, 60_000);
        assert_eq!((v.samples, v.stale, v.non_finite), (2, 1, 2));
        assert_eq!((v.min, v.max, v.sum), (Some(1.0), Some(3.0), Some(4.0)));
    }

    #[test]
    fn empty_aggregate_round_trips_json() {
        let set = AggregateSet::all();
        let a = WindowAggregate::new(&set);
        let json = serde_json::to_string(&a).unwrap();
        let back: WindowAggregate = serde_json::from_str(&json).unwrap();
        assert_eq!(back.min, f64::INFINITY);
        assert_eq!(back.max, f64::NEG_INFINITY);
        assert_eq!(back.values(&set, 60_000), a.values(&set, 60_000));
    }
}
