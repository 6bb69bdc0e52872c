//! Times one range query on the capture repeatedly (profiling aid).
use std::io::Read;

use telemetry_core::MemStorage;
use telemetry_core::format::text::{Entry, Flavor, TextDecoder};

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");
    let q = std::env::args().nth(1).unwrap_or_else(|| "sum by (mode) (rate(node_cpu_seconds_total[1m]))".into());
    let Ok(file) = std::fs::File::open(path) else { return };
    let mut text = Vec::new();
    if flate2::read::GzDecoder::new(file).read_to_end(&mut text).is_err() {
        return;
    }
    let db = MemStorage::new();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for e in TextDecoder::new(&text, Flavor::OpenMetrics) {
        let Ok(Entry::Sample(s)) = e else { continue };
        let (Some(t), Ok(l)) = (s.timestamp_ms, s.to_labels()) else { continue };
        if !s.name.starts_with("node_cpu") && !s.name.starts_with("prometheus_http_request_duration") {
            continue;
        }
        lo = lo.min(t);
        hi = hi.max(t);
        db.append(&l, t, s.value);
    }
    let engine = telemetry_query::Engine::default();
    let t0 = std::time::Instant::now();
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut loaded = 0;
    for _ in 0..n {
        loaded = engine.range_query(&db, &q, lo + 60_000, hi, 15_000).map(|r| r.samples_loaded).unwrap_or(0);
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    println!("{:.3} ms/query, {loaded} samples loaded, {:.1} M samples/s", per * 1e3, loaded as f64 / per / 1e6);
}
