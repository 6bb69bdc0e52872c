//! Tiers: downsampling raw blocks into rollups, retention per tier, and routing a query to
//! the coarsest tier that answers it.
//!
//! # Layout
//!
//! A tier of resolution `R` stores rollup blocks covering aligned ranges `[A, B)` of
//! [`Tier::block_range_ms`] (multiples of it since the Unix epoch). Such a block holds, per
//! series, the five aggregates of [`crate::rollup`] (count, sum, min, max, counter increase)
//! at the bucket ends `A, A + R, …, B − R`, i.e. the source data in `(A − R, B − R]`. Its
//! `meta.json` records in `compaction.sources` the level-1 ids of every block it was built
//! from (the sources of the sources, so compacting raw blocks does not change them).
//!
//! # Maintenance ([`maintain`])
//!
//! For each tier, finest first, every aligned range whose source data is complete (an
//! in-order source block reaches past `B − R`, or `B − R` is more than a day before `now`),
//! wanted (within the tier's retention, or feeding a missing range of a coarser tier that is
//! within its own), and not already *covered*
//! (a block of the tier for that range whose `compaction.sources` include every source id of
//! the blocks feeding it) is built, written by [`BlockWriter`](crate::block::BlockWriter)
//! (temporary directory, then rename: a kill leaves no half block visible). An out-of-order
//! raw block arriving after its range was rolled up makes the range uncovered again: it is
//! rebuilt, and the superseded block deleted. Running it twice writes nothing the second
//! time. Then retention: a block whose `max_time <= now − retention` of its tier is deleted,
//! unless it still feeds a range of the next tier that is not covered yet and not itself
//! past that tier's retention.
//!
//! # Reading ([`route`], [`plan`], [`rollup_samples`])
//!
//! [`route`] picks the resolution; [`plan`] splits a query's range between tiers (coarse
//! where it has blocks, finer elsewhere, raw last, which includes the head);
//! [`rollup_samples`] turns a rollup block's aggregates into the samples the PromQL engine
//! expects, following Thanos' mapping from the function to the aggregate:
//!
//! | function | aggregate | on rollups |
//! |---|---|---|
//! | `min_over_time`, `max_over_time` | min, max | exact when the window's length and end are multiples of `R` |
//! | `sum_over_time` | sum | exact as above, up to the order of float additions |
//! | `rate`, `increase`, `irate`, `resets` | counter, as a running total | the increase between bucket ends is exact (resets removed); the engine's extrapolation sees bucket-end timestamps, so `rate`/`increase` are estimates as on raw data, `irate` spans one bucket, `resets` sees none |
//! | `count_over_time` | count | **not exact**: the engine counts rollup points; [`route`] prefers raw while raw data exists |
//! | `quantile_over_time(φ, …)` with a constant φ, when the tier keeps sketches ([`TierConfig::sketch_alpha`]) | the merged bucket sketches of each evaluation's window ([`rollup_quantiles_blocks`]) | within the sketch's relative accuracy when the step is at least the range and both are multiples of `R` |
//! | anything else (plain selectors, `avg_over_time`, `last_over_time`, `quantile_over_time` without sketches, `changes`, …) | sum / count (the bucket's average) | approximate |
//!
//! Functions listed in [`RAW_PREFERRED`] (wrong, not just approximate, on rollups) are routed
//! to the finest tier with data; all others to the coarsest eligible one.
//!
//! Quantile sketches per bucket are optional ([`TierConfig::sketch_alpha`], off by default):
//! a DDSketch of each bucket's raw values, built from raw for the finest tier and by exact
//! merging for coarser ones, stored as [`Aggr::Sketch`] chunks beside the five aggregates.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use telemetry_core::{Labels, Matcher, SampleBatch, SelectHints};

use crate::block::{Aggr, Block, BlockError, BlockMeta, delete_block};
use crate::downsample::{
    COUNTER_LOOKBACK_MS, SeriesMerge, build_block, earlier_block_wins, postings, read_parts, read_parts_values,
    split_refs,
};
use telemetry_agg::CompactDdSketch;

const DAY: i64 = 86_400_000;

/// One rollup tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Rollup interval in ms.
    pub resolution_ms: i64,
    /// Blocks of this tier older than this (their `max_time` at or before `now - retention`)
    /// are deleted.
    pub retention_ms: i64,
    /// Range of one rollup block (aligned to multiples of it since the epoch); a multiple of
    /// `resolution_ms` and of the finer tier's block range.
    pub block_range_ms: i64,
}

/// Tier configuration: raw retention and the rollup tiers, finest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    /// Raw blocks are kept this long (default 15 days).
    pub raw_retention_ms: i64,
    /// Rollup tiers, finest first (default 1 minute for 90 days in 1-day blocks, 1 hour for
    /// 2 years in 28-day blocks: 672 points per series and aggregate, so a 2-year read decodes
    /// 27 chunks per series, not 105 as with 7-day blocks).
    pub tiers: Vec<Tier>,
    /// When set, every rollup bucket also keeps a DDSketch of its raw values with this
    /// relative accuracy (telemetry-agg's `CompactDdSketch`, alpha in `[2e-7, 1)`; e.g.
    /// 0.01), so that `quantile_over_time` over rollups is within that relative error of the
    /// raw order statistic ([`rollup_quantiles_blocks`]). Coarser tiers merge the finer
    /// tier's sketches (exactly: the same bins as sketching the raw values directly). `None`
    /// (the default) keeps none: at 0.01 a sketch of an hour of a gauge sampled every 10 s
    /// takes 20 to 50 bytes, against about 10 bytes for the five aggregates.
    pub sketch_alpha: Option<f64>,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            raw_retention_ms: 15 * DAY,
            tiers: vec![
                Tier { resolution_ms: 60_000, retention_ms: 90 * DAY, block_range_ms: DAY },
                Tier { resolution_ms: 3_600_000, retention_ms: 730 * DAY, block_range_ms: 28 * DAY },
            ],
            sketch_alpha: None,
        }
    }
}

impl TierConfig {
    /// Checks the configuration: positive values, resolutions increasing, each a multiple of
    /// the finer one, block ranges multiples of their resolution and of the finer tier's
    /// block range.
    ///
    /// # Errors
    /// A message naming the tier (by index) and the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.raw_retention_ms <= 0 {
            return Err(format!("raw_retention_ms must be positive, got {}", self.raw_retention_ms));
        }
        if let Some(alpha) = self.sketch_alpha {
            telemetry_agg::CompactDdSketch::new(alpha).map_err(|e| format!("sketch_alpha: {e}"))?;
        }
        let mut prev: Option<&Tier> = None;
        for (i, t) in self.tiers.iter().enumerate() {
            if t.resolution_ms <= 0 || t.retention_ms <= 0 || t.block_range_ms <= 0 {
                return Err(format!("tier {i}: resolution, retention and block range must be positive: {t:?}"));
            }
            if t.block_range_ms % t.resolution_ms != 0 {
                return Err(format!(
                    "tier {i}: block_range_ms {} is not a multiple of its resolution",
                    t.block_range_ms
                ));
            }
            if let Some(p) = prev {
                if t.resolution_ms <= p.resolution_ms || t.resolution_ms % p.resolution_ms != 0 {
                    return Err(format!(
                        "tier {i}: resolution {} is not a larger multiple of tier {}'s {}",
                        t.resolution_ms,
                        i - 1,
                        p.resolution_ms
                    ));
                }
                if t.block_range_ms % p.block_range_ms != 0 {
                    return Err(format!(
                        "tier {i}: block_range_ms {} is not a multiple of tier {}'s {}",
                        t.block_range_ms,
                        i - 1,
                        p.block_range_ms
                    ));
                }
            }
            prev = Some(t);
        }
        Ok(())
    }

    /// Retention of the tier of `resolution_ms` (0 = raw); `None` for an unknown resolution.
    pub fn retention_of(&self, resolution_ms: i64) -> Option<i64> {
        if resolution_ms == 0 {
            return Some(self.raw_retention_ms);
        }
        self.tiers.iter().find(|t| t.resolution_ms == resolution_ms).map(|t| t.retention_ms)
    }
}

