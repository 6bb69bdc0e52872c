//! Cardinality limits: how many distinct series may exist.
//!
//! A [`CardinalityLimiter`] admits series before they are stored. Three limits apply, as the
//! seeds' gateway asks: series per metric name (default 10,000), distinct values per label name
//! (default 10,000) and series overall (default 10,000,000). A *new* series that would pass a
//! limit is refused with [`CardinalityLimitExceeded`]; series already admitted keep flowing
//! whatever happens later, so a limit never cuts an existing series in half.
//!
//! Memory is bounded: the limiter remembers only admitted series (at most `global` of them), the
//! admitted values of each label name (at most `per_label_name` each), and refusal counters for at
//! most [`MAX_REFUSAL_COUNTERS`] metric names (further names are counted together under
//! [`OTHER_METRICS`]).
//!
//! Series are remembered by [`Fingerprint`]. Two different series with the same fingerprint
//! (a 64-bit collision, about one in 10¹¹ for a million series) would count as one: the second
//! is admitted without counting against the limits. That errs on the side of keeping data.
//!
//! ```
//! use telemetry_core::Labels;
//! use telemetry_core::cardinality::{CardinalityLimiter, CardinalityLimits};
//!
//! let mut limiter = CardinalityLimiter::new(CardinalityLimits { per_metric: 2, ..Default::default() });
//! let s = |i: &str| Labels::from_pairs([("__name__", "http_requests_total"), ("path", i)]).unwrap();
//! assert!(limiter.admit(&s("/a")).is_ok());
//! assert!(limiter.admit(&s("/b")).is_ok());
//! let err = limiter.admit(&s("/c")).unwrap_err();
//! assert_eq!((err.metric.as_str(), err.limit), ("http_requests_total", 2));
//! assert!(limiter.admit(&s("/a")).is_ok()); // admitted series keep flowing
//! assert_eq!(limiter.refused("http_requests_total"), 1);
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ahash::RandomState;
use thiserror::Error;

use crate::fingerprint::Fingerprint;
use crate::labels::{Labels, METRIC_NAME};

/// Most metric names that get their own refusal counter.
pub const MAX_REFUSAL_COUNTERS: usize = 10_000;

/// The counter name under which refusals of further metric names are counted.
pub const OTHER_METRICS: &str = "__other__";

/// The limits a [`CardinalityLimiter`] enforces. `usize::MAX` disables one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CardinalityLimits {
    /// Most series per metric name (default 10,000).
    pub per_metric: usize,
    /// Most distinct values per label name, over all metrics (default 10,000). `__name__` is
    /// exempt: the number of metric names is bounded by `global`.
    pub per_label_name: usize,
    /// Most series overall (default 10,000,000).
    pub global: usize,
}

impl Default for CardinalityLimits {
    fn default() -> Self {
        CardinalityLimits { per_metric: 10_000, per_label_name: 10_000, global: 10_000_000 }
    }
}

/// Which limit refused a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitScope {
    /// The series-per-metric-name limit.
    PerMetric,
    /// The values-per-label-name limit, for this label name.
    PerLabelName(String),
    /// The global series limit.
    Global,
}

/// A new series was refused because it would pass a limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cardinality limit exceeded for metric {metric:?}: {scope:?} limit is {limit}")]
pub struct CardinalityLimitExceeded {
    /// The metric name of the refused series (empty when it has none).
    pub metric: String,
    /// The limit that was reached.
    pub limit: usize,
    /// Which limit it was.
    pub scope: LimitScope,
}

/// Admits or refuses series. See the [module docs](self). Not internally synchronised: share
/// it behind a `Mutex` (admission is a hash look-up for known series).
#[derive(Debug, Default)]
pub struct CardinalityLimiter {
    limits: CardinalityLimits,
    admitted: HashSet<Fingerprint, RandomState>,
    per_metric: HashMap<Arc<str>, usize, RandomState>,
    label_values: HashMap<Arc<str>, HashSet<Arc<str>, RandomState>, RandomState>,
    refused: HashMap<Arc<str>, u64, RandomState>,
    refused_total: u64,
}

impl CardinalityLimiter {
    /// A limiter with the given limits and nothing admitted.
    pub fn new(limits: CardinalityLimits) -> Self {
        CardinalityLimiter { limits, ..Default::default() }
    }

    /// The limits in force.
    pub fn limits(&self) -> CardinalityLimits {
        self.limits
    }

    /// Admits `labels` if it is known or fits every limit; remembers it when new.
    ///
    /// # Errors
    /// [`CardinalityLimitExceeded`] for a new series past a limit; the refusal is counted.
    pub fn admit(&mut self, labels: &Labels) -> Result<(), CardinalityLimitExceeded> {
        self.admit_with_fingerprint(labels, labels.fingerprint())
    }

