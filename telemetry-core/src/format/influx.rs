//! InfluxDB line protocol.
//!
//! Source: InfluxDB 2.x documentation, "Line protocol" reference (syntax, data types, special
//! characters):
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! - Escapes: in measurements `\,` and `\ `; in tag keys, tag values and field keys `\,`,
//!   `\=` and `\ `; a backslash before any other character is literal. Escaped text is kept
//!   raw and unescaped on request ([`Escaped::unescape`]).
//! - Field values: floats (`1.5`, `-1e3`, Go float grammar, finite), integers `2i`, unsigned
//!   integers `2u`, booleans (`t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False`,
//!   `FALSE`) and double-quoted strings (escapes `\"` and `\\`), see [`FieldValue`].
//! - Timestamp: an integer in the decoder's [`Precision`] (nanoseconds by default), converted
//!   to milliseconds by flooring (sub-millisecond digits are dropped: the model has millisecond
//!   resolution). Absent timestamps stay `None` (the server's clock applies).
//! - Lines are separated by `\n` (a `\r` before it is ignored); blank lines and lines starting
//!   with `#` are skipped.
//!
//! Mapping to series ([`InfluxLine::samples`]): each numeric or boolean field becomes the series
//! `<measurement>_<field>` (normalised by [`normalize`]) with the tags as labels;
//! integers convert to `f64` (exact up to 2^53), booleans to 1 and 0. String fields cannot be
//! samples: the iterator yields [`InfluxError`]-free [`FieldSample::NotNumeric`] items for them so
//! that the caller decides (count, log or refuse); nothing is dropped silently.
//!
//! # Errors
//! [`InfluxError`] names the 1-based line, the 1-based byte column and an [`InfluxErrorKind`]:
//! missing fields, a tag or field without `=`, a bad value or timestamp, an unterminated string.
//!
//! ```
//! use telemetry_core::format::influx::{FieldSample, InfluxDecoder};
//!
//! let line = b"cpu,host=a usage=1.5,count=2i,ok=true 1681200000000000000\n";
//! let l = InfluxDecoder::new(line).next().unwrap()?;
//! assert_eq!(l.timestamp_ms, Some(1_681_200_000_000));
//! let series: Vec<String> = l
//!     .samples()
//!     .map(|s| match s { FieldSample::Sample { labels, value } => format!("{labels} {value}"), _ => unreachable!() })
//!     .collect();
//! assert_eq!(series, [r#"cpu_usage{host="a"} 1.5"#, r#"cpu_count{host="a"} 2"#, r#"cpu_ok{host="a"} 1"#]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;

use thiserror::Error;

use super::normalize;
use super::number::{parse_float, parse_i64, write_float, write_i64};
use crate::labels::{LabelError, LabelLimits, Labels};

/// Timestamp unit of the input (the `precision` query parameter of `/api/v2/write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (the default).
    #[default]
    Nanoseconds,
    /// Microseconds.
    Microseconds,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

impl Precision {
    fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(t.div_euclid(1_000_000)),
            Precision::Microseconds => Some(t.div_euclid(1_000)),
            Precision::Milliseconds => Some(t),
            Precision::Seconds => t.checked_mul(1000),
        }
    }
}

/// Text with line-protocol backslash escapes still in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a> {
    raw: &'a str,
    /// Characters that a backslash escapes here.
    specials: &'static [u8],
}

impl<'a> Escaped<'a> {
    /// The text as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The text with its escapes resolved (a backslash before a character that needs no
    /// escape stays); borrows when there is no backslash.
    pub fn unescape(&self) -> Cow<'a, str> {
        if !self.raw.contains('\\') {
            return Cow::Borrowed(self.raw);
        }
        let b = self.raw.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() && self.specials.contains(&b[i + 1]) {
                out.push(b[i + 1]);
                i += 2;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        // ok: only ASCII bytes were removed from valid UTF-8, so this cannot fail
        Cow::Owned(String::from_utf8(out).unwrap_or_default())
    }
}

const MEASUREMENT_SPECIALS: &[u8] = b", \\";
const KEY_SPECIALS: &[u8] = b",= \\";
const STRING_SPECIALS: &[u8] = b"\"\\";

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// A float (finite).
    Float(f64),
    /// A signed integer (`2i`).
    Integer(i64),
    /// An unsigned integer (`2u`).
    UInteger(u64),
    /// A boolean.
    Boolean(bool),
    /// A string, escapes (`\"`, `\\`) unresolved.
    String(Escaped<'a>),
}