/// What one [`maintain`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierReport {
    /// Rollup blocks written.
    pub written: Vec<BlockMeta>,
    /// Blocks deleted (retention, or rollups superseded by a rebuild).
    pub deleted: Vec<BlockMeta>,
}

fn floor_to(t: i64, m: i64) -> i64 {
    t.div_euclid(m) * m
}

/// The level-1 ids a block stands for (its own id when its lineage is empty).
fn lineage(m: &BlockMeta) -> Vec<String> {
    if m.compaction.sources.is_empty() { vec![m.id.clone()] } else { m.compaction.sources.clone() }
}

/// Source data interval `[lo, hi]` (inclusive) a range `[a, b)` of `tier` reads, from a source
/// tier of resolution `src_res` (0 = raw).
fn source_interval(tier: &Tier, src_res: i64, a: i64, b: i64) -> (i64, i64) {
    let lookback = if src_res == 0 { COUNTER_LOOKBACK_MS } else { 0 };
    (a - tier.resolution_ms - lookback, b - tier.resolution_ms)
}

fn overlaps(m: &BlockMeta, lo: i64, hi: i64) -> bool {
    m.min_time <= hi && m.max_time > lo
}

/// Aligned ranges `[a, b)` of `tier` that read some of `[min_time, max_time)` of source data.
/// With `core_only`, only the ranges whose buckets proper (not the counter lookback) it feeds.
fn ranges_fed_by(tier: &Tier, src_res: i64, min_time: i64, max_time: i64, core_only: bool) -> Vec<(i64, i64)> {
    let br = tier.block_range_ms;
    let lookback = if src_res == 0 && !core_only { COUNTER_LOOKBACK_MS } else { 0 };
    // a - R - lookback < max_time  and  b - R >= min_time
    let first = floor_to(min_time + tier.resolution_ms, br);
    let last = floor_to(max_time - 1 + tier.resolution_ms + lookback, br);
    let mut out = Vec::new();
    let mut a = first;
    while a <= last {
        let (lo, hi) = source_interval(tier, src_res, a, a + br);
        let lo = if core_only { a - tier.resolution_ms } else { lo };
        if min_time <= hi && max_time > lo {
            out.push((a, a + br));
        }
        a += br;
    }
    out
}

/// `true` when a block of `tier` for `[a, b)` has every id of `needed` in its sources.
fn covered<'a>(targets: impl Iterator<Item = &'a BlockMeta>, a: i64, b: i64, needed: &BTreeSet<String>) -> bool {
    targets.filter(|m| m.min_time == a && m.max_time == b).any(|m| {
        let have: BTreeSet<&String> = m.compaction.sources.iter().collect();
        needed.iter().all(|s| have.contains(s))
    })
}

/// Builds missing rollups (raw → first tier, each tier → the next) for completed ranges,
/// idempotently, and deletes blocks past their tier's retention, never a block still needed
/// to build a rollup. `blocks_dir` is `<dir>/blocks`; `blocks` the currently open blocks.
/// Returns what it wrote and deleted; the caller then re-reads the block list. `now_ms` is
/// the clock (ms since the epoch), passed in so that tests can fake it.
///
/// # Errors
/// [`BlockError`] from reading source blocks or writing a rollup block; an invalid `cfg` is
/// [`BlockError::Config`]. Blocks written
/// before an error stay (they are complete), and a rerun continues where this one stopped.
pub fn maintain(
    blocks_dir: &Path,
    cfg: &TierConfig,
    blocks: &[Arc<Block>],
    now_ms: i64,
) -> Result<TierReport, BlockError> {
    cfg.validate().map_err(|msg| BlockError::Config(format!("tier configuration: {msg}")))?;
    let mut report = TierReport::default();
    let mut live: Vec<Arc<Block>> = blocks.to_vec();
    let mut src_res = 0;
    for (i, tier) in cfg.tiers.iter().enumerate() {
        build_tier(blocks_dir, cfg, i, src_res, &mut live, now_ms, &mut report)?;
        src_res = tier.resolution_ms;
    }
    retention(cfg, &mut live, now_ms, &mut report)?;
    Ok(report)
}

/// Whether range `[a, b)` of tier `idx` is worth having: within its tier's retention, or
/// needed to build a missing range of the next tier that is itself worth having.
fn wanted(cfg: &TierConfig, idx: usize, a: i64, b: i64, live: &[Arc<Block>], now_ms: i64) -> bool {
    let Some(tier) = cfg.tiers.get(idx) else { return false };
    if b > now_ms.saturating_sub(tier.retention_ms) {
        return true;
    }
    let Some(next) = cfg.tiers.get(idx + 1) else { return false };
    let a2 = floor_to(a, next.block_range_ms);
    let b2 = a2 + next.block_range_ms;
    let built = live.iter().any(|m| {
        let m = m.meta();
        m.resolution_ms == next.resolution_ms && m.min_time == a2 && m.max_time == b2
    });
    !built && wanted(cfg, idx + 1, a2, b2, live, now_ms)
}

#[allow(clippy::too_many_arguments)]
fn build_tier(
    blocks_dir: &Path,
    cfg: &TierConfig,
    idx: usize,
    src_res: i64,
    live: &mut Vec<Arc<Block>>,
    now_ms: i64,
    report: &mut TierReport,
) -> Result<(), BlockError> {
    let mut sources: Vec<Arc<Block>> = live.iter().filter(|b| b.meta().resolution_ms == src_res).cloned().collect();
    sources.sort_by(|a, b| (a.meta().min_time, &a.meta().id).cmp(&(b.meta().min_time, &b.meta().id)));
    let (Some(smin), Some(smax)) = (
        sources.iter().map(|b| b.meta().min_time).min(),
        sources.iter().filter(|b| !b.meta().out_of_order).map(|b| b.meta().max_time).max(),
    ) else {
        return Ok(());
    };
    let tier = &cfg.tiers[idx]; // ok: maintain passes indexes of cfg.tiers
    for (a, b) in ranges_fed_by(tier, src_res, smin, smax, false) {
        // Complete: a source block reaches past the range's last bucket end, or that bucket end
        // is more than a day old (no in-order data can still arrive for it: the caller persists
        // the head's old data first).
        let last_end = b - tier.resolution_ms;
        let complete = last_end < smax || last_end < now_ms.saturating_sub(DAY);
        if !complete || !wanted(cfg, idx, a, b, live, now_ms) {
            continue;
        }
        let (lo, hi) = source_interval(tier, src_res, a, b);
        let feeding: Vec<Arc<Block>> = sources.iter().filter(|s| overlaps(s.meta(), lo, hi)).cloned().collect();
        // Only blocks with data in the buckets proper make a range worth building.
        if !feeding.iter().any(|s| overlaps(s.meta(), a - tier.resolution_ms + 1, hi)) {
            continue;
        }
        let needed: BTreeSet<String> = feeding.iter().flat_map(|s| lineage(s.meta())).collect();
        let targets: Vec<BlockMeta> =
            live.iter().filter(|t| t.meta().resolution_ms == tier.resolution_ms).map(|t| t.meta().clone()).collect();
        if !covered(targets.iter(), a, b, &needed) {
            let meta = build_block(
                blocks_dir,
                &feeding,
                src_res,
                tier.resolution_ms,
                a,
                b,
                cfg.sketch_alpha,
                needed.into_iter().collect(),
            )?;
            if let Some(meta) = meta {
                let block = Block::open(&blocks_dir.join(&meta.id))?;
                live.push(Arc::new(block));
                report.written.push(meta);
            }
        }
        // Older blocks for the same range whose sources the newest covers are superseded.
        drop_superseded(tier.resolution_ms, a, b, live, report)?;
    }
    Ok(())
}

