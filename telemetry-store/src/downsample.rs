//! Building one rollup block from the blocks of the next finer tier.
//!
//! A rollup block of resolution `R` covering `[A, B)` (both multiples of the tier's block
//! range) holds the rollup points with timestamps in `[A, B)`, that is the buckets
//! `(A − R, B − R]` of source time (see [`crate::rollup`] for the bucket rule). From raw
//! blocks, the samples in `(A − R, B − R]` are read, plus those of the
//! [`COUNTER_LOOKBACK_MS`] before, whose last value starts each series' first counter step.
//! From a finer rollup tier, its points in `(A − R, B − R]` are read and coarsened.

use std::sync::Arc;

use telemetry_agg::CompactDdSketch;
use telemetry_core::{Labels, Matcher, SampleBatch, matches_all};
use telemetry_index::{IndexReader, SymbolCache};

use crate::block::{Aggr, Block, BlockCompaction, BlockError, BlockMeta, BlockWriter, ChunkRef, INDEX_FILE};
use crate::rollup::{BucketSketches, RollupError, Rollups};

/// How far before a raw rollup range the builder looks for each series' previous sample (the
/// start of its first counter step): 1 hour. A series whose previous sample is older
/// contributes no counter step across the range start (as after a gap in PromQL's `increase`
/// over a window that does not reach back that far).
pub const COUNTER_LOOKBACK_MS: i64 = 3_600_000;

/// The five rollup aggregates in the order [`Rollups`] holds them.
pub(crate) const ROLLUP_AGGRS: [Aggr; 5] = [Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter];

/// Merges `b` into `acc` by timestamp; `acc` wins on equal timestamps.
fn merge_into(acc: &mut SampleBatch, b: &SampleBatch) {
    if b.is_empty() {
        return;
    }
    if acc.timestamps.last().is_none_or(|&l| l < b.timestamps[0]) {
        acc.timestamps.extend_from_slice(&b.timestamps);
        acc.values.extend_from_slice(&b.values);
        return;
    }
    let mut out = SampleBatch::default();
    let (mut i, mut j) = (0, 0);
    while i < acc.len() || j < b.len() {
        let ta = acc.timestamps.get(i).copied().unwrap_or(i64::MAX);
        let tb = b.timestamps.get(j).copied().unwrap_or(i64::MAX);
        if ta <= tb {
            out.push(ta, acc.values[i]);
            i += 1;
            if ta == tb {
                j += 1;
            }
        } else {
            out.push(tb, b.values[j]);
            j += 1;
        }
    }
    *acc = out;
}

/// Walks the series of several blocks in label order (each block's series references are in
/// label order), yielding each series once with the chunk references it has in every block.
/// Only one series is in memory at a time: building a rollup block and answering a query both
/// stream through it.
pub(crate) struct SeriesMerge<'a> {
    blocks: &'a [&'a Block],
    matchers: &'a [Matcher],
    refs: Vec<Vec<u32>>,
    pos: Vec<usize>,
    heads: Vec<Option<(Labels, Vec<ChunkRef>)>>,
    /// Per block, the label strings read so far.
    symbols: Vec<SymbolCache>,
    /// Skip series with no chunk of these kinds overlapping `[mint, maxt]`.
    aggrs: &'a [Aggr],
    mint: i64,
    maxt: i64,
}

