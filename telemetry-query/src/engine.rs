//! The evaluator: instant and range queries over any [`Queryable`].
//!
//! Every expression is evaluated once over all the steps of the query (`start`, `start + step`,
//! ..., `end`; a single step for an instant query), series by series. Instant-vector values are
//! kept series-major (`labels`, then `(step index, value)` points), so that selectors, range
//! functions and aggregations stream through each series' samples once; operators that must see
//! a whole vector at one time (binary operators, `topk`, `histogram_quantile`, ...) regroup the
//! points by step. Semantics follow Prometheus 3 (`promql/engine.go`): left-open lookback and
//! range windows, stale markers ending a series, delayed `__name__` removal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{T_BOTTOMK, T_LIMIT_RATIO, T_LIMITK, T_TOPK};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr, VectorMatchCardinality,
    VectorSelector,
};
use telemetry_core::{Label, Labels, MatchOp, Matcher, Queryable, SampleBatch, SelectHints, is_stale_nan};

use crate::api::format_value;
use crate::error::QueryError;
use crate::functions as f;
use crate::value::{MatrixSeries, QueryResult, Value, VectorSample};

/// Engine limits and defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus `--query.lookback-delta`),
    /// ms. Default 5 minutes.
    pub lookback_delta_ms: i64,
    /// Maximum samples one query may load from storage. Default 50,000,000.
    pub max_samples: usize,
    /// Maximum points per series a range query may return. Default 11,000.
    pub max_points_per_series: u64,
    /// Wall-clock limit of one query. Default 2 minutes.
    pub timeout: Option<Duration>,
    /// Step of a subquery written without one (`[5m:]`), ms. Default 1 minute.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            timeout: Some(Duration::from_secs(120)),
            default_subquery_step_ms: 60_000,
        }
    }
}

/// A PromQL engine. Stateless apart from its options; share it freely.
///
/// ```
/// use telemetry_core::{Labels, MemStorage};
/// use telemetry_query::{Engine, Value};
///
/// let db = MemStorage::new();
/// let s = Labels::from_pairs([("__name__", "requests_total"), ("job", "api")])?;
/// for i in 0..10 {
///     db.append(&s, i * 15_000, (i * 30) as f64);
/// }
/// let res = Engine::default().instant_query(&db, "rate(requests_total[1m])", 135_000)?;
/// let Value::Vector(v) = res.value else { unreachable!() };
/// assert!((v[0].value - 2.0).abs() < 1e-9);
/// assert_eq!(v[0].labels.to_string(), r#"{job="api"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Parses a query with `promql-parser`, mapping its error to [`QueryError::Parse`].
///
/// # Errors
/// [`QueryError::Parse`] with the parser's message.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    check_duration_numbers(query)?;
    // promql-parser 0.11 panics on some out-of-range input (found by fuzzing); keep that a
    // typed error for callers that unwind.
    match std::panic::catch_unwind(|| promql_parser::parser::parse(query)) {
        Ok(r) => r.map_err(QueryError::Parse),
        Err(_) => Err(QueryError::Parse("the parser failed on this input".into())),
    }
}

/// Rejects numbers used as durations (inside `[...]` or after `offset`) that no duration can
/// hold: `promql-parser` converts them with `Duration::from_secs_f64`, which panics.
fn check_duration_numbers(query: &str) -> Result<(), QueryError> {
    let too_big = |tok: &str| tok.parse::<f64>().is_ok_and(|v| !v.is_finite() || v.abs() > 1e12);
    let mut depth = 0i32;
    let mut after_offset = false;
    let is_tok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_';
    let mut it = query.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '"' | '\'' | '`' => {
                // Skip string literals.
                let mut esc = false;
                for (_, d) in it.by_ref() {
                    if esc {
                        esc = false;
                    } else if d == '\\' && c != '`' {
                        esc = true;
                    } else if d == c {
                        break;
                    }
                }
            }
            _ if is_tok(c) => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = it.peek() {
                    if !is_tok(d) && !((d == '+' || d == '-') && query[..j].ends_with(['e', 'E'])) {
                        break;
                    }
                    end = j + d.len_utf8();
                    it.next();
                }
                let tok = &query[i..end];
                if (depth > 0 || after_offset) && too_big(tok) {
                    return Err(QueryError::Parse(format!("duration out of range: {tok}")));
                }
                after_offset = tok.eq_ignore_ascii_case("offset");
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() && c != '-' && c != '+' {
            after_offset = false;
        }
    }
    Ok(())
}

impl Engine {
    /// An engine with `opts`.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// The options in force.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    ///
    /// # Errors
    /// A [`QueryError`]; [`QueryError::error_type`] gives the API error type.
    pub fn instant_query(&self, storage: &dyn Queryable, query: &str, time_ms: i64) -> Result<QueryResult, QueryError> {
        self.instant_query_with_cancel(storage, query, time_ms, None)
    }

    /// As [`instant_query`](Self::instant_query), stopping with [`QueryError::Canceled`] once
    /// `cancel` becomes `true`.
    ///
    /// # Errors
    /// As [`instant_query`](Self::instant_query).
    pub fn instant_query_with_cancel(
        &self,
        storage: &dyn Queryable,
        query: &str,
        time_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse(query)?;
        self.eval_inner(storage, &expr, query, time_ms, time_ms, 0, cancel)
    }

    /// Evaluates `query` at `start_ms`, `start_ms + step_ms`, ..., up to `end_ms`.
    ///
    /// # Errors
    /// [`QueryError::BadData`] for a non-positive step, `end < start`, or an expression that is
    /// not a scalar or instant vector; [`QueryError::TooManyPoints`] past
    /// [`EngineOptions::max_points_per_series`]; otherwise as [`instant_query`](Self::instant_query).
    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.range_query_with_cancel(storage, query, start_ms, end_ms, step_ms, None)
    }

    /// As [`range_query`](Self::range_query), with cancellation.
    ///
    /// # Errors
    /// As [`range_query`](Self::range_query).
    pub fn range_query_with_cancel(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::bad("zero or negative query resolution step widths are not accepted"));
        }
        if end_ms < start_ms {
            return Err(QueryError::bad("end timestamp must not be before start time"));
        }
        let points = ((end_ms as i128 - start_ms as i128) / step_ms as i128 + 1) as u64;
        if points > self.opts.max_points_per_series {
            return Err(QueryError::TooManyPoints { points, max: self.opts.max_points_per_series });
        }
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            t => {
                return Err(QueryError::bad(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(t)
                )));
            }
        }
        self.eval_inner(storage, &expr, query, start_ms, end_ms, step_ms, cancel)
    }

    /// Evaluates a parsed expression; `step_ms == 0` means an instant query at `start_ms`.
    ///
    /// # Errors
    /// As [`range_query`](Self::range_query).
    pub fn eval_expr(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, QueryError> {
        self.eval_inner(storage, expr, "", start_ms, end_ms, step_ms, cancel)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_inner(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        text: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, QueryError> {
        check_supported(expr)?;
        let mut ev = Ev {
            storage,
            opts: &self.opts,
            qstart: start_ms,
            qend: end_ms,
            deadline: self.opts.timeout.map(|t| Instant::now() + t),
            cancel,
            loaded: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
            text,
            step_hint: step_ms,
            site: Site::default(),
        };
        let instant = step_ms == 0;
        if !instant {
            for f in ["sort_by_label_desc", "sort_by_label", "sort_desc", "sort"] {
                if let Some(pos) = call_position(text, f) {
                    ev.warn(format!(
                        "PromQL warning: sort is ineffective for range queries since results are always ordered by labels{pos}"
                    ));
                    break;
                }
            }
        }
        let st = if instant { Steps::new(start_ms, start_ms, 1) } else { Steps::new(start_ms, end_ms, step_ms) };
        let val = ev.eval(expr, &st)?;
        let value = match val {
            Val::Scalar(v) => {
                if instant {
                    Value::Scalar { timestamp_ms: start_ms, value: v.first().copied().unwrap_or(f64::NAN) }
                } else {
                    let samples =
                        v.iter().enumerate().map(|(i, &x)| telemetry_core::Sample::new(st.ts(i), x)).collect();
                    Value::Matrix(vec![MatrixSeries { labels: Labels::empty(), samples }])
                }
            }
            Val::Str(s) => Value::String { timestamp_ms: start_ms, value: s },
            Val::Vector(series) => {
                if instant {
                    let mut out = Vec::with_capacity(series.len());
                    for s in series {
                        for &(_, v) in &s.pts {
                            let labels = if s.drop_name { drop_metadata(&s.labels) } else { s.labels.clone() };
                            out.push(VectorSample { labels, timestamp_ms: start_ms, value: v });
                        }
                    }
                    check_unique(out.iter().map(|s| &s.labels))?;
                    Value::Vector(out)
                } else {
                    let mats = series
                        .into_iter()
                        .map(|s| MatrixSeries {
                            labels: if s.drop_name { drop_metadata(&s.labels) } else { s.labels },
                            samples: s
                                .pts
                                .iter()
                                .map(|&(i, v)| telemetry_core::Sample::new(st.ts(i as usize), v))
                                .collect(),
                        })
                        .collect();
                    Value::Matrix(merge_same_labels(mats)?)
                }
            }
            Val::Matrix(raws) => {
                let mats = raws
                    .into_iter()
                    .map(|r| MatrixSeries {
                        labels: if r.drop_name { drop_metadata(&r.labels) } else { r.labels },
                        samples: r.ts.iter().zip(&r.vs).map(|(&t, &v)| telemetry_core::Sample::new(t, v)).collect(),
                    })
                    .collect();
                Value::Matrix(merge_same_labels(mats)?)
            }
        };
        Ok(QueryResult { value, warnings: ev.warnings, infos: ev.infos, samples_loaded: ev.loaded })
    }
}

/// Finds the first call `name(` in `text` (as a whole word) and returns the byte offset of
/// the name and of the opening parenthesis.
fn find_call(text: &str, name: &str) -> Option<(usize, usize)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut from = 0;
    while let Some(p) = text[from..].find(name) {
        let s = from + p;
        let e = s + name.len();
        let before_ok = text[..s].chars().next_back().is_none_or(|c| !is_word(c));
        let rest = &text[e..];
        let trimmed = rest.trim_start();
        if before_ok && trimmed.starts_with('(') {
            return Some((s, e + (rest.len() - trimmed.len())));
        }
        from = s + 1;
    }
    None
}

/// ` (line:col)` of byte offset `off` in `text`, as Prometheus prints positions.
fn position_suffix(text: &str, off: usize) -> String {
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |p| before[p + 1..].chars().count()) + 1;
    format!(" ({line}:{col})")
}

