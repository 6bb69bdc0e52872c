//! # telemetry-store
//!
//! Storage of the suite: the **head block** (recent data in memory, one XOR chunk per series
//! being filled), the **write-ahead log** that makes every acknowledged sample survive a
//! crash, immutable **blocks** on disk, their **compaction**, and **tiers** of rollups with
//! retention, all behind telemetry-core's [`Queryable`](telemetry_core::Queryable).
//!
//! - [`db::Db`]: head + WAL + blocks in one directory; persists the head's oldest range into
//!   a block and checkpoints the WAL, writes samples older than the persisted range to
//!   out-of-order blocks, compacts, runs the tiers ([`Db::maintain`](db::Db::maintain), by
//!   hand with a fake clock or on a background thread), and reads head, blocks and rollups
//!   merged.
//! - [`Head`]: series map, in-memory index, chunks, ordering rules (out-of-order window,
//!   duplicate handling), statistics, garbage collection, and
//!   [`Queryable`](telemetry_core::Queryable).
//! - [`Appender`]: `append*` then [`commit`](Appender::commit); a returned commit is durable
//!   under the [`SyncPolicy`] and may be acknowledged.
//! - [`wal`]: segments, records with length, type and CRC32C, replay with repair of a torn
//!   or corrupt tail, checkpoints.
//! - [`block`]: the on-disk block (chunk segments in telemetry-compress's `store` format with
//!   CRC32C, telemetry-index's persisted index, `meta.json`), written atomically, read
//!   through memory maps; [`block::list_blocks`] is the operator's view.
//! - [`tier`]: downsampling into rollup tiers, retention per tier, query routing.
//!
//! ```
//! use telemetry_core::{Labels, Queryable, SampleBatches, SelectHints, Matcher};
//! use telemetry_store::{Head, HeadOptions, SyncPolicy};
//!
//! let dir = std::env::temp_dir().join(format!("telemetry-store-doc-{}", std::process::id()));
//! let mut opts = HeadOptions::default();
//! opts.wal.sync = SyncPolicy::Always;
//! let up = Labels::from_pairs([("__name__", "up"), ("job", "node")])?;
//! {
//!     let (head, _replay) = Head::open(&dir, opts.clone())?;
//!     let mut app = head.appender();
//!     app.append(&up, 1_000, 1.0)?;
//!     app.append_pairs([("__name__", "up"), ("job", "node")], 2_000, 0.0)?;
//!     app.commit()?; // durable from here on: acknowledge
//! }
//! // Reopening replays the WAL.
//! {
//!     let (head, replay) = Head::open(&dir, opts)?;
//!     assert!(replay.corruption.is_none());
//!     let q = head.querier(0, 10_000)?;
//!     let mut set = q.select(&SelectHints::default(), &[Matcher::equal("job", "node")])?;
//!     let mut series = set.next().unwrap()?;
//!     assert_eq!(series.labels, up);
//!     assert_eq!(series.samples.collect_all()?.values, vec![1.0, 0.0]);
//!     assert_eq!(head.stats().samples_appended, 2);
//! }
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod block;
mod compact;
pub mod db;
mod downsample;
mod error;
mod head;
mod query;
pub mod record;
pub mod rollup;
mod series;
pub mod tier;
pub mod tombstone;
pub mod wal;

pub use error::{AppendError, DbError, HeadError, RefuseReason};
pub use head::{Appender, CommitSummary, Head, HeadOptions, HeadStats};
pub use query::HeadQuerier;
pub use tombstone::Tombstones;
pub use wal::{CheckpointReport, ReplayReport, SyncPolicy, Wal, WalError, WalOptions};

/// A series' reference in the head and the WAL: assigned at creation, never reused, stable
/// across restarts (the WAL records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SeriesRef(pub u64);

impl SeriesRef {
    /// The reference as telemetry-index's dense `u32` (references stay below `u32::MAX`).
    pub(crate) fn index_ref(self) -> telemetry_index::SeriesRef {
        self.0 as u32
    }
}

impl std::fmt::Display for SeriesRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
