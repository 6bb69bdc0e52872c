//! The head's chunk encoding: Prometheus's XOR chunk (Gorilla, Pelkonen et al., VLDB 2015,
//! §4.1; Prometheus `tsdb/chunkenc/xor.go`), bit for bit.
//!
//! Layout: a 2-byte big-endian sample count, then the first sample as a signed varint timestamp
//! and the raw 64 value bits, the second as an unsigned varint timestamp delta and an XOR-coded
//! value, every further one as a delta-of-delta timestamp (`0`, `10`+14, `110`+17, `1110`+20,
//! `1111`+64 bits) and an XOR-coded value (`0` for equal; `10` reusing the previous
//! leading/trailing window; `11` + 5 bits leading zeros + 6 bits significant bits + the bits).
//!
//! This is the store's own minimal codec, kept internal so the head does not depend on the
//! shape of telemetry-compress's public chunk API.

/// Errors decoding a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("XOR chunk: {0}")]
pub struct ChunkError(pub &'static str);

/// An XOR chunk being appended to.
#[derive(Debug, Clone)]
pub(crate) struct XorChunk {
    buf: Vec<u8>,
    /// Bits still free in the last byte of `buf` (0 when a new byte is needed).
    free: u8,
    count: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub(crate) fn new() -> Self {
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(&[0, 0]);
        XorChunk { buf, free: 0, count: 0, t: 0, t_delta: 0, v: 0, leading: 0xff, trailing: 0 }
    }

    /// Number of samples.
    pub(crate) fn num_samples(&self) -> usize {
        self.count as usize
    }

    /// The encoded bytes (header included).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Takes the encoded bytes, trimmed, and resets the chunk to empty.
    pub(crate) fn take_bytes(&mut self) -> Box<[u8]> {
        let out = std::mem::take(&mut self.buf).into_boxed_slice();
        *self = XorChunk::new();
        out
    }

    #[inline]
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        if bit {
            let last = self.buf.len() - 1;
            self.buf[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `n` bits of `v`, most significant first.
    #[inline]
    fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let bits = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.buf.len() - 1;
            self.buf[last] |= bits << (self.free - take);
            self.free -= take;
            n -= take;
        }
    }

    fn write_uvarint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.write_bits((x as u8 | 0x80) as u64, 8);
            x >>= 7;
        }
        self.write_bits(x, 8);
    }

    fn write_varint(&mut self, x: i64) {
        self.write_uvarint(((x << 1) ^ (x >> 63)) as u64);
    }

    fn write_value(&mut self, v: u64) {
        let delta = v ^ self.v;
        if delta == 0 {
            self.write_bit(false);
            return;
        }
        self.write_bit(true);
        let mut leading = delta.leading_zeros() as u8;
        let trailing = delta.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31;
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.write_bit(true);
        self.write_bits(leading as u64, 5);
        let sig = 64 - leading - trailing;
        // 64 significant bits are written as 0: the 6-bit field cannot hold 64.
        self.write_bits(sig as u64 & 0x3f, 6);
        self.write_bits(delta >> trailing, sig);
    }

    /// Appends a sample. The caller keeps timestamps increasing and the count below 65,536.
    pub(crate) fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.write_varint(t);
                self.write_bits(vb, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t) as u64;
                self.write_uvarint(delta);
                self.t_delta = delta;
                self.write_value(vb);
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.write_bit(false);
                } else if (-(1 << 13) + 1..=(1 << 13)).contains(&dod) {
                    self.write_bits(0b10, 2);
                    self.write_bits(dod as u64, 14);
                } else if (-(1 << 16) + 1..=(1 << 16)).contains(&dod) {
                    self.write_bits(0b110, 3);
                    self.write_bits(dod as u64, 17);
                } else if (-(1 << 19) + 1..=(1 << 19)).contains(&dod) {
                    self.write_bits(0b1110, 4);
                    self.write_bits(dod as u64, 20);
                } else {
                    self.write_bits(0b1111, 4);
                    self.write_bits(dod as u64, 64);
                }
                self.t_delta = delta;
                self.write_value(vb);
            }
        }
        self.t = t;
        self.v = vb;
        self.count += 1;
        self.buf[..2].copy_from_slice(&self.count.to_be_bytes());
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize, // bit position
}

