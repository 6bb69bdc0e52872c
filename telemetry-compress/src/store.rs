//! The adaptive `store` chunk format: one encoding byte, then the smallest of several encodings
//! of the chunk's timestamps and values.
//!
//! This is the format telemetry-store writes. Each chunk is encoded several ways and the smallest
//! result is kept; everything is lossless to the bit (NaN payloads, `-0.0`, the stale marker),
//! unlike systems that drop NaNs. Ideas: Gorilla (Pelkonen et al., VLDB 2015, §4.1) for the XOR
//! fallback; ALP's decimal scaling (Afroozeh et al., SIGMOD 2024, §3.1) to turn decimal floats
//! into integers, here with a division instead of ALP's multiplication by `10^-e`, so that every
//! value whose shortest decimal has at most `e` fraction digits scales exactly; delta /
//! delta-of-delta and frame-of-reference bit packing with per-block widths (Lemire & Boytsov,
//! *Decoding billions of integers per second through vectorization*, 2015, §2; delta and
//! delta-of-delta as VictoriaMetrics' `lib/encoding` applies them) for counters and noisy gauges.
//!
//! Kinds 1-4 of each part are the first version of the format; the encoder now writes kinds 1
//! (regular timestamps), 4-7 and value kinds 1, 2, 4, 5, and the decoder reads them all.
//!
//! ```text
//! ┌──────────────────────┬────────────┬────────────────────┬──────────────────────┐
//! │ enc: u8              │ n: uvarint │ timestamps         │ values               │
//! │ (ts << 4) | values   │ (samples)  │ (by ts kind)       │ (by value kind)      │
//! └──────────────────────┴────────────┴────────────────────┴──────────────────────┘
//! enc = 0x01 is special: the rest is a whole Prometheus XOR chunk (crate::xor), no n.
//!
//! timestamps (ms), kind 1 REGULAR: ┌─────────────────┬────────────────────┐  all deltas equal
//!                                  │ t0: varint (zz) │ delta: varint (zz) │  (delta absent if n < 2)
//!                                  └─────────────────┴────────────────────┘
//! timestamps, kind 7 REGULAR_SECONDS: as REGULAR, delta in seconds (t_i = t0 + i·1000·delta)
//! timestamps, kind 2 DOD:          ┌─────────────────┬───────────────────────────────────────┐
//!                                  │ len: uvarint    │ Prometheus delta-of-delta bit stream  │
//!                                  └─────────────────┴───────────────────────────────────────┘
//! timestamps, kind 3 INT:          ┌──────────┬─────────────────────────────────────────────┐
//!                                  │ order:u8 │ packed integers (PACK, below), the ts in ms │
//!                                  └──────────┴─────────────────────────────────────────────┘
//! timestamps, kind 4 GRID:
//! ┌─────────────────┬────────────────────┬──────────────┬──────────────────────────────────────────┐
//! │ t0: varint (zz) │ delta: varint (zz) │ k: uvarint   │ k × (gap: uvarint, offset: varint (zz))  │
//! └─────────────────┴────────────────────┴──────────────┴──────────────────────────────────────────┘
//!   t_i = t0 + i·delta, plus `offset` for the k samples off that grid (scrape jitter); positions
//!   as gaps from the previous one (first from 0).
//! timestamps, kind 5 GRID_PACKED:
//! ┌─────────────────┬────────────────────┬──────────────────────────────────────────────────────┐
//! │ t0: varint (zz) │ delta: varint (zz) │ INTS of the n - 1 offsets t_i - (t0 + i·delta), i ≥ 1 │
//! └─────────────────┴────────────────────┴──────────────────────────────────────────────────────┘
//! timestamps, kind 6 DELTA_PACKED:
//! ┌─────────────────┬──────────────────────────────────────────┐
//! │ t0: varint (zz) │ INTS of the n - 1 deltas t_i - t_(i-1)   │   (all arithmetic wrapping)
//! └─────────────────┴──────────────────────────────────────────┘
//! values, kind 1 CONST:   ┌──────────────────┐  every value has the same bits
//!                         │ bits: u64 LE     │
//!                         └──────────────────┘
//! values, kind 4 CONST_INT: ┌──────────────────┐  every value is the same integer d
//!                            │ d: varint (zz)   │  (|d| < 2^50, not -0.0)
//!                            └──────────────────┘
//! values, kind 2 XOR:     ┌──────────────────────────────────────────────┐  Gorilla values only
//!                         │ v0: 64 bits, then XOR fields (crate::xor)    │  (to the end of the chunk)
//!                         └──────────────────────────────────────────────┘
//! values, kind 5 SCALED:
//! ┌──────────────────┬────────────────┬──────────────┬───────────────────────┬───────────────┬─────────────┐
//! │ h: u8 = order    │ (a: u8, b: u8) │ exc: uvarint │ exc × (gap: uvarint,  │ order seeds:  │ INTS of the │
//! │  + 3 · scale     │ if scale = 20  │              │        bits: u64 LE)  │ varint (zz)   │ n - order   │
//! │                  │                │              │                       │               │ differences │
//! └──────────────────┴────────────────┴──────────────┴───────────────────────┴───────────────┴─────────────┘
//!   integers d_i, differenced `order` (0..=2) times; value i =
//!     scale 0:      f64::from_bits(d_i as u64)          (any bits; for binary floats that drift)
//!     scale 1..=19: d_i / 10^(scale - 1)                (IEEE division, as Go's float64(ns) / 1e9)
//!     scale 20:     d_i / 10^a / 10^b, a + b ≤ 18       (as Go's float64(us) / 1000 / 1000)
//!   exceptions (values that do not scale exactly) verbatim; their d repeats the previous one.
//! INTS: the integer sequences of crate::intpack (dense, blocked, zig-zag or sparse, see there).
//! values, kind 3 INT:
//! ┌──────┬──────┬──────────┬──────────────┬─────────────────────────────┬──────────────────────────┐
//! │ e:u8 │ f:u8 │ order:u8 │ exc: uvarint │ exc × (gap: uvarint,        │ packed integers d (PACK) │
//! │ ≤ 18 │ ≤ e  │ 0..=2    │              │        bits: u64 LE)        │                          │
//! └──────┴──────┴──────────┴──────────────┴─────────────────────────────┴──────────────────────────┘
//! PACK (n integers, difference order 0..=2):
//! ┌──────────────────────────┬────────────────┬─────────┬──────────────────────────────────────────┐
//! │ order seeds: varint (zz) │ min: varint(zz)│ mode:u8 │ x = (order-th differences - min), n-order│
//! │ (first `order` values)   │                │         │ of them, MSB first, byte-padded:         │
//! └──────────────────────────┴────────────────┴─────────┴──────────────────────────────────────────┘
//!   mode 0..=64: bit width bw, each x in bw bits;
//!   mode 0x80 | k (k < 56): exponential-Golomb of order k, y = x + 2^k written as
//!   (bits(y) - k - 1) zero bits then y in bits(y) bits (bits(y) ≤ 56).
//!   value i = d_i · 10^f · 10^-e (ALP's decode); exceptions (values that do not scale exactly) are stored
//!   verbatim at positions given as gaps from the previous exception (first gap from 0).
//! ```
//!
//! # Sizes on the real capture
//!
//! Bytes per sample on `../shared/data/capture/prometheus-node-1s.om.gz` (940 series, 3,396,842
//! samples, NaNs kept), every series cut into chunks of N samples, from
//! `cargo run --release -p telemetry-compress --example store_sizes`:
//!
//! | chunk samples | first version | now | of which timestamps | values | header |
//! |---|---|---|---|---|---|
//! | 120 (the head) | 0.3553 | 0.3066 | 0.0725 | 0.2169 | 0.0171 |
//! | 512 | 0.2893 | 0.2316 | 0.0274 | 0.1978 | 0.0064 |
//! | 2048 (block writer) | 0.2821 | 0.2095 | 0.0139 | 0.1939 | 0.0017 |
//! | 4096 / whole series (1 h) | 0.2913 | 0.2047 | 0.0106 | 0.1933 | 0.0008 |
//!
//! For comparison (capture README): Prometheus spends 1.051 bytes/sample in its chunks,
//! VictoriaMetrics 0.264 over the samples it keeps (it drops the 98,697 NaNs). The noisy
//! `node_scrape_collector_duration_seconds` (nanosecond timings of ~16 bits of entropy each) is
//! 47% of the bytes at 2048 samples; at 120 samples the first timestamp alone (6 bytes) costs
//! 0.05 bytes/sample.
//!
//! Errors: [`ChunkError::TooShort`], [`ChunkError::UnknownEncoding`], [`ChunkError::BadVarint`],
//! [`ChunkError::UnexpectedEof`], [`ChunkError::Corrupt`], [`ChunkError::TooLarge`] (n over
//! [`STORE_MAX_SAMPLES`]), [`ChunkError::TrailingBytes`].

