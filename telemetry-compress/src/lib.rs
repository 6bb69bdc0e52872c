//! # telemetry-compress
//!
//! Chunk formats and research codecs for time series of `(timestamp, f64)` samples.
//!
//! Timestamps are `i64` milliseconds since the Unix epoch; values are `f64`, always kept to the
//! bit (NaN payloads, `-0.0`, infinities, subnormals and Prometheus's stale marker survive).
//!
//! ## What the store codes against (stable API)
//!
//! - [`XorChunk`]: Prometheus's XOR chunk, byte-compatible with `tsdb/chunkenc/xor.go`
//!   (2-byte big-endian count, then the Gorilla bit stream). [`XorChunk::append`],
//!   [`XorChunk::num_samples`], [`XorChunk::bytes`], [`XorChunk::from_bytes`] (validating),
//!   [`XorChunk::iter`] (yields [`telemetry_core::Sample`], with [`XorIter::seek`]),
//!   [`XorChunk::min_time`]/[`XorChunk::max_time`], and the bulk decoders
//!   [`XorChunk::decode_into`] / [`decode_xor_chunk`].
//! - The adaptive store chunk ([`store`]): [`encode_store_chunk`] / [`encode_store_chunk_into`]
//!   and [`decode_store_chunk`]; one encoding byte in front, then the smallest of several
//!   encodings (regular timestamps, or a grid with packed jitter offsets, or packed deltas;
//!   constant values, Gorilla XOR, or integers — decimals as `d / 10^e`, or the raw bits —
//!   differenced and bit-packed with per-block widths, exponential-Golomb or sparse exceptions),
//!   at most [`STORE_MAX_SAMPLES`] samples per chunk. [`store_chunk_layout`] reports where a
//!   chunk's bytes go.
//!   [`store::encode_store_chunk_xor`] writes a plain Prometheus XOR chunk behind its encoding
//!   byte instead.
//! - One error type, [`ChunkError`].
//!
//! ## Research
//!
//! The [`Codec`] trait and its implementations (`gorilla`, `chimp128`, `alp`, `raw`, `zstd`
//! behind the cargo feature `zstd`, `store`), found by name with [`codec_by_name`]. The
//! `codec_bench` example at the repository root compares them on real data.
//!
//! ```
//! use telemetry_compress::{XorChunk, decode_store_chunk, encode_store_chunk};
//!
//! let ts: Vec<i64> = (0..120).map(|i| 1_700_000_000_000 + i * 1_000).collect();
//! let vs: Vec<f64> = (0..120).map(|i| i as f64 * 0.5).collect();
//!
//! let mut chunk = XorChunk::new();
//! for (&t, &v) in ts.iter().zip(&vs) {
//!     chunk.append(t, v)?;
//! }
//! let (mut t2, mut v2) = (Vec::new(), Vec::new());
//! chunk.decode_into(&mut t2, &mut v2)?;
//! assert_eq!((t2.as_slice(), v2.as_slice()), (ts.as_slice(), vs.as_slice()));
//!
//! let bytes = encode_store_chunk(&ts, &vs)?;
//! let (mut t3, mut v3) = (Vec::new(), Vec::new());
//! decode_store_chunk(&bytes, &mut t3, &mut v3)?;
//! assert_eq!(v3, vs);
//! # Ok::<(), telemetry_compress::ChunkError>(())
//! ```

pub mod bits;
pub mod codec;
mod error;
mod ffor;
mod intpack;
pub mod store;
mod varint;
pub mod xor;

pub use bits::{BitReader, BitWriter};
pub use codec::{Codec, all_codecs, codec_by_name, codec_names};
pub use error::ChunkError;
pub use store::{
    STORE_MAX_SAMPLES, StoreCodec, StoreLayout, StoreOptions, decode_store_chunk, decode_store_values,
    encode_store_chunk, encode_store_chunk_into, encode_store_chunk_with, store_chunk_layout,
};
pub use xor::{XOR_MAX_SAMPLES, XorChunk, XorIter, decode_xor_chunk};
