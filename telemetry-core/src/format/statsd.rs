//! StatsD and DogStatsD metric lines.
//!
//! Sources: the StatsD protocol (etsy/statsd `docs/metric_types.md`) and Datadog's "DogStatsD
//! Datagram Format" (metrics, protocol v1.1 multiple values, v1.3 timestamps):
//!
//! ```text
//! <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>,<tag>...][|c:<container id>][|T<unix seconds>]
//! ```
//!
//! - types: `c` counter, `g` gauge, `ms` timer (milliseconds), `h` histogram, `s` set, `d`
//!   distribution ([`StatsdType`]);
//! - a gauge value with a leading `+` or `-` is a delta ([`StatsdValue::GaugeDelta`]); a
//!   counter's sign is part of the value (a negative count decrements);
//! - several values per line (`name:1:2:3|h`) are accepted for every type except sets, as
//!   DogStatsD 1.1 allows; set members are strings ([`StatsdValue::SetMember`]);
//! - the sample rate is a float in (0, 1];
//! - tags are `key:value` or bare `key` (see [`normalize`] for the mapping to
//!   labels); the timestamp `T` is Unix seconds (converted to milliseconds);
//! - a packet holds lines separated by `\n` (a `\r` before it is ignored); blank lines are
//!   skipped.
//!
//! Values parse with Go's float grammar ([`number`](super::number)), so `NaN` and `Inf` read;
//! an encoder writes them back the same way.
//!
//! # Errors
//! [`StatsdError`] names the 1-based line and byte column and a [`StatsdErrorKind`]: missing
//! `:` or `|`, an empty name, a bad value, an unknown type or field, a sample rate outside
//! (0, 1], several values for a set, and DogStatsD events (`_e{`) and service checks (`_sc|`),
//! which are not metrics. Unlike some servers, unknown `|` fields are refused rather than
//! dropped.
//!
//! ```
//! use telemetry_core::format::statsd::{StatsdDecoder, StatsdType, StatsdValue};
//!
//! let packet = b"api.request.duration:142|ms|#env:production,service:checkout\nmemory.used:+5|g";
//! let lines: Vec<_> = StatsdDecoder::new(packet).collect::<Result<_, _>>()?;
//! assert_eq!(lines[0].kind, StatsdType::Timer);
//! assert_eq!(lines[0].values().collect::<Vec<_>>(), [StatsdValue::Number(142.0)]);
//! assert_eq!(lines[0].to_labels()?.to_string(), r#"api_request_duration{env="production",service="checkout"}"#);
//! assert_eq!(lines[1].values().next(), Some(StatsdValue::GaugeDelta(5.0)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use thiserror::Error;

use super::normalize::{self, split_tag};
use super::number::{parse_float, parse_seconds_to_ms, write_float, write_i64};
use crate::labels::{LabelError, LabelLimits, Labels};

/// The metric type of a StatsD line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsdType {
    /// `c`: a count to add.
    Counter,
    /// `g`: a gauge (absolute, or a delta with a sign).
    Gauge,
    /// `ms`: a timing in milliseconds.
    Timer,
    /// `h`: a histogram observation.
    Histogram,
    /// `s`: a member of a set (counts distinct members).
    Set,
    /// `d`: a distribution observation (global percentiles in Datadog).
    Distribution,
}

impl StatsdType {
    /// The wire spelling: `c`, `g`, `ms`, `h`, `s`, `d`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatsdType::Counter => "c",
            StatsdType::Gauge => "g",
            StatsdType::Timer => "ms",
            StatsdType::Histogram => "h",
            StatsdType::Set => "s",
            StatsdType::Distribution => "d",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "c" => StatsdType::Counter,
            "g" => StatsdType::Gauge,
            "ms" => StatsdType::Timer,
            "h" => StatsdType::Histogram,
            "s" => StatsdType::Set,
            "d" => StatsdType::Distribution,
            _ => return None,
        })
    }
}

/// One value of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatsdValue<'a> {
    /// A number (counters, absolute gauges, timers in ms, histograms, distributions).
    Number(f64),
    /// A signed gauge change (`+5`, `-3`).
    GaugeDelta(f64),
    /// A set member, as written.
    SetMember(&'a str),
}

/// A decoded line; values and tags are validated and iterated on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdLine<'a> {
    /// The metric name as written (dotted).
    pub name: &'a str,
    /// The type.
    pub kind: StatsdType,
    /// The sample rate in (0, 1], when given (`|@0.1`).
    pub sample_rate: Option<f64>,
    /// Timestamp in milliseconds since the Unix epoch (DogStatsD `|T<seconds>`), when given.
    pub timestamp_ms: Option<i64>,
    /// Container id (DogStatsD `|c:<id>`), when given.
    pub container_id: Option<&'a str>,
    raw_values: &'a str,
    raw_tags: &'a str,
}

