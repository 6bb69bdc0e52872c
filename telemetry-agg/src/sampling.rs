//! Sampling policies: shed load before aggregation without biasing the answer.
//!
//! A kept sample carries a **weight**: how many original samples it stands for. Feeding the
//! weight to [`Aggregator::push`](crate::Aggregator::push) makes the weighted count (Σw) and
//! the weighted sum (Σw·v) unbiased (Horvitz–Thompson) estimates of the unsampled count and sum.
//!
//! Why the weight scales counts and sums and never the values: keeping a sample with
//! probability `p` thins the *number* of observations, not their size. A kept latency of 20 ms
//! is still a 20 ms observation; it merely represents `1/p` observations like it. Multiplying
//! the value by `1/p` (as the original design note put it) makes the sum come out right but
//! turns the mean, min, max and every quantile into `1/p` times the truth: at `p = 0.1` a
//! 20 ms p99 would read 200 ms. A uniform random subsample has the same distribution as the
//! whole, so min/max/quantiles/mean are estimated from the unscaled kept values (min and max
//! are then only bounds, since the extreme sample may be dropped), and only the count and the
//! sum are scaled, through the weight.
//!
//! Policies ([`Policy`]): full; probabilistic (keep with probability `p`, deterministic per
//! series fingerprint and timestamp when seeded so that replicas agree); rate-limited (token
//! bucket per series on event time; a kept sample's weight absorbs the samples dropped since
//! the previous kept one, so the weighted count stays exact); adaptive (probability tightened
//! while a backpressure signal stays above a threshold, restored to full once it has stayed
//! below a lower one); reservoir (`k` samples per series and window, for raw-sample retention).
//! A [`SamplingConfig`] chooses a policy per metric family by anchored regular expression on
//! the metric name.

use std::sync::Arc;

use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use telemetry_core::{Fingerprint, Labels, Matcher, Sample};

use crate::error::ConfigError;

/// SplitMix64 finalizer (Steele, Lea & Flood, 2014): a fast, well-mixed 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in `[0, 1)` from 53 bits.
#[inline]
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A sampling policy, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Policy {
    /// Keep everything, weight 1.
    Full,
    /// Keep with probability `p` in `(0, 1]`, weight `1/p`.
    Probabilistic {
        /// Keep probability.
        p: f64,
        /// With a seed, the decision is a hash of (seed, series fingerprint, timestamp): every
        /// replica with the same seed keeps the same samples. Without, a per-process stream.
        #[serde(default)]
        seed: Option<u64>,
    },
    /// At most `per_second` samples per second per series (token bucket on sample timestamps,
    /// holding up to `burst` tokens, default `max(per_second, 1)`).
    RateLimited {
        /// Sustained rate, samples per second (> 0).
        per_second: f64,
        /// Bucket size (≥ 1).
        #[serde(default)]
        burst: Option<f64>,
    },
    /// Probabilistic with a probability that follows backpressure: each time
    /// [`Sampler::observe_backpressure`] reports a signal above `high` (at most once per
    /// `step_ms`), `p` is multiplied by `factor` down to `min_p`; once the signal has stayed at
    /// or below `low` for `step_ms`, `p` returns to 1. Between `low` and `high`, `p` holds
    /// (hysteresis). With consumer lag in seconds as the signal, `high = 10` is the original
    /// design's "lag over 10 s".
    Adaptive {
        /// Signal above which sampling tightens.
        #[serde(default = "default_high")]
        high: f64,
        /// Signal at or below which sampling relaxes (≤ `high`).
        #[serde(default = "default_low")]
        low: f64,
        /// Smallest keep probability.
        #[serde(default = "default_min_p")]
        min_p: f64,
        /// Multiplier applied per tightening step, in `(0, 1)`.
        #[serde(default = "default_factor")]
        factor: f64,
        /// Least time between two steps, and how long the signal must stay low before `p`
        /// returns to 1, ms.
        #[serde(default = "default_step_ms")]
        step_ms: i64,
        /// Seed, as for `Probabilistic`.
        #[serde(default)]
        seed: Option<u64>,
    },
    /// Reservoir sampling (Vitter's algorithm R) of `k` samples per series per window of
    /// `window_ms`, for raw-sample retention: samples are held, and
    /// [`Sampler::drain_reservoirs`] returns each closed window's `k` (or fewer) samples with
    /// weight `seen / kept`.
    Reservoir {
        /// Samples kept per series and window (≥ 1).
        k: usize,
        /// Window width, ms (default 60,000), epoch-aligned.
        #[serde(default = "default_window")]
        window_ms: i64,
        /// Seed for the replacement choices.
        #[serde(default)]
        seed: Option<u64>,
    },
}