use crate::bits::{BitReader, BitWriter};
use crate::codec::alp::{EXP, FRAC, MAX_EXP, encode_one};
use crate::codec::{Codec, read_timestamps};
use crate::error::ChunkError;
use crate::intpack;
use crate::varint::{get_uvarint, get_varint, put_uvarint, put_varint};
use crate::xor::{XOR_MAX_SAMPLES, XorChunk, XorDecoder, XorEncoder, decode_xor_chunk};

/// Largest number of samples in one store chunk.
pub const STORE_MAX_SAMPLES: usize = XOR_MAX_SAMPLES;

/// Encoding byte: the rest is a Prometheus XOR chunk.
pub const ENC_XOR: u8 = 0x01;

const TS_REGULAR: u8 = 1;
const TS_DOD: u8 = 2;
const TS_INT: u8 = 3;
const TS_GRID: u8 = 4;
const V_CONST: u8 = 1;
const V_XOR: u8 = 2;
const V_INT: u8 = 3;
const V_CONST_INT: u8 = 4;
const TS_GRID_PACKED: u8 = 5;
const TS_DELTA_PACKED: u8 = 6;
const TS_REGULAR_SECONDS: u8 = 7;
const V_SCALED: u8 = 5;
/// V_SCALED scale code for two divisions (codes 1..=19 are one division by 10^(code - 1)).
const SCALE_TWO_DIVS: u8 = 20;
/// Largest decimal exponent of a V_SCALED division (10^22 is the largest exact power of ten).
const DIV_MAX_EXP: usize = 18;
/// Digits must stay below 2^53 in magnitude to convert to f64 exactly.
const DIGIT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// How the store encoder weighs bytes against decoding speed. Every choice decodes with the
/// same [`decode_store_chunk`]; only the encoder's choice among its forms changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Packed integers use exponential-Golomb code words only where they save more than
    /// 1/`eg_margin` of the bits a fixed width takes (0 counts as 1). Code words decode one
    /// after the other, because each one's length is known only once it is read; fixed-width
    /// fields decode independently, about three times faster. [`StoreOptions::default`]: 16
    /// (on the real capture at 2,048-sample chunks, 0.1% more bytes than always taking the
    /// smaller); [`StoreOptions::read_speed`]: 4 (1.9% more there).
    pub eg_margin: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { eg_margin: 16 }
    }
}

