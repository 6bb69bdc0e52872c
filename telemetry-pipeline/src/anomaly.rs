//! Anomaly detection on aggregated series: rules, detectors, events and `anomaly_score` series.
//!
//! Each [`AnomalyRule`] selects series with a PromQL vector selector, aggregates them over
//! windows of [`AnomalyConfig::window_ms`] (telemetry-agg's [`Aggregator`], keyed per series or
//! by the rule's `by` labels) and feeds one value per key and window ([`WindowValue`]) to a
//! telemetry-anomaly [`Registry`] of detectors. Every score is written back to storage as the
//! series `anomaly_score{rule="<rule>", metric="<metric>", <key labels>}` (absolute normalized
//! score, in robust standard deviations, at the window's end), so that PromQL can alert on it;
//! anomalous points are merged into [`AnomalyRecord`] events within the suppression window.

use std::collections::HashMap;

use telemetry_agg::{AggregateSet, Aggregator, AggregatorConfig, Grouping, KeyOverflow, WindowOverflow, WindowRecord};
use telemetry_anomaly::{DetectorConfig, DetectorKind, Registry, Score};
use telemetry_core::{Fingerprint, Labels, LabelsBuilder, METRIC_NAME, MatchOp, Matcher, matches_all};

use crate::config::{AnomalyConfig, AnomalyRule, WindowValue};

/// The metric name of the score series.
pub const ANOMALY_SCORE_METRIC: &str = "anomaly_score";

/// One anomaly event: consecutive anomalous points of one key, merged within the suppression
/// window. Times in ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnomalyRecord {
    /// The rule that found it.
    pub rule: String,
    /// The key's labels (metric name included).
    pub labels: Labels,
    /// Start of the first window of the run of anomalous windows that opened the event (the
    /// run has at least `min_duration` windows).
    pub start_ms: i64,
    /// End of the last anomalous window.
    pub end_ms: i64,
    /// Where the absolute score peaked.
    pub peak_ms: i64,
    /// The peak absolute score, robust standard deviations.
    pub peak_score: f64,
    /// The observed window value at the peak.
    pub value: f64,
    /// The detector's forecast at the peak.
    pub expected: f64,
    /// Lower edge of the normal band at the peak.
    pub lower: f64,
    /// Upper edge of the normal band at the peak.
    pub upper: f64,
    /// Anomalous points in the event.
    pub points: u32,
    /// `true` while more points may still extend it.
    pub open: bool,
}

/// Parses a PromQL vector selector (`metric{label=~"re"}`) into matchers.
///
/// # Errors
/// A message when the text is not a plain vector selector or a matcher's regex is invalid.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    use promql_parser::label::MatchOp as P;
    use promql_parser::parser::Expr;
    let expr = promql_parser::parser::parse(text).map_err(|e| format!("cannot parse selector: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err("must be a plain vector selector such as metric{label=\"value\"}".into());
    };
    let mut out = Vec::new();
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in vs.matchers.matchers.iter() {
        let op = match &m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::RegexMatch,
            P::NotRe(_) => MatchOp::RegexNoMatch,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())?);
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("`or` in selectors is not supported here".into());
    }
    Ok(out)
}

/// The telemetry-anomaly detector settings an [`AnomalyConfig`] stands for.
pub fn detector_config(c: &AnomalyConfig) -> DetectorConfig {
    DetectorConfig {
        threshold: c.threshold,
        min_duration: c.min_duration,
        suppression_ms: c.suppression_ms,
        warmup: c.warmup,
        history: c.history,
        refit_every: c.history.max(1),
        max_period: (c.history / 2).max(2),
        ..DetectorConfig::default()
    }
}

struct Rule {
    rule: AnomalyRule,
    matchers: Vec<Matcher>,
    agg: Aggregator,
}

#[derive(Default)]
struct KeyState {
    score_labels: Option<Labels>,
    open: Option<AnomalyRecord>,
}

