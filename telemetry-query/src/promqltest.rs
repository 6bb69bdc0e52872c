//! A runner for Prometheus's PromQL test-script format (`promql/promqltest` in the Prometheus
//! repository): `load`, `clear`, `eval instant at`, `eval range from ... to ... step`, the
//! `expect` lines and the `0+10x100` series notation.
//!
//! Data is loaded into a [`MemStorage`]; every `eval` is one outcome: passed, failed (with the
//! reason) or skipped (with the reason; never counted as passed). Skips are:
//! - native histograms, which this engine does not support: `{{...}}` samples are not loaded;
//!   an eval whose expected result holds one is skipped, and an eval that reads a metric name
//!   with such samples is skipped when it fails (it passes when its expected result did not
//!   depend on them);
//! - expressions the `promql-parser` crate rejects (experimental syntax: duration expressions,
//!   `anchored`/`smoothed`, `fill()`), unless the eval expects a failure;
//! - queries the engine rejects as unsupported ([`QueryError::BadData`] starting
//!   `unsupported:`).
//!
//! What the runner checks, against upstream's runner:
//! - results as upstream compares them (labels exactly, floats within a relative 1e-6, NaN equal
//!   to NaN, the stale NaN only to itself), order for `expect ordered`, result types;
//! - `expect fail` with `msg:` / `regex:`, `expect warn|info` (with `msg:` compared after
//!   removing the trailing position `(line:col)`, which this engine does not produce),
//!   `expect no_warn|no_info`;
//! - the range-mode re-run of instant evals (evaluation as a range query from t-1m to t+1m,
//!   whose middle step must equal the expected result), with upstream's exclusions.
//!
//! The step-invariance re-run (adding `@ t` to every selector) is not performed, and start
//! timestamps (`@st` lines) are ignored.
//!
//! ```
//! use telemetry_query::promqltest::run_script;
//!
//! let report = run_script("load 1m\n  up{job=\"a\"} 0+1x5\n\neval instant at 2m up\n  up{job=\"a\"} 2\n");
//! assert_eq!((report.passed(), report.failed(), report.skipped()), (1, 0, 0));
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use telemetry_core::{Label, Labels, MemStorage, Queryable, STALE_NAN, is_stale_nan};

use crate::engine::parse_go_float;
use crate::{Engine, EngineOptions, QueryError, Value};

/// How one `eval` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The eval passed.
    Passed,
    /// The eval failed, with the reason.
    Failed(String),
    /// The eval was not run or not judged, with the reason.
    Skipped {
        /// Why.
        reason: String,
        /// `true` when the reason is a feature this engine does not support.
        unsupported: bool,
    },
}

/// One eval's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// 1-based line of the `eval` header (or of a bad script line).
    pub line: usize,
    /// The header line.
    pub header: String,
    /// The result.
    pub status: Status,
}

/// The outcomes of one script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Where the script came from.
    pub path: Option<PathBuf>,
    /// One outcome per eval (and one failure per malformed command).
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Passed evals.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.status == Status::Passed).count()
    }
    /// Failed evals.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o.status, Status::Failed(_))).count()
    }
    /// Skipped evals.
    pub fn skipped(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o.status, Status::Skipped { .. })).count()
    }
    /// Skipped evals whose reason is an unsupported feature.
    pub fn unsupported(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o.status, Status::Skipped { unsupported: true, .. })).count()
    }
}

