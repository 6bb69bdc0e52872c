//! PromQL range queries over two years of a [`Db`]'s 1-hour rollup tier, end to end: parse,
//! hints, the `Db`'s tier routing and read, and evaluation.
//!
//! The data is `telemetry-store`'s query bench's (its `benches/common/rollups.rs`): 1,000
//! series in the 1-hour blocks of the default tier layout over two years and a bit, written
//! once into a temporary directory that a [`Db`] then opens. Each query covers the two
//! years ending at the last full hour at a 2-hour step: 8,760 steps, under the 11,000 points
//! per series a range query may return (Prometheus's limit); the `[2h]` windows read the
//! 17,520 hourly points of every series.
//!
//! - `max_over_time`: `max_over_time(node_cpu_usage[2h])`, every series (8.76 M output points);
//! - `sum-rate`: `sum by (instance) (rate(node_cpu_usage[2h]))`, 100 output series;
//! - `selector`: `node_cpu_usage`, the bucket averages at each step.
//!
//! Run: `cargo bench -p telemetry-query --bench db -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_query::{Engine, Value};
use telemetry_store::db::{Db, DbOptions};

#[path = "../../telemetry-store/benches/common/rollups.rs"]
mod rollups;
use rollups::{DAY, H, NOW, SERIES, hour_block_ranges, write_rollup_block};

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    for (a, b) in hour_block_ranges() {
        write_rollup_block(&tmp.path().join("blocks"), H, a, b);
    }
    let (db, _) = Db::open(tmp.path(), DbOptions::default()).unwrap();
    eprintln!("setup: {} blocks written and opened in {:.1?}", db.blocks().len(), t.elapsed());
    let engine = Engine::default();
    let (start, end, step) = (NOW - 730 * DAY, NOW - H, 2 * H);
    let mut g = c.benchmark_group("promql-db-2y");
    g.sample_size(10);
    let cases = [
        ("max_over_time", "max_over_time(node_cpu_usage[2h])", SERIES),
        ("sum-rate", "sum by (instance) (rate(node_cpu_usage[2h]))", SERIES / 10),
        ("selector", "node_cpu_usage", SERIES),
    ];
    for (name, query, want_series) in cases {
        let run = || engine.range_query(&db, query, start, end, step).unwrap();
        let r = run();
        let Value::Matrix(m) = &r.value else { panic!("{name}: not a matrix") };
        assert_eq!(m.len(), want_series, "{name}: series");
        let points: usize = m.iter().map(|s| s.samples.len()).sum();
        assert!(points >= want_series * 8_759, "{name}: {points} points");
        eprintln!("{name}: {} series, {points} points, {} samples loaded", m.len(), r.samples_loaded);
        g.bench_function(name, |b| b.iter(|| std::hint::black_box(run())));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
