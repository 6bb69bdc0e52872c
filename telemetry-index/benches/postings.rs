//! Postings set operations: sorted `Vec<u32>` with galloping intersection (this crate)
//! against `roaring` bitmaps, at the densities the index sees.
//!
//! `cargo bench -p telemetry-index --bench postings -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use roaring::RoaringBitmap;
use telemetry_index::Postings;

/// `n` references spread evenly over `0..universe` with a deterministic jitter.
fn spread(n: u32, universe: u32, seed: u32) -> Vec<u32> {
    let step = (universe / n).max(1);
    let mut v: Vec<u32> = (0..n).map(|i| i * step + (i.wrapping_mul(2654435761).wrapping_add(seed) % step)).collect();
    v.dedup();
    v
}

fn bench(c: &mut Criterion) {
    const U: u32 = 1_000_000;
    // (label, small, large): selective ∩ broad, similar sizes, dense ∩ dense.
    let cases = [
        ("512_x_470k", spread(512, U, 1), spread(470_000, U, 2)),
        ("2k_x_16k", spread(2_000, U, 3), spread(16_000, U, 4)),
        ("100k_x_100k", spread(100_000, U, 5), spread(100_000, U, 6)),
        ("470k_x_470k", spread(470_000, U, 7), spread(470_000, U, 8)),
    ];
    let mut g = c.benchmark_group("intersect");
    for (name, a, b) in &cases {
        let (pa, pb) = (Postings::from_sorted(a.clone()).unwrap(), Postings::from_sorted(b.clone()).unwrap());
        let (ra, rb) = (
            RoaringBitmap::from_sorted_iter(a.iter().copied()).unwrap(),
            RoaringBitmap::from_sorted_iter(b.iter().copied()).unwrap(),
        );
        assert_eq!(pa.intersect(&pb).len() as u64, (&ra & &rb).len());
        g.bench_function(BenchmarkId::new("vec_gallop", name), |bch| bch.iter(|| black_box(pa.intersect(&pb))));
        g.bench_function(BenchmarkId::new("roaring", name), |bch| bch.iter(|| black_box(&ra & &rb)));
        // Roaring as the index would use it: build from the stored lists, intersect, emit refs.
        g.bench_function(BenchmarkId::new("roaring_from_vec_to_vec", name), |bch| {
            bch.iter(|| {
                let ra = RoaringBitmap::from_sorted_iter(a.iter().copied()).unwrap();
                let rb = RoaringBitmap::from_sorted_iter(b.iter().copied()).unwrap();
                black_box((&ra & &rb).iter().collect::<Vec<u32>>())
            })
        });
    }
    g.finish();

    // Union of many disjoint lists (a regex over 111 instance values, 940 series each).
    let lists: Vec<Vec<u32>> = (0..111u32)
        .map(|i| (0..940u32).map(|j| (i * 9 + (j * 1000)) % U + i).collect::<Vec<_>>())
        .map(|mut v: Vec<u32>| {
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let slices: Vec<&[u32]> = lists.iter().map(|v| v.as_slice()).collect();
    let bitmaps: Vec<RoaringBitmap> =
        lists.iter().map(|v| RoaringBitmap::from_sorted_iter(v.iter().copied()).unwrap()).collect();
    let mut g = c.benchmark_group("union_111_lists");
    g.bench_function("vec_bitmap_or_sort", |b| b.iter(|| black_box(Postings::union_all(&slices))));
    g.bench_function("roaring", |b| {
        b.iter(|| {
            let mut acc = RoaringBitmap::new();
            for r in &bitmaps {
                acc |= r;
            }
            black_box(acc)
        })
    });
    g.finish();

    // Memory: bytes per reference.
    for (name, a, b) in &cases {
        for (which, v) in [("small", a), ("large", b)] {
            let r = RoaringBitmap::from_sorted_iter(v.iter().copied()).unwrap();
            println!(
                "{name} {which}: {} refs, vec {} bytes, roaring {} bytes",
                v.len(),
                v.len() * 4,
                r.serialized_size()
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