fn drop_superseded(
    res: i64,
    a: i64,
    b: i64,
    live: &mut Vec<Arc<Block>>,
    report: &mut TierReport,
) -> Result<(), BlockError> {
    let same: Vec<Arc<Block>> = live
        .iter()
        .filter(|t| t.meta().resolution_ms == res && t.meta().min_time == a && t.meta().max_time == b)
        .cloned()
        .collect();
    if same.len() < 2 {
        return Ok(());
    }
    // Keep the one with the most sources (the newest on ties); delete those it covers.
    let Some(keep) = same.iter().max_by(|x, y| {
        (x.meta().compaction.sources.len(), &x.meta().id).cmp(&(y.meta().compaction.sources.len(), &y.meta().id))
    }) else {
        return Ok(()); // ok: `same` has at least two blocks
    };
    let have: BTreeSet<&String> = keep.meta().compaction.sources.iter().collect();
    for other in &same {
        if other.meta().id == keep.meta().id {
            continue;
        }
        if other.meta().compaction.sources.iter().all(|s| have.contains(s)) {
            delete_block(other)?;
            report.deleted.push(other.meta().clone());
            live.retain(|x| x.meta().id != other.meta().id);
        }
    }
    Ok(())
}

fn retention(
    cfg: &TierConfig,
    live: &mut Vec<Arc<Block>>,
    now_ms: i64,
    report: &mut TierReport,
) -> Result<(), BlockError> {
    let mut doomed = Vec::new();
    for blk in live.iter() {
        let m = blk.meta();
        let Some(ret) = cfg.retention_of(m.resolution_ms) else {
            continue; // a resolution no tier configures: left alone
        };
        if m.max_time > now_ms.saturating_sub(ret) {
            continue;
        }
        // The next tier, fed by this block's tier.
        let next_idx = if m.resolution_ms == 0 {
            Some(0)
        } else {
            cfg.tiers.iter().position(|t| t.resolution_ms == m.resolution_ms).map(|i| i + 1)
        };
        if let Some((next_idx, next)) = next_idx.and_then(|i| cfg.tiers.get(i).map(|t| (i, t))) {
            let ids: BTreeSet<String> = lineage(m).into_iter().collect();
            let targets: Vec<&BlockMeta> =
                live.iter().map(|b| b.meta()).filter(|t| t.resolution_ms == next.resolution_ms).collect();
            let still_needed =
                ranges_fed_by(next, m.resolution_ms, m.min_time, m.max_time, true).into_iter().any(|(a, b)| {
                    !covered(targets.iter().copied(), a, b, &ids) && wanted(cfg, next_idx, a, b, live, now_ms)
                });
            if still_needed {
                continue;
            }
        }
        doomed.push(blk.clone());
    }
    for blk in doomed {
        delete_block(&blk)?;
        report.deleted.push(blk.meta().clone());
        live.retain(|x| x.meta().id != blk.meta().id);
    }
    Ok(())
}

/// Functions that rollups answer wrongly (not just approximately): routed to the finest tier
/// with data.
pub const RAW_PREFERRED: &[&str] = &["count_over_time", "resets", "changes"];

/// The resolution (0 = raw) a query with these hints should read, given the blocks present:
/// the coarsest tier whose resolution is at most the query's step (and at most the range of
/// its range selector, when it has one) and which has blocks overlapping the hints'
/// `[start, end]` (the start already covers the range, as [`SelectHints::start_ms`] says and
/// as Prometheus's hints do); raw when no such tier has data. For an instant query (step 0)
/// the range selector's range alone bounds the resolution; without one, raw. For the
/// functions of [`RAW_PREFERRED`], the finest eligible tier with data instead.
pub fn route(hints: &SelectHints, cfg: &TierConfig, blocks: &[BlockMeta]) -> i64 {
    let bound = match (hints.step_ms, hints.range_ms) {
        (0, 0) => return 0,
        (0, r) | (r, 0) => r,
        (s, r) => s.min(r),
    };
    let (lo, hi) = (hints.start_ms, hints.end_ms);
    let has_data = |res: i64| blocks.iter().any(|m| m.resolution_ms == res && overlaps(m, lo, hi));
    let eligible = cfg.tiers.iter().filter(|t| t.resolution_ms <= bound).map(|t| t.resolution_ms);
    let raw_preferred = hints.func.as_deref().is_some_and(|f| RAW_PREFERRED.contains(&f));
    if raw_preferred {
        if has_data(0) {
            return 0;
        }
        return eligible.into_iter().find(|&r| has_data(r)).unwrap_or(0);
    }
    eligible.rev().find(|&r| has_data(r)).unwrap_or(0)
}

/// A part of a query's time range read at one resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Resolution to read (0 = raw, head included).
    pub resolution_ms: i64,
    /// First timestamp of the part (inclusive). For a rollup segment, a bucket end.
    pub mint: i64,
    /// Last timestamp of the part (inclusive).
    pub maxt: i64,
}

/// Splits `[mint, maxt]` between the tier [`route`] picked and the finer ones: the chosen
/// tier's blocks where it has them, the next finer tier where it has not, and so on down to
/// raw (which takes everything left, the head included). Source time `(p − R, p]` of a rollup
/// point `p` is never read again from a finer tier, so no sample counts twice. Segments are
/// returned in time order.
pub fn plan(hints: &SelectHints, cfg: &TierConfig, blocks: &[BlockMeta], mint: i64, maxt: i64) -> Vec<Segment> {
    let top = route(hints, cfg, blocks);
    let mut resolutions: Vec<i64> = cfg.tiers.iter().map(|t| t.resolution_ms).filter(|&r| r <= top).collect();
    resolutions.reverse();
    let mut out = Vec::new();
    fill(&resolutions, blocks, mint, maxt, &mut out);
    out.sort_by_key(|s| s.mint);
    out
}

fn fill(resolutions: &[i64], blocks: &[BlockMeta], mint: i64, maxt: i64, out: &mut Vec<Segment>) {
    if mint > maxt {
        return;
    }
    let Some((&res, finer)) = resolutions.split_first() else {
        out.push(Segment { resolution_ms: 0, mint, maxt });
        return;
    };
    if res == 0 {
        out.push(Segment { resolution_ms: 0, mint, maxt });
        return;
    }
    // Union of this tier's block ranges (point time), clipped to [mint, maxt].
    let mut ranges: Vec<(i64, i64)> = blocks
        .iter()
        .filter(|m| m.resolution_ms == res && m.max_time > mint && m.min_time <= maxt)
        .map(|m| (m.min_time.max(mint), (m.max_time - 1).min(maxt)))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut cursor = mint;
    for (a, b) in merged {
        // Snap to bucket ends: the first point at or after a, the last at or before b.
        let first = crate::rollup::bucket_end(a, res).unwrap_or(a);
        let last = floor_to(b, res);
        if first > last {
            continue;
        }
        // Source time (first - res, last] is answered by this segment.
        fill(finer, blocks, cursor, first - res, out);
        out.push(Segment { resolution_ms: res, mint: first, maxt: last });
        cursor = last + 1;
    }
    fill(finer, blocks, cursor, maxt, out);
}

