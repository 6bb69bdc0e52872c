//! Reading blocks: `meta.json`, the memory-mapped index, chunks read from mapped segments.

use std::path::{Path, PathBuf};

use telemetry_agg::CompactDdSketch;
use telemetry_compress::{ChunkError, decode_store_chunk, decode_store_values};
use telemetry_core::{Labels, Matcher, SampleBatch, matches_all};
use telemetry_index::{BlockIndex, IndexReader, SymbolCache};

use super::chunks::{ChunkRef, Verified, check_header, chunk_bytes, decode_refs, segment_path};
use super::sketches::{decode_sketch_chunk, sketch_chunk_entries};
use super::{Aggr, BlockError, BlockMeta, CHUNKS_DIR, INDEX_FILE, META_FILE};

/// An open, immutable block: its `meta.json`, its index (memory-mapped) and its chunk
/// segments (memory-mapped; a chunk's bytes are read only when a query needs them, and
/// checked against their CRC32C on the first such read after the block was opened).
/// `Send + Sync`; share it in an `Arc`.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: BlockIndex,
    /// Each segment's map and the set of its chunk entries already verified.
    segments: Vec<(memmap2::Mmap, Verified)>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("dir", &self.dir).field("meta", &self.meta).finish_non_exhaustive()
    }
}

