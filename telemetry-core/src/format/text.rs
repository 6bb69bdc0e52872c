//! Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text format.
//!
//! Sources: the Prometheus documentation, "Exposition formats", section "Text-based format"
//! (version 0.0.4), and the OpenMetrics 1.0 specification, sections "Text format" ("ABNF",
//! "Escaping", "Numbers", "Timestamps", "MetricFamily", "Exemplars", "EOF"). Prometheus's Go
//! parsers (`model/textparse/promparse.go`, `openmetricsparse.go`) are the reference for the
//! details the documents leave open.
//!
//! # Decoding
//!
//! [`TextDecoder`] walks a byte buffer line by line and yields borrowed [`Entry`] values. It
//! never allocates for a well-formed sample: the metric name is a `&str` into the input, the
//! labels a [`RawLabels`] slice whose iterator unescapes values only when they hold escapes
//! (`Cow::Borrowed` otherwise), the value a `f64` parsed exactly as Go's
//! `strconv.ParseFloat` parses it (see [`number`](super::number)).
//!
//! Units: [`SampleEntry::timestamp_ms`] is milliseconds since the Unix epoch in both flavours.
//! Prometheus 0.0.4 writes integer milliseconds; OpenMetrics writes seconds (`1795264944.510`),
//! which are converted from their decimal digits without a float multiplication (digits after
//! the third decimal are truncated).
//!
//! What each flavour accepts:
//!
//! | | 0.0.4 ([`Flavor::Prometheus`]) | OpenMetrics ([`Flavor::OpenMetrics`]) |
//! |---|---|---|
//! | separators | runs of spaces/tabs; blank lines; spaces inside `{}` | one space; no blank lines |
//! | comments | `# HELP`, `# TYPE`; other `#` lines → [`Entry::Comment`] | `# HELP`, `# TYPE`, `# UNIT`, `# EOF`; others are errors |
//! | timestamp | integer ms | seconds, fractional |
//! | exemplars | no | ` # {labels} value [timestamp]` |
//! | end | end of input | `# EOF` required, nothing after it |
//!
//! Both accept every [`MetricType`] name (`untyped` and `unknown` are the same) and a trailing
//! comma in a label set. Label values know the escapes `\\`, `\"` and `\n`; any other is an
//! error. Help text is kept raw ([`Help`]) and unescaped on request (`\\`, `\n`, `\"`; other
//! backslashes stay as they are). The decoder does not check that samples belong to the
//! family announced by the last `# TYPE` (Prometheus does not either).
//!
//! # Errors
//!
//! [`TextError`] gives the 1-based line and 1-based byte column of the first offending byte
//! and a [`TextErrorKind`]. After an error the decoder yields nothing more.
//!
//! # Encoding
//!
//! [`TextEncoder`] appends lines to a `Vec<u8>` in either flavour; decoding what it writes gives
//! back the same entries, values bit for bit (except that every NaN is written `NaN` and reads
//! back as [`PARSED_NAN`](super::number::PARSED_NAN)).
//!
//! ```
//! use telemetry_core::format::text::{Entry, Flavor, TextDecoder};
//!
//! let input = b"# TYPE up gauge\nup{job=\"node\"} 1 1795264944.510\n# EOF\n";
//! let mut samples = 0;
//! for entry in TextDecoder::new(input, Flavor::OpenMetrics) {
//!     if let Entry::Sample(s) = entry? {
//!         assert_eq!((s.name, s.value, s.timestamp_ms), ("up", 1.0, Some(1795264944510)));
//!         assert_eq!(s.labels.iter().next().map(|(n, v)| (n, v.into_owned())), Some(("job", "node".to_string())));
//!         samples += 1;
//!     }
//! }
//! assert_eq!(samples, 1);
//! # Ok::<(), telemetry_core::format::text::TextError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use super::number::{parse_float, parse_i64, parse_seconds_to_ms, write_float, write_i64, write_ms_as_seconds};
use crate::labels::{LabelError, LabelLimits, Labels, LabelsBuilder, METRIC_NAME};
use crate::metric::MetricType;

