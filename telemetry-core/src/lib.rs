//! # telemetry-core
//!
//! The metric model every telemetry crate shares:
//!
//! - [`Labels`] (sorted, validated `(name, value)` pairs; `__name__` holds the metric name),
//!   [`LabelsBuilder`], and [`Fingerprint`], the stable 64-bit hash Prometheus computes;
//! - [`Sample`] (`timestamp_ms: i64` milliseconds since the Unix epoch, `value: f64`) and the
//!   stale marker ([`STALE_NAN`]);
//! - [`MetricType`] and [`Metadata`];
//! - [`Matcher`] with Prometheus semantics (anchored regexes; empty-matching matchers select
//!   series that lack the label);
//! - the storage interface ([`Queryable`], [`Querier`], [`SeriesSet`], batches of samples) and
//!   [`MemStorage`], an in-memory reference implementation;
//! - wire formats ([`mod@format`]) and cardinality limits ([`cardinality`]).
//!
//! ```
//! use telemetry_core::{Labels, Matcher, MemStorage, Queryable, SelectHints, SampleBatches};
//!
//! let series = Labels::from_pairs([("__name__", "node_load1"), ("instance", "host-1")])?;
//! assert_eq!(series.to_string(), r#"node_load1{instance="host-1"}"#);
//!
//! let db = MemStorage::new();
//! db.append(&series, 1_700_000_000_000, 0.25);
//! let querier = db.querier(i64::MIN, i64::MAX)?;
//! let matchers = [Matcher::regex("instance", "host-.*")?];
//! for s in querier.select(&SelectHints::default(), &matchers)? {
//!     let mut s = s?;
//!     assert_eq!(s.samples.collect_all()?.values, vec![0.25]);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cardinality;
pub mod fingerprint;
pub mod format;
pub mod labels;
pub mod matcher;
pub mod memory;
pub mod metric;
pub mod sample;
pub mod storage;

pub use fingerprint::Fingerprint;
pub use labels::{Label, LabelError, LabelLimits, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError, matches_all};
pub use memory::MemStorage;
pub use metric::{Metadata, MetricType};
pub use sample::{STALE_NAN, STALE_NAN_BITS, Sample, is_stale_nan};
pub use storage::{Querier, Queryable, SampleBatch, SampleBatches, SelectHints, Series, SeriesSet, StorageError};
