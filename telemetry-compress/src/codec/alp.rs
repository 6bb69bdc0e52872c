//! The `alp` codec: Adaptive Lossless floating-Point compression, with ALP_RD for vectors that
//! are not decimals.
//!
//! A. Afroozeh, L. X. Kuffó, P. Boncz, *ALP: Adaptive Lossless floating-Point Compression*,
//! SIGMOD 2024 (PACMMOD 1(4)): §3.1-3.2 (decimal encoding with exponent `e` and factor `f`,
//! fast rounding, exceptions), §3.3 (sampling to pick `(e, f)`), §3.4 (ALP_RD: split each
//! double's bits into a dictionary-coded left part and a bit-packed right part), with the reference
//! implementation cwida/ALP for constants. Differences from the reference, kept simple on purpose:
//! `(e, f)` is chosen per vector from 32 sampled values over all 190 combinations (the paper
//! samples per row group first, then picks among the best 5 per vector), and ALP_RD is chosen per
//! vector when its size is smaller.
//!
//! Values are cut into vectors of 1024 (the last may be shorter). For value `v`, ALP stores
//! `d = round(v · 10^e · 10^-f)` when `d · 10^f · 10^-e` gives back exactly the bits of `v`;
//! other values (NaN, ±inf, `-0.0`, too many digits) are exceptions, stored verbatim.
//!
//! ```text
//! block:  ┌────────────┬──────────┬──────────┬─────┐
//!         │ n: uvarint │ vector 0 │ vector 1 │ …   │   ceil(n / 1024) vectors
//!         └────────────┴──────────┴──────────┴─────┘
//! ALP vector (kind 0):
//! ┌──────┬──────┬──────┬───────┬──────────────┬────────────┬────────────────────┬──────────────┬──────────────┐
//! │ 0:u8 │ e:u8 │ f:u8 │ bw:u8 │ base: i64 LE │ exc: u16 LE│ packed d - base:   │ exc positions│ exc values   │
//! │      │ ≤ 18 │ ≤ e  │ ≤ 64  │ (min of d)   │            │ bw bits, 16 lanes  │ u16 LE × exc │ f64 LE × exc │
//! └──────┴──────┴──────┴───────┴──────────────┴────────────┴────────────────────┴──────────────┴──────────────┘
//! ALP_RD vector (kind 1), r = right bit width (48..=63), k = dictionary size (1..=8):
//! ┌──────┬──────┬──────┬────────────────┬────────────┬─────────────────────┬──────────────────┬───────────┬───────────┐
//! │ 1:u8 │ r:u8 │ k:u8 │ dict: u16 × k  │ exc: u16 LE│ left codes:         │ right parts:     │ exc pos   │ exc left  │
//! │      │      │      │ (left parts)   │            │ ceil(log2 k) bits   │ r bits, 16 lanes │ u16 × exc │ u16 × exc │
//! └──────┴──────┴──────┴────────────────┴────────────┴─────────────────────┴──────────────────┴───────────┴───────────┘
//! ```
//!
//! Packed fields use the 16-lane layout of `ffor` (LSB first, little-endian `u64` words).
//! Timestamps, for the full-sample form, use the shared block layout of [`crate::codec`].
//! Decoding errors: [`ChunkError::UnexpectedEof`], [`ChunkError::Corrupt`] (bad `e`/`f`/width,
//! exception position out of range, unknown vector kind), [`ChunkError::TooLarge`].

use super::{Codec, check_count, decode_block, encode_block, read_count};
use crate::error::ChunkError;
use crate::ffor::{MAGIC_F, VECTOR, pack, packed_words, read_words, unpack, unpack_alp};
use crate::varint::put_uvarint;

pub(crate) const MAX_EXP: usize = 18;
pub(crate) const EXP: [f64; 19] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18];
pub(crate) const FRAC: [f64; 19] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18,
];
/// Encoded digits must stay below this magnitude (keeps the magic-number conversion exact).
const LIMIT: f64 = (1u64 << 50) as f64;
const SAMPLES: usize = 32;
const RD_MAX_LEFT: u32 = 16;
const RD_DICT: usize = 8;

/// ALP / ALP_RD.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alp;

