//! The database: head + WAL + on-disk blocks in one directory, with flushing, out-of-order
//! blocks, compaction, tiers and a merged read path.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/wal/…            the head's write-ahead log (see crate::wal)
//! <dir>/blocks/<id>/     blocks (see crate::block), raw and rollup tiers
//! <dir>/tombstones       deleted series intervals (see crate::tombstone)
//! ```
//!
//! # How samples move
//!
//! - Appends go to the head (and its WAL) unless they are older than the **persisted
//!   boundary** (the end of the newest block written from the head): those go, at commit, into
//!   a small block of their own marked `out_of_order`, written and synced before the commit
//!   returns. The head keeps its own ordering rules for everything newer.
//!   Prometheus refuses such samples (`out of bounds`) unless its out-of-order head is enabled;
//!   writing them straight to a block gives the same durability promise without a second
//!   log, at the price of one small block per commit that carries any (they are rare: the head
//!   accepts everything within its out-of-order window of the newest data), and compaction
//!   folds them into the regular blocks.
//! - [`Db::maintain`] persists the head's oldest block range (aligned to
//!   [`DbOptions::block_range_ms`]) once the head spans more than 1.5 ranges, as Prometheus
//!   does, then truncates the head and checkpoints the WAL ([`Head::truncate`]). Before the
//!   head is read, the routing boundary moves to the end of that range, so a concurrent commit
//!   cannot slip a sample into the range being written.
//! - A crash between a block's rename and the WAL checkpoint leaves samples in both. On open,
//!   the head is truncated at the persisted boundary, and reads of the head are clipped to
//!   samples at or after it: nothing is served twice.
//! - Reads merge head and blocks per series; overlapping blocks (out-of-order blocks, a
//!   compaction interrupted before its inputs were deleted) are merged and duplicate
//!   timestamps dropped. For one timestamp held by several sources, the head wins, then the
//!   newest block.
//! - Compaction merges overlapping raw blocks, then adjacent raw blocks inside each window of
//!   [`DbOptions::compaction_ranges`] once the window lies entirely before the boundary.
//!   Inputs are deleted after the output is in place; a kill in between leaves blocks whose
//!   sources another block covers, and those are deleted on open.
//! - [`Db::delete`] records tombstones (series and interval, see [`crate::tombstone`]) in
//!   `<dir>/tombstones`, synced before it returns; every querier created afterwards drops the
//!   deleted samples (head, raw and out-of-order blocks) and the rollup points whose bucket
//!   meets a deleted interval. Writing the head into a block and compaction leave deleted
//!   samples out; [`Db::clean_tombstones`] rewrites the blocks that still hold some (rollup
//!   blocks included, rather than rebuilding them: raw data may be past its retention) and
//!   then drops the tombstones with nothing left to hide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use telemetry_core::{
    Labels, Matcher, Querier, Queryable, SampleBatch, SampleBatches, SelectHints, Series, SeriesSet, StorageError,
};
use telemetry_index::IndexReader;

use crate::SeriesRef;
use crate::block::{
    Aggr, Block, BlockCompaction, BlockError, BlockMeta, BlockWriter, BlockWriterOptions, delete_block, open_blocks,
};
use crate::error::{AppendError, DbError};
use crate::head::{Appender, CommitSummary, Head, HeadOptions, HeadStats};
use crate::tier::{Segment, TierConfig, TierReport};
use crate::tombstone::{TombstoneLog, Tombstones};
use crate::wal::{CheckpointReport, ReplayReport, Wal};

const HOUR: i64 = 3_600_000;

/// Database configuration. Every field has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct DbOptions {
    /// The head and its WAL.
    pub head: HeadOptions,
    /// Range of a block written from the head (default 2 hours); blocks are aligned to it.
    pub block_range_ms: i64,
    /// Compaction window sizes, smallest first (default 2 h, 6 h, 24 h); the first is normally
    /// the block range.
    pub compaction_ranges: Vec<i64>,
    /// Rollup tiers and retention.
    pub tiers: TierConfig,
    /// Chunk and segment sizes of the blocks written.
    pub block: BlockWriterOptions,
}

impl DbOptions {
    /// Checks the options: a positive block range, positive compaction ranges in increasing
    /// order, each a multiple of the one before, and a valid [`TierConfig`].
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.block_range_ms <= 0 {
            return Err(format!("block_range_ms must be positive, got {}", self.block_range_ms));
        }
        for (i, w) in self.compaction_ranges.windows(2).enumerate() {
            if w[0] <= 0 || w[1] <= w[0] || w[1] % w[0] != 0 {
                return Err(format!(
                    "compaction_ranges[{}] = {} is not a larger multiple of compaction_ranges[{i}] = {}",
                    i + 1,
                    w[1],
                    w[0]
                ));
            }
        }
        if self.compaction_ranges.first().is_some_and(|&r| r <= 0) {
            return Err("compaction ranges must be positive".into());
        }
        self.tiers.validate().map_err(|e| format!("tiers: {e}"))
    }
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            head: HeadOptions::default(),
            block_range_ms: 2 * HOUR,
            compaction_ranges: vec![2 * HOUR, 6 * HOUR, 24 * HOUR],
            tiers: TierConfig::default(),
            block: BlockWriterOptions::default(),
        }
    }
}

/// What readers see at one moment: the open blocks and the persisted boundary.
#[derive(Debug, Default)]
struct State {
    blocks: Vec<Arc<Block>>,
    /// Head reads are clipped to samples at or after this (end of the newest block written
    /// from the head); `i64::MIN` before the first.
    boundary: i64,
    /// Deleted series intervals ([`Db::delete`]), applied to every read.
    tombstones: Arc<Tombstones>,
}

/// Statistics of the whole database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStats {
    /// The head's statistics.
    pub head: HeadStats,
    /// Blocks open (all resolutions).
    pub blocks: u64,
    /// Bytes of all blocks on disk (from their `meta.json`).
    pub block_bytes: u64,
    /// Samples (raw) and rollup points in blocks.
    pub block_samples: u64,
    /// Samples older than the persisted boundary written to out-of-order blocks since open.
    pub out_of_order_block_samples: u64,
    /// Samples older than the persisted boundary refused since open because a different
    /// value is stored at their timestamp.
    pub out_of_order_block_refused: u64,
    /// End of the newest block written from the head (ms, exclusive), if any.
    pub persisted_until: Option<i64>,
    /// Series with deleted intervals not yet cleaned ([`Db::delete`], [`Db::clean_tombstones`]).
    pub tombstoned_series: u64,
}

/// What one [`Db::maintain`] did.
#[derive(Debug, Default)]
pub struct MaintenanceReport {
    /// Blocks written from the head.
    pub flushed: Vec<BlockMeta>,
    /// WAL checkpoints done after flushing.
    pub checkpoints: Vec<CheckpointReport>,
    /// Compactions: the inputs' ids and the output.
    pub compacted: Vec<(Vec<String>, BlockMeta)>,
    /// Blocks deleted because a compacted block already holds all their sources.
    pub superseded: Vec<String>,
    /// Rollups written and blocks deleted by [`crate::tier::maintain`] (downsampling and
    /// retention).
    pub tiers: TierReport,
    /// Tombstone intervals dropped because no block holds what they delete any more
    /// (compaction, head persistence and retention left those samples out).
    pub tombstones_dropped: u64,
}