impl<'a> SeriesMerge<'a> {
    /// Series of `blocks` matching `matchers` (all for none) with a chunk of one of `aggrs`
    /// overlapping `[mint, maxt]`.
    pub(crate) fn new(
        blocks: &'a [&'a Block],
        matchers: &'a [Matcher],
        aggrs: &'a [Aggr],
        mint: i64,
        maxt: i64,
    ) -> Result<Self, BlockError> {
        Self::with_refs(blocks, matchers, postings(blocks, matchers)?, aggrs, mint, maxt)
    }

    /// As [`new`](Self::new), walking only the series references `refs[i]` of block `i`
    /// (each in increasing order, so in label order).
    pub(crate) fn with_refs(
        blocks: &'a [&'a Block],
        matchers: &'a [Matcher],
        refs: Vec<Vec<u32>>,
        aggrs: &'a [Aggr],
        mint: i64,
        maxt: i64,
    ) -> Result<Self, BlockError> {
        let n = blocks.len();
        let symbols = (0..n).map(|_| SymbolCache::new()).collect();
        let mut m =
            SeriesMerge { blocks, matchers, refs, pos: vec![0; n], heads: vec![None; n], symbols, aggrs, mint, maxt };
        for i in 0..n {
            m.advance(i)?;
        }
        Ok(m)
    }

    fn advance(&mut self, i: usize) -> Result<(), BlockError> {
        self.heads[i] = None;
        while let Some(&r) = self.refs[i].get(self.pos[i]) {
            self.pos[i] += 1;
            // Labels and chunk references in one look-up: nearly every series of a block
            // chosen for a range has chunks in it.
            let (labels, crefs) = self.blocks[i].series_cached(r, &mut self.symbols[i])?;
            if !crefs.iter().any(|c| self.aggrs.contains(&c.aggr) && c.max_t >= self.mint && c.min_t <= self.maxt) {
                continue;
            }
            if matches_all(self.matchers, &labels) {
                self.heads[i] = Some((labels, crefs));
                break;
            }
        }
        Ok(())
    }

    /// The next series: its labels and, per block holding it (by index into `blocks`), its
    /// chunk references.
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_series(&mut self) -> Result<Option<(Labels, Vec<(usize, Vec<ChunkRef>)>)>, BlockError> {
        let Some(min) = self.heads.iter().flatten().map(|(l, _)| l).min().cloned() else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for i in 0..self.heads.len() {
            if self.heads[i].as_ref().is_some_and(|(l, _)| *l == min) {
                if let Some((_, crefs)) = self.heads[i].take() {
                    parts.push((i, crefs));
                }
                self.advance(i)?;
            }
        }
        Ok(Some((min, parts)))
    }
}

/// The series references of each of `blocks` matching `matchers` (all for none), in
/// increasing order (so in label order).
pub(crate) fn postings(blocks: &[&Block], matchers: &[Matcher]) -> Result<Vec<Vec<u32>>, BlockError> {
    let mut refs = Vec::with_capacity(blocks.len());
    for b in blocks {
        refs.push(if matchers.is_empty() {
            (0..b.num_series()).collect()
        } else {
            b.index()
                .postings_for_matchers(matchers)
                .map_err(|source| BlockError::Index { path: b.dir().join(INDEX_FILE), source })?
                .into_vec()
        });
    }
    Ok(refs)
}

