//! Query benchmarks on the real capture (`../shared/data/capture/prometheus-node-1s.om.gz`,
//! one hour of Prometheus and node_exporter scraped every second) loaded into `MemStorage`.
//!
//! ```text
//! cargo bench -p telemetry-query --bench query -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each benchmark's throughput is the samples the query loads from storage; the setup also
//! prints the samples its range functions read over all windows (`count_over_time`), because
//! overlapping windows read most samples more than once. Skips itself (prints a note) when the
//! capture is absent.

// criterion's macros expand to undocumented public items.
#![allow(missing_docs)]

use std::io::Read;
use std::sync::OnceLock;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_core::MemStorage;
use telemetry_core::format::text::{Entry, Flavor, TextDecoder};
use telemetry_query::{Engine, Value};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");

struct Loaded {
    db: MemStorage,
    min_t: i64,
    max_t: i64,
}

fn load() -> Option<&'static Loaded> {
    static DB: OnceLock<Option<Loaded>> = OnceLock::new();
    DB.get_or_init(|| {
        let file = std::fs::File::open(CAPTURE).ok()?;
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(file).read_to_end(&mut text).ok()?;
        let db = MemStorage::new();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut cur: Option<(String, telemetry_core::Labels)> = None;
        let mut batch: Vec<(i64, f64)> = Vec::new();
        let started = std::time::Instant::now();
        for entry in TextDecoder::new(&text, Flavor::OpenMetrics) {
            let Ok(Entry::Sample(s)) = entry else { continue };
            let Some(t) = s.timestamp_ms else { continue };
            min_t = min_t.min(t);
            max_t = max_t.max(t);
            let key = format!("{}{}", s.name, s.labels.raw());
            if cur.as_ref().is_none_or(|(k, _)| *k != key) {
                if let Some((_, l)) = &cur {
                    db.append_many(l, batch.drain(..));
                }
                let Ok(labels) = s.to_labels() else { continue };
                cur = Some((key, labels));
            }
            batch.push((t, s.value));
        }
        if let Some((_, l)) = &cur {
            db.append_many(l, batch.drain(..));
        }
        eprintln!(
            "loaded {} series, {} samples in {:.1} s; time range {}..{} ms",
            db.series_count(),
            db.sample_count(),
            started.elapsed().as_secs_f64(),
            min_t,
            max_t
        );
        Some(Loaded { db, min_t, max_t })
    })
    .as_ref()
}

fn window_samples(engine: &Engine, l: &Loaded, selector: &str, start: i64) -> f64 {
    let q = format!("sum(count_over_time({selector}[1m]))");
    match engine.range_query(&l.db, &q, start, l.max_t, 15_000).map(|r| r.value) {
        Ok(Value::Matrix(m)) => m.iter().flat_map(|s| s.samples.iter().map(|p| p.value)).sum(),
        _ => 0.0,
    }
}

fn bench(c: &mut Criterion) {
    let Some(l) = load() else {
        eprintln!("capture not found at {CAPTURE}; skipping the query benchmarks");
        return;
    };
    let engine = Engine::default();
    let start = l.min_t + 60_000;
    let range_queries = [
        ("sum_rate_cpu", "sum by (mode) (rate(node_cpu_seconds_total[1m]))", "node_cpu_seconds_total"),
        (
            "histogram_quantile_http",
            "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))",
            "prometheus_http_request_duration_seconds_bucket",
        ),
    ];
    let mut g = c.benchmark_group("promql");
    for (name, q, sel) in range_queries {
        let res = engine.range_query(&l.db, q, start, l.max_t, 15_000).expect("query runs"); // ok: bench setup
        let steps = (l.max_t - start) / 15_000 + 1;
        eprintln!(
            "{name}: {} samples loaded, {} samples over all windows, {} steps, {} result series",
            res.samples_loaded,
            window_samples(&engine, l, sel, start),
            steps,
            match &res.value {
                Value::Matrix(m) => m.len(),
                _ => 0,
            }
        );
        g.throughput(Throughput::Elements(res.samples_loaded));
        g.bench_function(name, |b| b.iter(|| engine.range_query(&l.db, q, start, l.max_t, 15_000)));
    }
    let q = "topk(5, node_network_receive_bytes_total)";
    let res = engine.instant_query(&l.db, q, l.max_t).expect("query runs"); // ok: bench setup
    eprintln!("topk_instant: {} samples loaded", res.samples_loaded);
    g.throughput(Throughput::Elements(res.samples_loaded));
    g.bench_function("topk_instant", |b| b.iter(|| engine.instant_query(&l.db, q, l.max_t)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