/// What one [`Db::delete`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Series tombstoned (those matching, with data in the range in the head or a block).
    pub series: u64,
    /// The deleted range, `[mint, maxt]` (ms, both inclusive).
    pub mint: i64,
    /// See `mint`.
    pub maxt: i64,
}

/// What one [`Db::clean_tombstones`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Blocks rewritten without their deleted samples: the old id and the new block.
    pub rewritten: Vec<(String, BlockMeta)>,
    /// Tombstone intervals dropped (no block holds their data any more, and the head holds
    /// none it could serve).
    pub dropped: u64,
    /// Series still tombstoned afterwards (their interval reaches the head's range, at or
    /// after the persisted boundary: the head is cleaned when it is persisted).
    pub remaining_series: u64,
}

/// `true` when `block` still holds a sample (raw) or a rollup point whose bucket meets an
/// interval that `tombstones` deletes.
fn holds_deleted(block: &Block, tombstones: &Tombstones) -> Result<bool, BlockError> {
    let m = block.meta();
    let widen = (m.resolution_ms - 1).max(0);
    for (labels, ivs) in tombstones.iter() {
        if !ivs.iter().any(|&(a, b)| a < m.max_time && b.saturating_add(widen) >= m.min_time) {
            continue;
        }
        let Some(r) = block.find_series(labels)? else { continue };
        let (_, crefs) = block.series(r)?;
        let Some(aggr) = crefs.first().map(|c| c.aggr) else { continue };
        let mut batch = SampleBatch::default();
        for &(a, b) in ivs {
            block.read_series(&crefs, aggr, a, b.saturating_add(widen), &mut batch)?;
            if !batch.is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Writes `block` again under `parent` without what `tombstones` deletes (every kind of a
/// rollup block), same range, resolution, lineage and out-of-order flag, one compaction level
/// higher (so that the original is superseded if a kill leaves both).
fn rewrite_block(
    parent: &Path,
    block: &Block,
    tombstones: &Tombstones,
    opts: BlockWriterOptions,
) -> Result<BlockMeta, BlockError> {
    let m = block.meta();
    let widen = (m.resolution_ms - 1).max(0);
    let mut w = BlockWriter::with_options(parent, m.resolution_ms, opts)?;
    w.set_out_of_order(m.out_of_order);
    for r in 0..block.num_series() {
        let (labels, crefs) = block.series(r)?;
        let mut kinds: Vec<Aggr> = crefs.iter().map(|c| c.aggr).filter(|&k| k != Aggr::Sketch).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut data = Vec::with_capacity(kinds.len());
        for k in kinds {
            let mut batch = SampleBatch::default();
            block.read_series(&crefs, k, i64::MIN, i64::MAX, &mut batch)?;
            tombstones.filter(&labels, &mut batch, widen);
            data.push((k, batch));
        }
        let slices: Vec<(Aggr, &[i64], &[f64])> =
            data.iter().map(|(k, b)| (*k, b.timestamps.as_slice(), b.values.as_slice())).collect();
        // Sketches go by the same rule: their bucket positions are filtered like samples.
        let (mut sketch_ts, mut sketches) = (Vec::new(), Vec::new());
        block.read_sketches(&crefs, i64::MIN, i64::MAX, &mut sketch_ts, &mut sketches)?;
        let mut kept = SampleBatch { values: (0..sketch_ts.len()).map(|i| i as f64).collect(), timestamps: sketch_ts };
        tombstones.filter(&labels, &mut kept, widen);
        let sketches: Vec<_> = kept.values.iter().map(|&i| sketches[i as usize].clone()).collect();
        w.add_series_with_sketches(&labels, &slices, &kept.timestamps, &sketches)?;
    }
    let mut compaction = m.compaction.clone();
    compaction.level = compaction.level.max(1) + 1;
    w.finish(m.min_time, m.max_time, compaction)
}

/// Head + WAL + blocks; see the [module docs](self).
///
/// ```
/// use telemetry_core::{Labels, Queryable, SampleBatches, SelectHints};
/// use telemetry_store::db::{Db, DbOptions};
///
/// let dir = std::env::temp_dir().join(format!("telemetry-store-db-doc-{}", std::process::id()));
/// let opts = DbOptions::default(); // 2-hour blocks, WAL synced every 100 ms
/// let up = Labels::from_pairs([("__name__", "up"), ("job", "node")])?;
/// let h = 3_600_000;
/// {
///     let (db, _replay) = Db::open(&dir, opts.clone())?;
///     let mut app = db.appender();
///     for t in (0..4 * h).step_by(60_000) {
///         app.append(&up, t, 1.0)?;
///     }
///     app.commit()?;
///     // The head spans 4 h > 1.5 x 2 h: [0, 2h) goes to a block, the WAL is checkpointed.
///     let report = db.maintain(4 * h)?;
///     assert_eq!(report.flushed.len(), 1);
///     // A sample for the persisted range lands in an out-of-order block.
///     app.append(&up, 30_000, 0.0)?;
///     assert_eq!(app.commit()?.out_of_order_block, 1);
/// }
/// let (db, _) = Db::open(&dir, opts)?;
/// let q = db.querier(0, 4 * h)?;
/// let mut s = q.select(&SelectHints::default(), &[])?.next().unwrap()?;
/// assert_eq!(s.samples.collect_all()?.len(), 4 * 60 + 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Db {
    dir: PathBuf,
    blocks_dir: PathBuf,
    opts: DbOptions,
    head: Head,
    state: RwLock<Arc<State>>,
    /// Samples older than this go to out-of-order blocks. Commits hold `route` shared while
    /// they route and store; a flush takes it exclusively to move the cutoff.
    cutoff: AtomicI64,
    route: RwLock<()>,
    maintain: Mutex<()>,
    /// Held by whoever renames a block into place and adds it to the state outside of
    /// maintenance (out-of-order blocks), and by the re-reading of the block directory, so
    /// that a block is never added twice nor missed.
    blocks_mu: Mutex<()>,
    ooo_samples: std::sync::atomic::AtomicU64,
    ooo_refused: std::sync::atomic::AtomicU64,
    /// The tombstone log; held while a deletion or a cleaning changes the tombstones.
    tombstone_log: Mutex<TombstoneLog>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.dir).field("opts", &self.opts).finish_non_exhaustive()
    }
}

fn rlock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Poisoning means a panic elsewhere while holding the lock; the guarded values are replaced
    // whole, never left half-updated.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn wlock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The persisted boundary implied by a set of blocks: the end of the newest raw block that is
/// not an out-of-order block.
fn boundary_of(blocks: &[Arc<Block>]) -> i64 {
    blocks
        .iter()
        .filter(|b| b.meta().resolution_ms == 0 && !b.meta().out_of_order)
        .map(|b| b.meta().max_time)
        .max()
        .unwrap_or(i64::MIN)
}

/// Raw blocks whose sources a higher-level raw block entirely covers: leftovers of a compaction
/// (or of a rewrite by [`Db::clean_tombstones`]) killed after its output was renamed into place
/// and before its inputs were deleted. Rollup blocks likewise, when a higher-level block of the
/// same tier and range covers their sources (a rewrite by [`Db::clean_tombstones`] raises the
/// level; rollup blocks superseded by a rebuild are the tier module's to delete).
fn superseded(blocks: &[Arc<Block>]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let bm = b.meta();
        let covered = blocks.iter().any(|a| {
            let am = a.meta();
            am.id != bm.id
                && bm.resolution_ms == am.resolution_ms
                && (bm.resolution_ms == 0 || (am.min_time == bm.min_time && am.max_time == bm.max_time))
                && am.compaction.level > bm.compaction.level
                && bm.compaction.sources.iter().all(|s| am.compaction.sources.contains(s))
        });
        if covered {
            out.push(i);
        }
    }
    out
}