/// Which aggregate(s) answer `func` on a rollup tier, and how they become the samples the
/// PromQL engine expects (see the module doc's table): `min_*` → min, `max_*` → max,
/// `count_*` → count, `sum_*` → sum, `rate`/`increase`/`irate`/`resets` → the counter as a
/// running total, anything else → sum / count.
pub fn aggregates_for(func: Option<&str>) -> &'static [Aggr] {
    match func {
        Some(f) if f.starts_with("min_") => &[Aggr::Min],
        Some(f) if f.starts_with("max_") => &[Aggr::Max],
        Some(f) if f.starts_with("count_") => &[Aggr::Count],
        Some(f) if f.starts_with("sum_") => &[Aggr::Sum],
        Some("rate" | "increase" | "irate" | "resets") => &[Aggr::Counter],
        _ => &[Aggr::Sum, Aggr::Count],
    }
}

/// The samples answering `func` from one rollup `block` for the series matching `matchers`,
/// over `[mint, maxt]`; see [`rollup_samples_blocks`].
///
/// # Errors
/// [`BlockError`] reading the block.
pub fn rollup_samples(
    func: Option<&str>,
    block: &Block,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    rollup_samples_blocks(func, &[block], matchers, mint, maxt)
}

/// Most evaluation times one [`rollup_quantiles_blocks`] read answers (Prometheus's API allows
/// 11,000 points per series).
pub const MAX_QUANTILE_STEPS: i128 = 1_000_000;

/// `quantile_over_time(φ, sel[range])` from the bucket sketches of rollup `blocks` of one tier
/// (as [`rollup_samples_blocks`]: any order, overlapping blocks merged, the earlier winning),
/// per series sorted by labels, over `[mint, maxt]`.
///
/// A query evaluates at `hints.end_ms − k · hints.step_ms` (`k = 0, 1, …`; only `end_ms` when
/// the step is 0). For each such time `t` in `[mint, maxt]` the answer holds one sample at `t`:
/// the φ-quantile (`hints.quantile`) of the merge of the sketches of the buckets ending in
/// `(t − hints.range_ms, t]`; NaN when those buckets held only NaN values, `−∞` / `+∞` for
/// φ below 0 / above 1 as in PromQL. The engine's `quantile_over_time` of that one sample is
/// the sample itself, so when the step is at least the range and `t` and the range are
/// multiples of the resolution, the answer is within the sketches' relative accuracy of the
/// raw order statistic of rank `⌊φ · (n − 1)⌋` over the window (the sketch's guarantee); with
/// a step shorter than the range, windows overlap and the engine combines several such
/// samples (an approximation), as it does where a window reaches past `mint` or `maxt` into
/// another tier.
///
/// A series whose rollup points in the range do not all have a sketch (blocks written
/// without [`TierConfig::sketch_alpha`]) is answered as without φ: the bucket averages
/// ([`aggregates_for`]).
///
/// # Errors
/// [`BlockError`] reading a block; [`BlockError::Config`] when `hints.quantile` is `None` or
/// the range holds more than [`MAX_QUANTILE_STEPS`] evaluation times.
pub fn rollup_quantiles_blocks(
    hints: &SelectHints,
    blocks: &[&Block],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    let Some(phi) = hints.quantile else {
        return Err(BlockError::Config("a sketch read needs the quantile φ in the hints".into()));
    };
    let (order, _, refs, threads) = read_plan(None, blocks, matchers)?;
    in_label_ranges(&order, refs, threads, |part| read_quantiles(hints, phi, &order, matchers, part, mint, maxt))
}

/// The first index at or after `from` of an entry ending after `t` (`entries` sorted by
/// bucket end, none before `from` ending after `t`). Consecutive evaluation times usually
/// move a window by a few buckets: those are stepped over, longer moves binary-searched.
fn first_after(entries: &[(i64, f64, &[u8])], from: usize, t: i64) -> usize {
    let mut i = from;
    for _ in 0..8 {
        match entries.get(i) {
            Some(e) if e.0 <= t => i += 1,
            _ => return i,
        }
    }
    i + entries[i..].partition_point(|e| e.0 <= t)
}

/// [`rollup_quantiles_blocks`] over the series references `refs[i]` of each block of `order`
/// (sorted by time), on this thread.
fn read_quantiles(
    hints: &SelectHints,
    phi: f64,
    order: &[&Block],
    matchers: &[Matcher],
    refs: Vec<Vec<u32>>,
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    let mut merge = SeriesMerge::with_refs(order, matchers, refs, &[Aggr::Count], mint, maxt)?;
    let mut out = Vec::new();
    let (mut count, mut aux) = (SampleBatch::default(), SampleBatch::default());
    // One accumulator, cleared per window: the encoded sketches are folded straight into it.
    let mut acc: Option<CompactDdSketch> = None;
    // Evaluation times in [mint, maxt], ascending: end − k·step, the first at or before maxt.
    let (end, step) = (i128::from(hints.end_ms), i128::from(hints.step_ms.max(0)));
    let last = match (end > i128::from(maxt), step) {
        (false, _) => end,
        (true, 0) => i128::MIN,
        (true, s) => end - (end - i128::from(maxt) + s - 1) / s * s,
    };
    let n_times = match (last >= i128::from(mint), step) {
        (false, _) => 0,
        (true, 0) => 1,
        (true, s) => (last - i128::from(mint)) / s + 1,
    };
    if n_times > MAX_QUANTILE_STEPS {
        return Err(BlockError::Config(format!(
            "{n_times} evaluation times in [{mint}, {maxt}] at a step of {} ms; at most {MAX_QUANTILE_STEPS}",
            hints.step_ms
        )));
    }
    // ok: every time lies in [mint, maxt], so fits an i64
    let times: Vec<i64> = (0..n_times).rev().map(|k| (last - k * step) as i64).collect();
    while let Some((labels, parts)) = merge.next_series()? {
        read_parts(order, &parts, Aggr::Count, mint, maxt, 0, &mut count)?;
        let mut entries: Vec<(i64, f64, &[u8])> = Vec::new();
        let mut sorted = true;
        for (i, crefs) in &parts {
            let start = entries.len();
            order[*i].read_sketch_entries(crefs, mint, maxt, &mut entries)?;
            sorted &= start == 0 || entries.get(start).is_none_or(|e| e.0 > entries[start - 1].0);
        }
        if !sorted {
            earlier_block_wins(&mut entries, |e| e.0);
        }
        let alpha = entries.first().map(|e| e.1);
        let complete = entries.len() == count.timestamps.len()
            && entries.iter().zip(&count.timestamps).all(|(e, t)| e.0 == *t && Some(e.1) == alpha);
        let mut batch = SampleBatch::default();
        let acc = match alpha {
            Some(alpha) if complete => match &mut acc {
                Some(a) if a.alpha() == alpha => a,
                _ => acc.insert(CompactDdSketch::new(alpha).map_err(|e| BlockError::InvalidSamples {
                    series: labels.to_string(),
                    reason: format!("sketch alpha: {e}"),
                })?),
            },
            _ => {
                read_one(order, &labels, &parts, aggregates_for(None), mint, maxt, &mut batch, &mut aux)?;
                if !batch.is_empty() {
                    out.push((labels, batch));
                }
                continue;
            }
        };
        // Window (t − range, t] is entries[lo..hi]; both ends only move forward with t.
        let (mut lo, mut hi) = (0, 0);
        for &t in &times {
            lo = first_after(&entries, lo, t.saturating_sub(hints.range_ms));
            hi = first_after(&entries, hi.max(lo), t);
            if lo == hi {
                continue;
            }
            acc.clear();
            for &(p, _, bytes) in &entries[lo..hi] {
                let used = acc.merge_encoded(bytes).map_err(|e| BlockError::InvalidSamples {
                    series: labels.to_string(),
                    reason: format!("the sketch of the bucket ending at {p}: {e}"),
                })?;
                if used != bytes.len() {
                    return Err(BlockError::InvalidSamples {
                        series: labels.to_string(),
                        reason: format!(
                            "the sketch of the bucket ending at {p} takes {used} of its {} bytes",
                            bytes.len()
                        ),
                    });
                }
            }
            let v = if phi.is_nan() {
                f64::NAN
            } else if phi < 0.0 {
                f64::NEG_INFINITY
            } else if phi > 1.0 {
                f64::INFINITY
            } else {
                acc.quantile(phi).unwrap_or(f64::NAN)
            };
            batch.push(t, v);
        }
        if !batch.is_empty() {
            out.push((labels, batch));
        }
    }
    Ok(out)
}