impl StoreOptions {
    /// Options for data read in bulk more than it is stored (rollups read over months or
    /// years): exponential-Golomb code words only where they save over a quarter.
    pub fn read_speed() -> Self {
        StoreOptions { eg_margin: 4 }
    }
}

/// Encodes samples (`ts` in ms, `vs` kept to the bit) as one store chunk.
///
/// # Errors
/// [`ChunkError::LengthMismatch`]; [`ChunkError::TooLarge`] over [`STORE_MAX_SAMPLES`] samples.
pub fn encode_store_chunk(ts: &[i64], vs: &[f64]) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    encode_store_chunk_into(ts, vs, &mut out)?;
    Ok(out)
}

/// Like [`encode_store_chunk`], appending to `out`.
///
/// # Errors
/// As [`encode_store_chunk`].
pub fn encode_store_chunk_into(ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    encode_store_chunk_with(ts, vs, &StoreOptions::default(), out)
}

/// Like [`encode_store_chunk_into`], with the encoder's choices weighed by `opts`.
///
/// # Errors
/// As [`encode_store_chunk`].
pub fn encode_store_chunk_with(
    ts: &[i64],
    vs: &[f64],
    opts: &StoreOptions,
    out: &mut Vec<u8>,
) -> Result<(), ChunkError> {
    check(ts, vs)?;
    let m = u64::from(opts.eg_margin);
    let n = ts.len();
    // Timestamps.
    let mut tbuf = Vec::new();
    let regular = n < 2 || ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == ts[1].wrapping_sub(ts[0]));
    let ts_kind = if regular {
        if n > 0 {
            put_varint(&mut tbuf, ts[0]);
        }
        if n > 1 {
            let d = ts[1].wrapping_sub(ts[0]);
            if d % 1000 == 0 {
                put_varint(&mut tbuf, d / 1000);
                return finish(out, TS_REGULAR_SECONDS, n, &tbuf, vs, m);
            }
            put_varint(&mut tbuf, d);
        }
        TS_REGULAR
    } else {
        let deltas: Vec<i64> = ts.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        put_varint(&mut tbuf, ts[0]);
        intpack::pack(&deltas, &mut tbuf, m);
        let mut kind = TS_DELTA_PACKED;
        // The median delta: the scrape interval when most samples are on time.
        let delta = intpack::median(&deltas);
        let off: Vec<i64> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| t.wrapping_sub(ts[0].wrapping_add(delta.wrapping_mul(i as i64))))
            .collect();
        let mut g = Vec::new();
        put_varint(&mut g, ts[0]);
        put_varint(&mut g, delta);
        intpack::pack(&off[1..], &mut g, m);
        if g.len() < tbuf.len() {
            tbuf = g;
            kind = TS_GRID_PACKED;
        }
        let g = grid_timestamps(ts, delta);
        if g.len() < tbuf.len() {
            tbuf = g;
            kind = TS_GRID;
        }
        kind
    };
    finish(out, ts_kind, n, &tbuf, vs, m)
}

/// Chooses the values' encoding and writes the chunk behind the timestamps `tbuf` of `ts_kind`.
/// `eg_margin` as [`StoreOptions::eg_margin`].
fn finish(out: &mut Vec<u8>, ts_kind: u8, n: usize, tbuf: &[u8], vs: &[f64], eg_margin: u64) -> Result<(), ChunkError> {
    let (v_kind, vbuf) = best_values(vs, eg_margin);
    out.push((ts_kind << 4) | v_kind);
    put_uvarint(out, n as u64);
    out.extend_from_slice(tbuf);
    out.extend_from_slice(&vbuf);
    Ok(())
}

/// TS_GRID: `t0`, `delta`, then the samples off the grid `t0 + i·delta` as varints.
fn grid_timestamps(ts: &[i64], delta: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, ts[0]);
    put_varint(&mut out, delta);
    let off: Vec<(usize, i64)> = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| (i, t.wrapping_sub(ts[0].wrapping_add(delta.wrapping_mul(i as i64)))))
        .filter(|&(_, o)| o != 0)
        .collect();
    put_uvarint(&mut out, off.len() as u64);
    let mut last = 0;
    for (i, o) in off {
        put_uvarint(&mut out, (i - last) as u64);
        put_varint(&mut out, o);
        last = i;
    }
    out
}

fn best_values(vs: &[f64], eg_margin: u64) -> (u8, Vec<u8>) {
    if let Some(first) = vs.first()
        && vs.iter().all(|v| v.to_bits() == first.to_bits())
    {
        if let Some(d) = encode_one(*first, 0, 0) {
            let mut b = Vec::new();
            put_varint(&mut b, d);
            return (V_CONST_INT, b);
        }
        return (V_CONST, first.to_bits().to_le_bytes().to_vec());
    }
    if vs.is_empty() {
        return (V_CONST, Vec::new());
    }
    let mut best = (V_XOR, xor_values(vs));
    let exact = match choose_division(vs) {
        Some((a, b)) => scaled_values(vs, Scale::Div(a, b), &mut best, eg_margin),
        None => false,
    };
    // Bits as integers only pay for values that are not all short decimals.
    if !exact {
        scaled_values(vs, Scale::Bits, &mut best, eg_margin);
    }
    best
}

