//! Bit I/O over bytes, most significant bit first, with a 64-bit buffer.
//!
//! The order is Prometheus's `bstream` (`tsdb/chunkenc/bstream.go`): the first bit written is the
//! most significant bit of the first byte.
//!
//! ```text
//!  byte 0                  byte 1
//! ┌─┬─┬─┬─┬─┬─┬─┬─┐       ┌─┬─┬─┬─┬─┬─┬─┬─┐
//! │0│1│2│3│4│5│6│7│       │8│9│ …           bit numbers in write order
//! └─┴─┴─┴─┴─┴─┴─┴─┘       └─┴─┴─
//! ```
//!
//! [`BitWriter`] collects up to 64 bits per call in a 64-bit accumulator and stores it 8 bytes at
//! a time; [`BitReader`] refills a 64-bit buffer with one
//! 8-byte load ("variant 4" of F. Giesen, *Reading bits in far too many ways*, 2018). Neither has a
//! per-bit loop.

use crate::error::ChunkError;

const SLACK: usize = 8;

/// Appends bits to a growable byte buffer, most significant bit first.
///
/// Bits collect in a 64-bit accumulator that is stored to memory 8 bytes at a time; call
/// [`finish`](Self::finish) (or [`into_bytes`](Self::into_bytes)) to read the bytes.
#[derive(Debug, Clone)]
pub struct BitWriter {
    /// Stream bytes; from `pos` on, at least `SLACK` bytes of room.
    buf: Vec<u8>,
    /// Whole bytes stored to `buf`.
    pos: usize,
    /// Pending bits, left-aligned.
    acc: u64,
    /// Number of pending bits (0..=63).
    acc_bits: u32,
}

impl Default for BitWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty writer with room for `bytes` bytes before it reallocates.
    pub fn with_capacity(bytes: usize) -> Self {
        BitWriter { buf: vec![0; bytes + 2 * SLACK], pos: 0, acc: 0, acc_bits: 0 }
    }

    /// A writer whose stream starts with the bytes `prefix` (they stay addressable through
    /// `byte_mut`, e.g. to patch a header).
    pub(crate) fn with_prefix(prefix: &[u8], bytes: usize) -> Self {
        let mut buf = vec![0; prefix.len() + bytes + 2 * SLACK];
        buf[..prefix.len()].copy_from_slice(prefix);
        BitWriter { buf, pos: prefix.len(), acc: 0, acc_bits: 0 }
    }

    /// A writer that continues after the first `bit_len` bits of `bytes` (clamped to its length).
    pub fn resume(bytes: &[u8], bit_len: usize) -> Self {
        let bit_len = bit_len.min(bytes.len() * 8);
        let pos = bit_len / 8;
        let mut buf = Vec::with_capacity(pos + 64 + 2 * SLACK);
        buf.extend_from_slice(&bytes[..pos]);
        buf.resize(pos + 2 * SLACK, 0);
        let acc_bits = (bit_len % 8) as u32;
        let acc = if acc_bits == 0 { 0 } else { ((bytes[pos] >> (8 - acc_bits)) as u64) << (64 - acc_bits) };
        let mut w = BitWriter { buf, pos, acc, acc_bits };
        w.sync();
        w
    }

    /// Number of bits written.
    #[inline]
    pub fn bit_len(&self) -> usize {
        self.pos * 8 + self.acc_bits as usize
    }

    /// Stores the pending bits to memory (without consuming them).
    #[inline(always)]
    fn sync(&mut self) {
        let slot = &mut self.buf[self.pos..self.pos + 8];
        slot.copy_from_slice(&self.acc.to_be_bytes());
    }

    /// The bytes written so far; the last byte is padded with zero bits.
    #[inline]
    pub fn finish(&mut self) -> &[u8] {
        self.sync();
        &self.buf[..self.bit_len().div_ceil(8)]
    }

    /// The bytes as of the last `sync` (the crate syncs after every chunk append), plus one zero
    /// byte when `tail` is set.
    #[inline]
    pub(crate) fn synced_bytes_with_tail(&self, tail: bool) -> &[u8] {
        &self.buf[..self.bit_len().div_ceil(8) + tail as usize]
    }

    /// Syncs pending bits to memory (see `synced_bytes_with_tail`).
    #[inline(always)]
    pub(crate) fn flush_pending(&mut self) {
        self.sync();
    }

    /// The bytes written so far, the last byte padded with zero bits.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.sync();
        let n = self.bit_len().div_ceil(8);
        self.buf.truncate(n);
        self.buf
    }

    /// Overwrites the first two bytes (a prefix given to `with_prefix`) with `v`, big-endian.
    #[inline(always)]
    pub(crate) fn set_prefix_u16(&mut self, v: u16) {
        debug_assert!(self.pos >= 2);
        if let Some(p) = self.buf.get_mut(..2) {
            p.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes one bit.
    #[inline(always)]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(bit as u64, 1);
    }

    /// Writes one byte (8 bits, not necessarily aligned).
    #[inline(always)]
    pub fn write_byte(&mut self, byte: u8) {
        self.write_bits(byte as u64, 8);
    }

    /// Writes the low `n` bits of `value` (`n <= 64`), most significant first.
    #[inline(always)]
    pub fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        self.write_clean(value & (u64::MAX >> (64 - n)), n);
    }

    /// [`write_bits`](Self::write_bits) for `1 <= n <= 64` and `v < 2^n` (not checked in
    /// release builds; a wider `v` corrupts earlier bits).
    #[inline(always)]
    pub(crate) fn write_clean(&mut self, v: u64, n: u32) {
        debug_assert!((1..=64).contains(&n) && (n == 64 || v >> n == 0));
        let free = 64 - self.acc_bits;
        if n < free {
            self.acc |= v << (free - n);
            self.acc_bits += n;
        } else {
            let rem = n - free;
            self.acc |= v >> rem;
            self.sync();
            self.pos += 8;
            if self.pos + 2 * SLACK > self.buf.len() {
                self.grow();
            }
            self.acc = if rem == 0 { 0 } else { v << (64 - rem) };
            self.acc_bits = rem;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let want = (self.pos + 2 * SLACK).max(self.buf.len() * 2).max(64);
        self.buf.resize(want, 0);
    }
}

