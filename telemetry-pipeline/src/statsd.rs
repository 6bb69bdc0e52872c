//! The UDP StatsD/DogStatsD source (cargo feature `server`).
//!
//! Datagrams are decoded line by line with telemetry-core's
//! [`StatsdDecoder`] (names and tags map to
//! labels by [`normalize`](telemetry_core::format::normalize): `api.request.duration` with
//! `#env:prod` is `api_request_duration{env="prod"}`), aggregated in memory, and written every
//! `statsd.flush_interval_ms` with the flush time as timestamp. The series each type becomes:
//!
//! | type | series | value written each interval |
//! |---|---|---|
//! | `c` counter | `<name>` | running total since the source started: each value divided by its sample rate and added (a counter: use `rate()`/`increase()`) |
//! | `g` gauge | `<name>` | last value; `+N`/`-N` add to it (from 0 when unknown); sample rates ignored |
//! | `s` set | `<name>` | distinct members seen in the interval (written only for intervals with members) |
//! | `ms` timer, `h` histogram, `d` distribution | `<name>_count`, `<name>_sum`, `<name>_min`, `<name>_max`, `<name>_avg` (those in `statsd.aggregates`) and `<name>{quantile="<q>"}` (each of `statsd.percentiles`) | over the interval's observations; count and sum divide each observation by its sample rate, min, max and percentiles use the values as sent; percentiles are nearest-rank (`sorted[ceil(q·n) − 1]`) while at most `statsd.max_exact_values` observations arrived, else a t-digest estimate (written only for intervals with observations) |
//!
//! Counters and gauges are written every interval until they have not been updated for
//! `statsd.expire_after_ms`; then they get a stale marker and are forgotten (a counter that
//! comes back starts from 0, which `rate()` reads as a reset). A DogStatsD timestamp
//! (`|T<seconds>`) on a gauge writes that value at that time, outside the aggregation; on other
//! types it is ignored. A line that does not decode, or has a non-finite value, is counted and
//! skipped; the rest of its datagram is still read.
//!
//! The socket loop never waits for the pipeline: a flush hands its batch over with
//! [`Pipeline::try_submit`], and when the ingest queue is full the batch's samples are dropped
//! and counted (`telemetry_statsd_samples_dropped_total{reason="queue_full"}` on `/metrics`).
//! The final flush on shutdown waits for room instead.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use telemetry_core::Labels;
use telemetry_core::format::statsd::{StatsdDecoder, StatsdType, StatsdValue};
use telemetry_core::sample::STALE_NAN;

use crate::batch::{Batch, BatchBuilder};
use crate::config::{StatsdAggregate, StatsdConfig};
use crate::pipeline::{IngestError, Pipeline};

/// Counters of the StatsD source.
#[derive(Debug, Default)]
pub struct StatsdStats {
    /// Datagrams received.
    pub packets: AtomicU64,
    /// Metric lines aggregated.
    pub lines: AtomicU64,
    /// Lines that did not decode (or had a non-finite value).
    pub bad_lines: AtomicU64,
    /// Lines dropped because `statsd.max_series` series were already aggregated.
    pub dropped_series_limit: AtomicU64,
    /// Samples handed to the pipeline.
    pub samples_submitted: AtomicU64,
    /// Samples dropped because the ingest queue was full.
    pub samples_dropped_queue_full: AtomicU64,
    /// Samples the pipeline acknowledged as stored.
    pub samples_stored: AtomicU64,
    /// Flushes done.
    pub flushes: AtomicU64,
}

impl StatsdStats {
    fn render(&self, o: &mut String) {
        use std::fmt::Write as _;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut c = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        c("telemetry_statsd_packets_total", "StatsD datagrams received.", ld(&self.packets));
        c("telemetry_statsd_lines_total", "StatsD metric lines aggregated.", ld(&self.lines));
        c("telemetry_statsd_bad_lines_total", "StatsD lines that did not decode.", ld(&self.bad_lines));
        c("telemetry_statsd_flushes_total", "StatsD flushes.", ld(&self.flushes));
        c(
            "telemetry_statsd_samples_submitted_total",
            "StatsD samples handed to the pipeline.",
            ld(&self.samples_submitted),
        );
        c("telemetry_statsd_samples_stored_total", "StatsD samples stored.", ld(&self.samples_stored));
        let _ = writeln!(
            o,
            "# HELP telemetry_statsd_samples_dropped_total StatsD lines or samples dropped, by reason.\n# TYPE telemetry_statsd_samples_dropped_total counter"
        );
        let _ = writeln!(
            o,
            "telemetry_statsd_samples_dropped_total{{reason=\"queue_full\"}} {}",
            ld(&self.samples_dropped_queue_full)
        );
        let _ = writeln!(
            o,
            "telemetry_statsd_samples_dropped_total{{reason=\"series_limit\"}} {}",
            ld(&self.dropped_series_limit)
        );
    }
}

