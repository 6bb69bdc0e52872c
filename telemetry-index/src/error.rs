//! Errors of the index.

use crate::SeriesRef;

/// What went wrong in the index: bad calls on the in-memory index, or a persisted index that
/// is truncated, corrupt or of another version. Every variant names what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// [`MemIndex::add`](crate::MemIndex::add) was given a reference that is already indexed.
    #[error("series reference {series_ref} is already in the index")]
    DuplicateSeries {
        /// The reference.
        series_ref: SeriesRef,
    },
    /// A series with no labels cannot be indexed (it could never be selected).
    #[error("series reference {series_ref} has an empty label set")]
    EmptyLabels {
        /// The reference.
        series_ref: SeriesRef,
    },
    /// The reference space is exhausted (`u32::MAX` is reserved).
    #[error("series reference {series_ref} is out of range")]
    RefOutOfRange {
        /// The reference.
        series_ref: SeriesRef,
    },
    /// The persisted index is shorter than its fixed header and table of contents.
    #[error("index is {len} bytes, shorter than the {min} bytes of header and table of contents")]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        min: usize,
    },
    /// The file does not start with the index magic number.
    #[error("bad magic number {found:#010x} at offset 0, expected {expected:#010x}")]
    BadMagic {
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number.
        expected: u32,
    },
    /// The format version is not one this reader understands.
    #[error("index format version {found} is not supported (this reader supports {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// A stored CRC32C checksum does not match the bytes it covers.
    #[error("checksum mismatch in {what} at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Which structure.
        what: &'static str,
        /// Byte offset of the structure in the file.
        offset: u64,
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// An offset or length points outside the file or its section.
    #[error("{what} at offset {offset} with length {len} runs past the end ({limit})")]
    OutOfBounds {
        /// Which structure.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// The limit it had to stay under.
        limit: u64,
    },
    /// A structure is malformed in another way (a bad varint, a symbol reference past the
    /// table, unsorted entries, invalid UTF-8, …).
    #[error("corrupt {what} at offset {offset}: {reason}")]
    Corrupt {
        /// Which structure.
        what: &'static str,
        /// Byte offset of the structure in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing a persisted index: a size that does not fit the format.
    #[error("index too large: {what} is {value}, the format allows at most {max}")]
    TooLarge {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// Reading or writing the file failed.
    #[error("index I/O on {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
