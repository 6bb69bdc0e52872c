//! Errors returned by detectors and the registry.

use thiserror::Error;

/// What went wrong when feeding a sample or building a detector.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AnomalyError {
    /// The sample value is NaN or infinite. The detector state is unchanged; the caller decides
    /// whether the point is a gap (skip it) or an error upstream.
    #[error("sample at t={timestamp_ms} ms has a non-finite value ({value})")]
    NonFiniteValue {
        /// Timestamp of the rejected sample, ms since the Unix epoch.
        timestamp_ms: i64,
        /// The rejected value.
        value: f64,
    },
    /// Samples must arrive in time order; equal timestamps are accepted as duplicates.
    #[error("sample at t={timestamp_ms} ms is older than the previous sample at t={last_ms} ms")]
    OutOfOrder {
        /// Timestamp of the rejected sample.
        timestamp_ms: i64,
        /// Timestamp of the newest sample already accepted.
        last_ms: i64,
    },
    /// A configuration field is out of range.
    #[error("invalid detector configuration: {field} = {value} ({reason})")]
    InvalidConfig {
        /// Name of the field.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// Which range is allowed.
        reason: &'static str,
    },
    /// An unknown detector name (see [`DetectorKind::from_name`](crate::DetectorKind::from_name)).
    #[error("unknown detector {0:?} (expected one of: holt-winters, hw-additive, hw-multiplicative, stl, ensemble)")]
    UnknownDetector(String),
}
