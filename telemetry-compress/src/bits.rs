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
//! [`BitWriter`] writes up to 64 bits per call with one unaligned 8-byte load/store (the buffer
//! keeps 8 zero bytes of slack past the end); [`BitReader`] refills a 64-bit buffer with one
//! 8-byte load ("variant 4" of F. Giesen, *Reading bits in far too many ways*, 2018). Neither has a
//! per-bit loop.

use crate::error::ChunkError;

const SLACK: usize = 8;

/// Appends bits to a growable byte buffer, most significant bit first.
#[derive(Debug, Clone)]
pub struct BitWriter {
    /// Stream bytes followed by at least `SLACK` zero bytes.
    buf: Vec<u8>,
    bit_len: usize,
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
        BitWriter { buf: vec![0; bytes + SLACK], bit_len: 0 }
    }

    /// A writer that continues after the first `bit_len` bits of `bytes`.
    ///
    /// Bits of `bytes` past `bit_len` are cleared so that later writes land on zeros.
    pub fn resume(bytes: &[u8], bit_len: usize) -> Self {
        let n = bit_len.div_ceil(8).min(bytes.len());
        let mut buf = Vec::with_capacity(n + SLACK + 64);
        buf.extend_from_slice(&bytes[..n]);
        let bit_len = bit_len.min(n * 8);
        if bit_len % 8 != 0 {
            let keep = bit_len % 8;
            let last = n - 1;
            buf[last] &= !(0xffu8 >> keep);
        }
        buf.resize(n + SLACK, 0);
        BitWriter { buf, bit_len }
    }

    /// Number of bits written.
    #[inline]
    pub fn bit_len(&self) -> usize {
        self.bit_len
    }

    /// The bytes written so far; the last byte is padded with zero bits.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.bit_len.div_ceil(8)]
    }

    /// [`as_bytes`](Self::as_bytes) plus one zero byte when `tail` is set.
    #[inline]
    pub(crate) fn as_bytes_with_tail(&self, tail: bool) -> &[u8] {
        &self.buf[..self.bit_len.div_ceil(8) + tail as usize]
    }

    /// The bytes written so far, the last byte padded with zero bits.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.truncate(self.bit_len.div_ceil(8));
        self.buf
    }

    /// Mutable access to a whole byte already written (used to patch headers).
    #[inline]
    pub(crate) fn byte_mut(&mut self, index: usize) -> &mut u8 {
        &mut self.buf[index]
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_small(bit as u64, 1);
    }

    /// Writes one byte (8 bits, not necessarily aligned).
    #[inline]
    pub fn write_byte(&mut self, byte: u8) {
        self.write_small(byte as u64, 8);
    }

    /// Writes the low `n` bits of `value` (`n <= 64`), most significant first.
    #[inline]
    pub fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n > 56 {
            self.write_small(value >> 32, n - 32);
            self.write_small(value & 0xffff_ffff, 32);
        } else if n > 0 {
            self.write_small(value, n);
        }
    }

    /// `1 <= n <= 56`: with the in-byte offset at most 7 the bits fit one 8-byte word.
    #[inline(always)]
    fn write_small(&mut self, value: u64, n: u32) {
        let byte = self.bit_len >> 3;
        let off = (self.bit_len & 7) as u32;
        if byte + SLACK > self.buf.len() {
            self.grow(byte);
        }
        let v = (value << (64 - n)) >> off;
        let slot = &mut self.buf[byte..byte + 8];
        let cur = u64::from_be_bytes([slot[0], slot[1], slot[2], slot[3], slot[4], slot[5], slot[6], slot[7]]);
        slot.copy_from_slice(&(cur | v).to_be_bytes());
        self.bit_len += n as usize;
    }

    #[cold]
    fn grow(&mut self, byte: usize) {
        let want = (byte + SLACK).max(self.buf.len() * 2).max(64);
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
        assert_eq!(w.as_bytes(), &[0b1010_0000]);
    }

    #[test]
    fn eof_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8).unwrap(), 0xff);
        assert!(matches!(r.read_bit(), Err(ChunkError::UnexpectedEof { bit_offset: 8, .. })));
    }

    #[test]
    fn resume_clears_tail_bits() {
        let w = BitWriter::resume(&[0xff, 0xff], 12);
        assert_eq!(w.as_bytes(), &[0xff, 0xf0]);
    }
}