impl BitReader<'_> {
    #[inline]
    fn bit(&mut self) -> Result<bool, ChunkError> {
        let byte = *self.buf.get(self.pos >> 3).ok_or(ChunkError("unexpected end of data"))?;
        let b = (byte >> (7 - (self.pos & 7))) & 1 == 1;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn bits(&mut self, n: u8) -> Result<u64, ChunkError> {
        if self.pos + n as usize > self.buf.len() * 8 {
            return Err(ChunkError("unexpected end of data"));
        }
        let mut out = 0u64;
        let mut n = n as usize;
        while n > 0 {
            let off = self.pos & 7;
            let avail = 8 - off;
            let take = n.min(avail);
            let byte = self.buf[self.pos >> 3] as u64; // ok: bounds checked above
            let bits = (byte >> (avail - take)) & ((1u64 << take) - 1);
            out = (out << take) | bits;
            self.pos += take;
            n -= take;
        }
        Ok(out)
    }

    fn uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut x = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.bits(8)?;
            if shift >= 64 {
                return Err(ChunkError("varint overflow"));
            }
            x |= (b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
            shift += 7;
        }
    }

    fn varint(&mut self) -> Result<i64, ChunkError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Prometheus's reading of an `n`-bit delta of delta: values above `2^(n-1)` are negative.
fn dod_from_bits(v: u64, n: u8) -> i64 {
    if v > 1 << (n - 1) { v as i64 - (1i64 << n) } else { v as i64 }
}

/// Number of samples a chunk's header declares.
pub(crate) fn chunk_len(bytes: &[u8]) -> usize {
    match bytes {
        [a, b, ..] => u16::from_be_bytes([*a, *b]) as usize,
        _ => 0,
    }
}

/// Decodes every sample of `bytes`, appending to `ts` and `vs`.
pub(crate) fn decode_into(bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let n = chunk_len(bytes);
    if bytes.len() < 2 {
        return Err(ChunkError("shorter than its header"));
    }
    ts.reserve(n);
    vs.reserve(n);
    let mut r = BitReader { buf: &bytes[2..], pos: 0 };
    let mut t = 0i64;
    let mut delta = 0u64;
    let mut v = 0u64;
    let mut leading = 0u8;
    let mut trailing = 0u8;
    for i in 0..n {
        match i {
            0 => {
                t = r.varint()?;
                v = r.bits(64)?;
            }
            _ => {
                if i == 1 {
                    delta = r.uvarint()?;
                } else {
                    let mut prefix = 0u8;
                    while prefix < 4 && r.bit()? {
                        prefix += 1;
                    }
                    let dod = match prefix {
                        0 => 0,
                        1 => dod_from_bits(r.bits(14)?, 14),
                        2 => dod_from_bits(r.bits(17)?, 17),
                        3 => dod_from_bits(r.bits(20)?, 20),
                        _ => r.bits(64)? as i64,
                    };
                    delta = delta.wrapping_add(dod as u64);
                }
                t = t.wrapping_add(delta as i64);
                if r.bit()? {
                    if r.bit()? {
                        leading = r.bits(5)? as u8;
                        let mut sig = r.bits(6)? as u8;
                        if sig == 0 {
                            sig = 64;
                        }
                        if leading as u32 + sig as u32 > 64 {
                            return Err(ChunkError("leading zeros and significant bits exceed 64"));
                        }
                        trailing = 64 - leading - sig;
                    }
                    let sig = 64 - leading - trailing;
                    let bits = r.bits(sig)?;
                    v ^= bits << trailing;
                }
            }
        }
        ts.push(t);
        vs.push(f64::from_bits(v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(start in any::<i64>(), deltas in proptest::collection::vec(0i64..10_000_000, 0..300),
                      vals in proptest::collection::vec(any::<u64>(), 300)) {
            let mut c = XorChunk::new();
            let mut ts = vec![];
            let mut t = start / 4;
            for d in deltas {
                t += d;
                ts.push(t);
            }
            for (i, &t) in ts.iter().enumerate() {
                let v = if i % 3 == 0 { vals[i] } else { vals[i] & 0xffff_0000_0000_00ff };
                c.append(t, f64::from_bits(v));
            }
            let (mut gt, mut gv) = (vec![], vec![]);
            decode_into(c.bytes(), &mut gt, &mut gv).unwrap();
            prop_assert_eq!(&gt, &ts);
            for (i, v) in gv.iter().enumerate() {
                let want = if i % 3 == 0 { vals[i] } else { vals[i] & 0xffff_0000_0000_00ff };
                prop_assert_eq!(v.to_bits(), want);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (mut t, mut v) = (vec![], vec![]);
            let _ = decode_into(&bytes, &mut t, &mut v);
        }
    }
}