impl<'a> StatsdLine<'a> {
    /// The values in written order.
    pub fn values(&self) -> impl Iterator<Item = StatsdValue<'a>> + '_ {
        let kind = self.kind;
        self.raw_values.split(':').map(move |v| value_of(kind, v).unwrap_or(StatsdValue::Number(f64::NAN)))
    }

    /// The tags as written (`key:value` or `key`).
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
        let raw = self.raw_tags;
        raw.split(',').filter(|t| !t.is_empty())
    }

    /// The tags split into key and optional value.
    pub fn tag_pairs(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.tags().map(split_tag)
    }

    /// The series labels through the [`normalize`] mapping, with default
    /// [`LabelLimits`].
    ///
    /// # Errors
    /// [`LabelError`] when a limit is exceeded.
    pub fn to_labels(&self) -> Result<Labels, LabelError> {
        normalize::series_labels_kv(self.name, self.tag_pairs(), LabelLimits::default())
    }
}

fn value_of(kind: StatsdType, v: &str) -> Option<StatsdValue<'_>> {
    match kind {
        StatsdType::Set => {
            if v.is_empty() {
                None
            } else {
                Some(StatsdValue::SetMember(v))
            }
        }
        StatsdType::Gauge if v.starts_with(['+', '-']) => parse_float(v).map(StatsdValue::GaugeDelta),
        _ => parse_float(v).map(StatsdValue::Number),
    }
}

/// A decoding error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct StatsdError {
    /// 1-based line number within the packet.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// What is wrong.
    pub kind: StatsdErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatsdErrorKind {
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// No `:` between name and value.
    #[error("missing ':' after the metric name")]
    MissingColon,
    /// The name is empty.
    #[error("empty metric name")]
    EmptyName,
    /// No `|type` after the values.
    #[error("missing '|' and type")]
    MissingType,
    /// A type other than c, g, ms, h, s, d.
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    /// A value that is not a number (or an empty set member).
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    /// A set line with more than one value.
    #[error("a set takes one member per line")]
    MultipleSetMembers,
    /// A sample rate that is not a float in (0, 1].
    #[error("invalid sample rate {0:?}")]
    InvalidSampleRate(String),
    /// A timestamp that is not Unix seconds.
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// A `|` field that is none of `@`, `#`, `c:`, `T`, or one given twice.
    #[error("unknown or repeated field {0:?}")]
    UnknownField(String),
    /// A DogStatsD event (`_e{`) or service check (`_sc|`).
    #[error("DogStatsD events and service checks are not metrics")]
    NotAMetric,
}

/// Decodes the lines of a packet; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct StatsdDecoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    done: bool,
}

impl<'a> StatsdDecoder<'a> {
    /// A decoder over one packet (or a whole buffer of lines).
    pub fn new(input: &'a [u8]) -> Self {
        StatsdDecoder { bytes: input, pos: 0, line: 0, done: false }
    }
}

impl<'a> Iterator for StatsdDecoder<'a> {
    type Item = Result<StatsdLine<'a>, StatsdError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(raw) = super::next_line(self.bytes, &mut self.pos, &mut self.line) else {
                self.done = true;
                return None;
            };
            if raw.is_empty() {
                continue;
            }
            let line = match std::str::from_utf8(raw) {
                Ok(l) => l,
                Err(e) => return self.fail(e.valid_up_to(), StatsdErrorKind::InvalidUtf8),
            };
            return match parse_line(line) {
                Ok(l) => Some(Ok(l)),
                Err((off, kind)) => self.fail(off, kind),
            };
        }
    }
}

impl std::iter::FusedIterator for StatsdDecoder<'_> {}

impl StatsdDecoder<'_> {
    fn fail<T>(&mut self, off: usize, kind: StatsdErrorKind) -> Option<Result<T, StatsdError>> {
        self.done = true;
        Some(Err(StatsdError { line: self.line, column: off + 1, kind }))
    }
}