enum State {
    Counter { total: f64 },
    Gauge { value: f64 },
    Set { members: HashSet<String> },
    Timer(TimerState),
}

#[derive(Default)]
struct TimerState {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    values: Vec<f64>,
    digest: Option<tdigest::TDigest>,
}

struct Entry {
    state: State,
    updated_ms: i64,
    touched: bool,
    /// A timer's series (aggregates, then percentiles), built at its first flush.
    derived: Vec<Labels>,
}

/// The in-memory aggregation of one flush interval (and the counters and gauges that outlive
/// it). Exposed for tests and embedding; the UDP loop is [`StatsdSource`].
pub struct StatsdAggregator {
    cfg: StatsdConfig,
    series: HashMap<Labels, Entry>,
    timestamped: BatchBuilder,
}

impl std::fmt::Debug for StatsdAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdAggregator").field("series", &self.series.len()).finish_non_exhaustive()
    }
}

fn kind_matches(state: &State, kind: StatsdType) -> bool {
    matches!(
        (state, kind),
        (State::Counter { .. }, StatsdType::Counter)
            | (State::Gauge { .. }, StatsdType::Gauge)
            | (State::Set { .. }, StatsdType::Set)
            | (State::Timer(_), StatsdType::Timer | StatsdType::Histogram | StatsdType::Distribution)
    )
}

fn new_state(kind: StatsdType) -> State {
    match kind {
        StatsdType::Counter => State::Counter { total: 0.0 },
        StatsdType::Gauge => State::Gauge { value: 0.0 },
        StatsdType::Set => State::Set { members: HashSet::new() },
        StatsdType::Timer | StatsdType::Histogram | StatsdType::Distribution => {
            State::Timer(TimerState { min: f64::INFINITY, max: f64::NEG_INFINITY, ..TimerState::default() })
        }
    }
}

/// What [`StatsdAggregator::add_packet`] did with a datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketOutcome {
    /// Lines aggregated.
    pub lines: u64,
    /// Lines that did not decode or had a non-finite value.
    pub bad_lines: u64,
    /// Lines dropped by the series limit.
    pub dropped_series_limit: u64,
}

impl StatsdAggregator {
    /// An empty aggregator.
    pub fn new(cfg: StatsdConfig) -> Self {
        StatsdAggregator { cfg, series: HashMap::new(), timestamped: BatchBuilder::new() }
    }