fn default_high() -> f64 {
    10.0
}
fn default_low() -> f64 {
    5.0
}
fn default_min_p() -> f64 {
    0.01
}
fn default_factor() -> f64 {
    0.5
}
fn default_step_ms() -> i64 {
    10_000
}
fn default_window() -> i64 {
    60_000
}

/// One rule: metric names matching `pattern` (an anchored regular expression, as PromQL's
/// `__name__=~"…"`) get `policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingRule {
    /// Anchored regular expression over the metric name.
    pub pattern: String,
    /// The policy.
    #[serde(flatten)]
    pub policy: Policy,
}

/// Sampling configuration: the first matching rule wins, else `default`.
///
/// ```
/// let cfg: telemetry_agg::SamplingConfig = serde_json::from_str(r#"{
///   "rules": [
///     {"pattern": "http_.*", "policy": "probabilistic", "p": 0.1, "seed": 7},
///     {"pattern": "node_cpu.*", "policy": "rate_limited", "per_second": 1}
///   ],
///   "default": {"policy": "full"}
/// }"#).unwrap();
/// assert_eq!(cfg.rules.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Rules, tried in order.
    #[serde(default)]
    pub rules: Vec<SamplingRule>,
    /// Policy for metrics no rule matches.
    #[serde(default = "full")]
    pub default: Policy,
    /// Most series tracked by stateful policies (rate limiter, reservoir); beyond it, samples
    /// of new series are kept with weight 1 and counted in [`SamplerStats::untracked`].
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn full() -> Policy {
    Policy::Full
}
fn default_max_series() -> usize {
    1_000_000
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig { rules: Vec::new(), default: Policy::Full, max_series: default_max_series() }
    }
}

/// A sampling decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Keep, with this weight (≥ 1).
    Keep {
        /// How many original samples this one stands for.
        weight: f64,
    },
    /// Dropped (counted in [`SamplerStats`]).
    Drop,
    /// Held by a reservoir; it comes back from [`Sampler::drain_reservoirs`] if retained.
    Held,
}

/// Counters of what the sampler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SamplerStats {
    /// Samples seen.
    pub seen: u64,
    /// Samples kept at once.
    pub kept: u64,
    /// Samples dropped by probabilistic and adaptive policies.
    pub dropped_probabilistic: u64,
    /// Samples dropped by rate limits.
    pub dropped_rate_limited: u64,
    /// Samples offered to reservoirs.
    pub held: u64,
    /// Samples of reservoirs replaced or not retained.
    pub dropped_reservoir: u64,
    /// Samples kept unconditionally because the series cap of stateful policies was reached.
    pub untracked: u64,
}

/// A token bucket over event time.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: i64,
    rate_per_ms: f64,
    burst: f64,
    pending: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: f64) -> Self {
        TokenBucket { tokens: burst, last_ms: i64::MIN, rate_per_ms: per_second / 1000.0, burst, pending: 0 }
    }

    /// Takes one token at `ts_ms` if available. Returns the weight of a kept sample (1 + the
    /// samples dropped since the previous kept one), or `None` when dropped. Timestamps that go
    /// backwards refill nothing.
    #[inline]
    pub fn take(&mut self, ts_ms: i64) -> Option<f64> {
        if ts_ms > self.last_ms {
            if self.last_ms != i64::MIN {
                let dt = ts_ms.saturating_sub(self.last_ms) as f64;
                self.tokens = (self.tokens + dt * self.rate_per_ms).min(self.burst);
            }
            self.last_ms = ts_ms;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            let w = 1.0 + self.pending as f64;
            self.pending = 0;
            Some(w)
        } else {
            self.pending += 1;
            None
        }
    }
}

