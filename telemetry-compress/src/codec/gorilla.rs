//! The `gorilla` codec: Prometheus's XOR bit stream with a varint count instead of the `u16`.
//!
//! ```text
//! samples:  ┌──────────────┬────────────────────────────────────────────────┐
//!           │ n: uvarint   │ Prometheus XOR bit stream (see crate::xor)     │
//!           └──────────────┴────────────────────────────────────────────────┘
//! values:   ┌──────────────┬──────────────┬──────────────────────────────────┐
//!           │ n: uvarint   │ v0: 64 bits  │ XOR values (control bits 0/10/11)│
//!           └──────────────┴──────────────┴──────────────────────────────────┘
//! ```
//!
//! Pelkonen et al., *Gorilla*, VLDB 2015, §4.1.2; the value form is what the published
//! "Gorilla" bits/value figures measure (values only, no timestamps).

use super::{Codec, check_count, check_lengths, read_count};
use crate::bits::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::varint::put_uvarint;
use crate::xor::{XorDecoder, XorEncoder, decode_stream};

/// Gorilla / Prometheus XOR encoding of whole blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gorilla;

impl Codec for Gorilla {
    fn name(&self) -> &'static str {
        "gorilla"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_lengths(ts, vs)?;
        put_uvarint(out, ts.len() as u64);
        let mut w = BitWriter::with_capacity(ts.len() * 2 + 16);
        let mut e = XorEncoder::new();
        for (&t, &v) in ts.iter().zip(vs) {
            e.append(&mut w, t, v);
        }
        out.extend_from_slice(w.finish());
        Ok(())
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        decode_stream(&bytes[pos..], n, ts, vs)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_count(vs.len())?;
        put_uvarint(out, vs.len() as u64);
        let mut w = BitWriter::with_capacity(vs.len() * 2 + 16);
        let mut e = XorEncoder::new();
        for &v in vs {
            e.append_value(&mut w, v);
        }
        out.extend_from_slice(w.finish());
        Ok(())
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        let body = &bytes[pos..];
        vs.reserve(n.min(body.len() * 8 + 1));
        let mut d = XorDecoder::new(BitReader::new(body));
        for _ in 0..n {
            vs.push(f64::from_bits(d.next_value()?));
        }
        Ok(())
    }
}