pub(crate) fn read_meta(dir: &Path) -> Result<BlockMeta, BlockError> {
    let path = dir.join(META_FILE);
    let bytes = std::fs::read(&path).map_err(BlockError::io(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| BlockError::Meta { path, source })
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, maps the index (checking its table of
    /// contents and symbols) and maps the chunk segments (checking their headers).
    ///
    /// # Errors
    /// [`BlockError::Io`], [`BlockError::Meta`], [`BlockError::Index`], [`BlockError::Corrupt`]
    /// (a segment missing, or with a bad header).
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let meta = read_meta(dir)?;
        let index_path = dir.join(INDEX_FILE);
        let index = BlockIndex::open(&index_path).map_err(|source| BlockError::Index { path: index_path, source })?;
        let chunks = dir.join(CHUNKS_DIR);
        let mut numbers = Vec::new();
        for e in std::fs::read_dir(&chunks).map_err(BlockError::io(&chunks))? {
            let e = e.map_err(BlockError::io(&chunks))?;
            if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut segments = Vec::with_capacity(numbers.len());
        for (i, &n) in numbers.iter().enumerate() {
            let path = segment_path(dir, n);
            if n as usize != i + 1 {
                return Err(BlockError::corrupt(
                    path,
                    0,
                    format!("segment {n} found where segment {} was expected", i + 1),
                ));
            }
            let f = std::fs::File::open(&path).map_err(BlockError::io(&path))?;
            // SAFETY: block files are immutable once the block is renamed into place, and every
            // read through the map is bounds-checked against its length.
            let map = unsafe { memmap2::Mmap::map(&f) }.map_err(BlockError::io(&path))?;
            check_header(&path, &map)?;
            let verified = Verified::new(map.len());
            segments.push((map, verified));
        }
        Ok(Block { dir: dir.to_path_buf(), meta, index, segments })
    }

    /// The block's `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The block's index (label names and values, postings).
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Number of series in the block; series references are `0..num_series()`, in label order.
    pub fn num_series(&self) -> u32 {
        self.index.num_series() as u32
    }

    fn index_err(&self, source: telemetry_index::IndexError) -> BlockError {
        BlockError::Index { path: self.dir.join(INDEX_FILE), source }
    }

    /// The labels and chunk references of series `r`.
    ///
    /// # Errors
    /// [`BlockError::Index`] or [`BlockError::Corrupt`] for damaged index entries.
    pub fn series(&self, r: u32) -> Result<(Labels, Vec<ChunkRef>), BlockError> {
        self.series_with(r, None)
    }

    /// [`series`](Self::series) with the label strings from `cache` (one per block, see
    /// [`SymbolCache`]).
    pub(crate) fn series_cached(&self, r: u32, cache: &mut SymbolCache) -> Result<(Labels, Vec<ChunkRef>), BlockError> {
        self.series_with(r, Some(cache))
    }

    fn series_with(&self, r: u32, cache: Option<&mut SymbolCache>) -> Result<(Labels, Vec<ChunkRef>), BlockError> {
        let path = || self.dir.join(INDEX_FILE);
        let entry = match cache {
            Some(c) => self.index.series_labels_and_meta_cached(r, c),
            None => self.index.series_labels_and_meta(r),
        };
        let (labels, meta) = entry
            .map_err(|e| self.index_err(e))?
            .ok_or_else(|| BlockError::corrupt(path(), 0, format!("series {r} missing")))?;
        let refs = decode_refs(meta)
            .ok_or_else(|| BlockError::corrupt(path(), 0, format!("chunk references of series {r} are malformed")))?;
        Ok((labels, refs))
    }

    /// The labels of series `r`.
    ///
    /// # Errors
    /// [`BlockError::Index`] or [`BlockError::Corrupt`] for damaged index entries.
    pub fn labels(&self, r: u32) -> Result<Labels, BlockError> {
        self.index
            .series_labels(r)
            .map_err(|e| self.index_err(e))?
            .ok_or_else(|| BlockError::corrupt(self.dir.join(INDEX_FILE), 0, format!("series {r} missing")))
    }

    pub(crate) fn chunk_refs(&self, r: u32) -> Result<Vec<ChunkRef>, BlockError> {
        let meta = self.index.chunk_meta(r).map_err(|e| self.index_err(e))?;
        decode_refs(meta).ok_or_else(|| {
            BlockError::corrupt(self.dir.join(INDEX_FILE), 0, format!("chunk references of series {r} are malformed"))
        })
    }

    /// Decodes one chunk, appending its samples to `ts` and `vs`.
    ///
    /// # Errors
    /// [`BlockError::Corrupt`] naming the segment file and the chunk's offset when the
    /// reference points outside it, the checksum fails, or the chunk does not decode.
    pub fn read_chunk(&self, c: &ChunkRef, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), BlockError> {
        decode_store_chunk(self.chunk_data(c)?, ts, vs).map_err(|e| self.chunk_error(c, e))
    }

    /// The bytes of chunk `c` (length and checksum checked).
    fn chunk_data(&self, c: &ChunkRef) -> Result<&[u8], BlockError> {
        let path = || segment_path(&self.dir, c.segment);
        let Some((seg, verified)) = self.segments.get((c.segment as usize).wrapping_sub(1)) else {
            return Err(BlockError::corrupt(path(), c.offset, format!("segment {} does not exist", c.segment)));
        };
        chunk_bytes(path, seg, c, verified)
    }

    /// A decoding error of chunk `c`, with its file and offset.
    fn chunk_error(&self, c: &ChunkRef, e: ChunkError) -> BlockError {
        BlockError::corrupt(segment_path(&self.dir, c.segment), c.offset, format!("chunk: {e}"))
    }

    /// Samples of kind `aggr` of series `r` in `[mint, maxt]` (both inclusive), appended to `out`.
    ///
    /// # Errors
    /// As [`series`](Self::series) and [`read_chunk`](Self::read_chunk).
    pub fn read_series(
        &self,
        refs: &[ChunkRef],
        aggr: Aggr,
        mint: i64,
        maxt: i64,
        out: &mut SampleBatch,
    ) -> Result<(), BlockError> {
        for c in refs.iter().filter(|c| c.aggr == aggr && c.max_t >= mint && c.min_t <= maxt) {
            let start = out.len();
            self.read_chunk(c, &mut out.timestamps, &mut out.values)?;
            if c.min_t < mint || c.max_t > maxt {
                let ts = &out.timestamps[start..];
                let lo = start + ts.partition_point(|&t| t < mint);
                let hi = start + ts.partition_point(|&t| t <= maxt);
                out.timestamps.truncate(hi);
                out.values.truncate(hi);
                out.timestamps.drain(start..lo);
                out.values.drain(start..lo);
            }
        }
        Ok(())
    }

    /// The quantile sketches ([`Aggr::Sketch`]) of a series with chunk references `refs` whose
    /// bucket ends lie in `[mint, maxt]`, appended to `ts` and `out` in time order.
    ///
    /// # Errors
    /// [`BlockError::Corrupt`] naming the segment file and the chunk's offset when a chunk is
    /// damaged (checksum, layout, a sketch that does not decode).
    pub fn read_sketches(
        &self,
        refs: &[ChunkRef],
        mint: i64,
        maxt: i64,
        ts: &mut Vec<i64>,
        out: &mut Vec<CompactDdSketch>,
    ) -> Result<(), BlockError> {
        for c in refs.iter().filter(|c| c.aggr == Aggr::Sketch && c.max_t >= mint && c.min_t <= maxt) {
            let (start, first) = (ts.len(), out.len());
            decode_sketch_chunk(self.chunk_data(c)?, ts, out).map_err(|e| {
                BlockError::corrupt(segment_path(&self.dir, c.segment), c.offset, format!("sketch chunk: {e}"))
            })?;
            if c.min_t < mint || c.max_t > maxt {
                let lo = ts[start..].partition_point(|&t| t < mint);
                let hi = ts[start..].partition_point(|&t| t <= maxt);
                ts.truncate(start + hi);
                out.truncate(first + hi);
                ts.drain(start..start + lo);
                out.drain(first..first + lo);
            }
        }
        Ok(())
    }

    /// The encoded sketches ([`Aggr::Sketch`]) of a series with chunk references `refs` whose
    /// bucket ends lie in `[mint, maxt]`, appended to `out` in time order as (bucket end,
    /// alpha, bytes of a telemetry-agg `CompactDdSketch` encoding) without decoding them.
    pub(crate) fn read_sketch_entries<'a>(
        &'a self,
        refs: &[ChunkRef],
        mint: i64,
        maxt: i64,
        out: &mut Vec<(i64, f64, &'a [u8])>,
    ) -> Result<(), BlockError> {
        for c in refs.iter().filter(|c| c.aggr == Aggr::Sketch && c.max_t >= mint && c.min_t <= maxt) {
            let start = out.len();
            sketch_chunk_entries(self.chunk_data(c)?, out).map_err(|e| {
                BlockError::corrupt(segment_path(&self.dir, c.segment), c.offset, format!("sketch chunk: {e}"))
            })?;
            if c.min_t < mint || c.max_t > maxt {
                let lo = out[start..].partition_point(|e| e.0 < mint);
                let hi = out[start..].partition_point(|e| e.0 <= maxt);
                out.truncate(start + hi);
                out.drain(start..start + lo);
            }
        }
        Ok(())
    }

    /// Like [`read_series`](Self::read_series), appending only the values to `out` (chunks
    /// that lie inside `[mint, maxt]` are decoded without their timestamps); returns how many.
    /// For a caller that has read the timestamps from another aggregate of the same rollup
    /// series: a block's aggregates share one grid and one chunk layout.
    ///
    /// # Errors
    /// As [`read_chunk`](Self::read_chunk).
    pub fn read_series_values(
        &self,
        refs: &[ChunkRef],
        aggr: Aggr,
        mint: i64,
        maxt: i64,
        out: &mut Vec<f64>,
    ) -> Result<usize, BlockError> {
        let start = out.len();
        let mut ts = Vec::new();
        for c in refs.iter().filter(|c| c.aggr == aggr && c.max_t >= mint && c.min_t <= maxt) {
            let data = self.chunk_data(c)?;
            let bad = |e| self.chunk_error(c, e);
            if c.min_t >= mint && c.max_t <= maxt {
                decode_store_values(data, out).map_err(bad)?;
            } else {
                ts.clear();
                let at = out.len();
                decode_store_chunk(data, &mut ts, out).map_err(bad)?;
                let lo = ts.partition_point(|&t| t < mint);
                let hi = ts.partition_point(|&t| t <= maxt);
                out.truncate(at + hi);
                out.drain(at..at + lo);
            }
        }
        Ok(out.len() - start)
    }

    /// Series matching all `matchers` (all series for none), sorted by labels, with the samples
    /// of kind `aggr` in `[mint, maxt]` (inclusive both ends); series with no such samples are
    /// omitted.
    ///
    /// # Errors
    /// [`BlockError::Index`] or [`BlockError::Corrupt`] (with file and offset) for damaged data.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        aggr: Aggr,
    ) -> Result<Vec<(Labels, SampleBatch)>, BlockError> {
        self.select_iter(matchers, mint, maxt, aggr)?.collect()
    }

    /// Like [`select`](Self::select), one series at a time: a series' chunks are read and
    /// decoded only when the iterator reaches it.
    ///
    /// # Errors
    /// [`BlockError::Index`] when the postings cannot be read; the items carry the errors of
    /// each series.
    pub fn select_iter<'a>(
        &'a self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        aggr: Aggr,
    ) -> Result<impl Iterator<Item = Result<(Labels, SampleBatch), BlockError>> + 'a, BlockError> {
        let refs: Vec<u32> = if mint > maxt {
            Vec::new()
        } else if matchers.is_empty() {
            (0..self.num_series()).collect()
        } else {
            self.index.postings_for_matchers(matchers).map_err(|e| self.index_err(e))?.into_vec()
        };
        let matchers = matchers.to_vec();
        Ok(refs.into_iter().filter_map(move |r| self.read_selected(r, &matchers, mint, maxt, aggr).transpose()))
    }

    /// The reference of the series with exactly `labels`, if the block holds it.
    ///
    /// # Errors
    /// [`BlockError::Index`] or [`BlockError::Corrupt`] for damaged index entries.
    pub fn find_series(&self, labels: &Labels) -> Result<Option<u32>, BlockError> {
        let matchers: Vec<Matcher> = labels.iter().map(|l| Matcher::equal(&*l.name, &*l.value)).collect();
        for r in self.index.postings_for_matchers(&matchers).map_err(|e| self.index_err(e))?.into_vec() {
            if self.labels(r)? == *labels {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Labels of the series matching all `matchers` (all series for none) that have a chunk
    /// of any kind overlapping `[mint, maxt]` (chunk granularity: a series may have no sample
    /// in the range itself), sorted.
    ///
    /// # Errors
    /// [`BlockError::Index`] or [`BlockError::Corrupt`] for damaged index entries.
    pub fn series_in_range(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, BlockError> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        let refs: Vec<u32> = if matchers.is_empty() {
            (0..self.num_series()).collect()
        } else {
            self.index.postings_for_matchers(matchers).map_err(|e| self.index_err(e))?.into_vec()
        };
        let mut out = Vec::new();
        for r in refs {
            if !self.chunk_refs(r)?.iter().any(|c| c.max_t >= mint && c.min_t <= maxt) {
                continue;
            }
            let labels = self.labels(r)?;
            if matches_all(matchers, &labels) {
                out.push(labels);
            }
        }
        Ok(out)
    }

    fn read_selected(
        &self,
        r: u32,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        aggr: Aggr,
    ) -> Result<Option<(Labels, SampleBatch)>, BlockError> {
        let crefs = self.chunk_refs(r)?;
        if !crefs.iter().any(|c| c.aggr == aggr && c.max_t >= mint && c.min_t <= maxt) {
            return Ok(None);
        }
        let labels = self.labels(r)?;
        if !matches_all(matchers, &labels) {
            return Ok(None);
        }
        let mut batch = SampleBatch::default();
        self.read_series(&crefs, aggr, mint, maxt, &mut batch)?;
        Ok((!batch.is_empty()).then_some((labels, batch)))
    }
}

fn is_block_dir_name(name: &str) -> bool {
    name.len() == 26 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// All blocks under `parent`, sorted by (resolution, min_time, id). Leftover `*.tmp`
/// directories (a writer killed before its rename) and `*.deleted` ones (a deletion killed
/// half way) are removed first. A missing `parent` holds no blocks.
///
/// # Errors
/// [`BlockError`] of the first block that fails to open.
pub fn open_blocks(parent: &Path) -> Result<Vec<Block>, BlockError> {
    let mut blocks = Vec::new();
    for dir in block_dirs(parent, true)? {
        blocks.push(Block::open(&dir)?);
    }
    blocks.sort_by(|a, b| {
        (a.meta.resolution_ms, a.meta.min_time, &a.meta.id).cmp(&(b.meta.resolution_ms, b.meta.min_time, &b.meta.id))
    });
    Ok(blocks)
}

fn block_dirs(parent: &Path, clean: bool) -> Result<Vec<PathBuf>, BlockError> {
    let rd = match std::fs::read_dir(parent) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BlockError::Io { path: parent.to_path_buf(), source: e }),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(BlockError::io(parent))?;
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        if !path.is_dir() {
            continue;
        }
        if name.ends_with(".tmp") || name.ends_with(".deleted") {
            if clean {
                std::fs::remove_dir_all(&path).map_err(BlockError::io(&path))?;
            }
            continue;
        }
        if is_block_dir_name(&name) {
            out.push(path);
        }
    }
    Ok(out)
}

/// The `meta.json` of every block under `parent`, sorted by (resolution, min_time, id), without
/// opening indexes or chunks and without removing anything: the operator's view (as
/// `promtool tsdb list`).
///
/// # Errors
/// [`BlockError::Io`] or [`BlockError::Meta`].
pub fn list_blocks(parent: &Path) -> Result<Vec<BlockMeta>, BlockError> {
    let mut metas = Vec::new();
    for dir in block_dirs(parent, false)? {
        metas.push(read_meta(&dir)?);
    }
    metas.sort_by(|a, b| (a.resolution_ms, a.min_time, &a.id).cmp(&(b.resolution_ms, b.min_time, &b.id)));
    Ok(metas)
}

/// Deletes a block so that a kill never leaves half a block visible: the directory is first
/// renamed to `<id>.deleted` (which [`open_blocks`] ignores and removes), then removed.
///
/// # Errors
/// [`BlockError::Io`].
pub fn delete_block(block: &Block) -> Result<(), BlockError> {
    let dir = block.dir();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or(&block.meta.id);
    let trash = parent.join(format!("{name}.deleted"));
    std::fs::rename(dir, &trash).map_err(BlockError::io(dir))?;
    std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(BlockError::io(parent))?;
    std::fs::remove_dir_all(&trash).map_err(BlockError::io(&trash))
}
