//! The storage hints the engine passes with every selection ([`SelectHints`]): recorded by a
//! [`Queryable`] wrapper around [`MemStorage`] and compared with what Prometheus's
//! `populateSeries` (`promql/engine.go`) would pass, and, end to end, a query over rollup
//! blocks of a [`telemetry_store::Db`] older than raw retention, which only hints can reach.
//!
//! Start and end: the engine selects `[t − range + 1, t]` (windows are left-open, so the
//! sample at `t − range` is never used), where Prometheus's hints say `t − range`; the
//! expectations below are the engine's, 1 ms later than Prometheus's start.

use std::sync::Mutex;

use telemetry_core::{Labels, Matcher, MemStorage, Querier, Queryable, SelectHints, SeriesSet, StorageError};
use telemetry_query::{Engine, Value};

const S: i64 = 1_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const DAY: i64 = 24 * H;

/// Records the hints of every `select`, and answers from a [`MemStorage`].
struct Recording {
    inner: MemStorage,
    seen: Mutex<Vec<SelectHints>>,
}

struct RecordingQuerier<'a> {
    inner: Box<dyn Querier + 'a>,
    seen: &'a Mutex<Vec<SelectHints>>,
}

impl Queryable for Recording {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(RecordingQuerier { inner: self.inner.querier(mint, maxt)?, seen: &self.seen }))
    }
}

impl Querier for RecordingQuerier<'_> {
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet<'_>, StorageError> {
        self.seen.lock().unwrap().push(hints.clone());
        self.inner.select(hints, matchers)
    }
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_names(matchers)
    }
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_values(name, matchers)
    }
}

/// Two series of `x` and one of `y`, a sample every 15 s over the first 4 hours.
fn storage() -> Recording {
    let inner = MemStorage::new();
    let series = [
        Labels::from_pairs([("__name__", "x"), ("job", "a"), ("instance", "1")]).unwrap(),
        Labels::from_pairs([("__name__", "x"), ("job", "b"), ("instance", "2")]).unwrap(),
        Labels::from_pairs([("__name__", "y"), ("job", "a"), ("instance", "1")]).unwrap(),
    ];
    for (k, l) in series.iter().enumerate() {
        for i in 0..=(4 * H / (15 * S)) {
            inner.append(l, i * 15 * S, (i * (k as i64 + 1)) as f64);
        }
    }
    Recording { inner, seen: Mutex::new(Vec::new()) }
}

/// The hints of every selection of `query` as a range query over `[start, end]` (step > 0)
/// or an instant query at `start` (step 0); checks that the results equal those over the
/// bare [`MemStorage`] (which ignores hints).
fn hints_of(query: &str, start: i64, end: i64, step: i64) -> Vec<SelectHints> {
    let db = storage();
    let e = Engine::default();
    let (got, direct) = if step == 0 {
        (e.instant_query(&db, query, start).unwrap(), e.instant_query(&db.inner, query, start).unwrap())
    } else {
        (
            e.range_query(&db, query, start, end, step).unwrap(),
            e.range_query(&db.inner, query, start, end, step).unwrap(),
        )
    };
    assert_eq!(format!("{:?}", got.value), format!("{:?}", direct.value), "{query}");
    db.seen.into_inner().unwrap()
}

/// Expected hints with the given fields, the rest default (no grouping, `by` false).
fn hint(start_ms: i64, end_ms: i64, step_ms: i64, range_ms: i64, func: Option<&str>) -> SelectHints {
    SelectHints { start_ms, end_ms, step_ms, range_ms, func: func.map(str::to_string), ..SelectHints::default() }
}

const START: i64 = 2 * H;
const END: i64 = 3 * H;

#[test]
fn rate_in_a_range_query() {
    let got = hints_of("rate(x[5m])", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 5 * M, Some("rate"))]);
}

#[test]
fn max_over_time_in_a_range_query() {
    let got = hints_of("max_over_time(x[1h])", START, END, M);
    assert_eq!(got, vec![hint(START - H + 1, END, M, H, Some("max_over_time"))]);
}

#[test]
fn plain_selector_has_no_function_and_no_range() {
    // Start: the 5-minute lookback delta before the first step.
    let got = hints_of("x", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 0, None)]);
    let got = hints_of(r#"x{job="a"} offset 10m"#, START, END, M);
    assert_eq!(got, vec![hint(START - 15 * M + 1, END - 10 * M, M, 0, None)]);
}

#[test]
fn instant_query_has_step_zero() {
    let got = hints_of("rate(x[5m])", END, END, 0);
    assert_eq!(got, vec![hint(END - 5 * M + 1, END, 0, 5 * M, Some("rate"))]);
    let got = hints_of("x", END, END, 0);
    assert_eq!(got, vec![hint(END - 5 * M + 1, END, 0, 0, None)]);
}