/// Series a read hands to each extra thread at least: below this, one thread reads all.
const MIN_SERIES_PER_THREAD: usize = 128;
/// Most threads one read uses.
const MAX_READ_THREADS: usize = 4;

/// The samples answering `func` from rollup `blocks` of one tier (any order: they are read
/// in time order; overlapping blocks are merged, the earlier winning), per series sorted by
/// labels, over `[mint, maxt]` (aggregates per [`aggregates_for`]). Series are read one at a
/// time from all blocks, each into one allocation of the size its blocks can hold in the range.
///
/// With many series (128 or more per thread) the series are split into label ranges read in
/// parallel, on up to [`std::thread::available_parallelism`] threads (at most 4), and
/// concatenated in label order: the result is the same as with one thread.
///
/// For the counter functions the per-bucket increases are summed into a running total
/// across all `blocks`, anchored so that its last value equals the last bucket's max (the
/// counter's raw value there when it did not reset in that bucket): the engine's `rate` then
/// sees no reset, and raw samples that follow the rollups continue the same curve. Read the
/// blocks of one tier in one call so that the running total is continuous across them.
///
/// # Errors
/// [`BlockError`] reading a block.
pub fn rollup_samples_blocks(
    func: Option<&str>,
    blocks: &[&Block],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    let (order, aggrs, refs, threads) = read_plan(func, blocks, matchers)?;
    in_label_ranges(&order, refs, threads, |part| read_rollups(&order, matchers, part, aggrs, mint, maxt))
}

/// Runs `read` over the series references `refs` (per block of `order`): on this thread, or
/// with `threads` > 1 split into label ranges ([`split_refs`]) read in parallel and
/// concatenated in label order.
fn in_label_ranges(
    order: &[&Block],
    refs: Vec<Vec<u32>>,
    threads: usize,
    read: impl Fn(Vec<Vec<u32>>) -> Result<Vec<(Labels, SampleBatch)>, BlockError> + Sync,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    if threads == 1 {
        return read(refs);
    }
    let mut parts = split_refs(order, refs, threads)?.into_iter();
    let first = parts.next().unwrap_or_default();
    let read = &read;
    std::thread::scope(|s| {
        let rest: Vec<_> = parts.map(|p| s.spawn(move || read(p))).collect();
        let mut out = read(first);
        for h in rest {
            let part = match h.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            if let Ok(o) = &mut out {
                o.extend(part?);
            }
        }
        out
    })
}

/// Like [`rollup_samples_blocks`], but hands each series to `f` in label order instead of
/// collecting them: a caller that consumes series one at a time (an aggregation, a
/// serializer) does not pay for holding the whole result (for a 2-year read at 1-hour
/// resolution, 280 KB per series) in memory at once.
///
/// `f` runs on the calling thread. With many series (as [`rollup_samples_blocks`]: 128 or
/// more per thread, up to 4 threads) the series are decoded on worker threads, handed out
/// round-robin in groups of 8, and given to `f` in label order; each worker keeps at most
/// [`EACH_DEPTH`] groups waiting, in buffers that are reused, so memory stays bounded by
/// `threads × EACH_DEPTH × 8` series whatever the number of series.
///
/// # Errors
/// [`BlockError`] reading a block, or the first error `f` returns (which stops the read).
pub fn rollup_samples_each(
    func: Option<&str>,
    blocks: &[&Block],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    f: &mut dyn FnMut(&Labels, &SampleBatch) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    let (order, aggrs, refs, threads) = read_plan(func, blocks, matchers)?;
    let mut merge = SeriesMerge::with_refs(&order, matchers, refs, aggrs, mint, maxt)?;
    if threads == 1 {
        let (mut batch, mut aux) = (SampleBatch::default(), SampleBatch::default());
        while let Some((labels, parts)) = merge.next_series()? {
            read_one(&order, &labels, &parts, aggrs, mint, maxt, &mut batch, &mut aux)?;
            if !batch.is_empty() {
                f(&labels, &batch)?;
            }
        }
        return Ok(());
    }
    let order = &order;
    std::thread::scope(|s| {
        use std::sync::mpsc::channel;
        // Series travel in groups of up to EACH_GROUP, so that a thread waits (and is woken)
        // once per group rather than once per series.
        type Job = Vec<(Labels, Vec<(usize, Vec<crate::block::ChunkRef>)>, SampleBatch)>;
        type Done = Vec<(Labels, Result<SampleBatch, BlockError>)>;
        let mut jobs = Vec::with_capacity(threads);
        let mut done = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (job_tx, job_rx) = channel::<Job>();
            let (done_tx, done_rx) = channel::<Done>();
            s.spawn(move || {
                let mut aux = SampleBatch::default();
                // Ends when the caller drops its sender (all series handed out, or it stopped).
                while let Ok(group) = job_rx.recv() {
                    let answers = group
                        .into_iter()
                        .map(|(labels, parts, mut batch)| {
                            let r = read_one(order, &labels, &parts, aggrs, mint, maxt, &mut batch, &mut aux);
                            (labels, r.map(|()| batch))
                        })
                        .collect();
                    // The caller may have stopped on an error; its results are not wanted then.
                    let _ = done_tx.send(answers);
                }
            });
            jobs.push(job_tx);
            done.push(done_rx);
        }
        let (mut sent, mut received) = (0usize, 0usize);
        let mut spare: Vec<SampleBatch> = Vec::new();
        let mut exhausted = false;
        loop {
            // Keep every worker up to EACH_DEPTH groups ahead of the consumer.
            while !exhausted && sent - received < threads * EACH_DEPTH {
                let mut group = Vec::with_capacity(EACH_GROUP);
                while group.len() < EACH_GROUP {
                    match merge.next_series()? {
                        Some((labels, parts)) => group.push((labels, parts, spare.pop().unwrap_or_default())),
                        None => {
                            exhausted = true;
                            break;
                        }
                    }
                }
                if group.is_empty() {
                    break;
                }
                // A worker ends only when its sender is dropped, so the send succeeds.
                if jobs[sent % threads].send(group).is_err() {
                    return Err(worker_gone());
                }
                sent += 1;
            }
            if received == sent {
                return Ok(());
            }
            let answers = done[received % threads].recv().map_err(|_| worker_gone())?;
            received += 1;
            for (labels, r) in answers {
                let batch = r?;
                if !batch.is_empty() {
                    f(&labels, &batch)?;
                }
                spare.push(batch);
            }
        }
    })
}

/// Series per message between [`rollup_samples_each`] and its workers.
const EACH_GROUP: usize = 8;