/// Position of the call `name(...)` itself.
fn call_position(text: &str, name: &str) -> Option<String> {
    find_call(text, name).map(|(s, _)| position_suffix(text, s))
}

/// Position of argument `idx` (0-based) of the first call `name(...)`; empty when not found.
fn arg_position(text: &str, name: &str, idx: usize) -> String {
    let Some((_, open)) = find_call(text, name) else { return String::new() };
    let b = text.as_bytes();
    let mut i = open + 1;
    let mut arg = 0;
    let mut depth = 0i32;
    let mut start = None;
    while i < b.len() {
        let c = b[i];
        if start.is_none() && !c.is_ascii_whitespace() && arg == idx {
            start = Some(i);
            break;
        }
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            b',' if depth == 0 => arg += 1,
            _ => {}
        }
        i += 1;
    }
    start.map(|s| position_suffix(text, s)).unwrap_or_default()
}

/// Labels as Go's `labels.Labels.String()` writes them: `{__name__="m", a="b"}`.
fn go_labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|x| format!("{}={:?}", x.name, &*x.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

const NATIVE_HISTOGRAM_FUNCS: &[&str] = &[
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_quantiles",
];

/// Rejects what the engine does not implement, before touching storage.
fn check_supported(e: &Expr) -> Result<(), QueryError> {
    match e {
        Expr::Aggregate(a) => {
            check_supported(&a.expr)?;
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            Ok(())
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => check_supported(&s.expr),
        Expr::Call(c) => {
            if NATIVE_HISTOGRAM_FUNCS.contains(&c.func.name) {
                return Err(QueryError::bad(format!(
                    "unsupported: function {}() works on native histograms, which this engine does not support",
                    c.func.name
                )));
            }
            if c.func.name == "info" {
                return Err(QueryError::bad("unsupported: function info() is experimental and not implemented"));
            }
            for a in &c.args.args {
                check_supported(a)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(QueryError::bad("unsupported: extension expressions")),
        _ => Ok(()),
    }
}

/// Drops `__name__` and the metadata labels `__type__` / `__unit__`.
fn drop_metadata(l: &Labels) -> Labels {
    l.without(&["__name__", "__type__", "__unit__"])
}

fn check_unique<'a>(labels: impl Iterator<Item = &'a Labels>) -> Result<(), QueryError> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}

/// Sorts a matrix by labels and merges series whose label sets became equal (after name
/// removal); overlapping timestamps are the labelset collision error.
fn merge_same_labels(mut mats: Vec<MatrixSeries>) -> Result<Vec<MatrixSeries>, QueryError> {
    mats.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<MatrixSeries> = Vec::with_capacity(mats.len());
    for m in mats {
        match out.last_mut() {
            Some(last) if last.labels == m.labels => {
                last.samples.extend(m.samples);
                last.samples.sort_by_key(|s| s.timestamp_ms);
                if last.samples.windows(2).any(|w| w[0].timestamp_ms == w[1].timestamp_ms) {
                    return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
                }
            }
            _ => out.push(m),
        }
    }
    Ok(out)
}

/// The evaluation times of one (sub)query.
#[derive(Debug, Clone, Copy)]
struct Steps {
    start: i64,
    step: i64,
    n: usize,
}

impl Steps {
    fn new(start: i64, end: i64, step: i64) -> Self {
        let n = if end < start {
            0
        } else {
            ((end as i128 - start as i128) / step as i128 + 1).min(usize::MAX as i128) as usize
        };
        Steps { start, step, n }
    }
    #[inline]
    fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// An instant-vector series over the steps: sorted `(step index, value)` points.
#[derive(Debug, Clone)]
struct Sp {
    labels: Labels,
    drop_name: bool,
    pts: Vec<(u32, f64)>,
}

/// Raw samples of one series (range vectors).
#[derive(Debug, Clone)]
struct Raw {
    labels: Labels,
    drop_name: bool,
    ts: Vec<i64>,
    vs: Vec<f64>,
}

enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<Sp>),
    Matrix(Vec<Raw>),
}

/// A range-vector argument: series plus, per outer step, the window end (`refs`).
struct RangeIn {
    series: Vec<Raw>,
    range: i64,
    refs: Vec<i64>,
}

impl RangeIn {
    /// Calls `f(step, ts, vs)` for every step whose window `(ref - range, ref]` holds samples.
    fn for_windows(&self, raw: &Raw, mut f: impl FnMut(usize, &[i64], &[f64])) {
        self.for_windows_at(raw, |i, lo, ts, vs| {
            let _ = lo;
            f(i, ts, vs)
        });
    }

    /// As [`for_windows`](Self::for_windows), also passing the window's first index in `raw`.
    fn for_windows_at(&self, raw: &Raw, mut f: impl FnMut(usize, usize, &[i64], &[f64])) {
        let (mut lo, mut hi) = (0usize, 0usize);
        let n = raw.ts.len();
        for (i, &r) in self.refs.iter().enumerate() {
            if i > 0 && r < self.refs[i - 1] {
                lo = 0;
                hi = 0;
            }
            while hi < n && raw.ts[hi] <= r {
                hi += 1;
            }
            let left = r.saturating_sub(self.range);
            while lo < hi && raw.ts[lo] <= left {
                lo += 1;
            }
            if lo < hi {
                f(i, lo, &raw.ts[lo..hi], &raw.vs[lo..hi]);
            }
        }
    }
}

struct Ev<'a> {
    storage: &'a dyn Queryable,
    opts: &'a EngineOptions,
    qstart: i64,
    qend: i64,
    deadline: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
    loaded: u64,
    warnings: Vec<String>,
    infos: Vec<String>,
    /// The query text, for annotation positions (empty when evaluating a parsed expression).
    text: &'a str,
    /// [`SelectHints::step_ms`] of the selectors being evaluated: the query's step (0 for an
    /// instant query), inside a subquery the subquery's step.
    step_hint: i64,
    /// Where a selector evaluated now sits (see [`Site`]).
    site: Site,
}

/// The syntactic place of the expression being evaluated, as far as storage hints need it:
/// what a selector evaluated here is *directly* the argument of (parentheses do not count,
/// and a range selector `x[r]` passes its place on to `x`).
///
/// Every node that is neither a parenthesis nor a selector sets the place of its own
/// arguments: a function call sets `func` and keeps `grouping` when the call itself is the
/// direct argument of an aggregation; an aggregation sets `grouping`; binary and unary
/// operators and subqueries clear everything (the function then applies to their result, not
/// to the selection).
#[derive(Debug, Clone, Default)]
struct Site {
    /// The function call the selector is an argument of.
    func: Option<&'static str>,
    /// `quantile_over_time`'s φ when it is one constant over all steps.
    quantile: Option<f64>,
    /// `(by, labels)` of the aggregation the selector, or the function call around it, feeds.
    grouping: Option<std::sync::Arc<(bool, Vec<String>)>>,
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
    }
}

/// A duration in ms, saturating at `i64::MAX`.
fn dur_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => dur_ms(&d),
        Err(e) => -dur_ms(&e.duration()),
    }
}

fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn convert_matchers(ms: &[promql_parser::label::Matcher], name: &Option<String>) -> Result<Vec<Matcher>, QueryError> {
    let mut out = Vec::with_capacity(ms.len() + 1);
    if let Some(n) = name {
        out.push(Matcher::equal("__name__", n.clone()));
    }
    for m in ms {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::RegexMatch,
            PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::bad(e.to_string()))?);
    }
    Ok(out)
}

/// Labels built from arbitrary pairs: sorted, last value wins, empty values dropped.
fn labels_from(mut pairs: Vec<Label>) -> Labels {
    pairs.retain(|l| !l.value.is_empty());
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    pairs.dedup_by(|later, earlier| {
        if later.name == earlier.name {
            earlier.value = later.value.clone();
            true
        } else {
            false
        }
    });
    Labels::from_sorted_unchecked(pairs)
}

fn set_label(l: &Labels, name: &str, value: &str) -> Labels {
    let mut pairs: Vec<Label> = l.iter().filter(|x| &*x.name != name).cloned().collect();
    pairs.push(Label::new(name, value));
    labels_from(pairs)
}

/// Collects output points keyed by labels, rejecting two points for one label set at one step.
struct Collector {
    index: HashMap<Labels, usize>,
    out: Vec<Sp>,
}

impl Collector {
    fn new() -> Self {
        Collector { index: HashMap::new(), out: Vec::new() }
    }
    fn add(&mut self, labels: Labels, drop_name: bool, step: u32, v: f64) -> Result<(), QueryError> {
        let idx = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.out.push(Sp { labels: labels.clone(), drop_name, pts: Vec::new() });
                self.index.insert(labels, self.out.len() - 1);
                self.out.len() - 1
            }
        };
        let s = &mut self.out[idx];
        if let Some(&(last, _)) = s.pts.last()
            && last == step
        {
            return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
        }
        s.pts.push((step, v));
        Ok(())
    }
    fn finish(mut self) -> Vec<Sp> {
        for s in &mut self.out {
            if s.pts.windows(2).any(|w| w[0].0 > w[1].0) {
                s.pts.sort_by_key(|p| p.0);
            }
        }
        self.out
    }
}

