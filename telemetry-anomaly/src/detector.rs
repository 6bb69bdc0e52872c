//! The [`Detector`] interface and the residual detector that wraps a [`Baseline`] model.
//!
//! [`ResidualDetector`] turns any one-step-ahead forecaster into a detector:
//!
//! 1. **Warm-up (fallback).** The first [`DetectorConfig::warmup`] samples are scored against a
//!    fallback baseline, an EWMA level (α = 0.1) with the robust EWMA scale below, no trend and
//!    no season; nothing is flagged during the first 16 samples. Meanwhile the samples are kept
//!    and the sampling step is estimated (median of positive timestamp deltas, refined as total
//!    time over total steps).
//! 2. **Fit.** At the end of warm-up the series is classified: *regular* when at least
//!    [`REGULAR_FRACTION`] of the timestamp deltas are within ±25% of the step, *irregular*
//!    otherwise. A regular series' kept samples are placed on the step grid (missing slots
//!    interpolated linearly, samples sharing a slot keep the later); an irregular one is
//!    treated as a sequence (every new timestamp is one step, nothing is imputed). The season
//!    length is detected
//!    ([`detect_period`]), the baseline is fitted on the
//!    kept window and the scale starts at the robust sigma of the fit's residuals.
//! 3. **Scoring.** Each sample of a regular series is placed on the step grid
//!    (`round((t − t_prev) / step)` steps after the previous one). Missing steps in between are
//!    filled with the model's own forecast (the model advances, nothing is scored); a gap longer
//!    than [`DetectorConfig::max_gap_steps`] makes the model stale: it is dropped and the
//!    detector warms up again on the fallback. A sample with the same grid position as the
//!    previous one (duplicate timestamp or sub-step jitter) is scored against the previous
//!    forecast and does not advance the model. The residual against the forecast is divided by
//!    the scale, giving the normalized score.
//! 4. **Robust update.** The residual is winsorized at [`DetectorConfig::clip_sigmas`] scales
//!    before it updates the model (`forecast + clipped residual` is what the model sees) and
//!    the scale (EWMA of absolute residuals × √(π/2), which estimates σ for normal errors), so
//!    one spike moves neither and the next spike is still seen.
//! 5. **Refits.** Every [`DetectorConfig::refit_every`] steps the season is re-detected and the
//!    model refitted on the trailing [`DetectorConfig::history`] window (Holt-Winters warm-starts
//!    from its current parameters); a baseline may also ask for cheaper refits of its own
//!    ([`Baseline::refit_every`], used by STL). With no refits scheduled
//!    (`refit_every = 0` and a baseline that asks for none, i.e. Holt-Winters) the window is
//!    dropped after the fit, leaving only the model state (about 2.4 KB for a 288-step season).
//!
//! The scale never drops below [`DetectorConfig::min_scale_fraction`] × the mean absolute value
//! of the fit window (and never below 1e-12), so constant series do not divide by zero: on a
//! constant series any change is anomalous.

use std::collections::VecDeque;

use crate::config::DetectorConfig;
use crate::error::AnomalyError;
use crate::events::{AnomalyEvent, EventTracker};
use crate::score::{ModelState, Score};
use crate::season::detect_period;
use crate::stats::{median, normal_cdf};

/// A streaming anomaly detector over one series.
///
/// Samples must be fed in time order; every call returns the score of that sample computed
/// from it and earlier samples only (strictly causal).
pub trait Detector {
    /// Scores one sample (`timestamp_ms` in ms since the Unix epoch) and then learns from it.
    ///
    /// # Errors
    /// [`AnomalyError::NonFiniteValue`] for NaN/±∞ and [`AnomalyError::OutOfOrder`] for a
    /// timestamp older than the previous one; the detector state is unchanged in both cases.
    fn update(&mut self, timestamp_ms: i64, value: f64) -> Result<Score, AnomalyError>;

    /// Closes and returns the open anomaly event, if any (call at the end of a stream).
    fn flush_event(&mut self) -> Option<AnomalyEvent>;

    /// Heap and inline bytes held by this detector now.
    fn memory_bytes(&self) -> usize;

    /// Short name of the model (`holt-winters`, `stl`, ...).
    fn name(&self) -> &'static str;
}