    /// Series aggregated now.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Adds every line of one datagram, received at `now_ms`.
    pub fn add_packet(&mut self, packet: &[u8], now_ms: i64) -> PacketOutcome {
        let mut out = PacketOutcome::default();
        // One line at a time, so that a bad line does not hide the lines after it.
        for raw in packet.split(|&b| b == b'\n') {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let line = match StatsdDecoder::new(raw).next() {
                Some(Ok(l)) => l,
                _ => {
                    out.bad_lines += 1;
                    continue;
                }
            };
            let Ok(labels) = line.to_labels() else {
                out.bad_lines += 1;
                continue;
            };
            let finite = line.values().all(|v| match v {
                StatsdValue::Number(x) | StatsdValue::GaugeDelta(x) => x.is_finite(),
                StatsdValue::SetMember(_) => true,
            });
            if !finite {
                out.bad_lines += 1;
                continue;
            }
            if line.kind == StatsdType::Gauge
                && let Some(ts) = line.timestamp_ms
            {
                // Timestamped gauge: written as is, at its time.
                for v in line.values() {
                    if let StatsdValue::Number(x) = v {
                        self.timestamped.push(&labels, ts, x);
                    }
                }
                out.lines += 1;
                continue;
            }
            if !self.series.contains_key(&labels) && self.series.len() >= self.cfg.max_series {
                out.dropped_series_limit += 1;
                continue;
            }
            let e = self.series.entry(labels).or_insert_with(|| Entry {
                state: new_state(line.kind),
                updated_ms: now_ms,
                touched: false,
                derived: Vec::new(),
            });
            if !kind_matches(&e.state, line.kind) {
                // The name changed type: start over with the new type.
                e.state = new_state(line.kind);
                e.derived.clear();
            }
            e.updated_ms = now_ms;
            e.touched = true;
            let rate = line.sample_rate.unwrap_or(1.0);
            let max_exact = self.cfg.max_exact_values;
            for v in line.values() {
                match (&mut e.state, v) {
                    (State::Counter { total }, StatsdValue::Number(x)) => *total += x / rate,
                    (State::Gauge { value }, StatsdValue::Number(x)) => *value = x,
                    (State::Gauge { value }, StatsdValue::GaugeDelta(d)) => *value += d,
                    (State::Set { members }, StatsdValue::SetMember(m)) if !members.contains(m) => {
                        members.insert(m.to_string());
                    }
                    (State::Timer(t), StatsdValue::Number(x)) => {
                        t.count += 1.0 / rate;
                        t.sum += x / rate;
                        t.min = t.min.min(x);
                        t.max = t.max.max(x);
                        t.values.push(x);
                        if t.values.len() >= max_exact {
                            let d = t.digest.take().unwrap_or_else(|| tdigest::TDigest::new_with_size(100));
                            t.digest = Some(d.merge_unsorted(std::mem::take(&mut t.values)));
                        }
                    }
                    _ => {}
                }
            }
            out.lines += 1;
        }
        out
    }

    /// Closes the interval at `now_ms`: the samples to write (see the [module docs](self)).
    pub fn flush(&mut self, now_ms: i64) -> Batch {
        // Each series appears once per flush, so the batch is built without a look-up.
        let mut b = std::mem::take(&mut self.timestamped).finish();
        let expire = i64::try_from(self.cfg.expire_after_ms).unwrap_or(i64::MAX);
        let cfg = &self.cfg;
        self.series.retain(|labels, e| {
            let idle = now_ms.saturating_sub(e.updated_ms) > expire;
            let touched = std::mem::replace(&mut e.touched, false);
            match &mut e.state {
                State::Counter { total: v } | State::Gauge { value: v } => {
                    if idle {
                        put(&mut b, labels, now_ms, STALE_NAN);
                        return false;
                    }
                    put(&mut b, labels, now_ms, *v);
                }
                State::Set { members } => {
                    if touched {
                        put(&mut b, labels, now_ms, members.len() as f64);
                        members.clear();
                    }
                }
                State::Timer(t) => {
                    if touched && t.count > 0.0 {
                        if e.derived.is_empty() {
                            e.derived = derived_labels(cfg, labels);
                        }
                        write_timer(&mut b, cfg, &e.derived, now_ms, t);
                    }
                    *t = TimerState { min: f64::INFINITY, max: f64::NEG_INFINITY, ..TimerState::default() };
                }
            }
            !idle
        });
        b
    }
}

fn put(b: &mut Batch, labels: &Labels, t: i64, v: f64) {
    let i = b.add_series(labels.clone());
    b.push(i, t, v);
}

fn renamed(labels: &Labels, suffix: &str, extra: Option<(&str, &str)>) -> Labels {
    let Some(name) = labels.metric_name() else { return labels.clone() };
    let mut bld = labels.to_builder();
    bld.set(telemetry_core::labels::METRIC_NAME, &format!("{name}{suffix}"));
    if let Some((k, v)) = extra {
        bld.set(k, v);
    }
    // The names are valid and the label count grows by at most one: fall back to the
    // original labels only if a label limit is hit.
    bld.build().unwrap_or_else(|_| labels.clone())
}

/// A timer's series: one per aggregate, then one per percentile.
fn derived_labels(cfg: &StatsdConfig, labels: &Labels) -> Vec<Labels> {
    let mut out: Vec<Labels> = cfg.aggregates.iter().map(|a| renamed(labels, a.suffix(), None)).collect();
    for &q in &cfg.percentiles {
        let qs = telemetry_query::api::format_value(q);
        out.push(renamed(labels, "", Some(("quantile", &qs))));
    }
    out
}

