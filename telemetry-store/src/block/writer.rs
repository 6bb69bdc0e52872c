//! Writing a block: chunks into segments, then the index and `meta.json`, then an atomic rename.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use telemetry_agg::CompactDdSketch;
use telemetry_compress::{STORE_MAX_SAMPLES, StoreOptions, encode_store_chunk_with};
use telemetry_core::Labels;

use super::chunks::{ChunkRef, SEGMENT_MAGIC, SEGMENT_VERSION, encode_refs, segment_path};
use super::sketches::encode_sketch_chunk;
use super::{Aggr, BlockCompaction, BlockError, BlockMeta, BlockStats, CHUNKS_DIR, INDEX_FILE, META_FILE};
use crate::record::put_uvarint;

/// How a [`BlockWriter`] cuts chunks and segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWriterOptions {
    /// Largest number of samples in one chunk (default 2,048; clamped to 1..=65,535). A
    /// series' samples of one kind are split into equal chunks of at most this many: the
    /// head's 120-sample chunks are re-cut, because per-chunk overhead dominates bytes per
    /// sample in small chunks.
    pub chunk_max_samples: usize,
    /// A segment file is closed before it would grow past this many bytes (default 512 MiB).
    pub segment_max_bytes: u64,
}

impl Default for BlockWriterOptions {
    fn default() -> Self {
        BlockWriterOptions { chunk_max_samples: 2048, segment_max_bytes: 512 << 20 }
    }
}

/// Writes one block under a parent directory.
///
/// Everything goes to `parent/<id>.tmp`; [`finish`](Self::finish) writes the index and
/// `meta.json`, syncs every file and directory, and renames the directory to `parent/<id>`,
/// so a crash leaves either a complete block or a `.tmp` directory that
/// [`open_blocks`](super::open_blocks) removes. A writer dropped without `finish` removes its
/// temporary directory.
///
/// Block ids are 26-character ULIDs (Crockford base32 of 48 bits of milliseconds and 80
/// random bits), so their order is creation order.
#[derive(Debug)]
pub struct BlockWriter {
    parent: PathBuf,
    id: String,
    tmp: PathBuf,
    resolution_ms: i64,
    opts: BlockWriterOptions,
    segment: u32,
    out: Option<(BufWriter<File>, u64)>,
    segment_bytes: u64,
    series: Vec<(Labels, Vec<u8>)>,
    samples: u64,
    chunks: u64,
    refs: Vec<ChunkRef>,
    buf: Vec<u8>,
    /// The chunk encoder's options: rollup blocks, read in bulk over months and years, favour
    /// decoding speed ([`StoreOptions::read_speed`]); raw blocks take the defaults.
    encoding: StoreOptions,
    finished: bool,
    out_of_order: bool,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new time-sortable block id (a ULID): later calls in one process return larger ids.
pub fn new_block_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let rs = std::collections::hash_map::RandomState::new();
    let mut h = rs.build_hasher();
    h.write_u64(ms);
    h.write_u32(std::process::id());
    let hi = h.finish();
    h.write_u64(hi);
    let lo = h.finish();
    let mut rand = ((u128::from(hi) << 64) | u128::from(lo)) & ((1u128 << 80) - 1);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let mut ms = ms & ((1 << 48) - 1);
    if ms <= last.0 {
        ms = last.0;
        rand = (last.1 + 1) & ((1u128 << 80) - 1);
        if rand == 0 {
            ms += 1;
        }
    }
    *last = (ms, rand);
    let v = (u128::from(ms) << 80) | rand;
    (0..26).map(|i| CROCKFORD[((v >> (125 - 5 * i)) & 31) as usize] as char).collect()
}

fn sync_dir(path: &Path) -> Result<(), BlockError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(BlockError::io(path))
}

impl BlockWriter {
    /// Starts a block under `parent` (created if missing) with default options; see
    /// [`with_options`](Self::with_options).
    ///
    /// # Errors
    /// [`BlockError::Io`] when the directories cannot be created.
    pub fn new(parent: &Path, resolution_ms: i64) -> Result<BlockWriter, BlockError> {
        Self::with_options(parent, resolution_ms, BlockWriterOptions::default())
    }

    /// Starts a block under `parent` (written to `parent/<id>.tmp`, renamed to `parent/<id>`
    /// by [`finish`](Self::finish)); `resolution_ms` is 0 for raw samples.
    ///
    /// # Errors
    /// [`BlockError::Io`] when the directories cannot be created.
    pub fn with_options(
        parent: &Path,
        resolution_ms: i64,
        opts: BlockWriterOptions,
    ) -> Result<BlockWriter, BlockError> {
        let id = new_block_id();
        let tmp = parent.join(format!("{id}.tmp"));
        std::fs::create_dir_all(tmp.join(CHUNKS_DIR)).map_err(BlockError::io(&tmp))?;
        Ok(BlockWriter {
            parent: parent.to_path_buf(),
            id,
            tmp,
            resolution_ms,
            opts,
            segment: 0,
            out: None,
            segment_bytes: 0,
            series: Vec::new(),
            samples: 0,
            chunks: 0,
            refs: Vec::new(),
            buf: Vec::new(),
            encoding: if resolution_ms > 0 { StoreOptions::read_speed() } else { StoreOptions::default() },
            finished: false,
            out_of_order: false,
        })
    }

