//! The `chimp128` codec: Chimp with a window of the 128 previous values.
//!
//! P. Liakos, K. Papakonstantinopoulou, Y. Kotidis, *Chimp: Efficient Lossless Floating Point
//! Compression for Time Series Databases*, PVLDB 15(11), 2022, §4 (Algorithm 1: Chimp; §4.3 and
//! Algorithm 2: Chimp128). Field widths follow the authors' reference code (`ChimpN.java`).
//!
//! Each value is XORed with a reference: the most recent of the last 128 values sharing its 14
//! low bits (found through a table indexed by those bits) when that XOR has more than 13
//! trailing zeros, otherwise the previous value. Leading zeros are rounded down to
//! `{0, 8, 12, 16, 18, 20, 22, 24}` and coded in 3 bits.
//!
//! ```text
//! first value: ┌──────────────┐
//!              │ v0: 64 bits  │
//!              └──────────────┘
//! then, x = bits(v) XOR bits(reference):
//! ┌────┬────────────┐                                          x = 0
//! │ 00 │ index: 7   │                                          (index = reference slot)
//! ├────┼────────────┼──────────┬───────────┬─────────────────┐ tz(x) > 13
//! │ 01 │ index: 7   │ lead: 3  │ sig: 6    │ x >> tz: sig    │ sig = 64 - lead - tz(x)
//! ├────┼────────────┴──────────┴───────────┴─┐               │
//! │ 10 │ x: 64 - lead bits                   │               │ lead = previous lead
//! ├────┼──────────┬──────────────────────────┴┐              │
//! │ 11 │ lead: 3  │ x: 64 - lead bits         │              │ new lead
//! └────┴──────────┴───────────────────────────┘
//! ```
//!
//! Block framing: `n` as a uvarint, then the bit stream (the paper ends a stream with a NaN
//! sentinel; a count keeps NaN payloads intact). Decoding errors: [`ChunkError::UnexpectedEof`],
//! [`ChunkError::BadVarint`], [`ChunkError::TooLarge`].

use super::{Codec, check_count, decode_block, encode_block, read_count};
use crate::bits::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::varint::put_uvarint;

const PREV: usize = 128;
const PREV_LOG2: u32 = 7;
const THRESHOLD: u32 = 6 + PREV_LOG2;
const SET_LSB: u64 = (1 << (THRESHOLD + 1)) - 1;

const LEADING_ROUND: [u8; 65] = {
    let mut t = [0u8; 65];
    let mut i = 0;
    while i < 65 {
        t[i] = match i {
            0..=7 => 0,
            8..=11 => 8,
            12..=15 => 12,
            16..=17 => 16,
            18..=19 => 18,
            20..=21 => 20,
            22..=23 => 22,
            _ => 24,
        };
        i += 1;
    }
    t
};
const LEADING_CODE: [u8; 25] = {
    let mut t = [0u8; 25];
    let vals = [0usize, 8, 12, 16, 18, 20, 22, 24];
    let mut i = 0;
    while i < 8 {
        t[vals[i]] = i as u8;
        i += 1;
    }
    t
};
const LEADING_DECODE: [u32; 8] = [0, 8, 12, 16, 18, 20, 22, 24];

/// Chimp128 (values only), with timestamps in the shared block layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chimp128;