/// Which text format a decoder reads or an encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

/// One line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# TYPE <family> <type>`.
    Type {
        /// The family name.
        family: &'a str,
        /// Its type.
        metric_type: MetricType,
    },
    /// `# HELP <family> <text>`.
    Help {
        /// The family name.
        family: &'a str,
        /// The help text, still escaped.
        help: Help<'a>,
    },
    /// `# UNIT <family> <unit>` (OpenMetrics only).
    Unit {
        /// The family name.
        family: &'a str,
        /// The unit, e.g. `seconds`; may be empty.
        unit: &'a str,
    },
    /// Any other `# ...` line (Prometheus 0.0.4 only): the text after `#`.
    Comment(&'a str),
    /// A sample line.
    Sample(SampleEntry<'a>),
    /// `# EOF` (OpenMetrics only): the last entry.
    Eof,
}

/// Help text as written, with its escapes. See [`Help::unescape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Help<'a> {
    raw: &'a str,
}

impl<'a> Help<'a> {
    /// Wraps escaped help text.
    pub fn from_raw(raw: &'a str) -> Self {
        Help { raw }
    }

    /// The text as written (escapes not resolved).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The text with `\\`, `\n` and `\"` resolved; borrows when there is nothing to resolve.
    pub fn unescape(&self) -> Cow<'a, str> {
        if !self.raw.contains('\\') {
            return Cow::Borrowed(self.raw);
        }
        let mut s = String::with_capacity(self.raw.len());
        self.unescape_into(&mut s);
        Cow::Owned(s)
    }

    /// Appends the unescaped text to `out` (to reuse one buffer).
    pub fn unescape_into(&self, out: &mut String) {
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.clone().next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') => out.push('"'),
                _ => {
                    out.push('\\');
                    continue;
                }
            }
            chars.next();
        }
    }
}

/// A sample line: `name{labels} value [timestamp] [# exemplar]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'a> {
    /// The metric name as written (for counters in OpenMetrics, with its `_total` suffix).
    pub name: &'a str,
    /// The labels, validated but not unescaped; empty when the line has no braces.
    pub labels: RawLabels<'a>,
    /// The value. `NaN` reads as [`PARSED_NAN`](super::number::PARSED_NAN).
    pub value: f64,
    /// The timestamp in milliseconds since the Unix epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar<'a>>,
}

impl SampleEntry<'_> {
    /// The sample's series as [`Labels`]: the metric name under `__name__` plus the labels,
    /// with the default [`LabelLimits`].
    ///
    /// # Errors
    /// [`LabelError`] for a duplicate label name or a limit exceeded (names are already
    /// valid, since the decoder checked them).
    pub fn to_labels(&self) -> Result<Labels, LabelError> {
        self.to_labels_with(LabelLimits::default())
    }

    /// [`to_labels`](Self::to_labels) with explicit limits.
    ///
    /// # Errors
    /// As [`to_labels`](Self::to_labels).
    pub fn to_labels_with(&self, limits: LabelLimits) -> Result<Labels, LabelError> {
        let mut b = LabelsBuilder::new().with_limits(limits);
        b.push(METRIC_NAME, self.name);
        for (n, v) in self.labels.iter() {
            b.push(n, &v);
        }
        b.build()
    }
}

/// An OpenMetrics exemplar: ` # {labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's labels (often `trace_id`).
    pub labels: RawLabels<'a>,
    /// The exemplar's value.
    pub value: f64,
    /// Its timestamp in milliseconds since the Unix epoch, when given.
    pub timestamp_ms: Option<i64>,
}

/// The text between a sample's braces, already validated; iterate for `(name, value)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawLabels<'a> {
    raw: &'a str,
}

impl<'a> RawLabels<'a> {
    /// The text between the braces as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// `true` when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The `(name, value)` pairs in written order; values unescaped (borrowed when they hold
    /// no escapes).
    pub fn iter(&self) -> RawLabelsIter<'a> {
        RawLabelsIter { rest: self.raw }
    }
}