#[test]
fn aggregation_grouping() {
    let by_job = |func: Option<&str>, range: i64, start: i64| SelectHints {
        grouping: vec!["job".into()],
        by: true,
        ..hint(start, END, M, range, func)
    };
    let got = hints_of("sum by (job) (rate(x[5m]))", START, END, M);
    assert_eq!(got, vec![by_job(Some("rate"), 5 * M, START - 5 * M + 1)]);
    let got = hints_of("max by (job) (x)", START, END, M);
    assert_eq!(got, vec![by_job(None, 0, START - 5 * M + 1)]);
    // Parentheses do not count.
    let got = hints_of("sum by (job) ((rate((x[5m]))))", START, END, M);
    assert_eq!(got, vec![by_job(Some("rate"), 5 * M, START - 5 * M + 1)]);

    // `without`: by is false; no modifier: by with no labels.
    let got = hints_of("sum without (instance) (x)", START, END, M);
    assert_eq!(
        got,
        vec![SelectHints { grouping: vec!["instance".into()], by: false, ..hint(START - 5 * M + 1, END, M, 0, None) }]
    );
    let got = hints_of("count(x)", START, END, M);
    assert_eq!(got, vec![SelectHints { by: true, ..hint(START - 5 * M + 1, END, M, 0, None) }]);

    // Not directly fed to the aggregation: behind an operator, or two calls deep.
    let got = hints_of("sum by (job) (rate(x[5m]) * 2)", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 5 * M, Some("rate"))]);
    let got = hints_of("sum by (job) (abs(rate(x[5m])))", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 5 * M, Some("rate"))]);
    let got = hints_of("sum by (job) (abs(x))", START, END, M);
    assert_eq!(got, vec![by_job(Some("abs"), 0, START - 5 * M + 1)]);
    // topk's parameter is not grouped.
    let got = hints_of(r#"topk by (job) (scalar(y{job="a"}), x)"#, START, END, M);
    assert_eq!(got, vec![by_job(None, 0, START - 5 * M + 1), hint(START - 5 * M + 1, END, M, 0, Some("scalar"))]);
}

#[test]
fn quantile_over_time_passes_a_constant_phi() {
    let q = |phi: Option<f64>| SelectHints {
        quantile: phi,
        ..hint(START - 10 * M + 1, END, M, 10 * M, Some("quantile_over_time"))
    };
    assert_eq!(hints_of("quantile_over_time(0.9, x[10m])", START, END, M), vec![q(Some(0.9))]);
    assert_eq!(hints_of("quantile_over_time((0.25), x[10m])", START, END, M), vec![q(Some(0.25))]);
    // A scalar expression that is one constant over all steps counts.
    assert_eq!(hints_of("quantile_over_time(1 - 0.05, x[10m])", START, END, M), vec![q(Some(0.95))]);
    // One that varies does not.
    assert_eq!(hints_of("quantile_over_time(time() / 1e6, x[10m])", START, END, M), vec![q(None)]);
    // Other functions have none.
    assert_eq!(hints_of("max_over_time(x[10m])", START, END, M)[0].quantile, None);
    // φ from a selection: that selection is scalar()'s argument and gets no quantile.
    let got = hints_of(r#"quantile_over_time(scalar(y{job="a"}) / 10000, x[10m])"#, START, END, M);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], hint(START - 5 * M + 1, END, M, 0, Some("scalar")));
    assert_eq!(got[1].func.as_deref(), Some("quantile_over_time"));
    assert_eq!(got[1].quantile, None);
}

#[test]
fn subquery_selectors_get_the_subquery_step() {
    // Instant query at END = 3 h: the subquery's steps are the multiples of 1 m in (2 h, 3 h].
    let got = hints_of("max_over_time(rate(x[5m])[1h:1m])", END, END, 0);
    assert_eq!(got, vec![hint(END - H + M - 5 * M + 1, END, M, 5 * M, Some("rate"))]);
    // The selector is not max_over_time's argument (the subquery is): no function.
    let got = hints_of("max_over_time(x[1h:1m])", END, END, 0);
    assert_eq!(got, vec![hint(END - H + M - 5 * M + 1, END, M, 0, None)]);
    // In a range query too, and nested: the innermost subquery's step.
    let got = hints_of("max_over_time(rate(x[5m])[1h:30s])", START, END, M);
    assert_eq!(got, vec![hint(START - H + 30 * S - 5 * M + 1, END, 30 * S, 5 * M, Some("rate"))]);
    let got = hints_of("max_over_time(avg_over_time(x[10m:10s])[30m:2m])", END, END, 0);
    let first = END - 30 * M + 2 * M; // first outer subquery step
    assert_eq!(got, vec![hint(first - 10 * M + 10 * S - 5 * M + 1, END, 10 * S, 0, None)]);
    // A subquery without a step uses the default (1 m).
    let got = hints_of("max_over_time(rate(x[5m])[1h:])", END, END, 0);
    assert_eq!(got[0].step_ms, M);
}

#[test]
fn operators_and_other_functions() {
    let got = hints_of("rate(x[5m]) / on (job, instance) rate(y[5m])", START, END, M);
    let r = hint(START - 5 * M + 1, END, M, 5 * M, Some("rate"));
    assert_eq!(got, vec![r.clone(), r]);
    let got = hints_of("abs(-x)", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 0, None)]);
    let got = hints_of("timestamp(x)", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 0, Some("timestamp"))]);
    let got = hints_of("x[5m]", END, END, 0);
    assert_eq!(got, vec![hint(END - 5 * M + 1, END, 0, 5 * M, None)]);
    let got = hints_of("absent_over_time(nonexistent[5m])", START, END, M);
    assert_eq!(got, vec![hint(START - 5 * M + 1, END, M, 5 * M, Some("absent_over_time"))]);
}

