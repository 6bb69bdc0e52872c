//! Anomaly likelihood: how unusual the recent normalized scores are for this series.
//!
//! Residual z-scores are not comparable across series: a quantized or mostly-constant series
//! produces huge z-scores routinely, a smooth one rarely. Following the idea of the "anomaly
//! likelihood" of Ahmad, Lavin, Purdy & Agha (2017), "Unsupervised real-time anomaly detection
//! for streaming data", Neurocomputing 262, §4.3, each series' own score history is modelled as
//! a Gaussian: the raw score `r = ln(1 + |z|)` has a long-term mean and variance (EWMAs with
//! factor `long_alpha`), the short-term mean of the last few (default 8) raw scores is compared
//! with them, and the likelihood is the normal CDF of that standardised difference. The
//! log-likelihood score `−log10(1 − likelihood) / 10`, clamped to [0, 1], keeps resolution
//! close to 1.
//!
//! Memory: [`SHORT_WINDOW`] + 7 numbers; O(1) per update.

use crate::stats::erfc;

/// Largest number of recent raw scores averaged into the short-term mean.
pub const SHORT_WINDOW: usize = 16;

/// Streaming anomaly likelihood of one series; see the module docs.
#[derive(Debug, Clone)]
pub struct AnomalyLikelihood {
    long_alpha: f64,
    short: usize,
    warmup: u32,
    count: u32,
    mean: f64,
    var: f64,
    ring: [f64; SHORT_WINDOW],
    pos: usize,
    sum: f64,
}

/// One likelihood update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LikelihoodScore {
    /// Probability in [0, 1] that the recent scores are higher than usual for this series.
    pub likelihood: f64,
    /// `−log10(1 − likelihood) / 10` clamped to [0, 1]: 0.5 at a tail probability of 1e-5.
    pub log_score: f64,
}

impl AnomalyLikelihood {
    /// `long_alpha` in (0, 1] is the EWMA factor of the long-term statistics (e.g. 1/1000);
    /// the first `warmup` updates return likelihood 0.5 while the statistics settle.
    pub fn new(long_alpha: f64, warmup: u32) -> Self {
        Self::with_short_window(long_alpha, warmup, 8)
    }

    /// As [`AnomalyLikelihood::new`] with `short` (1..=[`SHORT_WINDOW`], clamped) recent
    /// scores in the short-term mean.
    pub fn with_short_window(long_alpha: f64, warmup: u32, short: usize) -> Self {
        AnomalyLikelihood {
            long_alpha: long_alpha.clamp(1e-9, 1.0),
            short: short.clamp(1, SHORT_WINDOW),
            warmup,
            count: 0,
            mean: 0.0,
            var: 0.0,
            ring: [0.0; SHORT_WINDOW],
            pos: 0,
            sum: 0.0,
        }
    }

    /// Feeds the normalized score of the next sample (use 0 for samples that were not scored).
    pub fn update(&mut self, normalized: f64) -> LikelihoodScore {
        let r = if normalized.is_finite() { normalized.abs().ln_1p() } else { 0.0 };
        self.sum += r - self.ring[self.pos];
        self.ring[self.pos] = r;
        self.pos = (self.pos + 1) % self.short;
        let n = (self.count as usize + 1).min(self.short);
        let short = self.sum / n as f64;
        let out = if self.count < self.warmup {
            LikelihoodScore { likelihood: 0.5, log_score: 0.0 }
        } else {
            let sd = self.var.sqrt().max(1e-3);
            let x = (short - self.mean) / sd;
            let tail = 0.5 * erfc(x / std::f64::consts::SQRT_2);
            let log_score = (-(tail.max(1e-300)).log10() / 10.0).clamp(0.0, 1.0);
            LikelihoodScore { likelihood: 1.0 - tail, log_score }
        };
        // Long-term statistics: a faster start (1/count) until 1/count drops below long_alpha.
        self.count = self.count.saturating_add(1);
        let a = (1.0 / self.count as f64).max(self.long_alpha);
        let d = r - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        out
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_spikes_stop_being_surprising() {
        let mut l = AnomalyLikelihood::new(1e-2, 50);
        let mut first = 0.0;
        let mut last = 0.0;
        for i in 0..2000 {
            let z = if i % 20 == 0 { 50.0 } else { 0.5 };
            let s = l.update(z);
            if i == 60 {
                first = s.likelihood;
            }
            if i == 1980 {
                last = s.likelihood;
            }
        }
        assert!(last < 0.99, "routine spikes still surprising: {last}");
        assert!(first > 0.5);
    }

    #[test]
    fn a_burst_is_likely_anomalous() {
        let mut l = AnomalyLikelihood::new(1e-3, 50);
        for i in 0..1000 {
            l.update(if i % 2 == 0 { 0.3 } else { -0.8 });
        }
        let s = (0..4).map(|_| l.update(8.0)).last().unwrap();
        assert!(s.likelihood > 0.999 && s.log_score > 0.3, "{s:?}");
    }
}