/// Adaptive probability state.
#[derive(Debug, Clone, Copy)]
struct Adaptive {
    p: f64,
    high: f64,
    low: f64,
    min_p: f64,
    factor: f64,
    step_ms: i64,
    last_step_ms: i64,
    low_since_ms: Option<i64>,
}

impl Adaptive {
    fn observe(&mut self, signal: f64, now_ms: i64) {
        if signal > self.high {
            self.low_since_ms = None;
            if now_ms.saturating_sub(self.last_step_ms) >= self.step_ms {
                self.p = (self.p * self.factor).max(self.min_p);
                self.last_step_ms = now_ms;
            }
        } else if signal <= self.low {
            let since = *self.low_since_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= self.step_ms {
                self.p = 1.0;
            }
        } else {
            self.low_since_ms = None;
        }
    }
}

/// One sample retained by a reservoir.
#[derive(Debug, Clone, PartialEq)]
pub struct RetainedSample {
    /// The series.
    pub labels: Labels,
    /// The sample.
    pub sample: Sample,
    /// `seen / kept` for its series and window.
    pub weight: f64,
    /// Start of its window, ms.
    pub window_start_ms: i64,
}

#[derive(Debug)]
struct Reservoir {
    labels: Labels,
    seen: u64,
    kept: Vec<Sample>,
}

#[derive(Debug)]
enum State {
    Full,
    Probabilistic { p: f64, seed: Option<u64> },
    RateLimited { per_second: f64, burst: f64, buckets: AHashMap<u64, TokenBucket> },
    Adaptive { a: Adaptive, seed: Option<u64> },
    Reservoir { k: usize, window_ms: i64, seed: u64, windows: AHashMap<(i64, u64), Reservoir> },
}

fn check(rule: usize, ok: bool, reason: &str) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(ConfigError::Sampling { rule, reason: reason.to_string() }) }
}

