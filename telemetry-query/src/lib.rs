//! # telemetry-query
//!
//! A PromQL evaluator over any telemetry-core storage ([`Queryable`](telemetry_core::Queryable)),
//! with the Prometheus HTTP API's data shapes.
//!
//! - [`Engine`]: instant and range queries with Prometheus 3 semantics (5-minute lookback delta,
//!   stale markers, `offset`, `@`, subqueries, delayed `__name__` removal), the functions,
//!   aggregations and operators of PromQL on float samples, limits (samples loaded, points per
//!   series, timeout, cancellation) with typed errors ([`QueryError`]) mapped to the API's error
//!   types ([`ApiErrorType`]). Queries are parsed by the `promql-parser` crate. Native
//!   histograms are not supported: queries that need them are rejected with
//!   [`QueryError::BadData`].
//!   Every selection tells storage how it will be read
//!   ([`SelectHints`](telemetry_core::SelectHints): time range, the query's or subquery's
//!   step, the range selector's range, the function and aggregation grouping it is the direct
//!   argument of, `quantile_over_time`'s constant φ), so that storage with rollup tiers can
//!   answer from them; storage that ignores the hints gives the same results.
//! - [`api`]: the JSON shapes of `/api/v1/query` and `/api/v1/query_range`.
//! - [`promqltest`]: a runner for Prometheus's test-script format (`promql/promqltest`).
//!
//! ```
//! use telemetry_core::{Labels, MemStorage};
//! use telemetry_query::{Engine, Value};
//!
//! let db = MemStorage::new();
//! let cpu = Labels::from_pairs([("__name__", "cpu_seconds_total"), ("mode", "idle")])?;
//! for i in 0..=40 {
//!     db.append(&cpu, i * 15_000, i as f64 * 7.5);
//! }
//! let engine = Engine::default();
//! let res = engine.range_query(&db, "sum by (mode) (rate(cpu_seconds_total[1m]))", 60_000, 600_000, 60_000)?;
//! let Value::Matrix(m) = res.value else { unreachable!() };
//! assert_eq!(m[0].labels.to_string(), r#"{mode="idle"}"#);
//! assert_eq!(m[0].samples.len(), 10);
//! assert!((m[0].samples[0].value - 0.5).abs() < 1e-12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
mod engine;
pub mod error;
pub mod functions;
pub mod promqltest;
pub mod value;

pub use engine::{Engine, EngineOptions, parse};
pub use error::{ApiErrorType, QueryError};
pub use value::{MatrixSeries, QueryResult, Value, VectorSample};
