//! Tiers end to end: synthetic counters at 10 s resolution, raw blocks written as the head
//! would write them (2-hour blocks, one after the other), `tier::maintain` driven with a fake
//! clock, then: raw data older than its retention is gone, every rollup point equals the
//! value computed directly from the raw samples (count, sum, min, max, counter increase,
//! exactly: the values are integers, so every sum is exact), and queries over 1 h, 1 d and
//! 30 d are routed to the expected tier.
//!
//! Raw blocks are written directly with `BlockWriter` (the head is not involved: 259M samples
//! through the WAL would test the head, not the tiers). The full-size run (30 days, 1,000
//! series, 259M samples) is `#[ignore]`d; run it in release:
//! `cargo test -p telemetry-store --release --test tiers -- --ignored`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use telemetry_agg::CompactDdSketch;
use telemetry_core::{Labels, Matcher, STALE_NAN, SampleBatch, SelectHints, is_stale_nan};
use telemetry_store::block::{Aggr, Block, BlockCompaction, BlockMeta, BlockWriter, open_blocks};
use telemetry_store::rollup::BucketSketches;
use telemetry_store::tier::{self, Segment, TierConfig};

const S: i64 = 1_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const DAY: i64 = 24 * H;
/// The start: a multiple of 28 days since the epoch (2025-06-05), so that the default 1-hour
/// blocks (28 days) and the 7-day ones of the smaller tests align with it.
const T0: i64 = 723 * 28 * DAY;
const STEP: i64 = 10 * S;
const RAW_BLOCK: i64 = 2 * H;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "synthetic_requests_total"), ("series", &format!("{i:04}"))]).unwrap()
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One series' generator: samples every 10 s from a per-series phase (series 0 sits exactly
/// on every boundary), integer counter values with occasional resets, and an occasional
/// stale marker.
#[derive(Clone)]
struct Gen {
    series: usize,
    k: u64,
    t: i64,
    value: f64,
}

impl Gen {
    fn new(series: usize) -> Gen {
        let phase = if series == 0 { 0 } else { (mix(series as u64) % STEP as u64) as i64 };
        Gen { series, k: 0, t: T0 + phase, value: 0.0 }
    }

    /// Samples with timestamps below `end`.
    fn until(&mut self, end: i64, ts: &mut Vec<i64>, vs: &mut Vec<f64>) {
        while self.t < end {
            let h = mix((self.series as u64) << 40 ^ self.k);
            let v = if h % 9_973 == 1 {
                STALE_NAN
            } else {
                let inc = (h >> 16) % 20;
                self.value = if h % 7_919 == 3 { inc as f64 } else { self.value + inc as f64 };
                self.value
            };
            ts.push(self.t);
            vs.push(v);
            self.k += 1;
            self.t += STEP;
        }
    }
}

fn write_raw_block(blocks_dir: &Path, gens: &mut [Gen], a: i64, b: i64) {
    let mut w = BlockWriter::new(blocks_dir, 0).unwrap();
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for g in gens.iter_mut() {
        ts.clear();
        vs.clear();
        g.until(b, &mut ts, &mut vs);
        w.add_series(&labels(g.series), &[(Aggr::Raw, &ts, &vs)]).unwrap();
    }
    w.finish(a, b, BlockCompaction::default()).unwrap();
}

fn open(blocks_dir: &Path) -> Vec<Arc<Block>> {
    open_blocks(blocks_dir).unwrap().into_iter().map(Arc::new).collect()
}

