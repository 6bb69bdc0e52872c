//! Samples and the Prometheus stale marker.

/// The bit pattern of Prometheus's stale marker: a NaN that a scraper writes when a series
/// disappears, so that queries stop returning it (`model/value/value.go`, `StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as a float. Compare with [`is_stale_nan`], never with `==` (it is a NaN).
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// `true` when `v` has exactly the stale marker's bits (other NaNs are ordinary values).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One observation of a float series.
///
/// `PartialEq` is float equality (a NaN never equals itself); use
/// [`bitwise_eq`](Sample::bitwise_eq) when NaN payloads and `-0.0` matter.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample at `timestamp_ms` (milliseconds since the Unix epoch).
    #[inline]
    pub fn new(timestamp_ms: i64, value: f64) -> Self {
        Sample { timestamp_ms, value }
    }

    /// A stale marker at `timestamp_ms`.
    pub fn stale(timestamp_ms: i64) -> Self {
        Sample { timestamp_ms, value: STALE_NAN }
    }

    /// `true` when the value is the stale marker.
    #[inline]
    pub fn is_stale(&self) -> bool {
        is_stale_nan(self.value)
    }

    /// Equality of timestamps and of the values' bit patterns.
    #[inline]
    pub fn bitwise_eq(&self, other: &Sample) -> bool {
        self.timestamp_ms == other.timestamp_ms && self.value.to_bits() == other.value.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_distinct_from_other_nans() {
        assert!(Sample::stale(1).is_stale());
        assert!(STALE_NAN.is_nan());
        assert!(!is_stale_nan(f64::NAN));
        assert!(!Sample::new(1, 0.0).is_stale());
        assert!(Sample::stale(5).bitwise_eq(&Sample::stale(5)));
        assert!(!Sample::new(5, 0.0).bitwise_eq(&Sample::new(5, -0.0)));
    }
}