#[inline(always)]
pub(crate) fn encode_one(v: f64, e: usize, f: usize) -> Option<i64> {
    let x = v * EXP[e] * FRAC[f];
    // NaN fails this comparison too.
    if x.abs() >= LIMIT || x.is_nan() {
        return None;
    }
    let d = ((x + MAGIC_F) - MAGIC_F) as i64;
    let back = (d as f64) * EXP[f] * FRAC[e];
    (back.to_bits() == v.to_bits()).then_some(d)
}

/// The `(e, f)` with the smallest estimated size on a sample of `vs`.
pub(crate) fn choose_exponents(vs: &[f64]) -> (usize, usize) {
    let step = (vs.len() / SAMPLES).max(1);
    let mut best = (usize::MAX, 0, 0);
    for e in (0..=MAX_EXP).rev() {
        for f in 0..=e {
            let (mut exc, mut lo, mut hi) = (0usize, i64::MAX, i64::MIN);
            for v in vs.iter().step_by(step) {
                match encode_one(*v, e, f) {
                    Some(d) => {
                        lo = lo.min(d);
                        hi = hi.max(d);
                    }
                    None => exc += 1,
                }
            }
            let count = vs.len().div_ceil(step);
            let bw = if lo > hi { 0 } else { 64 - (hi.wrapping_sub(lo) as u64).leading_zeros() as usize };
            let size = count * bw + exc * 80;
            if size < best.0 {
                best = (size, e, f);
            }
        }
    }
    (best.1, best.2)
}

fn bit_width(range: u64) -> u32 {
    64 - range.leading_zeros()
}