impl Db {
    /// Opens (or creates) the database in `dir`: opens the blocks (removing leftovers of
    /// interrupted writes, deletions and compactions), replays the WAL into the head, and
    /// truncates the head at the persisted boundary.
    ///
    /// # Errors
    /// [`DbError::Config`] for inconsistent options ([`DbOptions::validate`]); [`DbError::Io`]
    /// when `dir` cannot be created; [`DbError::Block`] when a block cannot be opened;
    /// [`DbError::Head`] when the WAL cannot be read or written.
    pub fn open(dir: impl AsRef<Path>, opts: DbOptions) -> Result<(Db, ReplayReport), DbError> {
        opts.validate().map_err(DbError::Config)?;
        let dir = dir.as_ref().to_path_buf();
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(|source| DbError::Io { path: blocks_dir.clone(), source })?;
        let mut blocks: Vec<Arc<Block>> = open_blocks(&blocks_dir)?.into_iter().map(Arc::new).collect();
        let gone = superseded(&blocks);
        for &i in gone.iter().rev() {
            delete_block(&blocks[i])?;
            blocks.remove(i);
        }
        let (tombstone_log, tombstones) = TombstoneLog::open(&dir)?;
        let (head, report) = Head::open(&dir, opts.head.clone())?;
        let boundary = boundary_of(&blocks);
        if boundary != i64::MIN && head.stats().time_range.is_some_and(|(min, _)| min < boundary) {
            head.truncate(boundary)?;
        }
        let db = Db {
            dir,
            blocks_dir,
            opts,
            head,
            state: RwLock::new(Arc::new(State { blocks, boundary, tombstones: Arc::new(tombstones) })),
            cutoff: AtomicI64::new(boundary),
            route: RwLock::new(()),
            maintain: Mutex::new(()),
            blocks_mu: Mutex::new(()),
            ooo_samples: Default::default(),
            ooo_refused: Default::default(),
            tombstone_log: Mutex::new(tombstone_log),
        };
        Ok((db, report))
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding the blocks (`<dir>/blocks`).
    pub fn blocks_dir(&self) -> &Path {
        &self.blocks_dir
    }

    /// The options the database runs with.
    pub fn options(&self) -> &DbOptions {
        &self.opts
    }

    /// A new appender.
    pub fn appender(&self) -> DbAppender<'_> {
        DbAppender { db: self, app: self.head.appender(), ooo: Vec::new(), head_results: Vec::new() }
    }

    /// The `meta.json` of every open block, sorted by (resolution, min_time).
    pub fn blocks(&self) -> Vec<BlockMeta> {
        rlock(&self.state).blocks.iter().map(|b| b.meta().clone()).collect()
    }

    /// The write-ahead log (`None` for a head without one), e.g. to [`Wal::sync`] for a group
    /// commit when the head's sync policy is [`SyncPolicy::Never`](crate::SyncPolicy::Never).
    pub fn wal(&self) -> Option<&Wal> {
        self.head.wal()
    }