impl FieldValue<'_> {
    /// The value as a sample value: floats as they are, integers converted (rounded to the
    /// nearest `f64` beyond 2^53), booleans 1.0 / 0.0; `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::Float(f) => Some(f),
            FieldValue::Integer(i) => Some(i as f64),
            FieldValue::UInteger(u) => Some(u as f64),
            FieldValue::Boolean(b) => Some(if b { 1.0 } else { 0.0 }),
            FieldValue::String(_) => None,
        }
    }
}

/// A decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxLine<'a> {
    /// The measurement.
    pub measurement: Escaped<'a>,
    raw_tags: &'a str,
    raw_fields: &'a str,
    /// The timestamp in milliseconds since the Unix epoch, when given.
    pub timestamp_ms: Option<i64>,
}

/// One field of a line mapped to a series (see [`InfluxLine::samples`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSample<'a> {
    /// A numeric or boolean field: its series and value.
    Sample {
        /// `__name__` = `<measurement>_<field>` normalised, plus the tags.
        labels: Labels,
        /// The value.
        value: f64,
    },
    /// A string field, which has no sample value.
    NotNumeric {
        /// The field key (unescaped).
        field: Cow<'a, str>,
    },
    /// The labels could not be built (a limit was exceeded).
    Invalid(LabelError),
}

impl<'a> InfluxLine<'a> {
    /// The tags in written order: `(key, value)`, escaped.
    pub fn tags(&self) -> impl Iterator<Item = (Escaped<'a>, Escaped<'a>)> + 'a {
        let mut rest = self.raw_tags;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (k, r) = split_unescaped(rest, b'=');
            let (v, r2) = split_unescaped(r.get(1..).unwrap_or(""), b',');
            rest = r2.get(1..).unwrap_or("");
            Some((Escaped { raw: k, specials: KEY_SPECIALS }, Escaped { raw: v, specials: KEY_SPECIALS }))
        })
    }

    /// The fields in written order: `(key, value)`.
    pub fn fields(&self) -> impl Iterator<Item = (Escaped<'a>, FieldValue<'a>)> + 'a {
        let mut rest = self.raw_fields;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (k, r) = split_unescaped(rest, b'=');
            let r = r.get(1..).unwrap_or("");
            let (v, r2) = field_value_end(r).ok()?;
            rest = r2.strip_prefix(',').unwrap_or(r2);
            Some((Escaped { raw: k, specials: KEY_SPECIALS }, v))
        })
    }

    /// One [`FieldSample`] per field, in written order; see the [module docs](self).
    pub fn samples(&self) -> impl Iterator<Item = FieldSample<'a>> + '_ {
        self.samples_with(LabelLimits::default())
    }

    /// [`samples`](Self::samples) with explicit label limits.
    pub fn samples_with(&self, limits: LabelLimits) -> impl Iterator<Item = FieldSample<'a>> + '_ {
        let measurement = self.measurement.unescape();
        let tags: Vec<(Cow<'a, str>, Cow<'a, str>)> = self.tags().map(|(k, v)| (k.unescape(), v.unescape())).collect();
        self.fields().map(move |(k, v)| {
            let field = k.unescape();
            let Some(value) = v.as_f64() else {
                return FieldSample::NotNumeric { field };
            };
            let name = format!("{measurement}_{field}");
            match normalize::series_labels_kv(&name, tags.iter().map(|(k, v)| (&**k, Some(&**v))), limits) {
                Ok(labels) => FieldSample::Sample { labels, value },
                Err(e) => FieldSample::Invalid(e),
            }
        })
    }
}

/// Splits at the first `stop` byte not preceded by a backslash (or at the end).
fn split_unescaped(s: &str, stop: u8) -> (&str, &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == stop {
            return (&s[..i], &s[i..]);
        }
        i += 1;
    }
    (s, "")
}