/// Writes the Chimp128 bit stream of `vs`.
pub(crate) fn chimp_encode(vs: &[f64], w: &mut BitWriter) {
    let mut stored = [0u64; PREV];
    let mut indices = vec![0usize; 1 << (THRESHOLD + 1)];
    let mut stored_lead: u32 = 65;
    let mut index = 0usize;
    let mut current = 0usize;
    for (i, &v) in vs.iter().enumerate() {
        let value = v.to_bits();
        if i == 0 {
            stored[0] = value;
            w.write_bits(value, 64);
            indices[(value & SET_LSB) as usize] = index;
            continue;
        }
        let key = (value & SET_LSB) as usize;
        let curr_index = indices[key];
        let (prev_index, xor, tz) = if index - curr_index < PREV {
            let temp = value ^ stored[curr_index % PREV];
            let tz = temp.trailing_zeros();
            if tz > THRESHOLD {
                (curr_index % PREV, temp, tz)
            } else {
                let p = index % PREV;
                (p, stored[p] ^ value, tz)
            }
        } else {
            let p = index % PREV;
            (p, stored[p] ^ value, 0)
        };
        if xor == 0 {
            w.write_bits(prev_index as u64, 2 + PREV_LOG2);
            stored_lead = 65;
        } else {
            let lead = LEADING_ROUND[xor.leading_zeros() as usize] as u32;
            if tz > THRESHOLD {
                let sig = 64 - lead - tz;
                let head = ((PREV + prev_index) as u64) << 9 | (LEADING_CODE[lead as usize] as u64) << 6 | sig as u64;
                w.write_bits(head, 11 + PREV_LOG2);
                w.write_bits(xor >> tz, sig);
                stored_lead = 65;
            } else if lead == stored_lead {
                w.write_bits(0b10, 2);
                w.write_bits(xor, 64 - lead);
            } else {
                stored_lead = lead;
                w.write_bits(24 + LEADING_CODE[lead as usize] as u64, 5);
                w.write_bits(xor, 64 - lead);
            }
        }
        current = (current + 1) % PREV;
        stored[current] = value;
        index += 1;
        indices[key] = index;
    }
}

/// Reads `n` values of a Chimp128 bit stream.
pub(crate) fn chimp_decode(r: &mut BitReader<'_>, n: usize, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    if n == 0 {
        return Ok(());
    }
    let mut stored = [0u64; PREV];
    let mut current = 0usize;
    let mut lead: u32 = 0;
    let mut value = r.read_bits(64)?;
    stored[0] = value;
    vs.push(f64::from_bits(value));
    for _ in 1..n {
        let flag = r.read_bits(2)?;
        match flag {
            0b11 => {
                lead = LEADING_DECODE[r.read_bits(3)? as usize];
                value ^= r.read_bits(64 - lead)?;
            }
            0b10 => {
                value ^= r.read_bits(64 - lead)?;
            }
            0b01 => {
                let h = r.read_bits(PREV_LOG2 + 9)?;
                let idx = (h >> 9) as usize;
                lead = LEADING_DECODE[((h >> 6) & 7) as usize];
                let mut sig = (h & 63) as u32;
                if sig == 0 {
                    sig = 64;
                }
                if lead + sig > 64 {
                    return Err(ChunkError::Corrupt { what: "chimp128 significant bits", offset: r.bit_pos() / 8 });
                }
                let tz = 64 - sig - lead;
                value = stored[idx] ^ (r.read_bits(sig)? << tz);
            }
            _ => {
                let idx = r.read_bits(PREV_LOG2)? as usize;
                value = stored[idx];
            }
        }
        current = (current + 1) % PREV;
        stored[current] = value;
        vs.push(f64::from_bits(value));
    }
    Ok(())
}

fn encode_values_into(vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    check_count(vs.len())?;
    put_uvarint(out, vs.len() as u64);
    let mut w = BitWriter::with_capacity(vs.len() * 4 + 16);
    chimp_encode(vs, &mut w);
    out.extend_from_slice(w.finish());
    Ok(())
}

fn decode_values_from(bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let mut pos = 0;
    let n = read_count(bytes, &mut pos)?;
    let body = &bytes[pos..];
    // Every value after the first takes at least 9 bits.
    if n > 1 && (n - 1) * 9 + 64 > body.len() * 8 {
        return Err(ChunkError::UnexpectedEof { bit_offset: body.len() * 8, needed: 9 });
    }
    vs.reserve(n);
    chimp_decode(&mut BitReader::new(body), n, vs)
}

impl Codec for Chimp128 {
    fn name(&self) -> &'static str {
        "chimp128"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        encode_block(ts, vs, out, encode_values_into)
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        decode_block(bytes, ts, vs, decode_values_from)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        encode_values_into(vs, out)
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        decode_values_from(bytes, vs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_repeats_and_window_hits() {
        let mut vs: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 300) as f64 * 0.01).collect();
        vs.extend([f64::NAN, -0.0, 0.0, f64::INFINITY, f64::MIN_POSITIVE / 2.0, 1.0, 1.0]);
        let mut out = Vec::new();
        Chimp128.encode_values(&vs, &mut out).unwrap();
        let mut back = Vec::new();
        Chimp128.decode_values(&out, &mut back).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(out.len() * 8 < vs.len() * 40, "{} bytes", out.len());
    }
}
