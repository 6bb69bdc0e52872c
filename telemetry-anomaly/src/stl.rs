//! STL baseline: seasonal-trend decomposition by Loess (Cleveland et al. 1990, "STL: A
//! Seasonal-Trend Decomposition Procedure Based on Loess", J. Official Statistics 6(1)) of a
//! trailing window, computed with the `stlrs` crate and refitted every `k` steps.
//!
//! Between refits the forecast of the `h`-th step after the window end is the last trend value
//! plus `h` times the trend slope over the last period (or the last
//! [`NO_SEASON_SLOPE_SPAN`] points without a season), plus the seasonal component one period
//! earlier at the same phase. Without a season the decomposition runs with period 2 and a
//! long trend smoother, and only the trend is used.

use crate::detector::Baseline;

/// Points over which the trend slope is measured when there is no season.
pub const NO_SEASON_SLOPE_SPAN: usize = 16;
/// Trend smoother length (points) used when there is no season.
pub const NO_SEASON_TREND_LENGTH: usize = 31;

/// STL options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StlOptions {
    /// Periods of data in the decomposed window (default 8; at least 2 are needed).
    pub window_periods: usize,
    /// Window length without a season (default 256 points).
    pub window_no_season: usize,
    /// Steps between refits; 0 = automatic: `max(4, period / 12)` (a 5-minute daily season
    /// refits every 2 hours), 8 without a season.
    pub refit_every: usize,
    /// Use STL's robustness iterations (default false: the detector already winsorizes the
    /// values it keeps, and robustness multiplies the cost by about 15).
    pub robust: bool,
}

impl Default for StlOptions {
    fn default() -> Self {
        StlOptions { window_periods: 8, window_no_season: 256, refit_every: 0, robust: false }
    }
}

/// STL forecaster state for one series.
#[derive(Debug, Clone)]
pub struct StlBaseline {
    opts: StlOptions,
    period: Option<usize>,
    last_trend: f64,
    slope: f64,
    season: Vec<f64>,
    idx: usize,
    h: usize,
    fitted: bool,
}

impl StlBaseline {
    /// An unfitted STL baseline.
    pub fn new(opts: StlOptions) -> Self {
        StlBaseline { opts, period: None, last_trend: 0.0, slope: 0.0, season: Vec::new(), idx: 0, h: 0, fitted: false }
    }
}

impl Baseline for StlBaseline {
    fn fit(&mut self, history: &[f64], period: Option<usize>, _full: bool) {
        let m = period.filter(|&m| m >= 2 && history.len() > 2 * m);
        let want = match m {
            Some(m) => m * self.opts.window_periods.max(2),
            None => self.opts.window_no_season,
        };
        let w = &history[history.len().saturating_sub(want)..];
        if w.len() < 8 {
            return;
        }
        let mut params = stlrs::params();
        params.robust(self.opts.robust);
        let np = match m {
            Some(m) => m,
            None => {
                params.trend_length(NO_SEASON_TREND_LENGTH.min(w.len() | 1));
                2
            }
        };
        let Ok(fit) = params.fit(w, np) else {
            return;
        };
        let trend = fit.trend();
        let n = trend.len();
        let span = m.unwrap_or(NO_SEASON_SLOPE_SPAN).min(n - 1).max(1);
        self.last_trend = trend[n - 1];
        self.slope = (trend[n - 1] - trend[n - 1 - span]) / span as f64;
        self.season.clear();
        if let Some(m) = m {
            self.season.extend_from_slice(&fit.seasonal()[n - m..]);
        }
        self.season.shrink_to_fit();
        self.period = m;
        self.idx = 0;
        self.h = 1;
        self.fitted = true;
    }

    fn forecast(&self) -> f64 {
        let s = if self.season.is_empty() { 0.0 } else { self.season[self.idx] };
        self.last_trend + self.slope * self.h as f64 + s
    }

    fn observe(&mut self, _value: f64) {
        self.h += 1;
        if !self.season.is_empty() {
            self.idx += 1;
            if self.idx == self.season.len() {
                self.idx = 0;
            }
        }
    }

    fn refit_every(&self) -> usize {
        match (self.opts.refit_every, self.period) {
            (0, Some(m)) => (m / 12).max(4),
            (0, None) => 8,
            (k, _) => k,
        }
    }

    fn is_fitted(&self) -> bool {
        self.fitted
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.season.capacity() * std::mem::size_of::<f64>()
    }

    fn name(&self) -> &'static str {
        "stl"
    }
}
