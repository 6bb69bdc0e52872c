//! Holt-Winters and STL side by side, agreeing before they alarm.

use crate::config::{DetectorConfig, Seasonality};
use crate::detector::{Detector, Judge, ResidualDetector};
use crate::error::AnomalyError;
use crate::events::AnomalyEvent;
use crate::holt_winters::HoltWinters;
use crate::score::{ModelState, Score};
use crate::stl::{StlBaseline, StlOptions};

/// Runs a Holt-Winters and an STL [`ResidualDetector`] on the same series and, for each
/// sample, keeps the member whose normalized score is smaller in magnitude (its forecast and
/// scale): a point is anomalous only when both baselines find it surprising, which removes
/// alarms caused by one model's misfit. Threshold, direction, duration and events are applied
/// to the combined score. Costs the sum of both members.
#[derive(Debug, Clone)]
pub struct Ensemble {
    hw: ResidualDetector<HoltWinters>,
    stl: ResidualDetector<StlBaseline>,
    judge: Judge,
}

impl Ensemble {
    /// Both members with `cfg`.
    ///
    /// # Errors
    /// [`AnomalyError::InvalidConfig`] when `cfg` is invalid.
    pub fn new(cfg: DetectorConfig) -> Result<Self, AnomalyError> {
        Ok(Ensemble {
            hw: ResidualDetector::new(HoltWinters::new(Seasonality::Auto), cfg.clone())?,
            stl: ResidualDetector::new(StlBaseline::new(StlOptions::default()), cfg.clone())?,
            judge: Judge::new(&cfg),
        })
    }
}

impl Detector for Ensemble {
    fn update(&mut self, timestamp_ms: i64, value: f64) -> Result<Score, AnomalyError> {
        let a = self.hw.update(timestamp_ms, value)?;
        let b = self.stl.update(timestamp_ms, value)?;
        let pick = if a.normalized.abs() <= b.normalized.abs() { a } else { b };
        let quiet = a.probability == 0.0 && a.state == ModelState::WarmingUp;
        Ok(self.judge.score(timestamp_ms, value, pick.expected, pick.scale, pick.state, quiet))
    }

    fn flush_event(&mut self) -> Option<AnomalyEvent> {
        self.judge.events.flush()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Judge>() + self.hw.memory_bytes() + self.stl.memory_bytes()
    }

    fn name(&self) -> &'static str {
        "ensemble"
    }
}
