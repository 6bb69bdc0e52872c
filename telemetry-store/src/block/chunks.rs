//! Chunk segment files and the chunk references kept in the index.
//!
//! # Segment file layout (`chunks/000001`, `chunks/000002`, …)
//!
//! ```text
//! ┌──────────────────────────────────────────────┐
//! │ magic "TCHK" (4 B) │ version u8 = 1 │ 3 × 0   │  header, 8 bytes
//! ├──────────────────────────────────────────────┤
//! │ len uvarint │ chunk bytes (len) │ crc32c u32 LE│  one entry per chunk; the checksum
//! │ …                                            │  covers the chunk bytes
//! └──────────────────────────────────────────────┘
//! ```
//!
//! Chunk bytes are telemetry-compress `store` chunks, or for [`Aggr::Sketch`] the layout of
//! the `sketches` module. A segment is closed once it would grow
//! past the writer's size cap (512 MiB by default).
//!
//! # Chunk references (a series' `meta` bytes in the index)
//!
//! ```text
//! count uvarint, then per chunk:
//!   aggr u8 │ min_t varint (zig-zag; delta from the previous chunk's max_t, absolute for the first)
//!   │ max_t - min_t uvarint │ segment uvarint │ offset uvarint │ length uvarint
//! ```
//!
//! `offset` is the byte offset of the entry's `len` field in the segment, `length` the chunk
//! bytes' length (checked against the entry).

use std::path::Path;

use crate::block::{Aggr, BlockError};
use crate::record::{put_uvarint, put_varint};

/// The magic number at the start of every chunk segment: `"TCHK"`.
pub const SEGMENT_MAGIC: [u8; 4] = *b"TCHK";
pub(crate) const SEGMENT_VERSION: u8 = 1;
pub(crate) const SEGMENT_HEADER_LEN: usize = 8;

/// Where one chunk of a series lives, and what it holds.
///
/// Segment files (`chunks/000001`, …) start with the magic `"TCHK"`, a version byte (1) and
/// three zero bytes; then, per chunk, its length (unsigned LEB128), its bytes (a
/// telemetry-compress `store` chunk) and the CRC32C of those bytes (4 bytes, little-endian).
/// In the index, a series' references are a count followed, per chunk, by the kind byte,
/// `min_t` (zig-zag LEB128, a delta from the previous chunk's `max_t`), `max_t - min_t`,
/// `segment`, `offset` (of the length field) and `length` (all LEB128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// What the chunk holds.
    pub aggr: Aggr,
    /// First timestamp in the chunk (ms).
    pub min_t: i64,
    /// Last timestamp in the chunk (ms, inclusive).
    pub max_t: i64,
    /// Segment number (file `chunks/{segment:06}`).
    pub segment: u32,
    /// Byte offset of the chunk's entry in the segment.
    pub offset: u64,
    /// Length of the chunk bytes.
    pub length: u32,
}

pub(crate) fn segment_path(dir: &Path, segment: u32) -> std::path::PathBuf {
    dir.join(super::CHUNKS_DIR).join(format!("{segment:06}"))
}

pub(crate) fn encode_refs(out: &mut Vec<u8>, refs: &[ChunkRef]) {
    put_uvarint(out, refs.len() as u64);
    let mut prev: Option<i64> = None;
    for r in refs {
        out.push(r.aggr as u8);
        put_varint(out, r.min_t.wrapping_sub(prev.unwrap_or(0)));
        put_uvarint(out, r.max_t.wrapping_sub(r.min_t) as u64);
        put_uvarint(out, u64::from(r.segment));
        put_uvarint(out, r.offset);
        put_uvarint(out, u64::from(r.length));
        prev = Some(r.max_t);
    }
}

pub(crate) fn get_uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let u = get_uvarint(b, pos)?;
    Some((u >> 1) as i64 ^ -((u & 1) as i64))
}

/// Parses a series' chunk references; `None` when the bytes are malformed.
pub(crate) fn decode_refs(b: &[u8]) -> Option<Vec<ChunkRef>> {
    let mut pos = 0;
    let n = get_uvarint(b, &mut pos)?;
    // Each reference takes at least 6 bytes: bound the allocation by the input.
    if n > b.len() as u64 / 6 {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut prev: Option<i64> = None;
    for _ in 0..n {
        let aggr = Aggr::from_u8(*b.get(pos)?)?;
        pos += 1;
        let min_t = prev.unwrap_or(0).wrapping_add(get_varint(b, &mut pos)?);
        let span = get_uvarint(b, &mut pos)?;
        let max_t = min_t.wrapping_add(span as i64);
        if max_t < min_t {
            return None;
        }
        let segment = u32::try_from(get_uvarint(b, &mut pos)?).ok()?;
        let offset = get_uvarint(b, &mut pos)?;
        let length = u32::try_from(get_uvarint(b, &mut pos)?).ok()?;
        out.push(ChunkRef { aggr, min_t, max_t, segment, offset, length });
        prev = Some(max_t);
    }
    (pos == b.len()).then_some(out)
}

/// Checks a mapped segment's header.
pub(crate) fn check_header(path: &Path, b: &[u8]) -> Result<(), BlockError> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(BlockError::corrupt(path, 0, format!("segment is {} bytes, shorter than its header", b.len())));
    }
    if b[..4] != SEGMENT_MAGIC {
        return Err(BlockError::corrupt(path, 0, "bad segment magic number"));
    }
    if b[4] != SEGMENT_VERSION {
        return Err(BlockError::corrupt(path, 4, format!("unsupported segment version {}", b[4])));
    }
    Ok(())
}