/// A store the runner loads test data into and queries.
pub trait TestStorage {
    /// The store as a query source.
    fn queryable(&self) -> &dyn Queryable;
    /// Adds one sample (a later sample at the same timestamp replaces the earlier one where
    /// the store allows it).
    ///
    /// # Errors
    /// A message when the store refuses the sample.
    fn append(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) -> Result<(), String>;
    /// Makes the samples appended since the last call visible (after each `load`).
    ///
    /// # Errors
    /// A message when the store cannot commit.
    fn commit(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Removes every series (`clear`).
    ///
    /// # Errors
    /// A message when the store cannot be emptied.
    fn clear(&mut self) -> Result<(), String>;
}

impl TestStorage for MemStorage {
    fn queryable(&self) -> &dyn Queryable {
        self
    }
    fn append(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) -> Result<(), String> {
        MemStorage::append(self, labels, timestamp_ms, value);
        Ok(())
    }
    fn clear(&mut self) -> Result<(), String> {
        MemStorage::clear(self);
        Ok(())
    }
}

/// Errors reading scripts.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs every `*.test` file under `paths` (files or directories, directories not recursed
/// into subdirectories), in path order.
///
/// # Errors
/// [`ScriptError::Io`] when a path cannot be read.
pub fn run_paths(paths: &[PathBuf]) -> Result<Vec<Report>, ScriptError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| ScriptError::Io { path: p.clone(), source })?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "test"))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    files.iter().map(|f| run_file(f)).collect()
}

/// Runs one script file.
///
/// # Errors
/// [`ScriptError::Io`] when it cannot be read.
pub fn run_file(path: &Path) -> Result<Report, ScriptError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io { path: path.to_path_buf(), source })?;
    let mut r = run_script(&text);
    r.path = Some(path.to_path_buf());
    Ok(r)
}

/// The engine settings the upstream scripts assume (5m lookback, 1m default subquery step).
pub fn test_engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 10_000_000,
        default_subquery_step_ms: 60_000,
        ..EngineOptions::default()
    })
}

/// Runs a script given as text against a fresh [`MemStorage`].
pub fn run_script(text: &str) -> Report {
    run_script_on(text, &mut MemStorage::new())
}

/// Runs a script given as text against `store` (which should start empty).
pub fn run_script_on(text: &str, store: &mut dyn TestStorage) -> Report {
    let engine = test_engine();
    let mut ctx = Ctx { db: store, engine, histogram_metrics: HashSet::new(), report: Report::default() };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut body = Vec::new();
        i += 1;
        let is_clear = line.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("clear"));
        while i < lines.len() && !is_clear {
            let l = lines[i].trim();
            if l.is_empty() || l.starts_with('#') {
                break;
            }
            body.push((i + 1, l));
            i += 1;
        }
        ctx.command(start + 1, line, &body);
    }
    ctx.report
}

struct Ctx<'s> {
    db: &'s mut dyn TestStorage,
    engine: Engine,
    histogram_metrics: HashSet<String>,
    report: Report,
}

