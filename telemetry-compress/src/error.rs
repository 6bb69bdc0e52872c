//! The one error type of this crate.

/// Why bytes could not be decoded, or why samples could not be encoded.
///
/// Offsets are counted from the start of the buffer handed to the decoder: `bit_offset` in bits,
/// `offset` in bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The bit stream ended before the sample count in the header was reached.
    #[error("unexpected end of data at bit {bit_offset}: needed {needed} more bits")]
    UnexpectedEof {
        /// Bit position where the read started.
        bit_offset: usize,
        /// How many bits the read needed.
        needed: u32,
    },
    /// The buffer is shorter than the fixed header of the format.
    #[error("{what}: {len} bytes is shorter than its {needed}-byte header")]
    TooShort {
        /// Which format.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// A LEB128 varint ran past the end of the data or past 64 bits.
    #[error("invalid varint at byte {offset}")]
    BadVarint {
        /// Byte offset where the varint starts.
        offset: usize,
    },
    /// An XOR value header announced more than 64 bits (leading zeros + significant bits > 64).
    #[error("sample {index}: value window of {leading} leading and {significant} significant bits exceeds 64")]
    BadValueWindow {
        /// Index of the sample in the chunk.
        index: usize,
        /// Leading zero count read from the stream.
        leading: u32,
        /// Significant bit count read from the stream.
        significant: u32,
    },
    /// The encoding byte in front of a chunk names no known encoding.
    #[error("unknown encoding byte {0:#04x}")]
    UnknownEncoding(u8),
    /// An XOR chunk stores its sample count in 16 bits: at most 65,535 samples.
    #[error("XOR chunk is full: it holds at most 65535 samples")]
    ChunkFull,
    /// Timestamps and values of a block differ in length.
    #[error("length mismatch: {timestamps} timestamps but {values} values")]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// Whole bytes remain after the last sample of a chunk.
    #[error("{extra} trailing bytes after the last sample (stream ends at byte {end})")]
    TrailingBytes {
        /// Number of unused bytes.
        extra: usize,
        /// Byte length the stream actually needed.
        end: usize,
    },
    /// The padding bits after the last sample are not zero.
    #[error("non-zero padding bits after the last sample at bit {bit_offset}")]
    NonZeroPadding {
        /// Bit position where the padding starts.
        bit_offset: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("corrupt {what} at byte {offset}")]
    Corrupt {
        /// Which field.
        what: &'static str,
        /// Byte offset of the field (best effort).
        offset: usize,
    },
    /// A count in the header exceeds the limit a decoder accepts (protects against huge allocations).
    #[error("{what}: count {count} exceeds the limit {limit}")]
    TooLarge {
        /// Which count.
        what: &'static str,
        /// The count read.
        count: u64,
        /// The largest accepted count.
        limit: u64,
    },
}