/// Iterator over [`RawLabels`].
#[derive(Debug, Clone)]
pub struct RawLabelsIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for RawLabelsIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The text was validated by the decoder; on malformed text built by other means this
        // simply stops.
        let s = self.rest;
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && LABEL_REST[b[i] as usize] {
            i += 1;
        }
        let name = &s[ns..i];
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            self.rest = "";
            return None;
        }
        i = skip_ws(b, i + 1);
        if b.get(i) != Some(&b'"') {
            self.rest = "";
            return None;
        }
        i += 1;
        let vs = i;
        let mut has_escape = false;
        loop {
            match b.get(i) {
                None => {
                    self.rest = "";
                    return None;
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    has_escape = true;
                    i += 2;
                }
                Some(_) => i += 1,
            }
        }
        if i >= b.len() {
            self.rest = "";
            return None;
        }
        let raw_value = &s[vs..i];
        self.rest = &s[i + 1..];
        let value = if has_escape { Cow::Owned(unescape_label_value(raw_value)) } else { Cow::Borrowed(raw_value) };
        Some((name, value))
    }
}

fn unescape_label_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A decoding error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct TextError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column of the first offending byte.
    pub column: usize,
    /// What is wrong.
    pub kind: TextErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextErrorKind {
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A metric name was expected (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    #[error("expected a metric name")]
    ExpectedMetricName,
    /// A label name was expected (`[a-zA-Z_][a-zA-Z0-9_]*`).
    #[error("expected a label name")]
    ExpectedLabelName,
    /// A specific character was expected.
    #[error("expected {expected}")]
    Expected {
        /// What was expected, e.g. `'='`.
        expected: &'static str,
    },
    /// A label value has a backslash followed by something other than `\`, `"` or `n`.
    #[error("invalid escape sequence in label value")]
    InvalidEscape,
    /// A label value has no closing quote on its line.
    #[error("unterminated label value")]
    UnterminatedLabelValue,
    /// The value is not a float.
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    /// The timestamp is not an integer (0.0.4) or a finite number of seconds (OpenMetrics)
    /// within the `i64` millisecond range.
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// `# TYPE` names an unknown type.
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    /// A `# HELP`, `# TYPE` or `# UNIT` line lacks its parts.
    #[error("malformed {0} line")]
    MalformedMetadata(&'static str),
    /// Text after the end of a sample (value, timestamp and exemplar).
    #[error("unexpected text after the sample")]
    TrailingText,
    /// OpenMetrics: a blank line.
    #[error("blank line")]
    BlankLine,
    /// OpenMetrics: a comment that is not `# HELP`, `# TYPE`, `# UNIT` or `# EOF`.
    #[error("unknown comment (OpenMetrics allows only HELP, TYPE, UNIT and EOF)")]
    InvalidComment,
    /// OpenMetrics: input after `# EOF`.
    #[error("data after # EOF")]
    DataAfterEof,
    /// OpenMetrics: the input ended without `# EOF`.
    #[error("missing # EOF")]
    MissingEof,
}

/// Byte classes for names.
const fn name_table(metric: bool, first: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':') || (!first && b.is_ascii_digit());
        c += 1;
    }
    t
}
static METRIC_FIRST: [bool; 256] = name_table(true, true);
static METRIC_REST: [bool; 256] = name_table(true, false);
static LABEL_FIRST: [bool; 256] = name_table(false, true);
static LABEL_REST: [bool; 256] = name_table(false, false);

/// Streaming decoder; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TextDecoder<'a> {
    bytes: &'a [u8],
    /// The UTF-8-valid prefix of `bytes`.
    text: &'a str,
    pos: usize,
    line: usize,
    flavor: Flavor,
    done: bool,
    seen_eof: bool,
}

type Res<T> = Result<T, (usize, TextErrorKind)>;

impl<'a> TextDecoder<'a> {
    /// A decoder over a whole exposition.
    pub fn new(input: &'a [u8], flavor: Flavor) -> Self {
        let text = match std::str::from_utf8(input) {
            Ok(t) => t,
            // ok: valid_up_to is a char boundary by definition, so this cannot fail
            Err(e) => std::str::from_utf8(&input[..e.valid_up_to()]).unwrap_or(""),
        };
        TextDecoder { bytes: input, text, pos: 0, line: 0, flavor, done: false, seen_eof: false }
    }