fn fail(line: usize, header: &str, msg: impl Into<String>) -> Outcome {
    Outcome { line, header: header.to_string(), status: Status::Failed(msg.into()) }
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`, `0`), in ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let b = s.as_bytes();
    let (mut i, mut total, mut any) = (0, 0i64, false);
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        any = true;
    }
    any.then_some(total)
}

fn parse_time(s: &str) -> Option<i64> {
    parse_duration(s).or_else(|| s.parse::<f64>().ok().map(|v| (v * 1000.0).round() as i64))
}

/// One expanded value slot of a series description.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Empty,
    Value(f64),
    Histogram,
}

fn parse_number(s: &str) -> Option<f64> {
    parse_go_float(s).ok()
}

/// Expands the value notation (`1 2 _ stale 0+10x3 _x2 {{...}}`).
fn expand_values(items: &[String]) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for it in items {
        let it = it.as_str();
        if it == "_" {
            out.push(Slot::Empty);
            continue;
        }
        if it == "stale" {
            out.push(Slot::Value(STALE_NAN));
            continue;
        }
        if it.starts_with("{{") {
            // Histogram literal, possibly with a repetition.
            let reps = match it.rfind("}}x") {
                Some(p) => it[p + 3..].parse::<usize>().map_err(|_| format!("bad repetition in {it}"))? + 1,
                None => 1,
            };
            out.extend(std::iter::repeat_n(Slot::Histogram, reps));
            continue;
        }
        if let Some(rest) = it.strip_prefix("_x") {
            let k: usize = rest.parse().map_err(|_| format!("bad item {it}"))?;
            out.extend(std::iter::repeat_n(Slot::Empty, k));
            continue;
        }
        if let Some(xp) = it.rfind('x') {
            let (lhs, k) = (&it[..xp], &it[xp + 1..]);
            if let Ok(k) = k.parse::<usize>() {
                // A, A+B or A-B (the sign is not the first char nor after an exponent 'e').
                let b = lhs.as_bytes();
                let mut op = None;
                for j in 1..b.len() {
                    if (b[j] == b'+' || b[j] == b'-') && !matches!(b[j - 1], b'e' | b'E') {
                        op = Some(j);
                    }
                }
                let (start, delta) = match op {
                    Some(j) => {
                        let a = parse_number(&lhs[..j]).ok_or_else(|| format!("bad number in {it}"))?;
                        let d = parse_number(&lhs[j + 1..]).ok_or_else(|| format!("bad number in {it}"))?;
                        (a, if b[j] == b'-' { -d } else { d })
                    }
                    None => (parse_number(lhs).ok_or_else(|| format!("bad number in {it}"))?, 0.0),
                };
                let mut v = start;
                out.push(Slot::Value(v));
                for _ in 0..k {
                    v += delta;
                    out.push(Slot::Value(v));
                }
                continue;
            }
        }
        out.push(Slot::Value(parse_number(it).ok_or_else(|| format!("bad value {it:?}"))?));
    }
    Ok(out)
}

/// Splits `metric{a="b", c="d"} v1 v2` into labels and the value items.
fn parse_series_line(line: &str) -> Result<(Labels, Vec<String>), String> {
    let s = line.trim();
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs: Vec<Label> = Vec::new();
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    if i > 0 {
        pairs.push(Label::new("__name__", &s[..i]));
    }
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b',' || b[i] == b'\t') {
                i += 1;
            }
            if i >= b.len() {
                return Err(format!("unterminated label set in {line:?}"));
            }
            if b[i] == b'}' {
                i += 1;
                break;
            }
            let name = if b[i] == b'"' {
                let (v, n) = parse_quoted(&s[i..])?;
                i += n;
                v
            } else {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                s[st..i].to_string()
            };
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i < b.len() && b[i] == b'=' {
                i += 1;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                let (v, n) = parse_quoted(&s[i..])?;
                i += n;
                pairs.push(Label::new(name, v));
            } else {
                // A quoted metric name: {"a.b", x="y"}.
                pairs.push(Label::new("__name__", name));
            }
        }
    }
    if i == 0 {
        return Err(format!("no series in {line:?}"));
    }
    let rest = s[i..].trim();
    let mut items = Vec::new();
    // Split on spaces, keeping {{...}} together.
    let rb = rest.as_bytes();
    let mut j = 0;
    while j < rb.len() {
        while j < rb.len() && rb[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= rb.len() {
            break;
        }
        let st = j;
        if rest[j..].starts_with("{{") {
            match rest[j..].find("}}") {
                Some(p) => j += p + 2,
                None => return Err(format!("unterminated histogram in {line:?}")),
            }
        }
        while j < rb.len() && !rb[j].is_ascii_whitespace() {
            if rest[j..].starts_with("{{") {
                match rest[j..].find("}}") {
                    Some(p) => j += p + 2,
                    None => return Err(format!("unterminated histogram in {line:?}")),
                }
                continue;
            }
            j += 1;
        }
        items.push(rest[st..j].to_string());
    }
    pairs.retain(|l| !l.value.is_empty());
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((Labels::from_sorted_unchecked(pairs), items))
}

/// Parses a double-, single- or back-quoted string; returns the value and bytes consumed.
fn parse_quoted(s: &str) -> Result<(String, usize), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    if q != '"' && q != '\'' && q != '`' {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, i + 1));
        }
        if c == '\\' && q != '`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, c)) => out.push(c),
                None => break,
            }
            continue;
        }
        out.push(c);
    }
    Err(format!("unterminated string {s:?}"))
}

