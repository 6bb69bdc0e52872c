//! The adaptive `store` chunk format (being filled in: currently every chunk is written as
//! encoding `0x01`, a Prometheus XOR chunk).

use crate::codec::Codec;
use crate::error::ChunkError;
use crate::xor::{XOR_MAX_SAMPLES, XorChunk, decode_xor_chunk};

/// Largest number of samples in one store chunk.
pub const STORE_MAX_SAMPLES: usize = XOR_MAX_SAMPLES;

/// Encoding byte: the rest is a Prometheus XOR chunk.
pub const ENC_XOR: u8 = 0x01;

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
    check(ts, vs)?;
    let mut c = XorChunk::with_capacity(ts.len() * 2 + 16);
    for (&t, &v) in ts.iter().zip(vs) {
        c.append(t, v)?;
    }
    out.push(ENC_XOR);
    out.extend_from_slice(c.bytes());
    Ok(())
}

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
/// [`ChunkError::TooShort`] for an empty buffer, [`ChunkError::UnknownEncoding`], or the error
/// of the encoding's decoder.
pub fn decode_store_chunk(bytes: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<(), ChunkError> {
    let Some((&enc, body)) = bytes.split_first() else {
        return Err(ChunkError::TooShort { what: "store chunk", len: 0, needed: 1 });
    };
    match enc {
        ENC_XOR => decode_xor_chunk(body, ts, vs).map(|_| ()),
        other => Err(ChunkError::UnknownEncoding(other)),
    }
}

/// The `store` chunk format as a [`Codec`] (blocks larger than [`STORE_MAX_SAMPLES`] are
/// rejected; the harness cuts series into chunks first).
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
        let ts = vec![0i64; vs.len()];
        encode_store_chunk_into(&ts, vs, out)
    }

    fn decode_values(&self, bytes: &[u8], vs: &mut Vec<f64>) -> Result<(), ChunkError> {
        let mut ts = Vec::new();
        decode_store_chunk(bytes, &mut ts, vs)
    }
}
