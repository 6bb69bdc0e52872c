//! The `zstd` baseline: zstd (RFC 8878) over the `raw` codec's bytes.
//!
//! ```text
//! ┌─────────────┬──────────────────────────────────────────────┐
//! │ n: uvarint  │ zstd frame of the raw body (see codec::raw)  │
//! └─────────────┴──────────────────────────────────────────────┘
//! ```

use super::raw::{get_raw, put_raw};
use super::{Codec, check_count, check_lengths, read_count};
use crate::error::ChunkError;
use crate::varint::put_uvarint;

/// zstd over raw little-endian samples (cargo feature `zstd`).
#[derive(Debug, Clone, Copy)]
pub struct Zstd {
    /// Compression level (1-22).
    pub level: i32,
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd { level: 3 }
    }
}

fn compress(raw: &[u8], level: i32, out: &mut Vec<u8>) -> Result<(), ChunkError> {
    let c = zstd::bulk::compress(raw, level).map_err(|_| ChunkError::Corrupt { what: "zstd input", offset: 0 })?;
    out.extend_from_slice(&c);
    Ok(())
}

fn decompress(body: &[u8], expected: usize) -> Result<Vec<u8>, ChunkError> {
    let v =
        zstd::bulk::decompress(body, expected).map_err(|_| ChunkError::Corrupt { what: "zstd frame", offset: 0 })?;
    if v.len() != expected {
        return Err(ChunkError::Corrupt { what: "zstd frame length", offset: 0 });
    }
    Ok(v)
}

impl Codec for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn encode(&self, ts: &[i64], vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_lengths(ts, vs)?;
        put_uvarint(out, ts.len() as u64);
        let mut raw = Vec::new();
        put_raw(ts, vs, &mut raw);
        compress(&raw, self.level, out)
    }

    fn decode(&self, bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        let raw = decompress(&bytes[pos..], n * 16)?;
        get_raw(&raw, n, ts, vs)
    }

    fn encode_values(&self, vs: &[f64], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        check_count(vs.len())?;
        put_uvarint(out, vs.len() as u64);
        let mut raw = Vec::new();
        put_raw(&[], vs, &mut raw);
        compress(&raw, self.level, out)
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut pos = 0;
        let n = read_count(bytes, &mut pos)?;
        let raw = decompress(&bytes[pos..], n * 8)?;
        vs.extend(raw.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])));
        Ok(())
    }
}
