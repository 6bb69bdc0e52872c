//! Compaction of raw blocks: planning which blocks to merge, and merging them.
//!
//! As Prometheus's leveled compactor (`tsdb/compact.go`): first any group of overlapping
//! blocks (out-of-order blocks, leftovers of an interrupted compaction) is merged into one
//! ("vertical" compaction); then, for each configured range above the block range, the blocks
//! that fit in one aligned window of that range are merged once the window lies entirely
//! before the persisted boundary. Duplicate timestamps are dropped (the newest block wins), and
//! so are samples deleted by tombstones ([`crate::tombstone`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use telemetry_core::{Labels, SampleBatch};

use crate::block::{Aggr, Block, BlockCompaction, BlockError, BlockMeta, BlockWriter, BlockWriterOptions};
use crate::tombstone::Tombstones;

/// The next group of raw blocks to merge, if any. Only blocks ending at or before `boundary`
/// take part (newer data is still being written from the head).
pub(crate) fn plan(blocks: &[Arc<Block>], ranges: &[i64], boundary: i64) -> Option<Vec<Arc<Block>>> {
    let mut cands: Vec<&Arc<Block>> =
        blocks.iter().filter(|b| b.meta().resolution_ms == 0 && b.meta().max_time <= boundary).collect();
    cands.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    // Overlapping groups.
    let mut i = 0;
    while i < cands.len() {
        let mut end = cands[i].meta().max_time;
        let mut j = i + 1;
        while j < cands.len() && cands[j].meta().min_time < end {
            end = end.max(cands[j].meta().max_time);
            j += 1;
        }
        if j - i > 1 {
            return Some(cands[i..j].iter().map(|b| Arc::clone(b)).collect());
        }
        i = j;
    }
    // Windows of each range above the smallest.
    for &r in ranges.iter().skip(1).filter(|&&r| r > 0) {
        let mut groups: BTreeMap<i64, Vec<&Arc<Block>>> = BTreeMap::new();
        for b in &cands {
            let w = b.meta().min_time.div_euclid(r);
            let (ws, we) = (w.saturating_mul(r), w.saturating_mul(r).saturating_add(r));
            if b.meta().max_time <= we
                && b.meta().min_time >= ws
                && we <= boundary
                && b.meta().max_time - b.meta().min_time < r
            {
                groups.entry(w).or_default().push(b);
            }
        }
        if let Some(g) = groups.into_values().find(|g| g.len() > 1) {
            return Some(g.into_iter().map(Arc::clone).collect());
        }
    }
    None
}

/// Merges raw blocks into one new block under `parent` (duplicates dropped, the block with the
/// largest id winning a timestamp, samples deleted by `tombstones` dropped); `None` when the
/// inputs are all out-of-order blocks and hold no sample left. (An output with no sample left
/// is still written when an input is an in-order block: its range keeps the persisted
/// boundary.) The inputs are left in place: the caller deletes them once the output is visible.
pub(crate) fn merge(
    parent: &Path,
    inputs: &[Arc<Block>],
    opts: BlockWriterOptions,
    tombstones: &Tombstones,
) -> Result<Option<BlockMeta>, BlockError> {
    // Newest first: merge priority.
    let mut inputs: Vec<&Arc<Block>> = inputs.iter().collect();
    inputs.sort_by(|a, b| b.meta().id.cmp(&a.meta().id));
    let mut series: BTreeMap<Labels, Vec<(usize, u32)>> = BTreeMap::new();
    for (k, b) in inputs.iter().enumerate() {
        for r in 0..b.num_series() {
            series.entry(b.labels(r)?).or_default().push((k, r));
        }
    }
    let mut w = BlockWriter::with_options(parent, 0, opts)?;
    for (labels, refs) in &series {
        let mut parts = Vec::with_capacity(refs.len());
        for &(k, r) in refs {
            let (_, crefs) = inputs[k].series(r)?;
            let mut batch = SampleBatch::default();
            inputs[k].read_series(&crefs, Aggr::Raw, i64::MIN, i64::MAX, &mut batch)?;
            parts.push(batch);
        }
        let mut batch = crate::db::merge_batches(parts);
        tombstones.filter(labels, &mut batch, 0);
        w.add_series(labels, &[(Aggr::Raw, &batch.timestamps, &batch.values)])?;
    }
    if w.num_series() == 0 && inputs.iter().all(|b| b.meta().out_of_order) {
        return Ok(None);
    }
    let min_time = inputs.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max_time = inputs.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let mut sources: Vec<String> = inputs.iter().flat_map(|b| b.meta().compaction.sources.clone()).collect();
    sources.sort();
    sources.dedup();
    let level = inputs.iter().map(|b| b.meta().compaction.level).max().unwrap_or(0) + 1;
    w.set_out_of_order(inputs.iter().all(|b| b.meta().out_of_order));
    Ok(Some(w.finish(min_time, max_time, BlockCompaction { level, sources })?))
}
