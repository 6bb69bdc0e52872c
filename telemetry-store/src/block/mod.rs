//! On-disk blocks: immutable directories covering a time range.
//!
//! ```text
//! <parent>/<id>/            id: a ULID (26 characters, time-sortable)
//!   meta.json               BlockMeta (serde_json): range, resolution, stats, lineage
//!   index                   telemetry-index's persisted index (telemetry_index::block); each
//!                           series' opaque `meta` bytes are its chunk references (see ChunkRef)
//!   chunks/000001 …         segment files of chunks, each chunk with its length and CRC32C
//! ```
//!
//! Chunks are telemetry-compress `store` chunks (the optional [`Aggr::Sketch`] kind: one
//! DDSketch per rollup bucket, see [`Block::read_sketches`]), re-cut per series and per [`Aggr`] kind to
//! at most [`BlockWriterOptions::chunk_max_samples`] samples (2,048 by default; the head's
//! chunks hold 120). [`BlockWriter`] writes `<id>.tmp`, syncs every file and directory and
//! renames it into place; [`delete_block`] renames to `<id>.deleted` before removing;
//! [`open_blocks`] removes both kinds of leftovers. [`Block`] maps the index and the segments
//! and reads chunk ranges on demand; every offset is bounds-checked and every chunk's CRC32C
//! verified, and damage is a [`BlockError`] naming the file and byte offset, never a panic.
//! Segment and reference layouts: see [`ChunkRef`] and the `chunks` source module.
//!
//! The types shared with [`crate::tier`] (downsampling, retention, routing) are [`Aggr`],
//! [`BlockMeta`], [`BlockStats`] and [`BlockCompaction`].

use serde::{Deserialize, Serialize};

/// What a chunk of a block holds: raw samples, or one aggregate of a rollup tier.
///
/// Rollup blocks (resolution above 0) store each series as up to five aggregates, one chunk
/// stream per kind, all sharing the rollup timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Aggr {
    /// Raw samples (resolution 0).
    Raw = 0,
    /// Number of raw samples in the rollup interval.
    Count = 1,
    /// Sum of the raw values.
    Sum = 2,
    /// Smallest raw value.
    Min = 3,
    /// Largest raw value.
    Max = 4,
    /// Counter: the counter's increase into and within the rollup interval, resets removed
    /// (per interval, not cumulative; [`crate::tier::rollup_samples`] sums it into a running
    /// total), so `rate` over rollups stays correct.
    Counter = 5,
    /// A DDSketch of the raw values of the rollup interval (telemetry-agg's
    /// `CompactDdSketch`), for quantiles over rollups; optional ([`crate::tier::TierConfig`]'s
    /// `sketch_alpha`). Its chunks are not `store` chunks: layout in the `sketches` source
    /// module. Read with [`Block::read_sketches`].
    Sketch = 6,
}

/// A block's compaction lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCompaction {
    /// 1 for a block written from the head, the sum of levels + 1 after a merge.
    pub level: u32,
    /// Ids of the blocks this one was built from (itself for a level-1 block).
    pub sources: Vec<String>,
}

/// Counts a block's `meta.json` records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Series in the block.
    pub series: u64,
    /// Samples (raw) or rollup points (rollup tiers).
    pub samples: u64,
    /// Chunks.
    pub chunks: u64,
    /// Bytes on disk: chunk segments, index and `meta.json`.
    pub bytes: u64,
}

/// The content of a block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Time-sortable unique id, also the directory name.
    pub id: String,
    /// First timestamp the block may hold (ms, inclusive).
    pub min_time: i64,
    /// End of the block's range (ms, exclusive), as Prometheus blocks.
    pub max_time: i64,
    /// 0 for raw samples, else the rollup interval in ms (60,000 or 3,600,000 by default).
    pub resolution_ms: i64,
    /// Counts.
    pub stats: BlockStats,
    /// Lineage.
    pub compaction: BlockCompaction,
    /// `true` for a block of out-of-order samples that arrived after their range was persisted.
    #[serde(default)]
    pub out_of_order: bool,
}

mod chunks;
mod error;
mod reader;
mod sketches;
mod writer;

pub use chunks::{ChunkRef, SEGMENT_MAGIC};
pub use error::BlockError;
pub use reader::{Block, delete_block, list_blocks, open_blocks};
pub use writer::{BlockWriter, BlockWriterOptions, new_block_id};

/// Name of a block's metadata file.
pub const META_FILE: &str = "meta.json";
/// Name of a block's index file (telemetry-index's persisted format).
pub const INDEX_FILE: &str = "index";
/// Name of the directory holding a block's chunk segments.
pub const CHUNKS_DIR: &str = "chunks";

impl Aggr {
    /// All kinds, in byte order.
    pub const ALL: [Aggr; 7] = [Aggr::Raw, Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter, Aggr::Sketch];

    /// The kind stored as byte `b` in a chunk reference.
    pub fn from_u8(b: u8) -> Option<Aggr> {
        Aggr::ALL.get(b as usize).copied()
    }
}
