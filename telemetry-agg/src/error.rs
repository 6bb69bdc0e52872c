//! Error types.

use thiserror::Error;

/// An aggregator or aggregate configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The window width is not positive.
    #[error("window width must be positive, got {0} ms")]
    WindowWidth(i64),
    /// The allowed lateness is negative or above the 5-minute ceiling.
    #[error("allowed lateness must be within 0..={max} ms, got {got} ms")]
    Lateness {
        /// The value given.
        got: i64,
        /// The ceiling, [`MAX_ALLOWED_LATENESS_MS`](crate::MAX_ALLOWED_LATENESS_MS).
        max: i64,
    },
    /// A quantile outside `[0, 1]` (or NaN).
    #[error("quantile {0} is outside [0, 1]")]
    Quantile(f64),
    /// The DDSketch relative accuracy is outside `(0, 1)`.
    #[error("DDSketch alpha must be in (0, 1), got {0}")]
    DdSketchAlpha(f64),
    /// The t-digest compression is below 10 or above 10,000.
    #[error("t-digest compression must be within 10..=10000, got {0}")]
    TDigestCompression(usize),
    /// A cap (open windows, keys, series) is zero.
    #[error("{what} must be at least 1")]
    ZeroCap {
        /// Which cap.
        what: &'static str,
    },
    /// A sampling parameter is out of range.
    #[error("sampling rule {rule}: {reason}")]
    Sampling {
        /// Index of the rule (`usize::MAX` for the default policy).
        rule: usize,
        /// What is wrong.
        reason: String,
    },
    /// A metric-name pattern does not compile.
    #[error("sampling rule {rule}: {source}")]
    Pattern {
        /// Index of the rule.
        rule: usize,
        /// The regex error.
        source: telemetry_core::MatcherError,
    },
}

