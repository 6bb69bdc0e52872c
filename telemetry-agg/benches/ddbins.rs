//! Folding encoded `CompactDdSketch` rollup buckets into one accumulator per window: decode
//! then merge (a fresh sketch per bucket) against `merge_encoded` (no temporary sketch), and
//! `quantile_of_encoded` against decode then quantile. Buckets hold 6 values (one minute of a
//! gauge at 10 s) or 360 values (one hour) of a random-walk gauge in 40..=60, alpha 0.01.
//!
//! `cargo bench -p telemetry-agg --bench ddbins -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use telemetry_agg::CompactDdSketch;

const ALPHA: f64 = 0.01;
/// Encoded buckets folded per iteration (one day of hourly buckets is 24; more keeps the
/// timer overhead negligible).
const BUCKETS: usize = 1_000;

/// `BUCKETS` concatenated encodings of `values` values each, and the offset of each.
fn buckets(values: usize, rng: &mut StdRng) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut bytes = Vec::new();
    let mut spans = Vec::new();
    let mut v: f64 = 50.0;
    for _ in 0..BUCKETS {
        let mut s = CompactDdSketch::new(ALPHA).expect("valid alpha"); // ok: constant alpha
        for _ in 0..values {
            v = (v + rng.gen_range(-2.0..2.0)).clamp(40.0, 60.0);
            s.add(v);
        }
        let start = bytes.len();
        s.encode(&mut bytes);
        spans.push((start, bytes.len()));
    }
    (bytes, spans)
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(42);
    for values in [6, 360] {
        let (bytes, spans) = buckets(values, &mut rng);
        println!(
            "{values} values per bucket: mean {:.1} encoded bytes per bucket",
            bytes.len() as f64 / BUCKETS as f64
        );
        let mut g = c.benchmark_group(format!("ddbins/{values}_values"));
        g.throughput(Throughput::Elements(BUCKETS as u64));
        g.bench_function("decode_then_merge", |b| {
            let mut acc = CompactDdSketch::new(ALPHA).expect("valid alpha"); // ok: constant alpha
            b.iter(|| {
                acc.clear();
                for &(s, e) in &spans {
                    let (d, _) = CompactDdSketch::decode(ALPHA, &bytes[s..e]).expect("valid bytes"); // ok: encoded above
                    acc.merge(&d).expect("same alpha"); // ok: same alpha, small counts
                }
                black_box(acc.count())
            })
        });
        g.bench_function("merge_encoded", |b| {
            let mut acc = CompactDdSketch::new(ALPHA).expect("valid alpha"); // ok: constant alpha
            b.iter(|| {
                acc.clear();
                for &(s, e) in &spans {
                    acc.merge_encoded(black_box(&bytes[s..e])).expect("valid bytes"); // ok: encoded above
                }
                black_box(acc.count())
            })
        });
        g.bench_function("merge_encoded_concatenated", |b| {
            let mut acc = CompactDdSketch::new(ALPHA).expect("valid alpha"); // ok: constant alpha
            b.iter(|| {
                acc.clear();
                let mut at = 0;
                while at < bytes.len() {
                    at += acc.merge_encoded(black_box(&bytes[at..])).expect("valid bytes"); // ok: encoded above
                }
                black_box(acc.count())
            })
        });
        g.bench_function("decode_then_quantile", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for &(s, e) in &spans {
                    let (d, _) = CompactDdSketch::decode(ALPHA, &bytes[s..e]).expect("valid bytes"); // ok: encoded above
                    sum += d.quantile(0.99).unwrap_or(0.0);
                }
                black_box(sum)
            })
        });
        g.bench_function("quantile_of_encoded", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for &(s, e) in &spans {
                    let q = CompactDdSketch::quantile_of_encoded(ALPHA, black_box(&bytes[s..e]), 0.99);
                    sum += q.expect("valid bytes").unwrap_or(0.0); // ok: encoded above
                }
                black_box(sum)
            })
        });
        g.finish();
    }
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
