//! Query results: the four PromQL value types.

use telemetry_core::{Labels, Sample};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// The series' labels (after name removal).
    pub labels: Labels,
    /// Evaluation timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Its points, in increasing time order.
    pub samples: Vec<Sample>,
}

/// A query's result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number at one time.
    Scalar {
        /// Evaluation timestamp, ms.
        timestamp_ms: i64,
        /// The value.
        value: f64,
    },
    /// A string at one time.
    String {
        /// Evaluation timestamp, ms.
        timestamp_ms: i64,
        /// The string.
        value: String,
    },
    /// An instant vector, in the order evaluation produced it (sorted where the query sorts).
    Vector(Vec<VectorSample>),
    /// A range vector, sorted by labels.
    Matrix(Vec<MatrixSeries>),
}

impl Value {
    /// The type name as the API writes it in `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A successful query: the value plus annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warning annotations (`PromQL warning: ...`).
    pub warnings: Vec<String>,
    /// Info annotations (`PromQL info: ...`).
    pub infos: Vec<String>,
    /// Samples read from storage while evaluating.
    pub samples_loaded: u64,
}
