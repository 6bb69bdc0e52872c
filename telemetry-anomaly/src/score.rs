//! What a detector returns for each sample.

use crate::events::AnomalyEvent;

/// Which baseline produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    /// The model is not fitted yet (or was dropped after a long gap): the fallback baseline
    /// (an EWMA level with a robust EWMA scale, no trend, no season) produced the score.
    WarmingUp,
    /// The fitted model produced the score.
    Ready,
}

/// The score of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Sample timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Observed value.
    pub value: f64,
    /// The baseline's one-step-ahead forecast for this sample, made before seeing it.
    pub expected: f64,
    /// `value - expected`.
    pub residual: f64,
    /// `residual / scale`, where `scale` is the robust rolling standard deviation of residuals
    /// (signed; in robust sigmas).
    pub normalized: f64,
    /// The robust scale used (same unit as the value; always > 0).
    pub scale: f64,
    /// `expected - threshold · scale`.
    pub lower: f64,
    /// `expected + threshold · scale`.
    pub upper: f64,
    /// Probability in [0, 1] that the point is not explained by the baseline: the Gaussian
    /// probability mass closer to the forecast than this residual, on the configured side
    /// (two-sided for [`Direction::Both`](crate::Direction::Both)).
    pub probability: f64,
    /// The point is beyond the band on the configured side and the run of such points has
    /// reached the minimum duration.
    pub is_anomaly: bool,
    /// This point opened a new anomaly event (it is the first anomalous point further than the
    /// suppression window from the previous event).
    pub event_start: bool,
    /// An event that ended before this point (no anomalous point within the suppression
    /// window after its end) and is now final.
    pub closed_event: Option<AnomalyEvent>,
    /// Which baseline produced the score.
    pub state: ModelState,
}