/// Regroups series-major points by step: `by_step[i]` lists `(series index, value)`.
fn by_step(series: &[Sp], n: usize) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (si, s) in series.iter().enumerate() {
        for &(i, v) in &s.pts {
            out[i as usize].push((si, v));
        }
    }
    out
}

/// `float64` to `int64` as Go converts on amd64 (out of range and NaN give `i64::MIN`).
fn go_f64_to_i64(v: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) { i64::MIN } else { v as i64 }
}

impl<'a> Ev<'a> {
    fn check(&self) -> Result<(), QueryError> {
        if let Some(c) = self.cancel
            && c.load(Ordering::Relaxed)
        {
            return Err(QueryError::Canceled("expression evaluation"));
        }
        if let Some(d) = self.deadline
            && Instant::now() > d
        {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    fn count_loaded(&mut self, n: usize) -> Result<(), QueryError> {
        self.loaded += n as u64;
        if self.loaded > self.opts.max_samples as u64 {
            return Err(QueryError::TooManySamples { limit: self.opts.max_samples });
        }
        Ok(())
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.qstart),
            Some(AtModifier::End) => Some(self.qend),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// Runs `f` with the selector place `site`, restoring the current one afterwards (also
    /// when `f` fails).
    fn with_site<T>(&mut self, site: Site, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.site, site);
        let out = f(self);
        self.site = saved;
        out
    }

    /// The storage hints of a selection over `[mint, maxt]` by a selector at the current
    /// [`Site`], with range `range_ms` (0 for an instant selector). Follows Prometheus's
    /// `populateSeries` (`promql/engine.go`) for the step and range; `func` and the grouping
    /// are those of the call or aggregation the selector is directly the argument of (see
    /// [`Site`]), where Prometheus also looks through subqueries and unary minus for `func`,
    /// names aggregations as `func`, and sets the grouping only when the selector itself is the
    /// aggregation's argument.
    fn hints(&self, mint: i64, maxt: i64, range_ms: i64) -> SelectHints {
        let (by, grouping) = match &self.site.grouping {
            Some(g) => (g.0, g.1.clone()),
            None => (false, Vec::new()),
        };
        SelectHints {
            start_ms: mint,
            end_ms: maxt,
            step_ms: self.step_hint,
            range_ms,
            func: self.site.func.map(str::to_string),
            quantile: if range_ms > 0 { self.site.quantile } else { None },
            grouping,
            by,
        }
    }

    /// Loads the raw samples of the series `vs` selects in `[mint, maxt]`; `range_ms` is the
    /// range of the range selector `vs` belongs to (0 for an instant selector), for the
    /// storage hints.
    fn select_raw(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        range_ms: i64,
        drop_stale: bool,
    ) -> Result<Vec<Raw>, QueryError> {
        self.check()?;
        let mut groups = vec![convert_matchers(&vs.matchers.matchers, &vs.name)?];
        for g in &vs.matchers.or_matchers {
            groups.push(convert_matchers(g, &vs.name)?);
        }
        if groups.len() > 1 {
            groups.retain(|g| !g.is_empty());
        }
        let q = self.storage.querier(mint, maxt)?;
        let hints = self.hints(mint, maxt, range_ms);
        let mut out: Vec<Raw> = Vec::new();
        let mut batch = SampleBatch::default();
        for matchers in &groups {
            for s in q.select(&hints, matchers)? {
                let mut s = s?;
                if groups.len() > 1 && out.iter().any(|r| r.labels == s.labels) {
                    continue;
                }
                let mut raw = Raw { labels: s.labels, drop_name: false, ts: Vec::new(), vs: Vec::new() };
                while s.samples.next_batch(&mut batch)? {
                    self.count_loaded(batch.len())?;
                    let stale = drop_stale && batch.values.iter().any(|v| is_stale_nan(*v));
                    if raw.ts.is_empty() && !stale {
                        // The first batch is taken as it is, not copied: a source that hands
                        // over a series in one batch (the store's rollup reads) costs no copy.
                        std::mem::swap(&mut raw.ts, &mut batch.timestamps);
                        std::mem::swap(&mut raw.vs, &mut batch.values);
                    } else if stale {
                        for (&t, &v) in batch.timestamps.iter().zip(&batch.values) {
                            if !is_stale_nan(v) {
                                raw.ts.push(t);
                                raw.vs.push(v);
                            }
                        }
                    } else {
                        raw.ts.extend_from_slice(&batch.timestamps);
                        raw.vs.extend_from_slice(&batch.values);
                    }
                }
                out.push(raw);
            }
        }
        if groups.len() > 1 {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }

    /// An instant selector over the steps. With `timestamps`, values are the samples'
    /// timestamps in seconds (for `timestamp()`).
    fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        st: &Steps,
        timestamps: bool,
    ) -> Result<Vec<Sp>, QueryError> {
        if st.n == 0 {
            return Ok(Vec::new());
        }
        let off = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let refs: Vec<i64> = (0..st.n).map(|i| at.unwrap_or(st.ts(i)).saturating_sub(off)).collect();
        let lb = self.opts.lookback_delta_ms;
        let (rmin, rmax) = (refs[0], refs[st.n - 1]);
        let raws = self.select_raw(vs, rmin.saturating_sub(lb).saturating_add(1), rmax, 0, false)?;
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            let mut pts = Vec::new();
            let mut hi = 0usize;
            for (i, &r) in refs.iter().enumerate() {
                while hi < raw.ts.len() && raw.ts[hi] <= r {
                    hi += 1;
                }
                if hi == 0 {
                    continue;
                }
                let j = hi - 1;
                if raw.ts[j] <= r.saturating_sub(lb) || is_stale_nan(raw.vs[j]) {
                    continue;
                }
                let v = if timestamps { raw.ts[j] as f64 / 1000.0 } else { raw.vs[j] };
                pts.push((i as u32, v));
            }
            if !pts.is_empty() {
                out.push(Sp { labels: raw.labels, drop_name: false, pts });
            }
        }
        Ok(out)
    }

    /// Evaluates a range-vector expression (matrix selector or subquery) for every step.
    fn eval_range_arg(&mut self, e: &Expr, st: &Steps) -> Result<RangeIn, QueryError> {
        match unwrap_parens(e) {
            Expr::MatrixSelector(ms) => {
                let range = dur_ms(&ms.range);
                let off = offset_ms(&ms.vs.offset);
                let at = self.at_ms(&ms.vs.at);
                let refs: Vec<i64> = (0..st.n).map(|i| at.unwrap_or(st.ts(i)).saturating_sub(off)).collect();
                if refs.is_empty() {
                    return Ok(RangeIn { series: Vec::new(), range, refs });
                }
                let series = self.select_raw(
                    &ms.vs,
                    refs[0].saturating_sub(range).saturating_add(1),
                    refs[refs.len() - 1],
                    range,
                    true,
                )?;
                Ok(RangeIn { series, range, refs })
            }
            Expr::Subquery(sq) => self.eval_subquery(sq, st),
            other => Err(QueryError::bad(format!("expected a range vector, got {other}"))),
        }
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr, st: &Steps) -> Result<RangeIn, QueryError> {
        let range = dur_ms(&sq.range);
        let off = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let step = match sq.step {
            Some(s) if !s.is_zero() => dur_ms(&s),
            _ => self.opts.default_subquery_step_ms,
        };
        if step <= 0 {
            return Err(QueryError::bad("subquery step must be positive"));
        }
        let refs: Vec<i64> = (0..st.n).map(|i| at.unwrap_or(st.ts(i)).saturating_sub(off)).collect();
        let (pstart, pend) = match at {
            Some(t) => (t, t),
            None => (st.ts(0), st.ts(st.n.saturating_sub(1))),
        };
        let end = pend.saturating_sub(off);
        let base = pstart.saturating_sub(off).saturating_sub(range);
        let mut start = step * (base / step);
        if start <= base {
            start = start.saturating_add(step);
        }
        let inner = Steps::new(start, end, step);
        if inner.n as u64 > self.opts.max_samples as u64 {
            return Err(QueryError::TooManySamples { limit: self.opts.max_samples });
        }
        let saved_step = std::mem::replace(&mut self.step_hint, step);
        let val = self.with_site(Site::default(), |ev| ev.eval(&sq.expr, &inner));
        self.step_hint = saved_step;
        let series = match val? {
            Val::Vector(v) => v
                .into_iter()
                .map(|s| Raw {
                    labels: s.labels,
                    drop_name: s.drop_name,
                    ts: s.pts.iter().map(|&(i, _)| inner.ts(i as usize)).collect(),
                    vs: s.pts.iter().map(|&(_, v)| v).collect(),
                })
                .collect(),
            Val::Scalar(v) => vec![Raw {
                labels: Labels::empty(),
                drop_name: false,
                ts: (0..inner.n).map(|i| inner.ts(i)).collect(),
                vs: v,
            }],
            _ => return Err(QueryError::bad("subquery is only allowed on instant vector or scalar")),
        };
        Ok(RangeIn { series, range, refs })
    }

