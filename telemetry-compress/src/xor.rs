//! Prometheus's XOR chunk: Gorilla timestamps and values, byte for byte as Prometheus writes them.
//!
//! Source: T. Pelkonen et al., *Gorilla: A Fast, Scalable, In-Memory Time Series Database*,
//! VLDB 2015, §4.1.1 (delta-of-delta timestamps) and §4.1.2 (XOR values); with Prometheus's
//! changes from `tsdb/chunkenc/xor.go` (v2.42): millisecond timestamps, wider
//! delta-of-delta buckets, a varint first timestamp and first delta, leading zeros capped at 31.
//!
//! # Layout
//!
//! ```text
//! ┌──────────────────┬───────────────────┬───────────────┬──────────────────┬──────────────┬─────┬─────────┐
//! │ count: u16 BE    │ t0: varint (zz)   │ v0: 64 bits   │ Δ1: uvarint      │ value 1      │ ... │ padding │
//! │ (2 bytes)        │ (1-10 bytes)      │ (raw f64 bits)│ (t1 - t0, bytes) │ (XOR, below) │     │ 0 bits  │
//! └──────────────────┴───────────────────┴───────────────┴──────────────────┴──────────────┴─────┴─────────┘
//! then for every sample i ≥ 2: timestamp delta-of-delta, then value:
//!
//! dod = (ti - ti-1) - (ti-1 - ti-2)      (wrapping 64-bit arithmetic)
//! ┌───┐                                     dod = 0
//! │ 0 │
//! ├───┴┬──────────────┐                     -8191 ≤ dod ≤ 8192
//! │ 10 │ dod: 14 bits │
//! ├────┴┬─────────────┴┐                    -65535 ≤ dod ≤ 65536
//! │ 110 │ dod: 17 bits │
//! ├─────┴┬─────────────┴┐                   -524287 ≤ dod ≤ 524288
//! │ 1110 │ dod: 20 bits │
//! ├──────┼──────────────┴──────────┐        anything else
//! │ 1111 │ dod: 64 bits            │
//! └──────┴─────────────────────────┘
//! (an n-bit field holding a number above 2^(n-1) is negative: subtract 2^n; 2^(n-1) itself is positive)
//!
//! value, x = bits(vi) XOR bits(vi-1):
//! ┌───┐                                                         x = 0
//! │ 0 │
//! ├───┴┬──────────────────────────────┐                         x fits the previous window
//! │ 10 │ x >> trailing: 64-lead-trail │                         (lz(x) ≥ lead, tz(x) ≥ trail)
//! ├────┼──────────┬─────────────┬─────┴───────────────────┐     new window
//! │ 11 │ lead: 5  │ sig: 6 bits │ x >> tz(x): sig bits    │     lead = min(lz(x), 31);
//! └────┴──────────┴─────────────┴─────────────────────────┘     sig = 64 - lead - tz(x), 64 written as 0
//! ```
//!
//! All fields are most significant bit first (see [`crate::bits`]). Timestamps are `i64`
//! milliseconds since the Unix epoch; values are `f64` and kept to the bit (NaN payloads, `-0.0`,
//! the stale marker).
//!
//! # What the chunk accepts
//!
//! Every `i64` timestamp sequence round-trips: equal, decreasing and huge deltas are written with
//! wrapping arithmetic exactly as Prometheus does (deltas that do not fit 20 bits take the 64-bit
//! bucket). The one thing [`XorChunk::append`] rejects is a 65,536th sample
//! ([`ChunkError::ChunkFull`]): the count is a `u16`. Ordering is the caller's business (the
//! store rejects out-of-order samples before they reach a chunk); [`XorIter::seek`] assumes
//! timestamps that do not decrease.
//!
//! # Errors when decoding
//!
//! Hostile or truncated bytes give [`ChunkError::TooShort`] (under 2 bytes),
//! [`ChunkError::UnexpectedEof`] (stream ends before `count` samples),
//! [`ChunkError::BadVarint`], [`ChunkError::BadValueWindow`] (lead + sig > 64, which Prometheus
//! would silently misread), and, in the validating [`XorChunk::from_bytes`] only,
//! [`ChunkError::TrailingBytes`] and [`ChunkError::NonZeroPadding`].

use telemetry_core::Sample;

use crate::bits::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::varint::{read_uvarint_bits, unzigzag, write_uvarint_bits, zigzag};