/// Expected rollups at `r`, computed directly from raw samples: bucket `(e − r, e]`; the
/// counter increase from the last sample before the bucket (written independently of the
/// crate's rollup code).
fn expected(ts: &[i64], vs: &[f64], r: i64) -> BTreeMap<i64, [f64; 5]> {
    let mut out: BTreeMap<i64, [f64; 5]> = BTreeMap::new();
    let mut prev: Option<f64> = None;
    for (&t, &v) in ts.iter().zip(vs) {
        if is_stale_nan(v) {
            continue;
        }
        let e = (t + r - 1).div_euclid(r) * r;
        let agg = out.entry(e).or_insert([0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 0.0]);
        agg[0] += 1.0;
        agg[1] += v;
        agg[2] = agg[2].min(v);
        agg[3] = agg[3].max(v);
        if let Some(p) = prev {
            agg[4] += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    out
}

/// The five aggregates of one series read from `blocks`, by timestamp.
fn read_back(blocks: &[&Arc<Block>], series: usize) -> BTreeMap<i64, [f64; 5]> {
    let m = [Matcher::equal("series", format!("{series:04}"))];
    let mut out: BTreeMap<i64, [f64; 5]> = BTreeMap::new();
    for b in blocks {
        for (k, aggr) in [Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter].into_iter().enumerate() {
            for (_, batch) in b.select(&m, i64::MIN, i64::MAX, aggr).unwrap() {
                for (t, v) in batch.timestamps.iter().zip(&batch.values) {
                    out.entry(*t).or_insert([f64::NAN; 5])[k] = *v;
                }
            }
        }
    }
    out
}

/// Relative accuracy of the sketches the tier tests keep.
const ALPHA: f64 = 0.01;

/// The bucket sketches of one series read from `blocks`.
fn read_sketches_back(blocks: &[&Arc<Block>], series: usize) -> BucketSketches {
    let mut out = BucketSketches::default();
    for b in blocks {
        let Some(r) = b.find_series(&labels(series)).unwrap() else { continue };
        let (_, crefs) = b.series(r).unwrap();
        b.read_sketches(&crefs, i64::MIN, i64::MAX, &mut out.timestamps, &mut out.sketches).unwrap();
    }
    out
}

/// The finite raw values of each bucket `(e − r, e]`, by bucket end.
fn bucket_values(ts: &[i64], vs: &[f64], r: i64) -> BTreeMap<i64, Vec<f64>> {
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (&t, &v) in ts.iter().zip(vs) {
        if !is_stale_nan(v) {
            let vals = out.entry((t + r - 1).div_euclid(r) * r).or_default();
            if v.is_finite() {
                vals.push(v);
            }
        }
    }
    out
}

/// The sketch's quantiles against the exact order statistic of rank `⌊q · (n − 1)⌋` of
/// `values`: within `ALPHA` of it (values of magnitude below 1e-9 answer 0).
fn check_quantiles(sketch: &CompactDdSketch, values: &mut [f64], what: &str) {
    values.sort_by(f64::total_cmp);
    assert_eq!(sketch.count(), values.len() as u64, "{what}: count");
    for q in [0.0, 0.25, 0.5, 0.9, 0.99, 1.0] {
        let Some(est) = sketch.quantile(q) else {
            assert!(values.is_empty(), "{what}: no quantile {q}");
            continue;
        };
        let exact = values[(q * (values.len() - 1) as f64).floor() as usize];
        let ok =
            if exact.abs() < 1e-9 { est == 0.0 } else { (est - exact).abs() <= ALPHA * exact.abs() * (1.0 + 1e-12) };
        assert!(ok, "{what}: quantile {q} estimated {est}, exact {exact}");
    }
}

fn hints(start: i64, end: i64, step: i64, range: i64, func: Option<&str>) -> SelectHints {
    SelectHints {
        start_ms: start,
        end_ms: end,
        step_ms: step,
        range_ms: range,
        func: func.map(str::to_string),
        ..Default::default()
    }
}

fn run(n_series: usize, days: i64) {
    let tmp = tempfile::tempdir().unwrap();
    let blocks_dir = tmp.path().join("blocks");
    let cfg = TierConfig { sketch_alpha: Some(ALPHA), ..TierConfig::default() };
    let hb = cfg.tiers[1].block_range_ms; // 28 days
    let hour_blocks = days * DAY / hb;
    let mut gens: Vec<Gen> = (0..n_series).map(Gen::new).collect();
    let end = T0 + days * DAY;
    let mut written = 0;
    let mut a = T0;
    while a < end {
        write_raw_block(&blocks_dir, &mut gens, a, a + RAW_BLOCK);
        a += RAW_BLOCK;
        // Once a fake day, maintenance runs an hour after the last block's end (the head
        // flushes a block when it spans 1.5 block ranges).
        if (a - T0) % DAY == 0 {
            let report = tier::maintain(&blocks_dir, &cfg, &open(&blocks_dir), a + H).unwrap();
            written += report.written.len();
        }
    }
    let now = end + H;
    // Idempotent: nothing more to do.
    let again = tier::maintain(&blocks_dir, &cfg, &open(&blocks_dir), now).unwrap();
    assert!(again.written.is_empty() && again.deleted.is_empty(), "second run did something: {again:?}");

    let blocks = open(&blocks_dir);
    let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
    let of = |res: i64| blocks.iter().filter(|b| b.meta().resolution_ms == res).collect::<Vec<_>>();
    let (raw, minute, hour) = (of(0), of(M), of(H));

    // Raw retention: nothing at or before now - 15 d, everything after it still there.
    let raw_horizon = now - cfg.raw_retention_ms;
    assert!(raw.iter().all(|b| b.meta().max_time > raw_horizon), "raw block past retention survived");
    let first_kept = raw.iter().map(|b| b.meta().min_time).min().unwrap();
    assert_eq!(first_kept, (raw_horizon - T0).div_euclid(RAW_BLOCK) * RAW_BLOCK + T0);
    assert_eq!(raw.len() as i64, (end - first_kept) / RAW_BLOCK);
    // Every complete day has its 1-minute block, every complete 28 days their 1-hour block.
    assert_eq!(minute.len() as i64, days);
    assert_eq!(hour.len() as i64, hour_blocks);
    assert_eq!(written as i64, days + hour_blocks);
    for (i, b) in minute.iter().enumerate() {
        assert_eq!((b.meta().min_time, b.meta().max_time), (T0 + i as i64 * DAY, T0 + (i as i64 + 1) * DAY));
    }

    // Every rollup point equals the direct computation from raw.
    let (mut checked, mut sketches_checked) = (0u64, 0u64);
    for s in 0..n_series {
        let mut g = Gen::new(s);
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        g.until(end, &mut ts, &mut vs);
        for (res, tier_blocks, covered_to) in [(M, &minute, T0 + days * DAY), (H, &hour, T0 + hour_blocks * hb)] {
            let want: BTreeMap<i64, [f64; 5]> =
                expected(&ts, &vs, res).into_iter().filter(|(t, _)| *t >= T0 && *t < covered_to).collect();
            let refs: Vec<&Arc<Block>> = tier_blocks.to_vec();
            let got = read_back(&refs, s);
            assert_eq!(got.len(), want.len(), "series {s} resolution {res}: point count");
            for ((tg, g), (tw, w)) in got.iter().zip(&want) {
                assert_eq!(tg, tw, "series {s} resolution {res}");
                assert_eq!(g, w, "series {s} resolution {res} at {tg}: got {g:?} want {w:?}");
                checked += 1;
            }
            // Every rollup point has a sketch, bin for bin the one of its raw values (the
            // hour's built by merging the minutes'), and its quantiles are within ALPHA of
            // the exact ones.
            let sk = read_sketches_back(&refs, s);
            assert_eq!(sk.timestamps, want.keys().copied().collect::<Vec<_>>(), "series {s} resolution {res}");
            let mut direct = BucketSketches::from_raw(&ts, &vs, res, ALPHA).unwrap();
            direct.retain_range(T0, covered_to);
            assert!(sk == direct, "series {s} resolution {res}: sketches differ from the direct ones");
            let mut values = bucket_values(&ts, &vs, res);
            for (t, sketch) in sk.timestamps.iter().zip(&sk.sketches) {
                check_quantiles(sketch, values.get_mut(t).unwrap(), &format!("series {s} resolution {res} at {t}"));
                sketches_checked += 1;
            }
        }
    }
    assert!(checked > 0);
    assert_eq!(sketches_checked, checked);

    // Routing: 1 h at 15 s reads raw; 1 d at 2 min the 1-minute tier; 30 d at 1 h the 1-hour
    // tier, with the days after the last complete week from the 1-minute tier.
    let last_hour = hints(now - H, now, 15 * S, 0, None);
    let last_day = hints(now - DAY, now, 2 * M, 0, None);
    let month = hints(T0, now, H, 0, None);
    assert_eq!(tier::route(&last_hour, &cfg, &metas), 0);
    assert_eq!(tier::route(&last_day, &cfg, &metas), M);
    assert_eq!(tier::route(&month, &cfg, &metas), if hour_blocks > 0 { H } else { M });
    let segs = tier::plan(&month, &cfg, &metas, T0, now);
    if hour_blocks > 0 {
        assert_eq!(segs[0], Segment { resolution_ms: H, mint: T0, maxt: T0 + hour_blocks * hb - H });
    }
    let last = segs.last().unwrap();
    assert_eq!(*last, Segment { resolution_ms: 0, mint: end - M + 1, maxt: now });
    assert!(segs.windows(2).all(|w| w[0].maxt < w[1].mint), "{segs:?}");
    let mid = &segs[segs.len() - 2];
    assert_eq!(mid.resolution_ms, M);

    // Reading through rollup_samples: max_over_time over the hour tier is the raw max per
    // hour; the counter's running total differs between two bucket ends by the raw increase.
    let sel = [Matcher::equal("series", "0000")];
    let hour_refs: Vec<&Block> = hour.iter().map(|b| b.as_ref()).collect();
    let minute_refs: Vec<&Block> = minute.iter().map(|b| b.as_ref()).collect();
    let mut g = Gen::new(0);
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    g.until(end, &mut ts, &mut vs);
    if !hour_refs.is_empty() {
        let maxes = tier::rollup_samples_blocks(Some("max_over_time"), &hour_refs, &sel, T0, now).unwrap();
        let want = expected(&ts, &vs, H);
        for (t, v) in maxes[0].1.timestamps.iter().zip(&maxes[0].1.values) {
            assert_eq!(*v, want[t][3]);
        }
    }
    let totals = tier::rollup_samples_blocks(Some("rate"), &minute_refs, &sel, T0, now).unwrap();
    let SampleBatch { timestamps, values } = &totals[0].1;
    for (i, j) in [(0usize, timestamps.len() - 1), (10, 2000), (1439, 1441)] {
        let (b1, b2) = (timestamps[i], timestamps[j]);
        let window: Vec<f64> = ts.iter().zip(&vs).filter(|(t, _)| **t > b1 && **t <= b2).map(|(_, v)| *v).collect();
        let start = ts.iter().zip(&vs).filter(|(t, v)| **t <= b1 && !v.is_nan()).map(|(_, v)| *v).next_back();
        let mut prev = start;
        let mut inc = 0.0;
        for v in window.into_iter().filter(|v| !v.is_nan()) {
            if let Some(p) = prev {
                inc += if v >= p { v - p } else { v };
            }
            prev = Some(v);
        }
        assert_eq!(values[j] - values[i], inc, "increase over ({b1}, {b2}]");
    }
    // The running total ends at the counter's raw value at the last bucket end (when it did
    // not reset in that bucket).
    let last_point = *timestamps.last().unwrap();
    let in_last: Vec<f64> = ts
        .iter()
        .zip(&vs)
        .filter(|(t, v)| **t > last_point - M && **t <= last_point && !v.is_nan())
        .map(|(_, v)| *v)
        .collect();
    if in_last.windows(2).all(|p| p[1] >= p[0]) {
        assert_eq!(*values.last().unwrap(), *in_last.last().unwrap());
    }
}

#[test]
fn thirty_days_small() {
    run(3, 30);
}

#[test]
#[ignore = "slow: 259M samples; run in release"]
fn thirty_days_1000_series() {
    run(1000, 30);
}

/// (1-hour blocks of 7 days here.) An out-of-order raw block arriving after its day was
/// rolled up makes the day (and its week) be rebuilt with the new samples; the superseded rollups are deleted; a second run
/// does nothing.
#[test]
fn late_block_rebuilds_rollups() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("blocks");
    let mut cfg = TierConfig::default();
    cfg.tiers[1].block_range_ms = 7 * DAY;
    let mut gens: Vec<Gen> = (0..2).map(Gen::new).collect();
    let end = T0 + 8 * DAY;
    let mut a = T0;
    while a < end {
        write_raw_block(&dir, &mut gens, a, a + RAW_BLOCK);
        a += RAW_BLOCK;
    }
    let r1 = tier::maintain(&dir, &cfg, &open(&dir), end + H).unwrap();
    assert_eq!(r1.written.len(), 8 + 1);
    // A late sample for a new series on day 2.
    let mut w = BlockWriter::new(&dir, 0).unwrap();
    w.set_out_of_order(true);
    let late = Labels::from_pairs([("__name__", "late_total"), ("series", "x")]).unwrap();
    w.add_series(&late, &[(Aggr::Raw, &[T0 + 2 * DAY + 5 * H + 1], &[42.0])]).unwrap();
    w.finish(T0 + 2 * DAY + 4 * H, T0 + 2 * DAY + 6 * H, BlockCompaction::default()).unwrap();
    let r2 = tier::maintain(&dir, &cfg, &open(&dir), end + H).unwrap();
    let days: Vec<(i64, i64)> = r2.written.iter().map(|m| (m.resolution_ms, m.min_time)).collect();
    assert_eq!(days, vec![(M, T0 + 2 * DAY), (H, T0)]);
    assert_eq!(r2.deleted.len(), 2);
    let r3 = tier::maintain(&dir, &cfg, &open(&dir), end + H).unwrap();
    assert!(r3.written.is_empty() && r3.deleted.is_empty());
    let blocks = open(&dir);
    let hour: Vec<&Block> = blocks.iter().filter(|b| b.meta().resolution_ms == H).map(|b| b.as_ref()).collect();
    let got =
        tier::rollup_samples_blocks(Some("sum_over_time"), &hour, &[Matcher::equal("series", "x")], 0, end).unwrap();
    assert_eq!(got[0].1.timestamps, vec![T0 + 2 * DAY + 6 * H]);
    assert_eq!(got[0].1.values, vec![42.0]);
}

/// (1-hour blocks of 7 days here.) Raw blocks past their retention whose rollups were never
/// built are kept until they are:
/// maintenance that first runs long after the data was written builds every rollup still
/// wanted (the 1-minute days of an hour week within the hour tier's retention too) before
/// deleting anything.
#[test]
fn retention_never_deletes_what_a_missing_rollup_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("blocks");
    let mut cfg = TierConfig::default();
    cfg.tiers[1].block_range_ms = 7 * DAY;
    let mut gens: Vec<Gen> = (0..2).map(Gen::new).collect();
    let end = T0 + 7 * DAY + 2 * H;
    let mut a = T0;
    while a < end {
        write_raw_block(&dir, &mut gens, a, a + RAW_BLOCK);
        a += RAW_BLOCK;
    }
    // 200 days later: raw (15 d) and 1-minute (90 d) retention have both passed.
    let now = end + 200 * DAY;
    let r = tier::maintain(&dir, &cfg, &open(&dir), now).unwrap();
    let blocks = open(&dir);
    let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
    // The week's hour block exists; then everything finer past retention went.
    assert!(metas.iter().any(|m| m.resolution_ms == H && m.min_time == T0 && m.max_time == T0 + 7 * DAY));
    assert!(metas.iter().all(|m| m.resolution_ms == H), "{metas:?}");
    assert_eq!(r.written.iter().filter(|m| m.resolution_ms == M).count(), 8);
    // The hour blocks (the complete week and, built because its end is more than a day old,
    // the partial one) equal the direct computation.
    let mut g = Gen::new(1);
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    g.until(end, &mut ts, &mut vs);
    let want = expected(&ts, &vs, H);
    let hour: Vec<&Arc<Block>> = blocks.iter().filter(|b| b.meta().resolution_ms == H).collect();
    assert_eq!(read_back(&hour, 1), want);
}