    /// The flavour being read.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The 1-based number of the line last returned (0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Byte offset of the next line.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, line_start: usize, at: usize, kind: TextErrorKind) -> Option<Result<Entry<'a>, TextError>> {
        self.done = true;
        Some(Err(TextError { line: self.line, column: at - line_start + 1, kind }))
    }

    fn next_entry(&mut self) -> Option<Result<Entry<'a>, TextError>> {
        loop {
            if self.done {
                return None;
            }
            if self.pos >= self.bytes.len() {
                self.done = true;
                if self.flavor == Flavor::OpenMetrics && !self.seen_eof {
                    self.line += 1;
                    return Some(Err(TextError { line: self.line, column: 1, kind: TextErrorKind::MissingEof }));
                }
                return None;
            }
            let start = self.pos;
            let end = match memchr::memchr(b'\n', &self.bytes[start..]) {
                Some(i) => start + i,
                None => self.bytes.len(),
            };
            self.pos = end + 1;
            self.line += 1;
            if end > self.text.len() {
                return self.fail(start, self.text.len(), TextErrorKind::InvalidUtf8);
            }
            if self.seen_eof {
                if start == end && self.pos >= self.bytes.len() {
                    continue;
                }
                return self.fail(start, start, TextErrorKind::DataAfterEof);
            }
            let line = &self.text[start..end];
            let r = match self.flavor {
                Flavor::OpenMetrics => self.parse_om_line(line),
                Flavor::Prometheus => self.parse_prom_line(line),
            };
            match r {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => continue,
                Err((off, kind)) => return self.fail(0, off, kind),
            }
        }
    }

    fn parse_om_line(&mut self, line: &'a str) -> Res<Option<Entry<'a>>> {
        let b = line.as_bytes();
        match b.first() {
            None => Err((0, TextErrorKind::BlankLine)),
            Some(b'#') => {
                if line == "# EOF" {
                    self.seen_eof = true;
                    return Ok(Some(Entry::Eof));
                }
                let (kw, rest) = if let Some(r) = line.strip_prefix("# TYPE ") {
                    ("TYPE", r)
                } else if let Some(r) = line.strip_prefix("# HELP ") {
                    ("HELP", r)
                } else if let Some(r) = line.strip_prefix("# UNIT ") {
                    ("UNIT", r)
                } else {
                    return Err((0, TextErrorKind::InvalidComment));
                };
                self.metadata(kw, line, rest, false).map(Some)
            }
            Some(_) => parse_sample(line, Flavor::OpenMetrics).map(|s| Some(Entry::Sample(s))),
        }
    }

    fn parse_prom_line(&mut self, line: &'a str) -> Res<Option<Entry<'a>>> {
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        let b = line.as_bytes();
        match b.get(lead) {
            None => Ok(None),
            Some(b'#') => {
                let after = line[lead + 1..].trim_start_matches([' ', '\t']);
                let (kw, rest) = if let Some(r) = after.strip_prefix("TYPE") {
                    ("TYPE", r)
                } else if let Some(r) = after.strip_prefix("HELP") {
                    ("HELP", r)
                } else {
                    return Ok(Some(Entry::Comment(&line[lead + 1..])));
                };
                if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
                    return Ok(Some(Entry::Comment(&line[lead + 1..])));
                }
                let rest = rest.trim_start_matches([' ', '\t']);
                self.metadata(kw, line, rest, true).map(Some)
            }
            Some(_) => {
                let s = &line[lead..];
                parse_sample(s, Flavor::Prometheus).map(|e| Some(Entry::Sample(e))).map_err(|(o, k)| (o + lead, k))
            }
        }
    }

    /// `rest` is what follows `# KW `.
    fn metadata(&mut self, kw: &'static str, line: &'a str, rest: &'a str, loose: bool) -> Res<Entry<'a>> {
        let off = line.len() - rest.len();
        let rb = rest.as_bytes();
        let n = name_len(rb, &METRIC_FIRST, &METRIC_REST);
        if n == 0 {
            return Err((off, TextErrorKind::ExpectedMetricName));
        }
        let family = &rest[..n];
        let after = &rest[n..];
        let text = if after.is_empty() {
            if kw == "TYPE" {
                return Err((off + n, TextErrorKind::MalformedMetadata("# TYPE")));
            }
            ""
        } else if let Some(t) = after.strip_prefix(' ').or_else(|| if loose { after.strip_prefix('\t') } else { None })
        {
            if loose { t.trim_start_matches([' ', '\t']) } else { t }
        } else {
            return Err((off + n, TextErrorKind::Expected { expected: "' '" }));
        };
        let text_off = line.len() - text.len();
        Ok(match kw {
            "TYPE" => {
                let t = if loose { text.trim_end_matches([' ', '\t']) } else { text };
                let metric_type =
                    t.parse::<MetricType>().map_err(|_| (text_off, TextErrorKind::UnknownType(t.to_string())))?;
                Entry::Type { family, metric_type }
            }
            "HELP" => Entry::Help { family, help: Help { raw: text } },
            _ => {
                if text.contains([' ', '\t']) {
                    return Err((text_off, TextErrorKind::MalformedMetadata("# UNIT")));
                }
                Entry::Unit { family, unit: text }
            }
        })
    }
}

impl<'a> Iterator for TextDecoder<'a> {
    type Item = Result<Entry<'a>, TextError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

impl std::iter::FusedIterator for TextDecoder<'_> {}

#[inline]
fn name_len(b: &[u8], first: &[bool; 256], rest: &[bool; 256]) -> usize {
    match b.first() {
        Some(&c) if first[c as usize] => {}
        _ => return 0,
    }
    let mut i = 1;
    while i < b.len() && rest[b[i] as usize] {
        i += 1;
    }
    i
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// Parses `{...}` starting at `b[i] == '{'`; returns the raw inside and the index after `}`.
#[inline]
fn parse_labels(line: &str, mut i: usize, loose: bool) -> Res<(RawLabels<'_>, usize)> {
    let b = line.as_bytes();
    let open = i + 1;
    i += 1;
    loop {
        if loose {
            i = skip_ws(b, i);
        }
        match b.get(i) {
            Some(b'}') => return Ok((RawLabels { raw: &line[open..i] }, i + 1)),
            None => return Err((i, TextErrorKind::Expected { expected: "'}'" })),
            _ => {}
        }
        let n = name_len(&b[i..], &LABEL_FIRST, &LABEL_REST);
        if n == 0 {
            return Err((i, TextErrorKind::ExpectedLabelName));
        }
        i += n;
        if loose {
            i = skip_ws(b, i);
        }
        if b.get(i) != Some(&b'=') {
            return Err((i, TextErrorKind::Expected { expected: "'='" }));
        }
        i += 1;
        if loose {
            i = skip_ws(b, i);
        }
        if b.get(i) != Some(&b'"') {
            return Err((i, TextErrorKind::Expected { expected: "'\"'" }));
        }
        i += 1;
        // Label values are short: a plain loop beats a vectorised search here.
        loop {
            let Some(&c) = b.get(i) else {
                return Err((b.len(), TextErrorKind::UnterminatedLabelValue));
            };
            if c == b'"' {
                i += 1;
                break;
            }
            if c == b'\\' {
                match b.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    _ => return Err((i, TextErrorKind::InvalidEscape)),
                }
            } else {
                i += 1;
            }
        }
        if loose {
            i = skip_ws(b, i);
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err((i, TextErrorKind::Expected { expected: "',' or '}'" })),
        }
    }
}

/// Finds the end of a whitespace-free token starting at `i`.
#[inline]
fn token_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && b[j] != b' ' && b[j] != b'\t' {
        j += 1;
    }
    j
}

#[inline]
fn parse_sample(line: &str, flavor: Flavor) -> Res<SampleEntry<'_>> {
    let loose = flavor == Flavor::Prometheus;
    let b = line.as_bytes();
    let n = name_len(b, &METRIC_FIRST, &METRIC_REST);
    if n == 0 {
        return Err((0, TextErrorKind::ExpectedMetricName));
    }
    let name = &line[..n];
    let mut i = n;
    let brace = if loose { skip_ws(b, i) } else { i };
    let mut labels = RawLabels::default();
    if b.get(brace) == Some(&b'{') {
        let (l, j) = parse_labels(line, brace, loose)?;
        labels = l;
        i = j;
    }
    // separator
    let sep_start = i;
    i = if loose {
        skip_ws(b, i)
    } else if b.get(i) == Some(&b' ') {
        i + 1
    } else {
        i
    };
    if i == sep_start {
        return Err((i, TextErrorKind::Expected { expected: "' '" }));
    }
    let vend = token_end(b, i);
    let vs = &line[i..vend];
    let value = parse_float(vs).ok_or_else(|| (i, TextErrorKind::InvalidValue(vs.to_string())))?;
    i = vend;
    let mut timestamp_ms = None;
    let mut exemplar = None;
    if loose {
        i = skip_ws(b, i);
        if i < b.len() {
            let tend = token_end(b, i);
            let ts = &line[i..tend];
            timestamp_ms = Some(parse_i64(ts).ok_or_else(|| (i, TextErrorKind::InvalidTimestamp(ts.to_string())))?);
            i = skip_ws(b, tend);
            if i < b.len() {
                return Err((i, TextErrorKind::TrailingText));
            }
        }
    } else if i < b.len() {
        if b[i] != b' ' {
            return Err((i, TextErrorKind::TrailingText));
        }
        i += 1;
        if b.get(i) != Some(&b'#') {
            let tend = token_end(b, i);
            let ts = &line[i..tend];
            timestamp_ms =
                Some(parse_seconds_to_ms(ts).ok_or_else(|| (i, TextErrorKind::InvalidTimestamp(ts.to_string())))?);
            i = tend;
            if i < b.len() {
                if b[i] != b' ' || b.get(i + 1) != Some(&b'#') {
                    return Err((i, TextErrorKind::TrailingText));
                }
                i += 1;
            }
        }
        if i < b.len() {
            exemplar = Some(parse_exemplar(line, i)?);
        }
    }
    Ok(SampleEntry { name, labels, value, timestamp_ms, exemplar })
}

