//! Bit packing of up to 1024 integers in 16 interleaved lanes (the FastLanes idea: Afroozeh &
//! Boncz, *The FastLanes Compression Layout*, VLDB 2023, §3), so that unpacking is the same
//! shift-and-mask on 16 independent words at a time and vectorizes.
//!
//! ```text
//! value i lives in lane i % 16, row i / 16; each lane packs its rows back to back,
//! LSB first, in `w`-bit fields; word j of lane l is stored at index j*16 + l:
//!
//!   word index:   0     1    …   15  │ 16    17   …   31  │ …
//!                 lane0 lane1 … lane15│ lane0 lane1 … lane15│
//!                 ── word 0 of every lane ──│── word 1 ──────│
//! ```
//!
//! A block of `n` values has `rows = ceil(n / 16)` rows and `ceil(rows * w / 64)` words per lane.

/// Values per full vector.
pub(crate) const VECTOR: usize = 1024;
/// Lanes.
pub(crate) const LANES: usize = 16;

/// Number of `u64` words that [`pack`] writes for `n` values of `w` bits.
#[inline]
pub(crate) fn packed_words(n: usize, w: u32) -> usize {
    let rows = n.div_ceil(LANES);
    (rows * w as usize).div_ceil(64) * LANES
}

/// Packs the low `w` bits of each of `vals` (at most 1024), appending words to `out`.
pub(crate) fn pack(vals: &[u64], w: u32, out: &mut Vec<u64>) {
    debug_assert!(vals.len() <= VECTOR && w <= 64);
    let words = packed_words(vals.len(), w);
    let start = out.len();
    out.resize(start + words, 0);
    if w == 0 {
        return;
    }
    let dst = &mut out[start..];
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    for (i, &v) in vals.iter().enumerate() {
        let (lane, row) = (i % LANES, i / LANES);
        let bit = row * w as usize;
        let (word, shift) = (bit / 64, (bit % 64) as u32);
        let v = v & mask;
        dst[word * LANES + lane] |= v << shift;
        if shift + w > 64 {
            dst[(word + 1) * LANES + lane] |= v >> (64 - shift);
        }
    }
}

/// Unpacks `rows * 16` values of `W` bits from `packed` into `out`, adding `base` (wrapping).
/// `packed` must hold `ceil(rows * W / 64) * 16` words.
#[inline(always)]
fn unpack_w<const W: u32>(packed: &[u64], rows: usize, base: u64, out: &mut [u64; VECTOR]) {
    unpack_map::<W, u64, _>(packed, rows, base, out, |x| x)
}

/// [`unpack_w`] with `map` applied to every value (after adding `base`).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn unpack_map<const W: u32, T: Copy, F: Fn(u64) -> T>(
    packed: &[u64],
    rows: usize,
    base: u64,
    out: &mut [T; VECTOR],
    map: F,
) {
    let mask = if W == 64 { u64::MAX } else { (1u64 << W) - 1 };
    if W == 0 {
        out[..rows * LANES].fill(map(base));
        return;
    }
    for r in 0..rows {
        let bit = r * W as usize;
        let (word, shift) = (bit / 64, (bit % 64) as u32);
        let dst: &mut [T; LANES] = (&mut out[r * LANES..r * LANES + LANES]).try_into().unwrap(); // ok: 16 = LANES
        let lo: &[u64; LANES] = (&packed[word * LANES..word * LANES + LANES]).try_into().unwrap(); // ok: 16 = LANES
        if shift + W > 64 {
            let hi: &[u64; LANES] = (&packed[(word + 1) * LANES..(word + 2) * LANES]).try_into().unwrap(); // ok: 16
            for l in 0..LANES {
                dst[l] = map((((lo[l] >> shift) | (hi[l] << (64 - shift))) & mask).wrapping_add(base));
            }
        } else {
            for l in 0..LANES {
                dst[l] = map(((lo[l] >> shift) & mask).wrapping_add(base));
            }
        }
    }
}