/// Splits the references `refs[i]` of each of `blocks` into `parts` label ranges, cut at the
/// labels of evenly spaced series of the longest list: part `k` of every block holds the
/// series with labels in `[L_k, L_{k+1})`, so a series is in the same part of every block
/// and the parts, read in order, give the series in label order. Fewer parts come back when
/// cut labels repeat.
pub(crate) fn split_refs(
    blocks: &[&Block],
    refs: Vec<Vec<u32>>,
    parts: usize,
) -> Result<Vec<Vec<Vec<u32>>>, BlockError> {
    let Some(longest) = (0..refs.len()).max_by_key(|&i| refs[i].len()) else {
        return Ok(vec![refs]);
    };
    let len = refs[longest].len();
    let mut cuts: Vec<Labels> = Vec::new();
    for k in 1..parts {
        let l = blocks[longest].labels(refs[longest][k * len / parts])?;
        if cuts.last().is_none_or(|c| *c < l) {
            cuts.push(l);
        }
    }
    // Per block, the index of the first series at or above each cut (binary search).
    let mut out: Vec<Vec<Vec<u32>>> = vec![Vec::with_capacity(refs.len()); cuts.len() + 1];
    for (b, list) in blocks.iter().zip(refs) {
        let mut start = 0;
        for (k, cut) in cuts.iter().enumerate() {
            let (mut lo, mut hi) = (start, list.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if b.labels(list[mid])? < *cut {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            out[k].push(list[start..lo].to_vec());
            start = lo;
        }
        out[cuts.len()].push(list[start..].to_vec());
    }
    Ok(out)
}

/// Reads kind `aggr` over `[mint, maxt]` from each block part of one series into `out`
/// (cleared first), in block order; parts after the first are merged by timestamp (earlier
/// blocks win) when they overlap what is already there. `capacity` is reserved up front.
pub(crate) fn read_parts(
    blocks: &[&Block],
    parts: &[(usize, Vec<ChunkRef>)],
    aggr: Aggr,
    mint: i64,
    maxt: i64,
    capacity: usize,
    out: &mut SampleBatch,
) -> Result<(), BlockError> {
    out.clear();
    out.timestamps.reserve(capacity);
    out.values.reserve(capacity);
    let mut tmp = SampleBatch::default();
    for (i, crefs) in parts {
        let b = blocks[*i];
        let first =
            crefs.iter().filter(|c| c.aggr == aggr && c.max_t >= mint && c.min_t <= maxt).map(|c| c.min_t).min();
        match (first, out.timestamps.last()) {
            (None, _) => {}
            (Some(f), Some(&last)) if f <= last => {
                tmp.clear();
                b.read_series(crefs, aggr, mint, maxt, &mut tmp)?;
                merge_into(out, &tmp);
            }
            _ => b.read_series(crefs, aggr, mint, maxt, out)?,
        }
    }
    Ok(())
}

/// The values alone of what [`read_parts`] reads, appended to `out`, when `aggr`'s chunks
/// line up with `like`'s (same time ranges in every part) and no two parts overlap, so that
/// the values pair one to one with the timestamps [`read_parts`] gives for `like`; `false`
/// (and `out` untouched) otherwise, for the caller to read with timestamps.
pub(crate) fn read_parts_values(
    blocks: &[&Block],
    parts: &[(usize, Vec<ChunkRef>)],
    aggr: Aggr,
    like: Aggr,
    mint: i64,
    maxt: i64,
    out: &mut Vec<f64>,
) -> Result<bool, BlockError> {
    // The last time an earlier part may hold; a part must start after it.
    let mut prev_max: Option<i64> = None;
    for (_, crefs) in parts {
        let ranges = |k: Aggr| {
            crefs.iter().filter(move |c| c.aggr == k && c.max_t >= mint && c.min_t <= maxt).map(|c| (c.min_t, c.max_t))
        };
        if !ranges(aggr).eq(ranges(like)) {
            return Ok(false);
        }
        if let (Some(first), Some(p)) = (ranges(aggr).map(|r| r.0).min(), prev_max)
            && first.max(mint) <= p
        {
            return Ok(false);
        }
        if let Some(m) = ranges(aggr).map(|r| r.1.min(maxt)).max() {
            prev_max = Some(prev_max.map_or(m, |p| p.max(m)));
        }
    }
    let start = out.len();
    for (i, crefs) in parts {
        if let Err(e) = blocks[*i].read_series_values(crefs, aggr, mint, maxt, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(true)
}

/// Where [`rollups_from_raw`] and [`rollups_from_rollups`] send each series: its rollups and,
/// when sketches are kept, its bucket sketches.
pub(crate) type RollupSink<'s> = dyn FnMut(&Labels, &Rollups, &BucketSketches) -> Result<(), BlockError> + 's;

/// Streams rollups at `resolution_ms` for `[a, b)` built from raw `sources` into `sink`, with
/// a sketch per bucket when `alpha` is given.
pub(crate) fn rollups_from_raw(
    sources: &[&Block],
    resolution_ms: i64,
    a: i64,
    b: i64,
    alpha: Option<f64>,
    sink: &mut RollupSink<'_>,
) -> Result<(), BlockError> {
    let lo = a - resolution_ms; // exclusive
    let hi = b - resolution_ms; // inclusive
    let mut merge = SeriesMerge::new(sources, &[], &[Aggr::Raw], lo + 1, hi)?;
    let mut batch = SampleBatch::default();
    while let Some((labels, parts)) = merge.next_series()? {
        read_parts(sources, &parts, Aggr::Raw, lo - COUNTER_LOOKBACK_MS, hi, 0, &mut batch)?;
        let k = batch.timestamps.partition_point(|&t| t <= lo);
        let prev = batch.values[..k].iter().rev().copied().find(|v| !v.is_nan());
        let invalid = |e: RollupError| BlockError::InvalidSamples { series: labels.to_string(), reason: e.to_string() };
        let (ts, vs) = (&batch.timestamps[k..], &batch.values[k..]);
        let mut r = Rollups::from_raw(ts, vs, resolution_ms, prev).map_err(invalid)?;
        r.retain_range(a, b);
        let mut sk = match alpha {
            Some(alpha) => BucketSketches::from_raw(ts, vs, resolution_ms, alpha).map_err(invalid)?,
            None => BucketSketches::default(),
        };
        sk.retain_range(a, b);
        if !r.is_empty() {
            sink(&labels, &r, &sk)?;
        }
    }
    Ok(())
}

/// Streams rollups at `resolution_ms` for `[a, b)` built from rollup `sources` (a finer
/// tier of `source_resolution_ms`) into `sink`; with `alpha`, the sources' sketches of that
/// alpha are merged into sketches of the coarse buckets they cover completely.
pub(crate) fn rollups_from_rollups(
    sources: &[&Block],
    source_resolution_ms: i64,
    resolution_ms: i64,
    a: i64,
    b: i64,
    alpha: Option<f64>,
    sink: &mut RollupSink<'_>,
) -> Result<(), BlockError> {
    let (mint, maxt) = (a - resolution_ms + 1, b - resolution_ms);
    let mut merge = SeriesMerge::new(sources, &[], &ROLLUP_AGGRS, mint, maxt)?;
    let mut cols: [SampleBatch; 5] = Default::default();
    let mut fine_sketches = BucketSketches::default();
    while let Some((labels, parts)) = merge.next_series()? {
        for (aggr, col) in ROLLUP_AGGRS.iter().zip(cols.iter_mut()) {
            read_parts(sources, &parts, *aggr, mint, maxt, 0, col)?;
        }
        let [count, sum, min, max, counter] = &cols;
        if [sum, min, max, counter].iter().any(|c| c.timestamps != count.timestamps) {
            return Err(BlockError::InvalidSamples {
                series: labels.to_string(),
                reason: "rollup aggregates do not share their timestamps".into(),
            });
        }
        let invalid = |e: RollupError| BlockError::InvalidSamples { series: labels.to_string(), reason: e.to_string() };
        let mut sk = match alpha {
            Some(alpha) => {
                read_parts_sketches(sources, &parts, mint, maxt, &mut fine_sketches)?;
                fine_sketches.coarsen(&count.timestamps, source_resolution_ms, resolution_ms, alpha).map_err(invalid)?
            }
            None => BucketSketches::default(),
        };
        sk.retain_range(a, b);
        let fine = Rollups {
            resolution_ms: source_resolution_ms,
            timestamps: count.timestamps.clone(),
            count: count.values.clone(),
            sum: sum.values.clone(),
            min: min.values.clone(),
            max: max.values.clone(),
            counter: counter.values.clone(),
        };
        let mut r = fine.coarsen(resolution_ms).map_err(invalid)?;
        r.retain_range(a, b);
        if !r.is_empty() {
            sink(&labels, &r, &sk)?;
        }
    }
    Ok(())
}

/// A series' sketches over `[mint, maxt]` from its block `parts` into `out` (cleared first),
/// in time order; where blocks overlap, the earlier block's sketch wins.
pub(crate) fn read_parts_sketches(
    blocks: &[&Block],
    parts: &[(usize, Vec<ChunkRef>)],
    mint: i64,
    maxt: i64,
    out: &mut BucketSketches,
) -> Result<(), BlockError> {
    out.timestamps.clear();
    out.sketches.clear();
    let mut sorted = true;
    for (i, crefs) in parts {
        let start = out.timestamps.len();
        blocks[*i].read_sketches(crefs, mint, maxt, &mut out.timestamps, &mut out.sketches)?;
        if start > 0 && out.timestamps.get(start).is_some_and(|&t| t <= out.timestamps[start - 1]) {
            sorted = false;
        }
    }
    if !sorted {
        let mut pairs: Vec<(i64, CompactDdSketch)> =
            std::mem::take(&mut out.timestamps).into_iter().zip(std::mem::take(&mut out.sketches)).collect();
        earlier_block_wins(&mut pairs, |p| p.0);
        (out.timestamps, out.sketches) = pairs.into_iter().unzip();
    }
    Ok(())
}

/// Puts a series' items read from overlapping blocks (appended block by block, in the
/// blocks' time order) in time order, keeping of equal times the item of the earlier block
/// (a stable sort, then the first of each run).
pub(crate) fn earlier_block_wins<T>(items: &mut Vec<T>, time: impl Fn(&T) -> i64) {
    items.sort_by_key(&time);
    items.dedup_by_key(|x| time(x));
}

/// Writes one rollup block for `[a, b)` from `sources` (raw when `source_resolution_ms` is 0),
/// recording `lineage` as its `compaction.sources`, with bucket sketches of relative accuracy
/// `alpha` when given. Returns `None` (writing nothing) when the sources hold no data for the
/// range. Series are streamed one at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_block(
    blocks_dir: &std::path::Path,
    sources: &[Arc<Block>],
    source_resolution_ms: i64,
    resolution_ms: i64,
    a: i64,
    b: i64,
    alpha: Option<f64>,
    lineage: Vec<String>,
) -> Result<Option<BlockMeta>, BlockError> {
    let refs: Vec<&Block> = sources.iter().map(|b| b.as_ref()).collect();
    let mut writer: Option<BlockWriter> = None;
    let mut sink = |labels: &Labels, r: &Rollups, sk: &BucketSketches| -> Result<(), BlockError> {
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(BlockWriter::new(blocks_dir, resolution_ms)?),
        };
        let ts = &r.timestamps[..];
        w.add_series_with_sketches(
            labels,
            &[
                (Aggr::Count, ts, &r.count),
                (Aggr::Sum, ts, &r.sum),
                (Aggr::Min, ts, &r.min),
                (Aggr::Max, ts, &r.max),
                (Aggr::Counter, ts, &r.counter),
            ],
            &sk.timestamps,
            &sk.sketches,
        )
    };
    if source_resolution_ms == 0 {
        rollups_from_raw(&refs, resolution_ms, a, b, alpha, &mut sink)?;
    } else {
        rollups_from_rollups(&refs, source_resolution_ms, resolution_ms, a, b, alpha, &mut sink)?;
    }
    match writer {
        Some(w) => Ok(Some(w.finish(a, b, BlockCompaction { level: 1, sources: lineage })?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts: &[i64], vs: &[f64]) -> SampleBatch {
        SampleBatch { timestamps: ts.to_vec(), values: vs.to_vec() }
    }

    #[test]
    fn merge_into_prefers_first_and_sorts() {
        let mut acc = batch(&[1, 3, 5], &[1.0, 3.0, 5.0]);
        merge_into(&mut acc, &batch(&[2, 3, 6], &[2.0, 30.0, 6.0]));
        assert_eq!(acc, batch(&[1, 2, 3, 5, 6], &[1.0, 2.0, 3.0, 5.0, 6.0]));
        merge_into(&mut acc, &batch(&[7], &[7.0]));
        assert_eq!(acc.timestamps, vec![1, 2, 3, 5, 6, 7]);
    }
}