fn put_words(words: &[u64], out: &mut Vec<u8>) {
    out.reserve(words.len() * 8);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Encodes one vector as ALP; returns nothing, appends to `out`.
fn encode_alp_vector(vs: &[f64], e: usize, f: usize, out: &mut Vec<u8>, scratch: &mut Vec<u64>) {
    let mut digits = Vec::with_capacity(vs.len());
    let mut exc_pos = Vec::new();
    let mut fill = None;
    for (i, &v) in vs.iter().enumerate() {
        match encode_one(v, e, f) {
            Some(d) => {
                fill.get_or_insert(d);
                digits.push(d);
            }
            None => {
                exc_pos.push(i as u16);
                digits.push(i64::MIN);
            }
        }
    }
    let fill = fill.unwrap_or(0);
    for &p in &exc_pos {
        digits[p as usize] = fill;
    }
    let lo = digits.iter().copied().min().unwrap_or(0);
    let hi = digits.iter().copied().max().unwrap_or(0);
    let bw = bit_width(hi.wrapping_sub(lo) as u64);
    let offs: Vec<u64> = digits.iter().map(|&d| d.wrapping_sub(lo) as u64).collect();
    scratch.clear();
    pack(&offs, bw, scratch);
    out.extend_from_slice(&[0, e as u8, f as u8, bw as u8]);
    out.extend_from_slice(&lo.to_le_bytes());
    out.extend_from_slice(&(exc_pos.len() as u16).to_le_bytes());
    put_words(scratch, out);
    for &p in &exc_pos {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for &p in &exc_pos {
        out.extend_from_slice(&vs[p as usize].to_bits().to_le_bytes());
    }
}

/// Chooses ALP_RD's right bit width and dictionary (§3.4) from a sample.
fn choose_rd(bits: &[u64]) -> (u32, Vec<u16>) {
    let step = (bits.len() / 256).max(1);
    let mut best = (usize::MAX, 63u32, Vec::new());
    let mut lefts: Vec<u16> = Vec::with_capacity(bits.len());
    for left_bw in 1..=RD_MAX_LEFT {
        let r = 64 - left_bw;
        lefts.clear();
        lefts.extend(bits.iter().step_by(step).map(|&b| (b >> r) as u16));
        lefts.sort_unstable();
        let mut runs: Vec<(usize, u16)> = Vec::new();
        for g in lefts.chunk_by(|a, b| a == b) {
            runs.push((g.len(), g[0]));
        }
        runs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        runs.truncate(RD_DICT);
        let covered: usize = runs.iter().map(|r| r.0).sum();
        let exc = lefts.len() - covered;
        let k = runs.len().max(1);
        let dict_bw = bit_width(k as u64 - 1) as usize;
        let size = lefts.len() * (r as usize + dict_bw) + exc * 32 + k * 16;
        if size < best.0 {
            best = (size, r, runs.iter().map(|r| r.1).collect());
        }
    }
    (best.1, best.2)
}

fn encode_rd_vector(vs: &[f64], out: &mut Vec<u8>, scratch: &mut Vec<u64>) {
    let bits: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
    let (r, mut dict) = choose_rd(&bits);
    if dict.is_empty() {
        dict.push(0);
    }
    let k = dict.len();
    let dict_bw = bit_width(k as u64 - 1);
    let rmask = (1u64 << r) - 1;
    let mut codes = Vec::with_capacity(bits.len());
    let mut exc = Vec::new();
    for (i, &b) in bits.iter().enumerate() {
        let left = (b >> r) as u16;
        match dict.iter().position(|&d| d == left) {
            Some(c) => codes.push(c as u64),
            None => {
                codes.push(0);
                exc.push((i as u16, left));
            }
        }
    }
    let rights: Vec<u64> = bits.iter().map(|&b| b & rmask).collect();
    out.extend_from_slice(&[1, r as u8, k as u8]);
    for d in &dict {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&(exc.len() as u16).to_le_bytes());
    scratch.clear();
    pack(&codes, dict_bw, scratch);
    put_words(scratch, out);
    scratch.clear();
    pack(&rights, r, scratch);
    put_words(scratch, out);
    for &(p, _) in &exc {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for &(_, l) in &exc {
        out.extend_from_slice(&l.to_le_bytes());
    }
}

/// Appends the ALP values-only form of `vs` to `out`.
pub(crate) fn alp_encode(vs: &[f64], out: &mut Vec<u8>) {
    put_uvarint(out, vs.len() as u64);
    let mut scratch = Vec::new();
    let mut tmp = Vec::new();
    for v in vs.chunks(VECTOR) {
        let (e, f) = choose_exponents(v);
        let start = out.len();
        encode_alp_vector(v, e, f, out, &mut scratch);
        // ALP_RD when decimals do not pay (§3.4): try it once ALP spends over 32 bits/value.
        if (out.len() - start) * 8 > v.len() * 32 {
            tmp.clear();
            encode_rd_vector(v, &mut tmp, &mut scratch);
            if tmp.len() < out.len() - start {
                out.truncate(start);
                out.extend_from_slice(&tmp);
            }
        }
    }
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], ChunkError> {
    let s = bytes.get(*pos..*pos + n).ok_or(ChunkError::UnexpectedEof { bit_offset: bytes.len() * 8, needed: 8 })?;
    *pos += n;
    Ok(s)
}

fn take_u16(bytes: &[u8], pos: &mut usize) -> Result<u16, ChunkError> {
    let s = take(bytes, pos, 2)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

/// Decodes the ALP values-only form, appending to `vs`.
pub(crate) fn alp_decode(bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let mut pos = 0;
    let n = read_count(bytes, &mut pos)?;
    // A vector takes at least 6 bytes.
    if n.div_ceil(VECTOR) * 6 > bytes.len() {
        return Err(ChunkError::UnexpectedEof { bit_offset: bytes.len() * 8, needed: 48 });
    }
    vs.reserve(n);
    let mut words = Vec::with_capacity(VECTOR);
    let mut words2 = Vec::with_capacity(VECTOR);
    let mut buf = [0u64; VECTOR];
    let mut buf2 = [0u64; VECTOR];
    let mut fbuf = [0f64; VECTOR];
    let mut left = n;
    while left > 0 {
        let m = left.min(VECTOR);
        left -= m;
        let start = vs.len();
        let kind_at = pos;
        let head = take(bytes, &mut pos, 3)?;
        match head[0] {
            0 => {
                let (e, f) = (head[1] as usize, head[2] as usize);
                let h = take(bytes, &mut pos, 11)?;
                let bw = h[0] as u32;
                if e > MAX_EXP || f > e || bw > 64 {
                    return Err(ChunkError::Corrupt { what: "ALP vector header", offset: kind_at });
                }
                let base = i64::from_le_bytes([h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]]);
                let exc = u16::from_le_bytes([h[9], h[10]]) as usize;
                read_words(bytes, &mut pos, packed_words(m, bw), &mut words)?;
                unpack_alp(&words, m, bw, base, EXP[f], FRAC[e], &mut fbuf);
                vs.extend_from_slice(&fbuf[..m]);
                let dst = &mut vs[start..];
                let ps = take(bytes, &mut pos, exc * 2)?;
                let xs = take(bytes, &mut pos, exc * 8)?;
                for (p, x) in ps.chunks_exact(2).zip(xs.chunks_exact(8)) {
                    let p = u16::from_le_bytes([p[0], p[1]]) as usize;
                    let x = f64::from_le_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
                    *dst.get_mut(p).ok_or(ChunkError::Corrupt { what: "ALP exception position", offset: pos })? = x;
                }
            }
            1 => {
                let (r, k) = (head[1] as u32, head[2] as usize);
                if !(64 - RD_MAX_LEFT..64).contains(&r) || k == 0 || k > RD_DICT {
                    return Err(ChunkError::Corrupt { what: "ALP_RD vector header", offset: kind_at });
                }
                let mut dict = [0u64; RD_DICT];
                for d in dict.iter_mut().take(k) {
                    *d = (take_u16(bytes, &mut pos)? as u64) << r;
                }
                let exc = take_u16(bytes, &mut pos)? as usize;
                let dict_bw = bit_width(k as u64 - 1);
                read_words(bytes, &mut pos, packed_words(m, dict_bw), &mut words)?;
                read_words(bytes, &mut pos, packed_words(m, r), &mut words2)?;
                unpack(&words, m, dict_bw, 0, &mut buf);
                unpack(&words2, m, r, 0, &mut buf2);
                vs.resize(start + m, 0.0);
                let dst = &mut vs[start..];
                for ((o, &c), &rt) in dst.iter_mut().zip(&buf[..m]).zip(&buf2[..m]) {
                    *o = f64::from_bits(dict[(c as usize) & (RD_DICT - 1)] | rt);
                }
                let ps = take(bytes, &mut pos, exc * 2)?;
                let ls = take(bytes, &mut pos, exc * 2)?;
                for (p, l) in ps.chunks_exact(2).zip(ls.chunks_exact(2)) {
                    let p = u16::from_le_bytes([p[0], p[1]]) as usize;
                    let l = u16::from_le_bytes([l[0], l[1]]) as u64;
                    if p >= m {
                        return Err(ChunkError::Corrupt { what: "ALP_RD exception position", offset: pos });
                    }
                    dst[p] = f64::from_bits((l << r) | buf2[p]);
                }
            }
            _ => return Err(ChunkError::Corrupt { what: "ALP vector kind", offset: kind_at }),
        }
    }
    if pos != bytes.len() {
        return Err(ChunkError::TrailingBytes { extra: bytes.len() - pos, end: pos });
    }
    Ok(())
}

fn encode_values_into(vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    check_count(vs.len())?;
    alp_encode(vs, out);
    Ok(())
}

impl Codec for Alp {
    fn name(&self) -> &'static str {
        "alp"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        encode_block(ts, vs, out, encode_values_into)
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        decode_block(bytes, ts, vs, alp_decode)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        encode_values_into(vs, out)
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        alp_decode(bytes, vs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(vs: &[f64]) -> usize {
        let mut out = Vec::new();
        Alp.encode_values(vs, &mut out).unwrap();
        let mut back = Vec::new();
        Alp.decode_values(&out, &mut back).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        out.len()
    }

    #[test]
    fn decimals_compress_and_specials_are_exceptions() {
        let mut vs: Vec<f64> = (0..3000).map(|i| ((i * 37) % 1000 + 2000) as f64 / 100.0).collect();
        vs[5] = f64::NAN;
        vs[6] = -0.0;
        vs[2000] = f64::NEG_INFINITY;
        let size = rt(&vs);
        assert!(size * 8 < vs.len() * 20, "{size} bytes");
    }

    #[test]
    fn random_bits_take_alp_rd_and_round_trip() {
        let vs: Vec<f64> = (0..2100u64).map(|i| (i as f64 * 0.7316).sin() * 3.7).collect();
        rt(&vs);
        rt(&[]);
        rt(&[1.5]);
    }
}