/// Parses one line (without its newline).
///
/// # Errors
/// `(byte offset, kind)`.
fn parse_line(line: &str) -> Result<StatsdLine<'_>, (usize, StatsdErrorKind)> {
    if line.starts_with("_e{") || line.starts_with("_sc|") {
        return Err((0, StatsdErrorKind::NotAMetric));
    }
    let colon = line.find(':').ok_or((line.len(), StatsdErrorKind::MissingColon))?;
    if colon == 0 {
        return Err((0, StatsdErrorKind::EmptyName));
    }
    let name = &line[..colon];
    if let Some(p) = name.find('|') {
        return Err((p, StatsdErrorKind::MissingColon));
    }
    let rest = &line[colon + 1..];
    let bar = rest.find('|').ok_or((line.len(), StatsdErrorKind::MissingType))?;
    let raw_values = &rest[..bar];
    let mut off = colon + 1 + bar + 1;
    let mut fields = line[off..].split('|');
    let type_str = fields.next().unwrap_or(""); // ok: split yields at least one item
    let kind = StatsdType::parse(type_str).ok_or_else(|| (off, StatsdErrorKind::UnknownType(type_str.to_string())))?;
    // values
    let mut voff = colon + 1;
    let mut count = 0;
    for v in raw_values.split(':') {
        if value_of(kind, v).is_none() {
            return Err((voff, StatsdErrorKind::InvalidValue(v.to_string())));
        }
        count += 1;
        if kind == StatsdType::Set && count > 1 {
            return Err((voff, StatsdErrorKind::MultipleSetMembers));
        }
        voff += v.len() + 1;
    }
    off += type_str.len() + 1;
    let mut out =
        StatsdLine { name, kind, sample_rate: None, timestamp_ms: None, container_id: None, raw_values, raw_tags: "" };
    let mut seen_tags = false;
    for f in fields {
        let repeated = || (off, StatsdErrorKind::UnknownField(f.to_string()));
        if let Some(r) = f.strip_prefix('@') {
            if out.sample_rate.is_some() {
                return Err(repeated());
            }
            match parse_float(r) {
                Some(x) if x > 0.0 && x <= 1.0 => out.sample_rate = Some(x),
                _ => return Err((off + 1, StatsdErrorKind::InvalidSampleRate(r.to_string()))),
            }
        } else if let Some(t) = f.strip_prefix('#') {
            if seen_tags {
                return Err(repeated());
            }
            seen_tags = true;
            out.raw_tags = t;
        } else if let Some(c) = f.strip_prefix("c:") {
            if out.container_id.is_some() {
                return Err(repeated());
            }
            out.container_id = Some(c);
        } else if let Some(t) = f.strip_prefix('T') {
            if out.timestamp_ms.is_some() {
                return Err(repeated());
            }
            out.timestamp_ms = Some(
                parse_seconds_to_ms(t).ok_or_else(|| (off + 1, StatsdErrorKind::InvalidTimestamp(t.to_string())))?,
            );
        } else {
            return Err(repeated());
        }
        off += f.len() + 1;
    }
    Ok(out)
}

/// A line to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdMetric<'a> {
    /// The metric name (must not contain `:`, `|`, `\n` or start with `_e{`/`_sc|`).
    pub name: &'a str,
    /// The type.
    pub kind: StatsdType,
    /// The values (at least one; one for sets).
    pub values: &'a [StatsdValue<'a>],
    /// Sample rate in (0, 1].
    pub sample_rate: Option<f64>,
    /// Tags, `key:value` or `key` (must not contain `,`, `|` or `\n`).
    pub tags: &'a [&'a str],
    /// Container id.
    pub container_id: Option<&'a str>,
    /// Timestamp in milliseconds since the Unix epoch; written as whole seconds
    /// (milliseconds are truncated toward negative infinity).
    pub timestamp_ms: Option<i64>,
}

