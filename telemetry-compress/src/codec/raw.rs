//! The `raw` codec: 8 bytes per timestamp and per value, little-endian; the baseline of 64 bits
//! per value.
//!
//! ```text
//! samples: ┌─────────────┬──────────────────────┬──────────────────────┐
//!          │ n: uvarint  │ n × i64 LE timestamps│ n × f64 LE values    │
//!          └─────────────┴──────────────────────┴──────────────────────┘
//! values:  ┌─────────────┬──────────────────────┐
//!          │ n: uvarint  │ n × f64 LE values    │
//!          └─────────────┴──────────────────────┘
//! ```

use super::{Codec, check_count, check_lengths, read_count};
use crate::error::ChunkError;
use crate::varint::put_uvarint;

/// Uncompressed little-endian samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

pub(crate) fn put_raw(ts: &[i64], vs: &[f64], out: &mut Vec<u8>) {
    out.reserve(16 * ts.len());
    for &t in ts {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for &v in vs {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn get_raw(body: &[u8], n: usize, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    if body.len() != n * 16 {
        return Err(ChunkError::Corrupt { what: "raw body length", offset: 0 });
    }
    let (tb, vb) = body.split_at(n * 8);
    ts.extend(tb.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])));
    vs.extend(vb.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])));
    Ok(())
}

impl Codec for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_lengths(ts, vs)?;
        put_uvarint(out, ts.len() as u64);
        put_raw(ts, vs, out);
        Ok(())
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        get_raw(&bytes[pos..], n, ts, vs)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_count(vs.len())?;
        put_uvarint(out, vs.len() as u64);
        put_raw(&[], vs, out);
        Ok(())
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        let body = &bytes[pos..];
        if body.len() != n * 8 {
            return Err(ChunkError::Corrupt { what: "raw body length", offset: pos });
        }
        vs.extend(body.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])));
        Ok(())
    }
}
