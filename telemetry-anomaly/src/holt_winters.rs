//! Holt-Winters exponential smoothing with damped trend, additive or multiplicative season.
//!
//! State-space form and notation from Hyndman & Athanasopoulos, *Forecasting: Principles and
//! Practice* (3rd ed.), §8.3 (damped trend) and §8.3 "Holt-Winters' damped method":
//!
//! ```text
//! additive:        ŷ = ℓ + φb + s            ℓ' = α(y − s) + (1 − α)(ℓ + φb)
//!                                            b' = β(ℓ' − ℓ) + (1 − β)φb
//!                                            s' = γ(y − ℓ − φb) + (1 − γ)s
//! multiplicative:  ŷ = (ℓ + φb)·s            ℓ' = α(y / s) + (1 − α)(ℓ + φb)
//!                                            b' = β(ℓ' − ℓ) + (1 − β)φb
//!                                            s' = γ(y / (ℓ + φb)) + (1 − γ)s
//! ```
//!
//! One update is a handful of multiply-adds (O(1)); the season is a ring of `m` values.
//! Parameters (α, β, γ, φ) are fitted on a window by minimising the mean absolute one-step
//! error of a robust pass (errors winsorized at 3 robust scales, as in Gelper, Fried & Croux
//! 2010, "Robust forecasting with exponential and Holt-Winters smoothing"): a coarse grid,
//! then Nelder-Mead in a logistic parameterisation that keeps 0 < β < α < 1, 0 < γ < 1 − α,
//! 0.8 ≤ φ ≤ 0.98.

use crate::config::Seasonality;
use crate::detector::Baseline;
use crate::optimize::nelder_mead;
use crate::stats::mad_sigma;

/// In [`Seasonality::Auto`], the multiplicative form is chosen only when its one-step loss is
/// below this fraction of the additive form's.
pub const MULTIPLICATIVE_GAIN: f64 = 0.9;

/// Smoothing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HwParams {
    /// Level smoothing α in (0, 1).
    pub alpha: f64,
    /// Trend smoothing β in (0, α).
    pub beta: f64,
    /// Season smoothing γ in (0, 1 − α).
    pub gamma: f64,
    /// Trend damping φ in [0.8, 0.98].
    pub phi: f64,
}

impl Default for HwParams {
    fn default() -> Self {
        HwParams { alpha: 0.2, beta: 0.01, gamma: 0.1, phi: 0.95 }
    }
}

