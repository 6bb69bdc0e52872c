//! WAL record framing and payloads.
//!
//! Every record is framed as
//!
//! ```text
//! ┌──────────────┬──────────┬──────────────────────────────┬──────────────┐
//! │ len u32 LE   │ type u8  │ crc32c(type ‖ payload) u32 LE │ payload      │
//! └──────────────┴──────────┴──────────────────────────────┴──────────────┘
//! ```
//!
//! (`len` counts the payload only; CRC32C is the Castagnoli polynomial, as Prometheus's WAL
//! uses.) Payloads:
//!
//! - [`RecordType::Series`]: `count` uvarint, then per series `ref` uvarint, `labels` uvarint,
//!   and per label `name_len` uvarint, name bytes, `value_len` uvarint, value bytes;
//! - [`RecordType::Samples`]: `count` uvarint, `base_ref` uvarint, `base_t` varint, then per
//!   sample `ref - base_ref` varint, `t - base_t` varint, and the value's 8 bytes little endian;
//! - [`RecordType::Dropped`]: `count` uvarint, then `ref` uvarint each: series removed from the
//!   head by garbage collection.

use telemetry_core::Labels;

use crate::SeriesRef;

/// Bytes of a record header.
pub const HEADER_LEN: usize = 9;

/// The kind of a WAL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// New series: reference and labels.
    Series = 1,
    /// A batch of samples (one commit).
    Samples = 2,
    /// Series removed by garbage collection.
    Dropped = 3,
}

impl RecordType {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordType::Series),
            2 => Some(RecordType::Samples),
            3 => Some(RecordType::Dropped),
            _ => None,
        }
    }
}

/// One sample as the WAL holds it: the series reference, timestamp (ms) and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// The series.
    pub series_ref: SeriesRef,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (bit pattern preserved).
    pub value: f64,
}

/// A series as the WAL holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefSeries {
    /// The reference samples use.
    pub series_ref: SeriesRef,
    /// Its labels.
    pub labels: Labels,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series.
    Series(Vec<RefSeries>),
    /// Samples of one commit.
    Samples(Vec<RefSample>),
    /// Series removed from the head.
    Dropped(Vec<SeriesRef>),
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the header or the declared length.
    #[error("record truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The checksum does not match.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The type byte is unknown (0 is what preallocated or zeroed space reads as).
    #[error("unknown record type {0}")]
    UnknownType(u8),
    /// The payload is malformed.
    #[error("malformed {kind:?} record payload at byte {offset}: {reason}")]
    Malformed {
        /// The record type.
        kind: RecordType,
        /// Offset within the payload.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Starts a record of `kind` in `buf`; returns the offset to pass to [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>, kind: RecordType) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    buf[at + 4] = kind as u8;
    at
}

/// Completes the record started at `at`: writes its length and checksum.
pub(crate) fn finish(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at - HEADER_LEN) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[at + 4..at + 5]), &buf[at + HEADER_LEN..]);
    buf[at + 5..at + 9].copy_from_slice(&crc.to_le_bytes());
}

#[inline]
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        buf.push(x as u8 | 0x80);
        x >>= 7;
    }
    buf.push(x as u8);
}

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, x: i64) {
    put_uvarint(buf, ((x << 1) ^ (x >> 63)) as u64);
}

/// Appends a framed series record.
pub(crate) fn encode_series<'a>(buf: &mut Vec<u8>, series: impl ExactSizeIterator<Item = (SeriesRef, &'a Labels)>) {
    let at = begin(buf, RecordType::Series);
    put_uvarint(buf, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(buf, r.0);
        put_uvarint(buf, labels.len() as u64);
        for l in labels {
            put_uvarint(buf, l.name.len() as u64);
            buf.extend_from_slice(l.name.as_bytes());
            put_uvarint(buf, l.value.len() as u64);
            buf.extend_from_slice(l.value.as_bytes());
        }
    }
    finish(buf, at);
}

/// Incremental encoder of one samples record.
pub(crate) struct SamplesEncoder {
    at: usize,
    count_at: usize,
    count: u32,
    base_ref: u64,
    base_t: i64,
}

impl SamplesEncoder {
    /// Starts a samples record in `buf`. The count is written as a fixed 5-byte uvarint so that
    /// it can be patched at the end.
    pub(crate) fn begin(buf: &mut Vec<u8>) -> Self {
        let at = begin(buf, RecordType::Samples);
        let count_at = buf.len();
        buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        SamplesEncoder { at, count_at, count: 0, base_ref: 0, base_t: 0 }
    }

    /// Adds one sample.
    #[inline]
    pub(crate) fn push(&mut self, buf: &mut Vec<u8>, r: SeriesRef, t: i64, v: f64) {
        if self.count == 0 {
            self.base_ref = r.0;
            self.base_t = t;
            put_uvarint(buf, r.0);
            put_varint(buf, t);
        }
        put_varint(buf, r.0.wrapping_sub(self.base_ref) as i64);
        put_varint(buf, t.wrapping_sub(self.base_t));
        buf.extend_from_slice(&v.to_bits().to_le_bytes());
        self.count += 1;
    }