    fn eval_scalar(&mut self, e: &Expr, st: &Steps) -> Result<Vec<f64>, QueryError> {
        match self.eval(e, st)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(QueryError::bad(format!("expected scalar argument, got {e}"))),
        }
    }

    fn eval_vector(&mut self, e: &Expr, st: &Steps) -> Result<Vec<Sp>, QueryError> {
        match self.eval(e, st)? {
            Val::Vector(v) => Ok(v),
            _ => Err(QueryError::bad(format!("expected instant vector argument, got {e}"))),
        }
    }

    fn eval_string(&mut self, e: &Expr) -> Result<String, QueryError> {
        match unwrap_parens(e) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            other => Err(QueryError::bad(format!("expected string literal, got {other}"))),
        }
    }

    fn eval(&mut self, e: &Expr, st: &Steps) -> Result<Val, QueryError> {
        self.check()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; st.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, st),
            Expr::Unary(u) => match self.with_site(Site::default(), |ev| ev.eval(&u.expr, st))? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(mut v) => {
                    for s in &mut v {
                        s.drop_name = true;
                        for p in &mut s.pts {
                            p.1 = -p.1;
                        }
                    }
                    Ok(Val::Vector(v))
                }
                _ => Err(QueryError::bad("unary minus needs a scalar or instant vector")),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, st, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let r = self.eval_range_arg(e, st)?;
                // Only an instant evaluation can return a range vector; use the first step.
                let mut out = Vec::new();
                for raw in &r.series {
                    let mut got: Option<Raw> = None;
                    r.for_windows(raw, |i, ts, vs| {
                        if i == 0 {
                            got = Some(Raw {
                                labels: raw.labels.clone(),
                                drop_name: raw.drop_name,
                                ts: ts.to_vec(),
                                vs: vs.to_vec(),
                            });
                        }
                    });
                    if let Some(g) = got {
                        out.push(g);
                    }
                }
                Ok(Val::Matrix(out))
            }
            Expr::Aggregate(a) => self.eval_aggregate(a, st),
            Expr::Binary(b) => self.with_site(Site::default(), |ev| ev.eval_binary(b, st)),
            Expr::Call(c) => {
                // A call that is itself the direct argument of an aggregation passes the
                // grouping on to its own arguments (one level only).
                let grouping = if self.site.func.is_none() { self.site.grouping.clone() } else { None };
                self.with_site(Site { func: Some(c.func.name), quantile: None, grouping }, |ev| ev.eval_call(c, st))
            }
            Expr::Extension(_) => Err(QueryError::bad("unsupported: extension expressions")),
        }
    }

    // ---------------------------------------------------------------- aggregations

    fn eval_aggregate(&mut self, a: &AggregateExpr, st: &Steps) -> Result<Val, QueryError> {
        let op = a.op.to_string();
        let (by, grouping): (bool, Vec<String>) = match &a.modifier {
            None => (true, Vec::new()),
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        };
        let site = Site { func: None, quantile: None, grouping: Some(std::sync::Arc::new((by, grouping.clone()))) };
        let input = self.with_site(site, |ev| ev.eval_vector(&a.expr, st))?;
        let group_labels = |l: &Labels| -> Labels {
            if by {
                Labels::from_sorted_unchecked(l.iter().filter(|x| grouping.iter().any(|g| **g == *x.name)).cloned())
            } else {
                Labels::from_sorted_unchecked(
                    l.iter().filter(|x| &*x.name != "__name__" && !grouping.iter().any(|g| **g == *x.name)).cloned(),
                )
            }
        };
        if op == "count_values" {
            let label = match &a.param {
                Some(p) => self.eval_string(p)?,
                None => return Err(QueryError::bad("count_values needs a label name")),
            };
            let grouping_cv: Vec<String> = if by {
                grouping.iter().cloned().chain(std::iter::once(label.clone())).collect()
            } else {
                grouping.clone()
            };
            let group_labels = |l: &Labels| -> Labels {
                if by {
                    Labels::from_sorted_unchecked(
                        l.iter().filter(|x| grouping_cv.iter().any(|g| **g == *x.name)).cloned(),
                    )
                } else {
                    Labels::from_sorted_unchecked(
                        l.iter()
                            .filter(|x| &*x.name != "__name__" && !grouping_cv.iter().any(|g| **g == *x.name))
                            .cloned(),
                    )
                }
            };
            if label.is_empty() || !telemetry_core::labels::is_valid_label_name(&label) {
                return Err(QueryError::exec(format!("invalid label name {label:?}")));
            }
            let steps = by_step(&input, st.n);
            let mut col = Collector::new();
            for (i, step) in steps.iter().enumerate() {
                let mut counts: Vec<(Labels, f64)> = Vec::new();
                let mut idx: HashMap<Labels, usize> = HashMap::new();
                for &(si, v) in step {
                    let l = set_label(&input[si].labels, &label, &format_value(v));
                    let g = group_labels(&l);
                    match idx.get(&g) {
                        Some(&k) => counts[k].1 += 1.0,
                        None => {
                            idx.insert(g.clone(), counts.len());
                            counts.push((g, 1.0));
                        }
                    }
                }
                for (g, c) in counts {
                    col.add(g, false, i as u32, c)?;
                }
            }
            return Ok(Val::Vector(col.finish()));
        }
        let param: Option<Vec<f64>> = match &a.param {
            Some(p) if op != "count_values" => Some(self.with_site(Site::default(), |ev| ev.eval_scalar(p, st))?),
            _ => None,
        };
        // Group index per input series, in order of first appearance.
        let mut gindex: HashMap<Labels, usize> = HashMap::new();
        let mut glabels: Vec<Labels> = Vec::new();
        let mut series_group = Vec::with_capacity(input.len());
        for s in &input {
            let g = group_labels(&s.labels);
            let gi = match gindex.get(&g) {
                Some(&gi) => gi,
                None => {
                    glabels.push(g.clone());
                    gindex.insert(g, glabels.len() - 1);
                    glabels.len() - 1
                }
            };
            series_group.push(gi);
        }
        let tok = a.op.id();
        if tok == T_TOPK || tok == T_BOTTOMK || tok == T_LIMITK || tok == T_LIMIT_RATIO {
            let Some(param) = param else {
                return Err(QueryError::bad(format!("{op} needs a parameter")));
            };
            return self.eval_k_aggregate(tok, &op, &input, &series_group, glabels.len(), &param, st);
        }
        let ng = glabels.len();
        let n = st.n;
        #[derive(Clone, Copy, Default)]
        struct Acc {
            seen: bool,
            value: f64,
            c: f64,
            mean: f64,
            count: f64,
            incremental: bool,
            drop_name: bool,
        }
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Agg {
            Sum,
            Avg,
            Max,
            Min,
            Count,
            Group,
            Stddev,
            Stdvar,
            Quantile,
        }
        let agg = match op.as_str() {
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "max" => Agg::Max,
            "min" => Agg::Min,
            "count" => Agg::Count,
            "group" => Agg::Group,
            "stddev" => Agg::Stddev,
            "stdvar" => Agg::Stdvar,
            "quantile" => Agg::Quantile,
            other => return Err(QueryError::bad(format!("unsupported aggregation {other}"))),
        };
        let mut acc = vec![Acc::default(); ng * n];
        let mut qvals: Vec<Vec<f64>> = if agg == Agg::Quantile { vec![Vec::new(); ng * n] } else { Vec::new() };
        for (si, s) in input.iter().enumerate() {
            let g = series_group[si];
            let base = g * n;
            for &(i, fv) in &s.pts {
                let k = base + i as usize;
                let a = &mut acc[k];
                if !a.seen {
                    *a = Acc {
                        seen: true,
                        value: fv,
                        c: 0.0,
                        mean: fv,
                        count: 1.0,
                        incremental: false,
                        drop_name: s.drop_name,
                    };
                    match agg {
                        Agg::Stddev | Agg::Stdvar => {
                            a.value = if fv.is_nan() || fv.is_infinite() { f64::NAN } else { 0.0 }
                        }
                        Agg::Group => a.value = 1.0,
                        Agg::Quantile => qvals[k].push(fv),
                        _ => {}
                    }
                    continue;
                }
                if s.drop_name {
                    a.drop_name = true;
                }
                match agg {
                    Agg::Sum => (a.value, a.c) = f::kahan_inc(fv, a.value, a.c),
                    Agg::Avg => {
                        a.count += 1.0;
                        if !a.incremental {
                            let (nv, nc) = f::kahan_inc(fv, a.value, a.c);
                            if !nv.is_infinite() {
                                a.value = nv;
                                a.c = nc;
                                continue;
                            }
                            a.incremental = true;
                            a.mean = a.value / (a.count - 1.0);
                            a.c /= a.count - 1.0;
                        }
                        let q = (a.count - 1.0) / a.count;
                        (a.mean, a.c) = f::kahan_inc(fv / a.count, q * a.mean, q * a.c);
                    }
                    Agg::Max => {
                        if a.value < fv || a.value.is_nan() {
                            a.value = fv;
                        }
                    }
                    Agg::Min => {
                        if a.value > fv || a.value.is_nan() {
                            a.value = fv;
                        }
                    }
                    Agg::Count => a.count += 1.0,
                    Agg::Group => {}
                    Agg::Stddev | Agg::Stdvar => {
                        a.count += 1.0;
                        let delta = fv - a.mean;
                        a.mean += delta / a.count;
                        a.value += delta * (fv - a.mean);
                    }
                    Agg::Quantile => qvals[k].push(fv),
                }
            }
        }
        let mut out = Vec::with_capacity(ng);
        for (g, gl) in glabels.into_iter().enumerate() {
            let mut pts = Vec::new();
            let mut drop_name = false;
            for i in 0..n {
                let k = g * n + i;
                let a = acc[k];
                if !a.seen {
                    continue;
                }
                drop_name |= a.drop_name;
                let v = match agg {
                    Agg::Avg => {
                        if a.incremental {
                            a.mean + a.c
                        } else {
                            a.value / a.count + a.c / a.count
                        }
                    }
                    Agg::Sum => {
                        if a.value.is_infinite() {
                            a.value
                        } else {
                            a.value + a.c
                        }
                    }
                    Agg::Count => a.count,
                    Agg::Stdvar => a.value / a.count,
                    Agg::Stddev => (a.value / a.count).sqrt(),
                    Agg::Quantile => {
                        let q = param.as_ref().map_or(f64::NAN, |p| p[i]);
                        f::quantile(q, &mut qvals[k])
                    }
                    _ => a.value,
                };
                pts.push((i as u32, v));
            }
            if op == "quantile"
                && let Some(p) = &param
                && p.iter().any(|q| q.is_nan() || *q < 0.0 || *q > 1.0)
            {
                let q = p.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0).copied().unwrap_or(f64::NAN);
                self.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}{}",
                    format_value(q),
                    arg_position(self.text, "quantile", 0)
                ));
            }
            if !pts.is_empty() {
                out.push(Sp { labels: gl, drop_name, pts });
            }
        }
        Ok(Val::Vector(out))
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_k_aggregate(
        &mut self,
        tok: promql_parser::parser::token::TokenId,
        op: &str,
        input: &[Sp],
        series_group: &[usize],
        ng: usize,
        param: &[f64],
        st: &Steps,
    ) -> Result<Val, QueryError> {
        let steps = by_step(input, st.n);
        // Output keyed by input series index; order of first appearance.
        let mut out_index: HashMap<usize, usize> = HashMap::new();
        let mut out: Vec<Sp> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let fp = param[i];
            let mut groups: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ng];
            let mut order: Vec<usize> = Vec::new();
            if tok == T_LIMIT_RATIO {
                if fp.is_nan() {
                    return Err(QueryError::exec(format!("Ratio value is NaN in {op}")));
                }
                let r = fp.clamp(-1.0, 1.0);
                if r == 0.0 {
                    continue;
                }
                for &(si, v) in step {
                    let offset = ratio_sample_offset(&input[si].labels);
                    let keep = (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r);
                    if keep {
                        let g = series_group[si];
                        if groups[g].is_empty() {
                            order.push(g);
                        }
                        groups[g].push((si, v));
                    }
                }
            } else {
                if fp.is_nan() {
                    return Err(QueryError::exec(format!("Parameter value is NaN in {op}")));
                }
                let k = go_f64_to_i64(fp).min(input.len() as i64);
                if k < 1 {
                    continue;
                }
                let k = k as usize;
                for &(si, v) in step {
                    let g = series_group[si];
                    let h = &mut groups[g];
                    if h.is_empty() {
                        order.push(g);
                    }
                    if tok == T_LIMITK {
                        if h.len() < k {
                            h.push((si, v));
                        }
                        continue;
                    }
                    if h.len() < k {
                        h.push((si, v));
                        continue;
                    }
                    // Replace the current worst element, as the heap in Prometheus does.
                    let top = tok == T_TOPK;
                    let worst = (0..h.len())
                        .min_by(|&x, &y| {
                            let (a, b) = (h[x].1, h[y].1);
                            match (a.is_nan(), b.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Less,
                                (false, true) => std::cmp::Ordering::Greater,
                                _ => {
                                    if top {
                                        a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal) // ok: no NaN here
                                    } else {
                                        b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal) // ok: no NaN here
                                    }
                                }
                            }
                        })
                        .unwrap_or(0); // ok: h has k >= 1 elements
                    let wv = h[worst].1;
                    let better = if top { wv < v } else { wv > v };
                    if better || (wv.is_nan() && !v.is_nan()) {
                        h[worst] = (si, v);
                    }
                }
            }
            for g in order {
                let mut h = std::mem::take(&mut groups[g]);
                if tok == T_TOPK || tok == T_BOTTOMK {
                    let top = tok == T_TOPK;
                    h.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => {
                            let o = a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal); // ok: no NaN
                            if top { o.reverse() } else { o }
                        }
                    });
                }
                for (si, v) in h {
                    let oi = *out_index.entry(si).or_insert_with(|| {
                        out.push(Sp {
                            labels: input[si].labels.clone(),
                            drop_name: input[si].drop_name,
                            pts: Vec::new(),
                        });
                        out.len() - 1
                    });
                    out[oi].pts.push((i as u32, v));
                }
            }
        }
        Ok(Val::Vector(out))
    }

    // ---------------------------------------------------------------- binary operators

    fn eval_binary(&mut self, b: &BinaryExpr, st: &Steps) -> Result<Val, QueryError> {
        let op = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, st)?;
        let rhs = self.eval(&b.rhs, st)?;
        let is_cmp = matches!(op.as_str(), "==" | "!=" | ">" | "<" | ">=" | "<=");
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let v = l
                    .iter()
                    .zip(&r)
                    .map(|(&x, &y)| {
                        if is_cmp {
                            let (_, keep) = arith(&op, x, y);
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            arith(&op, x, y).0
                        }
                    })
                    .collect();
                Ok(Val::Scalar(v))
            }
            (Val::Vector(mut v), Val::Scalar(s)) | (Val::Scalar(s), Val::Vector(mut v)) => {
                let swap = matches!(unwrap_value_type(&b.lhs), ValueType::Scalar);
                let changes = !is_cmp;
                for series in &mut v {
                    let mut kept = Vec::with_capacity(series.pts.len());
                    for &(i, x) in &series.pts {
                        let sv = s[i as usize];
                        let (l, r) = if swap { (sv, x) } else { (x, sv) };
                        let (mut res, keep) = arith(&op, l, r);
                        if is_cmp && swap {
                            res = r;
                        }
                        if return_bool {
                            kept.push((i, if keep { 1.0 } else { 0.0 }));
                        } else if keep {
                            kept.push((i, res));
                        }
                    }
                    series.pts = kept;
                    if changes || return_bool {
                        series.drop_name = true;
                    }
                }
                v.retain(|s| !s.pts.is_empty());
                Ok(Val::Vector(v))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let out = match op.as_str() {
                    "and" | "or" | "unless" => self.set_op(&op, b, l, r, st)?,
                    _ => self.vector_binop(&op, b, l, r, st, return_bool, is_cmp)?,
                };
                Ok(Val::Vector(out))
            }
            _ => Err(QueryError::bad(format!("binary operator {op} needs scalar or instant vector operands"))),
        }
    }

    /// The matching signature of every series on both sides, as dense ids (equal signatures get
    /// equal ids), and how many distinct signatures there are.
    fn intern_signatures(b: &BinaryExpr, l: &[Sp], r: &[Sp]) -> (Vec<u32>, Vec<u32>, usize) {
        let sig = Self::signature_fn(b);
        let mut ord: HashMap<Labels, u32> = HashMap::new();
        let mut sig_of = |lab: &Labels| {
            let s = sig(lab);
            let next = ord.len() as u32;
            *ord.entry(s).or_insert(next)
        };
        let lsig: Vec<u32> = l.iter().map(|s| sig_of(&s.labels)).collect();
        let rsig: Vec<u32> = r.iter().map(|s| sig_of(&s.labels)).collect();
        (lsig, rsig, ord.len())
    }

    fn signature_fn(b: &BinaryExpr) -> impl Fn(&Labels) -> Labels + '_ {
        let (on, names): (bool, Vec<String>) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        move |l: &Labels| {
            if on {
                Labels::from_sorted_unchecked(l.iter().filter(|x| names.iter().any(|n| **n == *x.name)).cloned())
            } else {
                Labels::from_sorted_unchecked(
                    l.iter().filter(|x| &*x.name != "__name__" && !names.iter().any(|n| **n == *x.name)).cloned(),
                )
            }
        }
    }

    fn set_op(&mut self, op: &str, b: &BinaryExpr, l: Vec<Sp>, r: Vec<Sp>, st: &Steps) -> Result<Vec<Sp>, QueryError> {
        let (lsig, rsig, nsig) = Self::intern_signatures(b, &l, &r);
        let lsteps = by_step(&l, st.n);
        let rsteps = by_step(&r, st.n);
        let mut present = vec![false; nsig];
        let mut out_l: Vec<Vec<(u32, f64)>> = vec![Vec::new(); l.len()];
        let mut out_r: Vec<Vec<(u32, f64)>> = vec![Vec::new(); r.len()];
        for i in 0..st.n {
            match op {
                "and" | "unless" => {
                    for &(ri, _) in &rsteps[i] {
                        present[rsig[ri] as usize] = true;
                    }
                    for &(li, v) in &lsteps[i] {
                        if present[lsig[li] as usize] == (op == "and") {
                            out_l[li].push((i as u32, v));
                        }
                    }
                    for &(ri, _) in &rsteps[i] {
                        present[rsig[ri] as usize] = false;
                    }
                }
                _ => {
                    for &(li, v) in &lsteps[i] {
                        present[lsig[li] as usize] = true;
                        out_l[li].push((i as u32, v));
                    }
                    for &(ri, v) in &rsteps[i] {
                        if !present[rsig[ri] as usize] {
                            out_r[ri].push((i as u32, v));
                        }
                    }
                    for &(li, _) in &lsteps[i] {
                        present[lsig[li] as usize] = false;
                    }
                }
            }
        }
        let mut col = Collector::new();
        for (s, pts) in l.into_iter().zip(out_l).chain(r.into_iter().zip(out_r)) {
            for (i, v) in pts {
                col.add(s.labels.clone(), s.drop_name, i, v)?;
            }
        }
        Ok(col.finish())
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_binop(
        &mut self,
        op: &str,
        b: &BinaryExpr,
        l: Vec<Sp>,
        r: Vec<Sp>,
        st: &Steps,
        return_bool: bool,
        is_cmp: bool,
    ) -> Result<Vec<Sp>, QueryError> {
        let card = b.modifier.as_ref().map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
        let (on, names): (bool, Vec<String>) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(x)) => (true, x.labels.clone()),
            Some(LabelModifier::Exclude(x)) => (false, x.labels.clone()),
            None => (false, Vec::new()),
        };
        let include: Vec<String> = match &card {
            VectorMatchCardinality::ManyToOne(x) | VectorMatchCardinality::OneToMany(x) => x.labels.clone(),
            _ => Vec::new(),
        };
        let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        // After the swap for group_right, `ls` is the "many" side.
        let (ls, rs) = if one_to_many { (r, l) } else { (l, r) };
        let (lsig, rsig, nsig) = Self::intern_signatures(b, &ls, &rs);
        let sig = Self::signature_fn(b);
        let lsteps = by_step(&ls, st.n);
        let rsteps = by_step(&rs, st.n);
        let mut right: Vec<Option<(usize, f64)>> = vec![None; nsig];
        let mut matched: Vec<bool> = vec![false; nsig];
        let mut matched_sets: Vec<Vec<Labels>> = if one_to_one { Vec::new() } else { vec![Vec::new(); nsig] };
        let mut metric_cache: HashMap<(usize, usize), Labels> = HashMap::new();
        let changes_schema = !is_cmp;
        let mut col = Collector::new();
        let fill = b.modifier.as_ref().map(|m| m.fill_values.clone()).unwrap_or_default();
        // As in Prometheus, the fills are not swapped with the sides for group_right.
        let (fill_ls, fill_rs) = (fill.lhs, fill.rhs);
        for i in 0..st.n {
            if (lsteps[i].is_empty() || rsteps[i].is_empty()) && fill_ls.is_none() && fill_rs.is_none() {
                continue;
            }
            for &(ri, v) in &rsteps[i] {
                let sg = rsig[ri] as usize;
                if let Some((prev, _)) = right[sg] {
                    let side = if one_to_many { "left" } else { "right" };
                    let matched_labels = go_labels_string(&sig(&rs[ri].labels));
                    let (mut d1, mut d2) = (go_labels_string(&rs[ri].labels), go_labels_string(&rs[prev].labels));
                    if d1 > d2 {
                        std::mem::swap(&mut d1, &mut d2);
                    }
                    return Err(QueryError::exec(format!(
                        "found duplicate series for the match group {matched_labels} on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not allowed: matching labels must be unique on one side"
                    )));
                }
                right[sg] = Some((ri, v));
            }
            // Left-hand candidates: real samples, then (with a fill for the left side)
            // placeholders for right samples nothing matched.
            let mut pairs: Vec<(Side, Side)> = Vec::new();
            for &(li, lv) in &lsteps[i] {
                let sg = lsig[li] as usize;
                match right[sg] {
                    Some((ri, rv)) => pairs.push((Side::Real(li, lv), Side::Real(ri, rv))),
                    None => {
                        if let Some(fv) = fill_rs {
                            pairs.push((Side::Real(li, lv), Side::Fill(sig(&ls[li].labels), fv)));
                        }
                    }
                }
            }
            if let Some(fv) = fill_ls {
                let mut seen = vec![false; nsig];
                for &(li, _) in &lsteps[i] {
                    seen[lsig[li] as usize] = true;
                }
                for &(ri, rv) in &rsteps[i] {
                    if !seen[rsig[ri] as usize] {
                        pairs.push((Side::Fill(sig(&rs[ri].labels), fv), Side::Real(ri, rv)));
                    }
                }
            }
            for (lside, rside) in pairs {
                let (lv, rv) = (lside.value(), rside.value());
                let sg = match (&lside, &rside) {
                    (Side::Real(li, _), _) => lsig[*li] as usize,
                    (_, Side::Real(ri, _)) => rsig[*ri] as usize,
                    _ => continue,
                };
                let (fl, fr) = if one_to_many { (rv, lv) } else { (lv, rv) };
                let (mut value, keep) = arith(op, fl, fr);
                if is_cmp && !return_bool {
                    value = fl;
                }
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                }
                let metric = match (&lside, &rside) {
                    (Side::Real(li, _), Side::Real(ri, _)) => metric_cache
                        .entry((*li, *ri))
                        .or_insert_with(|| {
                            result_metric(
                                &ls[*li].labels,
                                &rs[*ri].labels,
                                changes_schema,
                                one_to_one,
                                on,
                                &names,
                                &include,
                            )
                        })
                        .clone(),
                    (Side::Real(li, _), Side::Fill(fl, _)) => {
                        result_metric(&ls[*li].labels, fl, changes_schema, one_to_one, on, &names, &include)
                    }
                    (Side::Fill(fl, _), Side::Real(ri, _)) => {
                        result_metric(fl, &rs[*ri].labels, changes_schema, one_to_one, on, &names, &include)
                    }
                    _ => continue,
                };
                if one_to_one {
                    if matched[sg] {
                        return Err(QueryError::exec(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                    matched[sg] = true;
                } else {
                    if matched_sets[sg].contains(&metric) {
                        return Err(QueryError::exec(
                            "multiple matches for labels: grouping labels must ensure unique matches",
                        ));
                    }
                    matched_sets[sg].push(metric.clone());
                }
                if !keep && !return_bool {
                    continue;
                }
                col.add(metric, return_bool, i as u32, value)?;
            }
            for &(ri, _) in &rsteps[i] {
                right[rsig[ri] as usize] = None;
            }
            for sg in lsteps[i].iter().map(|&(li, _)| lsig[li]).chain(rsteps[i].iter().map(|&(ri, _)| rsig[ri])) {
                let sg = sg as usize;
                matched[sg] = false;
                if !one_to_one {
                    matched_sets[sg].clear();
                }
            }
        }
        Ok(col.finish())
    }

    // ---------------------------------------------------------------- functions

    fn eval_call(&mut self, c: &Call, st: &Steps) -> Result<Val, QueryError> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
        let arg = |i: usize| -> Result<&Expr, QueryError> {
            args.get(i).copied().ok_or_else(|| QueryError::bad(format!("missing argument {} of {name}()", i + 1)))
        };
        match name {
            "time" => Ok(Val::Scalar((0..st.n).map(|i| st.ts(i) as f64 / 1000.0).collect())),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; st.n])),
            "vector" => {
                let v = self.eval_scalar(arg(0)?, st)?;
                let pts = v.into_iter().enumerate().map(|(i, x)| (i as u32, x)).collect();
                Ok(Val::Vector(vec![Sp { labels: Labels::empty(), drop_name: false, pts }]))
            }
            "scalar" => {
                let v = self.eval_vector(arg(0)?, st)?;
                let mut out = vec![f64::NAN; st.n];
                let mut count = vec![0u32; st.n];
                for s in &v {
                    for &(i, x) in &s.pts {
                        count[i as usize] += 1;
                        out[i as usize] = x;
                    }
                }
                for (o, c) in out.iter_mut().zip(count) {
                    if c != 1 {
                        *o = f64::NAN;
                    }
                }
                Ok(Val::Scalar(out))
            }
            "timestamp" => {
                let a = unwrap_parens(arg(0)?);
                let mut v = match a {
                    Expr::VectorSelector(vs) => self.eval_vector_selector(vs, st, true)?,
                    other => {
                        let mut v = self.eval_vector(other, st)?;
                        for s in &mut v {
                            for p in &mut s.pts {
                                p.1 = st.ts(p.0 as usize) as f64 / 1000.0;
                            }
                        }
                        v
                    }
                };
                for s in &mut v {
                    s.drop_name = true;
                }
                Ok(Val::Vector(v))
            }
            "abs" | "ceil" | "floor" | "sqrt" | "exp" | "ln" | "log2" | "log10" | "sgn" | "sin" | "cos" | "tan"
            | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh" | "atanh" | "deg" | "rad" => {
                let func: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "sqrt" => f64::sqrt,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    "log10" => f64::log10,
                    "sgn" => |v: f64| {
                        if v < 0.0 {
                            -1.0
                        } else if v > 0.0 {
                            1.0
                        } else {
                            v
                        }
                    },
                    "sin" => f64::sin,
                    "cos" => f64::cos,
                    "tan" => f64::tan,
                    "asin" => f64::asin,
                    "acos" => f64::acos,
                    "atan" => f64::atan,
                    "sinh" => f64::sinh,
                    "cosh" => f64::cosh,
                    "tanh" => f64::tanh,
                    "asinh" => f64::asinh,
                    "acosh" => f64::acosh,
                    "atanh" => f64::atanh,
                    "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
                    _ => |v: f64| v * std::f64::consts::PI / 180.0,
                };
                let mut v = self.eval_vector(arg(0)?, st)?;
                map_values(&mut v, |_, x| Some(func(x)));
                Ok(Val::Vector(v))
            }
            "round" => {
                let mut v = self.eval_vector(arg(0)?, st)?;
                let to = match args.get(1) {
                    Some(e) => self.eval_scalar(e, st)?,
                    None => vec![1.0; st.n],
                };
                map_values(&mut v, |i, x| {
                    let inv = 1.0 / to[i];
                    Some((x * inv + 0.5).floor() / inv)
                });
                Ok(Val::Vector(v))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut v = self.eval_vector(arg(0)?, st)?;
                let (lo, hi) = match name {
                    "clamp" => (self.eval_scalar(arg(1)?, st)?, self.eval_scalar(arg(2)?, st)?),
                    "clamp_min" => (self.eval_scalar(arg(1)?, st)?, vec![f64::INFINITY; st.n]),
                    _ => (vec![f64::NEG_INFINITY; st.n], self.eval_scalar(arg(1)?, st)?),
                };
                map_values(&mut v, |i, x| if hi[i] < lo[i] { None } else { Some(go_max(lo[i], go_min(hi[i], x))) });
                Ok(Val::Vector(v))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
                if args.is_empty() {
                    let pts = (0..st.n).map(|i| (i as u32, f::date_part(name, st.ts(i).div_euclid(1000)))).collect();
                    return Ok(Val::Vector(vec![Sp { labels: Labels::empty(), drop_name: false, pts }]));
                }
                let mut v = self.eval_vector(arg(0)?, st)?;
                map_values(&mut v, |_, x| Some(f::date_part(name, go_f64_to_i64(x))));
                Ok(Val::Vector(v))
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(arg(0)?, st)?;
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    let (x, y) = (a.pts.first().map_or(f64::NAN, |p| p.1), b.pts.first().map_or(f64::NAN, |p| p.1));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => {
                            let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal); // ok: no NaN
                            if desc { o.reverse() } else { o }
                        }
                    }
                });
                Ok(Val::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut v = self.eval_vector(arg(0)?, st)?;
                let mut names = Vec::new();
                for e in &args[1..] {
                    names.push(self.eval_string(e)?);
                }
                let desc = name == "sort_by_label_desc";
                v.sort_by(|a, b| {
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        if x == y {
                            continue;
                        }
                        let less = f::natural_less(x, y);
                        let o = if less { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater };
                        return if desc { o.reverse() } else { o };
                    }
                    let o = a.labels.cmp(&b.labels);
                    if desc { o.reverse() } else { o }
                });
                Ok(Val::Vector(v))
            }
            "label_replace" => {
                let dst = self.eval_string(arg(1)?)?;
                let repl = self.eval_string(arg(2)?)?;
                let src = self.eval_string(arg(3)?)?;
                let re_str = self.eval_string(arg(4)?)?;
                let re = regex::Regex::new(&format!("^(?s:{re_str})$")).map_err(|_| {
                    QueryError::exec(format!("invalid regular expression in label_replace(): {re_str}"))
                })?;
                if dst.is_empty() {
                    return Err(QueryError::exec(format!("invalid destination label name in label_replace(): {dst}")));
                }
                let v = self.eval_vector(arg(0)?, st)?;
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    let sv = s.labels.get(&src).unwrap_or("").to_string();
                    if let Some(caps) = re.captures(&sv) {
                        let mut res = String::new();
                        caps.expand(&repl, &mut res);
                        s.labels = set_label(&s.labels, &dst, &res);
                        if dst == "__name__" {
                            s.drop_name = false;
                        }
                    }
                    out.push(s);
                }
                Ok(Val::Vector(merge_sp(out)?))
            }
            "label_join" => {
                let dst = self.eval_string(arg(1)?)?;
                let sep = self.eval_string(arg(2)?)?;
                let mut srcs = Vec::new();
                for e in args.iter().skip(3) {
                    srcs.push(self.eval_string(e)?);
                }
                if dst.is_empty() {
                    return Err(QueryError::exec(format!("invalid destination label name in label_join(): {dst}")));
                }
                let v = self.eval_vector(arg(0)?, st)?;
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                    let joined = joined.join(&sep);
                    s.labels = set_label(&s.labels, &dst, &joined);
                    if dst == "__name__" {
                        s.drop_name = false;
                    }
                    out.push(s);
                }
                Ok(Val::Vector(merge_sp(out)?))
            }
            "absent" => {
                let v = self.eval_vector(arg(0)?, st)?;
                let mut present = vec![false; st.n];
                for s in &v {
                    for &(i, _) in &s.pts {
                        present[i as usize] = true;
                    }
                }
                let pts: Vec<(u32, f64)> =
                    present.iter().enumerate().filter(|(_, p)| !**p).map(|(i, _)| (i as u32, 1.0)).collect();
                if pts.is_empty() {
                    return Ok(Val::Vector(Vec::new()));
                }
                Ok(Val::Vector(vec![Sp { labels: absent_labels(arg(0)?), drop_name: false, pts }]))
            }
            "absent_over_time" => {
                let r = self.eval_range_arg(arg(0)?, st)?;
                let mut present = vec![false; st.n];
                for raw in &r.series {
                    r.for_windows(raw, |i, _, _| present[i] = true);
                }
                let pts: Vec<(u32, f64)> =
                    present.iter().enumerate().filter(|(_, p)| !**p).map(|(i, _)| (i as u32, 1.0)).collect();
                if pts.is_empty() {
                    return Ok(Val::Vector(Vec::new()));
                }
                Ok(Val::Vector(vec![Sp { labels: absent_labels(arg(0)?), drop_name: false, pts }]))
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(0)?, st)?;
                if let Some(bad) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
                    self.warn(format!(
                        "PromQL warning: quantile value should be between 0 and 1, got {}{}",
                        format_value(*bad),
                        arg_position(self.text, "histogram_quantile", 0)
                    ));
                }
                let v = self.eval_vector(arg(1)?, st)?;
                self.classic_histogram(v, st, |i, b| {
                    let r = f::bucket_quantile(q[i], b);
                    (r.value, r.forced_monotonic)
                })
            }
            "histogram_fraction" => {
                let lo = self.eval_scalar(arg(0)?, st)?;
                let hi = self.eval_scalar(arg(1)?, st)?;
                let v = self.eval_vector(arg(2)?, st)?;
                self.classic_histogram(v, st, |i, b| (f::bucket_fraction(lo[i], hi[i], b), false))
            }
            _ => self.eval_range_function(name, &args, st),
        }
    }

    /// Groups classic `le` buckets per step and applies `func` to each group.
    fn classic_histogram(
        &mut self,
        v: Vec<Sp>,
        st: &Steps,
        func: impl Fn(usize, &mut Vec<f::Bucket>) -> (f64, bool),
    ) -> Result<Val, QueryError> {
        let mut gindex: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, Vec<Vec<f::Bucket>>)> = Vec::new();
        for s in &v {
            let le = s.labels.get("le").unwrap_or("");
            let Ok(ub) = parse_go_float(le) else {
                self.warn(format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"{le}\" for metric name \"{}\"",
                    s.labels.metric_name().unwrap_or("")
                ));
                continue;
            };
            let key = s.labels.without(&["le"]);
            let g = *gindex.entry(key.clone()).or_insert_with(|| {
                groups.push((key, vec![Vec::new(); st.n]));
                groups.len() - 1
            });
            for &(i, x) in &s.pts {
                groups[g].1[i as usize].push(f::Bucket { upper_bound: ub, count: x });
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        let mut forced_any: Option<String> = None;
        for (labels, mut per_step) in groups {
            let mut pts = Vec::new();
            for (i, b) in per_step.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let (val, forced) = func(i, b);
                if forced && forced_any.is_none() {
                    forced_any = Some(labels.metric_name().unwrap_or("").to_string());
                }
                pts.push((i as u32, val));
            }
            if !pts.is_empty() {
                out.push(Sp { labels, drop_name: true, pts });
            }
        }
        if let Some(m) = forced_any {
            let pos = arg_position(self.text, "histogram_quantile", 1);
            self.info(format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{m}\"{pos}"
            ));
        }
        Ok(Val::Vector(out))
    }

    fn eval_range_function(&mut self, name: &str, args: &[&Expr], st: &Steps) -> Result<Val, QueryError> {
        // Position of the range-vector argument and the scalar arguments.
        let (ri, scalar_idx): (usize, Vec<usize>) = match name {
            "quantile_over_time" => (1, vec![0]),
            "predict_linear" => (0, vec![1]),
            "double_exponential_smoothing" | "holt_winters" => (0, vec![1, 2]),
            _ => (0, vec![]),
        };
        let known = matches!(
            name,
            "rate"
                | "irate"
                | "increase"
                | "delta"
                | "idelta"
                | "deriv"
                | "predict_linear"
                | "resets"
                | "changes"
                | "avg_over_time"
                | "sum_over_time"
                | "min_over_time"
                | "max_over_time"
                | "count_over_time"
                | "last_over_time"
                | "first_over_time"
                | "present_over_time"
                | "stddev_over_time"
                | "stdvar_over_time"
                | "mad_over_time"
                | "quantile_over_time"
                | "double_exponential_smoothing"
                | "holt_winters"
                | "ts_of_max_over_time"
                | "ts_of_min_over_time"
                | "ts_of_last_over_time"
                | "ts_of_first_over_time"
        );
        if !known {
            return Err(QueryError::bad(format!("unsupported: function {name}()")));
        }
        let Some(range_expr) = args.get(ri) else {
            return Err(QueryError::bad(format!("missing range argument of {name}()")));
        };
        let mut scalars = Vec::new();
        for &i in &scalar_idx {
            match args.get(i) {
                Some(e) => scalars.push(self.eval_scalar(e, st)?),
                None => return Err(QueryError::bad(format!("missing argument {} of {name}()", i + 1))),
            }
        }
        if matches!(name, "double_exponential_smoothing" | "holt_winters") {
            for (k, what) in [(0, "smoothing"), (1, "trend")] {
                if let Some(bad) = scalars[k].iter().find(|x| **x <= 0.0 || **x >= 1.0 || x.is_nan()) {
                    let short = if k == 0 { "sf" } else { "tf" };
                    return Err(QueryError::exec(format!(
                        "invalid {what} factor. Expected: 0 < {short} < 1, got: {bad:.6}"
                    )));
                }
            }
        }
        if name == "quantile_over_time"
            && let Some(bad) = scalars[0].iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0)
        {
            self.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}{}",
                format_value(*bad),
                arg_position(self.text, "quantile_over_time", 0)
            ));
        }
        if name == "quantile_over_time" {
            // The hint for storage holding quantile sketches: φ when it is one constant.
            let phi = &scalars[0];
            self.site.quantile = phi.first().copied().filter(|q| !q.is_nan() && phi.iter().all(|x| x == q));
        }
        let r = self.eval_range_arg(range_expr, st)?;
        let keeps_name = matches!(name, "last_over_time" | "first_over_time");
        let range = r.range;
        let rf = match name {
            "rate" => RangeFn::Rate,
            "irate" => RangeFn::Irate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::AvgOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "first_over_time" => RangeFn::FirstOverTime,
            "present_over_time" => RangeFn::PresentOverTime,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "mad_over_time" => RangeFn::MadOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            "double_exponential_smoothing" => RangeFn::DoubleExponentialSmoothing,
            "ts_of_max_over_time" => RangeFn::TsOfMaxOverTime,
            "ts_of_min_over_time" => RangeFn::TsOfMinOverTime,
            "ts_of_last_over_time" => RangeFn::TsOfLastOverTime,
            "ts_of_first_over_time" => RangeFn::TsOfFirstOverTime,
            _ => RangeFn::DoubleExponentialSmoothing, // holt_winters, the old name
        };
        let mut out = Vec::with_capacity(r.series.len());
        for (n_checked, raw) in r.series.iter().enumerate() {
            if n_checked % 256 == 255 {
                self.check()?;
            }
            let mut pts: Vec<(u32, f64)> = Vec::new();
            // Prefix counts of counter resets, so that a window without one skips the
            // correction loop (the result is computed the same way either way).
            let resets: Vec<u32> = if matches!(rf, RangeFn::Rate | RangeFn::Increase) {
                let mut acc = 0u32;
                let mut v = Vec::with_capacity(raw.vs.len());
                for (k, x) in raw.vs.iter().enumerate() {
                    if k > 0 && *x < raw.vs[k - 1] {
                        acc += 1;
                    }
                    v.push(acc);
                }
                v
            } else {
                Vec::new()
            };
            r.for_windows_at(raw, |i, lo, ts, vs| {
                let end = r.refs[i];
                let start = end.saturating_sub(range);
                let v = match rf {
                    RangeFn::Rate | RangeFn::Increase => {
                        let has_reset = resets[lo + vs.len() - 1] != resets[lo];
                        f::extrapolated_rate(ts, vs, start, end, range, has_reset, rf == RangeFn::Rate, true)
                    }
                    RangeFn::Delta => f::extrapolated_rate(ts, vs, start, end, range, false, false, false),
                    RangeFn::Irate => f::instant_value(ts, vs, true),
                    RangeFn::Idelta => f::instant_value(ts, vs, false),
                    RangeFn::Deriv => (ts.len() >= 2).then(|| f::linear_regression(ts, vs, ts[0]).0),
                    RangeFn::PredictLinear => (ts.len() >= 2).then(|| {
                        let (slope, intercept) = f::linear_regression(ts, vs, st.ts(i));
                        slope * scalars[0][i] + intercept
                    }),
                    RangeFn::Resets => Some(vs.windows(2).filter(|w| w[1] < w[0]).count() as f64),
                    RangeFn::Changes => {
                        Some(vs.windows(2).filter(|w| !(w[1] == w[0] || (w[1].is_nan() && w[0].is_nan()))).count()
                            as f64)
                    }
                    RangeFn::AvgOverTime => Some(f::avg_over_time(vs)),
                    RangeFn::SumOverTime => Some(f::sum_over_time(vs)),
                    RangeFn::MinOverTime
                    | RangeFn::MaxOverTime
                    | RangeFn::TsOfMinOverTime
                    | RangeFn::TsOfMaxOverTime => {
                        let (mut best, mut best_t) = (vs[0], ts[0]);
                        for (&t, &x) in ts.iter().zip(vs) {
                            let take = match rf {
                                RangeFn::MaxOverTime => x > best || best.is_nan(),
                                RangeFn::MinOverTime => x < best || best.is_nan(),
                                RangeFn::TsOfMaxOverTime => x >= best || best.is_nan(),
                                _ => x <= best || best.is_nan(),
                            };
                            if take {
                                best = x;
                                best_t = t;
                            }
                        }
                        Some(if name.starts_with("ts_of") { best_t as f64 / 1000.0 } else { best })
                    }
                    RangeFn::CountOverTime => Some(vs.len() as f64),
                    RangeFn::LastOverTime => Some(vs[vs.len() - 1]),
                    RangeFn::FirstOverTime => Some(vs[0]),
                    RangeFn::TsOfLastOverTime => Some(ts[ts.len() - 1] as f64 / 1000.0),
                    RangeFn::TsOfFirstOverTime => Some(ts[0] as f64 / 1000.0),
                    RangeFn::PresentOverTime => Some(1.0),
                    RangeFn::StddevOverTime => Some(f::stdvar_over_time(vs).sqrt()),
                    RangeFn::StdvarOverTime => Some(f::stdvar_over_time(vs)),
                    RangeFn::MadOverTime => Some(f::mad(vs)),
                    RangeFn::QuantileOverTime => {
                        let mut v = vs.to_vec();
                        Some(f::quantile(scalars[0][i], &mut v))
                    }
                    _ => f::double_exponential_smoothing(vs, scalars[0][i], scalars[1][i]),
                };
                if let Some(v) = v {
                    pts.push((i as u32, v));
                }
            });
            if !pts.is_empty() {
                if matches!(name, "rate" | "increase")
                    && let Some(m) = raw.labels.metric_name()
                    && !(m.ends_with("_total")
                        || m.ends_with("_sum")
                        || m.ends_with("_count")
                        || m.ends_with("_bucket"))
                {
                    let pos = arg_position(self.text, name, 0);
                    self.info(format!(
                        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"{m}\"{pos}"
                    ));
                }
                out.push(Sp { labels: raw.labels.clone(), drop_name: !keeps_name || raw.drop_name, pts });
            }
        }
        Ok(Val::Vector(out))
    }
}