#[derive(Debug, Clone, Copy)]
enum Scale {
    /// The value's bits as an integer.
    Bits,
    /// `d / 10^a / 10^b`.
    Div(usize, usize),
}

#[inline(always)]
fn div_digit(v: f64, a: usize, b: usize) -> Option<i64> {
    let x = v * EXP[a + b];
    // NaN fails this comparison too.
    if x.is_nan() || x.abs() >= DIGIT_LIMIT {
        return None;
    }
    let d = x.round() as i64;
    let back = (d as f64) / EXP[a] / EXP[b];
    (back.to_bits() == v.to_bits()).then_some(d)
}

/// The division `(a, b)` under which most of a sample of `vs` are exact `d / 10^a / 10^b`
/// (fewest decimals first), if at least three quarters of the sample are.
fn choose_division(vs: &[f64]) -> Option<(usize, usize)> {
    const SAMPLE: usize = 32;
    let step = (vs.len() / SAMPLE).max(1);
    let sample: Vec<f64> = vs.iter().step_by(step).copied().filter(|v| v.is_finite()).collect();
    if sample.is_empty() {
        return None;
    }
    let mut best = (0usize, 0usize, 0usize);
    for (t, &p) in EXP.iter().enumerate().take(DIV_MAX_EXP + 1) {
        // Values within a few ulps of d / 10^t are candidates for some split of t.
        let near = sample
            .iter()
            .filter(|&&v| {
                let x = v * p;
                x.abs() < DIGIT_LIMIT && ((x.round() / p) - v).abs() <= v.abs() * 1e-15
            })
            .count();
        if near <= best.0 {
            continue;
        }
        for b in 0..=t {
            let ok = sample.iter().filter(|&&v| div_digit(v, t - b, b).is_some()).count();
            if ok > best.0 {
                best = (ok, t - b, b);
            }
            if ok == sample.len() {
                return Some((t - b, b));
            }
        }
    }
    (best.0 * 4 >= sample.len() * 3).then_some((best.1, best.2))
}

/// Encodes `vs` as V_SCALED under `scale` at each difference order; keeps it in `best` if smaller.
/// Returns whether every value scaled exactly.
fn scaled_values(vs: &[f64], scale: Scale, best: &mut (u8, Vec<u8>), eg_margin: u64) -> bool {
    let mut digits = Vec::with_capacity(vs.len());
    let mut exc = Vec::new();
    let mut prev = 0i64;
    for (i, &v) in vs.iter().enumerate() {
        let d = match scale {
            Scale::Bits => Some(v.to_bits() as i64),
            Scale::Div(a, b) => div_digit(v, a, b),
        };
        match d {
            Some(d) => {
                digits.push(d);
                prev = d;
            }
            None => {
                exc.push(i);
                digits.push(prev);
            }
        }
    }
    if exc.len() * 4 > vs.len() {
        return false;
    }
    // Header byte: order + 3 · scale code (0 bits, 1 + a for d / 10^a, 20 for d / 10^a / 10^b
    // with a and b in the next two bytes).
    let mut head = vec![0];
    let code = match scale {
        Scale::Bits => 0,
        Scale::Div(a, 0) => 1 + a as u8,
        Scale::Div(a, b) => {
            head.extend_from_slice(&[a as u8, b as u8]);
            SCALE_TWO_DIVS
        }
    };
    let order_at = 0;
    put_uvarint(&mut head, exc.len() as u64);
    let mut last = 0usize;
    for &p in &exc {
        put_uvarint(&mut head, (p - last) as u64);
        head.extend_from_slice(&vs[p].to_bits().to_le_bytes());
        last = p;
    }
    let mut d = digits;
    let mut prev_len = usize::MAX;
    for order in 0..=2u8 {
        if order as usize > d.len() {
            break;
        }
        if order > 0 {
            // Turn the (order-1)-th differences into the order-th, keeping the seed in front.
            let k = order as usize - 1;
            for i in (k + 1..d.len()).rev() {
                d[i] = d[i].wrapping_sub(d[i - 1]);
            }
        }
        let mut b = head.clone();
        b[order_at] = order + 3 * code;
        for &seed in &d[..order as usize] {
            put_varint(&mut b, seed);
        }
        intpack::pack(&d[order as usize..], &mut b, eg_margin);
        let grew = b.len() >= prev_len;
        prev_len = b.len();
        if b.len() < best.1.len() {
            *best = (V_SCALED, b);
        }
        // Noise only gets wider with each difference: stop once one did not help.
        if order > 0 && grew {
            break;
        }
    }
    exc.is_empty()
}

fn xor_values(vs: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(vs.len() * 2 + 16);
    let mut e = XorEncoder::new();
    for &v in vs {
        e.append_value(&mut w, v);
    }
    w.into_bytes()
}

/// Longest exponential-Golomb code word accepted (bits of `x + 2^k`).
const EG_MAX_BITS: u32 = 56;

