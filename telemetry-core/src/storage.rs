//! The storage interface: what telemetry-store implements and telemetry-query consumes.
//!
//! The shape follows Prometheus's `storage.Queryable` / `Querier` / `SeriesSet`
//! (`storage/interface.go`), with one change that matters for speed: samples cross the
//! interface in batches ([`SampleBatch`]: parallel slices of timestamps and values, typically a
//! decoded chunk), not one virtual call per sample.
//!
//! Contract for implementations:
//! - [`Querier::select`] yields series sorted by [`Labels`] order, each at most once;
//! - a series' batches yield samples in strictly increasing timestamp order, restricted to the
//!   querier's `[mint, maxt]` (both inclusive, milliseconds since the Unix epoch), with
//!   duplicates and out-of-order data already merged;
//! - series with no sample in `[mint, maxt]` may be left out;
//! - stale markers ([`STALE_NAN`](crate::STALE_NAN)) are passed through as values.

use thiserror::Error;

use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::sample::Sample;

/// What a query tells storage about how it will read, so that storage can choose a resolution
/// or skip work. Storage must still return correct raw data when it ignores the hints.
/// Milliseconds throughout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectHints {
    /// First timestamp the query needs (inclusive).
    pub start_ms: i64,
    /// Last timestamp the query needs (inclusive).
    pub end_ms: i64,
    /// Step of a range query; 0 for an instant query.
    pub step_ms: i64,
    /// Range of a range selector (`[5m]` is 300,000); 0 for an instant selector.
    pub range_ms: i64,
    /// The function applied to the selection (`rate`, `sum_over_time`, ...), if any.
    pub func: Option<String>,
    /// For `quantile_over_time(φ, …)` with a constant φ, that φ (storage holding quantile
    /// sketches can answer from them); `None` otherwise.
    pub quantile: Option<f64>,
    /// The aggregation's grouping labels, if the selection feeds one.
    pub grouping: Vec<String>,
    /// `true` for `by (...)`, `false` for `without (...)`.
    pub by: bool,
}

/// Errors a storage implementation reports to its readers.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O error reading the underlying files.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data failed a check (checksum, bounds, format).
    #[error("corrupt data in {location}: {reason}")]
    Corruption {
        /// Where: a file, block or chunk reference.
        location: String,
        /// What check failed.
        reason: String,
    },
    /// The request was cancelled by the caller.
    #[error("query cancelled")]
    Canceled,
    /// The request asks for something the implementation does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A resource limit was reached (for example the samples a query may load).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

/// A batch of samples: parallel slices of timestamps (ms) and values, in time order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SampleBatch {
    /// Timestamps, milliseconds since the Unix epoch, strictly increasing.
    pub timestamps: Vec<i64>,
    /// Values, `values[i]` observed at `timestamps[i]`.
    pub values: Vec<f64>,
}

impl SampleBatch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Empties both slices, keeping their capacity.
    pub fn clear(&mut self) {
        self.timestamps.clear();
        self.values.clear();
    }

    /// Appends one sample.
    pub fn push(&mut self, timestamp_ms: i64, value: f64) {
        self.timestamps.push(timestamp_ms);
        self.values.push(value);
    }

    /// Iterates over the samples.
    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        self.timestamps.iter().zip(&self.values).map(|(&t, &v)| Sample::new(t, v))
    }
}

/// The samples of one series, read batch by batch.
pub trait SampleBatches {
    /// Clears `out` and fills it with the next samples; returns `Ok(false)` (with `out` empty)
    /// when there are no more.
    ///
    /// # Errors
    /// [`StorageError`] when stored data cannot be read.
    fn next_batch(&mut self, out: &mut SampleBatch) -> Result<bool, StorageError>;

    /// Reads every remaining sample into one batch.
    ///
    /// # Errors
    /// As [`next_batch`](Self::next_batch).
    fn collect_all(&mut self) -> Result<SampleBatch, StorageError> {
        let mut all = SampleBatch::default();
        let mut b = SampleBatch::default();
        while self.next_batch(&mut b)? {
            all.timestamps.extend_from_slice(&b.timestamps);
            all.values.extend_from_slice(&b.values);
        }
        Ok(all)
    }
}

/// One selected series: its labels and its samples.
pub struct Series<'q> {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Its samples in `[mint, maxt]`.
    pub samples: Box<dyn SampleBatches + 'q>,
}

impl std::fmt::Debug for Series<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series").field("labels", &self.labels).finish_non_exhaustive()
    }
}

/// Selected series in [`Labels`] order.
pub type SeriesSet<'q> = Box<dyn Iterator<Item = Result<Series<'q>, StorageError>> + 'q>;

/// Something that can be read: hands out [`Querier`]s over a time range.
pub trait Queryable: Send + Sync {
    /// A reader over `[mint, maxt]` (inclusive, milliseconds). It sees a consistent view: data
    /// appended after this call may or may not be visible, but what it returns never changes
    /// under it.
    ///
    /// # Errors
    /// [`StorageError`] when the storage cannot be read.
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError>;
}

/// Reads series, label names and label values over the range it was made for.
pub trait Querier: Send {
    /// The series matching every matcher, sorted by labels. With no matchers, every series.
    ///
    /// # Errors
    /// [`StorageError`] when the storage cannot be read or a limit is exceeded.
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet<'_>, StorageError>;

    /// Sorted, unique label names of the series matching `matchers` (all series when empty).
    ///
    /// # Errors
    /// [`StorageError`] when the storage cannot be read.
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;

    /// Sorted, unique values of label `name` over the series matching `matchers`.
    ///
    /// # Errors
    /// [`StorageError`] when the storage cannot be read.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;
}