fn write_timer(b: &mut Batch, cfg: &StatsdConfig, derived: &[Labels], t: i64, s: &mut TimerState) {
    let (aggs, pcts) = derived.split_at(cfg.aggregates.len().min(derived.len()));
    for (a, l) in cfg.aggregates.iter().zip(aggs) {
        let v = match a {
            StatsdAggregate::Count => s.count,
            StatsdAggregate::Sum => s.sum,
            StatsdAggregate::Min => s.min,
            StatsdAggregate::Max => s.max,
            StatsdAggregate::Avg => s.sum / s.count,
        };
        put(b, l, t, v);
    }
    if cfg.percentiles.is_empty() {
        return;
    }
    let digest = match s.digest.take() {
        Some(d) => Some(d.merge_unsorted(std::mem::take(&mut s.values))),
        None => {
            s.values.sort_by(f64::total_cmp);
            None
        }
    };
    for (&q, l) in cfg.percentiles.iter().zip(pcts) {
        let v = match &digest {
            Some(d) => d.estimate_quantile(q),
            None => {
                let n = s.values.len();
                if n == 0 {
                    continue;
                }
                let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
                s.values[rank - 1]
            }
        };
        put(b, l, t, v);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves once `stop` is `true` (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The running UDP source: a receive loop and a flush loop on the caller's tokio runtime.
#[derive(Debug)]
pub struct StatsdSource {
    addr: SocketAddr,
    stats: Arc<StatsdStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl StatsdSource {
    /// Binds `statsd.listen` of the pipeline's configuration and starts the loops; they stop
    /// when `stop` turns `true` (after a last flush) or the pipeline shuts down. Registers the
    /// source's counters on `/metrics`.
    ///
    /// # Errors
    /// The bind error.
    pub async fn start(p: Arc<Pipeline>, stop: tokio::sync::watch::Receiver<bool>) -> std::io::Result<StatsdSource> {
        let cfg = p.config().statsd.clone();
        let socket = tokio::net::UdpSocket::bind(&cfg.listen).await?;
        let addr = socket.local_addr()?;
        let stats = Arc::new(StatsdStats::default());
        {
            let s = stats.clone();
            p.add_metrics(Arc::new(move |o: &mut String| s.render(o)));
        }
        let agg = Arc::new(Mutex::new(StatsdAggregator::new(cfg.clone())));
        let recv = {
            let (agg, stats, mut stop, p) = (agg.clone(), stats.clone(), stop.clone(), p.clone());
            let mut buf = vec![0u8; cfg.max_packet_bytes];
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = socket.recv_from(&mut buf) => {
                            let Ok((n, _)) = r else { continue };
                            stats.packets.fetch_add(1, Ordering::Relaxed);
                            let o = lock(&agg).add_packet(&buf[..n], now_ms());
                            stats.lines.fetch_add(o.lines, Ordering::Relaxed);
                            stats.bad_lines.fetch_add(o.bad_lines, Ordering::Relaxed);
                            stats.dropped_series_limit.fetch_add(o.dropped_series_limit, Ordering::Relaxed);
                            if p.is_closed() {
                                break;
                            }
                        }
                        _ = stopped(&mut stop) => break,
                    }
                }
            })
        };
        let flush = {
            let (stats, mut stop) = (stats.clone(), stop);
            let period = Duration::from_millis(cfg.flush_interval_ms);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let batch = lock(&agg).flush(now_ms());
                            if submit(&p, batch, &stats, false).await.is_err() {
                                break;
                            }
                        }
                        _ = stopped(&mut stop) => {
                            let batch = lock(&agg).flush(now_ms());
                            let _ = submit(&p, batch, &stats, true).await;
                            break;
                        }
                    }
                }
            })
        };
        Ok(StatsdSource { addr, stats, tasks: vec![recv, flush] })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The source's counters.
    pub fn stats(&self) -> &StatsdStats {
        &self.stats
    }

    /// Waits for both loops to end (after `stop` turned `true`).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Hands a flush to the pipeline: without waiting (drops counted) unless `wait`.
