//! Errors of block writing and reading.

use std::path::PathBuf;

/// Errors of [`BlockWriter`](super::BlockWriter), [`Block`](super::Block) and the functions
/// that list, open and delete blocks. Every variant names the file (and, for damaged data,
/// the byte offset) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A file or directory could not be read, written, synced or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Stored bytes failed a check (checksum, bounds, format).
    #[error("corrupt block data in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged structure in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The block's index failed a check (the index error carries the offset).
    #[error("block index {}: {source}", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// What the index reader found.
        source: telemetry_index::IndexError,
    },
    /// `meta.json` is not a valid block description.
    #[error("block metadata {}: {source}", path.display())]
    Meta {
        /// The `meta.json` file.
        path: PathBuf,
        /// The JSON error (with line and column).
        source: serde_json::Error,
    },
    /// Samples given to the writer are invalid (lengths differ, timestamps not increasing).
    #[error("invalid samples for series {series}: {reason}")]
    InvalidSamples {
        /// The series, in Prometheus text form.
        series: String,
        /// What is wrong.
        reason: String,
    },
    /// A chunk could not be encoded.
    #[error("encoding a chunk of series {series}: {source}")]
    Encode {
        /// The series, in Prometheus text form.
        series: String,
        /// The codec's error.
        source: telemetry_compress::ChunkError,
    },
    /// A configuration (for example a [`TierConfig`](crate::tier::TierConfig)) is invalid;
    /// the message names the field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The same series was added twice to one writer.
    #[error("series {0} added twice to one block")]
    DuplicateSeries(String),
}

impl BlockError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BlockError {
        let path = path.into();
        move |source| BlockError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> BlockError {
        BlockError::Corrupt { path: path.into(), offset, reason: reason.into() }
    }
}

impl From<BlockError> for telemetry_core::StorageError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Io { source, .. } => telemetry_core::StorageError::Io(source),
            BlockError::Config(msg) => telemetry_core::StorageError::Unsupported(msg),
            other => telemetry_core::StorageError::Corruption { location: "block".into(), reason: other.to_string() },
        }
    }
}