/// One operand of a vector-vector operation: a real sample (series index, value) or a fill
/// value standing in for a missing match (with the matching labels).
enum Side {
    Real(usize, f64),
    Fill(Labels, f64),
}

impl Side {
    fn value(&self) -> f64 {
        match self {
            Side::Real(_, v) | Side::Fill(_, v) => *v,
        }
    }
}

/// The range-vector functions, resolved once per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    CountOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    StddevOverTime,
    StdvarOverTime,
    MadOverTime,
    QuantileOverTime,
    DoubleExponentialSmoothing,
    TsOfMaxOverTime,
    TsOfMinOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
}

fn merge_sp(v: Vec<Sp>) -> Result<Vec<Sp>, QueryError> {
    let mut col = Collector::new();
    for s in v {
        for (i, x) in s.pts {
            col.add(s.labels.clone(), s.drop_name, i, x)?;
        }
    }
    Ok(col.finish())
}

fn map_values(v: &mut Vec<Sp>, f: impl Fn(usize, f64) -> Option<f64>) {
    for s in v.iter_mut() {
        s.drop_name = true;
        s.pts = s.pts.iter().filter_map(|&(i, x)| f(i as usize, x).map(|y| (i, y))).collect();
    }
    v.retain(|s| !s.pts.is_empty());
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Parses a float as Go's `strconv.ParseFloat` does for the forms label values use.
pub(crate) fn parse_go_float(s: &str) -> Result<f64, ()> {
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if lower == "nan" && t.len() == s.len() {
        return Ok(f64::NAN);
    }
    if s.is_empty() || lower.contains("inf") || lower.contains("nan") {
        return Err(());
    }
    s.parse::<f64>().map_err(|_| ())
}

fn unwrap_value_type(e: &Expr) -> ValueType {
    e.value_type()
}

/// The labels `absent()` gives its result: the selector's equality matchers.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            continue;
        }
        let has = pairs.iter().any(|(n, _)| *n == m.name);
        if matches!(m.op, PMatchOp::Equal) && !has {
            pairs.push((m.name.clone(), Some(m.value.clone())));
        } else if let Some(p) = pairs.iter_mut().find(|(n, _)| *n == m.name) {
            p.1 = None;
        } else {
            pairs.push((m.name.clone(), None));
        }
    }
    labels_from(pairs.into_iter().filter_map(|(n, v)| v.map(|v| Label::new(n, v))).collect())
}