#[derive(Debug, Default)]
struct Expect {
    fail: Option<Option<Matcher>>,
    warn: Vec<Option<Matcher>>,
    info: Vec<Option<Matcher>>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug)]
enum Matcher {
    Msg(String),
    Regex(regex::Regex),
}

/// Strips a trailing ` (1:23)` position from an annotation or error message.
fn strip_position(s: &str) -> &str {
    let t = s.trim_end();
    if t.ends_with(')')
        && let Some(p) = t.rfind(" (")
    {
        let inner = &t[p + 2..t.len() - 1];
        if inner.split(':').count() == 2
            && inner.split(':').all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
        {
            return &t[..p];
        }
    }
    t
}

impl Matcher {
    fn parse(rest: &str) -> Result<Option<Matcher>, String> {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(None);
        }
        if let Some(m) = rest.strip_prefix("msg:") {
            return Ok(Some(Matcher::Msg(m.trim().to_string())));
        }
        if let Some(r) = rest.strip_prefix("regex:") {
            return regex::Regex::new(r.trim()).map(|r| Some(Matcher::Regex(r))).map_err(|e| e.to_string());
        }
        Err(format!("unknown expect qualifier {rest:?}"))
    }
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Msg(m) => m == s || strip_position(m) == strip_position(s),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

enum Expected {
    Scalar(f64),
    Series(Vec<(Labels, Vec<Slot>)>),
}

fn parse_scalar_line(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = i64::from_str_radix(h, 16).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    parse_number(t)
}

/// Upstream's float comparison (`almost.Equal` with epsilon 1e-6, stale NaN only equal to
/// itself).
pub fn values_equal(a: f64, b: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < 1e-6 * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < 1e-6
}

fn fmt_v(v: f64) -> String {
    crate::api::format_value(v)
}