    /// As [`admit`](Self::admit), with the fingerprint already computed by the caller.
    ///
    /// # Errors
    /// As [`admit`](Self::admit).
    pub fn admit_with_fingerprint(&mut self, labels: &Labels, fp: Fingerprint) -> Result<(), CardinalityLimitExceeded> {
        if self.admitted.contains(&fp) {
            return Ok(());
        }
        let metric = labels.metric_name().unwrap_or("");
        if let Err(scope) = self.check_new(labels, metric) {
            let limit = match &scope {
                LimitScope::PerMetric => self.limits.per_metric,
                LimitScope::PerLabelName(_) => self.limits.per_label_name,
                LimitScope::Global => self.limits.global,
            };
            self.count_refusal(metric);
            return Err(CardinalityLimitExceeded { metric: metric.to_string(), limit, scope });
        }
        self.admitted.insert(fp);
        match self.per_metric.get_mut(metric) {
            Some(n) => *n += 1,
            None => {
                self.per_metric.insert(metric.into(), 1);
            }
        }
        for l in labels.iter().filter(|l| &*l.name != METRIC_NAME) {
            let values = self.label_values.entry(l.name.clone()).or_default();
            if !values.contains(&*l.value) {
                values.insert(l.value.clone());
            }
        }
        Ok(())
    }

    fn check_new(&self, labels: &Labels, metric: &str) -> Result<(), LimitScope> {
        if self.admitted.len() >= self.limits.global {
            return Err(LimitScope::Global);
        }
        if self.per_metric.get(metric).copied().unwrap_or(0) >= self.limits.per_metric {
            return Err(LimitScope::PerMetric);
        }
        for l in labels.iter().filter(|l| &*l.name != METRIC_NAME) {
            if let Some(values) = self.label_values.get(&*l.name)
                && values.len() >= self.limits.per_label_name
                && !values.contains(&*l.value)
            {
                return Err(LimitScope::PerLabelName(l.name.to_string()));
            }
        }
        Ok(())
    }

    fn count_refusal(&mut self, metric: &str) {
        self.refused_total += 1;
        if let Some(n) = self.refused.get_mut(metric) {
            *n += 1;
        } else if self.refused.len() < MAX_REFUSAL_COUNTERS {
            self.refused.insert(metric.into(), 1);
        } else {
            *self.refused.entry(OTHER_METRICS.into()).or_default() += 1;
        }
    }

    /// Forgets an admitted series (after it was deleted by retention or garbage collection), so
    /// that it no longer counts against the per-metric and global limits. Label values stay
    /// counted: other series may still use them.
    pub fn forget(&mut self, labels: &Labels) {
        if self.admitted.remove(&labels.fingerprint()) {
            let metric = labels.metric_name().unwrap_or("");
            if let Some(n) = self.per_metric.get_mut(metric) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Series admitted so far (and not forgotten).
    pub fn series_count(&self) -> usize {
        self.admitted.len()
    }

    /// Series admitted for one metric name.
    pub fn series_for_metric(&self, metric: &str) -> usize {
        self.per_metric.get(metric).copied().unwrap_or(0)
    }

    /// New series refused for one metric name (see [`OTHER_METRICS`]).
    pub fn refused(&self, metric: &str) -> u64 {
        self.refused.get(metric).copied().unwrap_or(0)
    }

    /// Refusal counters by metric name, for operators (unordered).
    pub fn refused_by_metric(&self) -> impl Iterator<Item = (&str, u64)> {
        self.refused.iter().map(|(k, v)| (&**k, *v))
    }

    /// All refusals.
    pub fn refused_total(&self) -> u64 {
        self.refused_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(metric: &str, k: &str, v: &str) -> Labels {
        Labels::from_pairs([("__name__", metric), (k, v)]).unwrap()
    }

    #[test]
    fn per_label_name_limit() {
        let mut l = CardinalityLimiter::new(CardinalityLimits { per_label_name: 2, ..Default::default() });
        l.admit(&s("a", "user", "1")).unwrap();
        l.admit(&s("b", "user", "2")).unwrap();
        l.admit(&s("c", "user", "1")).unwrap(); // known value, new series: fine
        let e = l.admit(&s("c", "user", "3")).unwrap_err();
        assert_eq!(e.scope, LimitScope::PerLabelName("user".into()));
        assert_eq!(e.limit, 2);
        assert_eq!(l.refused("c"), 1);
        assert_eq!(l.series_count(), 3);
    }

    #[test]
    fn global_limit_and_forget() {
        let mut l = CardinalityLimiter::new(CardinalityLimits { global: 2, ..Default::default() });
        let (a, b, c) = (s("m", "i", "a"), s("m", "i", "b"), s("m", "i", "c"));
        l.admit(&a).unwrap();
        l.admit(&b).unwrap();
        assert_eq!(l.admit(&c).unwrap_err().scope, LimitScope::Global);
        l.admit(&a).unwrap();
        l.forget(&a);
        l.admit(&c).unwrap();
        assert_eq!(l.series_for_metric("m"), 2);
        assert_eq!(l.refused_total(), 1);
    }

    #[test]
    fn refusal_counters_are_bounded() {
        let mut l = CardinalityLimiter::new(CardinalityLimits { global: 0, ..Default::default() });
        for i in 0..MAX_REFUSAL_COUNTERS + 5 {
            assert!(l.admit(&s(&format!("m{i}"), "a", "b")).is_err());
        }
        assert_eq!(l.refused_by_metric().count(), MAX_REFUSAL_COUNTERS + 1);
        assert_eq!(l.refused(OTHER_METRICS), 5);
        assert_eq!(l.refused_total(), MAX_REFUSAL_COUNTERS as u64 + 5);
    }
}
