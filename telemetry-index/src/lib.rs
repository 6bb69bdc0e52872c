//! # telemetry-index
//!
//! Inverted index from label pairs to series postings with Prometheus matcher semantics.
//!
//! - [`SeriesRef`]: dense integer series references handed out by the caller.
//! - [`Postings`]: sorted reference sets with a galloping cursor ([`PostingsCursor`]) and
//!   intersection, union and difference.
//! - [`MemIndex`]: the head block's in-memory index (`&self` methods, one writer and many
//!   concurrent readers).
//! - [`BlockWriter`] / [`BlockIndex`]: the persisted, immutable index of a block, read
//!   through a memory map with every offset bounds-checked and CRC32C checksums.
//! - [`IndexReader`]: the query calls (`postings_for_matchers`, `label_names`,
//!   `label_values`, series per metric name, top label pairs), written once and answered by
//!   every index.
//!
//! Matcher semantics follow Prometheus (`tsdb/querier.go`): matchers are ANDed, `!=` and `!~`
//! subtract, a matcher that matches the empty string also selects series without the label,
//! and a selector with only such matchers is evaluated against all series.
//!
//! ```
//! use telemetry_core::{Labels, Matcher};
//! use telemetry_index::{IndexReader, MemIndex};
//!
//! let idx = MemIndex::new();
//! for (r, (job, inst)) in [("node", "host-1"), ("node", "host-2"), ("api", "host-1")].into_iter().enumerate() {
//!     let l = Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", inst)]).unwrap();
//!     idx.add(r as u32, &l).unwrap();
//! }
//! let m = [Matcher::equal("job", "node"), Matcher::regex("instance", "host-.*").unwrap()];
//! assert_eq!(idx.postings_for_matchers(&m).as_slice(), &[0, 1]);
//! assert_eq!(idx.label_values("job", &[Matcher::equal("instance", "host-2")]), ["node"]);
//! assert_eq!(idx.series_count_by_metric_name(), [("up".to_string(), 3)]);
//! ```

pub mod block;
mod error;
pub mod mem;
pub mod postings;
mod pred;
pub mod reader;

pub use block::{BlockIndex, BlockWriter, SymbolCache};
pub use error::IndexError;
pub use mem::{MemIndex, MemReader};
pub use postings::{Postings, PostingsCursor, SliceCursor, UnsortedPostings};
pub use reader::{IndexReader, LabelPairCount};

/// A series reference: a dense integer id that the caller (the head block, or the writer of
/// a persisted index) hands out, one per series, starting near 0.
///
/// Dense ids keep postings compact (4 bytes per entry) and let per-series tables be plain
/// vectors indexed by reference. `u32::MAX` is reserved; an index holds at most about
/// four billion series.
pub type SeriesRef = u32;