    /// Labels of a head series by reference.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        self.head.series_labels(r)
    }

    /// The open blocks.
    pub fn open_blocks(&self) -> Vec<Arc<Block>> {
        rlock(&self.state).blocks.clone()
    }

    /// Statistics of head and blocks.
    pub fn stats(&self) -> DbStats {
        let st = rlock(&self.state).clone();
        DbStats {
            head: self.head.stats(),
            blocks: st.blocks.len() as u64,
            block_bytes: st.blocks.iter().map(|b| b.meta().stats.bytes).sum(),
            block_samples: st.blocks.iter().map(|b| b.meta().stats.samples).sum(),
            out_of_order_block_samples: self.ooo_samples.load(Ordering::Relaxed),
            out_of_order_block_refused: self.ooo_refused.load(Ordering::Relaxed),
            persisted_until: (st.boundary != i64::MIN).then_some(st.boundary),
            tombstoned_series: st.tombstones.num_series() as u64,
        }
    }

    /// Replaces the visible state, then waits (up to 10 s) until no querier still uses the
    /// previous one, so that data about to leave the head is not missed by a running read.
    fn publish(&self, f: impl FnOnce(&State) -> State) {
        let old = {
            let mut g = wlock(&self.state);
            let new = Arc::new(f(&g));
            std::mem::replace(&mut *g, new)
        };
        let start = Instant::now();
        while Arc::strong_count(&old) > 1 {
            if start.elapsed() > Duration::from_secs(10) {
                tracing::warn!("a querier older than 10 s still reads; truncating the head under it");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn writer(&self) -> Result<BlockWriter, BlockError> {
        BlockWriter::with_options(&self.blocks_dir, 0, self.opts.block)
    }

    /// Writes the head's samples in `[boundary, maxt)` as one block covering `[mint, maxt)`,
    /// where `mint` is lowered (to a multiple of the block range) when a commit slipped an
    /// older sample into the head between the flush's decision and the cutoff move; `None`
    /// when there are no samples.
    fn write_head_range(&self, boundary: i64, mint: i64, maxt: i64) -> Result<Option<BlockMeta>, DbError> {
        let tombstones = rlock(&self.state).tombstones.clone();
        let q = self.head.querier(boundary, maxt - 1).map_err(storage_to_block)?;
        let set = q.select(&SelectHints::default(), &[]).map_err(storage_to_block)?;
        let mut w = self.writer()?;
        let mut min_t = mint;
        for s in set {
            let mut s = s.map_err(storage_to_block)?;
            let mut batch = s.samples.collect_all().map_err(storage_to_block)?;
            // Deleted samples are dropped here, physically (the head keeps them until truncated).
            tombstones.filter(&s.labels, &mut batch, 0);
            if let Some(&t) = batch.timestamps.first() {
                min_t = min_t.min(t);
            }
            w.add_series(&s.labels, &[(Aggr::Raw, &batch.timestamps, &batch.values)])?;
        }
        if w.num_series() == 0 {
            return Ok(None);
        }
        let range = self.opts.block_range_ms.max(1);
        let mint = mint.min(min_t.div_euclid(range) * range);
        Ok(Some(w.finish(mint, maxt, BlockCompaction::default())?))
    }

    /// Persists head ranges: while the head spans more than 1.5 block ranges beyond the
    /// boundary (or, with `force_until`, while it holds samples before that time), writes
    /// the oldest aligned range as a block, makes it visible, truncates the head and
    /// checkpoints the WAL.
    fn flush(&self, force_until: Option<i64>, report: &mut MaintenanceReport) -> Result<(), DbError> {
        let range = self.opts.block_range_ms.max(1);
        loop {
            let boundary = rlock(&self.state).boundary;
            let Some((hmin, hmax)) = self.head.stats().time_range else { break };
            let start = hmin.max(boundary);
            if start > hmax {
                break;
            }
            let a = start.div_euclid(range) * range;
            let b = a.saturating_add(range);
            let due = match force_until {
                Some(until) => a < until,
                None => hmax.saturating_sub(start) > range / 2 * 3,
            };
            if !due {
                break;
            }
            {
                // Commits in flight finish first; later ones route samples before `b` to
                // out-of-order blocks.
                let _g = wlock(&self.route);
                self.cutoff.fetch_max(b, Ordering::SeqCst);
            }
            let written = match self.write_head_range(boundary, a, b) {
                Ok(w) => w,
                Err(e) => {
                    self.cutoff.store(rlock(&self.state).boundary, Ordering::SeqCst);
                    return Err(e);
                }
            };
            let block = match &written {
                Some(m) => Some(Arc::new(Block::open(&self.blocks_dir.join(&m.id))?)),
                None => None,
            };
            self.publish(|st| {
                let mut blocks = st.blocks.clone();
                blocks.extend(block);
                sort_blocks(&mut blocks);
                State { blocks, boundary: st.boundary.max(b), tombstones: st.tombstones.clone() }
            });
            if let Some(cp) = self.head.truncate(b)? {
                report.checkpoints.push(cp);
            }
            report.flushed.extend(written);
        }
        Ok(())
    }

    /// Persists everything the head holds before `until_ms` into aligned blocks now, whatever
    /// its span (for shutdown, tests and measurements), then truncates the head and
    /// checkpoints the WAL.
    ///
    /// # Errors
    /// As [`maintain`](Self::maintain).
    pub fn persist_head(&self, until_ms: i64) -> Result<MaintenanceReport, DbError> {
        let _g = self.maintain.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = MaintenanceReport::default();
        self.flush(Some(until_ms), &mut report)?;
        Ok(report)
    }

    /// Deletes the samples of the series matching all `matchers` in `[mint, maxt]` (ms, both
    /// inclusive), as Prometheus's `POST /api/v1/admin/tsdb/delete_series`: the matchers are
    /// resolved now to the series with data in the range (head, raw, out-of-order and rollup
    /// blocks), and a tombstone per series and interval is appended to the tombstone log and
    /// synced before this returns (see [`crate::tombstone`]). Every querier created afterwards
    /// omits those samples, and rollup points whose bucket meets the range (a rollup tier's
    /// partly deleted buckets are dropped whole). Samples appended to the range later for the
    /// same series are hidden as well while the tombstone lives; samples outside the range,
    /// earlier or later, are untouched.
    ///
    /// Deleted samples are removed physically when the head is persisted into a block, when
    /// blocks are compacted, and by [`clean_tombstones`](Self::clean_tombstones), which also
    /// drops the tombstones that no longer have anything to hide.
    ///
    /// # Errors
    /// [`DbError::Config`] when `matchers` is empty (as Prometheus, at least one is needed) or
    /// `mint > maxt`; [`DbError::Block`] when a block's index cannot be read or the head read
    /// fails; [`DbError::Io`] when the log cannot be written or synced (then the deletion may or
    /// may not survive a crash, and is not applied to readers).
    pub fn delete(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<DeleteReport, DbError> {
        if matchers.is_empty() {
            return Err(DbError::Config("delete: at least one series matcher is required".into()));
        }
        if mint > maxt {
            return Err(DbError::Config(format!("delete: start {mint} is after end {maxt}")));
        }
        let st = rlock(&self.state).clone();
        let mut found: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
        for r in self.head.select_series(matchers, mint, maxt) {
            found.insert(r.map_err(storage_to_block)?.0);
        }
        for b in &st.blocks {
            let m = b.meta();
            // A rollup point p holds the data of (p - R, p].
            let hi = maxt.saturating_add((m.resolution_ms - 1).max(0));
            if m.min_time <= hi && m.max_time > mint {
                found.extend(b.series_in_range(matchers, mint, hi)?);
            }
        }
        drop(st);
        let mut rec = Tombstones::new();
        for l in &found {
            rec.add(l, mint, maxt);
        }
        let report = DeleteReport { series: found.len() as u64, mint, maxt };
        if rec.is_empty() {
            return Ok(report);
        }
        let mut log = self.tombstone_log.lock().unwrap_or_else(|p| p.into_inner());
        log.append(&rec)?;
        let mut g = wlock(&self.state);
        let mut all = (*g.tombstones).clone();
        all.extend(&rec);
        *g = Arc::new(State { blocks: g.blocks.clone(), boundary: g.boundary, tombstones: Arc::new(all) });
        Ok(report)
    }

    /// The tombstones in force (deleted series intervals not yet cleaned).
    pub fn tombstones(&self) -> Arc<Tombstones> {
        rlock(&self.state).tombstones.clone()
    }

    /// Rewrites every block (raw, out-of-order and rollup) that holds samples deleted by a
    /// tombstone, without them (as Prometheus's `clean_tombstones`), then drops the tombstone
    /// intervals that have nothing left to hide: no block holds their data and they end before
    /// the persisted boundary (head data from there on is cleaned when persisted). Runs under
    /// the maintenance lock.
    ///
    /// Crash safety: each rewritten block is written atomically one compaction level higher
    /// than the original, which is deleted once the new one is visible (a kill in between
    /// leaves both, and the original is deleted at the next open as superseded); the
    /// tombstone log is replaced last, atomically. Until then the tombstones stay in force,
    /// so a kill at any point leaves the deletion fully in force.
    ///
    /// # Errors
    /// [`DbError::Block`] reading or writing a block; [`DbError::Io`] writing the log. Blocks
    /// rewritten before an error stay (they are complete), and the tombstones stay in force.
    pub fn clean_tombstones(&self) -> Result<CleanReport, DbError> {
        let _g = self.maintain.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = CleanReport::default();
        // Not the state itself: publishing waits until no one holds the previous state.
        let (blocks, tombstones) = {
            let st = rlock(&self.state);
            (st.blocks.clone(), st.tombstones.clone())
        };
        if tombstones.is_empty() {
            return Ok(report);
        }
        for b in &blocks {
            if !holds_deleted(b, &tombstones)? {
                continue;
            }
            let meta = rewrite_block(&self.blocks_dir, b, &tombstones, self.opts.block)?;
            let nb = Arc::new(Block::open(&self.blocks_dir.join(&meta.id))?);
            self.publish(|s| {
                let mut blocks: Vec<Arc<Block>> = s.blocks.iter().filter(|x| !Arc::ptr_eq(x, b)).cloned().collect();
                blocks.push(nb);
                sort_blocks(&mut blocks);
                State { blocks, boundary: s.boundary, tombstones: s.tombstones.clone() }
            });
            delete_block(b)?;
            report.rewritten.push((b.meta().id.clone(), meta));
        }
        drop(blocks);
        report.dropped = self.prune_tombstones()?;
        report.remaining_series = rlock(&self.state).tombstones.num_series() as u64;
        Ok(report)
    }

    /// Drops the tombstones no block holds deleted samples for any more (compaction and
    /// [`clean_tombstones`](Self::clean_tombstones) leave them out; rollup blocks count,
    /// widened by their resolution) and that end before the head's persisted boundary;
    /// returns how many intervals were dropped. Called with the maintenance lock held.
    fn prune_tombstones(&self) -> Result<u64, DbError> {
        if rlock(&self.state).tombstones.is_empty() {
            return Ok(0);
        }
        // No deletion, and no out-of-order block, while the remaining tombstones are decided.
        let mut log = self.tombstone_log.lock().unwrap_or_else(|p| p.into_inner());
        let _b = self.blocks_mu.lock().unwrap_or_else(|p| p.into_inner());
        let cur = rlock(&self.state).clone();
        let mut remaining = (*cur.tombstones).clone();
        let mut err = None;
        let dropped = remaining.retain(|labels, a, b| {
            if b >= cur.boundary {
                return true;
            }
            let mut one = Tombstones::new();
            one.add(labels, a, b);
            cur.blocks.iter().any(|blk| match holds_deleted(blk, &one) {
                Ok(h) => h,
                Err(e) => {
                    err.get_or_insert(e);
                    true
                }
            })
        });
        if let Some(e) = err {
            return Err(e.into());
        }
        if dropped > 0 {
            log.rewrite(&remaining)?;
            let mut g = wlock(&self.state);
            *g = Arc::new(State { blocks: g.blocks.clone(), boundary: g.boundary, tombstones: Arc::new(remaining) });
        }
        Ok(dropped as u64)
    }

    /// Compacts raw blocks until no plan remains (see the [module docs](self)).
    fn compact(&self, report: &mut MaintenanceReport) -> Result<(), DbError> {
        loop {
            let planned = {
                let st = rlock(&self.state).clone();
                crate::compact::plan(&st.blocks, &self.opts.compaction_ranges, st.boundary)
            };
            let Some(group) = planned else { break };
            let tombstones = rlock(&self.state).tombstones.clone();
            let Some(meta) = crate::compact::merge(&self.blocks_dir, &group, self.opts.block, &tombstones)? else {
                // Nothing left in the inputs: drop them.
                self.publish(|st| State {
                    blocks: st.blocks.iter().filter(|b| !group.iter().any(|g| Arc::ptr_eq(g, b))).cloned().collect(),
                    boundary: st.boundary,
                    tombstones: st.tombstones.clone(),
                });
                for g in &group {
                    delete_block(g)?;
                }
                continue;
            };
            let out = Arc::new(Block::open(&self.blocks_dir.join(&meta.id))?);
            self.publish(|st| {
                let mut blocks: Vec<Arc<Block>> =
                    st.blocks.iter().filter(|b| !group.iter().any(|g| Arc::ptr_eq(g, b))).cloned().collect();
                blocks.push(out);
                sort_blocks(&mut blocks);
                State { blocks, boundary: st.boundary, tombstones: st.tombstones.clone() }
            });
            for g in &group {
                delete_block(g)?;
            }
            report.compacted.push((group.iter().map(|b| b.meta().id.clone()).collect(), meta));
        }
        Ok(())
    }

    /// One round of background work at time `now_ms`: persist the head's oldest range(s) and
    /// checkpoint the WAL, compact raw blocks, build rollups and apply retention
    /// ([`crate::tier`]), re-read the block list, then drop the tombstones whose deleted
    /// samples no block holds any more. Runs one at a time (a second caller
    /// waits). Every time-based decision takes `now_ms`, so tests can drive it with a fake
    /// clock.
    ///
    /// # Errors
    /// [`DbError`] of the first step that fails; earlier steps' effects stay (each is atomic).
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, DbError> {
        let _g = self.maintain.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = MaintenanceReport::default();
        self.flush(None, &mut report)?;
        self.compact(&mut report)?;
        let blocks = self.open_blocks();
        report.tiers = crate::tier::maintain(&self.blocks_dir, &self.opts.tiers, &blocks, now_ms)?;
        drop(blocks);
        self.reload(&mut report)?;
        report.tombstones_dropped = self.prune_tombstones()?;
        Ok(report)
    }

    /// Re-reads the block directory (after tier maintenance wrote or deleted blocks).
    fn reload(&self, report: &mut MaintenanceReport) -> Result<(), DbError> {
        let _g = self.blocks_mu.lock().unwrap_or_else(|p| p.into_inner());
        let current = rlock(&self.state).clone();
        let on_disk = crate::block::list_blocks(&self.blocks_dir)?;
        let mut blocks = Vec::with_capacity(on_disk.len());
        for m in &on_disk {
            match current.blocks.iter().find(|b| b.meta().id == m.id) {
                Some(b) => blocks.push(b.clone()),
                None => blocks.push(Arc::new(Block::open(&self.blocks_dir.join(&m.id))?)),
            }
        }
        let gone = superseded(&blocks);
        for &i in gone.iter().rev() {
            report.superseded.push(blocks[i].meta().id.clone());
            delete_block(&blocks[i])?;
            blocks.remove(i);
        }
        sort_blocks(&mut blocks);
        let unchanged =
            blocks.len() == current.blocks.len() && blocks.iter().zip(&current.blocks).all(|(a, b)| Arc::ptr_eq(a, b));
        drop(current);
        if !unchanged {
            self.publish(|st| State { blocks, boundary: st.boundary, tombstones: st.tombstones.clone() });
        }
        Ok(())
    }

    /// Starts a thread that calls [`maintain`](Self::maintain) with the wall clock every
    /// `interval` until the returned handle is dropped or stopped. Errors are logged
    /// (`tracing`) and retried at the next round.
    pub fn start_background(self: &Arc<Self>, interval: Duration) -> BackgroundHandle {
        let db = Arc::clone(self);
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let (m, cv) = &*stop2;
            loop {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                if let Err(e) = db.maintain(now as i64) {
                    tracing::warn!(error = %e, "background maintenance failed");
                }
                let g = m.lock().unwrap_or_else(|p| p.into_inner());
                let (g, _) = cv.wait_timeout_while(g, interval, |s| !*s).unwrap_or_else(|p| p.into_inner());
                if *g {
                    break;
                }
            }
        });
        BackgroundHandle { stop, thread: Some(thread) }
    }

    /// The stored samples of exactly the series `labels` in `[mint, maxt]`, as value bits by
    /// timestamp (head and blocks, merged as a query sees them).
    fn stored(&self, labels: &Labels, mint: i64, maxt: i64) -> Result<BTreeMap<i64, u64>, DbError> {
        let matchers: Vec<Matcher> = labels.iter().map(|l| Matcher::equal(&*l.name, &*l.value)).collect();
        let q = self.querier(mint, maxt).map_err(storage_to_block)?;
        let mut out = BTreeMap::new();
        for s in q.select(&SelectHints::default(), &matchers).map_err(storage_to_block)? {
            let mut s = s.map_err(storage_to_block)?;
            if s.labels != *labels {
                continue;
            }
            let b = s.samples.collect_all().map_err(storage_to_block)?;
            out.extend(b.timestamps.iter().zip(&b.values).map(|(t, v)| (*t, v.to_bits())));
        }
        Ok(out)
    }

    /// Writes out-of-order samples (older than the cutoff) as one block, durable on return.
    /// The ordering rules of the head apply: a sample whose timestamp is already stored with
    /// the same value bits is an idempotent duplicate (not written again); with other bits it
    /// is refused (the first value given within one commit wins, as in the head).
    fn write_ooo(&self, mut samples: Vec<(Labels, i64, f64)>) -> Result<OooSummary, DbError> {
        samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut summary = OooSummary::default();
        let mut w = self.writer()?;
        w.set_out_of_order(true);
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        let mut i = 0;
        while i < samples.len() {
            let mut j = i;
            while j < samples.len() && samples[j].0 == samples[i].0 {
                j += 1;
            }
            let group = &samples[i..j];
            // ok: the group holds samples i..j with j > i.
            let stored = self.stored(&group[0].0, group[0].1, group[group.len() - 1].1)?;
            let (mut ts, mut vs): (Vec<i64>, Vec<f64>) = (Vec::new(), Vec::new());
            for &(_, t, v) in group {
                // The stable sort keeps the order of appends within a timestamp.
                let earlier = if ts.last() == Some(&t) { vs.last().map(|v| v.to_bits()) } else { None };
                let existing = stored.get(&t).copied().or(earlier);
                match existing {
                    Some(bits) if bits == v.to_bits() => summary.duplicates_ignored += 1,
                    Some(_) => summary.refused += 1,
                    None => {
                        ts.push(t);
                        vs.push(v);
                    }
                }
            }
            i = j;
            if ts.is_empty() {
                continue;
            }
            mint = mint.min(ts[0]); // ok: ts is not empty (checked above)
            maxt = maxt.max(ts[ts.len() - 1]);
            summary.stored += ts.len() as u64;
            w.add_series(&group[0].0, &[(Aggr::Raw, &ts, &vs)])?;
        }
        self.ooo_refused.fetch_add(summary.refused, Ordering::Relaxed);
        if summary.stored == 0 {
            return Ok(summary);
        }
        let _g = self.blocks_mu.lock().unwrap_or_else(|p| p.into_inner());
        let meta = w.finish(mint, maxt.saturating_add(1), BlockCompaction::default())?;
        let block = Arc::new(Block::open(&self.blocks_dir.join(&meta.id))?);
        {
            let mut g = wlock(&self.state);
            let mut blocks = g.blocks.clone();
            blocks.push(block);
            sort_blocks(&mut blocks);
            *g = Arc::new(State { blocks, boundary: g.boundary, tombstones: g.tombstones.clone() });
        }
        self.ooo_samples.fetch_add(summary.stored, Ordering::Relaxed);
        Ok(summary)
    }
}

#[derive(Debug, Default)]
struct OooSummary {
    stored: u64,
    duplicates_ignored: u64,
    refused: u64,
}

fn sort_blocks(blocks: &mut [Arc<Block>]) {
    blocks.sort_by(|a, b| {
        let (a, b) = (a.meta(), b.meta());
        (a.resolution_ms, a.min_time, &a.id).cmp(&(b.resolution_ms, b.min_time, &b.id))
    });
}

fn storage_to_block(e: StorageError) -> DbError {
    DbError::Block(BlockError::Corrupt { path: PathBuf::from("head"), offset: 0, reason: e.to_string() })
}

/// Stops the background maintenance thread of [`Db::start_background`] when dropped.
#[derive(Debug)]
pub struct BackgroundHandle {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundHandle {
    /// Stops the thread after its current round and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BackgroundHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Appends to a [`Db`]: samples at or after the persisted boundary go to the head (with its
/// ordering rules), older ones to an out-of-order block written at commit.
pub struct DbAppender<'d> {
    db: &'d Db,
    app: Appender<'d>,
    ooo: Vec<(Labels, i64, f64)>,
    /// The head's answers for a batch (reused).
    head_results: Vec<Result<SeriesRef, AppendError>>,
}

impl std::fmt::Debug for DbAppender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbAppender").field("head", &self.app).field("out_of_order", &self.ooo.len()).finish()
    }
}

