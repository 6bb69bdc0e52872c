//! Building one rollup block from the blocks of the next finer tier.
//!
//! A rollup block of resolution `R` covering `[A, B)` (both multiples of the tier's block
//! range) holds the rollup points with timestamps in `[A, B)`, that is the buckets
//! `(A − R, B − R]` of source time (see [`crate::rollup`] for the bucket rule). From raw
//! blocks, the samples in `(A − R, B − R]` are read, plus those of the
//! [`COUNTER_LOOKBACK_MS`] before, whose last value starts each series' first counter step.
//! From a finer rollup tier, its points in `(A − R, B − R]` are read and coarsened.

use std::sync::Arc;

use telemetry_core::{Labels, SampleBatch};

use crate::block::{Aggr, Block, BlockCompaction, BlockError, BlockMeta, BlockWriter};
use crate::rollup::Rollups;

/// How far before a raw rollup range the builder looks for each series' previous sample (the
/// start of its first counter step): 1 hour. A series whose previous sample is older
/// contributes no counter step across the range start (as after a gap in PromQL's `increase`
/// over a window that does not reach back that far).
pub const COUNTER_LOOKBACK_MS: i64 = 3_600_000;

/// The five rollup aggregates in the order [`Rollups`] holds them.
pub(crate) const ROLLUP_AGGRS: [Aggr; 5] = [Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter];

/// Selects `aggr` over `[mint, maxt]` from every block and merges the series by labels;
/// samples of one series from several blocks are merged in time order, the first block's
/// sample winning on equal timestamps (blocks are given in (min_time, id) order).
pub(crate) fn select_merged(
    blocks: &[&Block],
    mint: i64,
    maxt: i64,
    aggr: Aggr,
) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
    let mut all: Vec<(Labels, SampleBatch)> = Vec::new();
    for b in blocks {
        merge_sorted_run(&mut all, b.select(&[], mint, maxt, aggr)?);
    }
    Ok(all)
}

/// Merges `run` (sorted by labels, from a block later in time) into `acc` (sorted by labels):
/// a series in both gets `run`'s samples merged after its own (`acc` wins on equal
/// timestamps). Linear in the two lengths.
pub(crate) fn merge_sorted_run(acc: &mut Vec<(Labels, SampleBatch)>, run: Vec<(Labels, SampleBatch)>) {
    if acc.is_empty() {
        *acc = run;
        return;
    }
    let old = std::mem::take(acc);
    let mut a = old.into_iter().peekable();
    let mut b = run.into_iter().peekable();
    loop {
        let ord = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match ord {
            std::cmp::Ordering::Less => acc.extend(a.next()),
            std::cmp::Ordering::Greater => acc.extend(b.next()),
            std::cmp::Ordering::Equal => {
                if let (Some(mut x), Some(y)) = (a.next(), b.next()) {
                    merge_into(&mut x.1, &y.1);
                    acc.push(x);
                }
            }
        }
    }
}

/// Merges a list of (labels, batch) with possible repeats of a series (stable sort by labels;
/// earlier entries win on equal timestamps).
pub(crate) fn merge_series(mut all: Vec<(Labels, SampleBatch)>) -> Vec<(Labels, SampleBatch)> {
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Labels, SampleBatch)> = Vec::with_capacity(all.len());
    for (labels, batch) in all {
        match out.last_mut() {
            Some((l, acc)) if *l == labels => merge_into(acc, &batch),
            _ => out.push((labels, batch)),
        }
    }
    out
}

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

/// Builds rollups at `resolution_ms` for the range `[a, b)` from raw `sources`.
pub(crate) fn rollups_from_raw(
    sources: &[&Block],
    resolution_ms: i64,
    a: i64,
    b: i64,
) -> Result<Vec<(Labels, Rollups)>, BlockError> {
    let lo = a - resolution_ms; // exclusive
    let hi = b - resolution_ms; // inclusive
    let merged = select_merged(sources, lo - COUNTER_LOOKBACK_MS, hi, Aggr::Raw)?;
    let mut out = Vec::with_capacity(merged.len());
    for (labels, batch) in merged {
        let k = batch.timestamps.partition_point(|&t| t <= lo);
        let prev = batch.values[..k].iter().rev().copied().find(|v| !v.is_nan());
        let mut r = Rollups::from_raw(&batch.timestamps[k..], &batch.values[k..], resolution_ms, prev)
            .map_err(|e| BlockError::InvalidSamples { series: labels.to_string(), reason: e.to_string() })?;
        r.retain_range(a, b);
        if !r.is_empty() {
            out.push((labels, r));
        }
    }
    Ok(out)
}