/// Groups of up to 8 decoded series each worker of [`rollup_samples_each`] keeps waiting
/// at most.
pub const EACH_DEPTH: usize = 2;

/// The error for a read worker that ended without answering. That happens only when it
/// panicked, and then `std::thread::scope` re-raises the panic as the read returns: the value
/// only ends the read.
fn worker_gone() -> BlockError {
    BlockError::Config("a rollup read worker ended without answering".into())
}

/// What a rollup read of `func` over `blocks` works from: the blocks in time order, the
/// aggregates to read ([`aggregates_for`]), each block's series references matching
/// `matchers`, and the threads to read them on ([`read_threads`]).
#[allow(clippy::type_complexity)]
fn read_plan<'b>(
    func: Option<&str>,
    blocks: &[&'b Block],
    matchers: &[Matcher],
) -> Result<(Vec<&'b Block>, &'static [Aggr], Vec<Vec<u32>>, usize), BlockError> {
    let mut order: Vec<&Block> = blocks.to_vec();
    order.sort_by(|x, y| (x.meta().min_time, &x.meta().id).cmp(&(y.meta().min_time, &y.meta().id)));
    let refs = postings(&order, matchers)?;
    let threads = read_threads(&refs);
    Ok((order, aggregates_for(func), refs, threads))
}

/// Threads for a read of the series `refs` (per block): one per [`MIN_SERIES_PER_THREAD`]
/// series of the block with the most, at most [`MAX_READ_THREADS`] and the machine's.
fn read_threads(refs: &[Vec<u32>]) -> usize {
    let most = refs.iter().map(Vec::len).max().unwrap_or(0);
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_READ_THREADS)
        .min(most / MIN_SERIES_PER_THREAD)
        .max(1)
}

/// [`rollup_samples_blocks`] over the series references `refs[i]` of each block of `order`
/// (sorted by time), on this thread.
fn read_rollups(
    order: &[&Block],
    matchers: &[Matcher],
    refs: Vec<Vec<u32>>,
    aggrs: &[Aggr],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    let mut merge = SeriesMerge::with_refs(order, matchers, refs, aggrs, mint, maxt)?;
    let mut out = Vec::new();
    let mut aux = SampleBatch::default();
    while let Some((labels, parts)) = merge.next_series()? {
        let mut batch = SampleBatch::default();
        read_one(order, &labels, &parts, aggrs, mint, maxt, &mut batch, &mut aux)?;
        if !batch.is_empty() {
            out.push((labels, batch));
        }
    }
    Ok(out)
}