/// What one [`DbAppender::commit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbCommitSummary {
    /// The head's part.
    pub head: CommitSummary,
    /// Samples written to an out-of-order block.
    pub out_of_order_block: u64,
    /// Samples older than the persisted boundary already stored with the same value bits.
    pub out_of_order_duplicates_ignored: u64,
    /// Samples older than the persisted boundary refused: a different value is stored at
    /// their timestamp (or was given earlier in the same commit).
    pub out_of_order_refused: u64,
}

impl DbAppender<'_> {
    /// Adds a sample of the series `labels`. Returns the head's reference of the series when
    /// the sample goes to the head (for [`append_ref`](Self::append_ref) next time), `None`
    /// when it is older than the persisted boundary and waits for an out-of-order block.
    ///
    /// # Errors
    /// As [`Appender::append`] for samples that go to the head.
    pub fn append(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) -> Result<Option<SeriesRef>, AppendError> {
        if timestamp_ms < self.db.cutoff.load(Ordering::Relaxed) {
            if labels.is_empty() {
                return Err(AppendError::EmptyLabels);
            }
            self.ooo.push((labels.clone(), timestamp_ms, value));
            return Ok(None);
        }
        self.app.append(labels, timestamp_ms, value).map(Some)
    }

    /// Adds a sample of a series by the head reference an earlier
    /// [`append`](Self::append) returned (no hashing, no label comparison). A sample older
    /// than the persisted boundary is routed to an out-of-order block under the series'
    /// labels.
    ///
    /// # Errors
    /// [`AppendError::UnknownRef`] when the head no longer has the series (garbage
    /// collected): append by labels instead. Otherwise as [`Appender::append_ref`].
    pub fn append_ref(&mut self, r: SeriesRef, timestamp_ms: i64, value: f64) -> Result<(), AppendError> {
        if timestamp_ms < self.db.cutoff.load(Ordering::Relaxed) {
            let labels = self.db.head.series_labels(r).ok_or(AppendError::UnknownRef(r))?;
            self.ooo.push((labels, timestamp_ms, value));
            return Ok(());
        }
        self.app.append_ref(r, timestamp_ms, value)
    }

    /// Adds a sample of the series given by label pairs sorted by name (see
    /// [`Appender::append_pairs`]).
    ///
    /// # Errors
    /// As [`Appender::append_pairs`].
    pub fn append_pairs<'a, I>(&mut self, pairs: I, timestamp_ms: i64, value: f64) -> Result<(), AppendError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        if timestamp_ms < self.db.cutoff.load(Ordering::Relaxed) {
            let labels = Labels::from_pairs(pairs).map_err(AppendError::InvalidLabels)?;
            return self.append(&labels, timestamp_ms, value).map(|_| ());
        }
        self.app.append_pairs(pairs, timestamp_ms, value).map(|_| ())
    }

    /// Adds a batch of samples given by label pairs sorted by name, through the head's batch
    /// path ([`Appender::append_pairs_batch`], which overlaps the memory latency of finding
    /// each sample's series); samples older than the persisted boundary go one by one to the
    /// out-of-order block, as with [`append`](Self::append). `results` is cleared and gets one
    /// entry per sample, in batch order: the series reference (`None` for a sample routed to
    /// an out-of-order block) or the sample's error.
    ///
    /// # Errors
    /// None for the call as a whole; per sample, in `results`, as
    /// [`Appender::append_pairs_batch`] and [`append`](Self::append).
    pub fn append_pairs_batch<'a, P>(
        &mut self,
        batch: &[(P, i64, f64)],
        results: &mut Vec<Result<Option<SeriesRef>, AppendError>>,
    ) where
        P: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        results.clear();
        let cutoff = self.db.cutoff.load(Ordering::Relaxed);
        let mut head_results = std::mem::take(&mut self.head_results);
        if batch.iter().all(|s| s.1 >= cutoff) {
            self.app.append_pairs_batch(batch, &mut head_results);
            results.extend(head_results.drain(..).map(|r| r.map(Some)));
        } else {
            let in_order: Vec<(P, i64, f64)> = batch.iter().filter(|s| s.1 >= cutoff).cloned().collect();
            self.app.append_pairs_batch(&in_order, &mut head_results);
            let mut head = head_results.drain(..);
            for (pairs, t, v) in batch {
                let r = if *t >= cutoff {
                    // ok: the head answers each in-order sample, in order, so `next` is never None.
                    head.next().map_or(Err(AppendError::EmptyLabels), |r| r.map(Some))
                } else {
                    Labels::from_pairs(pairs.clone())
                        .map_err(AppendError::InvalidLabels)
                        .and_then(|labels| self.append(&labels, *t, *v))
                };
                results.push(r);
            }
        }
        self.head_results = head_results;
    }

    /// Samples waiting for commit.
    pub fn len(&self) -> usize {
        self.app.len() + self.ooo.len()
    }

    /// `true` when no sample waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the pending samples durable: those older than the persisted boundary as one
    /// out-of-order block (written, synced and renamed into place), the rest through the
    /// head and its WAL ([`Appender::commit`]). Returns once both are durable; then the caller
    /// may acknowledge.
    ///
    /// Each part is atomic, but a commit that holds both is made durable in two steps (block
    /// first), as Prometheus writes its WAL and its out-of-order log separately: a crash in
    /// between may keep the older part of an unacknowledged commit without the newer one. A
    /// retry is safe: exact duplicates are ignored on both paths.
    ///
    /// Samples older than the boundary follow the head's duplicate rules (checked against
    /// what head and blocks hold): the same value bits are ignored, other bits refused and
    /// counted ([`DbCommitSummary::out_of_order_refused`]). They are accepted however old
    /// (backfill); raw retention removes what is past it at the next maintenance.
    ///
    /// # Errors
    /// [`DbError::Block`] when the out-of-order block cannot be written: nothing of the
    /// commit is stored and the appender is emptied; [`DbError::Head`] as
    /// [`Appender::commit`].
    pub fn commit(&mut self) -> Result<DbCommitSummary, DbError> {
        let _g = rlock(&self.db.route);
        let cutoff = self.db.cutoff.load(Ordering::SeqCst);
        let mut ooo = std::mem::take(&mut self.ooo);
        ooo.extend(self.app.take_older_than(cutoff));
        let mut summary = DbCommitSummary::default();
        if !ooo.is_empty() {
            let o = match self.db.write_ooo(ooo) {
                Ok(o) => o,
                Err(e) => {
                    // Drop the head's part too: a failed commit leaves nothing pending.
                    self.app = self.db.head.appender();
                    return Err(e);
                }
            };
            summary.out_of_order_block = o.stored;
            summary.out_of_order_duplicates_ignored = o.duplicates_ignored;
            summary.out_of_order_refused = o.refused;
        }
        summary.head = self.app.commit()?;
        Ok(summary)
    }
}