/// Reads the five aggregates of rollup `blocks` over `[mint, maxt]`, joined per series.
pub(crate) fn read_rollups(
    blocks: &[&Block],
    resolution_ms: i64,
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, Rollups)>, BlockError> {
    let mut cols: Vec<Vec<(Labels, SampleBatch)>> = Vec::with_capacity(5);
    for aggr in ROLLUP_AGGRS {
        cols.push(select_merged(blocks, mint, maxt, aggr)?);
    }
    let mut out = Vec::with_capacity(cols[0].len());
    let mut iters: Vec<_> = cols.into_iter().map(|c| c.into_iter().peekable()).collect();
    let [count, sum, min, max, counter] = &mut iters[..] else {
        return Ok(out); // ok: five columns were pushed above
    };
    for (labels, c) in count {
        let take = |it: &mut std::iter::Peekable<std::vec::IntoIter<(Labels, SampleBatch)>>| {
            while it.peek().is_some_and(|(l, _)| *l < labels) {
                it.next();
            }
            match it.peek() {
                Some((l, _)) if *l == labels => it.next().map(|x| x.1),
                _ => None,
            }
        };
        let (s, mn, mx, ct) = (take(sum), take(min), take(max), take(counter));
        let column = |x: Option<SampleBatch>, name: &str| -> Result<Vec<f64>, BlockError> {
            match x {
                Some(b) if b.timestamps == c.timestamps => Ok(b.values),
                _ => Err(BlockError::InvalidSamples {
                    series: labels.to_string(),
                    reason: format!("rollup aggregate {name} does not share the count's timestamps"),
                }),
            }
        };
        let r = Rollups {
            resolution_ms,
            sum: column(s, "sum")?,
            min: column(mn, "min")?,
            max: column(mx, "max")?,
            counter: column(ct, "counter")?,
            count: c.values,
            timestamps: c.timestamps,
        };
        out.push((labels, r));
    }
    Ok(out)
}

/// Builds rollups at `resolution_ms` for `[a, b)` from rollup `sources` (a finer tier).
pub(crate) fn rollups_from_rollups(
    sources: &[&Block],
    source_resolution_ms: i64,
    resolution_ms: i64,
    a: i64,
    b: i64,
) -> Result<Vec<(Labels, Rollups)>, BlockError> {
    let fine = read_rollups(sources, source_resolution_ms, a - resolution_ms + 1, b - resolution_ms)?;
    let mut out = Vec::with_capacity(fine.len());
    for (labels, f) in fine {
        let mut r = f
            .coarsen(resolution_ms)
            .map_err(|e| BlockError::InvalidSamples { series: labels.to_string(), reason: e.to_string() })?;
        r.retain_range(a, b);
        if !r.is_empty() {
            out.push((labels, r));
        }
    }
    Ok(out)
}

/// Writes one rollup block for `[a, b)` from `sources` (raw when `source_resolution_ms` is 0),
/// recording `lineage` as its `compaction.sources`. Returns `None` (writing nothing) when the
/// sources hold no data for the range.
pub(crate) fn build_block(
    blocks_dir: &std::path::Path,
    sources: &[Arc<Block>],
    source_resolution_ms: i64,
    resolution_ms: i64,
    a: i64,
    b: i64,
    lineage: Vec<String>,
) -> Result<Option<BlockMeta>, BlockError> {
    let refs: Vec<&Block> = sources.iter().map(|b| b.as_ref()).collect();
    let series = if source_resolution_ms == 0 {
        rollups_from_raw(&refs, resolution_ms, a, b)?
    } else {
        rollups_from_rollups(&refs, source_resolution_ms, resolution_ms, a, b)?
    };
    if series.is_empty() {
        return Ok(None);
    }
    let mut w = BlockWriter::new(blocks_dir, resolution_ms)?;
    for (labels, r) in &series {
        let ts = &r.timestamps[..];
        w.add_series(
            labels,
            &[
                (Aggr::Count, ts, &r.count),
                (Aggr::Sum, ts, &r.sum),
                (Aggr::Min, ts, &r.min),
                (Aggr::Max, ts, &r.max),
                (Aggr::Counter, ts, &r.counter),
            ],
        )?;
    }
    let meta = w.finish(a, b, BlockCompaction { level: 1, sources: lineage })?;
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts: &[i64], vs: &[f64]) -> SampleBatch {
        SampleBatch { timestamps: ts.to_vec(), values: vs.to_vec() }
    }

    #[test]
    fn merge_runs() {
        let l = Labels::from_pairs([("__name__", "x")]).unwrap();
        let m = Labels::from_pairs([("__name__", "y")]).unwrap();
        let n = Labels::from_pairs([("__name__", "z")]).unwrap();
        let mut acc = vec![(l.clone(), batch(&[1, 2], &[1.0, 2.0])), (n.clone(), batch(&[1], &[1.0]))];
        merge_sorted_run(&mut acc, vec![(l.clone(), batch(&[2, 3], &[20.0, 3.0])), (m.clone(), batch(&[5], &[5.0]))]);
        assert_eq!(
            acc,
            vec![(l, batch(&[1, 2, 3], &[1.0, 2.0, 3.0])), (m, batch(&[5], &[5.0])), (n, batch(&[1], &[1.0])),]
        );
    }

    #[test]
    fn merge_prefers_first_and_sorts() {
        let l = Labels::from_pairs([("__name__", "x")]).unwrap();
        let m = Labels::from_pairs([("__name__", "y")]).unwrap();
        let merged = merge_series(vec![
            (m.clone(), batch(&[1], &[1.0])),
            (l.clone(), batch(&[1, 3, 5], &[1.0, 3.0, 5.0])),
            (l.clone(), batch(&[2, 3, 6], &[2.0, 30.0, 6.0])),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].0, l);
        assert_eq!(merged[0].1, batch(&[1, 2, 3, 5, 6], &[1.0, 2.0, 3.0, 5.0, 6.0]));
        assert_eq!(merged[1].0, m);
    }
}