async fn submit(p: &Arc<Pipeline>, batch: Batch, stats: &Arc<StatsdStats>, wait: bool) -> Result<(), IngestError> {
    stats.flushes.fetch_add(1, Ordering::Relaxed);
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    let s = stats.clone();
    let ack: crate::pipeline::AckFn = Box::new(move |r| {
        if let Ok(a) = r {
            s.samples_stored.fetch_add(a.stored, Ordering::Relaxed);
        }
    });
    let r = if wait {
        let p = p.clone();
        tokio::task::spawn_blocking(move || p.submit(batch, ack)).await.unwrap_or(Err(IngestError::Closed))
    } else {
        p.try_submit(batch, ack)
    };
    match r {
        Ok(()) => {
            stats.samples_submitted.fetch_add(n, Ordering::Relaxed);
            Ok(())
        }
        Err(IngestError::QueueFull { .. }) => {
            stats.samples_dropped_queue_full.fetch_add(n, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(b: &Batch) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> =
            b.samples.iter().map(|s| (b.series[s.series as usize].to_string(), s.value)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn aggregates_one_interval() {
        let mut a = StatsdAggregator::new(StatsdConfig::default());
        let o = a.add_packet(b"hits:1|c\nhits:2|c|@0.5\nbad line\nmem:10|g\nmem:+5|g\nu:a|s\nu:b|s\nu:a|s", 1000);
        assert_eq!(o, PacketOutcome { lines: 7, bad_lines: 1, dropped_series_limit: 0 });
        let mut pkt = Vec::new();
        for i in 1..=100 {
            pkt.extend_from_slice(format!("lat:{i}|ms|#env:prod\n").as_bytes());
        }
        a.add_packet(&pkt, 1000);
        let b = a.flush(2000);
        let v = values(&b);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|x| x.1);
        assert_eq!(get("hits"), Some(5.0));
        assert_eq!(get("mem"), Some(15.0));
        assert_eq!(get("u"), Some(2.0));
        assert_eq!(get(r#"lat_count{env="prod"}"#), Some(100.0));
        assert_eq!(get(r#"lat_sum{env="prod"}"#), Some(5050.0));
        assert_eq!(get(r#"lat_min{env="prod"}"#), Some(1.0));
        assert_eq!(get(r#"lat_max{env="prod"}"#), Some(100.0));
        assert_eq!(get(r#"lat{env="prod",quantile="0.5"}"#), Some(50.0));
        assert_eq!(get(r#"lat{env="prod",quantile="0.99"}"#), Some(99.0));
        // Next interval: counters and gauges carry on, sets and timers only with new data.
        a.add_packet(b"hits:1|c", 2500);
        let v = values(&a.flush(3000));
        assert_eq!(v, vec![("hits".to_string(), 6.0), ("mem".to_string(), 15.0)]);
        // Expiry: a stale marker, then nothing.
        let b = a.flush(3000 + 301_000);
        assert!(b.samples.iter().all(|s| telemetry_core::sample::is_stale_nan(s.value)));
        assert_eq!(b.len(), 2);
        assert!(a.flush(3000 + 302_000).is_empty());
    }

    #[test]
    fn digest_past_the_exact_limit() {
        let cfg = StatsdConfig { max_exact_values: 100, ..StatsdConfig::default() };
        let mut a = StatsdAggregator::new(cfg);
        let mut pkt = Vec::new();
        for i in 1..=1000 {
            pkt.extend_from_slice(format!("t:{i}|h\n").as_bytes());
        }
        a.add_packet(&pkt, 0);
        let v = values(&a.flush(1));
        let p50 = v.iter().find(|(n, _)| n == r#"t{quantile="0.5"}"#).unwrap().1;
        assert!((p50 - 500.0).abs() < 15.0, "{p50}");
        assert_eq!(v.iter().find(|(n, _)| n == "t_count").unwrap().1, 1000.0);
    }

    #[test]
    fn series_limit_and_timestamps() {
        let cfg = StatsdConfig { max_series: 1, ..StatsdConfig::default() };
        let mut a = StatsdAggregator::new(cfg);
        let o = a.add_packet(b"a:1|c\nb:1|c\ng:3|g|T1700000000", 0);
        assert_eq!(o.dropped_series_limit, 1);
        let b = a.flush(10);
        let ts: Vec<i64> = b.samples.iter().map(|s| s.timestamp_ms).collect();
        assert!(ts.contains(&1_700_000_000_000));
    }
}
