//! Query read speed over rollup tiers.
//!
//! - `2y-1h`: a 2-year range at 1-hour resolution over 1,000 series (target < 100 ms): the
//!   one-hour blocks of the default tier layout, 17,520 points per series;
//! - `24h-1m`: the last 24 hours at 1-minute resolution over 1,000 series (target < 50 ms):
//!   two one-minute blocks of a day each, 1,440 points per series in the range.
//!
//! Each read goes the way a query does: [`tier::route`] and [`tier::plan`] from the query's
//! hints, then [`tier::rollup_samples_blocks`] over the blocks of the chosen tier, for all
//! 1,000 series (one matcher on the metric name). The blocks are written once with synthetic
//! aggregates (gauge-like sums, min and max with two decimals, integer counter increases).
//! Variants: no function (the bucket average: sum and count are read), `max_over_time` (one
//! aggregate) and `rate` (the counter as a running total).
//!
//! Each case is also read series by series (`…/each`: [`tier::rollup_samples_each`], series
//! decoded on worker threads into a few reused buffers and handed to the consumer in label
//! order), which shows the cost of reading without that of holding the whole result (280 MB
//! for `2y-1h`).
//!
//! Two more cases read `quantile_over_time(0.99, …)` at a 1-hour and a 1-day step (and range)
//! from 1-hour blocks that keep a quantile sketch per bucket ([`tier::rollup_quantiles_blocks`]):
//! one sketch per window, or 24 merged.
//!
//! For the `2y-1h` and `24h-1m` cases it also prints, besides criterion's figures, the median
//! of 7 reads by wall time, by the calling thread's CPU time and by the process's CPU time (all
//! threads: a read of many series is split over up to 4 threads). On a loaded machine the CPU times are the
//! cost; the wall time is what a query waits.
//!
//! Run: `cargo bench -p telemetry-store --bench query -- --warm-up-time 1 --measurement-time 3`
//! (`QUERY_BENCH_DIR=<dir>` keeps the blocks between runs; `QUERY_BENCH_ONLY=<part of a case
//! id>` runs only the cases whose id contains it, e.g. for a profiler).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_agg::CompactDdSketch;
use telemetry_core::{Matcher, SelectHints};
use telemetry_store::block::{Aggr, Block, BlockCompaction, BlockMeta, BlockWriter, open_blocks};
use telemetry_store::tier::{self, TierConfig};

#[path = "common/rollups.rs"]
mod rollups;
use rollups::{DAY, H, M, NOW, SERIES, hour_block_ranges, labels, mix, write_rollup_block};

/// 1-hour rollup blocks over `[a, b)` with a quantile sketch per bucket (six values of a
/// gauge between 20 and 70 each, relative accuracy 0.01) beside the count and sum.
fn write_sketch_block(dir: &Path, a: i64, b: i64) {
    let mut w = BlockWriter::new(dir, H).unwrap();
    let ts: Vec<i64> = (a..b).step_by(H as usize).collect();
    let empty = CompactDdSketch::new(0.01).unwrap();
    for i in 0..SERIES {
        let (mut count, mut sum, mut sketches) = (vec![], vec![], vec![]);
        for &t in &ts {
            let mut s = empty.clone();
            let mut total = 0.0;
            let base = 40.0 + 20.0 * ((t / H) as f64 / 24.0 + i as f64).sin();
            for j in 0..6u64 {
                let v = ((base + (mix((i as u64) << 40 ^ t as u64 ^ j) % 1000) as f64 / 100.0) * 100.0).round() / 100.0;
                s.add(v);
                total += v;
            }
            count.push(6.0);
            sum.push(total);
            sketches.push(s);
        }
        let data: [(Aggr, &[i64], &[f64]); 2] = [(Aggr::Count, &ts, &count), (Aggr::Sum, &ts, &sum)];
        w.add_series_with_sketches(&labels(i), &data, &ts, &sketches).unwrap();
    }
    w.finish(a, b, BlockCompaction::default()).unwrap();
}

/// Nanoseconds of CPU time of `clock` (`CLOCK_THREAD_CPUTIME_ID` or `CLOCK_PROCESS_CPUTIME_ID`):
/// on a loaded 2-core machine wall time overstates cost, CPU time does not.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock ids are the standard ones.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

struct Store {
    _tmp: Option<tempfile::TempDir>,
    blocks: Vec<Arc<Block>>,
    metas: Vec<BlockMeta>,
    /// 1-hour blocks over the same two years with sketches.
    sketch_blocks: Vec<Arc<Block>>,
}

fn build() -> Store {
    // QUERY_BENCH_DIR keeps the blocks between runs (written when the directory is empty).
    let (tmp, dir) = match std::env::var_os("QUERY_BENCH_DIR") {
        Some(d) => (None, Path::new(&d).join("blocks")),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("blocks");
            (Some(tmp), dir)
        }
    };
    let t = std::time::Instant::now();
    if open_blocks(&dir).map(|b| b.is_empty()).unwrap_or(true) {
        // 1-hour tier: 2 years and a bit of blocks of the default range ending at NOW.
        for (a, b) in hour_block_ranges() {
            write_rollup_block(&dir, H, a, b);
        }
        // 1-minute tier: the last two days.
        write_rollup_block(&dir, M, NOW - 2 * DAY, NOW - DAY);
        write_rollup_block(&dir, M, NOW - DAY, NOW);
    }
    let sketch_dir = dir.with_file_name("sketch-blocks");
    if open_blocks(&sketch_dir).map(|b| b.is_empty()).unwrap_or(true) {
        for (a, b) in hour_block_ranges() {
            write_sketch_block(&sketch_dir, a, b);
        }
    }
    let blocks: Vec<Arc<Block>> = open_blocks(&dir).unwrap().into_iter().map(Arc::new).collect();
    let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
    let bytes: u64 = metas.iter().map(|m| m.stats.bytes).sum();
    let sketch_blocks: Vec<Arc<Block>> = open_blocks(&sketch_dir).unwrap().into_iter().map(Arc::new).collect();
    let sketch_bytes: u64 = sketch_blocks.iter().map(|b| b.meta().stats.bytes).sum();
    eprintln!(
        "setup: {} blocks, {:.1} MB; {} blocks with sketches, {:.1} MB; written in {:.1?}",
        metas.len(),
        bytes as f64 / 1e6,
        sketch_blocks.len(),
        sketch_bytes as f64 / 1e6,
        t.elapsed()
    );
    Store { _tmp: tmp, blocks, metas, sketch_blocks }
}

