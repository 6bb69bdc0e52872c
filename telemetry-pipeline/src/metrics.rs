//! Self-monitoring: latency histograms and the `/metrics` text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pipeline::{PipelineStats, Shared};

/// A cumulative histogram with fixed upper bounds (seconds), safe to update from any thread.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these bucket upper bounds (increasing), plus `+Inf`.
    pub fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation, in seconds.
    pub fn observe(&self, seconds: f64) {
        let i = self.bounds.iter().position(|&b| seconds <= b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// An estimate of quantile `q` (upper bound of the bucket holding it), seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(self.bounds.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

pub(crate) fn render(s: &PipelineStats, shared: &Shared) -> String {
    let mut o = String::new();
    let counter = |o: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(&mut o, "telemetry_ingest_batches_total", "Batches processed by the ingest stage.", s.batches);
    counter(&mut o, "telemetry_ingest_samples_received_total", "Samples received.", s.totals.samples);
    counter(&mut o, "telemetry_ingest_samples_stored_total", "Samples stored.", s.totals.stored);
    counter(
        &mut o,
        "telemetry_ingest_samples_acknowledged_total",
        "Samples acknowledged durable.",
        s.samples_acknowledged,
    );
    let _ = writeln!(
        o,
        "# HELP telemetry_ingest_samples_refused_total Samples not stored, by reason.\n# TYPE telemetry_ingest_samples_refused_total counter"
    );
    for (reason, v) in [
        ("cardinality_limit", s.totals.refused_limits),
        ("out_of_order_or_duplicate", s.totals.refused_storage),
        ("invalid_labels", s.totals.refused_invalid),
        ("sampling", s.totals.dropped_sampling),
        ("duplicate_ignored", s.totals.duplicates),
    ] {
        let _ = writeln!(o, "telemetry_ingest_samples_refused_total{{reason=\"{reason}\"}} {v}");
    }
    counter(
        &mut o,
        "telemetry_ingest_batches_refused_queue_full_total",
        "Batches refused with 429.",
        s.batches_refused_full,
    );
    counter(&mut o, "telemetry_ingest_batches_failed_total", "Batches that failed in storage.", s.batches_failed);
    let gauge = |o: &mut String, name: &str, help: &str, v: f64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(&mut o, "telemetry_queue_depth_batches", "Batches waiting in the ingest queue.", s.queue_depth as f64);
    gauge(&mut o, "telemetry_queue_capacity_batches", "Capacity of the ingest queue.", s.queue_capacity as f64);
    gauge(
        &mut o,
        "telemetry_aggregation_queue_depth_batches",
        "Batches waiting in the aggregation queue.",
        s.aggregation_queue_depth as f64,
    );
    let h = &s.storage.head;
    gauge(&mut o, "telemetry_head_series", "Series in the head block.", h.series as f64);
    gauge(&mut o, "telemetry_head_bytes", "Approximate heap bytes of the head block.", h.bytes_in_memory as f64);
    gauge(&mut o, "telemetry_wal_bytes", "Bytes of WAL on disk.", h.wal_bytes as f64);
    gauge(&mut o, "telemetry_blocks", "Blocks on disk (raw and rollup tiers).", s.storage.blocks as f64);
    gauge(&mut o, "telemetry_block_bytes", "Bytes of all blocks on disk.", s.storage.block_bytes as f64);
    gauge(&mut o, "telemetry_block_samples", "Samples and rollup points in blocks.", s.storage.block_samples as f64);
    if let Some(p) = s.adaptive_probability {
        gauge(&mut o, "telemetry_sampling_adaptive_probability", "Keep probability of the adaptive policy.", p);
    }
    counter(&mut o, "telemetry_wal_syncs_total", "WAL syncs done for acknowledgement.", s.wal_syncs);
    counter(
        &mut o,
        "telemetry_aggregation_windows_closed_total",
        "Aggregation windows closed.",
        s.aggregation.windows_closed,
    );
    counter(
        &mut o,
        "telemetry_aggregation_late_samples_total",
        "Samples too late for their window.",
        s.aggregation.late_samples,
    );
    counter(&mut o, "telemetry_anomaly_points_scored_total", "Window values scored.", s.anomaly_points_scored);
    counter(
        &mut o,
        "telemetry_anomaly_points_flagged_total",
        "Window values flagged anomalous.",
        s.anomaly_points_flagged,
    );
    shared.wal_sync_seconds.render(&mut o, "telemetry_wal_sync_seconds", "WAL fdatasync latency.");
    shared.ack_seconds.render(&mut o, "telemetry_ack_seconds", "Time from submission to acknowledgement.");
    shared.query_seconds.render(&mut o, "telemetry_query_seconds", "PromQL query latency.");
    o
}
