//! # telemetry-pipeline
//!
//! The telemetry crates wired into one pipeline:
//!
//! ```text
//! sources ─▶ decode (telemetry-core formats) ─▶ cardinality limits ─▶ sampling (telemetry-agg)
//!         ─▶ WAL + head (telemetry-store) ─▶ acknowledge (after fdatasync, group commit)
//!                      └─▶ 1-minute windows with percentiles (telemetry-agg) ─▶ rollups
//!                      └─▶ detection windows ─▶ detectors (telemetry-anomaly) ─▶ events
//!                                             ─▶ `anomaly_score` series ─▶ head + WAL
//! queries: PromQL (telemetry-query) over the head
//! ```
//!
//! - [`PipelineConfig`] is one TOML file, every field defaulted ([`DEFAULT_CONFIG_TOML`]).
//! - [`Pipeline`] runs the stages on their threads, joined by bounded queues: a full ingest queue
//!   blocks [`Pipeline::submit`] (or refuses [`Pipeline::try_submit`], which HTTP turns into
//!   429), and its fill level is the backpressure signal of adaptive sampling. A batch is
//!   acknowledged only once durable ([`AckMode`]).
//! - [`replay`] reads captures (OpenMetrics or Prometheus text with timestamps, optionally gzip)
//!   replayed in event-time order.
//! - [`anomaly`] holds the detection rules, events and `anomaly_score` series.
//! - `server` (cargo feature `server`): the HTTP API (ingestion endpoints, Prometheus query
//!   API, `/api/v1/anomalies`, `/metrics`), with `push` (Pushgateway semantics on
//!   `/metrics/job/...`) and `rest` (the simple REST query, `/api/v1/simple/query`).
//! - `sources` (feature `server`): what runs beside the server, started from the configuration
//!   by `server::serve_blocking`: `statsd` (UDP StatsD/DogStatsD with a local flush interval)
//!   and `scrape` (the scrape manager: static and `file_sd` targets, report series,
//!   staleness). Each hands batches to the pipeline through [`Pipeline::submit`] /
//!   [`Pipeline::try_submit`] like any other source.
//!
//! ```
//! use telemetry_core::Labels;
//! use telemetry_pipeline::{Batch, Pipeline, PipelineConfig};
//! use telemetry_query::Value;
//!
//! let pipeline = Pipeline::start(PipelineConfig::default())?; // temporary data directory
//! let mut batch = Batch::default();
//! let s = batch.add_series(Labels::from_pairs([("__name__", "requests_total"), ("job", "api")])?);
//! for i in 0..10 {
//!     batch.push(s, 1_700_000_000_000 + i * 15_000, (i * 30) as f64);
//! }
//! let ack = pipeline.ingest(batch)?; // returns once the WAL record is on disk
//! assert_eq!(ack.stored, 10);
//! let r = pipeline.query_instant("rate(requests_total[1m])", 1_700_000_135_000)?;
//! let Value::Vector(v) = r.value else { unreachable!() };
//! assert!((v[0].value - 2.0).abs() < 1e-9); // 30 per 15 s
//! pipeline.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod anomaly;
mod batch;
pub mod config;
mod metrics;
mod pipeline;
#[cfg(feature = "server")]
pub mod push;
#[cfg(feature = "server")]
pub mod remote_write;
pub mod replay;
#[cfg(feature = "server")]
pub mod rest;
#[cfg(feature = "server")]
pub mod scrape;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sources;
#[cfg(feature = "server")]
pub mod statsd;

pub use anomaly::{ANOMALY_SCORE_METRIC, AnomalyRecord};
pub use batch::{Batch, BatchBuilder, BatchSample};
pub use config::{
    AckMode, ConfigError, DEFAULT_CONFIG_TOML, FileSdConfig, PipelineConfig, PushConfig, ScrapeConfig, ScrapeJob,
    StaticTargets, StatsdAggregate, StatsdConfig, StorageConfig, TierSpec,
};
pub use metrics::Histogram;
pub use pipeline::{
    Ack, AckFn, IngestError, MetricsRenderer, Pipeline, PipelineError, PipelineStats, RollupRecord, add_ack,
};
pub use replay::{Capture, InputFormat, ReplayError, ReplaySummary, read_capture};