impl Queryable for Db {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError> {
        let state = rlock(&self.state).clone();
        Ok(Box::new(DbQuerier { db: self, state, mint, maxt }))
    }
}

/// A [`Querier`] over a [`Db`] for `[mint, maxt]`: head (clipped to the persisted boundary),
/// raw blocks and, where [`crate::tier::plan`] routes a query's hints, rollup tiers; merged
/// per series with duplicate timestamps dropped. Raw series are read one at a time as the
/// series set reaches them (a k-way merge over sources sorted by labels); rollup segments are
/// read at `select`. It keeps the block list and the tombstones it started with (samples
/// deleted by [`Db::delete`] before it was created are left out); the head data it reads is not
/// truncated while it lives (up to 10 s). Label names and values are not filtered by
/// tombstones (as in Prometheus, a fully deleted series' labels stay listed until it leaves the
/// head and its blocks are cleaned).
pub struct DbQuerier<'d> {
    db: &'d Db,
    state: Arc<State>,
    mint: i64,
    maxt: i64,
}

impl std::fmt::Debug for DbQuerier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbQuerier").field("mint", &self.mint).field("maxt", &self.maxt).finish_non_exhaustive()
    }
}

impl DbQuerier<'_> {
    fn raw_blocks(&self) -> impl Iterator<Item = &Arc<Block>> {
        let (mint, maxt) = (self.mint, self.maxt);
        self.state.blocks.iter().filter(move |b| {
            let m = b.meta();
            m.resolution_ms == 0 && m.min_time <= maxt && m.max_time > mint
        })
    }

    fn overlapping_blocks(&self) -> impl Iterator<Item = &Arc<Block>> {
        let (mint, maxt) = (self.mint, self.maxt);
        self.state.blocks.iter().filter(move |b| b.meta().min_time <= maxt && b.meta().max_time > mint)
    }

    fn head_querier(&self) -> Result<Option<Box<dyn Querier + '_>>, StorageError> {
        self.head_querier_in(self.mint, self.maxt)
    }

    fn head_querier_in(&self, mint: i64, maxt: i64) -> Result<Option<Box<dyn Querier + '_>>, StorageError> {
        let mint = mint.max(self.state.boundary);
        if mint > maxt {
            return Ok(None);
        }
        self.db.head.querier(mint, maxt).map(Some)
    }

    /// `src` with the samples the tombstones delete removed (`widen_ms` as in
    /// [`Tombstones::filter`]); `src` itself when there are no tombstones.
    fn deleted_removed<'s>(&self, src: Source<'s>, widen_ms: i64) -> Source<'s> {
        if self.state.tombstones.is_empty() {
            return src;
        }
        let ts = self.state.tombstones.clone();
        Box::new(src.map(move |r| {
            r.map(|(labels, mut batch)| {
                ts.filter(&labels, &mut batch, widen_ms);
                (labels, batch)
            })
        }))
    }

    /// Sources of raw samples for `seg`, in priority order (head, then newest block first),
    /// each yielding series sorted by labels, lazily.
    fn raw_sources<'s>(
        &'s self,
        matchers: &[Matcher],
        seg: Segment,
        out: &mut Vec<Source<'s>>,
    ) -> Result<(), StorageError> {
        let mint = seg.mint.max(self.state.boundary);
        if mint <= seg.maxt {
            out.push(self.deleted_removed(Box::new(self.db.head.select_series(matchers, mint, seg.maxt)), 0));
        }
        let mut blocks: Vec<&Arc<Block>> =
            self.raw_blocks().filter(|b| b.meta().min_time <= seg.maxt && b.meta().max_time > seg.mint).collect();
        blocks.sort_by(|a, b| b.meta().id.cmp(&a.meta().id));
        for b in blocks {
            let it = b.select_iter(matchers, seg.mint, seg.maxt, Aggr::Raw)?;
            out.push(self.deleted_removed(Box::new(it.map(|r| r.map_err(StorageError::from))), 0));
        }
        Ok(())
    }
}