/// Largest number of samples an XOR chunk can hold (its count is a `u16`).
pub const XOR_MAX_SAMPLES: usize = u16::MAX as usize;

/// Prometheus's `bitRange`: does `x` fit an `n`-bit bucket?
#[inline(always)]
fn bit_range(x: i64, n: u32) -> bool {
    -((1i64 << (n - 1)) - 1) <= x && x <= 1i64 << (n - 1)
}

/// Encoder state shared by [`XorChunk`] and the `gorilla` codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XorEncoder {
    n: u64,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl XorEncoder {
    pub(crate) const fn new() -> Self {
        XorEncoder { n: 0, t: 0, v: 0, t_delta: 0, leading: 0xff, trailing: 0 }
    }

    /// Appends a sample; returns whether Prometheus's `bstream` would now end with an empty byte
    /// (see [`XorChunk::bytes`]).
    #[inline(always)]
    pub(crate) fn append(&mut self, w: &mut BitWriter, t: i64, v: f64) -> bool {
        let vb = v.to_bits();
        let tail = match self.n {
            0 => {
                write_uvarint_bits(w, zigzag(t));
                w.write_bits(vb, 64);
                w.bit_len().is_multiple_of(8)
            }
            1 => {
                let d = t.wrapping_sub(self.t) as u64;
                write_uvarint_bits(w, d);
                self.t_delta = d;
                self.write_value(w, vb)
            }
            _ => {
                let d = t.wrapping_sub(self.t) as u64;
                let dod = d.wrapping_sub(self.t_delta) as i64;
                self.t_delta = d;
                if dod == 0 {
                    self.write_value_after(w, vb, 0, 1)
                } else {
                    write_dod(w, dod);
                    self.write_value(w, vb)
                }
            }
        };
        self.t = t;
        self.v = vb;
        self.n += 1;
        tail
    }

    /// Values only (no timestamps): first value raw, then XOR. Used for bits/value figures.
    #[inline(always)]
    pub(crate) fn append_value(&mut self, w: &mut BitWriter, v: f64) {
        let vb = v.to_bits();
        if self.n == 0 {
            w.write_bits(vb, 64);
        } else {
            self.write_value(w, vb);
        }
        self.v = vb;
        self.n += 1;
    }

    /// Writes the XOR of `vb` with the previous value. Returns `true` when Prometheus's last
    /// `writeBits` call was whole bytes ending on a byte boundary: its `writeByte` then leaves an
    /// empty byte at the end of the stream.
    #[inline(always)]
    fn write_value(&mut self, w: &mut BitWriter, vb: u64) -> bool {
        self.write_value_after(w, vb, 0, 0)
    }

    /// [`write_value`](Self::write_value) preceded by the `pre_len <= 1` bits `pre` (the
    /// timestamp's `0` control bit), merged into the same writes.
    #[inline(always)]
    fn write_value_after(&mut self, w: &mut BitWriter, vb: u64, pre: u64, pre_len: u32) -> bool {
        let delta = vb ^ self.v;
        if delta == 0 {
            w.write_clean(pre << 1, pre_len + 1);
            return false;
        }
        let lead = (delta.leading_zeros() as u8).min(31);
        let trail = delta.trailing_zeros() as u8;
        if self.leading != 0xff && lead >= self.leading && trail >= self.trailing {
            let sig = 64 - self.leading as u32 - self.trailing as u32;
            let x = delta >> self.trailing;
            let head = (pre << 2) | 0b10;
            if sig + pre_len + 2 <= 64 {
                w.write_clean((head << sig) | x, sig + pre_len + 2);
            } else {
                w.write_clean(head, pre_len + 2);
                w.write_clean(x, sig);
            }
            return sig.is_multiple_of(8) && w.bit_len().is_multiple_of(8);
        }
        self.leading = lead;
        self.trailing = trail;
        let sig = 64 - lead as u32 - trail as u32;
        let head = (pre << 13) | (0b11 << 11) | ((lead as u64) << 6) | (sig as u64 & 63);
        let x = delta >> trail;
        if sig + pre_len + 13 <= 64 {
            w.write_clean((head << sig) | x, pre_len + 13 + sig);
        } else {
            w.write_clean(head, pre_len + 13);
            w.write_clean(x, sig);
        }
        sig.is_multiple_of(8) && w.bit_len().is_multiple_of(8)
    }
}

