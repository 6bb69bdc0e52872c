//! # telemetry-anomaly
//!
//! Streaming anomaly detection for metric series: a baseline model learns each series' normal
//! pattern (level, trend, season), every new sample is scored by its residual against the
//! baseline's one-step-ahead forecast in robust standard deviations, and points past the
//! sensitivity threshold (default 3 sigma) become anomalies, merged into events within a
//! suppression window (default 5 minutes).
//!
//! - [`Detector`]: the per-series interface: feed `(timestamp_ms, value)` in time order, get a
//!   [`Score`] (expected value, residual, normalized score, band, probability, anomaly flag).
//! - Baselines: [`HoltWinters`] (additive or multiplicative season, damped trend, O(1) update,
//!   parameters fitted on the warm-up window and refitted periodically) and [`StlBaseline`]
//!   (STL of a trailing window via `stlrs`, refitted every `k` steps), both wrapped by
//!   [`ResidualDetector`], which handles warm-up, gaps, duplicates, robust scale and events.
//! - [`season::detect_period`]: season length by autocorrelation (daily/weekly or none).
//! - [`Registry`]: detectors keyed by [`telemetry_core::Fingerprint`] within a memory budget.
//!
//! ```
//! use telemetry_anomaly::{Detector, DetectorConfig, DetectorKind, build_detector};
//!
//! let cfg = DetectorConfig { warmup: 96, ..DetectorConfig::default() };
//! let mut det = build_detector(DetectorKind::HoltWinters, cfg)?;
//! let step = 5 * 60 * 1000; // 5-minute samples
//! let mut flagged = Vec::new();
//! for i in 0..400i64 {
//!     let phase = (i % 48) as f64 / 48.0 * std::f64::consts::TAU;
//!     let mut v = 100.0 + 10.0 * phase.sin() + ((i * 7919) % 13) as f64 * 0.1;
//!     if i == 300 {
//!         v += 40.0; // a spike
//!     }
//!     let s = det.update(i * step, v)?;
//!     if s.is_anomaly {
//!         flagged.push(i);
//!     }
//! }
//! assert!(flagged.contains(&300));
//! # Ok::<(), telemetry_anomaly::AnomalyError>(())
//! ```

pub mod config;
pub mod detector;
pub mod ensemble;
pub mod error;
pub mod events;
pub mod holt_winters;
pub mod likelihood;
pub mod optimize;
pub mod registry;
pub mod score;
pub mod season;
pub mod stats;
pub mod stl;

pub use config::{DetectorConfig, Direction, Seasonality};
pub use detector::{Baseline, Detector, ResidualDetector};
pub use ensemble::Ensemble;
pub use error::AnomalyError;
pub use events::{AnomalyEvent, EventTracker, PeakGate};
pub use holt_winters::{HoltWinters, HwParams};
pub use likelihood::{AnomalyLikelihood, LikelihoodScore};
pub use registry::Registry;
pub use score::{ModelState, Score};
pub use stl::{StlBaseline, StlOptions};

/// The detector configurations this crate ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    /// Holt-Winters, additive or multiplicative chosen on the fit window.
    HoltWinters,
    /// Holt-Winters, additive season.
    HwAdditive,
    /// Holt-Winters, multiplicative season (additive when data are not positive).
    HwMultiplicative,
    /// STL on a trailing window.
    Stl,
    /// Holt-Winters and STL side by side; see [`Ensemble`].
    Ensemble,
}

impl DetectorKind {
    /// Parses `holt-winters`, `hw-additive`, `hw-multiplicative`, `stl` or `ensemble`.
    ///
    /// # Errors
    /// [`AnomalyError::UnknownDetector`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, AnomalyError> {
        Ok(match name {
            "holt-winters" | "hw" => DetectorKind::HoltWinters,
            "hw-additive" => DetectorKind::HwAdditive,
            "hw-multiplicative" => DetectorKind::HwMultiplicative,
            "stl" => DetectorKind::Stl,
            "ensemble" => DetectorKind::Ensemble,
            other => return Err(AnomalyError::UnknownDetector(other.to_string())),
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::HoltWinters => "holt-winters",
            DetectorKind::HwAdditive => "hw-additive",
            DetectorKind::HwMultiplicative => "hw-multiplicative",
            DetectorKind::Stl => "stl",
            DetectorKind::Ensemble => "ensemble",
        }
    }
}

/// Builds a detector of `kind` with `cfg` (STL with [`StlOptions::default`]).
///
/// # Errors
/// [`AnomalyError::InvalidConfig`] when `cfg` is invalid.
pub fn build_detector(kind: DetectorKind, cfg: DetectorConfig) -> Result<Box<dyn Detector + Send>, AnomalyError> {
    let hw = |s| ResidualDetector::new(HoltWinters::new(s), cfg.clone());
    Ok(match kind {
        DetectorKind::HoltWinters => Box::new(hw(Seasonality::Auto)?),
        DetectorKind::HwAdditive => Box::new(hw(Seasonality::Additive)?),
        DetectorKind::HwMultiplicative => Box::new(hw(Seasonality::Multiplicative)?),
        DetectorKind::Stl => Box::new(ResidualDetector::new(StlBaseline::new(StlOptions::default()), cfg)?),
        DetectorKind::Ensemble => Box::new(Ensemble::new(cfg)?),
    })
}