/// The detection stage: owned by the aggregation thread.
pub(crate) struct Detection {
    rules: Vec<Rule>,
    registry: Registry,
    keys: HashMap<(usize, Fingerprint), KeyState>,
    suppression_ms: i64,
    /// How far before a flagged window's end its qualifying run starts, ms.
    run_ms: i64,
    /// Closed events.
    pub(crate) closed: Vec<AnomalyRecord>,
    /// Points scored.
    pub(crate) scored: u64,
    /// Points flagged anomalous.
    pub(crate) flagged: u64,
    /// Detector errors (non-finite values, out-of-order windows), skipped.
    pub(crate) errors: u64,
}

/// A score to write to storage.
pub(crate) struct ScorePoint {
    pub(crate) labels: Labels,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

impl Detection {
    pub(crate) fn new(cfg: &AnomalyConfig) -> Result<Self, String> {
        let kind = DetectorKind::from_name(&cfg.detector).map_err(|e| e.to_string())?;
        let registry = Registry::new(kind, detector_config(cfg), cfg.max_bytes).map_err(|e| e.to_string())?;
        let mut rules = Vec::new();
        for r in &cfg.rules {
            let matchers = parse_selector(&r.selector).map_err(|e| format!("rule {}: {e}", r.name))?;
            let aggregates = AggregateSet {
                count: true,
                sum: true,
                min: true,
                max: true,
                mean: true,
                last: true,
                counter: r.value == WindowValue::Rate,
                ..AggregateSet::default()
            };
            let acfg = AggregatorConfig {
                window_ms: cfg.window_ms,
                allowed_lateness_ms: 10_000.min(cfg.window_ms),
                grouping: if r.by.is_empty() { Grouping::Series } else { Grouping::By(r.by.clone()) },
                aggregates,
                max_open_windows: 64,
                max_keys: 100_000,
                max_series: 1_000_000,
                key_overflow: KeyOverflow::EvictIdle,
                window_overflow: WindowOverflow::CloseOldest,
            };
            let agg = Aggregator::new(acfg).map_err(|e| format!("rule {}: {e}", r.name))?;
            rules.push(Rule { rule: r.clone(), matchers, agg });
        }
        Ok(Detection {
            rules,
            registry,
            keys: HashMap::new(),
            suppression_ms: cfg.suppression_ms,
            run_ms: cfg.window_ms.saturating_mul(i64::from(cfg.min_duration.max(1))),
            closed: Vec::new(),
            scored: 0,
            flagged: 0,
            errors: 0,
        })
    }

    /// The rules whose selector matches `labels`, with the aggregator handle of the series.
    pub(crate) fn register(&mut self, labels: &Labels) -> Vec<(u32, telemetry_agg::SeriesRef)> {
        let mut out = Vec::new();
        for (i, r) in self.rules.iter_mut().enumerate() {
            if matches_all(&r.matchers, labels)
                && let Ok(h) = r.agg.series_ref(labels)
            {
                out.push((i as u32, h));
            }
        }
        out
    }

    #[inline]
    pub(crate) fn push(&mut self, rule: u32, h: telemetry_agg::SeriesRef, t: i64, v: f64, w: f64) {
        if let Some(r) = self.rules.get_mut(rule as usize) {
            // Late samples and evicted handles are counted by the aggregator itself.
            let _ = r.agg.push(h, telemetry_core::Sample::new(t, v), w);
        }
    }

    /// Scores the windows closed so far (all of them when `flush`), returning the scores to
    /// store.
    pub(crate) fn score(&mut self, flush: bool, out: &mut Vec<ScorePoint>) {
        for ri in 0..self.rules.len() {
            let records = {
                let r = &mut self.rules[ri];
                if flush {
                    r.agg.flush();
                }
                r.agg.drain_records()
            };
            for rec in records {
                self.score_record(ri, &rec, out);
            }
        }
        if flush {
            let now_closed: Vec<AnomalyRecord> = self
                .keys
                .values_mut()
                .filter_map(|k| k.open.take())
                .map(|e| AnomalyRecord { open: false, ..e })
                .collect();
            self.closed.extend(now_closed);
        }
    }

