//! Ingest throughput of the windowed aggregator on 10,000 keys, with count/sum/min/max only
//! and with a t-digest and a DDSketch attached; prints memory per key for both.
//!
//! `cargo bench -p telemetry-agg --bench windows -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_agg::{AggregateSet, Aggregator, AggregatorConfig, DdSketchConfig, SeriesRef, TDigestConfig};
use telemetry_core::{Labels, Sample};

const KEYS: usize = 10_000;
/// Seconds of data per iteration: one sample per key per second.
const SECONDS_PER_ITER: i64 = 10;

fn basic() -> AggregateSet {
    AggregateSet { count: true, sum: true, min: true, max: true, mean: false, ..AggregateSet::default() }
}

fn sketches() -> AggregateSet {
    AggregateSet { tdigest: Some(TDigestConfig::default()), ddsketch: Some(DdSketchConfig::default()), ..basic() }
}

fn setup(set: AggregateSet) -> (Aggregator, Vec<SeriesRef>) {
    let cfg = AggregatorConfig { aggregates: set, max_keys: KEYS * 2, ..AggregatorConfig::default() };
    let mut agg = Aggregator::new(cfg).expect("valid config"); // ok: constant config
    let refs = (0..KEYS)
        .map(|i| {
            let l = Labels::from_pairs([
                ("__name__", "http_request_duration_ms".to_string()),
                ("instance", format!("host-{}", i % 100)),
                ("path", format!("/api/{}", i / 100)),
            ])
            .expect("valid labels"); // ok: constant labels
            agg.series_ref(&l).expect("under cap") // ok: cap is 2 × KEYS
        })
        .collect();
    (agg, refs)
}

/// Heavy-tailed values without an RNG in the loop: a table of log-normal-like values.
fn value_table() -> Vec<f64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (3.0 + 1.5 * (u * 6.0 - 3.0)).exp()
        })
        .collect()
}

/// Pushes `seconds` of data at `hz` samples per second per key, in time order.
fn run_hz(agg: &mut Aggregator, refs: &[SeriesRef], values: &[f64], t0: &mut i64, seconds: i64, hz: i64) {
    let step = 1000 / hz;
    for k in 0..seconds * hz {
        let ts = *t0 + k * step;
        for (i, &r) in refs.iter().enumerate() {
            let v = values[(i + k as usize) & 4095];
            let _ = black_box(agg.push(r, Sample::new(ts, v), 1.0));
        }
    }
    *t0 += seconds * 1000;
    black_box(agg.drain_records());
}

fn run(agg: &mut Aggregator, refs: &[SeriesRef], values: &[f64], t0: &mut i64) {
    run_hz(agg, refs, values, t0, SECONDS_PER_ITER, 1);
}

fn memory_per_key(set: AggregateSet, label: &str, hz: i64) {
    let (mut agg, refs) = setup(set);
    let values = value_table();
    // 59 s of data at `hz`: one open window holding every key.
    let mut t0 = 0;
    run_hz(&mut agg, &refs, &values, &mut t0, 59, hz);
    // Feed buffered values to the sketches, as at window close.
    agg.shrink_open();
    let label = format!("{label}, {hz} Hz per key");
    let bytes = agg.memory_bytes();
    let window = agg.window_memory_bytes();
    println!(
        "memory per key ({label}): {:.0} bytes in the open window + {:.0} bytes of series/key tables \
         ({} keys, {} open window, {} bytes total)",
        window as f64 / KEYS as f64,
        (bytes - window) as f64 / KEYS as f64,
        agg.keys(),
        agg.open_windows(),
        bytes
    );
}

fn bench(c: &mut Criterion) {
    memory_per_key(basic(), "count/sum/min/max", 1);
    memory_per_key(sketches(), "count/sum/min/max + t-digest + DDSketch", 1);
    memory_per_key(sketches(), "count/sum/min/max + t-digest + DDSketch", 10);
    let values = value_table();
    let mut g = c.benchmark_group("ingest_10k_keys");
    g.throughput(Throughput::Elements(KEYS as u64 * SECONDS_PER_ITER as u64));
    for (name, set) in [("count_sum_min_max", basic()), ("with_tdigest_ddsketch", sketches())] {
        let (mut agg, refs) = setup(set);
        let mut t0 = 0i64;
        g.bench_function(name, |b| b.iter(|| run(&mut agg, &refs, &values, &mut t0)));
    }
    // Ten samples per key per second: 600 per key and window, so the per-window cost of the
    // sketches (allocation, centring, quantile reads at close) is spread over more samples.
    let (mut agg, refs) = setup(sketches());
    let mut t0 = 0i64;
    g.bench_function("with_tdigest_ddsketch_10hz", |b| b.iter(|| run_hz(&mut agg, &refs, &values, &mut t0, 1, 10)));
    g.finish();
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