/// Reads one series' answer (per [`aggregates_for`]) from its block `parts` into `batch`
/// (cleared first, grown once to the points the parts can hold); `aux` is scratch space.
#[allow(clippy::too_many_arguments)]
fn read_one(
    order: &[&Block],
    labels: &Labels,
    parts: &[(usize, Vec<crate::block::ChunkRef>)],
    aggrs: &[Aggr],
    mint: i64,
    maxt: i64,
    batch: &mut SampleBatch,
    aux: &mut SampleBatch,
) -> Result<(), BlockError> {
    // Room for every point the parts can hold in [mint, maxt] (rollup points are a
    // resolution apart), so the batch is allocated once.
    let capacity: usize = parts
        .iter()
        .map(|(i, _)| {
            let m = order[*i].meta();
            let span = maxt.min(m.max_time - 1).saturating_sub(mint.max(m.min_time));
            if m.resolution_ms > 0 && span >= 0 { (span / m.resolution_ms + 1) as usize } else { 0 }
        })
        .sum();
    let Some(&first) = aggrs.first() else {
        batch.clear();
        return Ok(());
    };
    read_parts(order, parts, first, mint, maxt, capacity, batch)?;
    match aggrs {
        [Aggr::Counter] => {
            // The last bucket's max anchors the running total.
            let anchor = match batch.timestamps.last().copied() {
                Some(t) => {
                    read_parts(order, parts, Aggr::Max, t, t, 1, aux)?;
                    aux.values.last().copied().filter(|_| aux.timestamps.last() == Some(&t))
                }
                None => None,
            };
            running_total(&mut batch.values, anchor);
        }
        [Aggr::Sum, Aggr::Count] => {
            // The counts on the sums' grid: values alone when the chunks line up (as the
            // writer lays them out), else with timestamps to compare.
            aux.clear();
            let aligned = read_parts_values(order, parts, Aggr::Count, Aggr::Sum, mint, maxt, &mut aux.values)?;
            if !aligned {
                read_parts(order, parts, Aggr::Count, mint, maxt, capacity, aux)?;
            }
            if aux.values.len() != batch.values.len() || (!aligned && aux.timestamps != batch.timestamps) {
                return Err(BlockError::InvalidSamples {
                    series: labels.to_string(),
                    reason: "rollup sum and count do not share timestamps".into(),
                });
            }
            for (v, n) in batch.values.iter_mut().zip(&aux.values) {
                *v /= *n;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Turns per-bucket increases into a running total ending at `anchor` (or starting from the
/// first increase when there is none).
fn running_total(values: &mut [f64], anchor: Option<f64>) {
    let mut acc = 0.0;
    for v in values.iter_mut() {
        acc += *v;
        *v = acc;
    }
    if let Some(a) = anchor.filter(|a| a.is_finite())
        && let Some(&total) = values.last()
    {
        let shift = a - total;
        for v in values.iter_mut() {
            *v += shift;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;

    fn meta(id: &str, res: i64, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            resolution_ms: res,
            stats: Default::default(),
            compaction: Default::default(),
            out_of_order: false,
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

    #[test]
    fn default_config_is_valid() {
        TierConfig::default().validate().unwrap();
        let mut bad = TierConfig::default();
        bad.tiers[1].block_range_ms = DAY + H;
        assert!(bad.validate().unwrap_err().contains("tier 1"));
        bad.tiers[1] = Tier { resolution_ms: 90_000, retention_ms: DAY, block_range_ms: DAY };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn routes_by_step_range_and_data() {
        let cfg = TierConfig::default();
        let blocks =
            vec![meta("r", 0, 20 * DAY, 30 * DAY), meta("m", M, 10 * DAY, 29 * DAY), meta("h", H, 0, 28 * DAY)];
        // last hour, 15 s step: raw
        assert_eq!(route(&hints(30 * DAY - H, 30 * DAY, 15_000, 0, None), &cfg, &blocks), 0);
        // a day at 2 min: 1 minute
        assert_eq!(route(&hints(28 * DAY, 29 * DAY, 120_000, 0, None), &cfg, &blocks), M);
        // 30 days at 1 h: 1 hour
        assert_eq!(route(&hints(0, 30 * DAY, H, 0, None), &cfg, &blocks), H);
        // rate(x[5m]) at 1 h step: the range bounds the resolution
        assert_eq!(route(&hints(0, 30 * DAY, H, 5 * M, Some("rate")), &cfg, &blocks), M);
        // coarse tier without data for the range: finer
        assert_eq!(route(&hints(28 * DAY + H, 30 * DAY, H, 0, None), &cfg, &blocks), M);
        // the hints' start already covers the range: a range reaching back into the hour
        // tier's last block from a start past it does not count as data there
        assert_eq!(route(&hints(28 * DAY + H, 30 * DAY, H, 2 * H, Some("max_over_time")), &cfg, &blocks), M);
        // count_over_time prefers raw while there is some
        assert_eq!(route(&hints(0, 30 * DAY, H, H, Some("count_over_time")), &cfg, &blocks), 0);
        assert_eq!(route(&hints(0, 5 * DAY, H, H, Some("count_over_time")), &cfg, &blocks), H);
        // instant query without range: raw
        assert_eq!(route(&hints(0, 30 * DAY, 0, 0, None), &cfg, &blocks), 0);
    }

    #[test]
    fn plan_splits_without_double_counting() {
        let cfg = TierConfig::default();
        let blocks = vec![meta("m", M, DAY, 2 * DAY), meta("h", H, 0, DAY)];
        let segs = plan(&hints(0, 3 * DAY, H, 0, None), &cfg, &blocks, 0, 3 * DAY);
        assert_eq!(
            segs,
            vec![
                Segment { resolution_ms: H, mint: 0, maxt: DAY - H },
                // source time (DAY - H, DAY - M] is in neither rollup block
                Segment { resolution_ms: 0, mint: DAY - H + 1, maxt: DAY - M },
                Segment { resolution_ms: M, mint: DAY, maxt: 2 * DAY - M },
                Segment { resolution_ms: 0, mint: 2 * DAY - M + 1, maxt: 3 * DAY },
            ]
        );
        // Consecutive segments partition source time: a rollup point p answers (p - R, p].
        assert_eq!(segs[2].mint - M, segs[1].maxt);
    }

    #[test]
    fn ranges_fed() {
        let t = Tier { resolution_ms: M, retention_ms: DAY, block_range_ms: DAY };
        // A raw block [0, 2h) feeds day [0, 1d) only.
        assert_eq!(ranges_fed_by(&t, 0, 0, 2 * H, false), vec![(0, DAY)]);
        // The last raw block of a day also feeds the next day (its last minute, and lookback).
        assert_eq!(ranges_fed_by(&t, 0, DAY - 2 * H, DAY, false), vec![(0, DAY), (DAY, 2 * DAY)]);
    }

    /// Two overlapping 1-hour blocks of `n` series (some only in one block).
    fn two_blocks(dir: &Path, n: usize) -> Vec<Block> {
        use crate::block::{BlockCompaction, BlockWriter};
        for (a, b) in [(0, 2 * DAY), (DAY, 3 * DAY)] {
            let mut w = BlockWriter::new(dir, H).unwrap();
            let ts: Vec<i64> = (a..b).step_by(H as usize).collect();
            for i in 0..n {
                if (i % 7 == 3 && a == 0) || (i % 11 == 5 && a > 0) {
                    continue;
                }
                let labels = Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:04}"))]).unwrap();
                let v =
                    |k: usize| -> Vec<f64> { ts.iter().map(|t| ((t / H) as usize * 31 + i * 7 + k) as f64).collect() };
                let (count, sum, min, max, counter) = (vec![6.0; ts.len()], v(0), v(1), v(2), v(3));
                let data: [(Aggr, &[i64], &[f64]); 5] = [
                    (Aggr::Count, &ts, &count),
                    (Aggr::Sum, &ts, &sum),
                    (Aggr::Min, &ts, &min),
                    (Aggr::Max, &ts, &max),
                    (Aggr::Counter, &ts, &counter),
                ];
                // Sketches of min, sum and max; every fifth series has none.
                let sketches: Vec<telemetry_agg::CompactDdSketch> = (0..ts.len())
                    .map(|k| {
                        let mut s = telemetry_agg::CompactDdSketch::new(0.01).unwrap();
                        [min[k], sum[k], max[k]].into_iter().for_each(|x| s.add(x));
                        s
                    })
                    .collect();
                let n = if i % 5 == 0 { 0 } else { ts.len() };
                w.add_series_with_sketches(&labels, &data, &ts[..n], &sketches[..n]).unwrap();
            }
            w.finish(a, b, BlockCompaction::default()).unwrap();
        }
        crate::block::open_blocks(dir).unwrap()
    }

    #[test]
    fn averages_pair_sums_with_counts_across_adjacent_blocks() {
        use crate::block::{BlockCompaction, BlockWriter, BlockWriterOptions};
        let tmp = tempfile::tempdir().unwrap();
        // Three adjacent days of 1-hour rollups in chunks of 5 points, counts varying.
        let opts = BlockWriterOptions { chunk_max_samples: 5, ..Default::default() };
        for day in 0..3 {
            let (a, b) = (day * DAY, (day + 1) * DAY);
            let mut w = BlockWriter::with_options(tmp.path(), H, opts).unwrap();
            let ts: Vec<i64> = (a..b).step_by(H as usize).collect();
            for i in 0..3 {
                let labels = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]).unwrap();
                let count: Vec<f64> = ts.iter().map(|t| (1 + (t / H) % 4) as f64).collect();
                let sum: Vec<f64> = ts.iter().map(|t| (t / H * 10 + i) as f64 / 4.0).collect();
                w.add_series(&labels, &[(Aggr::Count, &ts, &count), (Aggr::Sum, &ts, &sum)]).unwrap();
            }
            w.finish(a, b, BlockCompaction::default()).unwrap();
        }
        let blocks = crate::block::open_blocks(tmp.path()).unwrap();
        let order: Vec<&Block> = blocks.iter().collect();
        // Ranges cutting chunks at both ends, and the whole span.
        for (mint, maxt) in [(2 * H + 1, 2 * DAY + 7 * H), (0, 3 * DAY), (DAY - 3 * H, DAY + 2 * H)] {
            let got = rollup_samples_blocks(None, &order, &[], mint, maxt).unwrap();
            assert_eq!(got.len(), 3);
            for (labels, batch) in &got {
                let i: i64 = labels.get("i").unwrap().parse().unwrap();
                let want_ts: Vec<i64> =
                    (0..3 * DAY).step_by(H as usize).filter(|t| (mint..=maxt).contains(t)).collect();
                assert_eq!(batch.timestamps, want_ts, "{labels}");
                for (t, v) in batch.timestamps.iter().zip(&batch.values) {
                    let want = (t / H * 10 + i) as f64 / 4.0 / (1 + (t / H) % 4) as f64;
                    assert_eq!(v.to_bits(), want.to_bits(), "{labels} at {t}");
                }
            }
        }
    }

    #[test]
    fn parallel_read_equals_one_thread() {
        let tmp = tempfile::tempdir().unwrap();
        let blocks = two_blocks(tmp.path(), 600);
        let order: Vec<&Block> = blocks.iter().collect();
        let matchers = [Matcher::equal("__name__", "m")];
        for func in [None, Some("max_over_time"), Some("rate")] {
            let aggrs = aggregates_for(func);
            let (mint, maxt) = (H, 3 * DAY - 2 * H);
            let one = read_rollups(&order, &matchers, postings(&order, &matchers).unwrap(), aggrs, mint, maxt).unwrap();
            // Series missing from both blocks are in neither.
            assert_eq!(one.len(), (0..600).filter(|i| !(i % 7 == 3 && i % 11 == 5)).count());
            for parts in 1..=5 {
                let split = split_refs(&order, postings(&order, &matchers).unwrap(), parts).unwrap();
                assert_eq!(split.len(), parts);
                let mut joined = Vec::new();
                for p in split {
                    joined.extend(read_rollups(&order, &matchers, p, aggrs, mint, maxt).unwrap());
                }
                assert_eq!(joined, one, "{func:?} in {parts} parts");
            }
            assert_eq!(rollup_samples_blocks(func, &order, &matchers, mint, maxt).unwrap(), one, "{func:?}");
            let mut each = Vec::new();
            rollup_samples_each(func, &order, &matchers, mint, maxt, &mut |l, b| {
                each.push((l.clone(), b.clone()));
                Ok(())
            })
            .unwrap();
            assert_eq!(each, one, "{func:?} series by series");
            // An error from the consumer stops the read and is what the read returns.
            let mut calls = 0;
            let r = rollup_samples_each(func, &order, &matchers, mint, maxt, &mut |_, _| {
                calls += 1;
                if calls == 10 { Err(BlockError::Config("stop".into())) } else { Ok(()) }
            });
            assert!(matches!(r, Err(BlockError::Config(m)) if m == "stop"), "{func:?}");
            assert_eq!(calls, 10, "{func:?}");
        }
        // Quantiles from sketches (and averages for the series without): the same on one
        // thread and on several.
        let (mint, maxt) = (H, 3 * DAY - 2 * H);
        let mut h = hints(0, maxt, 6 * H, 6 * H, Some("quantile_over_time"));
        h.quantile = Some(0.5);
        let refs = postings(&order, &matchers).unwrap();
        let one = read_quantiles(&h, 0.5, &order, &matchers, refs, mint, maxt).unwrap();
        assert_eq!(one.len(), (0..600).filter(|i| !(i % 7 == 3 && i % 11 == 5)).count());
        assert_eq!(one[1].1.len() as i64, (maxt - mint) / (6 * H) + 1, "one sample per evaluation");
        assert_eq!(one[0].1.len() as i64, (maxt - mint) / H + 1, "bucket averages without sketches");
        assert!(read_threads(&postings(&order, &matchers).unwrap()) > 1 || available_threads() == 1);
        assert_eq!(rollup_quantiles_blocks(&h, &order, &matchers, mint, maxt).unwrap(), one);
    }

    fn available_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    #[test]
    fn invalid_config_is_a_config_error() {
        let mut cfg = TierConfig::default();
        cfg.tiers[0].resolution_ms = 0;
        let err = maintain(Path::new("/nonexistent"), &cfg, &[], 0).unwrap_err();
        assert!(matches!(err, BlockError::Config(ref m) if m.contains("tier 0")), "{err}");
    }

    /// Quantiles from sketches: evaluation times from the hints' end and step, windows of the
    /// hints' range, the fallback for a series without sketches, and bad hints.
    #[test]
    fn quantiles_from_sketches_follow_the_evaluation_times() {
        use crate::block::{BlockCompaction, BlockWriter};
        use telemetry_agg::CompactDdSketch;
        let tmp = tempfile::tempdir().unwrap();
        let mut w = BlockWriter::new(tmp.path(), M).unwrap();
        let ts: Vec<i64> = (1..=120).map(|i| i * M).collect();
        // Bucket i holds the values 10·i + 1 ..= 10·i + 6.
        let vals = |i: i64| (1..=6).map(move |j| (10 * i + j) as f64);
        let sketches: Vec<CompactDdSketch> = (1..=120)
            .map(|i| {
                let mut s = CompactDdSketch::new(0.01).unwrap();
                vals(i).for_each(|v| s.add(v));
                s
            })
            .collect();
        let count = vec![6.0; 120];
        let sum: Vec<f64> = (1..=120).map(|i| vals(i).sum()).collect();
        let data: [(Aggr, &[i64], &[f64]); 2] = [(Aggr::Count, &ts, &count), (Aggr::Sum, &ts, &sum)];
        let a = Labels::from_pairs([("__name__", "m"), ("s", "a")]).unwrap();
        let b = Labels::from_pairs([("__name__", "m"), ("s", "b")]).unwrap();
        w.add_series_with_sketches(&a, &data, &ts, &sketches).unwrap();
        w.add_series(&b, &data).unwrap();
        w.finish(0, 121 * M, BlockCompaction::default()).unwrap();
        let blocks = crate::block::open_blocks(tmp.path()).unwrap();
        let refs: Vec<&Block> = blocks.iter().collect();
        let q = |end: i64, step: i64, range: i64, phi: f64, mint: i64, maxt: i64| {
            let mut h = hints(0, end, step, range, Some("quantile_over_time"));
            h.quantile = Some(phi);
            rollup_quantiles_blocks(&h, &refs, &[], mint, maxt)
        };
        // Step 10 min, range 10 min, end 115 min past maxt 110 min: times 105, 95, …, 5 min.
        let got = q(115 * M, 10 * M, 10 * M, 1.0, M, 110 * M).unwrap();
        let sa = &got[0].1;
        assert_eq!(sa.timestamps, (0..11).map(|k| 5 * M + k * 10 * M).collect::<Vec<_>>());
        // The window (t − 10 min, t] holds buckets t/M − 9 ..= t/M: its largest value is
        // 10 · (t/M) + 6, within 1 %.
        for (t, v) in sa.timestamps.iter().zip(&sa.values) {
            let exact = (10 * (t / M) + 6) as f64;
            assert!((v - exact).abs() <= 0.01 * exact, "{t}: {v} vs {exact}");
        }
        // Steps and ranges shorter than, equal to and longer than each other and the bucket:
        // every window's quantile is that of its buckets' sketches merged directly, bit for
        // bit, at every evaluation time 119 min − k·step down to mint.
        for step in [M, 3 * M, 10 * M, 37 * M, 200 * M] {
            for range in [M, 2 * M, 10 * M, 45 * M, 300 * M] {
                let got = q(119 * M, step, range, 0.7, M, 120 * M).unwrap();
                let sa = &got[0].1;
                let want_ts: Vec<i64> = (0..).map(|k| 119 * M - k * step).take_while(|&t| t >= M).collect();
                assert_eq!(sa.timestamps, want_ts.into_iter().rev().collect::<Vec<_>>(), "step {step} range {range}");
                for (&t, v) in sa.timestamps.iter().zip(&sa.values) {
                    let mut want = CompactDdSketch::new(0.01).unwrap();
                    for (&p, sk) in ts.iter().zip(&sketches) {
                        if p > t - range && p <= t {
                            want.merge(sk).unwrap();
                        }
                    }
                    let want = want.quantile(0.7).unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "step {step} range {range} at {t}");
                }
            }
        }
        // φ = 0 over a one-bucket window is the bucket's smallest value.
        let got = q(60 * M, 0, M, 0.0, M, 120 * M).unwrap();
        assert_eq!(got[0].1.timestamps, vec![60 * M]);
        assert!((got[0].1.values[0] - 601.0).abs() <= 6.01);
        // Out-of-range φ, as PromQL.
        assert_eq!(q(60 * M, 0, M, -1.0, M, 120 * M).unwrap()[0].1.values, vec![f64::NEG_INFINITY]);
        assert_eq!(q(60 * M, 0, M, 2.0, M, 120 * M).unwrap()[0].1.values, vec![f64::INFINITY]);
        // The series without sketches reads as bucket averages.
        assert_eq!(got[1].0, b);
        assert_eq!(got[1].1.values[59], 603.5);
        assert_eq!(got[1].1.len(), 120);
        // No endless walk down to i64::MIN; too many steps is an error, no φ is an error.
        assert_eq!(q(i64::MAX, 0, M, 0.5, i64::MIN, 120 * M).unwrap().len(), 1);
        assert!(matches!(q(120 * M, 1, M, 0.5, i64::MIN, 120 * M), Err(BlockError::Config(_))));
        let h = hints(0, M, M, M, Some("quantile_over_time"));
        assert!(matches!(rollup_quantiles_blocks(&h, &refs, &[], 0, M), Err(BlockError::Config(_))));
    }

    #[test]
    fn running_total_anchors_at_the_end() {
        let mut v = vec![1.0, 2.0, 3.0];
        running_total(&mut v, Some(100.0));
        assert_eq!(v, vec![95.0, 97.0, 100.0]);
        let mut v = vec![1.0, 2.0];
        running_total(&mut v, None);
        assert_eq!(v, vec![1.0, 3.0]);
    }
}