/// An encoding error: the metric cannot be written so that it decodes back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatsdEncodeError {
    /// A name, tag, container id or set member with a character the line syntax reserves.
    #[error("{what} {text:?} contains a reserved character or is empty")]
    Reserved {
        /// Which part.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// No values, a value kind that does not fit the type, or several set members.
    #[error("values do not fit type {0}")]
    BadValues(&'static str),
    /// Sample rate outside (0, 1].
    #[error("sample rate outside (0, 1]")]
    BadSampleRate,
}

fn reserved(what: &'static str, s: &str, extra: &[char]) -> Result<(), StatsdEncodeError> {
    if s.is_empty() || s.contains(['|', '\n', '\r']) || s.contains(extra) {
        return Err(StatsdEncodeError::Reserved { what, text: s.to_string() });
    }
    Ok(())
}

/// Appends one line (with its `\n`) for `m`.
///
/// # Errors
/// [`StatsdEncodeError`]; nothing is written then.
pub fn write_line(out: &mut Vec<u8>, m: &StatsdMetric<'_>) -> Result<(), StatsdEncodeError> {
    reserved("name", m.name, &[':'])?;
    if m.name.starts_with("_e{") || m.name.starts_with("_sc") {
        return Err(StatsdEncodeError::Reserved { what: "name", text: m.name.to_string() });
    }
    if m.values.is_empty() || (m.kind == StatsdType::Set && m.values.len() > 1) {
        return Err(StatsdEncodeError::BadValues(m.kind.as_str()));
    }
    for v in m.values {
        match (m.kind, v) {
            (StatsdType::Set, StatsdValue::SetMember(s)) => reserved("set member", s, &[':'])?,
            (StatsdType::Gauge, StatsdValue::GaugeDelta(d)) if !d.is_nan() => {}
            (StatsdType::Gauge, StatsdValue::Number(x)) if x.is_nan() || (x.is_finite() && !x.is_sign_negative()) => {}
            (
                StatsdType::Counter | StatsdType::Timer | StatsdType::Histogram | StatsdType::Distribution,
                StatsdValue::Number(_),
            ) => {}
            _ => return Err(StatsdEncodeError::BadValues(m.kind.as_str())),
        }
    }
    if let Some(r) = m.sample_rate
        && !(r > 0.0 && r <= 1.0)
    {
        return Err(StatsdEncodeError::BadSampleRate);
    }
    for t in m.tags {
        reserved("tag", t, &[','])?;
    }
    if let Some(c) = m.container_id {
        reserved("container id", c, &[])?;
    }
    out.extend_from_slice(m.name.as_bytes());
    for v in m.values {
        out.push(b':');
        match v {
            StatsdValue::Number(x) => write_float(out, *x),
            StatsdValue::GaugeDelta(d) => {
                if !d.is_sign_negative() && d.is_finite() {
                    out.push(b'+');
                }
                write_float(out, *d);
            }
            StatsdValue::SetMember(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
    out.push(b'|');
    out.extend_from_slice(m.kind.as_str().as_bytes());
    if let Some(r) = m.sample_rate {
        out.extend_from_slice(b"|@");
        write_float(out, r);
    }
    if !m.tags.is_empty() {
        out.extend_from_slice(b"|#");
        for (i, t) in m.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(t.as_bytes());
        }
    }
    if let Some(c) = m.container_id {
        out.extend_from_slice(b"|c:");
        out.extend_from_slice(c.as_bytes());
    }
    if let Some(ts) = m.timestamp_ms {
        out.extend_from_slice(b"|T");
        write_i64(out, ts.div_euclid(1000));
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> StatsdError {
        StatsdDecoder::new(input.as_bytes()).find_map(Result::err).expect("an error")
    }

    #[test]
    fn seeds_decode() {
        let p = b"api.request.duration:142|ms|#env:production,service:checkout\napi.requests.total:1|c|#env:production\nmemory.used_bytes:536870912|g|#host:ip-10-0-1-42\n";
        let lines: Vec<_> = StatsdDecoder::new(p).collect::<Result<_, _>>().unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].values().next(), Some(StatsdValue::Number(536870912.0)));
        assert_eq!(lines[2].to_labels().unwrap().to_string(), r#"memory_used_bytes{host="ip-10-0-1-42"}"#);
        let l = StatsdDecoder::new(b"x:1:2:3|h|@0.5|T1681200000|c:abc").next().unwrap().unwrap();
        assert_eq!(l.values().count(), 3);
        assert_eq!(l.sample_rate, Some(0.5));
        assert_eq!(l.timestamp_ms, Some(1_681_200_000_000));
        assert_eq!(l.container_id, Some("abc"));
        let g = StatsdDecoder::new(b"g:-3|g").next().unwrap().unwrap();
        assert_eq!(g.values().next(), Some(StatsdValue::GaugeDelta(-3.0)));
        let s = StatsdDecoder::new(b"users:alice|s").next().unwrap().unwrap();
        assert_eq!(s.values().next(), Some(StatsdValue::SetMember("alice")));
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(err("ok:1|c\nnocolon"), StatsdError { line: 2, column: 8, kind: StatsdErrorKind::MissingColon });
        assert_eq!(err(":1|c").kind, StatsdErrorKind::EmptyName);
        assert_eq!(err("a:1").kind, StatsdErrorKind::MissingType);
        let e = err("a:1|x");
        assert_eq!((e.column, e.kind), (5, StatsdErrorKind::UnknownType("x".into())));
        let e = err("a:1:zz|h");
        assert_eq!((e.column, e.kind), (5, StatsdErrorKind::InvalidValue("zz".into())));
        let e = err("a:1|c|@2");
        assert_eq!((e.column, e.kind), (8, StatsdErrorKind::InvalidSampleRate("2".into())));
        let e = err("a:1|c|Tx");
        assert_eq!((e.column, e.kind), (8, StatsdErrorKind::InvalidTimestamp("x".into())));
        let e = err("a:1|c|zz");
        assert_eq!((e.column, e.kind), (7, StatsdErrorKind::UnknownField("zz".into())));
        assert_eq!(err("a:x:y|s").kind, StatsdErrorKind::MultipleSetMembers);
        assert_eq!(err("_e{1,1}:a|b").kind, StatsdErrorKind::NotAMetric);
        let e = StatsdDecoder::new(b"ab\xffc:1|c").next().unwrap().unwrap_err();
        assert_eq!((e.column, e.kind), (3, StatsdErrorKind::InvalidUtf8));
    }
}
