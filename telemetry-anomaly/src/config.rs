//! Detector configuration: sensitivity, direction, duration, suppression, warm-up and refits.

use crate::error::AnomalyError;

/// Which side of the band counts as anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Only values above the upper band edge.
    Up,
    /// Only values below the lower band edge.
    Down,
    /// Either side.
    #[default]
    Both,
}

impl Direction {
    /// The signed normalized score as seen from this direction: positive means "towards an
    /// anomaly", so `Up` keeps the sign, `Down` flips it and `Both` takes the absolute value.
    pub fn oriented(self, normalized: f64) -> f64 {
        match self {
            Direction::Up => normalized,
            Direction::Down => -normalized,
            Direction::Both => normalized.abs(),
        }
    }
}

/// Holt-Winters seasonal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// Additive season: `y = level + trend + season`.
    Additive,
    /// Multiplicative season: `y = (level + trend) · season`; needs strictly positive data and
    /// falls back to additive when a fit window holds a value `<= 0`.
    Multiplicative,
    /// Fit both on the warm-up window and keep the one with the smaller one-step error.
    #[default]
    Auto,
}

/// Settings shared by every detector. [`DetectorConfig::default`] is the documented baseline:
/// 3 sigma, both directions, one point, 5-minute suppression.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Sensitivity: a point is anomalous when its normalized score reaches this many robust
    /// standard deviations (default 3.0). Must be finite and > 0.
    pub threshold: f64,
    /// Which side of the band is anomalous (default both).
    pub direction: Direction,
    /// Minimum duration: this many consecutive anomalous points before `is_anomaly` is set
    /// (default 1). Must be >= 1.
    pub min_duration: u32,
    /// Suppression window in ms (default 5 minutes): anomalous points closer than this to the
    /// end of the current event extend it instead of opening a new one.
    pub suppression_ms: i64,
    /// Samples collected before the model is fitted (default 864, three days at 5-minute
    /// steps). Until then the fallback baseline scores samples. Must be >= 16.
    pub warmup: usize,
    /// Trailing window kept for season detection and refits (default 4032 samples). Must be
    /// >= `warmup`.
    pub history: usize,
    /// Model parameters are refitted every this many grid steps (default 2016; 0 = never, and
    /// then Holt-Winters drops the trailing window after the first fit to save memory).
    pub refit_every: usize,
    /// Largest gap, in grid steps, bridged by forecasting through it (default 288). A longer
    /// gap makes the model stale: it is dropped and the detector warms up again.
    pub max_gap_steps: u64,
    /// Smoothing factor of the EWMA of absolute residuals that tracks the scale (default 0.02,
    /// a half-life of about 35 points). Must be in (0, 1].
    pub scale_alpha: f64,
    /// Residuals are winsorized at this many scales before they update the model and the
    /// scale (default 3.0), so a spike moves neither. Must be > 0.
    pub clip_sigmas: f64,
    /// Lower bound of the scale relative to the mean absolute value of the fit window
    /// (default 1e-3), so constant series do not divide by zero.
    pub min_scale_fraction: f64,
    /// Longest season (in samples) considered by season detection (default 2016).
    pub max_period: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: 3.0,
            direction: Direction::Both,
            min_duration: 1,
            suppression_ms: 5 * 60 * 1000,
            warmup: 864,
            history: 4032,
            refit_every: 2016,
            max_gap_steps: 288,
            scale_alpha: 0.02,
            clip_sigmas: 3.0,
            min_scale_fraction: 1e-3,
            max_period: 2016,
        }
    }
}

fn bad(field: &'static str, value: impl ToString, reason: &'static str) -> AnomalyError {
    AnomalyError::InvalidConfig { field, value: value.to_string(), reason }
}

impl DetectorConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), AnomalyError> {
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(bad("threshold", self.threshold, "must be finite and > 0"));
        }
        if self.min_duration == 0 {
            return Err(bad("min_duration", self.min_duration, "must be >= 1"));
        }
        if self.suppression_ms < 0 {
            return Err(bad("suppression_ms", self.suppression_ms, "must be >= 0"));
        }
        if self.warmup < 16 {
            return Err(bad("warmup", self.warmup, "must be >= 16"));
        }
        if self.history < self.warmup {
            return Err(bad("history", self.history, "must be >= warmup"));
        }
        if !(self.scale_alpha > 0.0 && self.scale_alpha <= 1.0) {
            return Err(bad("scale_alpha", self.scale_alpha, "must be in (0, 1]"));
        }
        if !(self.clip_sigmas.is_finite() && self.clip_sigmas > 0.0) {
            return Err(bad("clip_sigmas", self.clip_sigmas, "must be finite and > 0"));
        }
        if !(self.min_scale_fraction.is_finite() && self.min_scale_fraction >= 0.0) {
            return Err(bad("min_scale_fraction", self.min_scale_fraction, "must be finite and >= 0"));
        }
        if self.max_gap_steps == 0 {
            return Err(bad("max_gap_steps", self.max_gap_steps, "must be >= 1"));
        }
        Ok(())
    }
}