/// Reads bits from a byte slice, most significant bit first.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load.
    pos: usize,
    /// Valid bits left-aligned; bits below `count` are either zero or the true next stream bits.
    buf: u64,
    count: u32,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0, buf: 0, count: 0 }
    }

    /// Bits consumed so far.
    #[inline]
    pub fn bit_pos(&self) -> usize {
        self.pos * 8 - self.count as usize
    }

    /// Bits left in the input.
    #[inline]
    pub fn bits_left(&self) -> usize {
        self.data.len() * 8 - self.bit_pos()
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.pos + 8 <= self.data.len() {
            let s = &self.data[self.pos..self.pos + 8];
            let w = u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            self.buf |= w >> self.count;
            self.pos += ((63 - self.count) >> 3) as usize;
            self.count |= 56;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.count <= 56 && self.pos < self.data.len() {
            self.buf |= (self.data[self.pos] as u64) << (56 - self.count);
            self.pos += 1;
            self.count += 8;
        }
    }

    /// Makes at least `n <= 56` bits available, or fails.
    #[inline(always)]
    fn ensure(&mut self, n: u32) -> Result<(), ChunkError> {
        if self.count < n {
            self.refill();
            if self.count < n {
                return Err(ChunkError::UnexpectedEof { bit_offset: self.bit_pos(), needed: n });
            }
        }
        Ok(())
    }

    /// The next `n <= 56` bits without consuming them; missing bits past the end read as zero.
    #[inline(always)]
    pub fn peek_lenient(&mut self, n: u32) -> u64 {
        debug_assert!(n > 0 && n <= 56);
        if self.count < n {
            self.refill();
        }
        self.buf >> (64 - n)
    }

    /// Consumes `n` bits previously peeked (`n` must not exceed the bits available).
    #[inline(always)]
    pub fn consume(&mut self, n: u32) -> Result<(), ChunkError> {
        if n > self.count {
            return Err(ChunkError::UnexpectedEof { bit_offset: self.bit_pos(), needed: n });
        }
        self.buf = if n == 64 { 0 } else { self.buf << n };
        self.count -= n;
        Ok(())
    }

    /// Reads one bit.
    #[inline(always)]
    pub fn read_bit(&mut self) -> Result<bool, ChunkError> {
        self.ensure(1)?;
        let b = self.buf >> 63;
        self.buf <<= 1;
        self.count -= 1;
        Ok(b != 0)
    }

    /// Reads `n <= 64` bits as the low bits of a `u64`.
    #[inline(always)]
    pub fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        debug_assert!(n <= 64);
        if n > 56 {
            let hi = self.read_small(n - 32)?;
            let lo = self.read_small(32)?;
            Ok((hi << 32) | lo)
        } else if n == 0 {
            Ok(0)
        } else {
            self.read_small(n)
        }
    }

    #[inline(always)]
    fn read_small(&mut self, n: u32) -> Result<u64, ChunkError> {
        self.ensure(n)?;
        let v = self.buf >> (64 - n);
        self.buf <<= n;
        self.count -= n;
        Ok(v)
    }

    /// Reads 8 bits.
    #[inline]
    pub fn read_byte(&mut self) -> Result<u8, ChunkError> {
        Ok(self.read_small(8)? as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_widths() {
        let widths: Vec<u32> = (0..=64).chain((0..=64).rev()).chain([1, 3, 57, 64, 63, 5]).collect();
        let mut w = BitWriter::new();
        for (i, &n) in widths.iter().enumerate() {
            let v = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            w.write_bits(v, n);
        }
        let total: usize = widths.iter().map(|&n| n as usize).sum();
        assert_eq!(w.bit_len(), total);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), total.div_ceil(8));
        let mut r = BitReader::new(&bytes);
        for (i, &n) in widths.iter().enumerate() {
            let v = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            assert_eq!(r.read_bits(n).unwrap(), v & mask, "field {i} width {n}");
        }
        assert!(r.bits_left() < 8);
    }

    #[test]
    fn msb_first_like_prometheus() {
        let mut w = BitWriter::new();
        w.write_bit(true);
        w.write_bits(0b01, 2);
        assert_eq!(w.finish(), &[0b1010_0000]);
    }

    #[test]
    fn eof_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8).unwrap(), 0xff);
        assert!(matches!(r.read_bit(), Err(ChunkError::UnexpectedEof { bit_offset: 8, .. })));
    }

    #[test]
    fn resume_clears_tail_bits() {
        let mut w = BitWriter::resume(&[0xff, 0xff], 12);
        assert_eq!(w.finish(), &[0xff, 0xf0]);
        w.write_bits(0b1010, 4);
        w.write_bits(u64::MAX, 64);
        assert_eq!(w.finish(), &[0xff, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }
}