fn check(ts: &[i64], vs: &[f64]) -> Result<(), ChunkError> {
    if ts.len() != vs.len() {
        return Err(ChunkError::LengthMismatch { timestamps: ts.len(), values: vs.len() });
    }
    if ts.len() > STORE_MAX_SAMPLES {
        return Err(ChunkError::TooLarge {
            what: "store chunk",
            count: ts.len() as u64,
            limit: STORE_MAX_SAMPLES as u64,
        });
    }
    Ok(())
}

/// Decodes a store chunk, appending timestamps (ms) to `ts` and values to `vs`.
///
/// # Errors
/// See the module doc; on error the vectors may hold a partial chunk.
pub fn decode_store_chunk(bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    decode_sections(bytes, ts, vs, false).map(|_| ())
}

/// Decodes only the values of a store chunk, appending them to `vs`; returns their count.
/// Regular and grid timestamps are skipped without being generated, packed ones are decoded
/// into a scratch buffer and dropped, so for a caller that has the timestamps already (the
/// second aggregate of a rollup read over the same grid) this is cheaper than
/// [`decode_store_chunk`]. It checks the chunk exactly as that does.
///
/// # Errors
/// As [`decode_store_chunk`].
pub fn decode_store_values(bytes: &[u8], vs: &mut Vec<f64>) -> Result<usize, ChunkError> {
    let start = vs.len();
    TS_SCRATCH.with_borrow_mut(|ts| {
        ts.clear();
        decode_sections(bytes, ts, vs, true)
    })?;
    Ok(vs.len() - start)
}