/// Granularity of [`Verified`]: one bit per this many bytes of a segment. A chunk entry takes
/// at least 5 bytes (1-byte length, 4-byte checksum), so two entries never share a bit.
const VERIFIED_GRAIN: u64 = 5;

/// Which chunk entries of one mapped segment have passed their CRC32C check since the block
/// was opened: one bit per [`VERIFIED_GRAIN`] bytes of entry offset, allocated on the first
/// read (1/40 of the segment's size). A chunk's checksum is computed on its first read only;
/// later reads of the same (immutable, mapped) bytes skip it. Lock-free: shared by every
/// thread reading the block.
#[derive(Debug)]
pub(crate) struct Verified {
    words: usize,
    bits: std::sync::OnceLock<Box<[std::sync::atomic::AtomicU64]>>,
}

impl Verified {
    /// An empty set for a segment of `len` bytes.
    pub(crate) fn new(len: usize) -> Verified {
        Verified { words: (len as u64 / VERIFIED_GRAIN / 64 + 1) as usize, bits: std::sync::OnceLock::new() }
    }

    fn slot(off: u64) -> (usize, u64) {
        let bit = off / VERIFIED_GRAIN;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// `true` when the entry at `off` (within the segment) was verified.
    fn contains(&self, off: u64) -> bool {
        let (w, m) = Self::slot(off);
        self.bits.get().and_then(|b| b.get(w)).is_some_and(|x| x.load(std::sync::atomic::Ordering::Relaxed) & m != 0)
    }

    /// Records the entry at `off` (within the segment) as verified.
    fn insert(&self, off: u64) {
        let (w, m) = Self::slot(off);
        let bits = self.bits.get_or_init(|| (0..self.words).map(|_| std::sync::atomic::AtomicU64::new(0)).collect());
        if let Some(x) = bits.get(w) {
            x.fetch_or(m, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The chunk bytes of `r` in the mapped segment `b`, checked: bounds and length on every
/// read, the CRC32C on the first read of the entry (recorded in `verified`, the segment's set).
/// `path` names the segment file in errors (built only on error).
pub(crate) fn chunk_bytes<'a>(
    path: impl Fn() -> std::path::PathBuf,
    b: &'a [u8],
    r: &ChunkRef,
    verified: &Verified,
) -> Result<&'a [u8], BlockError> {
    let off = r.offset;
    let bad = |reason: &str| BlockError::corrupt(path(), off, format!("chunk entry: {reason}"));
    let mut pos = usize::try_from(off).map_err(|_| bad("offset does not fit this platform"))?;
    if pos < SEGMENT_HEADER_LEN || pos >= b.len() {
        return Err(bad(&format!("offset past the segment's {} bytes", b.len())));
    }
    let len = get_uvarint(b, &mut pos).ok_or_else(|| bad("bad length varint"))?;
    if len != u64::from(r.length) {
        return Err(bad(&format!("length {len} differs from the index's {}", r.length)));
    }
    let end = pos.checked_add(len as usize).filter(|&e| e.checked_add(4).is_some_and(|x| x <= b.len()));
    let Some(end) = end else {
        return Err(bad(&format!("length {len} runs past the segment's {} bytes", b.len())));
    };
    let data = &b[pos..end];
    if verified.contains(off) {
        return Ok(data);
    }
    let stored = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
    let computed = crc32c::crc32c(data);
    if stored != computed {
        return Err(bad(&format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")));
    }
    verified.insert(off);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_verified_once_per_entry() {
        let mut seg = Vec::from(SEGMENT_MAGIC);
        seg.extend_from_slice(&[SEGMENT_VERSION, 0, 0, 0]);
        let mut refs = Vec::new();
        for chunk in [&b"abc"[..], &b""[..], &b"defgh"[..]] {
            let offset = seg.len() as u64;
            put_uvarint(&mut seg, chunk.len() as u64);
            seg.extend_from_slice(chunk);
            seg.extend_from_slice(&crc32c::crc32c(chunk).to_le_bytes());
            refs.push(ChunkRef { aggr: Aggr::Raw, min_t: 0, max_t: 0, segment: 1, offset, length: chunk.len() as u32 });
        }
        let p = || std::path::PathBuf::from("seg");
        let v = Verified::new(seg.len());
        // Damage the last chunk before its first read: caught.
        let mut bad = seg.clone();
        let at = refs[2].offset as usize + 2;
        bad[at] ^= 1;
        assert!(chunk_bytes(p, &bad, &refs[2], &v).unwrap_err().to_string().contains("checksum mismatch"));
        for r in &refs {
            assert!(!v.contains(r.offset));
            chunk_bytes(p, &seg, r, &v).unwrap();
            assert!(v.contains(r.offset));
        }
        // Entries never share a bit, so the damaged entry still fails under a fresh set.
        assert!(chunk_bytes(p, &bad, &refs[2], &Verified::new(seg.len())).is_err());
        assert_eq!(chunk_bytes(p, &seg, &refs[2], &v).unwrap(), b"defgh");
    }

    #[test]
    fn refs_round_trip() {
        let refs = vec![
            ChunkRef { aggr: Aggr::Raw, min_t: -5, max_t: 100, segment: 1, offset: 8, length: 300 },
            ChunkRef { aggr: Aggr::Raw, min_t: 101, max_t: 101, segment: 2, offset: 8, length: 3 },
            ChunkRef { aggr: Aggr::Max, min_t: 0, max_t: 7_200_000, segment: 2, offset: 1 << 33, length: 9 },
        ];
        let mut b = Vec::new();
        encode_refs(&mut b, &refs);
        assert_eq!(decode_refs(&b).unwrap(), refs);
        for cut in 0..b.len() {
            assert!(decode_refs(&b[..cut]).is_none());
        }
    }
}