/// A query's read: route, plan, then the chosen tier's blocks in the planned range; with
/// `each`, series by series through [`tier::rollup_samples_each`] instead of collected.
fn read(store: &Store, hints: &SelectHints, matchers: &[Matcher], each: bool) -> (usize, usize) {
    let cfg = TierConfig::default();
    let segs = tier::plan(hints, &cfg, &store.metas, hints.start_ms, hints.end_ms);
    let mut series = 0;
    let mut points = 0;
    for s in segs.iter().filter(|s| s.resolution_ms > 0) {
        let blocks: Vec<&Block> = store
            .blocks
            .iter()
            .filter(|b| {
                b.meta().resolution_ms == s.resolution_ms && b.meta().max_time > s.mint && b.meta().min_time <= s.maxt
            })
            .map(|b| b.as_ref())
            .collect();
        if each {
            let (mut n, mut p) = (0, 0);
            tier::rollup_samples_each(hints.func.as_deref(), &blocks, matchers, s.mint, s.maxt, &mut |_, b| {
                n += 1;
                p += std::hint::black_box(b).len();
                Ok(())
            })
            .unwrap();
            series = series.max(n);
            points += p;
        } else {
            let out = tier::rollup_samples_blocks(hints.func.as_deref(), &blocks, matchers, s.mint, s.maxt).unwrap();
            series = series.max(out.len());
            points += out.iter().map(|(_, b)| b.len()).sum::<usize>();
        }
    }
    (series, points)
}

fn bench(c: &mut Criterion) {
    let store = build();
    let matchers = [Matcher::equal("__name__", "node_cpu_usage")];
    let mut g = c.benchmark_group("query");
    g.sample_size(10);
    let cases = [("2y-1h", NOW - 730 * DAY, H, 17_520usize), ("24h-1m", NOW - DAY, M, 1_440usize)];
    for (name, start, step, per_series) in cases {
        for func in [None, Some("max_over_time"), Some("rate")] {
            let hints = SelectHints {
                start_ms: start,
                end_ms: NOW - 1,
                step_ms: step,
                range_ms: if func.is_some() { step } else { 0 },
                func: func.map(str::to_string),
                ..Default::default()
            };
            let routed = tier::route(&hints, &TierConfig::default(), &store.metas);
            assert_eq!(routed, step, "{name} routed to {routed}");
            for each in [false, true] {
                let id = format!("{name}/{}{}", func.unwrap_or("avg"), if each { "/each" } else { "" });
                if std::env::var("QUERY_BENCH_ONLY").is_ok_and(|only| !id.contains(&only)) {
                    continue;
                }
                let (series, points) = read(&store, &hints, &matchers, each);
                assert_eq!(series, SERIES);
                assert!(points >= SERIES * (per_series - 1), "{name}: {points} points");
                let (mut wall, mut cpu, mut proc) = (vec![], vec![], vec![]);
                for _ in 0..7 {
                    let w0 = std::time::Instant::now();
                    let (c0, p0) = (cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID), cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID));
                    std::hint::black_box(read(&store, &hints, &matchers, each));
                    wall.push(w0.elapsed().as_secs_f64() * 1e3);
                    cpu.push((cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - c0) as f64 / 1e6);
                    proc.push((cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - p0) as f64 / 1e6);
                }
                for v in [&mut wall, &mut cpu, &mut proc] {
                    v.sort_by(f64::total_cmp);
                }
                eprintln!(
                    "{id}: median of 7: {:.1} ms wall, {:.1} ms calling-thread CPU, {:.1} ms process CPU ({points} points)",
                    wall[3], cpu[3], proc[3]
                );
                g.bench_function(id, |b| b.iter(|| read(&store, &hints, &matchers, each)));
            }
        }
    }
    // quantile_over_time(0.99, …) over two years from the sketches: windows of one hour (one
    // sketch each) and of one day (24 merged).
    for (name, step) in [("2y-1h/quantile_over_time", H), ("2y-1d/quantile_over_time", DAY)] {
        if std::env::var("QUERY_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
            continue;
        }
        let hints = SelectHints {
            start_ms: NOW - 730 * DAY,
            end_ms: NOW - 1 - (NOW - 1) % step,
            step_ms: step,
            range_ms: step,
            func: Some("quantile_over_time".into()),
            quantile: Some(0.99),
            ..Default::default()
        };
        let blocks: Vec<&Block> = store.sketch_blocks.iter().map(|b| b.as_ref()).collect();
        let read = || tier::rollup_quantiles_blocks(&hints, &blocks, &matchers, hints.start_ms, NOW - 1).unwrap();
        let out = read();
        assert_eq!(out.len(), SERIES);
        assert!(out[0].1.len() as i64 >= 730 * DAY / step - 1, "{name}: {} points", out[0].1.len());
        g.bench_function(name, |b| b.iter(read));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