/// The same evidence through the whole database (2 series; the full size is ignored below):
/// samples appended to the head (WAL unsynced),
/// `Db::maintain` with a fake clock every simulated hour (flush, compaction, tiers,
/// retention), then: raw past retention gone, every rollup point equal to the direct
/// computation, and the querier reading the 1-hour tier for a 30-day query at a 1-hour step.
#[test]
fn db_thirty_days_through_the_head() {
    run_db(2);
}

/// [`db_thirty_days_through_the_head`] at full size: 1,000 series, 259M samples through the
/// head and WAL.
#[test]
#[ignore = "slow: 259M samples through the head; run in release"]
fn db_thirty_days_1000_series() {
    run_db(1000);
}

fn run_db(n_series: usize) {
    use telemetry_core::Queryable;
    use telemetry_store::SyncPolicy;
    use telemetry_store::db::{Db, DbOptions};

    let tmp = tempfile::tempdir().unwrap();
    let mut opts = DbOptions::default();
    opts.head.wal.sync = SyncPolicy::Never;
    opts.tiers.sketch_alpha = Some(ALPHA);
    let cfg = opts.tiers.clone();
    let (db, _) = Db::open(tmp.path(), opts).unwrap();
    let days = 30;
    let end = T0 + days * DAY;
    let mut gens: Vec<Gen> = (0..n_series).map(Gen::new).collect();
    let mut hour = T0;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let mut tiers_written = 0;
    while hour < end {
        hour += H;
        let mut app = db.appender();
        for g in gens.iter_mut() {
            ts.clear();
            vs.clear();
            g.until(hour, &mut ts, &mut vs);
            for (&t, &v) in ts.iter().zip(&vs) {
                app.append(&labels(g.series), t, v).unwrap();
            }
        }
        app.commit().unwrap();
        tiers_written += db.maintain(hour).unwrap().tiers.written.len();
    }
    let now = end;
    let blocks = db.open_blocks();
    let of = |res: i64| blocks.iter().filter(|b| b.meta().resolution_ms == res).collect::<Vec<_>>();
    let (raw, minute, hours) = (of(0), of(M), of(H));
    assert!(raw.iter().all(|b| b.meta().max_time > now - cfg.raw_retention_ms), "raw block past retention survived");
    assert!(raw.iter().map(|b| b.meta().min_time).min().unwrap() <= now - cfg.raw_retention_ms + DAY);
    // The head still holds the last hours: the last day's 1-minute block is not due yet.
    assert!(minute.len() >= days as usize - 1, "{} minute blocks", minute.len());
    assert_eq!(hours.len(), 1);
    assert_eq!(tiers_written, minute.len() + hours.len());
    for s in 0..n_series {
        let mut g = Gen::new(s);
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        g.until(end, &mut ts, &mut vs);
        for (res, tier_blocks) in [(M, &minute), (H, &hours)] {
            let got = read_back(&tier_blocks.to_vec(), s);
            let want = expected(&ts, &vs, res);
            assert!(!got.is_empty());
            for (t, g) in &got {
                assert_eq!(g, &want[t], "series {s} resolution {res} at {t}");
            }
            // Every bucket of the covered days is there.
            let (lo, hi) = (got.keys().next().copied().unwrap(), got.keys().last().copied().unwrap());
            assert_eq!(got.len(), want.range(lo..=hi).count());
        }
    }
    // A 30-day max_over_time at a 1-hour step reads the 1-hour tier where it has blocks.
    let hints = hints(T0, now, H, H, Some("max_over_time"));
    let q = db.querier(T0, now).unwrap();
    let mut set = q.select(&hints, &[Matcher::equal("series", "0001")]).unwrap();
    let mut series = set.next().unwrap().unwrap();
    let batch = series.samples.collect_all().unwrap();
    let mut g = Gen::new(1);
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    g.until(end, &mut ts, &mut vs);
    let want = expected(&ts, &vs, H);
    let first_week: Vec<(i64, f64)> =
        batch.timestamps.iter().zip(&batch.values).filter(|(t, _)| **t < T0 + 7 * DAY).map(|(t, v)| (*t, *v)).collect();
    // Bucket ends T0 + 1 h .. T0 + 7 d - 1 h (series 1 has no sample at T0).
    assert_eq!(first_week.len(), 7 * 24 - 1);
    for (t, v) in first_week {
        assert_eq!(t % H, 0, "a 1-hour rollup point");
        assert_eq!(v, want[&t][3]);
    }
    // quantile_over_time(0.9, …[1h]) at a 1-hour step: one sample per step from the hour's
    // sketch, within ALPHA of the raw order statistic; and over [1d] at a 1-day step, from
    // the merge of the day's 24 hour sketches.
    let mut values = bucket_values(&ts, &vs, H);
    let mut day_values = bucket_values(&ts, &vs, DAY);
    for (range, values) in [(H, &mut values), (DAY, &mut day_values)] {
        let mut qh = self::hints(T0, T0 + 7 * DAY, range, range, Some("quantile_over_time"));
        qh.quantile = Some(0.9);
        let mut set = q.select(&qh, &[Matcher::equal("series", "0001")]).unwrap();
        let batch = set.next().unwrap().unwrap().samples.collect_all().unwrap();
        // (The rest of the querier's 30 days comes raw from the other tiers.)
        let week: Vec<(i64, f64)> = batch
            .timestamps
            .iter()
            .zip(&batch.values)
            .filter(|(t, _)| **t <= T0 + 7 * DAY)
            .map(|(t, v)| (*t, *v))
            .collect();
        assert_eq!(week.len() as i64, 7 * DAY / range, "range {range}");
        for (t, v) in &week {
            let vals = values.get_mut(t).unwrap();
            vals.sort_by(f64::total_cmp);
            let exact = vals[(0.9 * (vals.len() - 1) as f64).floor() as usize];
            assert!((v - exact).abs() <= ALPHA * exact.abs() * (1.0 + 1e-12), "range {range} at {t}: {v} vs {exact}");
        }
    }
}
