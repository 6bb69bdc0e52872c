//! Typed query errors and their Prometheus API error types.

use serde::{Deserialize, Serialize};
use telemetry_core::StorageError;
use thiserror::Error;

/// The `errorType` of a Prometheus HTTP API error envelope (`web/api/v1/api.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorType {
    /// The request is malformed: a syntax error, a wrong type, bad parameters.
    BadData,
    /// Evaluation failed on the data (collisions, many-to-many matches, limits).
    Execution,
    /// The query ran past its timeout.
    Timeout,
    /// The caller cancelled the query.
    Canceled,
    /// Storage could not be read.
    Internal,
}

impl ApiErrorType {
    /// The string the API puts in `errorType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorType::BadData => "bad_data",
            ApiErrorType::Execution => "execution",
            ApiErrorType::Timeout => "timeout",
            ApiErrorType::Canceled => "canceled",
            ApiErrorType::Internal => "internal",
        }
    }

    /// The HTTP status Prometheus answers with for this error type.
    pub fn http_status(self) -> u16 {
        match self {
            ApiErrorType::BadData => 400,
            ApiErrorType::Execution => 422,
            ApiErrorType::Timeout => 503,
            ApiErrorType::Canceled => 499,
            ApiErrorType::Internal => 500,
        }
    }
}

/// Everything that can go wrong parsing or evaluating a query.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The query text does not parse (message from `promql-parser`).
    #[error("parse error: {0}")]
    Parse(String),
    /// The query parses but is not valid here (bad parameters, wrong result type, a feature
    /// that is not supported, such as native histograms).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed on the data, with Prometheus's message (for example
    /// `vector cannot contain metrics with the same labelset`).
    #[error("{0}")]
    Execution(String),
    /// More samples than [`EngineOptions::max_samples`](crate::EngineOptions::max_samples)
    /// would be loaded.
    #[error("query processing would load too many samples into memory in query execution (limit {limit})")]
    TooManySamples {
        /// The configured limit.
        limit: usize,
    },
    /// A range query would return more points per series than allowed.
    #[error(
        "exceeded maximum resolution of {max} points per timeseries: {points} points. Try decreasing the query resolution (?step=XX)"
    )]
    TooManyPoints {
        /// Points the query asks for.
        points: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The query ran past its timeout.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The caller cancelled the query.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// The Prometheus API error type this error maps to.
    pub fn error_type(&self) -> ApiErrorType {
        match self {
            QueryError::Parse(_) | QueryError::BadData(_) | QueryError::TooManyPoints { .. } => ApiErrorType::BadData,
            QueryError::Execution(_) | QueryError::TooManySamples { .. } => ApiErrorType::Execution,
            QueryError::Timeout(_) => ApiErrorType::Timeout,
            QueryError::Canceled(_) => ApiErrorType::Canceled,
            QueryError::Storage(StorageError::Canceled) => ApiErrorType::Canceled,
            QueryError::Storage(StorageError::LimitExceeded(_)) => ApiErrorType::Execution,
            QueryError::Storage(_) => ApiErrorType::Internal,
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        QueryError::Execution(msg.into())
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        QueryError::BadData(msg.into())
    }
}