fn logistic(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

impl HwParams {
    fn from_unconstrained(u: &[f64; 4]) -> Self {
        let alpha = 0.001 + 0.998 * logistic(u[0]);
        HwParams {
            alpha,
            beta: alpha * logistic(u[1]),
            gamma: (1.0 - alpha) * logistic(u[2]),
            phi: 0.8 + 0.18 * logistic(u[3]),
        }
    }

    fn to_unconstrained(self) -> [f64; 4] {
        [
            logit((self.alpha - 0.001) / 0.998),
            logit(self.beta / self.alpha),
            logit(self.gamma / (1.0 - self.alpha)),
            logit((self.phi - 0.8) / 0.18),
        ]
    }
}

/// Holt-Winters model state for one series.
#[derive(Debug, Clone)]
pub struct HoltWinters {
    mode: Seasonality,
    multiplicative: bool,
    params: HwParams,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    idx: usize,
    fitted: bool,
}

impl HoltWinters {
    /// An unfitted model; `mode` picks the seasonal form. Parameter refits are scheduled by
    /// the wrapping detector ([`DetectorConfig::refit_every`](crate::DetectorConfig::refit_every)).
    pub fn new(mode: Seasonality) -> Self {
        HoltWinters {
            mode,
            multiplicative: false,
            params: HwParams::default(),
            level: 0.0,
            trend: 0.0,
            season: vec![0.0],
            idx: 0,
            fitted: false,
        }
    }

    /// The current smoothing parameters.
    pub fn params(&self) -> HwParams {
        self.params
    }

    /// Whether the multiplicative form is in use.
    pub fn is_multiplicative(&self) -> bool {
        self.multiplicative
    }

    /// Season length in use (1 = no season).
    pub fn period(&self) -> usize {
        self.season.len()
    }

    /// Initial state from the first periods of `v`: level = mean of the first period, trend =
    /// difference of the first two period means over `m`, season = average deviation (or
    /// ratio) of each phase from its period mean over up to three periods.
    fn init(&mut self, v: &[f64], m: usize, multiplicative: bool) {
        self.multiplicative = multiplicative;
        let m = if m >= 2 && v.len() >= 2 * m { m } else { 1 };
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let first = &v[..m.max(1).min(v.len())];
        self.level = mean(first);
        self.trend = if m > 1 && v.len() >= 2 * m { (mean(&v[m..2 * m]) - self.level) / m as f64 } else { 0.0 };
        let neutral = if multiplicative { 1.0 } else { 0.0 };
        self.season = vec![neutral; m];
        if m > 1 {
            let periods = (v.len() / m).min(3);
            let mut acc = vec![0.0; m];
            for k in 0..periods {
                let chunk = &v[k * m..(k + 1) * m];
                let pm = mean(chunk);
                for (a, y) in acc.iter_mut().zip(chunk) {
                    *a += if multiplicative { if pm > 0.0 { y / pm } else { 1.0 } } else { y - pm };
                }
            }
            for (s, a) in self.season.iter_mut().zip(acc) {
                *s = a / periods as f64;
            }
        }
        self.idx = 0;
    }

    #[inline]
    fn step(&mut self, y: f64) {
        let p = self.params;
        let lt = self.level + p.phi * self.trend;
        let s = self.season[self.idx];
        let new_level = if self.multiplicative {
            p.alpha * (y / s) + (1.0 - p.alpha) * lt
        } else {
            p.alpha * (y - s) + (1.0 - p.alpha) * lt
        };
        self.trend = p.beta * (new_level - self.level) + (1.0 - p.beta) * p.phi * self.trend;
        self.season[self.idx] = if self.multiplicative {
            let ratio = if lt.abs() > f64::MIN_POSITIVE { y / lt } else { s };
            // Keep seasonal factors positive and bounded so a near-zero level cannot flip them.
            (p.gamma * ratio + (1.0 - p.gamma) * s).clamp(1e-3, 1e3)
        } else {
            p.gamma * (y - lt) + (1.0 - p.gamma) * s
        };
        self.level = new_level;
        self.idx += 1;
        if self.idx == self.season.len() {
            self.idx = 0;
        }
    }

    /// Runs the model over `v` from a fresh initial state with robust (winsorized) updates and
    /// returns the mean absolute winsorized one-step error after the first period.
    fn robust_pass(&mut self, v: &[f64], m: usize, multiplicative: bool, sigma0: f64) -> f64 {
        self.init(v, m, multiplicative);
        let mut scale = sigma0.max(f64::MIN_POSITIVE);
        let skip = self.season.len();
        let (mut loss, mut count) = (0.0, 0usize);
        for (i, &y) in v.iter().enumerate() {
            let f = self.forecast();
            let e = y - f;
            let lim = 3.0 * scale;
            let ec = e.clamp(-lim, lim);
            if i >= skip {
                loss += ec.abs();
                count += 1;
            }
            scale = 0.98 * scale + 0.02 * 1.2533 * ec.abs();
            scale = scale.max(sigma0 * 1e-3);
            self.step(f + ec);
        }
        if count == 0 { f64::INFINITY } else { loss / count as f64 }
    }

    /// Fits parameters on `v` (a regularly sampled window, oldest first) for season `m`
    /// (`None` = no season) and leaves the state at the end of `v`. `warm` starts Nelder-Mead
    /// from the current parameters with a short budget instead of the full grid.
    fn fit_window(&mut self, v: &[f64], m: Option<usize>, warm: bool) {
        let m = m.unwrap_or(1);
        let diffs: Vec<f64> = v.windows(2).map(|w| w[1] - w[0]).collect();
        let sigma0 = mad_sigma(&diffs).unwrap_or(0.0) / std::f64::consts::SQRT_2;
        let mean_abs = v.iter().map(|x| x.abs()).sum::<f64>() / v.len().max(1) as f64;
        let sigma0 = sigma0.max(1e-6 * (1.0 + mean_abs));
        let positive = v.iter().all(|&x| x > 0.0);
        let current = [self.multiplicative];
        let forms: &[bool] = match (self.mode, positive && m > 1) {
            (Seasonality::Additive, _) | (_, false) => &[false],
            (Seasonality::Multiplicative, true) => &[true],
            // A warm refit keeps the form chosen by the last full fit.
            (Seasonality::Auto, true) if warm && self.fitted => &current,
            (Seasonality::Auto, true) => &[false, true],
        };
        let seasonal = m > 1;
        let mut best: Option<(f64, HwParams, bool)> = None;
        for &mult in forms {
            let mut probe = self.clone();
            let mut objective = |u: &[f64; 4]| {
                probe.params = HwParams::from_unconstrained(u);
                if !seasonal {
                    probe.params.gamma = 0.0;
                }
                probe.robust_pass(v, m, mult, sigma0)
            };
            let start = if warm && self.fitted && self.multiplicative == mult {
                self.params
            } else {
                // Coarse grid.
                let mut g: Option<(f64, HwParams)> = None;
                for alpha in [0.05, 0.2, 0.5, 0.8] {
                    for beta_frac in [0.01, 0.2] {
                        let gammas: &[f64] = if seasonal { &[0.01, 0.1, 0.3] } else { &[0.1] };
                        for &gamma_frac in gammas {
                            for phi in [0.9f64, 0.98] {
                                let p = HwParams {
                                    alpha,
                                    beta: alpha * beta_frac,
                                    gamma: (1.0 - alpha) * gamma_frac,
                                    phi: phi.min(0.979_9),
                                };
                                let l = objective(&p.to_unconstrained());
                                if g.is_none_or(|(b, _)| l < b) {
                                    g = Some((l, p));
                                }
                            }
                        }
                    }
                }
                g.map(|g| g.1).unwrap_or_default() // ok: the grid is never empty
            };
            let budget = if warm { 40 } else { 80 };
            let (u, loss) = nelder_mead(&mut objective, start.to_unconstrained(), 0.7, budget, 1e-4);
            // The multiplicative form must beat the additive one clearly: near-zero levels make
            // it unstable, so it is taken only for a real gain.
            let needed = if mult { MULTIPLICATIVE_GAIN } else { 1.0 };
            if best.is_none_or(|(b, _, _)| loss < b * needed) {
                let mut p = HwParams::from_unconstrained(&u);
                if !seasonal {
                    p.gamma = 0.0;
                }
                best = Some((loss, p, mult));
            }
        }
        if let Some((_, p, mult)) = best {
            self.params = p;
            self.robust_pass(v, m, mult, sigma0);
            self.fitted = true;
        }
    }
}

impl Baseline for HoltWinters {
    fn fit(&mut self, history: &[f64], period: Option<usize>, full: bool) {
        if history.len() < 4 {
            return;
        }
        self.fit_window(history, period, !full);
    }

    #[inline]
    fn forecast(&self) -> f64 {
        let lt = self.level + self.params.phi * self.trend;
        let s = self.season[self.idx];
        if self.multiplicative { lt * s } else { lt + s }
    }

    #[inline]
    fn observe(&mut self, value: f64) {
        self.step(value);
    }

    fn refit_every(&self) -> usize {
        0
    }

    fn is_fitted(&self) -> bool {
        self.fitted
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.season.capacity() * std::mem::size_of::<f64>()
    }

    fn name(&self) -> &'static str {
        match self.mode {
            Seasonality::Additive => "hw-additive",
            Seasonality::Multiplicative => "hw-multiplicative",
            Seasonality::Auto => "holt-winters",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, m: usize, mult: bool) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let s = (2.0 * std::f64::consts::PI * (i % m) as f64 / m as f64).sin();
                let level = 100.0 + 0.05 * i as f64;
                if mult { level * (1.0 + 0.3 * s) } else { level + 20.0 * s }
            })
            .collect()
    }

    #[test]
    fn additive_fit_forecasts_clean_series() {
        let v = series(600, 24, false);
        let mut hw = HoltWinters::new(Seasonality::Additive);
        hw.fit(&v[..576], Some(24), true);
        for &y in &v[576..] {
            let f = hw.forecast();
            // A damped trend (φ <= 0.98) lags a steady linear trend a little.
            assert!((f - y).abs() < 2.0, "forecast {f} vs {y}");
            hw.observe(y);
        }
    }

    #[test]
    fn auto_picks_multiplicative_for_multiplicative_data() {
        let v = series(600, 24, true);
        let mut hw = HoltWinters::new(Seasonality::Auto);
        hw.fit(&v, Some(24), true);
        assert!(hw.is_multiplicative());
        let p = hw.params();
        assert!(p.beta < p.alpha && p.gamma < 1.0 - p.alpha && (0.8..=0.98).contains(&p.phi), "{p:?}");
    }

    #[test]
    fn non_positive_data_stays_additive() {
        let mut v = series(600, 24, false);
        v[10] = -1.0;
        let mut hw = HoltWinters::new(Seasonality::Multiplicative);
        hw.fit(&v, Some(24), true);
        assert!(!hw.is_multiplicative());
    }
}