/// A one-step-ahead forecaster on a regular grid, wrapped by [`ResidualDetector`].
pub trait Baseline {
    /// (Re)fits on `history` (regularly sampled, oldest first, ending at the current step) with
    /// season `period` (`None` = no season) and leaves the state at the end of `history`.
    /// `full` asks for a from-scratch parameter search; otherwise a cheaper refresh is allowed.
    fn fit(&mut self, history: &[f64], period: Option<usize>, full: bool);
    /// Forecast of the next step.
    fn forecast(&self) -> f64;
    /// Advances one step with the (already winsorized) observed value.
    fn observe(&mut self, value: f64);
    /// Steps between refits the baseline asks for on its own (0 = none).
    fn refit_every(&self) -> usize;
    /// Whether [`Baseline::fit`] succeeded at least once since the last reset.
    fn is_fitted(&self) -> bool;
    /// Bytes held (inline and heap).
    fn memory_bytes(&self) -> usize;
    /// Short model name.
    fn name(&self) -> &'static str;
}

const FALLBACK_ALPHA: f64 = 0.1;
/// Share of warm-up timestamp deltas within ±25% of the step for a series to count as regular.
pub const REGULAR_FRACTION: f64 = 0.8;
const FALLBACK_QUIET: usize = 16;
/// √(π/2): E|X| = σ·√(2/π) for normal X.
const ABS_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// A [`Detector`] scoring residuals of a [`Baseline`] forecast; see the module docs.
#[derive(Debug, Clone)]
pub struct ResidualDetector<B> {
    cfg: DetectorConfig,
    template: B,
    baseline: B,
    history: VecDeque<f64>,
    deltas: Vec<i64>,
    step_ms: i64,
    sequence: bool,
    last_ts: Option<i64>,
    last_expected: f64,
    period: Option<usize>,
    since_refit: usize,
    since_full: usize,
    warm_count: usize,
    level: f64,
    scale: f64,
    scale_floor: f64,
    judge: Judge,
}