impl Ctx<'_> {
    fn command(&mut self, line: usize, header: &str, body: &[(usize, &str)]) {
        let word = header.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if word == "clear" {
            if let Err(e) = self.db.clear() {
                self.report.outcomes.push(fail(line, header, format!("clear failed: {e}")));
            }
            self.histogram_metrics.clear();
        } else if word.starts_with("load") {
            if let Err(e) = self.load(header, body) {
                self.report.outcomes.push(fail(line, header, format!("bad load command: {e}")));
            }
        } else if word.starts_with("eval") {
            let o = self.eval(line, header, body);
            self.report.outcomes.push(o);
        } else {
            self.report.outcomes.push(fail(line, header, format!("unknown command {word:?}")));
        }
    }

    fn load(&mut self, header: &str, body: &[(usize, &str)]) -> Result<(), String> {
        let interval = header
            .split_whitespace()
            .nth(1)
            .and_then(parse_duration)
            .ok_or_else(|| format!("bad interval in {header:?}"))?;
        let mut per_series: BTreeMap<Labels, Vec<Slot>> = BTreeMap::new();
        for &(_, l) in body {
            let (labels, items) = parse_series_line(l)?;
            if labels.metric_name().is_some_and(|n| n.ends_with("@st")) || l.contains("@st ") {
                continue; // start timestamps: not supported, ignored
            }
            let slots = expand_values(&items)?;
            per_series.insert(labels, slots);
        }
        for (labels, slots) in per_series {
            for (k, s) in slots.iter().enumerate() {
                match s {
                    Slot::Value(v) => self.db.append(&labels, k as i64 * interval, *v)?,
                    Slot::Histogram => {
                        if let Some(n) = labels.metric_name() {
                            self.histogram_metrics.insert(n.to_string());
                        }
                    }
                    Slot::Empty => {}
                }
            }
        }
        self.db.commit()?;
        if header.to_ascii_lowercase().starts_with("load_with_nhcb") {
            // Classic histograms are also converted to native ones under the base name.
            for l in body {
                if let Ok((labels, _)) = parse_series_line(l.1)
                    && let Some(n) = labels.metric_name()
                    && let Some(base) = n.strip_suffix("_bucket")
                {
                    self.histogram_metrics.insert(base.to_string());
                }
            }
        }
        Ok(())
    }

    fn eval(&mut self, line: usize, header: &str, body: &[(usize, &str)]) -> Outcome {
        let skip = |reason: String, unsupported: bool| Outcome {
            line,
            header: header.to_string(),
            status: Status::Skipped { reason, unsupported },
        };
        let mut words = header.splitn(2, char::is_whitespace);
        let word = words.next().unwrap_or("").to_ascii_lowercase();
        let rest = words.next().unwrap_or("").trim();
        let mut exp = Expect::default();
        match word.as_str() {
            "eval" => {}
            "eval_fail" => exp.fail = Some(None),
            "eval_warn" => exp.warn.push(None),
            "eval_info" => exp.info.push(None),
            "eval_ordered" => exp.ordered = true,
            w => return fail(line, header, format!("unknown eval form {w:?}")),
        }
        // Header: instant at <t> <expr> | range from <s> to <e> step <st> <expr>
        let toks: Vec<&str> = rest.split_whitespace().collect();
        let (range, expr): (Option<(i64, i64, i64)>, String);
        let mut at = 0i64;
        if toks.first() == Some(&"instant") && toks.get(1) == Some(&"at") && toks.len() >= 4 {
            let Some(t) = toks.get(2).and_then(|t| parse_time(t)) else {
                return fail(line, header, "bad eval time");
            };
            at = t;
            range = None;
            expr = after_tokens(rest, 3);
        } else if toks.first() == Some(&"range")
            && toks.len() >= 8
            && toks[1] == "from"
            && toks[3] == "to"
            && toks[5] == "step"
        {
            let (Some(s), Some(e), Some(st)) = (parse_time(toks[2]), parse_time(toks[4]), parse_duration(toks[6]))
            else {
                return fail(line, header, "bad range header");
            };
            range = Some((s, e, st));
            expr = after_tokens(rest, 7);
        } else {
            return fail(line, header, "malformed eval header");
        }
        // Body.
        let mut series_lines = Vec::new();
        let mut scalar: Option<f64> = None;
        for &(_, l) in body {
            if let Some(e) = l.strip_prefix("expect ") {
                let e = e.trim();
                let (kind, qual) = e.split_once(' ').unwrap_or((e, ""));
                let parsed = match kind {
                    "fail" => Matcher::parse(qual).map(|m| exp.fail = Some(m)),
                    "warn" => Matcher::parse(qual).map(|m| exp.warn.push(m)),
                    "info" => Matcher::parse(qual).map(|m| exp.info.push(m)),
                    "no_warn" => {
                        exp.no_warn = true;
                        Ok(())
                    }
                    "no_info" => {
                        exp.no_info = true;
                        Ok(())
                    }
                    "ordered" => {
                        exp.ordered = true;
                        Ok(())
                    }
                    "string" => parse_quoted(qual.trim()).map(|(s, _)| exp.string = Some(s)),
                    "range" => {
                        let t: Vec<&str> = qual.split_whitespace().collect();
                        if t.len() == 7 && t[0] == "vector" && t[1] == "from" && t[3] == "to" && t[5] == "step" {
                            match (parse_time(t[2]), parse_time(t[4]), parse_duration(t[6])) {
                                (Some(a), Some(b), Some(c)) => {
                                    exp.range_vector = Some((a, b, c));
                                    Ok(())
                                }
                                _ => Err("bad expect range vector".to_string()),
                            }
                        } else {
                            Err("bad expect range vector".to_string())
                        }
                    }
                    other => Err(format!("unknown expect {other:?}")),
                };
                if let Err(e) = parsed {
                    return fail(line, header, e);
                }
                continue;
            }
            if let Some(m) = l.strip_prefix("expected_fail_message") {
                exp.fail = Some(Some(Matcher::Msg(m.trim().to_string())));
                continue;
            }
            if let Some(r) = l.strip_prefix("expected_fail_regexp") {
                match regex::Regex::new(r.trim()) {
                    Ok(r) => exp.fail = Some(Some(Matcher::Regex(r))),
                    Err(e) => return fail(line, header, e.to_string()),
                }
                continue;
            }
            if !l.contains(char::is_whitespace)
                && let Some(v) = parse_scalar_line(l)
            {
                scalar = Some(v);
                continue;
            }
            series_lines.push(l);
        }
        if series_lines.iter().any(|l| l.contains("{{")) {
            return skip("native histogram in the expected result".into(), true);
        }
        let mut expected_series = Vec::new();
        for l in &series_lines {
            match parse_series_line(l).and_then(|(lab, items)| expand_values(&items).map(|v| (lab, v))) {
                Ok(x) => expected_series.push(x),
                Err(e) => return fail(line, header, format!("bad expected line: {e}")),
            }
        }
        let expected = match scalar {
            Some(v) => Expected::Scalar(v),
            None => Expected::Series(expected_series),
        };
        // Parse first: parser rejections of experimental syntax are skips.
        if let Err(e) = crate::parse(&expr) {
            match &exp.fail {
                Some(Some(m)) if !m.matches(&e.to_string()) && !m.matches(strip_parse_prefix(&e.to_string())) => {
                    return skip(format!("expected failure, but the parser fails with another message: {e}"), true);
                }
                Some(_) => return Outcome { line, header: header.to_string(), status: Status::Passed },
                None => {}
            }
            return skip(format!("promql-parser rejects the expression: {e}"), true);
        }
        let result = match range {
            None => self.engine.instant_query(self.db.queryable(), &expr, at),
            Some((s, e, st)) => self.engine.range_query(self.db.queryable(), &expr, s, e, st),
        };
        let mut status = self.judge(&expr, range, at, &exp, &expected, result);
        if let Status::Failed(why) = &status
            && let Some(h) = self.histogram_metrics.iter().find(|h| mentions(&expr, h))
        {
            // The data has native-histogram samples that were not loaded; a failure here is
            // attributed to them (a pass is a pass: the expected result did not need them).
            status = Status::Skipped {
                reason: format!(
                    "reads series {h:?}, which has native-histogram samples (not loaded); fails with: {why}"
                ),
                unsupported: true,
            };
        }
        Outcome { line, header: header.to_string(), status }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        expr: &str,
        range: Option<(i64, i64, i64)>,
        at: i64,
        exp: &Expect,
        expected: &Expected,
        result: Result<crate::QueryResult, QueryError>,
    ) -> Status {
        let res = match (result, &exp.fail) {
            (Err(QueryError::BadData(m)), None) if m.starts_with("unsupported:") => {
                return Status::Skipped { reason: m, unsupported: true };
            }
            (Err(e), None) => return Status::Failed(format!("unexpected error: {e}")),
            (Err(e), Some(m)) => {
                let msg = e.to_string();
                return match m {
                    Some(m) if !m.matches(&msg) => {
                        Status::Failed(format!("error message {msg:?} does not match the expected one"))
                    }
                    _ => Status::Passed,
                };
            }
            (Ok(_), Some(_)) => return Status::Failed("expected an error, got a result".into()),
            (Ok(r), None) => r,
        };
        if let Err(e) = check_annotations("warn", &res.warnings, &exp.warn, exp.no_warn) {
            return Status::Failed(e);
        }
        if let Err(e) = check_annotations("info", &res.infos, &exp.info, exp.no_info) {
            return Status::Failed(e);
        }
        if let Err(e) = compare(&res.value, expected, exp, range, at) {
            return Status::Failed(e);
        }
        // Range-mode re-run of instant evals (upstream's exclusions).
        let rerun = range.is_none()
            && !exp.ordered
            && exp.range_vector.is_none()
            && exp.string.is_none()
            && !["start()", "end()", "range()", "step()"].iter().any(|f| expr.contains(f))
            && matches!(res.value, Value::Vector(_) | Value::Scalar { .. });
        if rerun {
            match self.engine.range_query(self.db.queryable(), expr, at - 60_000, at + 60_000, 60_000) {
                Err(e) => return Status::Failed(format!("range-mode re-run failed: {e}")),
                Ok(r) => {
                    let mid: Vec<(Labels, f64)> = match r.value {
                        Value::Matrix(m) => m
                            .into_iter()
                            .filter_map(|s| {
                                s.samples.iter().find(|p| p.timestamp_ms == at).map(|p| (s.labels.clone(), p.value))
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let check = match expected {
                        Expected::Scalar(v) => mid.len() == 1 && values_equal(mid[0].1, *v),
                        Expected::Series(s) => {
                            mid.len() == s.len()
                                && s.iter().all(|(l, slots)| {
                                    mid.iter().any(|(ml, mv)| {
                                        ml == l
                                            && matches!(slots.first(), Some(Slot::Value(v)) if values_equal(*mv, *v))
                                    })
                                })
                        }
                    };
                    if !check {
                        return Status::Failed(format!("range-mode re-run differs at the middle step: {mid:?}"));
                    }
                }
            }
        }
        Status::Passed
    }
}

fn strip_parse_prefix(s: &str) -> &str {
    s.strip_prefix("parse error: ").unwrap_or(s)
}

/// `true` when `expr` names `metric` as a whole word.
fn mentions(expr: &str, metric: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut from = 0;
    while let Some(p) = expr[from..].find(metric) {
        let s = from + p;
        let e = s + metric.len();
        let before = expr[..s].chars().next_back().is_none_or(|c| !is_word(c));
        let after = expr[e..].chars().next().is_none_or(|c| !is_word(c));
        if before && after {
            return true;
        }
        from = s + 1;
    }
    false
}

fn after_tokens(s: &str, n: usize) -> String {
    let mut rest = s;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    rest.trim().to_string()
}

fn check_annotations(kind: &str, got: &[String], want: &[Option<Matcher>], none: bool) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if want.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    for w in want.iter().flatten() {
        if !got.iter().any(|g| w.matches(g)) {
            return Err(format!("no {kind} annotation matches {w:?}; got {got:?}"));
        }
    }
    let specific: Vec<&Matcher> = want.iter().flatten().collect();
    if specific.len() == want.len() {
        for g in got {
            if !specific.iter().any(|w| w.matches(g)) {
                return Err(format!("unexpected {kind} annotation {g:?}"));
            }
        }
    }
    Ok(())
}

fn compare(
    v: &Value,
    expected: &Expected,
    exp: &Expect,
    range: Option<(i64, i64, i64)>,
    at: i64,
) -> Result<(), String> {
    if let Some(s) = &exp.string {
        return match v {
            Value::String { value, .. } if value == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    match (expected, v) {
        (Expected::Scalar(want), Value::Scalar { value, .. }) => {
            if values_equal(*value, *want) {
                Ok(())
            } else {
                Err(format!("expected scalar {}, got {}", fmt_v(*want), fmt_v(*value)))
            }
        }
        (Expected::Scalar(_), other) => Err(format!("expected a scalar, got a {}", other.type_name())),
        (Expected::Series(want), Value::Vector(got)) => {
            if range.is_some() || exp.range_vector.is_some() {
                return Err("expected a matrix, got a vector".into());
            }
            if got.len() != want.len() {
                return Err(format!("expected {} series, got {}: {}", want.len(), got.len(), show_vector(got)));
            }
            for (k, (l, slots)) in want.iter().enumerate() {
                let Some(Slot::Value(wv)) = slots.first().copied() else {
                    return Err(format!("bad expected value for {l}"));
                };
                if slots.len() != 1 {
                    return Err(format!("expected one value for {l} in an instant result"));
                }
                let found = if exp.ordered {
                    got.get(k).filter(|g| g.labels == *l)
                } else {
                    got.iter().find(|g| g.labels == *l)
                };
                match found {
                    None => {
                        return Err(format!(
                            "expected series {l}{} not found; got {}",
                            if exp.ordered { format!(" at position {k}") } else { String::new() },
                            show_vector(got)
                        ));
                    }
                    Some(g) if !values_equal(g.value, wv) => {
                        return Err(format!("series {l}: expected {}, got {}", fmt_v(wv), fmt_v(g.value)));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        (Expected::Series(want), Value::Matrix(got)) => {
            let (start, end, step) = match (exp.range_vector, range) {
                (Some(r), _) => r,
                (None, Some(r)) => r,
                (None, None) => return Err(format!("unexpected range vector result at {at}")),
            };
            if got.len() != want.len() {
                return Err(format!(
                    "expected {} series, got {}: {:?}",
                    want.len(),
                    got.len(),
                    got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
                ));
            }
            for (l, slots) in want {
                let Some(g) = got.iter().find(|g| g.labels == *l) else {
                    return Err(format!("expected series {l} not found"));
                };
                let mut exp_pts = Vec::new();
                for (k, s) in slots.iter().enumerate() {
                    let t = start + k as i64 * step;
                    if t > end {
                        break;
                    }
                    match s {
                        Slot::Value(v) => exp_pts.push((t, *v)),
                        Slot::Empty => {}
                        Slot::Histogram => return Err("histogram in expected result".into()),
                    }
                }
                let got_pts: Vec<(i64, f64)> = g.samples.iter().map(|s| (s.timestamp_ms, s.value)).collect();
                let same = exp_pts.len() == got_pts.len()
                    && exp_pts.iter().zip(&got_pts).all(|(a, b)| a.0 == b.0 && values_equal(a.1, b.1));
                if !same {
                    return Err(format!("series {l}: expected {}, got {}", show_pts(&exp_pts), show_pts(&got_pts)));
                }
            }
            Ok(())
        }
        (Expected::Series(_), other) => Err(format!("expected a vector or matrix, got a {}", other.type_name())),
    }
}

fn show_vector(v: &[crate::VectorSample]) -> String {
    let items: Vec<String> = v.iter().take(10).map(|s| format!("{} {}", s.labels, fmt_v(s.value))).collect();
    format!("[{}]", items.join(", "))
}

fn show_pts(p: &[(i64, f64)]) -> String {
    let items: Vec<String> = p.iter().take(20).map(|(t, v)| format!("{}@{}", fmt_v(*v), *t as f64 / 1000.0)).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_notation() {
        let items: Vec<String> =
            ["1", "_", "0+10x2", "_x2", "stale", "5-1x1", "0x2"].iter().map(|s| s.to_string()).collect();
        let v = expand_values(&items).unwrap();
        assert_eq!(v.len(), 1 + 1 + 3 + 2 + 1 + 2 + 3);
        assert_eq!(v[2], Slot::Value(0.0));
        assert_eq!(v[4], Slot::Value(20.0));
        assert!(matches!(v[7], Slot::Value(x) if is_stale_nan(x)));
        assert_eq!(v[9], Slot::Value(4.0));
        assert_eq!(v[12], Slot::Value(0.0));
    }

    #[test]
    fn parses_series_lines_and_durations() {
        let (l, items) = parse_series_line(r#"http{job="a, b", "x"="y"} 1 2"#).unwrap();
        assert_eq!(l.get("job"), Some("a, b"));
        assert_eq!(l.get("x"), Some("y"));
        assert_eq!(items, vec!["1", "2"]);
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("10s53ms"), Some(10_053));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn failing_eval_is_reported() {
        let r = run_script("load 1m\n  up 1\n\neval instant at 0 up\n  up 2\n");
        assert_eq!(r.failed(), 1);
    }
}
