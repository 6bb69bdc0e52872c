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