#[inline(always)]
pub(crate) fn write_dod_pub(w: &mut BitWriter, dod: i64) {
    write_dod(w, dod)
}

/// Reads one delta-of-delta bucket.
#[inline(always)]
pub(crate) fn read_dod_pub(r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
    read_dod(r)
}

#[inline(always)]
fn read_dod(r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
    let p = r.peek_lenient(4);
    let sz = if p & 0b1000 == 0 {
        r.consume(1)?;
        return Ok(0);
    } else if p & 0b0100 == 0 {
        r.consume(2)?;
        14
    } else if p & 0b0010 == 0 {
        r.consume(3)?;
        17
    } else if p & 0b0001 == 0 {
        r.consume(4)?;
        20
    } else {
        r.consume(4)?;
        return Ok(r.read_bits(64)? as i64);
    };
    let mut bits = r.read_bits(sz)?;
    if bits > 1 << (sz - 1) {
        bits = bits.wrapping_sub(1 << sz);
    }
    Ok(bits as i64)
}

#[inline(always)]
fn write_dod(w: &mut BitWriter, dod: i64) {
    let u = dod as u64;
    if dod == 0 {
        w.write_clean(0, 1);
    } else if bit_range(dod, 14) {
        w.write_clean((0b10 << 14) | (u & 0x3fff), 16);
    } else if bit_range(dod, 17) {
        w.write_clean((0b110 << 17) | (u & 0x1_ffff), 20);
    } else if bit_range(dod, 20) {
        w.write_clean((0b1110 << 20) | (u & 0xf_ffff), 24);
    } else {
        w.write_clean(0b1111, 4);
        w.write_clean(u, 64);
    }
}

/// Decoder state: Prometheus's `xorIterator` without the sample count.
#[derive(Debug, Clone)]
pub(crate) struct XorDecoder<'a> {
    pub(crate) r: BitReader<'a>,
    pub(crate) n: u64,
    pub(crate) t: i64,
    pub(crate) v: u64,
    pub(crate) t_delta: u64,
    pub(crate) leading: u8,
    pub(crate) trailing: u8,
}

impl<'a> XorDecoder<'a> {
    pub(crate) fn new(r: BitReader<'a>) -> Self {
        XorDecoder { r, n: 0, t: 0, v: 0, t_delta: 0, leading: 0, trailing: 0 }
    }

    /// Decodes the next sample as `(timestamp, value bits)`.
    #[inline(always)]
    pub(crate) fn next_sample(&mut self) -> Result<(i64, u64), ChunkError> {
        match self.n {
            0 => {
                self.t = unzigzag(read_uvarint_bits(&mut self.r)?);
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = read_uvarint_bits(&mut self.r)?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let dod = read_dod(&mut self.r)?;
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.n += 1;
        Ok((self.t, self.v))
    }

    /// Values-only stream (see [`XorEncoder::append_value`]).
    #[inline(always)]
    pub(crate) fn next_value(&mut self) -> Result<u64, ChunkError> {
        if self.n == 0 {
            self.v = self.r.read_bits(64)?;
        } else {
            self.read_value()?;
        }
        self.n += 1;
        Ok(self.v)
    }

    #[inline(always)]
    fn read_value(&mut self) -> Result<(), ChunkError> {
        let p = self.r.peek_lenient(2);
        if p & 0b10 == 0 {
            self.r.consume(1)?;
            return Ok(());
        }
        let (trail, mbits) = if p & 0b01 == 0 {
            self.r.consume(2)?;
            (self.trailing as u32, 64 - self.leading as u32 - self.trailing as u32)
        } else {
            self.r.consume(2)?;
            let h = self.r.read_bits(11)?;
            let lead = (h >> 6) as u32;
            let mut mbits = (h & 63) as u32;
            if mbits == 0 {
                mbits = 64;
            }
            if lead + mbits > 64 {
                return Err(ChunkError::BadValueWindow { index: self.n as usize, leading: lead, significant: mbits });
            }
            let trail = 64 - lead - mbits;
            self.leading = lead as u8;
            self.trailing = trail as u8;
            (trail, mbits)
        };
        let bits = self.r.read_bits(mbits)?;
        self.v ^= bits << trail;
        Ok(())
    }
}

/// Reads the 2-byte count of an XOR chunk.
fn read_header(bytes: &[u8]) -> Result<(usize, &[u8]), ChunkError> {
    match bytes {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]) as usize, rest)),
        _ => Err(ChunkError::TooShort { what: "XOR chunk", len: bytes.len(), needed: 2 }),
    }
}

