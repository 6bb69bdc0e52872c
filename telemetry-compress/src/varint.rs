//! LEB128 varints (Go's `encoding/binary` `PutUvarint`/`PutVarint`: zig-zag for signed).

use crate::bits::{BitReader, BitWriter};
use crate::error::ChunkError;

/// Zig-zag maps signed to unsigned so that small magnitudes get small codes.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zag encoded as a varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v))
}

/// Reads an unsigned varint from `data` at `*pos`, advancing it. Rejects encodings longer than
/// 10 bytes or overflowing 64 bits, like Go's `binary.Uvarint`.
#[inline]
pub(crate) fn get_uvarint(data: &[u8], pos: &mut usize) -> Result<u64, ChunkError> {
    let start = *pos;
    let mut x = 0u64;
    let mut s = 0u32;
    for i in 0..10 {
        let Some(&b) = data.get(start + i) else {
            return Err(ChunkError::BadVarint { offset: start });
        };
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(ChunkError::BadVarint { offset: start });
            }
            *pos = start + i + 1;
            return Ok(x | ((b as u64) << s));
        }
        x |= ((b & 0x7f) as u64) << s;
        s += 7;
    }
    Err(ChunkError::BadVarint { offset: start })
}

/// Reads a zig-zag varint.
#[inline]
pub(crate) fn get_varint(data: &[u8], pos: &mut usize) -> Result<i64, ChunkError> {
    get_uvarint(data, pos).map(unzigzag)
}

/// Writes an unsigned varint into a bit stream, byte by byte.
#[inline]
pub(crate) fn write_uvarint_bits(w: &mut BitWriter, mut v: u64) {
    while v >= 0x80 {
        w.write_byte((v as u8) | 0x80);
        v >>= 7;
    }
    w.write_byte(v as u8);
}

/// Reads an unsigned varint from a bit stream (Go's `binary.ReadUvarint` over a `bstreamReader`).
#[inline]
pub(crate) fn read_uvarint_bits(r: &mut BitReader<'_>) -> Result<u64, ChunkError> {
    let start = r.bit_pos() / 8;
    let mut x = 0u64;
    let mut s = 0u32;
    for i in 0..10 {
        let b = r.read_byte()?;
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(ChunkError::BadVarint { offset: start });
            }
            return Ok(x | ((b as u64) << s));
        }
        x |= ((b & 0x7f) as u64) << s;
        s += 7;
    }
    Err(ChunkError::BadVarint { offset: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_795_264_945_122] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(get_varint(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
        let mut pos = 0;
        assert!(get_uvarint(&[0xff; 11], &mut pos).is_err());
        assert!(get_uvarint(&[0x80], &mut pos).is_err());
    }
}