/// Parses `# {labels} value [timestamp]` starting at the `#`.
fn parse_exemplar(line: &str, mut i: usize) -> Res<Exemplar<'_>> {
    let b = line.as_bytes();
    i += 1;
    if b.get(i) != Some(&b' ') {
        return Err((i, TextErrorKind::Expected { expected: "' '" }));
    }
    i += 1;
    if b.get(i) != Some(&b'{') {
        return Err((i, TextErrorKind::Expected { expected: "'{'" }));
    }
    let (labels, j) = parse_labels(line, i, false)?;
    i = j;
    if b.get(i) != Some(&b' ') {
        return Err((i, TextErrorKind::Expected { expected: "' '" }));
    }
    i += 1;
    let vend = token_end(b, i);
    let vs = &line[i..vend];
    let value = parse_float(vs).ok_or_else(|| (i, TextErrorKind::InvalidValue(vs.to_string())))?;
    i = vend;
    let mut timestamp_ms = None;
    if i < b.len() {
        if b[i] != b' ' {
            return Err((i, TextErrorKind::TrailingText));
        }
        i += 1;
        let tend = token_end(b, i);
        let ts = &line[i..tend];
        timestamp_ms =
            Some(parse_seconds_to_ms(ts).ok_or_else(|| (i, TextErrorKind::InvalidTimestamp(ts.to_string())))?);
        if tend < b.len() {
            return Err((tend, TextErrorKind::TrailingText));
        }
    }
    Ok(Exemplar { labels, value, timestamp_ms })
}