    fn score_record(&mut self, ri: usize, rec: &WindowRecord, out: &mut Vec<ScorePoint>) {
        let rule = &self.rules[ri].rule;
        let v = &rec.values;
        let value = match rule.value {
            WindowValue::Rate => v.rate,
            WindowValue::Mean => v.mean,
            WindowValue::Max => v.max,
            WindowValue::Min => v.min,
            WindowValue::Last => v.last.map(|s| s.value),
            WindowValue::Count => v.count,
        };
        let Some(value) = value.filter(|x| x.is_finite()) else { return };
        // A partial window (a series that starts or stops inside it) would read as a dip.
        if rec.partial {
            return;
        }
        let ts = rec.end_ms;
        let key_fp = Fingerprint(rec.fingerprint.as_u64() ^ (ri as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let score = match self.registry.update(key_fp, ts, value) {
            Ok(s) => s,
            Err(_) => {
                self.errors += 1;
                return;
            }
        };
        self.scored += 1;
        let rule_name = rule.name.clone();
        let state = self.keys.entry((ri, key_fp)).or_default();
        let labels = state
            .score_labels
            .get_or_insert_with(|| {
                let mut b = LabelsBuilder::new();
                for l in rec.labels.iter() {
                    if &*l.name != METRIC_NAME {
                        b.push(&l.name, &l.value);
                    }
                }
                b.set(METRIC_NAME, ANOMALY_SCORE_METRIC);
                b.set("metric", &rec.metric);
                b.set("rule", &rule_name);
                b.build().unwrap_or_else(|_| rec.labels.clone())
            })
            .clone();
        out.push(ScorePoint { labels, timestamp_ms: ts, value: score.normalized.abs() });
        track(state, &score, &rule_name, rec, (self.suppression_ms, self.run_ms), &mut self.closed);
        if score.is_anomaly {
            self.flagged += 1;
        }
    }

    /// Every event, closed ones first, then the ones still open.
    pub(crate) fn events(&self) -> Vec<AnomalyRecord> {
        let mut v = self.closed.clone();
        v.extend(self.keys.values().filter_map(|k| k.open.clone()));
        v
    }
}

fn track(
    state: &mut KeyState,
    score: &Score,
    rule: &str,
    rec: &WindowRecord,
    (suppression_ms, run_ms): (i64, i64),
    closed: &mut Vec<AnomalyRecord>,
) {
    let ts = score.timestamp_ms;
    if state.open.as_ref().is_some_and(|e| ts.saturating_sub(e.end_ms) > suppression_ms)
        && let Some(e) = state.open.take()
    {
        closed.push(AnomalyRecord { open: false, ..e });
    }
    if !score.is_anomaly {
        return;
    }
    let abs = score.normalized.abs();
    match &mut state.open {
        Some(e) => {
            e.end_ms = ts;
            e.points = e.points.saturating_add(1);
            if abs > e.peak_score {
                e.peak_score = abs;
                e.peak_ms = ts;
                e.value = score.value;
                e.expected = score.expected;
                e.lower = score.lower;
                e.upper = score.upper;
            }
        }
        None => {
            state.open = Some(AnomalyRecord {
                rule: rule.to_string(),
                labels: rec.labels.clone(),
                start_ms: ts.saturating_sub(run_ms),
                end_ms: ts,
                peak_ms: ts,
                peak_score: abs,
                value: score.value,
                expected: score.expected,
                lower: score.lower,
                upper: score.upper,
                points: 1,
                open: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_into_matchers() {
        let m = parse_selector(r#"node_cpu_seconds_total{mode=~"user|idle",cpu!="1"}"#).unwrap();
        let l = Labels::from_pairs([("__name__", "node_cpu_seconds_total"), ("mode", "user"), ("cpu", "0")]).unwrap();
        assert!(matches_all(&m, &l));
        let l2 = Labels::from_pairs([("__name__", "node_cpu_seconds_total"), ("mode", "nice"), ("cpu", "0")]).unwrap();
        assert!(!matches_all(&m, &l2));
        assert!(parse_selector("rate(x[1m])").is_err());
        assert!(parse_selector("x{").is_err());
    }
}