/// Parses a field value at the start of `s`; returns it and the rest (starting at `,` or
/// empty). Error: `(offset in s, kind)`.
fn field_value_end(s: &str) -> Result<(FieldValue<'_>, &str), (usize, InfluxErrorKind)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match b.get(i) {
                None => return Err((0, InfluxErrorKind::UnterminatedString)),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let raw = &s[1..i];
        let rest = &s[i + 1..];
        if !(rest.is_empty() || rest.starts_with([',', ' '])) {
            return Err((i + 1, InfluxErrorKind::Expected("',' after a string field")));
        }
        return Ok((FieldValue::String(Escaped { raw, specials: STRING_SPECIALS }), rest));
    }
    let end = memchr::memchr(b',', b).unwrap_or(b.len());
    let tok = &s[..end];
    let bad = || (0, InfluxErrorKind::InvalidFieldValue(tok.to_string()));
    let v = match tok {
        "t" | "T" | "true" | "True" | "TRUE" => FieldValue::Boolean(true),
        "f" | "F" | "false" | "False" | "FALSE" => FieldValue::Boolean(false),
        _ => {
            if let Some(i) = tok.strip_suffix('i') {
                FieldValue::Integer(parse_i64(i).ok_or_else(bad)?)
            } else if let Some(u) = tok.strip_suffix('u') {
                if u.starts_with(['+', '-']) {
                    return Err(bad());
                }
                FieldValue::UInteger(u.parse::<u64>().map_err(|_| bad())?)
            } else {
                match parse_float(tok) {
                    Some(f) if f.is_finite() => FieldValue::Float(f),
                    _ => return Err(bad()),
                }
            }
        }
    };
    Ok((v, &s[end..]))
}

/// A decoding error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct InfluxError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// What is wrong.
    pub kind: InfluxErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InfluxErrorKind {
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// The measurement is empty.
    #[error("empty measurement")]
    EmptyMeasurement,
    /// A tag without `=`, or with an empty key or value.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// The line has no field set.
    #[error("missing fields")]
    MissingFields,
    /// A field without `=` or with an empty key.
    #[error("invalid field {0:?}")]
    InvalidField(String),
    /// A field value that is none of the types.
    #[error("invalid field value {0:?}")]
    InvalidFieldValue(String),
    /// A string field without its closing quote.
    #[error("unterminated string field")]
    UnterminatedString,
    /// The timestamp is not an integer, or out of range.
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// Something specific was expected.
    #[error("expected {0}")]
    Expected(&'static str),
}

/// Decodes line protocol; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct InfluxDecoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    done: bool,
    precision: Precision,
}

impl<'a> InfluxDecoder<'a> {
    /// A decoder with nanosecond timestamps.
    pub fn new(input: &'a [u8]) -> Self {
        InfluxDecoder { bytes: input, pos: 0, line: 0, done: false, precision: Precision::Nanoseconds }
    }

    /// Reads timestamps in `precision` instead.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    fn fail<T>(&mut self, off: usize, kind: InfluxErrorKind) -> Option<Result<T, InfluxError>> {
        self.done = true;
        Some(Err(InfluxError { line: self.line, column: off + 1, kind }))
    }
}

impl<'a> Iterator for InfluxDecoder<'a> {
    type Item = Result<InfluxLine<'a>, InfluxError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(raw) = super::next_line(self.bytes, &mut self.pos, &mut self.line) else {
                self.done = true;
                return None;
            };
            let line = match std::str::from_utf8(raw) {
                Ok(l) => l,
                Err(e) => return self.fail(e.valid_up_to(), InfluxErrorKind::InvalidUtf8),
            };
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            return match parse_line(line, self.precision) {
                Ok(l) => Some(Ok(l)),
                Err((off, kind)) => self.fail(off, kind),
            };
        }
    }
}

impl std::iter::FusedIterator for InfluxDecoder<'_> {}

fn parse_line(line: &str, precision: Precision) -> Result<InfluxLine<'_>, (usize, InfluxErrorKind)> {
    // measurement up to an unescaped ',' or ' '
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] != b',' && b[i] != b' ' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    let i = i.min(b.len());
    if i == 0 {
        return Err((0, InfluxErrorKind::EmptyMeasurement));
    }
    let measurement = Escaped { raw: &line[..i], specials: MEASUREMENT_SPECIALS };
    // tags up to an unescaped ' '
    let mut j = i;
    if b.get(i) == Some(&b',') {
        j = i + 1;
        let mut tag_start = j;
        loop {
            let (tag, rest) = split_at_any(&line[tag_start..], b", ");
            let (k, v) = split_unescaped(tag, b'=');
            if k.is_empty() || v.len() <= 1 {
                return Err((tag_start, InfluxErrorKind::InvalidTag(tag.to_string())));
            }
            j = tag_start + tag.len();
            match rest.as_bytes().first() {
                Some(b',') => tag_start = j + 1,
                _ => break,
            }
        }
    }
    let raw_tags = if j > i { &line[i + 1..j] } else { "" };
    if b.get(j) != Some(&b' ') {
        return Err((j, InfluxErrorKind::MissingFields));
    }
    let fields_start = j + 1;
    // fields: key=value pairs separated by ',' until an unescaped, unquoted ' '
    let mut k = fields_start;
    loop {
        let (key, rest) = split_at_any(&line[k..], b"=, ");
        if key.is_empty() || !rest.starts_with('=') {
            return Err((k, InfluxErrorKind::InvalidField(key.to_string())));
        }
        let vstart = k + key.len() + 1;
        let vtext = &line[vstart..];
        let vtext = if vtext.starts_with('"') {
            vtext
        } else {
            &vtext[..memchr::memchr(b' ', vtext.as_bytes()).unwrap_or(vtext.len())]
        };
        let (_, rest) = field_value_end(vtext).map_err(|(o, kind)| (vstart + o, kind))?;
        k = vstart + (vtext.len() - rest.len());
        if rest.starts_with(',') {
            k += 1;
            continue;
        }
        break;
    }
    let raw_fields = &line[fields_start..k];
    let mut timestamp_ms = None;
    if k < b.len() {
        // b[k] == ' '
        let ts = line[k + 1..].trim_end_matches([' ', '\t']);
        if !ts.is_empty() {
            let t = parse_i64(ts)
                .and_then(|t| precision.to_ms(t))
                .ok_or_else(|| (k + 1, InfluxErrorKind::InvalidTimestamp(ts.to_string())))?;
            timestamp_ms = Some(t);
        }
    }
    Ok(InfluxLine { measurement, raw_tags, raw_fields, timestamp_ms })
}