/// Applies a binary operator to two floats: `(value, keep)`; for comparisons `value` is the
/// left operand and `keep` the comparison's outcome.
fn arith(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (go_pow(l, r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// Go's `math.Pow` special cases differ from C's `pow` in a few places (`pow(-1, ±Inf)` is 1
/// in both, `pow(NaN, 0)` is 1 in both); `powf` matches for the cases PromQL tests use.
fn go_pow(l: f64, r: f64) -> f64 {
    l.powf(r)
}

fn result_metric(
    l: &Labels,
    r: &Labels,
    changes_schema: bool,
    one_to_one: bool,
    on: bool,
    names: &[String],
    include: &[String],
) -> Labels {
    let mut pairs: Vec<Label> = l
        .iter()
        .filter(|x| {
            let n = &*x.name;
            if changes_schema && (n == "__name__" || n == "__type__" || n == "__unit__") {
                return false;
            }
            if one_to_one {
                let listed = names.iter().any(|m| m == n);
                return if on { listed } else { !listed };
            }
            true
        })
        .cloned()
        .collect();
    for ln in include {
        pairs.retain(|x| *x.name != **ln);
        if let Some(v) = r.get(ln) {
            pairs.push(Label::new(ln.as_str(), v));
        }
    }
    labels_from(pairs)
}

/// `HashRatioSampler.SampleOffset`: the series hash scaled to [0, 1].
fn ratio_sample_offset(l: &Labels) -> f64 {
    l.fingerprint().0 as f64 / u64::MAX as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_core::MemStorage;

    fn db() -> MemStorage {
        let db = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "m"), ("i", "a")]).unwrap();
        let b = Labels::from_pairs([("__name__", "m"), ("i", "b")]).unwrap();
        for t in 0..20 {
            db.append(&a, t * 10_000, t as f64);
            db.append(&b, t * 10_000, 2.0 * t as f64);
        }
        db
    }

    #[test]
    fn sum_rate() {
        let r = Engine::default().instant_query(&db(), "sum(rate(m[1m]))", 190_000).unwrap();
        let Value::Vector(v) = r.value else { panic!() };
        assert_eq!(v.len(), 1);
        assert!((v[0].value - 0.3).abs() < 1e-12);
    }

    #[test]
    fn errors_are_typed() {
        let e = Engine::default();
        let err = e.instant_query(&db(), "sum(", 0).unwrap_err();
        assert_eq!(err.error_type(), crate::ApiErrorType::BadData);
        let err = e.range_query(&db(), "m", 0, 1_000_000_000, 1).unwrap_err();
        assert!(matches!(err, QueryError::TooManyPoints { .. }));
        let err = e.instant_query(&db(), "m + ignoring(i) m", 10_000).unwrap_err();
        assert_eq!(err.error_type(), crate::ApiErrorType::Execution);
        let flag = AtomicBool::new(true);
        let err = e.instant_query_with_cancel(&db(), "m", 0, Some(&flag)).unwrap_err();
        assert_eq!(err.error_type(), crate::ApiErrorType::Canceled);
    }

    #[test]
    fn sample_limit() {
        let e = Engine::new(EngineOptions { max_samples: 10, ..EngineOptions::default() });
        let err = e.instant_query(&db(), "m", 190_000).unwrap_err();
        assert!(matches!(err, QueryError::TooManySamples { .. }));
    }
}
