//! Errors of the head and its appenders.

use telemetry_core::{LabelError, Labels};

use crate::SeriesRef;
use crate::series::Refusal;
use crate::wal::WalError;

/// Why a sample was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefuseReason {
    /// Older than the series' newest sample by more than the out-of-order window.
    TooOld {
        /// The series' newest timestamp (ms) when the sample was refused.
        newest_ms: i64,
    },
    /// A sample exists at this timestamp with a different value (compared bit for bit).
    Duplicate {
        /// The stored value.
        existing: f64,
    },
}

/// Errors of [`Appender`](crate::Appender)'s `append*` methods.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The sample breaks the ordering rules; it was counted in
    /// [`HeadStats`](crate::HeadStats) and not stored.
    #[error("sample {series} @ {timestamp_ms} = {value} refused: {reason}")]
    Refused {
        /// The series, in Prometheus text form.
        series: String,
        /// The sample's timestamp (ms).
        timestamp_ms: i64,
        /// The sample's value.
        value: f64,
        /// Why.
        reason: RefuseReason,
    },
    /// The labels of a new series are invalid.
    #[error("invalid labels: {0}")]
    InvalidLabels(#[from] LabelError),
    /// No series with this reference is in the head.
    #[error("unknown series reference {0}")]
    UnknownRef(SeriesRef),
    /// A series needs at least one label.
    #[error("empty label set")]
    EmptyLabels,
    /// The head has handed out every series reference (about four billion, the index's
    /// limit); reopening it starts over from the WAL's references.
    #[error("series reference space exhausted")]
    TooManySeries,
    /// The index refused the series.
    #[error("index refused series {series}: {reason}")]
    Index {
        /// The series.
        series: String,
        /// The index's error.
        reason: String,
    },
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefuseReason::TooOld { newest_ms } => {
                write!(f, "older than the out-of-order window allows (series' newest sample at {newest_ms})")
            }
            RefuseReason::Duplicate { existing } => {
                write!(f, "a different value ({existing}) exists at this timestamp")
            }
        }
    }
}

impl AppendError {
    pub(crate) fn refused(labels: &Labels, t: i64, v: f64, r: Refusal) -> Self {
        AppendError::Refused {
            series: labels.to_string(),
            timestamp_ms: t,
            value: v,
            reason: match r {
                Refusal::TooOld { max_t } => RefuseReason::TooOld { newest_ms: max_t },
                Refusal::Duplicate { existing_bits } => {
                    RefuseReason::Duplicate { existing: f64::from_bits(existing_bits) }
                }
            },
        }
    }

    /// The refusal reason, when this is a refusal.
    pub fn refuse_reason(&self) -> Option<RefuseReason> {
        match self {
            AppendError::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Errors of the head as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A series removed by garbage collection while a commit held samples for it could not
    /// be re-created: the series reference space is exhausted.
    #[error("series reference space exhausted")]
    TooManySeries,
    /// An earlier WAL failure left memory and WAL possibly apart; reopen the head.
    #[error("head unusable after an earlier WAL failure; reopen it to replay the WAL")]
    Failed,
}

/// Errors of the [`Db`](crate::db::Db): its head, its blocks, or its directory.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The head or its WAL failed.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// Writing, reading or deleting a block failed.
    #[error(transparent)]
    Block(#[from] crate::block::BlockError),
    /// The options are inconsistent (the message names the field).
    #[error("invalid database options: {0}")]
    Config(String),
    /// The database directory could not be created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}