macro_rules! dispatch {
    ($w:expr, $packed:expr, $rows:expr, $base:expr, $out:expr; $($n:literal)*) => {
        match $w {
            $($n => unpack_w::<$n>($packed, $rows, $base, $out),)*
            _ => unreachable!(), // ok: callers check w <= 64
        }
    };
}

/// Unpacks `n <= 1024` values of `w <= 64` bits (plus `base`, wrapping) into `out[..n]`
/// (entries up to the next multiple of 16 are overwritten too). `packed` must hold
/// [`packed_words`]`(n, w)` words.
pub(crate) fn unpack(packed: &[u64], n: usize, w: u32, base: u64, out: &mut [u64; VECTOR]) {
    let rows = n.div_ceil(LANES);
    dispatch!(w, packed, rows, base, out;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
        33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64)
}

macro_rules! dispatch_alp {
    ($w:expr, $packed:expr, $rows:expr, $base:expr, $out:expr, $map:expr; $($n:literal)*) => {
        match $w {
            $($n => unpack_map::<$n, f64, _>($packed, $rows, $base, $out, $map),)*
            _ => unreachable!(), // ok: callers check w <= 64
        }
    };
}

/// 2^52 + 2^51 and its bits: `f64::from_bits(MAGIC_I + d) - MAGIC_F == d as f64` for |d| < 2^51.
pub(crate) const MAGIC_F: f64 = 6_755_399_441_055_744.0;
/// Bits of [`MAGIC_F`].
pub(crate) const MAGIC_I: u64 = 0x4338_0000_0000_0000;

#[inline(always)]
fn alp_generic(packed: &[u64], n: usize, w: u32, base: i64, fe: f64, fr: f64, out: &mut [f64; VECTOR]) {
    let rows = n.div_ceil(LANES);
    let b = (base as u64).wrapping_add(MAGIC_I);
    let map = move |u: u64| (f64::from_bits(u) - MAGIC_F) * fe * fr;
    dispatch_alp!(w, packed, rows, b, out, map;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
        33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn alp_avx2(packed: &[u64], n: usize, w: u32, base: i64, fe: f64, fr: f64, out: &mut [f64; VECTOR]) {
    alp_generic(packed, n, w, base, fe, fr, out)
}

/// ALP's fused decode (Afroozeh et al., SIGMOD 2024, §3.1): unpacks `n` values of `w` bits,
/// adds `base` and computes `d · fe · fr` for each, where `d` (|d| < 2^51) becomes a float through
/// the magic-number trick. Uses AVX2 when the CPU has it.
pub(crate) fn unpack_alp(packed: &[u64], n: usize, w: u32, base: i64, fe: f64, fr: f64, out: &mut [f64; VECTOR]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked on the line above), the only requirement of
        // calling a `#[target_feature(enable = "avx2")]` function.
        return unsafe { alp_avx2(packed, n, w, base, fe, fr, out) };
    }
    alp_generic(packed, n, w, base, fe, fr, out)
}

/// Reads `words` little-endian `u64`s from `bytes` at `*pos`.
pub(crate) fn read_words(
    bytes: &[u8],
    pos: &mut usize,
    words: usize,
    out: &mut Vec<u64>,
) -> Result<(), crate::ChunkError> {
    let len = words
        .checked_mul(8)
        .filter(|&l| *pos + l <= bytes.len())
        .ok_or(crate::ChunkError::UnexpectedEof { bit_offset: bytes.len() * 8, needed: 64 })?;
    out.clear();
    out.extend(
        bytes[*pos..*pos + len]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
    );
    *pos += len;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_all_widths_and_lengths() {
        for w in 0..=64u32 {
            for n in [0usize, 1, 15, 16, 17, 100, 1023, 1024] {
                let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
                let vals: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask).collect();
                let mut packed = Vec::new();
                pack(&vals, w, &mut packed);
                assert_eq!(packed.len(), packed_words(n, w));
                let mut out = [0u64; VECTOR];
                unpack(&packed, n, w, 7, &mut out);
                for i in 0..n {
                    assert_eq!(out[i], vals[i].wrapping_add(7), "w {w} n {n} i {i}");
                }
            }
        }
    }
}