/// Splits at the first unescaped byte from `stops`.
fn split_at_any<'s>(s: &'s str, stops: &[u8]) -> (&'s str, &'s str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if stops.contains(&b[i]) {
            return (&s[..i], &s[i..]);
        }
        i += 1;
    }
    (s, "")
}

/// An encoding error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InfluxEncodeError {
    /// An empty measurement, tag key, tag value or field key, or one with a newline.
    #[error("invalid {what} {text:?}")]
    Invalid {
        /// Which part.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// No fields.
    #[error("a line needs at least one field")]
    NoFields,
    /// A NaN or infinite float, which line protocol cannot hold.
    #[error("non-finite float field {0:?}")]
    NonFinite(String),
    /// A timestamp whose nanoseconds overflow `i64`.
    #[error("timestamp {0} ms overflows nanoseconds")]
    TimestampRange(i64),
}

/// A field value to encode (strings unescaped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldInput<'a> {
    /// A finite float.
    Float(f64),
    /// `…i`.
    Integer(i64),
    /// `…u`.
    UInteger(u64),
    /// `t`/`f`.
    Boolean(bool),
    /// A string (escaped on output).
    String(&'a str),
}

fn write_esc(out: &mut Vec<u8>, what: &'static str, s: &str, specials: &[u8]) -> Result<(), InfluxEncodeError> {
    if s.is_empty() || s.contains(['\n', '\r']) || s.ends_with('\\') {
        return Err(InfluxEncodeError::Invalid { what, text: s.to_string() });
    }
    for &c in s.as_bytes() {
        if specials.contains(&c) && c != b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    Ok(())
}

/// Appends one line (with `\n`): unescaped measurement, tags and fields; timestamp in
/// milliseconds written as nanoseconds.
///
/// # Errors
/// [`InfluxEncodeError`]; nothing is written then. Text ending in a backslash, or with a
/// backslash before a special character, cannot be written unambiguously and is refused.
pub fn write_line<'t>(
    out: &mut Vec<u8>,
    measurement: &str,
    tags: impl IntoIterator<Item = (&'t str, &'t str)>,
    fields: &[(&str, FieldInput<'_>)],
    timestamp_ms: Option<i64>,
) -> Result<(), InfluxEncodeError> {
    let mark = out.len();
    let r = (|| {
        if fields.is_empty() {
            return Err(InfluxEncodeError::NoFields);
        }
        check_backslashes("measurement", measurement, MEASUREMENT_SPECIALS)?;
        if measurement.starts_with('#') {
            return Err(InfluxEncodeError::Invalid { what: "measurement", text: measurement.to_string() });
        }
        write_esc(out, "measurement", measurement, MEASUREMENT_SPECIALS)?;
        for (k, v) in tags {
            check_backslashes("tag key", k, KEY_SPECIALS)?;
            check_backslashes("tag value", v, KEY_SPECIALS)?;
            out.push(b',');
            write_esc(out, "tag key", k, KEY_SPECIALS)?;
            out.push(b'=');
            write_esc(out, "tag value", v, KEY_SPECIALS)?;
        }
        out.push(b' ');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            check_backslashes("field key", k, KEY_SPECIALS)?;
            write_esc(out, "field key", k, KEY_SPECIALS)?;
            out.push(b'=');
            match *v {
                FieldInput::Float(f) => {
                    if !f.is_finite() {
                        return Err(InfluxEncodeError::NonFinite(k.to_string()));
                    }
                    write_float(out, f);
                    // an integral float would read back as a float anyway; keep it a float
                }
                FieldInput::Integer(n) => {
                    write_i64(out, n);
                    out.push(b'i');
                }
                FieldInput::UInteger(u) => {
                    use std::io::Write;
                    let _ = write!(out, "{u}u"); // ok: writing to a Vec cannot fail
                }
                FieldInput::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                FieldInput::String(s) => {
                    if s.contains(['\n', '\r']) {
                        return Err(InfluxEncodeError::Invalid { what: "string field", text: s.to_string() });
                    }
                    out.push(b'"');
                    for &c in s.as_bytes() {
                        if c == b'"' || c == b'\\' {
                            out.push(b'\\');
                        }
                        out.push(c);
                    }
                    out.push(b'"');
                }
            }
        }
        if let Some(ms) = timestamp_ms {
            let ns = ms.checked_mul(1_000_000).ok_or(InfluxEncodeError::TimestampRange(ms))?;
            out.push(b' ');
            write_i64(out, ns);
        }
        out.push(b'\n');
        Ok(())
    })();
    if r.is_err() {
        out.truncate(mark);
    }
    r
}

/// A backslash in text followed by a special character would read back as an escape.
fn check_backslashes(what: &'static str, s: &str, specials: &[u8]) -> Result<(), InfluxEncodeError> {
    let b = s.as_bytes();
    for w in b.windows(2) {
        if w[0] == b'\\' && specials.contains(&w[1]) {
            return Err(InfluxEncodeError::Invalid { what, text: s.to_string() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> InfluxError {
        InfluxDecoder::new(input.as_bytes()).find_map(Result::err).expect("an error")
    }

    #[test]
    fn decodes_escapes_and_types() {
        let input = br#"my\ meas,tag\,k=v\=1 f\ 1=1.5,s="a \"q\"",i=-2i,u=3u,b=F 1681200000123456789"#;
        let l = InfluxDecoder::new(input).next().unwrap().unwrap();
        assert_eq!(l.measurement.unescape(), "my meas");
        let tags: Vec<_> = l.tags().map(|(k, v)| (k.unescape().into_owned(), v.unescape().into_owned())).collect();
        assert_eq!(tags, [("tag,k".to_string(), "v=1".to_string())]);
        let f: Vec<_> = l.fields().map(|(k, v)| (k.unescape().into_owned(), v)).collect();
        assert_eq!(f[0], ("f 1".to_string(), FieldValue::Float(1.5)));
        match f[1].1 {
            FieldValue::String(s) => assert_eq!(s.unescape(), "a \"q\""),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(f[2].1, FieldValue::Integer(-2));
        assert_eq!(f[3].1, FieldValue::UInteger(3));
        assert_eq!(f[4].1, FieldValue::Boolean(false));
        assert_eq!(l.timestamp_ms, Some(1_681_200_000_123));
        let samples: Vec<_> = l.samples().collect();
        assert!(matches!(&samples[1], FieldSample::NotNumeric { field } if field == "s"));
        match &samples[0] {
            FieldSample::Sample { labels, value } => {
                assert_eq!(labels.to_string(), r#"my_meas_f_1{tag_k="v=1"}"#);
                assert_eq!(*value, 1.5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(err("# c\n\ncpu"), InfluxError { line: 3, column: 4, kind: InfluxErrorKind::MissingFields });
        let e = err("cpu,host v=1");
        assert_eq!((e.column, e.kind), (5, InfluxErrorKind::InvalidTag("host".into())));
        let e = err("cpu v=1,w 5");
        assert_eq!((e.column, e.kind), (9, InfluxErrorKind::InvalidField("w".into())));
        let e = err("cpu v=abc");
        assert_eq!((e.column, e.kind), (7, InfluxErrorKind::InvalidFieldValue("abc".into())));
        let e = err("cpu v=\"abc");
        assert_eq!((e.column, e.kind), (7, InfluxErrorKind::UnterminatedString));
        let e = err("cpu v=1 12x");
        assert_eq!((e.column, e.kind), (9, InfluxErrorKind::InvalidTimestamp("12x".into())));
        assert_eq!(err(" v=1").kind, InfluxErrorKind::EmptyMeasurement);
        let e = err("cpu v=NaN");
        assert_eq!(e.kind, InfluxErrorKind::InvalidFieldValue("NaN".into()));
    }
}