impl State {
    fn build(rule: usize, p: &Policy) -> Result<State, ConfigError> {
        Ok(match *p {
            Policy::Full => State::Full,
            Policy::Probabilistic { p, seed } => {
                check(rule, p > 0.0 && p <= 1.0, "p must be in (0, 1]")?;
                State::Probabilistic { p, seed }
            }
            Policy::RateLimited { per_second, burst } => {
                check(rule, per_second > 0.0 && per_second.is_finite(), "per_second must be finite and > 0")?;
                let burst = burst.unwrap_or(per_second.max(1.0));
                check(rule, burst >= 1.0 && burst.is_finite(), "burst must be finite and >= 1")?;
                State::RateLimited { per_second, burst, buckets: AHashMap::new() }
            }
            Policy::Adaptive { high, low, min_p, factor, step_ms, seed } => {
                check(rule, low <= high, "low must be <= high")?;
                check(rule, min_p > 0.0 && min_p <= 1.0, "min_p must be in (0, 1]")?;
                check(rule, factor > 0.0 && factor < 1.0, "factor must be in (0, 1)")?;
                check(rule, step_ms >= 0, "step_ms must be >= 0")?;
                State::Adaptive {
                    a: Adaptive {
                        p: 1.0,
                        high,
                        low,
                        min_p,
                        factor,
                        step_ms,
                        last_step_ms: i64::MIN,
                        low_since_ms: None,
                    },
                    seed,
                }
            }
            Policy::Reservoir { k, window_ms, seed } => {
                check(rule, k >= 1, "k must be >= 1")?;
                check(rule, window_ms > 0, "window_ms must be > 0")?;
                State::Reservoir { k, window_ms, seed: seed.unwrap_or_else(random_seed), windows: AHashMap::new() }
            }
        })
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// Applies a [`SamplingConfig`] to a stream of samples.
#[derive(Debug)]
pub struct Sampler {
    rules: Vec<(Matcher, State)>,
    default: State,
    by_name: AHashMap<Arc<str>, usize>,
    max_series: usize,
    tracked: usize,
    stream: u64,
    stats: SamplerStats,
}

impl Sampler {
    /// Builds a sampler.
    ///
    /// # Errors
    /// [`ConfigError::Pattern`] for a pattern that does not compile, [`ConfigError::Sampling`]
    /// for a parameter out of range (rule index `usize::MAX` is the default policy).
    pub fn new(cfg: &SamplingConfig) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            let m = Matcher::regex(telemetry_core::METRIC_NAME, r.pattern.as_str())
                .map_err(|source| ConfigError::Pattern { rule: i, source })?;
            rules.push((m, State::build(i, &r.policy)?));
        }
        check(usize::MAX, cfg.max_series >= 1, "max_series must be >= 1")?;
        Ok(Sampler {
            rules,
            default: State::build(usize::MAX, &cfg.default)?,
            by_name: AHashMap::new(),
            max_series: cfg.max_series,
            tracked: 0,
            stream: random_seed(),
            stats: SamplerStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> SamplerStats {
        self.stats
    }

    /// The current keep probability of the adaptive policies (the first one found), or `None`.
    pub fn adaptive_probability(&self) -> Option<f64> {
        self.rules.iter().map(|(_, s)| s).chain([&self.default]).find_map(|s| match s {
            State::Adaptive { a, .. } => Some(a.p),
            _ => None,
        })
    }

    /// Reports a backpressure signal (queue depth, consumer lag in seconds, …) at `now_ms` to
    /// every adaptive policy.
    pub fn observe_backpressure(&mut self, signal: f64, now_ms: i64) {
        for s in self.rules.iter_mut().map(|(_, s)| s).chain([&mut self.default]) {
            if let State::Adaptive { a, .. } = s {
                a.observe(signal, now_ms);
            }
        }
    }

    fn rule_index(&mut self, labels: &Labels) -> usize {
        let name = labels.metric_name().unwrap_or("");
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let i = self.rules.iter().position(|(m, _)| m.matches(name)).unwrap_or(usize::MAX);
        if self.by_name.len() < self.max_series {
            self.by_name.insert(Arc::from(name), i);
        }
        i
    }

    /// Decides about one sample of the series `labels` (fingerprint `fp`).
    pub fn decide(&mut self, labels: &Labels, fp: Fingerprint, sample: Sample) -> Decision {
        self.stats.seen += 1;
        let i = self.rule_index(labels);
        let stream = &mut self.stream;
        let tracked = &mut self.tracked;
        let max_series = self.max_series;
        let state = if i == usize::MAX { &mut self.default } else { &mut self.rules[i].1 };
        let d = match state {
            State::Full => Decision::Keep { weight: 1.0 },
            State::Probabilistic { p, seed } => bernoulli(*p, *seed, fp, sample.timestamp_ms, stream),
            State::Adaptive { a, seed } => bernoulli(a.p, *seed, fp, sample.timestamp_ms, stream),
            State::RateLimited { per_second, burst, buckets } => {
                let b = match buckets.get_mut(&fp.as_u64()) {
                    Some(b) => Some(b),
                    None if *tracked < max_series => {
                        *tracked += 1;
                        Some(buckets.entry(fp.as_u64()).or_insert_with(|| TokenBucket::new(*per_second, *burst)))
                    }
                    None => None,
                };
                match b {
                    Some(b) => match b.take(sample.timestamp_ms) {
                        Some(weight) => Decision::Keep { weight },
                        None => {
                            self.stats.dropped_rate_limited += 1;
                            return Decision::Drop;
                        }
                    },
                    None => {
                        self.stats.untracked += 1;
                        Decision::Keep { weight: 1.0 }
                    }
                }
            }
            State::Reservoir { k, window_ms, seed, windows } => {
                let start = crate::window::window_start(sample.timestamp_ms, *window_ms);
                let key = (start, fp.as_u64());
                let r = match windows.get_mut(&key) {
                    Some(r) => Some(r),
                    None if *tracked < max_series => {
                        *tracked += 1;
                        Some(windows.entry(key).or_insert_with(|| Reservoir {
                            labels: labels.clone(),
                            seen: 0,
                            kept: Vec::with_capacity(*k),
                        }))
                    }
                    None => None,
                };
                match r {
                    Some(r) => {
                        r.seen += 1;
                        if r.kept.len() < *k {
                            r.kept.push(sample);
                        } else {
                            // Algorithm R: replace a random slot with probability k / seen.
                            let h = mix64(*seed ^ mix64(fp.as_u64() ^ mix64(start as u64 ^ r.seen)));
                            let j = (unit(h) * r.seen as f64) as u64;
                            if (j as usize) < *k {
                                r.kept[j as usize] = sample;
                            }
                            self.stats.dropped_reservoir += 1;
                        }
                        self.stats.held += 1;
                        return Decision::Held;
                    }
                    None => {
                        self.stats.untracked += 1;
                        Decision::Keep { weight: 1.0 }
                    }
                }
            }
        };
        match d {
            Decision::Keep { .. } => self.stats.kept += 1,
            Decision::Drop => self.stats.dropped_probabilistic += 1,
            Decision::Held => {}
        }
        d
    }

    /// Returns the samples retained by reservoirs whose window ends at or before
    /// `watermark_ms`, and forgets those windows.
    pub fn drain_reservoirs(&mut self, watermark_ms: i64) -> Vec<RetainedSample> {
        let mut out = Vec::new();
        let mut freed = 0;
        for s in self.rules.iter_mut().map(|(_, s)| s).chain([&mut self.default]) {
            if let State::Reservoir { window_ms, windows, .. } = s {
                let w = *window_ms;
                windows.retain(|&(start, _), r| {
                    if start.saturating_add(w) > watermark_ms {
                        return true;
                    }
                    let weight = r.seen as f64 / r.kept.len().max(1) as f64;
                    out.extend(r.kept.iter().map(|&sample| RetainedSample {
                        labels: r.labels.clone(),
                        sample,
                        weight,
                        window_start_ms: start,
                    }));
                    freed += 1;
                    false
                });
            }
        }
        self.tracked = self.tracked.saturating_sub(freed);
        out.sort_by(|a, b| {
            (a.window_start_ms, &a.labels, a.sample.timestamp_ms).cmp(&(
                b.window_start_ms,
                &b.labels,
                b.sample.timestamp_ms,
            ))
        });
        out
    }
}

#[inline]
fn bernoulli(p: f64, seed: Option<u64>, fp: Fingerprint, ts: i64, stream: &mut u64) -> Decision {
    if p >= 1.0 {
        return Decision::Keep { weight: 1.0 };
    }
    let h = match seed {
        Some(s) => mix64(mix64(s ^ fp.as_u64()) ^ ts as u64),
        None => {
            *stream = stream.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(*stream)
        }
    };
    if unit(h) < p { Decision::Keep { weight: 1.0 / p } } else { Decision::Drop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbl(name: &str, i: u32) -> Labels {
        Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())]).unwrap()
    }

    #[test]
    fn seeded_probabilistic_is_replica_deterministic() {
        let cfg =
            SamplingConfig { default: Policy::Probabilistic { p: 0.3, seed: Some(42) }, ..SamplingConfig::default() };
        let mut a = Sampler::new(&cfg).unwrap();
        let mut b = Sampler::new(&cfg).unwrap();
        let mut kept = 0;
        for i in 0..100 {
            let l = lbl("m", i);
            let fp = l.fingerprint();
            for t in 0..100 {
                let s = Sample::new(t * 1000, 1.0);
                let (x, y) = (a.decide(&l, fp, s), b.decide(&l, fp, s));
                assert_eq!(x, y);
                if let Decision::Keep { weight } = x {
                    assert!((weight - 1.0 / 0.3).abs() < 1e-12);
                    kept += 1;
                }
            }
        }
        assert!((2800..3200).contains(&kept), "{kept}");
    }

    #[test]
    fn rules_choose_policy_by_name() {
        let cfg: SamplingConfig = serde_json::from_str(
            r#"{"rules": [{"pattern": "drop_.*", "policy": "probabilistic", "p": 1e-9, "seed": 1}]}"#,
        )
        .unwrap();
        let mut s = Sampler::new(&cfg).unwrap();
        let l = lbl("drop_me", 0);
        assert_eq!(s.decide(&l, l.fingerprint(), Sample::new(0, 1.0)), Decision::Drop);
        let l = lbl("keep_drop_me", 0);
        assert_eq!(s.decide(&l, l.fingerprint(), Sample::new(0, 1.0)), Decision::Keep { weight: 1.0 });
        let bad = SamplingConfig {
            rules: vec![SamplingRule { pattern: "(".into(), policy: Policy::Full }],
            ..SamplingConfig::default()
        };
        assert!(matches!(Sampler::new(&bad), Err(ConfigError::Pattern { rule: 0, .. })));
        let bad = SamplingConfig { default: Policy::Probabilistic { p: 0.0, seed: None }, ..SamplingConfig::default() };
        assert!(matches!(Sampler::new(&bad), Err(ConfigError::Sampling { .. })));
    }

    #[test]
    fn rate_limiter_weights_absorb_drops() {
        let mut b = TokenBucket::new(1.0, 1.0);
        let mut total = 0.0;
        // 10 samples per second for 10 s: 10 kept (plus the initial token).
        for t in 0..100 {
            if let Some(w) = b.take(t * 100) {
                total += w;
            }
        }
        // Every dropped sample is attributed to a later kept one, except the trailing drops.
        assert!((90.0..=100.0).contains(&total), "{total}");
    }

    #[test]
    fn adaptive_tightens_and_recovers_with_hysteresis() {
        let cfg = SamplingConfig {
            default: Policy::Adaptive { high: 10.0, low: 5.0, min_p: 0.1, factor: 0.5, step_ms: 1000, seed: Some(1) },
            ..SamplingConfig::default()
        };
        let mut s = Sampler::new(&cfg).unwrap();
        assert_eq!(s.adaptive_probability(), Some(1.0));
        s.observe_backpressure(12.0, 0);
        s.observe_backpressure(12.0, 500); // within step: no change
        assert_eq!(s.adaptive_probability(), Some(0.5));
        for t in 1..10 {
            s.observe_backpressure(15.0, t * 1000);
        }
        assert_eq!(s.adaptive_probability(), Some(0.1));
        // Between low and high: holds.
        s.observe_backpressure(7.0, 20_000);
        s.observe_backpressure(7.0, 40_000);
        assert_eq!(s.adaptive_probability(), Some(0.1));
        // Low, but not yet for a full step.
        s.observe_backpressure(1.0, 41_000);
        s.observe_backpressure(1.0, 41_500);
        assert_eq!(s.adaptive_probability(), Some(0.1));
        s.observe_backpressure(1.0, 42_000);
        assert_eq!(s.adaptive_probability(), Some(1.0));
    }

    #[test]
    fn reservoir_keeps_k_per_window_with_weights() {
        let cfg = SamplingConfig {
            default: Policy::Reservoir { k: 5, window_ms: 60_000, seed: Some(3) },
            ..SamplingConfig::default()
        };
        let mut s = Sampler::new(&cfg).unwrap();
        let l = lbl("m", 0);
        for t in 0..120 {
            assert_eq!(s.decide(&l, l.fingerprint(), Sample::new(t * 1000, t as f64)), Decision::Held);
        }
        let first = s.drain_reservoirs(60_000);
        assert_eq!(first.len(), 5);
        assert!(first.iter().all(|r| r.weight == 12.0 && r.window_start_ms == 0 && r.sample.timestamp_ms < 60_000));
        let second = s.drain_reservoirs(120_000);
        assert_eq!(second.len(), 5);
        assert!(s.drain_reservoirs(i64::MAX).is_empty());
    }
}