impl<B: Baseline + Clone> ResidualDetector<B> {
    /// A detector with `baseline` (unfitted) and `cfg`.
    ///
    /// # Errors
    /// [`AnomalyError::InvalidConfig`] when `cfg` fails [`DetectorConfig::validate`].
    pub fn new(baseline: B, cfg: DetectorConfig) -> Result<Self, AnomalyError> {
        cfg.validate()?;
        Ok(ResidualDetector {
            template: baseline.clone(),
            baseline,
            history: VecDeque::new(),
            deltas: Vec::new(),
            step_ms: 0,
            sequence: false,
            last_ts: None,
            last_expected: f64::NAN,
            period: None,
            since_refit: 0,
            since_full: 0,
            warm_count: 0,
            level: f64::NAN,
            scale: 0.0,
            scale_floor: 1e-12,
            judge: Judge::new(&cfg),
            cfg,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// The fitted baseline.
    pub fn baseline(&self) -> &B {
        &self.baseline
    }

    /// Detected season length in grid steps (`None` = no season or not fitted yet).
    pub fn period(&self) -> Option<usize> {
        self.period
    }

    /// Estimated sampling step in ms (0 until the first fit).
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// Whether the series was found irregular at the last fit and is treated as a sequence
    /// (every new timestamp is one step).
    pub fn is_sequence(&self) -> bool {
        self.sequence
    }

    /// Current robust scale.
    pub fn scale(&self) -> f64 {
        self.scale.max(self.scale_floor)
    }

    /// Whether the trailing window is still needed: always while warming up, afterwards only
    /// when refits are scheduled.
    fn keeps_history(&self) -> bool {
        !self.baseline.is_fitted() || self.cfg.refit_every > 0 || self.baseline.refit_every() > 0
    }

    fn push_history(&mut self, v: f64) {
        if !self.keeps_history() {
            return;
        }
        if self.history.len() == self.cfg.history {
            self.history.pop_front();
        }
        self.history.push_back(v);
    }

    fn update_scale(&mut self, residual: f64) {
        let s = self.scale.max(self.scale_floor);
        let lim = self.cfg.clip_sigmas * s;
        let r = residual.abs().min(lim);
        let a = self.cfg.scale_alpha;
        self.scale = (1.0 - a) * self.scale + a * ABS_TO_SIGMA * r;
    }

    fn fit_now(&mut self) {
        let deltas = std::mem::take(&mut self.deltas);
        let positive: Vec<f64> = deltas.iter().filter(|&&x| x > 0).map(|&x| x as f64).collect();
        let rough = median(&positive).unwrap_or(1.0);
        // Refine: total time over total grid steps, so missed samples (deltas of 2, 3 steps)
        // and jitter do not bias the step as they bias the median.
        let (mut time, mut steps) = (0.0, 0.0);
        for &d in &positive {
            let k = (d / rough).round();
            if k >= 1.0 {
                time += d;
                steps += k;
            }
        }
        let step = if steps > 0.0 { time / steps } else { rough };
        self.step_ms = (step.round() as i64).max(1);
        let on_grid = positive.iter().filter(|&&d| (d / step - 1.0).abs() < 0.25).count();
        self.sequence = (on_grid as f64) < REGULAR_FRACTION * positive.len() as f64;
        if !self.sequence {
            self.regrid(&deltas);
        }
        let hist = self.history.make_contiguous();
        let mean_abs = hist.iter().map(|v| v.abs()).sum::<f64>() / hist.len().max(1) as f64;
        self.scale_floor = (self.cfg.min_scale_fraction * mean_abs).max(1e-12);
        self.period = detect_period(hist, self.step_ms, self.cfg.max_period);
        self.baseline.fit(hist, self.period, true);
        // Initial scale: robust sigma of one-step errors replayed over the last part of the
        // window with a copy of the model fitted on the part before it.
        self.scale = self.initial_scale().max(self.scale_floor);
        if !self.keeps_history() {
            self.history = VecDeque::new();
        }
        self.since_refit = 0;
        self.since_full = 0;
    }

    /// Places the warm-up samples (kept back to back) on the step grid: samples sharing a grid
    /// slot keep the later one, missing slots (up to `max_gap_steps` per gap) are filled by
    /// linear interpolation. `deltas[i]` is the time between kept samples `i` and `i + 1`.
    fn regrid(&mut self, deltas: &[i64]) {
        let old: Vec<f64> = self.history.drain(..).collect();
        if old.is_empty() {
            return;
        }
        let mut grid = vec![old[0]];
        for (i, &v) in old.iter().enumerate().skip(1) {
            let d = deltas.get(i - 1).copied().unwrap_or(self.step_ms);
            let k = ((d as f64 / self.step_ms as f64).round() as u64).min(self.cfg.max_gap_steps + 1);
            let prev = *grid.last().unwrap_or(&v); // ok: grid starts non-empty
            if k == 0 {
                if let Some(last) = grid.last_mut() {
                    *last = v;
                }
                continue;
            }
            for j in 1..k {
                grid.push(prev + (v - prev) * j as f64 / k as f64);
            }
            grid.push(v);
        }
        let skip = grid.len().saturating_sub(self.cfg.history);
        self.history.extend(grid.into_iter().skip(skip));
    }

    fn initial_scale(&mut self) -> f64 {
        let hist = self.history.make_contiguous();
        let n = hist.len();
        let tail = (n / 4).max(8).min(n / 2);
        let mut probe = self.template.clone();
        probe.fit(&hist[..n - tail], self.period, true);
        if !probe.is_fitted() {
            return self.scale;
        }
        let errs: Vec<f64> = hist[n - tail..]
            .iter()
            .map(|&y| {
                let e = y - probe.forecast();
                probe.observe(y);
                e
            })
            .collect();
        crate::stats::mad_sigma(&errs).unwrap_or(self.scale)
    }

    fn refit(&mut self, full: bool) {
        let hist = self.history.make_contiguous();
        if full {
            self.period = detect_period(hist, self.step_ms, self.cfg.max_period);
        }
        self.baseline.fit(hist, self.period, false);
        self.since_refit = 0;
        if full {
            self.since_full = 0;
        }
    }

    fn go_stale(&mut self, value: f64) {
        self.baseline = self.template.clone();
        self.history.clear();
        self.deltas.clear();
        self.period = None;
        self.warm_count = 0;
        self.level = value;
    }

    fn make_score(&mut self, ts: i64, value: f64, expected: f64, state: ModelState, quiet: bool) -> Score {
        let scale = self.scale.max(self.scale_floor);
        self.judge.score(ts, value, expected, scale, state, quiet)
    }

    fn warm_update(&mut self, ts: i64, value: f64, duplicate: bool) -> Score {
        if self.level.is_nan() {
            self.level = value;
        }
        let expected = self.level;
        let quiet = self.warm_count < FALLBACK_QUIET;
        if self.warm_count < FALLBACK_QUIET && !duplicate {
            // Bootstrap the scale from the spread of the first samples.
            let r = (value - expected).abs();
            self.scale = if self.warm_count == 0 { 0.0 } else { self.scale.max(ABS_TO_SIGMA * r * 0.5) };
        }
        let s = self.make_score(ts, value, expected, ModelState::WarmingUp, quiet);
        if !duplicate {
            let lim = self.cfg.clip_sigmas * self.scale.max(self.scale_floor);
            let clipped = expected + s.residual.clamp(-lim, lim);
            self.level += FALLBACK_ALPHA * (if quiet { value } else { clipped } - self.level);
            self.update_scale(s.residual);
            if let (Some(prev), false) = (self.last_ts, self.history.is_empty()) {
                self.deltas.push(ts - prev);
            }
            self.push_history(value);
            self.warm_count += 1;
            if self.warm_count >= self.cfg.warmup {
                self.fit_now();
            }
        }
        self.last_expected = expected;
        s
    }
}

impl<B: Baseline + Clone> Detector for ResidualDetector<B> {
    fn update(&mut self, ts: i64, value: f64) -> Result<Score, AnomalyError> {
        if !value.is_finite() {
            return Err(AnomalyError::NonFiniteValue { timestamp_ms: ts, value });
        }
        if let Some(last) = self.last_ts
            && ts < last
        {
            return Err(AnomalyError::OutOfOrder { timestamp_ms: ts, last_ms: last });
        }
        let score = if !self.baseline.is_fitted() {
            let dup = self.last_ts == Some(ts);
            self.warm_update(ts, value, dup)
        } else {
            let last = self.last_ts.unwrap_or(ts); // ok: fitted implies a previous sample
            let gap_steps = ((ts - last) as f64 / self.step_ms as f64).round() as u64;
            let steps = if self.sequence && ts > last { 1 } else { gap_steps };
            if ts == last || steps == 0 {
                // Duplicate grid position: score against the previous forecast, learn nothing.
                let expected = self.last_expected;
                self.make_score(ts, value, expected, ModelState::Ready, false)
            } else if gap_steps.saturating_sub(1) > self.cfg.max_gap_steps {
                self.go_stale(value);
                self.warm_update(ts, value, false)
            } else {
                for _ in 1..steps {
                    let f = self.baseline.forecast();
                    self.baseline.observe(f);
                    self.push_history(f);
                }
                let expected = self.baseline.forecast();
                let s = self.make_score(ts, value, expected, ModelState::Ready, false);
                let lim = self.cfg.clip_sigmas * s.scale;
                self.baseline.observe(expected + s.residual.clamp(-lim, lim));
                self.push_history(expected + s.residual.clamp(-lim, lim));
                self.update_scale(s.residual);
                self.last_expected = expected;
                self.since_refit += steps as usize;
                self.since_full += steps as usize;
                if self.cfg.refit_every > 0 && self.since_full >= self.cfg.refit_every {
                    self.refit(true);
                } else {
                    let k = self.baseline.refit_every();
                    if k > 0 && self.since_refit >= k {
                        self.refit(false);
                    }
                }
                s
            }
        };
        self.last_ts = Some(ts);
        Ok(score)
    }

    fn flush_event(&mut self) -> Option<AnomalyEvent> {
        self.judge.events.flush()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - 2 * std::mem::size_of::<B>()
            + self.template.memory_bytes()
            + self.baseline.memory_bytes()
            + self.history.capacity() * std::mem::size_of::<f64>()
            + self.deltas.capacity() * std::mem::size_of::<i64>()
    }

    fn name(&self) -> &'static str {
        self.baseline.name()
    }
}

/// Turns a forecast and a scale into a [`Score`]: threshold, direction, minimum duration and
/// events. Shared by every detector.
#[derive(Debug, Clone)]
pub(crate) struct Judge {
    threshold: f64,
    direction: crate::config::Direction,
    min_duration: u32,
    run: u32,
    run_start_ms: i64,
    pub(crate) events: EventTracker,
}

impl Judge {
    pub(crate) fn new(cfg: &DetectorConfig) -> Self {
        Judge {
            threshold: cfg.threshold,
            direction: cfg.direction,
            min_duration: cfg.min_duration,
            run: 0,
            run_start_ms: 0,
            events: EventTracker::new(cfg.suppression_ms),
        }
    }

    /// Scores `value` against `expected` with `scale` (> 0). `quiet` points get probability 0
    /// and are never anomalous.
    pub(crate) fn score(
        &mut self,
        ts: i64,
        value: f64,
        expected: f64,
        scale: f64,
        state: ModelState,
        quiet: bool,
    ) -> Score {
        let residual = value - expected;
        let normalized = residual / scale;
        let oriented = self.direction.oriented(normalized);
        let probability = if quiet { 0.0 } else { (2.0 * normal_cdf(oriented) - 1.0).clamp(0.0, 1.0) };
        let point = !quiet && oriented >= self.threshold;
        if point {
            if self.run == 0 {
                self.run_start_ms = ts;
            }
            self.run = self.run.saturating_add(1);
        } else {
            self.run = 0;
        }
        let is_anomaly = point && self.run >= self.min_duration;
        let ev = self.events.observe(ts, is_anomaly, self.run_start_ms, normalized);
        Score {
            timestamp_ms: ts,
            value,
            expected,
            residual,
            normalized,
            scale,
            lower: expected - self.threshold * scale,
            upper: expected + self.threshold * scale,
            probability,
            is_anomaly,
            event_start: ev.started,
            closed_event: ev.closed,
            state,
        }
    }
}