/// An encoding error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextEncodeError {
    /// A metric or family name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    /// A unit with whitespace or a newline.
    #[error("invalid unit {0:?}")]
    InvalidUnit(String),
    /// Something the flavour cannot express (`# UNIT` and exemplars in 0.0.4).
    #[error("{0} cannot be written in the Prometheus 0.0.4 text format")]
    Unsupported(&'static str),
}

/// Writes either text flavour into a `Vec<u8>`. Names are validated; label values and help
/// text are escaped. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct TextEncoder {
    flavor: Flavor,
}

fn check_metric_name(n: &str) -> Result<(), TextEncodeError> {
    if name_len(n.as_bytes(), &METRIC_FIRST, &METRIC_REST) != n.len() || n.is_empty() {
        return Err(TextEncodeError::InvalidMetricName(n.to_string()));
    }
    Ok(())
}

fn write_escaped(out: &mut Vec<u8>, s: &str, quote: bool) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

impl TextEncoder {
    /// An encoder for `flavor`.
    pub fn new(flavor: Flavor) -> Self {
        TextEncoder { flavor }
    }

    /// The flavour written.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// `# TYPE family type`. In 0.0.4, types it lacks (`gaugehistogram`, `info`, `stateset`)
    /// are written with their OpenMetrics names, and `unknown` as `untyped`.
    ///
    /// # Errors
    /// [`TextEncodeError::InvalidMetricName`].
    pub fn write_type(&self, out: &mut Vec<u8>, family: &str, t: MetricType) -> Result<(), TextEncodeError> {
        check_metric_name(family)?;
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        let name = match (self.flavor, t) {
            (Flavor::Prometheus, MetricType::Unknown) => "untyped",
            _ => t.as_str(),
        };
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        Ok(())
    }