/// Decodes all samples of the XOR chunk `bytes` (count header included), appending timestamps to
/// `ts` and values to `vs`; returns the number of samples. Bytes after the last sample are ignored
/// (use [`XorChunk::from_bytes`] to validate them too).
pub fn decode_xor_chunk(bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<usize, ChunkError> {
    let (n, body) = read_header(bytes)?;
    decode_stream(body, n, ts, vs)?;
    Ok(n)
}

/// Decodes `n` samples of a Prometheus bit stream (no count header).
pub(crate) fn decode_stream(body: &[u8], n: usize, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    // The cheapest sample takes 2 bits: more samples than that cannot be in the data.
    let cap = n.min(body.len() * 4 + 2);
    ts.reserve(cap);
    vs.reserve(cap);
    let mut d = XorDecoder::new(BitReader::new(body));
    for _ in 0..n.min(2) {
        let (t, v) = d.next_sample()?;
        ts.push(t);
        vs.push(f64::from_bits(v));
    }
    // The steady state with the decoder state in locals.
    let XorDecoder { mut r, mut t, mut v, t_delta: mut delta, leading, trailing, .. } = d;
    let (mut lead, mut trail) = (leading as u32, trailing as u32);
    for i in 2..n {
        let dod = read_dod(&mut r)?;
        delta = delta.wrapping_add(dod as u64);
        t = t.wrapping_add(delta as i64);
        let p = r.peek_lenient(2);
        if p & 0b10 == 0 {
            r.consume(1)?;
        } else {
            r.consume(2)?;
            if p & 0b01 != 0 {
                let h = r.read_bits(11)?;
                let l = (h >> 6) as u32;
                let mut m = (h & 63) as u32;
                if m == 0 {
                    m = 64;
                }
                if l + m > 64 {
                    return Err(ChunkError::BadValueWindow { index: i, leading: l, significant: m });
                }
                lead = l;
                trail = 64 - l - m;
            }
            let bits = r.read_bits(64 - lead - trail)?;
            v ^= bits << trail;
        }
        ts.push(t);
        vs.push(f64::from_bits(v));
    }
    Ok(())
}

/// A Prometheus XOR chunk being appended to, or read back from bytes.
///
/// ```
/// use telemetry_compress::XorChunk;
/// let mut c = XorChunk::new();
/// c.append(1_000, 1.5).unwrap();
/// c.append(2_000, 1.5).unwrap();
/// let copy = XorChunk::from_bytes(c.bytes()).unwrap();
/// let samples: Vec<_> = copy.iter().collect();
/// assert_eq!(samples.len(), 2);
/// assert_eq!((copy.min_time(), copy.max_time()), (Some(1_000), Some(2_000)));
/// ```
#[derive(Debug, Clone)]
pub struct XorChunk {
    w: BitWriter,
    enc: XorEncoder,
    num: u16,
    /// Prometheus's `bstream` ends with an empty byte after a byte-aligned `writeByte`.
    go_tail: bool,
    min_t: i64,
    max_t: i64,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk (2 bytes: a zero count).
    pub fn new() -> Self {
        Self::with_capacity(128)
    }

    /// An empty chunk with room for `bytes` bytes before it reallocates.
    pub fn with_capacity(bytes: usize) -> Self {
        let w = BitWriter::with_prefix(&[0, 0], bytes);
        XorChunk { w, enc: XorEncoder::new(), num: 0, go_tail: false, min_t: i64::MAX, max_t: i64::MIN }
    }

    /// Appends a sample: `t_ms` in milliseconds since the Unix epoch, `v` kept to the bit.
    ///
    /// # Errors
    /// [`ChunkError::ChunkFull`] when the chunk already holds [`XOR_MAX_SAMPLES`] samples.
    #[inline]
    pub fn append(&mut self, t_ms: i64, v: f64) -> Result<(), ChunkError> {
        if self.num as usize == XOR_MAX_SAMPLES {
            return Err(ChunkError::ChunkFull);
        }
        self.go_tail = self.enc.append(&mut self.w, t_ms, v);
        self.w.flush_pending();
        self.num += 1;
        self.w.set_prefix_u16(self.num);
        self.min_t = self.min_t.min(t_ms);
        self.max_t = self.max_t.max(t_ms);
        Ok(())
    }

    /// Number of samples in the chunk.
    #[inline]
    pub fn num_samples(&self) -> usize {
        self.num as usize
    }

    /// The chunk's bytes, exactly as Prometheus stores them: count header included, last byte
    /// zero-padded, and, like Prometheus's `bstream`, one extra zero byte when the last field
    /// written was a whole number of bytes ending on a byte boundary (its `writeByte` always
    /// opens a fresh byte).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.w.synced_bytes_with_tail(self.go_tail)
    }

    /// Size of [`bytes`](Self::bytes) in bytes.
    #[inline]
    pub fn size_bytes(&self) -> usize {
        self.w.bit_len().div_ceil(8) + self.go_tail as usize
    }

    /// The smallest timestamp in the chunk (ms), `None` when empty.
    pub fn min_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.min_t)
    }

    /// The largest timestamp in the chunk (ms), `None` when empty.
    pub fn max_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.max_t)
    }

    /// Validates `bytes` as a complete XOR chunk and returns it, ready for more appends.
    ///
    /// Every sample is decoded; the data must end within the byte after the last sample with zero
    /// padding bits (plus the one empty byte Prometheus leaves after a byte-aligned final field,
    /// see [`bytes`](Self::bytes)). Appending continues with the state Prometheus's `Appender()` restores
    /// (including its quirk: after exactly one sample the value window is `(0, 0)`, not unset).
    ///
    /// # Errors
    /// Any decoding error (see the module doc), [`ChunkError::TrailingBytes`],
    /// [`ChunkError::NonZeroPadding`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChunkError> {
        let (n, body) = read_header(bytes)?;
        let mut d = XorDecoder::new(BitReader::new(body));
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for _ in 0..n {
            let (t, _) = d.next_sample()?;
            min_t = min_t.min(t);
            max_t = max_t.max(t);
        }
        let used = d.r.bit_pos();
        let end = used.div_ceil(8);
        // Prometheus leaves one empty byte after a byte-aligned final field.
        let go_tail = n > 0 && used.is_multiple_of(8) && body.len() == end + 1 && body[end] == 0;
        if body.len() > end + go_tail as usize {
            return Err(ChunkError::TrailingBytes { extra: body.len() - end, end: end + 2 });
        }
        if !used.is_multiple_of(8) {
            let mask = 0xffu8 >> (used % 8);
            if body[end - 1] & mask != 0 {
                return Err(ChunkError::NonZeroPadding { bit_offset: 16 + used });
            }
        }
        let w = BitWriter::resume(bytes, 16 + used);
        let enc = if n == 0 {
            XorEncoder::new()
        } else {
            XorEncoder { n: n as u64, t: d.t, v: d.v, t_delta: d.t_delta, leading: d.leading, trailing: d.trailing }
        };
        Ok(XorChunk { w, enc, num: n as u16, go_tail, min_t, max_t })
    }

    /// Iterates over the samples.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.bytes())
    }

    /// Decodes every sample, appending timestamps to `ts` and values to `vs`; returns the count.
    ///
    /// # Errors
    /// None for a chunk built by [`append`](Self::append) or [`from_bytes`](Self::from_bytes);
    /// the `Result` is there for symmetry with [`decode_xor_chunk`].
    pub fn decode_into(&self, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<usize, ChunkError> {
        decode_xor_chunk(self.bytes(), ts, vs)
    }
}

