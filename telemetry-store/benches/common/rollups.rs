//! Synthetic rollup blocks for the query benchmarks: 1,000 gauge-like series
//! (`node_cpu_usage{instance, cpu}`) with count, sum, min, max and counter increase per
//! bucket. Shared by `telemetry-store`'s `query` bench and `telemetry-query`'s `db` bench
//! (included with `#[path]`), so that both read the same data.

use std::path::Path;

use telemetry_core::Labels;
use telemetry_store::block::{Aggr, BlockCompaction, BlockWriter};
use telemetry_store::tier::TierConfig;

pub const M: i64 = 60_000;
pub const H: i64 = 60 * M;
pub const DAY: i64 = 24 * H;
pub const SERIES: usize = 1_000;
/// "Now": a multiple of 7 days since the epoch.
pub const NOW: i64 = 2_920 * 7 * DAY;

/// The labels of series `i`: 100 instances of 10 CPUs.
pub fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "node_cpu_usage"),
        ("instance", &format!("host-{:03}:9100", i / 10)),
        ("cpu", &format!("{}", i % 10)),
    ])
    .unwrap()
}

/// A 64-bit mixer (splitmix64's finaliser) for deterministic pseudo-random values.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One rollup block of resolution `res` over `[a, b)` with synthetic aggregates.
pub fn write_rollup_block(dir: &Path, res: i64, a: i64, b: i64) {
    let per_bucket = (res / 10_000) as f64; // 10 s scrapes
    let mut w = BlockWriter::new(dir, res).unwrap();
    let ts: Vec<i64> = (a..b).step_by(res as usize).collect();
    let (mut count, mut sum, mut min, mut max, mut counter) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..SERIES {
        count.clear();
        sum.clear();
        min.clear();
        max.clear();
        counter.clear();
        for &t in &ts {
            let h = mix((i as u64) << 40 ^ t as u64);
            let base = 40.0 + 20.0 * ((t / res) as f64 / 24.0 + i as f64).sin();
            let spread = (h % 1000) as f64 / 100.0;
            let lo = (base * 100.0).round() / 100.0;
            count.push(per_bucket);
            sum.push(((lo + spread / 2.0) * per_bucket * 100.0).round() / 100.0);
            min.push(lo);
            max.push(lo + spread);
            counter.push((h % 5_000) as f64);
        }
        w.add_series(
            &labels(i),
            &[
                (Aggr::Count, &ts, &count),
                (Aggr::Sum, &ts, &sum),
                (Aggr::Min, &ts, &min),
                (Aggr::Max, &ts, &max),
                (Aggr::Counter, &ts, &counter),
            ],
        )
        .unwrap();
    }
    w.finish(a, b, BlockCompaction::default()).unwrap();
}

/// The 1-hour tier's block range: the default configuration's (`QUERY_BENCH_HOUR_BLOCK_DAYS`
/// overrides it, to compare layouts).
fn hour_block_range() -> i64 {
    std::env::var("QUERY_BENCH_HOUR_BLOCK_DAYS")
        .ok()
        .and_then(|d| d.parse::<i64>().ok())
        .map(|d| d * DAY)
        .unwrap_or(TierConfig::default().tiers[1].block_range_ms)
}

/// The `[a, b)` ranges of the 1-hour tier's blocks (of [`hour_block_range`]) over two years
/// and a bit, ending at [`NOW`].
pub fn hour_block_ranges() -> Vec<(i64, i64)> {
    let range = hour_block_range();
    let first = NOW - (730 * DAY + range - 1) / range * range;
    (first..NOW).step_by(range as usize).map(|a| (a, a + range)).collect()
}