    /// Samples pushed so far.
    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    /// Completes the record; an empty record is removed from `buf` again.
    pub(crate) fn finish(self, buf: &mut Vec<u8>) {
        if self.count == 0 {
            buf.truncate(self.at);
            return;
        }
        let c = self.count;
        buf[self.count_at..self.count_at + 5].copy_from_slice(&[
            (c as u8) | 0x80,
            ((c >> 7) as u8) | 0x80,
            ((c >> 14) as u8) | 0x80,
            ((c >> 21) as u8) | 0x80,
            (c >> 28) as u8,
        ]);
        finish(buf, self.at);
    }
}

/// Appends a framed dropped-series record.
pub(crate) fn encode_dropped(buf: &mut Vec<u8>, refs: &[SeriesRef]) {
    let at = begin(buf, RecordType::Dropped);
    put_uvarint(buf, refs.len() as u64);
    for r in refs {
        put_uvarint(buf, r.0);
    }
    finish(buf, at);
}

/// Parses a frame header: `(payload length, type byte, stored crc)`.
pub(crate) fn parse_header(h: &[u8; HEADER_LEN]) -> (usize, u8, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[5], h[6], h[7], h[8]]);
    (len, h[4], crc)
}

/// Checks a frame's checksum and type.
pub(crate) fn check(kind: u8, payload: &[u8], stored: u32) -> Result<RecordType, RecordError> {
    let computed = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    RecordType::from_u8(kind).ok_or(RecordError::UnknownType(kind))
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    kind: RecordType,
}

impl<'a> Cursor<'a> {
    fn err(&self, reason: &'static str) -> RecordError {
        RecordError::Malformed { kind: self.kind, offset: self.pos, reason }
    }

    #[inline]
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut x = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.b.get(self.pos) else {
                return Err(self.err("varint runs past the end"));
            };
            self.pos += 1;
            if shift >= 64 {
                return Err(self.err("varint overflow"));
            }
            x |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(x);
            }
            shift += 7;
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<i64, RecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err("length past the end"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = self.uvarint()? as usize;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| self.err("label is not UTF-8"))
    }

    /// A count that cannot exceed what the remaining bytes could hold at `min_each` bytes each.
    fn count(&mut self, min_each: usize) -> Result<usize, RecordError> {
        let n = self.uvarint()? as usize;
        if n.saturating_mul(min_each) > self.b.len() - self.pos {
            return Err(self.err("count larger than the payload can hold"));
        }
        Ok(n)
    }
}

/// Decodes the samples of a samples payload into `out` (cleared first).
pub(crate) fn decode_samples(payload: &[u8], out: &mut Vec<RefSample>) -> Result<(), RecordError> {
    out.clear();
    let mut c = Cursor { b: payload, pos: 0, kind: RecordType::Samples };
    let n = c.count(10)?;
    if n == 0 {
        return Ok(());
    }
    let base_ref = c.uvarint()?;
    let base_t = c.varint()?;
    out.reserve(n);
    for _ in 0..n {
        let dr = c.varint()?;
        let dt = c.varint()?;
        let v = c.bytes(8)?;
        let v = f64::from_bits(u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]));
        out.push(RefSample {
            series_ref: SeriesRef(base_ref.wrapping_add(dr as u64)),
            timestamp_ms: base_t.wrapping_add(dt),
            value: v,
        });
    }
    if c.pos != payload.len() {
        return Err(c.err("trailing bytes"));
    }
    Ok(())
}

/// Decodes a series payload.
pub(crate) fn decode_series(payload: &[u8]) -> Result<Vec<RefSeries>, RecordError> {
    let mut c = Cursor { b: payload, pos: 0, kind: RecordType::Series };
    let n = c.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = c.uvarint()?;
        let nl = c.count(2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = c.str()?;
            let value = c.str()?;
            labels.push((name, value));
        }
        let labels = Labels::from_pairs(labels).map_err(|_| c.err("invalid labels"))?;
        out.push(RefSeries { series_ref: SeriesRef(r), labels });
    }
    if c.pos != payload.len() {
        return Err(c.err("trailing bytes"));
    }
    Ok(out)
}

/// Decodes a dropped-series payload.
pub(crate) fn decode_dropped(payload: &[u8]) -> Result<Vec<SeriesRef>, RecordError> {
    let mut c = Cursor { b: payload, pos: 0, kind: RecordType::Dropped };
    let n = c.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SeriesRef(c.uvarint()?));
    }
    if c.pos != payload.len() {
        return Err(c.err("trailing bytes"));
    }
    Ok(out)
}