/// Iterator over the samples of XOR chunk bytes, like Prometheus's `xorIterator`.
///
/// On corrupt bytes iteration stops early and [`error`](Self::error) says why.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    d: XorDecoder<'a>,
    total: usize,
    read: usize,
    cur: Option<Sample>,
    err: Option<ChunkError>,
}

impl<'a> XorIter<'a> {
    /// An iterator over `bytes` (count header included). Not validated up front: errors surface
    /// through [`error`](Self::error).
    pub fn new(bytes: &'a [u8]) -> Self {
        let (total, body, err) = match read_header(bytes) {
            Ok((n, body)) => (n, body, None),
            Err(e) => (0, &[][..], Some(e)),
        };
        XorIter { d: XorDecoder::new(BitReader::new(body)), total, read: 0, cur: None, err }
    }

    /// The error that stopped iteration early, if any.
    pub fn error(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    /// The sample most recently returned by `next` or `seek`.
    pub fn at(&self) -> Option<Sample> {
        self.cur
    }

    /// Advances to the first sample with timestamp `>= t_ms` and returns it; `None` when there
    /// is none. If the current sample already qualifies it is returned again without advancing
    /// (Prometheus's `Seek` contract).
    pub fn seek(&mut self, t_ms: i64) -> Option<Sample> {
        if let Some(s) = self.cur
            && s.timestamp_ms >= t_ms
        {
            return Some(s);
        }
        self.by_ref().find(|s| s.timestamp_ms >= t_ms)
    }
}

impl Iterator for XorIter<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        if self.read >= self.total || self.err.is_some() {
            return None;
        }
        match self.d.next_sample() {
            Ok((t, v)) => {
                self.read += 1;
                let s = Sample::new(t, f64::from_bits(v));
                self.cur = Some(s);
                Some(s)
            }
            Err(e) => {
                self.err = Some(e);
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.total - self.read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ts: &[i64], vs: &[f64]) {
        let mut c = XorChunk::new();
        for (&t, &v) in ts.iter().zip(vs) {
            c.append(t, v).unwrap();
        }
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        assert_eq!(c.decode_into(&mut t2, &mut v2).unwrap(), ts.len());
        assert_eq!(t2, ts);
        assert_eq!(
            v2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let back = XorChunk::from_bytes(c.bytes()).unwrap();
        assert_eq!(back.bytes(), c.bytes());
        let it: Vec<Sample> = back.iter().collect();
        assert_eq!(it.len(), ts.len());
    }

    #[test]
    fn empty_chunk_is_two_zero_bytes() {
        let c = XorChunk::new();
        assert_eq!(c.bytes(), &[0, 0]);
        assert_eq!(XorChunk::from_bytes(&[0, 0]).unwrap().num_samples(), 0);
        assert!(matches!(XorChunk::from_bytes(&[0]), Err(ChunkError::TooShort { .. })));
    }

    #[test]
    fn buckets_edges_and_wrapping() {
        let mut ts = vec![0i64, 1000];
        for dod in [0i64, 8192, -8191, 8193, -8192, 65536, -65535, 65537, 524288, -524287, 524289, i64::MAX, i64::MIN] {
            let d = ts[ts.len() - 1].wrapping_sub(ts[ts.len() - 2]);
            let last = ts[ts.len() - 1];
            ts.push(last.wrapping_add(d.wrapping_add(dod)));
        }
        ts.push(i64::MIN);
        ts.push(i64::MAX);
        ts.push(i64::MAX);
        let vs: Vec<f64> =
            (0..ts.len()).map(|i| [0.0, -0.0, f64::NAN, f64::INFINITY, 1e-310, 3.25, 3.5][i % 7]).collect();
        round_trip(&ts, &vs);
    }

    #[test]
    fn resume_matches_prometheus_after_one_sample() {
        let mut c = XorChunk::new();
        c.append(1, 1.0).unwrap();
        let mut r = XorChunk::from_bytes(c.bytes()).unwrap();
        r.append(2, 2.0).unwrap();
        // The resumed appender reuses the (0,0) window: '10' + 64 bits, not '11' + header.
        let mut fresh = c.clone();
        fresh.append(2, 2.0).unwrap();
        assert_ne!(r.bytes(), fresh.bytes());
        let s: Vec<Sample> = r.iter().collect();
        assert_eq!(s[1].value, 2.0);
    }

    #[test]
    fn full_chunk_is_rejected() {
        let mut c = XorChunk::new();
        for i in 0..XOR_MAX_SAMPLES {
            c.append(i as i64, 0.0).unwrap();
        }
        assert_eq!(c.append(0, 0.0), Err(ChunkError::ChunkFull));
    }

    #[test]
    fn seek_follows_prometheus_contract() {
        let mut c = XorChunk::new();
        for i in 0..10 {
            c.append(i * 10, i as f64).unwrap();
        }
        let mut it = c.iter();
        assert_eq!(it.seek(35).unwrap().timestamp_ms, 40);
        assert_eq!(it.seek(20).unwrap().timestamp_ms, 40);
        assert_eq!(it.next().unwrap().timestamp_ms, 50);
        assert!(it.seek(1000).is_none());
    }
}