/// Series of one source, sorted by labels.
type Source<'a> = Box<dyn Iterator<Item = Result<(Labels, SampleBatch), StorageError>> + 'a>;

/// Merges sources of series sorted by labels into one sorted series set: a series held by
/// several sources is merged ([`merge_batches`], earlier sources winning shared timestamps).
struct MergeSeries<'a> {
    sources: Vec<std::iter::Peekable<Source<'a>>>,
}

impl<'a> Iterator for MergeSeries<'a> {
    type Item = Result<Series<'a>, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut min: Option<Labels> = None;
            for src in &mut self.sources {
                match src.peek() {
                    Some(Ok((l, _))) if min.as_ref().is_none_or(|m| l < m) => min = Some(l.clone()),
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        if let Some(Err(e)) = src.next() {
                            return Some(Err(e));
                        }
                    }
                    None => {}
                }
            }
            let labels = min?;
            let mut parts = Vec::new();
            for src in &mut self.sources {
                if matches!(src.peek(), Some(Ok((l, _))) if *l == labels)
                    && let Some(Ok((_, b))) = src.next()
                {
                    parts.push(b);
                }
            }
            let batch = merge_batches(parts);
            if !batch.is_empty() {
                return Some(Ok(Series { labels, samples: Box::new(OneBatch(Some(batch))) }));
            }
        }
    }
}