/// Rollup blocks older than raw retention, read through a `Db`: the hints route
/// `max_over_time(x[1h])` at a 1-hour step to the 1-hour tier. Without them (step and range
/// 0) the `Db` reads raw data only, and finds none there.
#[test]
fn max_over_time_reads_the_hour_tier_of_a_db() {
    use telemetry_store::block::{Aggr, BlockCompaction, BlockWriter};
    use telemetry_store::db::{Db, DbOptions};

    let tmp = tempfile::tempdir().unwrap();
    let opts = DbOptions::default();
    let tier = opts.tiers.tiers[1];
    assert_eq!(tier.resolution_ms, H);
    // One block of the default 1-hour tier (28 days), in June 2025: long past raw retention.
    let a = 723 * tier.block_range_ms;
    let b = a + tier.block_range_ms;
    let ts: Vec<i64> = (a..b).step_by(H as usize).collect();
    let max_of = |series: usize, t: i64| ((t - a) / H) as f64 * 0.5 + series as f64 * 1000.0 + ((t / H) % 7) as f64;
    let blocks_dir = tmp.path().join("blocks");
    let mut w = BlockWriter::new(&blocks_dir, H).unwrap();
    for series in 0..3usize {
        let labels = Labels::from_pairs([("__name__", "old_gauge"), ("series", &series.to_string())]).unwrap();
        let max: Vec<f64> = ts.iter().map(|&t| max_of(series, t)).collect();
        let min: Vec<f64> = max.iter().map(|v| v - 3.0).collect();
        let count = vec![360.0; ts.len()];
        let sum: Vec<f64> = max.iter().map(|v| (v - 1.5) * 360.0).collect();
        let counter = vec![0.0; ts.len()];
        w.add_series(
            &labels,
            &[
                (Aggr::Count, &ts, &count),
                (Aggr::Sum, &ts, &sum),
                (Aggr::Min, &ts, &min),
                (Aggr::Max, &ts, &max),
                (Aggr::Counter, &ts, &counter),
            ],
        )
        .unwrap();
    }
    w.finish(a, b, BlockCompaction::default()).unwrap();
    let (db, _) = Db::open(tmp.path(), opts).unwrap();
    assert_eq!(db.blocks().len(), 1);

    let (start, end) = (a + 5 * DAY, a + 12 * DAY);
    let res = Engine::default().range_query(&db, "max_over_time(old_gauge[1h])", start, end, H).unwrap();
    let Value::Matrix(m) = res.value else { panic!("not a matrix: {:?}", res.value) };
    assert_eq!(m.len(), 3, "one result series per stored series");
    for (series, s) in m.iter().enumerate() {
        assert_eq!(s.labels.get("series"), Some(series.to_string().as_str()));
        let want: Vec<(i64, f64)> = (start..=end).step_by(H as usize).map(|t| (t, max_of(series, t))).collect();
        let got: Vec<(i64, f64)> = s.samples.iter().map(|x| (x.timestamp_ms, x.value)).collect();
        assert_eq!(got, want, "series {series}");
    }
    // And the minimum from the min aggregate.
    let res = Engine::default().instant_query(&db, r#"min_over_time(old_gauge{series="1"}[1h])"#, start).unwrap();
    let Value::Vector(v) = res.value else { panic!("not a vector") };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, max_of(1, start) - 3.0);
    // Raw reads (a plain selector in an instant query) find nothing there.
    let res = Engine::default().instant_query(&db, "old_gauge", start).unwrap();
    assert!(matches!(&res.value, Value::Vector(v) if v.is_empty()), "{:?}", res.value);
}
