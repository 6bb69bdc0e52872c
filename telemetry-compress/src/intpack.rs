//! Integer sequences for the `store` chunk's newer forms: the smallest of a dense, a blocked and
//! a sparse layout, each with bit widths or exponential-Golomb codes chosen from the data.
//!
//! Ideas: frame of reference and per-block bit widths (Lemire & Boytsov, *Decoding billions of
//! integers per second through vectorization*, 2015, §2-3), exponential-Golomb codes (Teuhola, 1978) for skewed blocks, and a common divisor for
//! values that move in steps (page-sized memory gauges).
//!
//! ```text
//! form byte f: bits 0-1 the layout (0 DENSE, 1 BLOCKS, 2 SPARSE), bit 2 ZIGZAG, bit 3 HAS_STEP
//! DENSE / BLOCKS:
//! ┌───────┬────────────────────┬──────────────────────┬───────────────────────┬──────────────────┐
//! │ f: u8 │ base: varint (zz)  │ step: uvarint        │ codes: u8, one (DENSE)│ bit stream: one  │
//! │       │ (minimum, or the   │ (only if HAS_STEP;   │ or one per block of   │ code word per x, │
//! │       │  median if ZIGZAG) │  else step = 1)      │ 128 values (BLOCKS)   │ MSB first, padded│
//! └───────┴────────────────────┴──────────────────────┴───────────────────────┴──────────────────┘
//!   x_i = base + step · u_i, or base + step · unzigzag(u_i) with ZIGZAG (wrapping)
//! SPARSE:
//! ┌──────┬──────────────────┬──────────────┬─────────────┬─────────────┬──────────────────────────┐
//! │ 2:u8 │ bg: varint (zz)  │ k: uvarint   │ gap code:u8 │ val code:u8 │ k × (gap, val) code words│
//! └──────┴──────────────────┴──────────────┴─────────────┴─────────────┴──────────────────────────┘
//!   every x_i is bg except k of them; gap = position - previous position - 1 (the first counted
//!   from -1), val = zigzag(x - bg) - 1
//! code byte: 0..=64 a fixed width w (u in w bits); 0x80 | k (k ≤ 55) exponential-Golomb of
//! order k: y = u + 2^k written as (bits(y) - k - 1) zero bits, then y in bits(y) ≤ 56 bits.
//! ```

use crate::bits::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::varint::{get_uvarint, get_varint, put_uvarint, put_varint, unzigzag, zigzag};

const DENSE: u8 = 0;
const BLOCKS: u8 = 1;
const SPARSE: u8 = 2;
const ZIGZAG: u8 = 4;
const HAS_STEP: u8 = 8;
/// Values per block of the BLOCKS form.
const BLOCK: usize = 128;
/// Longest exponential-Golomb code word (bits of `u + 2^k`).
const EG_MAX_BITS: u32 = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Width(u32),
    Eg(u32),
}

impl Code {
    fn byte(self) -> u8 {
        match self {
            Code::Width(w) => w as u8,
            Code::Eg(k) => 0x80 | k as u8,
        }
    }

    fn from_byte(b: u8, offset: usize) -> Result<Code, ChunkError> {
        let c = if b & 0x80 == 0 { Code::Width(b as u32) } else { Code::Eg((b & 0x7f) as u32) };
        match c {
            Code::Width(w) if w <= 64 => Ok(c),
            Code::Eg(k) if k < EG_MAX_BITS => Ok(c),
            _ => Err(ChunkError::Corrupt { what: "integer code", offset }),
        }
    }

    /// Fewest bits any value takes.
    fn min_bits(self) -> u64 {
        match self {
            Code::Width(w) => w as u64,
            Code::Eg(k) => k as u64 + 1,
        }
    }

    #[inline(always)]
    fn write(self, w: &mut BitWriter, u: u64) {
        match self {
            Code::Width(bw) => w.write_bits(u, bw),
            Code::Eg(k) => {
                let y = u + (1u64 << k);
                let len = 64 - y.leading_zeros();
                w.write_bits(0, len - k - 1);
                w.write_bits(y, len);
            }
        }
    }