/// Merges sample batches of one series, given in priority order (the first source wins a
/// timestamp held by several), into one batch in time order.
pub(crate) fn merge_batches(mut parts: Vec<SampleBatch>) -> SampleBatch {
    parts.retain(|p| !p.is_empty());
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    // Common case: parts from blocks of disjoint ranges and the head, concatenated in time order.
    let first = |p: &SampleBatch| p.timestamps.first().copied().unwrap_or(i64::MIN);
    let last = |p: &SampleBatch| p.timestamps.last().copied().unwrap_or(i64::MAX);
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| first(&parts[i]));
    if order.windows(2).all(|w| last(&parts[w[0]]) < first(&parts[w[1]])) {
        let mut out = SampleBatch::default();
        out.timestamps.reserve(parts.iter().map(|p| p.len()).sum());
        out.values.reserve(out.timestamps.capacity());
        for i in order {
            out.timestamps.extend_from_slice(&parts[i].timestamps);
            out.values.extend_from_slice(&parts[i].values);
        }
        return out;
    }
    let mut all: Vec<(i64, usize, f64)> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for (prio, p) in parts.iter().enumerate() {
        all.extend(p.timestamps.iter().zip(&p.values).map(|(&t, &v)| (t, prio, v)));
    }
    all.sort_unstable_by_key(|a| (a.0, a.1));
    let mut out = SampleBatch::default();
    for (t, _, v) in all {
        if out.timestamps.last() != Some(&t) {
            out.push(t, v);
        }
    }
    out
}

struct OneBatch(Option<SampleBatch>);

impl SampleBatches for OneBatch {
    fn next_batch(&mut self, out: &mut SampleBatch) -> Result<bool, StorageError> {
        match self.0.take() {
            Some(b) => {
                *out = b;
                Ok(true)
            }
            None => {
                out.clear();
                Ok(false)
            }
        }
    }
}

impl Querier for DbQuerier<'_> {
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet<'_>, StorageError> {
        if self.mint > self.maxt {
            return Ok(Box::new(std::iter::empty()));
        }
        let metas: Vec<BlockMeta> = self.state.blocks.iter().map(|b| b.meta().clone()).collect();
        let segments = crate::tier::plan(hints, &self.db.opts.tiers, &metas, self.mint, self.maxt);
        let mut sources: Vec<Source<'_>> = Vec::new();
        for seg in segments {
            if seg.resolution_ms == 0 {
                self.raw_sources(matchers, seg, &mut sources)?;
                continue;
            }
            let blocks: Vec<&Block> = self
                .state
                .blocks
                .iter()
                .filter(|b| {
                    let m = b.meta();
                    m.resolution_ms == seg.resolution_ms && m.min_time <= seg.maxt && m.max_time > seg.mint
                })
                .map(|b| &**b)
                .collect();
            // A rollup point stands for (p - R, p], a quantile from sketches for its window
            // (t - range, t]: dropped when that meets a deleted interval.
            let (rolled, stands_for) = if hints.func.as_deref() == Some("quantile_over_time")
                && hints.quantile.is_some()
            {
                let q = crate::tier::rollup_quantiles_blocks(hints, &blocks, matchers, seg.mint, seg.maxt)?;
                (q, hints.range_ms.max(seg.resolution_ms))
            } else {
                let r =
                    crate::tier::rollup_samples_blocks(hints.func.as_deref(), &blocks, matchers, seg.mint, seg.maxt)?;
                (r, seg.resolution_ms)
            };
            sources.push(self.deleted_removed(Box::new(rolled.into_iter().map(Ok)), stands_for - 1));
        }
        Ok(Box::new(MergeSeries { sources: sources.into_iter().map(Iterator::peekable).collect() }))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut names = match self.head_querier()? {
            Some(hq) => hq.label_names(matchers)?,
            None => Vec::new(),
        };
        for b in self.overlapping_blocks() {
            names.extend(b.index().label_names(matchers).map_err(|e| StorageError::Corruption {
                location: b.dir().display().to_string(),
                reason: e.to_string(),
            })?);
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut values = match self.head_querier()? {
            Some(hq) => hq.label_values(name, matchers)?,
            None => Vec::new(),
        };
        for b in self.overlapping_blocks() {
            values.extend(b.index().label_values(name, matchers).map_err(|e| StorageError::Corruption {
                location: b.dir().display().to_string(),
                reason: e.to_string(),
            })?);
        }
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(s: &[(i64, f64)]) -> SampleBatch {
        let mut b = SampleBatch::default();
        for &(t, v) in s {
            b.push(t, v);
        }
        b
    }

    #[test]
    fn merge_concatenates_disjoint_parts_and_lets_the_first_part_win_overlaps() {
        let m = merge_batches(vec![batch(&[(5, 5.0), (6, 6.0)]), batch(&[]), batch(&[(1, 1.0), (2, 2.0)])]);
        assert_eq!(m, batch(&[(1, 1.0), (2, 2.0), (5, 5.0), (6, 6.0)]));
        let m = merge_batches(vec![batch(&[(2, 20.0), (4, 40.0)]), batch(&[(1, 1.0), (2, 2.0), (3, 3.0)])]);
        assert_eq!(m, batch(&[(1, 1.0), (2, 20.0), (3, 3.0), (4, 40.0)]));
        assert!(merge_batches(vec![]).is_empty());
    }
}