thread_local! {
    /// Packed timestamps decoded and dropped by [`decode_store_values`].
    static TS_SCRATCH: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where the parts of a store chunk lie, in bytes (see [`store_chunk_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreLayout {
    /// Encoding byte and sample count.
    pub header: usize,
    /// The timestamp section (including its first timestamp and parameters).
    pub timestamps: usize,
    /// The value section (including its parameters).
    pub values: usize,
}

/// Decodes a store chunk and reports how many of its bytes each part takes. For a chunk behind
/// [`ENC_XOR`] the encoding byte and 2-byte count are the header and the interleaved stream is
/// counted as values.
///
/// # Errors
/// As [`decode_store_chunk`].
pub fn store_chunk_layout(bytes: &[u8]) -> Result<StoreLayout, ChunkError> {
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let (h, v) = decode_sections(bytes, &mut ts, &mut vs, false)?;
    Ok(StoreLayout { header: h, timestamps: v - h, values: bytes.len() - v })
}

/// Decodes; returns the offsets where the timestamp and the value sections start. With
/// `values_only`, regular and grid timestamps are not generated (`ts` may then hold fewer
/// than the values; the caller drops it).
fn decode_sections(
    bytes: &[u8],
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
    values_only: bool,
) -> Result<(usize, usize), ChunkError> {
    let Some((&enc, body)) = bytes.split_first() else {
        return Err(ChunkError::TooShort { what: "store chunk", len: 0, needed: 1 });
    };
    if enc == ENC_XOR {
        return decode_xor_chunk(body, ts, vs).map(|_| (1, 3.min(bytes.len())));
    }
    let (ts_kind, v_kind) = (enc >> 4, enc & 15);
    if !matches!(
        ts_kind,
        TS_REGULAR | TS_DOD | TS_INT | TS_GRID | TS_GRID_PACKED | TS_DELTA_PACKED | TS_REGULAR_SECONDS
    ) || !matches!(v_kind, V_CONST | V_XOR | V_INT | V_CONST_INT | V_SCALED)
    {
        return Err(ChunkError::UnknownEncoding(enc));
    }
    let mut pos = 1;
    let n = get_uvarint(bytes, &mut pos)?;
    if n > STORE_MAX_SAMPLES as u64 {
        return Err(ChunkError::TooLarge { what: "store chunk", count: n, limit: STORE_MAX_SAMPLES as u64 });
    }
    let n = n as usize;
    let ts_start = pos;
    ts.reserve(n);
    vs.reserve(n);
    if ts_kind == TS_REGULAR || ts_kind == TS_REGULAR_SECONDS {
        if n > 0 {
            let t0 = get_varint(bytes, &mut pos)?;
            let mut d = if n > 1 { get_varint(bytes, &mut pos)? } else { 0 };
            if ts_kind == TS_REGULAR_SECONDS {
                d = d.wrapping_mul(1000);
            }
            if !values_only {
                ts.extend((0..n as i64).map(|i| t0.wrapping_add(d.wrapping_mul(i))));
            }
        }
    } else if ts_kind == TS_GRID {
        let t0 = get_varint(bytes, &mut pos)?;
        let d = get_varint(bytes, &mut pos)?;
        let start = ts.len();
        if !values_only {
            ts.extend((0..n as i64).map(|i| t0.wrapping_add(d.wrapping_mul(i))));
        }
        let ne = get_uvarint(bytes, &mut pos)?;
        if ne > n as u64 {
            return Err(ChunkError::Corrupt { what: "store grid exception count", offset: pos });
        }
        let mut last = 0u64;
        for _ in 0..ne {
            let at = pos;
            let i = last.checked_add(get_uvarint(bytes, &mut pos)?).filter(|&i| i < n as u64);
            let i = i.ok_or(ChunkError::Corrupt { what: "store grid exception position", offset: at })?;
            let o = get_varint(bytes, &mut pos)?;
            if !values_only {
                ts[start + i as usize] = ts[start + i as usize].wrapping_add(o);
            }
            last = i;
        }
    } else if ts_kind == TS_GRID_PACKED {
        let t0 = get_varint(bytes, &mut pos)?;
        let d = get_varint(bytes, &mut pos)?;
        if n > 0 {
            let start = ts.len();
            ts.push(t0);
            intpack::unpack(bytes, &mut pos, n - 1, ts, 0)?;
            for (i, t) in ts[start..].iter_mut().enumerate().skip(1) {
                *t = t.wrapping_add(t0.wrapping_add(d.wrapping_mul(i as i64)));
            }
        }
    } else if ts_kind == TS_DELTA_PACKED {
        let t0 = get_varint(bytes, &mut pos)?;
        if n > 0 {
            let start = ts.len();
            ts.push(t0);
            intpack::unpack(bytes, &mut pos, n - 1, ts, 0)?;
            let mut t = t0;
            for x in ts[start + 1..].iter_mut() {
                t = t.wrapping_add(*x);
                *x = t;
            }
        }
    } else if ts_kind == TS_INT {
        let order = *bytes.get(pos).ok_or(ChunkError::UnexpectedEof { bit_offset: pos * 8, needed: 8 })? as usize;
        if order > 2 {
            return Err(ChunkError::Corrupt { what: "store timestamp order", offset: pos });
        }
        let (d, end) = unpack_ints(bytes, pos + 1, 0, n, order)?;
        ts.extend_from_slice(&d);
        pos = end;
    } else {
        let len = get_uvarint(bytes, &mut pos)?;
        let end = (pos as u64)
            .checked_add(len)
            .filter(|&e| e <= bytes.len() as u64)
            .ok_or(ChunkError::Corrupt { what: "store timestamp length", offset: pos })? as usize;
        read_timestamps(&mut BitReader::new(&bytes[pos..end]), n, ts)?;
        pos = end;
    }
    let v_start = pos;
    let rest = &bytes[pos..];
    match v_kind {
        V_CONST => {
            if n == 0 {
                return if rest.is_empty() {
                    Ok((ts_start, v_start))
                } else {
                    Err(ChunkError::TrailingBytes { extra: rest.len(), end: pos })
                };
            }
            let b: [u8; 8] =
                rest.try_into().map_err(|_| ChunkError::Corrupt { what: "constant value", offset: pos })?;
            let v = f64::from_bits(u64::from_le_bytes(b));
            vs.extend(std::iter::repeat_n(v, n));
        }
        V_CONST_INT => {
            let mut p = 0;
            let d = get_varint(rest, &mut p)?;
            if p != rest.len() {
                return Err(ChunkError::TrailingBytes { extra: rest.len() - p, end: pos + p });
            }
            vs.extend(std::iter::repeat_n(d as f64, n));
        }
        V_XOR => {
            let mut d = XorDecoder::new(BitReader::new(rest));
            for _ in 0..n {
                vs.push(f64::from_bits(d.next_value()?));
            }
        }
        V_SCALED => decode_scaled(rest, pos, n, vs)?,
        _ => decode_int(rest, pos, n, vs)?,
    }
    Ok((ts_start, v_start))
}

/// Reads what [`pack_ints`] wrote at `b[pos..]`: `n` integers; returns them and the end offset.
fn unpack_ints(b: &[u8], mut pos: usize, base: usize, n: usize, order: usize) -> Result<(Vec<i64>, usize), ChunkError> {
    let corrupt = |what, at| ChunkError::Corrupt { what, offset: base + at };
    let seeds = order.min(n);
    let mut seed = [0i64; 2];
    for s in seed.iter_mut().take(seeds) {
        *s = get_varint(b, &mut pos)?;
    }
    let min = get_varint(b, &mut pos)?;
    let flag = *b.get(pos).ok_or(corrupt("store bit width", pos))? as u32;
    pos += 1;
    let m = n - seeds;
    let packed = &b[pos..];
    let mut r = BitReader::new(packed);
    let mut d: Vec<i64> = Vec::with_capacity(n);
    d.extend_from_slice(&seed[..seeds]);
    if flag & 0x80 == 0 {
        let bw = flag;
        if bw > 64 {
            return Err(corrupt("store bit width", pos - 1));
        }
        if (m as u64) * (bw as u64) > packed.len() as u64 * 8 {
            return Err(ChunkError::UnexpectedEof { bit_offset: (base + pos) * 8, needed: bw });
        }
        for _ in 0..m {
            d.push((r.read_bits(bw)? as i64).wrapping_add(min));
        }
    } else {
        let k = flag & 0x7f;
        if k >= EG_MAX_BITS {
            return Err(corrupt("store Golomb order", pos - 1));
        }
        // Every code word takes at least k + 1 bits.
        if (m as u64) * (k as u64 + 1) > packed.len() as u64 * 8 {
            return Err(ChunkError::UnexpectedEof { bit_offset: (base + pos) * 8, needed: k + 1 });
        }
        for _ in 0..m {
            let z = r.peek_lenient(EG_MAX_BITS).leading_zeros() - (64 - EG_MAX_BITS);
            let len = z + k + 1;
            if len > EG_MAX_BITS {
                return Err(corrupt("store Golomb code", pos + r.bit_pos() / 8));
            }
            r.consume(z)?;
            let y = r.read_bits(len)?;
            d.push((y.wrapping_sub(1u64 << k) as i64).wrapping_add(min));
        }
    }
    // Undo the differences, innermost first.
    for k in (0..seeds).rev() {
        for i in k + 1..n {
            d[i] = d[i].wrapping_add(d[i - 1]);
        }
    }
    let end = pos + r.bit_pos().div_ceil(8);
    Ok((d, end))
}

fn decode_int(b: &[u8], base: usize, n: usize, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let corrupt = |what, at| ChunkError::Corrupt { what, offset: base + at };
    let [e, f, order, ..] = *b else {
        return Err(ChunkError::TooShort { what: "store INT values", len: b.len(), needed: 3 });
    };
    let (e, f, order) = (e as usize, f as usize, order as usize);
    if e > MAX_EXP || f > e || order > 2 {
        return Err(corrupt("store INT header", 0));
    }
    let mut pos = 3;
    let exc = read_exceptions(b, &mut pos, base, n)?;
    let (d, _) = unpack_ints(b, pos, base, n, order)?;
    let start = vs.len();
    let (fe, fr) = (EXP[f], FRAC[e]);
    vs.extend(d.iter().map(|&x| (x as f64) * fe * fr));
    for (p, bits) in exc {
        vs[start + p] = f64::from_bits(bits);
    }
    Ok(())
}

/// Reads a value exception list (`exc: uvarint`, then `exc × (gap: uvarint, bits: u64 LE)`,
/// positions as gaps from the previous one) at `pos`, each position below `n`.
fn read_exceptions(b: &[u8], pos: &mut usize, base: usize, n: usize) -> Result<Vec<(usize, u64)>, ChunkError> {
    let corrupt = |what, at: usize| ChunkError::Corrupt { what, offset: base + at };
    let ne = get_uvarint(b, pos)?;
    if ne > n as u64 {
        return Err(corrupt("store exception count", *pos));
    }
    let mut exc = Vec::with_capacity(ne as usize);
    let mut last = 0u64;
    for _ in 0..ne {
        let p = last.checked_add(get_uvarint(b, pos)?).filter(|&p| p < n as u64);
        let p = p.ok_or(corrupt("store exception position", *pos))?;
        let x = b.get(*pos..*pos + 8).ok_or(corrupt("store exception value", *pos))?;
        exc.push((p as usize, u64::from_le_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]])));
        *pos += 8;
        last = p;
    }
    Ok(exc)
}

fn decode_scaled(b: &[u8], base: usize, n: usize, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let corrupt = |what, at| ChunkError::Corrupt { what, offset: base + at };
    let eof = |at: usize| ChunkError::UnexpectedEof { bit_offset: (base + at) * 8, needed: 8 };
    let h = *b.first().ok_or(eof(0))?;
    let (order, code) = ((h % 3) as usize, h / 3);
    let mut pos = 1;
    let scale = match code {
        0 => Scale::Bits,
        c if c < SCALE_TWO_DIVS => Scale::Div(c as usize - 1, 0),
        SCALE_TWO_DIVS => {
            let [x, y] = *b.get(1..3).ok_or(eof(1))? else { return Err(eof(1)) };
            let (x, y) = (x as usize, y as usize);
            if x + y > DIV_MAX_EXP {
                return Err(corrupt("store division exponents", 1));
            }
            pos = 3;
            Scale::Div(x, y)
        }
        _ => return Err(corrupt("store scale", 0)),
    };
    let exc = read_exceptions(b, &mut pos, base, n)?;
    SCRATCH.with_borrow_mut(|d| scaled_body(b, pos, base, n, order, scale, exc, d, vs))
}

thread_local! {
    /// The integers of a chunk being decoded: one buffer per thread instead of an allocation
    /// per chunk (decoding many small chunks otherwise spends much of its time in the
    /// allocator and in page faults).
    static SCRATCH: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`decode_scaled`] after its header: the integers at `pos`, differences undone, scaled.
#[allow(clippy::too_many_arguments)]
fn scaled_body(
    b: &[u8],
    mut pos: usize,
    base: usize,
    n: usize,
    order: usize,
    scale: Scale,
    exc: Vec<(usize, u64)>,
    d: &mut Vec<i64>,
    vs: &mut Vec<f64>,
) -> Result<(), ChunkError> {
    let seeds = order.min(n);
    d.clear();
    d.reserve(n);
    for _ in 0..seeds {
        d.push(get_varint(b, &mut pos)?);
    }
    if n > seeds {
        intpack::unpack(b, &mut pos, n - seeds, d, base)?;
    }
    // Undo the differences, innermost first.
    for k in (0..seeds).rev() {
        let mut acc = d[k];
        for x in &mut d[k + 1..] {
            acc = acc.wrapping_add(*x);
            *x = acc;
        }
    }
    if pos != b.len() {
        return Err(ChunkError::TrailingBytes { extra: b.len() - pos, end: base + pos });
    }
    let start = vs.len();
    match scale {
        Scale::Bits => vs.extend(d.iter().map(|&x| f64::from_bits(x as u64))),
        Scale::Div(0, 0) => vs.extend(d.iter().map(|&v| v as f64)),
        Scale::Div(x, 0) => {
            let p = EXP[x];
            vs.extend(d.iter().map(|&v| (v as f64) / p));
        }
        Scale::Div(x, y) => {
            let (p, q) = (EXP[x], EXP[y]);
            vs.extend(d.iter().map(|&v| (v as f64) / p / q));
        }
    }
    for (p, bits) in exc {
        vs[start + p] = f64::from_bits(bits);
    }
    Ok(())
}

/// Writes samples as a Prometheus XOR chunk behind [`ENC_XOR`] (for callers that want
/// Prometheus's layout inside the store format).
///
/// # Errors
/// As [`encode_store_chunk`].
pub fn encode_store_chunk_xor(ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    check(ts, vs)?;
    let mut c = XorChunk::with_capacity(ts.len() * 2 + 16);
    for (&t, &v) in ts.iter().zip(vs) {
        c.append(t, v)?;
    }
    out.push(ENC_XOR);
    out.extend_from_slice(c.bytes());
    Ok(())
}

/// The `store` chunk format as a [`Codec`] (blocks larger than [`STORE_MAX_SAMPLES`] are
/// rejected; the harness cuts series into chunks first). The values-only form uses timestamps
/// `0, 1, 2, …` (one byte of regular timestamps).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreCodec;

impl Codec for StoreCodec {
    fn name(&self) -> &'static str {
        "store"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        encode_store_chunk_into(ts, vs, out)
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        decode_store_chunk(bytes, ts, vs)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        let ts: Vec<i64> = (0..vs.len() as i64).collect();
        encode_store_chunk_into(&ts, vs, out)
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut ts = Vec::new();
        decode_store_chunk(bytes, &mut ts, vs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(ts: &[i64], vs: &[f64]) -> usize {
        let b = encode_store_chunk(ts, vs).unwrap();
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        decode_store_chunk(&b, &mut t2, &mut v2).unwrap();
        assert_eq!(t2, ts);
        assert_eq!(
            v2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        b.len()
    }

    #[test]
    fn picks_small_encodings() {
        let ts: Vec<i64> = (0..120).map(|i| 1_795_264_945_122 + i * 1000).collect();
        assert!(rt(&ts, &[1.0; 120]) <= 20);
        let counter: Vec<f64> = (0..120).map(|i| (10_000 + i * 3 + i % 2) as f64).collect();
        assert!(rt(&ts, &counter) < 50);
        let dec: Vec<f64> = (0..120).map(|i| (10_622 + i * 97 % 13) as f64 / 100.0).collect();
        rt(&ts, &dec);
        let mut odd = dec.clone();
        odd[7] = f64::NAN;
        odd[8] = crate::codec::alp::EXP[3].sqrt();
        odd[9] = -0.0;
        rt(&ts, &odd);
        let jitter: Vec<i64> = ts.iter().enumerate().map(|(i, t)| t + (i as i64 % 3)).collect();
        rt(&jitter, &odd);
        rt(&[], &[]);
        rt(&[5], &[f64::NAN]);
        rt(&[i64::MIN, i64::MAX], &[f64::MAX, f64::MIN]);
    }

    #[test]
    fn reaches_the_packed_forms() {
        let ts: Vec<i64> = (0..2048).map(|i| 1_795_264_945_122 + i * 1000).collect();
        let mut jitter = ts.clone();
        for i in (5..2048).step_by(300) {
            jitter[i] -= 3;
        }
        let mut shifted = ts.clone();
        for t in &mut shifted[700..] {
            *t += 1;
        }
        let lcg = |i: u64| i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407) >> 40;
        let ns: Vec<f64> = (0..2048u64).map(|i| (200_000 + lcg(i) % 100_000) as f64 / 1e9).collect();
        let us: Vec<f64> = (0..2048u64).map(|i| (92_152_619 + i * 7 + lcg(i) % 5) as f64 / 1000.0 / 1000.0).collect();
        let clock: Vec<f64> =
            (0..2048u64).map(|i| 1.795e9 + i as f64 * 1.000_000_1 + (lcg(i) % 1000) as f64 * 1e-6).collect();
        let pages: Vec<f64> = (0..2048u64).map(|i| ((100_000 + lcg(i) % 50) * 4096) as f64).collect();
        // The encoding byte, and the first byte of the value section.
        let enc = |t: &[i64], v: &[f64]| {
            let b = encode_store_chunk(t, v).unwrap();
            rt(t, v);
            let l = store_chunk_layout(&b).unwrap();
            [b[0], b[l.header + l.timestamps]]
        };
        assert_eq!(enc(&ts, &ns)[0], (TS_REGULAR_SECONDS << 4) | V_SCALED);
        let b = enc(&jitter, &us);
        assert_eq!(b[0] >> 4, TS_GRID_PACKED);
        assert_eq!(b[1] / 3, SCALE_TWO_DIVS, "d / 10^3 / 10^3");
        assert_eq!(enc(&shifted, &pages)[0], (TS_DELTA_PACKED << 4) | V_SCALED);
        let b = enc(&ts, &clock);
        assert_eq!((b[0] & 15, b[1] / 3), (V_SCALED, 0), "bits as integers");
        let mut xs: Vec<f64> = ns.clone();
        xs[9] = f64::NAN;
        xs[10] = -0.0;
        enc(&shifted, &xs);
    }

    #[test]
    fn xor_behind_the_encoding_byte() {
        let mut out = Vec::new();
        encode_store_chunk_xor(&[1, 2], &[0.5, 0.25], &mut out).unwrap();
        let (mut t, mut v) = (Vec::new(), Vec::new());
        decode_store_chunk(&out, &mut t, &mut v).unwrap();
        assert_eq!((t, v), (vec![1, 2], vec![0.5, 0.25]));
    }
}