    #[inline(always)]
    fn read(self, r: &mut BitReader<'_>) -> Result<u64, ChunkError> {
        match self {
            Code::Width(bw) => r.read_bits(bw),
            Code::Eg(k) => {
                let z = r.peek_lenient(EG_MAX_BITS).leading_zeros() - (64 - EG_MAX_BITS);
                let len = z + k + 1;
                if len > EG_MAX_BITS {
                    return Err(ChunkError::Corrupt { what: "exponential-Golomb code", offset: r.bit_pos() / 8 });
                }
                r.consume(z)?;
                Ok(r.read_bits(len)? - (1u64 << k))
            }
        }
    }
}

/// Bits of `u` (0 for 0).
#[inline(always)]
fn bits(u: u64) -> u32 {
    64 - u.leading_zeros()
}

/// The cheapest code for `us` and its exact cost in bits, where an exponential-Golomb code
/// must save more than 1/`eg_margin` of a fixed width's bits to be chosen (its code words
/// decode one after the other, since each one's length is known only once read; fixed-width
/// fields decode independently, several times faster).
fn choose_code(us: &[u64], eg_margin: u64) -> (Code, u64) {
    let mut hist = [0u64; 65];
    for &u in us {
        hist[bits(u) as usize] += 1;
    }
    let maxlen = (0..=64).rev().find(|&l| hist[l] > 0).unwrap_or(0) as u32;
    let mut best = (Code::Width(maxlen), us.len() as u64 * maxlen as u64);
    if maxlen < EG_MAX_BITS {
        // Lower bound with bits(u + 2^k) >= max(bits(u), k + 1): values of at most k + 1 bits
        // cost k + 1 bits, longer ones 2·bits(u) - k - 1. Then cost the best k exactly.
        let n = us.len() as u64;
        let (mut short, mut long_bits) = (0u64, 0u64); // count of bits(u) <= k + 1; Σ 2·bits(u) above
        for (l, &h) in hist.iter().enumerate().take(maxlen as usize + 1) {
            long_bits += 2 * l as u64 * h;
        }
        short += hist[0];
        let mut est = (u64::MAX, 0u32);
        for k in 0..=maxlen.min(EG_MAX_BITS - 1) {
            let l = k as usize + 1;
            if l <= 64 {
                short += hist[l];
                long_bits -= 2 * l as u64 * hist[l];
            }
            let c = short * (k as u64 + 1) + long_bits - (n - short) * (k as u64 + 1);
            if c < est.0 {
                est = (c, k);
            }
        }
        if est.0 >= best.1 {
            return best;
        }
        let k = est.1;
        if k + 1 < EG_MAX_BITS {
            let exact: u64 = us
                .iter()
                .map(|&u| {
                    let len = bits(u + (1u64 << k)) as u64;
                    2 * len - k as u64 - 1
                })
                .sum();
            if exact + exact / eg_margin.max(1) < best.1 && maxlen < EG_MAX_BITS - 1 {
                best = (Code::Eg(k), exact);
            }
        }
    }
    best
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Dense or blocked codes of `us`, behind `head` (the form byte is `head[0]`, DENSE).
fn dense_or_blocks(head: &mut Vec<u8>, us: &[u64], eg_margin: u64) -> Vec<u8> {
    let (code, cost) = choose_code(us, eg_margin);
    let dense_len = head.len() + 1 + cost.div_ceil(8) as usize;
    let blocks: Vec<(Code, u64)> = us.chunks(BLOCK).map(|c| choose_code(c, eg_margin)).collect();
    let blocked_bits: u64 = blocks.iter().map(|b| b.1).sum();
    let blocked_len = head.len() + blocks.len() + blocked_bits.div_ceil(8) as usize;
    let mut out = std::mem::take(head);
    if blocks.len() > 1 && blocked_len < dense_len {
        out[0] |= BLOCKS;
        out.extend(blocks.iter().map(|b| b.0.byte()));
        let mut w = BitWriter::with_capacity(blocked_bits as usize / 8 + 8);
        for (chunk, b) in us.chunks(BLOCK).zip(&blocks) {
            for &u in chunk {
                b.0.write(&mut w, u);
            }
        }
        out.extend_from_slice(w.finish());
    } else {
        out.push(code.byte());
        let mut w = BitWriter::with_capacity(cost as usize / 8 + 8);
        for &u in us {
            code.write(&mut w, u);
        }
        out.extend_from_slice(w.finish());
    }
    out
}

/// The greatest common divisor of the differences `xs[i] - base` (at least 1): taken as unsigned
/// (`signed == false`, every x at least `base`) or as signed, wrapping, numbers.
fn common_step(xs: &[i64], base: i64, signed: bool) -> u64 {
    let mut g = 0u64;
    for &x in xs {
        let d = x.wrapping_sub(base);
        g = gcd(g, if signed { d.unsigned_abs() } else { d as u64 });
        if g == 1 {
            break;
        }
    }
    g.max(1)
}

/// The header of a dense form: form byte (with [`HAS_STEP`] when `g > 1`), base, step.
fn dense_head(form: u8, base: i64, g: u64) -> Vec<u8> {
    let mut head = vec![form | if g > 1 { HAS_STEP } else { 0 }];
    put_varint(&mut head, base);
    if g > 1 {
        put_uvarint(&mut head, g);
    }
    head
}

/// Appends `xs` in the smallest form (exponential-Golomb codes only where they save more than
/// 1/`eg_margin` of a fixed width's bits).
pub(crate) fn pack(xs: &[i64], out: &mut Vec<u8>, eg_margin: u64) {
    // Frame of reference: x = base + step * u, base the minimum.
    let base = xs.iter().copied().min().unwrap_or(0);
    let g = common_step(xs, base, false);
    let us: Vec<u64> = xs.iter().map(|&x| x.wrapping_sub(base) as u64 / g).collect();
    let mut best = dense_or_blocks(&mut dense_head(DENSE, base, g), &us, eg_margin);
    if xs.len() < 3 {
        out.extend_from_slice(&best);
        return;
    }
    let center = median(xs);
    // Zig-zag around the median: x = center + step * unzigzag(u); better when outliers on both
    // sides stretch the frame.
    let g = common_step(xs, center, true);
    // A step above i64::MAX only arises when every x equals the center (then it is 1).
    if g <= i64::MAX as u64 {
        let us: Vec<u64> = xs.iter().map(|&x| zigzag(x.wrapping_sub(center) / g as i64)).collect();
        let z = dense_or_blocks(&mut dense_head(ZIGZAG, center, g), &us, eg_margin);
        if z.len() < best.len() {
            best = z;
        }
    }
    // Sparse around the value most of xs hold, when under a quarter differ from it (a value held
    // by over three quarters of xs is their median).
    let bg = center;
    let others = xs.iter().filter(|&&x| x != bg).count();
    if others * 4 < xs.len() {
        let exc: Vec<usize> = (0..xs.len()).filter(|&i| xs[i] != bg).collect();
        let mut gaps = Vec::with_capacity(exc.len());
        let mut prev: Option<usize> = None;
        for &i in &exc {
            gaps.push(prev.map_or(i, |p| i - p - 1) as u64);
            prev = Some(i);
        }
        let vals: Vec<u64> = exc.iter().map(|&i| zigzag(xs[i].wrapping_sub(bg)) - 1).collect();
        let (gc, gcost) = choose_code(&gaps, eg_margin);
        let (vc, vcost) = choose_code(&vals, eg_margin);
        let mut s = vec![SPARSE];
        put_varint(&mut s, bg);
        put_uvarint(&mut s, exc.len() as u64);
        s.push(gc.byte());
        s.push(vc.byte());
        if s.len() + (gcost + vcost).div_ceil(8) as usize <= best.len() {
            let mut w = BitWriter::with_capacity((gcost + vcost) as usize / 8 + 8);
            for (&gp, &v) in gaps.iter().zip(&vals) {
                gc.write(&mut w, gp);
                vc.write(&mut w, v);
            }
            s.extend_from_slice(w.finish());
            best = s;
        }
    }
    out.extend_from_slice(&best);
}

/// Reads `out.len()` fields of `w <= 56` bits, MSB first, from `stream` at bit `bit0`, mapped by
/// `f`. The caller has checked that `stream` holds them.
///
/// From a byte boundary (every fixed-width block starts on one unless an exponential-Golomb
/// block came before it), groups of 8 fields (`w` bytes) go through [`unpack_groups`], which
/// is compiled once per width so that every offset and shift is a constant.
#[inline(always)]
fn unpack_width(stream: &[u8], bit0: usize, w: u32, out: &mut [i64], f: impl Fn(u64) -> i64 + Copy) {
    if w == 0 {
        out.fill(f(0));
        return;
    }
    let done = match stream.get(bit0 / 8..) {
        Some(s) if bit0.is_multiple_of(8) => unpack_groups_any(s, w, out, f),
        _ => 0,
    };
    if done > 0 {
        unpack_width_loop(stream, bit0 + done * w as usize, w, &mut out[done..], f);
    } else {
        unpack_width_loop(stream, bit0, w, out, f);
    }
}

/// [`unpack_groups`] for the width `w` (1 to 56): the number of fields written.
#[inline(always)]
fn unpack_groups_any(stream: &[u8], w: u32, out: &mut [i64], f: impl Fn(u64) -> i64 + Copy) -> usize {
    macro_rules! widths {
        ($($n:literal)*) => {
            match w {
                $($n => unpack_groups::<$n>(stream, out, f),)*
                _ => 0,
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28
        29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56)
}

/// Decodes whole groups of 8 fields of `W` bits (`W` bytes per group) from the start of
/// `stream` into `out`, as long as a group and the 8 bytes after its last field's first byte
/// lie inside `stream`; returns the number of fields written (a multiple of 8).
#[inline(never)]
fn unpack_groups<const W: usize>(stream: &[u8], out: &mut [i64], f: impl Fn(u64) -> i64) -> usize {
    // A group's last field starts in byte 7·W/8 of the group and is read with an 8-byte load.
    let span = 7 * W / 8 + 8;
    let fit = if stream.len() >= span { (stream.len() - span) / W + 1 } else { 0 };
    let groups = fit.min(out.len() / 8);
    let mask = (1u64 << W) - 1;
    for (g, o) in out[..groups * 8].chunks_exact_mut(8).enumerate() {
        let s = &stream[g * W..][..span];
        for (j, x) in o.iter_mut().enumerate() {
            let at = j * W / 8;
            // ok: at + 8 <= span, so the slice has 8 bytes
            let word = u64::from_be_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
            *x = f((word >> (64 - (j * W) % 8 - W)) & mask);
        }
    }
    groups * 8
}

/// Field by field, for what [`unpack_groups`] leaves.
#[inline(always)]
fn unpack_width_loop(stream: &[u8], bit0: usize, w: u32, out: &mut [i64], f: impl Fn(u64) -> i64) {
    let mask = (1u64 << w) - 1;
    // Fields whose 8-byte window lies inside the stream are read with one unaligned load.
    // Field j starts at bit0 + j·w and fits the window of its first byte (bit % 8 + w <= 63);
    // the window lies inside the stream while that byte is at most len - 8.
    let limit = stream.len().saturating_sub(7) * 8;
    let fast_count = limit.saturating_sub(bit0).div_ceil(w as usize).min(out.len());
    let mut bit = bit0;
    for o in out[..fast_count].iter_mut() {
        let at = bit / 8;
        // ok: at + 8 <= stream.len() for the first fast_count fields (see above)
        let word = u64::from_be_bytes(stream[at..at + 8].try_into().unwrap_or([0; 8]));
        *o = f((word >> (64 - (bit % 8) as u32 - w)) & mask);
        bit += w as usize;
    }
    for o in out[fast_count..].iter_mut() {
        let at = bit / 8;
        let mut buf = [0u8; 8];
        let end = (at + 8).min(stream.len());
        buf[..end - at].copy_from_slice(&stream[at..end]);
        let word = u64::from_be_bytes(buf);
        *o = f((word >> (64 - (bit % 8) as u32 - w)) & mask);
        bit += w as usize;
    }
}

/// Reads `out.len()` exponential-Golomb code words of order `k` from `stream` at bit `bit0`,
/// mapped by `f`; returns the bit after the last. `at` (bits) locates `stream` for errors.
#[inline(always)]
fn unpack_eg(
    stream: &[u8],
    bit0: usize,
    k: u32,
    out: &mut [i64],
    at: usize,
    f: impl Fn(u64) -> i64,
) -> Result<usize, ChunkError> {
    let window = |bit: usize| -> Option<u64> {
        let i = bit / 8;
        let w = u64::from_be_bytes(stream.get(i..i + 8)?.try_into().ok()?);
        Some(w << (bit % 8))
    };
    let mut bit = bit0;
    let mut done = 0;
    // Fast path: whole 8-byte windows (at least 57 valid bits after the shift).
    for o in out.iter_mut() {
        let Some(w) = window(bit) else { break };
        let z = w.leading_zeros();
        let len = z + k + 1;
        if len > EG_MAX_BITS || z > 56 {
            return Err(ChunkError::Corrupt { what: "exponential-Golomb code", offset: (at + bit) / 8 });
        }
        // The window holds at least 57 bits from `bit`: a code word inside them needs no
        // second load (the common case: short zero prefixes).
        let y = if z + len <= 57 {
            w << z
        } else {
            let Some(y) = window(bit + z as usize) else { break };
            y
        };
        *o = f((y >> (64 - len)) - (1u64 << k));
        bit += (z + len) as usize;
        done += 1;
    }
    if done < out.len() {
        let rest = stream.get(bit / 8..).ok_or(ChunkError::UnexpectedEof { bit_offset: at + bit, needed: k + 1 })?;
        let mut r = BitReader::new(rest);
        r.read_bits((bit % 8) as u32)?;
        let c = Code::Eg(k);
        for o in &mut out[done..] {
            *o = f(c.read(&mut r)?);
        }
        bit = (bit / 8) * 8 + r.bit_pos();
    }
    Ok(bit)
}

/// The median of `xs` (the upper one for an even count); `xs` must not be empty.
pub(crate) fn median(xs: &[i64]) -> i64 {
    let mut v = xs.to_vec();
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

/// Reads `n` integers written by [`pack`] from `b` at `*pos`, appending them to `out` and moving
/// `*pos` past them. `base` is added to byte offsets in errors.
pub(crate) fn unpack(b: &[u8], pos: &mut usize, n: usize, out: &mut Vec<i64>, base: usize) -> Result<(), ChunkError> {
    let corrupt = |what, at: usize| ChunkError::Corrupt { what, offset: base + at };
    let form = *b.get(*pos).ok_or(ChunkError::UnexpectedEof { bit_offset: (base + *pos) * 8, needed: 8 })?;
    *pos += 1;
    match form {
        f if f & !(BLOCKS | ZIGZAG | HAS_STEP) == 0 => {
            let x0 = get_varint(b, pos)?;
            let g = if f & HAS_STEP != 0 { get_uvarint(b, pos)? } else { 1 };
            let zz = f & ZIGZAG != 0;
            let blocked = f & BLOCKS != 0;
            let nb = if blocked { n.div_ceil(BLOCK) } else { 1 };
            let codes_at = *pos;
            let codes = b.get(*pos..*pos + nb).ok_or(corrupt("integer codes", *pos))?;
            *pos += nb;
            let per = if blocked { BLOCK } else { n.max(1) };
            let mut cs = Vec::with_capacity(nb);
            let mut need = 0u64;
            for (i, &c) in codes.iter().enumerate() {
                let c = Code::from_byte(c, base + codes_at + i)?;
                need += c.min_bits() * per.min(n - (i * per).min(n)) as u64;
                cs.push(c);
            }
            let stream = &b[*pos..];
            if need > stream.len() as u64 * 8 {
                return Err(ChunkError::UnexpectedEof { bit_offset: (base + *pos) * 8, needed: 64 });
            }
            out.reserve(n);
            // Bit position in `stream`; fixed widths are read straight from it, code words
            // through a BitReader started at the same bit.
            let mut bit = 0usize;
            for (i, c) in cs.iter().enumerate() {
                let count = per.min(n - (i * per).min(n));
                match (*c, zz) {
                    (Code::Width(w), z) if w <= 56 => {
                        // Earlier code words may have taken more than their minimum.
                        if bit + w as usize * count > stream.len() * 8 {
                            return Err(ChunkError::UnexpectedEof { bit_offset: (base + *pos) * 8 + bit, needed: w });
                        }
                        let start = out.len();
                        out.resize(start + count, 0);
                        if z {
                            unpack_width(stream, bit, w, &mut out[start..], |u| {
                                x0.wrapping_add(unzigzag(u).wrapping_mul(g as i64))
                            });
                        } else {
                            unpack_width(stream, bit, w, &mut out[start..], |u| {
                                x0.wrapping_add(g.wrapping_mul(u) as i64)
                            });
                        }
                        bit += w as usize * count;
                    }
                    (Code::Eg(k), z) => {
                        let start = out.len();
                        out.resize(start + count, 0);
                        let at = (base + *pos) * 8;
                        bit = if z {
                            unpack_eg(stream, bit, k, &mut out[start..], at, |u| {
                                x0.wrapping_add(unzigzag(u).wrapping_mul(g as i64))
                            })?
                        } else {
                            unpack_eg(stream, bit, k, &mut out[start..], at, |u| {
                                x0.wrapping_add(g.wrapping_mul(u) as i64)
                            })?
                        };
                    }
                    (c, z) => {
                        let rest = stream
                            .get(bit / 8..)
                            .ok_or(ChunkError::UnexpectedEof { bit_offset: (base + *pos) * 8 + bit, needed: 1 })?;
                        let mut r = BitReader::new(rest);
                        r.read_bits((bit % 8) as u32)?;
                        if z {
                            for _ in 0..count {
                                out.push(x0.wrapping_add(unzigzag(c.read(&mut r)?).wrapping_mul(g as i64)));
                            }
                        } else {
                            for _ in 0..count {
                                out.push(x0.wrapping_add(g.wrapping_mul(c.read(&mut r)?) as i64));
                            }
                        }
                        bit = (bit / 8) * 8 + r.bit_pos();
                    }
                }
            }
            *pos += bit.div_ceil(8);
        }
        SPARSE => {
            let bg = get_varint(b, pos)?;
            let k = get_uvarint(b, pos)?;
            if k > n as u64 {
                return Err(corrupt("sparse exception count", *pos));
            }
            let [gc, vc] = *b.get(*pos..*pos + 2).ok_or(corrupt("sparse codes", *pos))? else {
                return Err(corrupt("sparse codes", *pos)); // ok: unreachable, the slice has 2 bytes
            };
            let (gc, vc) = (Code::from_byte(gc, base + *pos)?, Code::from_byte(vc, base + *pos + 1)?);
            *pos += 2;
            let stream = &b[*pos..];
            if k * (gc.min_bits() + vc.min_bits()) > stream.len() as u64 * 8 {
                return Err(ChunkError::UnexpectedEof { bit_offset: (base + *pos) * 8, needed: 64 });
            }
            let start = out.len();
            out.resize(start + n, bg);
            let mut r = BitReader::new(stream);
            let mut next = 0u64;
            for _ in 0..k {
                let at = next.checked_add(gc.read(&mut r)?).filter(|&i| i < n as u64);
                let at = at.ok_or(corrupt("sparse position", *pos + r.bit_pos() / 8))?;
                let v = vc.read(&mut r)?;
                let zz = v.checked_add(1).ok_or(corrupt("sparse value", *pos + r.bit_pos() / 8))?;
                out[start + at as usize] = bg.wrapping_add(unzigzag(zz));
                next = at + 1;
            }
            *pos += r.bit_pos().div_ceil(8);
        }
        _ => return Err(corrupt("integer form", *pos - 1)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(xs: &[i64]) -> usize {
        let mut b = vec![0xAA];
        pack(xs, &mut b, 16);
        b.push(0x55);
        let mut pos = 1;
        let mut out = Vec::new();
        unpack(&b, &mut pos, xs.len(), &mut out, 0).unwrap();
        assert_eq!(out, xs);
        assert_eq!(pos, b.len() - 1);
        b.len() - 2
    }

    /// The per-width group decoder against the field-by-field loop, for every width, aligned
    /// and unaligned starts, group tails and streams that end right after the fields.
    #[test]
    fn width_groups_equal_the_field_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let stream: Vec<u8> = (0..800)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let f = |u: u64| (u as i64).wrapping_mul(3) - 5;
        for w in 1..=56u32 {
            for bit0 in [0usize, 3, 8, 16] {
                for n in [0usize, 1, 7, 8, 9, 16, 17, 63, 64, 100] {
                    // Exactly the bytes the fields need, and a roomy stream.
                    for len in [(bit0 + n * w as usize).div_ceil(8), stream.len()] {
                        let s = &stream[..len];
                        let (mut fast, mut slow) = (vec![0i64; n], vec![0i64; n]);
                        unpack_width(s, bit0, w, &mut fast, f);
                        unpack_width_loop(s, bit0, w, &mut slow, f);
                        assert_eq!(fast, slow, "w {w} bit0 {bit0} n {n} len {len}");
                    }
                }
            }
        }
        // The loop itself against a bit reader.
        let mut r = BitReader::new(&stream);
        let mut out = vec![0i64; 100];
        unpack_width(&stream, 0, 13, &mut out, |u| u as i64);
        for o in out {
            assert_eq!(o as u64, r.read_bits(13).unwrap());
        }
    }

    #[test]
    fn forms_round_trip() {
        rt(&[]);
        rt(&[7]);
        rt(&[i64::MIN, i64::MAX, 0, -1]);
        rt(&[-2, i64::MIN, -3]);
        rt(&[i64::MIN, i64::MAX, i64::MIN + 2]);
        let pages: Vec<i64> = (0..500).map(|i| (4096 * ((i * 7919) % 300) + 1) << 20).collect();
        assert!(rt(&pages) < 500 * 2);
        let mut sparse = vec![1000i64; 2048];
        sparse[5] = 997;
        sparse[6] = 1003;
        sparse[2000] = -1;
        assert!(rt(&sparse) < 20);
        let noisy: Vec<i64> = (0..2048)
            .map(|i| ((i * 2_654_435_761u64 as i64) % 1000) * if i % 300 == 0 { 1 << 30 } else { 1 })
            .collect();
        rt(&noisy);
        let wide: Vec<i64> = (0..300).map(|i| (i as i64).wrapping_mul(0x9e37_79b9_7f4a_7c15u64 as i64)).collect();
        rt(&wide);
    }

    #[test]
    fn margin_weighs_golomb_codes_against_fixed_widths() {
        // 127 small values and one of 12 bits: order-0 codes take 3 bits per small value and
        // 23 for the large one (404 bits), a fixed width 12 per value (1,536 bits).
        let mut us = vec![1u64; 127];
        us.push(3000);
        assert_eq!(choose_code(&us, 16), (Code::Eg(0), 404));
        assert_eq!(choose_code(&us, 4), (Code::Eg(0), 404));
        // 96 values of 4 bits and 32 of 10: a fixed width of 10 takes 1,280 bits, order-3
        // codes 6 and 16 bits (1,088): 15% saved, more than 1/16, less than 1/4.
        let us: Vec<u64> = (0..128).map(|i| if i % 4 == 0 { 700 } else { 10 }).collect();
        assert_eq!(choose_code(&us, u64::MAX), (Code::Eg(3), 1088));
        assert_eq!(choose_code(&us, 16), (Code::Eg(3), 1088));
        assert_eq!(choose_code(&us, 4), (Code::Width(10), 1280));
    }
}