/// Two aggregates that cannot be merged because they were built with different parameters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    /// One aggregate has a component (named) that the other lacks.
    #[error("aggregate component {0} is present on one side only")]
    Shape(&'static str),
    /// The sketches were configured differently (named component).
    #[error("{0} parameters differ")]
    Parameters(&'static str),
    /// Window records with different windows or label sets.
    #[error("records differ in {0}")]
    Records(&'static str),
    /// The merged sketch (named component) would hold more than `u64::MAX` values.
    #[error("{0} value count would overflow u64")]
    CountOverflow(&'static str),
}

/// A [`CompactDdSketch`](crate::ddbins::CompactDdSketch) parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SketchError {
    /// The relative accuracy is not finite, not in `(0, 1)`, or so small (below about
    /// 1.7e-7) that the bin index of `f64::MAX` would not fit an `i32`.
    #[error("DDSketch alpha must be finite and in [{min:e}, 1), got {got}")]
    Alpha {
        /// The value given.
        got: f64,
        /// The smallest accepted value, [`MIN_ALPHA`](crate::ddbins::MIN_ALPHA).
        min: f64,
    },
}

/// Why bytes could not be decoded as a [`CompactDdSketch`](crate::ddbins::CompactDdSketch)
/// (layout in the [`ddbins`](crate::ddbins) module docs). Every variant names the byte offset,
/// relative to the start of the slice given to the decoder, of the field that is wrong.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SketchDecodeError {
    /// The alpha given to the decoder is invalid (no byte was read).
    #[error(transparent)]
    Alpha(#[from] SketchError),
    /// The input ends inside a field.
    #[error("DDSketch bytes end at offset {offset} inside the {field}")]
    Truncated {
        /// Offset at which the field starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("DDSketch varint at offset {offset} ({field}) overflows u64")]
    VarintOverflow {
        /// Offset at which the varint starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// The flags byte has bits other than bit 0 set.
    #[error("DDSketch flags byte at offset {offset} is {flags:#04x}; only bit 0 may be set")]
    Flags {
        /// Offset of the flags byte.
        offset: usize,
        /// The byte read.
        flags: u8,
    },
    /// A bin run longer than [`MAX_BINS`](crate::ddbins::MAX_BINS).
    #[error("DDSketch {store} run at offset {offset} has {nbins} bins, more than {max}")]
    TooManyBins {
        /// Offset of the bin count.
        offset: usize,
        /// `"positive"` or `"negative"`.
        store: &'static str,
        /// The bin count read.
        nbins: u64,
        /// The cap.
        max: usize,
    },
    /// A bin run whose indices fall outside the range that finite values can reach for this
    /// alpha (this includes offsets outside `i32`).
    #[error("DDSketch {store} bins {first}..={last} at offset {offset} lie outside {min}..={max} for this alpha")]
    IndexRange {
        /// Offset of the run's first-bin index.
        offset: usize,
        /// `"positive"` or `"negative"`.
        store: &'static str,
        /// First bin index read.
        first: i64,
        /// Last bin index implied by the bin count.
        last: i64,
        /// Lowest valid index.
        min: i64,
        /// Highest valid index.
        max: i64,
    },
    /// The first or last count of a run is zero (runs are stored trimmed, so this is not a
    /// sketch the encoder wrote).
    #[error("DDSketch {store} run has a zero count at its edge (count at offset {offset})")]
    ZeroEdge {
        /// Offset of the zero count.
        offset: usize,
        /// `"positive"` or `"negative"`.
        store: &'static str,
    },
    /// The counts add up to more than `u64::MAX`.
    #[error("DDSketch counts overflow u64 at offset {offset}")]
    CountOverflow {
        /// Offset of the count that overflowed the total.
        offset: usize,
    },
    /// The bytes decode, but adding them to the sketch failed (only from
    /// [`CompactDdSketch::merge_encoded`](crate::ddbins::CompactDdSketch::merge_encoded),
    /// today only with [`MergeError::CountOverflow`]: the two hold more than `u64::MAX` values
    /// together). No byte is at fault, so [`offset`](SketchDecodeError::offset) is 0.
    #[error(transparent)]
    Merge(MergeError),
}

impl SketchDecodeError {
    /// Byte offset of the offending field (0 for [`SketchDecodeError::Alpha`] and
    /// [`SketchDecodeError::Merge`]).
    pub fn offset(&self) -> usize {
        match self {
            SketchDecodeError::Alpha(_) | SketchDecodeError::Merge(_) => 0,
            SketchDecodeError::Truncated { offset, .. }
            | SketchDecodeError::VarintOverflow { offset, .. }
            | SketchDecodeError::Flags { offset, .. }
            | SketchDecodeError::TooManyBins { offset, .. }
            | SketchDecodeError::IndexRange { offset, .. }
            | SketchDecodeError::ZeroEdge { offset, .. }
            | SketchDecodeError::CountOverflow { offset } => *offset,
        }
    }
}

/// Why the aggregator refused a sample or a series.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AggError {
    /// The key cap is reached and the overflow policy is [`KeyOverflow::Reject`](crate::KeyOverflow::Reject).
    #[error("key limit of {limit} reached; cannot track {labels}")]
    TooManyKeys {
        /// The cap.
        limit: usize,
        /// The labels of the key that was refused.
        labels: String,
    },
    /// The series cap is reached and the overflow policy is [`KeyOverflow::Reject`](crate::KeyOverflow::Reject).
    #[error("series limit of {limit} reached; cannot track {labels}")]
    TooManySeries {
        /// The cap.
        limit: usize,
        /// The labels of the series that was refused.
        labels: String,
    },
    /// Opening the window that starts at `window_start_ms` would exceed the cap on open windows
    /// and the overflow policy is [`WindowOverflow::Reject`](crate::WindowOverflow::Reject).
    #[error("open-window limit of {limit} reached; cannot open window at {window_start_ms} ms")]
    TooManyWindows {
        /// The cap.
        limit: usize,
        /// Start of the window that would have been opened.
        window_start_ms: i64,
    },
    /// A [`SeriesRef`](crate::SeriesRef) that this aggregator did not issue, or whose series has
    /// since been evicted.
    #[error("series reference {index}/{generation} is unknown or was evicted")]
    StaleSeriesRef {
        /// Slot index.
        index: u32,
        /// Generation.
        generation: u32,
    },
    /// A sample weight that is not finite and positive.
    #[error("sample weight must be finite and > 0, got {0}")]
    Weight(String),
}