    /// The block's id (its final directory name).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn close_segment(&mut self) -> Result<(), BlockError> {
        if let Some((w, size)) = self.out.take() {
            let path = segment_path(&self.tmp, self.segment);
            let f = w.into_inner().map_err(|e| BlockError::Io { path: path.clone(), source: e.into_error() })?;
            f.sync_all().map_err(BlockError::io(&path))?;
            self.segment_bytes += size;
        }
        Ok(())
    }

    fn write_chunk(&mut self, aggr: Aggr, ts: &[i64], data_len: usize) -> Result<(), BlockError> {
        let mut head = [0u8; 10];
        let mut hl = Vec::with_capacity(10);
        put_uvarint(&mut hl, data_len as u64);
        head[..hl.len()].copy_from_slice(&hl);
        let entry = (hl.len() + data_len + 4) as u64;
        if let Some((_, size)) = &self.out
            && *size > super::chunks::SEGMENT_HEADER_LEN as u64
            && size + entry > self.opts.segment_max_bytes
        {
            self.close_segment()?;
        }
        if self.out.is_none() {
            self.segment += 1;
            let path = segment_path(&self.tmp, self.segment);
            let f = File::create(&path).map_err(BlockError::io(&path))?;
            let mut w = BufWriter::with_capacity(1 << 16, f);
            let mut h = SEGMENT_MAGIC.to_vec();
            h.extend_from_slice(&[SEGMENT_VERSION, 0, 0, 0]);
            w.write_all(&h).map_err(BlockError::io(&path))?;
            self.out = Some((w, h.len() as u64));
        }
        let segment = self.segment;
        let path = segment_path(&self.tmp, segment);
        let (w, size) = self.out.as_mut().ok_or_else(|| BlockError::corrupt(&path, 0, "no open segment"))?; // ok: opened above
        let offset = *size;
        let data = &self.buf[..data_len];
        let crc = crc32c::crc32c(data);
        w.write_all(&head[..hl.len()])
            .and_then(|_| w.write_all(data))
            .and_then(|_| w.write_all(&crc.to_le_bytes()))
            .map_err(BlockError::io(&path))?;
        *size += entry;
        self.refs.push(ChunkRef {
            aggr,
            min_t: ts[0],            // ok: add_series passes non-empty chunks only
            max_t: ts[ts.len() - 1], // ok: as above
            segment,
            offset,
            length: data_len as u32,
        });
        self.chunks += 1;
        Ok(())
    }

    /// Adds one series: its labels and, per aggregate kind, its samples in strictly increasing
    /// time order (raw blocks: only [`Aggr::Raw`]; rollup blocks: any of the aggregate kinds).
    /// Series may come in any order; kinds with no samples are skipped, and a series with no
    /// samples at all is left out. The samples are cut into chunks of at most
    /// [`BlockWriterOptions::chunk_max_samples`] (split evenly) in telemetry-compress's
    /// `store` format and appended to the current segment.
    ///
    /// # Errors
    /// [`BlockError::InvalidSamples`] when a kind's slices differ in length or its timestamps
    /// do not increase strictly, or the labels are empty; [`BlockError::Encode`];
    /// [`BlockError::Io`].
    pub fn add_series(&mut self, labels: &Labels, data: &[(Aggr, &[i64], &[f64])]) -> Result<(), BlockError> {
        self.add_series_with_sketches(labels, data, &[], &[])
    }

    /// [`add_series`](Self::add_series) for a rollup series with, besides its aggregates, a
    /// quantile sketch per bucket: `sketches[i]` for the bucket ending at `sketch_ts[i]`
    /// (strictly increasing; any subset of the buckets; all sketches with one alpha). They
    /// are stored as [`Aggr::Sketch`] chunks, cut like the other kinds. Sketch points are not
    /// counted in the block's `samples`.
    ///
    /// # Errors
    /// As [`add_series`](Self::add_series); [`BlockError::InvalidSamples`] when the sketches
    /// and their timestamps differ in length or the alphas differ.
    pub fn add_series_with_sketches(
        &mut self,
        labels: &Labels,
        data: &[(Aggr, &[i64], &[f64])],
        sketch_ts: &[i64],
        sketches: &[CompactDdSketch],
    ) -> Result<(), BlockError> {
        let invalid = |reason: String| BlockError::InvalidSamples { series: labels.to_string(), reason };
        if labels.is_empty() {
            return Err(invalid("empty label set".into()));
        }
        if data.iter().any(|d| d.0 == Aggr::Sketch) {
            return Err(invalid("sketches are not floats: pass them as the sketches".into()));
        }
        self.refs.clear();
        let max = self.opts.chunk_max_samples.clamp(1, STORE_MAX_SAMPLES);
        let sketch_part = (Aggr::Sketch, sketch_ts, sketch_ts.len(), sketches.len());
        let parts =
            data.iter().map(|&(aggr, ts, vs)| (aggr, ts, ts.len(), vs.len())).chain(std::iter::once(sketch_part));
        for (i, (aggr, ts, n, nv)) in parts.enumerate() {
            if n != nv {
                return Err(invalid(format!("{aggr:?}: {n} timestamps but {nv} values")));
            }
            if let Some(i) = ts.windows(2).position(|w| w[1] <= w[0]) {
                return Err(invalid(format!("{aggr:?}: timestamp {} follows {}", ts[i + 1], ts[i])));
            }
            if n == 0 {
                continue;
            }
            let chunks = n.div_ceil(max);
            let per = n.div_ceil(chunks);
            let mut start = 0;
            while start < n {
                let end = (start + per).min(n);
                self.buf.clear();
                match data.get(i) {
                    Some(&(_, _, vs)) => {
                        encode_store_chunk_with(&ts[start..end], &vs[start..end], &self.encoding, &mut self.buf)
                            .map_err(|source| BlockError::Encode { series: labels.to_string(), source })?;
                    }
                    None => encode_sketch_chunk(&ts[start..end], &sketches[start..end], &mut self.buf)
                        .map_err(|e| invalid(format!("sketches: {e}")))?,
                }
                let len = self.buf.len();
                self.write_chunk(aggr, &ts[start..end], len)?;
                start = end;
            }
            if i < data.len() {
                self.samples += n as u64;
            }
        }
        if self.refs.is_empty() {
            return Ok(());
        }
        let mut meta = Vec::with_capacity(8 + self.refs.len() * 12);
        encode_refs(&mut meta, &self.refs);
        self.series.push((labels.clone(), meta));
        Ok(())
    }

    /// Series added so far.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Writes the index and `meta.json`, syncs, and renames the block into place. `min_time`
    /// and `max_time` are the block's range (`max_time` exclusive); statistics are computed
    /// here. An empty `compaction.sources` becomes the block's own id, a level of 0 becomes 1.
    ///
    /// # Errors
    /// [`BlockError::Io`], [`BlockError::Index`], [`BlockError::DuplicateSeries`].
    pub fn finish(
        mut self,
        min_time: i64,
        max_time: i64,
        mut compaction: BlockCompaction,
    ) -> Result<BlockMeta, BlockError> {
        self.close_segment()?;
        let mut series = std::mem::take(&mut self.series);
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = series.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BlockError::DuplicateSeries(w[0].0.to_string()));
        }
        let index_path = self.tmp.join(INDEX_FILE);
        let mut iw = telemetry_index::BlockWriter::new();
        for (labels, meta) in &series {
            iw.add_series(labels, meta).map_err(|source| BlockError::Index { path: index_path.clone(), source })?;
        }
        let index = iw.finish().map_err(|source| BlockError::Index { path: index_path.clone(), source })?;
        write_synced(&index_path, &index)?;
        if compaction.level == 0 {
            compaction.level = 1;
        }
        if compaction.sources.is_empty() {
            compaction.sources.push(self.id.clone());
        }
        let mut meta = BlockMeta {
            id: self.id.clone(),
            min_time,
            max_time,
            resolution_ms: self.resolution_ms,
            stats: BlockStats {
                series: series.len() as u64,
                samples: self.samples,
                chunks: self.chunks,
                bytes: self.segment_bytes + index.len() as u64,
            },
            compaction,
            out_of_order: self.out_of_order,
        };
        let json = meta_json(&mut meta, self.segment_bytes + index.len() as u64);
        let meta_path = self.tmp.join(META_FILE);
        write_synced(&meta_path, &json)?;
        sync_dir(&self.tmp.join(CHUNKS_DIR))?;
        sync_dir(&self.tmp)?;
        let dst = self.parent.join(&self.id);
        std::fs::rename(&self.tmp, &dst).map_err(BlockError::io(&dst))?;
        sync_dir(&self.parent)?;
        self.finished = true;
        Ok(meta)
    }

    /// Marks the block as holding out-of-order samples that arrived after their range was
    /// persisted (`out_of_order` in `meta.json`).
    pub fn set_out_of_order(&mut self, out_of_order: bool) {
        self.out_of_order = out_of_order;
    }
}

/// Serialises `meta` with `stats.bytes` counting the JSON itself (a fixed point: the length
/// of the number changes the length of the text at most twice).
fn meta_json(meta: &mut BlockMeta, other_bytes: u64) -> Vec<u8> {
    let mut json = Vec::new();
    for _ in 0..4 {
        json = serde_json::to_vec_pretty(&*meta).unwrap_or_default(); // ok: plain structs always serialise
        let total = other_bytes + json.len() as u64;
        if meta.stats.bytes == total {
            break;
        }
        meta.stats.bytes = total;
    }
    json
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(BlockError::io(path))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(BlockError::io(path))
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.out = None;
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