    /// `# HELP family text`, escaping `\` and newlines (and `"` in OpenMetrics).
    ///
    /// # Errors
    /// [`TextEncodeError::InvalidMetricName`].
    pub fn write_help(&self, out: &mut Vec<u8>, family: &str, help: &str) -> Result<(), TextEncodeError> {
        check_metric_name(family)?;
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        write_escaped(out, help, self.flavor == Flavor::OpenMetrics);
        out.push(b'\n');
        Ok(())
    }

    /// `# UNIT family unit` (OpenMetrics only).
    ///
    /// # Errors
    /// [`TextEncodeError::Unsupported`] in 0.0.4; [`TextEncodeError::InvalidMetricName`];
    /// [`TextEncodeError::InvalidUnit`] for whitespace in the unit.
    pub fn write_unit(&self, out: &mut Vec<u8>, family: &str, unit: &str) -> Result<(), TextEncodeError> {
        if self.flavor == Flavor::Prometheus {
            return Err(TextEncodeError::Unsupported("# UNIT"));
        }
        check_metric_name(family)?;
        if unit.contains([' ', '\t', '\n', '\r']) {
            return Err(TextEncodeError::InvalidUnit(unit.to_string()));
        }
        out.extend_from_slice(b"# UNIT ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        out.extend_from_slice(unit.as_bytes());
        out.push(b'\n');
        Ok(())
    }

    fn write_label_set<'l>(
        out: &mut Vec<u8>,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
        always_braces: bool,
    ) -> Result<(), TextEncodeError> {
        let mut first = true;
        for (n, v) in labels {
            if n.is_empty() || name_len(n.as_bytes(), &LABEL_FIRST, &LABEL_REST) != n.len() {
                return Err(TextEncodeError::InvalidLabelName(n.to_string()));
            }
            out.push(if first { b'{' } else { b',' });
            first = false;
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"=\"");
            write_escaped(out, v, true);
            out.push(b'"');
        }
        if !first {
            out.push(b'}');
        } else if always_braces {
            out.extend_from_slice(b"{}");
        }
        Ok(())
    }

    /// A sample line. `timestamp_ms` is milliseconds since the Unix epoch (written as seconds
    /// with three decimals in OpenMetrics). On error nothing is written.
    ///
    /// # Errors
    /// [`TextEncodeError::InvalidMetricName`], [`TextEncodeError::InvalidLabelName`],
    /// [`TextEncodeError::Unsupported`] for an exemplar in 0.0.4.
    pub fn write_sample<'l>(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
        value: f64,
        timestamp_ms: Option<i64>,
    ) -> Result<(), TextEncodeError> {
        self.write_sample_with_exemplar(
            out,
            name,
            labels,
            value,
            timestamp_ms,
            None::<(std::iter::Empty<(&str, &str)>, f64, Option<i64>)>,
        )
    }

    /// [`write_sample`](Self::write_sample) with an exemplar `(labels, value, timestamp_ms)`.
    ///
    /// # Errors
    /// As [`write_sample`](Self::write_sample).
    pub fn write_sample_with_exemplar<'l, 'e, E: IntoIterator<Item = (&'e str, &'e str)>>(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
        value: f64,
        timestamp_ms: Option<i64>,
        exemplar: Option<(E, f64, Option<i64>)>,
    ) -> Result<(), TextEncodeError> {
        check_metric_name(name)?;
        let mark = out.len();
        out.extend_from_slice(name.as_bytes());
        let r = (|| {
            Self::write_label_set(out, labels, false)?;
            out.push(b' ');
            write_float(out, value);
            if let Some(ts) = timestamp_ms {
                out.push(b' ');
                match self.flavor {
                    Flavor::Prometheus => write_i64(out, ts),
                    Flavor::OpenMetrics => write_ms_as_seconds(out, ts),
                }
            }
            if let Some((el, ev, ets)) = exemplar {
                if self.flavor == Flavor::Prometheus {
                    return Err(TextEncodeError::Unsupported("an exemplar"));
                }
                out.extend_from_slice(b" # ");
                Self::write_label_set(out, el, true)?;
                out.push(b' ');
                write_float(out, ev);
                if let Some(ts) = ets {
                    out.push(b' ');
                    write_ms_as_seconds(out, ts);
                }
            }
            out.push(b'\n');
            Ok(())
        })();
        if r.is_err() {
            out.truncate(mark);
        }
        r
    }

    /// `# EOF` in OpenMetrics; nothing in 0.0.4.
    pub fn write_eof(&self, out: &mut Vec<u8>) {
        if self.flavor == Flavor::OpenMetrics {
            out.extend_from_slice(b"# EOF\n");
        }
    }

    /// Writes a decoded entry (help re-escaped from its unescaped text, labels from their
    /// unescaped values).
    ///
    /// # Errors
    /// As the `write_*` methods; [`TextEncodeError::Unsupported`] for [`Entry::Comment`] in
    /// OpenMetrics.
    pub fn write_entry(&self, out: &mut Vec<u8>, entry: &Entry<'_>) -> Result<(), TextEncodeError> {
        match entry {
            Entry::Type { family, metric_type } => self.write_type(out, family, *metric_type),
            Entry::Help { family, help } => self.write_help(out, family, &help.unescape()),
            Entry::Unit { family, unit } => self.write_unit(out, family, unit),
            Entry::Comment(c) => {
                if self.flavor == Flavor::OpenMetrics || c.contains('\n') {
                    return Err(TextEncodeError::Unsupported("a comment"));
                }
                out.push(b'#');
                out.extend_from_slice(c.as_bytes());
                out.push(b'\n');
                Ok(())
            }
            Entry::Sample(s) => {
                let labels: smallvec::SmallVec<[(&str, Cow<'_, str>); 8]> = s.labels.iter().collect();
                let ex_labels: smallvec::SmallVec<[(&str, Cow<'_, str>); 4]> =
                    s.exemplar.as_ref().map(|e| e.labels.iter().collect()).unwrap_or_default();
                let ex =
                    s.exemplar.as_ref().map(|e| (ex_labels.iter().map(|(n, v)| (*n, &**v)), e.value, e.timestamp_ms));
                self.write_sample_with_exemplar(
                    out,
                    s.name,
                    labels.iter().map(|(n, v)| (*n, &**v)),
                    s.value,
                    s.timestamp_ms,
                    ex,
                )
            }
            Entry::Eof => {
                self.write_eof(out);
                Ok(())
            }
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Prometheus => "Prometheus text 0.0.4",
            Flavor::OpenMetrics => "OpenMetrics 1.0 text",
        })
    }
}
