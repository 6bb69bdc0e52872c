//! Pipeline configuration: one TOML file, every field defaulted.
//!
//! [`PipelineConfig::default`] is a complete, sensible pipeline: a temporary data directory,
//! acknowledgement after `fdatasync` (group commit), the default cardinality limits, no
//! sampling, 1-minute aggregation with t-digest percentiles, and anomaly detection on CPU time
//! and load. [`DEFAULT_CONFIG_TOML`] is the same configuration written out with a comment on
//! every field (what `--print-default-config` prints); a test checks that the two agree.
//!
//! ```
//! use telemetry_pipeline::PipelineConfig;
//!
//! let cfg = PipelineConfig::from_toml_str("[aggregation]\nwindow_ms = 30000\n")?;
//! assert_eq!(cfg.aggregation.window_ms, 30_000);
//! assert_eq!(cfg.storage, PipelineConfig::default().storage); // everything else defaulted
//! # Ok::<(), telemetry_pipeline::ConfigError>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use telemetry_agg::SamplingConfig;
use telemetry_core::cardinality::CardinalityLimits;
use telemetry_store::tier::{Tier, TierConfig};

/// The whole configuration. Each section has its own defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where and how samples are made durable.
    pub storage: StorageConfig,
    /// Queues between stages.
    pub ingest: IngestConfig,
    /// Cardinality limits (new series past a limit are refused and counted).
    pub limits: CardinalityLimits,
    /// Sampling policies per metric family (telemetry-agg's [`SamplingConfig`]).
    pub sampling: SamplingConfig,
    /// Windowed aggregation.
    pub aggregation: AggregationConfig,
    /// Anomaly detection on aggregated series.
    pub anomaly: AnomalyConfig,
    /// The PromQL engine.
    pub query: QueryConfig,
    /// The HTTP server (used with the `server` feature).
    pub server: ServerConfig,
    /// The UDP StatsD/DogStatsD source (with the `server` feature, started by `--serve`).
    pub statsd: StatsdConfig,
    /// The scrape manager (with the `server` feature, started by `--serve`).
    pub scrape: ScrapeConfig,
    /// The Pushgateway-compatible push endpoint (`/metrics/job/...`, `server` feature).
    pub push: PushConfig,
}

/// When a batch is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// After the batch's WAL record was forced to disk (`fdatasync`); several batches share
    /// one sync (group commit). Survives an OS crash or power loss.
    #[default]
    Synced,
    /// After the WAL record was handed to the OS (`write(2)`). Survives a process crash; an OS
    /// crash may lose what the background sync (every `sync_interval_ms`) had not reached.
    Written,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory (the WAL lives in `<data_dir>/wal`). Empty: a temporary directory that
    /// is removed when the pipeline is dropped.
    pub data_dir: PathBuf,
    /// When a batch is acknowledged.
    pub ack: AckMode,
    /// Shortest time between two WAL syncs, ms. With `ack = "synced"`, 0 syncs as soon as a
    /// batch waits (lowest latency) and larger values trade latency for fewer syncs; with
    /// `ack = "written"` it is the background sync period (0 = never sync).
    pub sync_interval_ms: u64,
    /// WAL segment size, bytes.
    pub wal_segment_bytes: u64,
    /// Samples up to this much older than their series' newest sample are accepted, ms.
    pub out_of_order_window_ms: i64,
    /// Samples per head chunk.
    pub chunk_max_samples: usize,
    /// Range of a block written from the head, ms (2 hours, as Prometheus). The head is
    /// persisted once it spans 1.5 times this.
    pub block_range_ms: i64,
    /// Period of the background maintenance (head persistence, compaction, downsampling,
    /// retention), ms; 0 turns it off.
    pub maintenance_interval_ms: u64,
    /// Raw blocks older than this are deleted, ms (15 days).
    pub raw_retention_ms: i64,
    /// Rollup tiers, finest first (1 minute for 90 days, 1 hour for 2 years).
    pub tiers: Vec<TierSpec>,
    /// Relative accuracy of the DDSketch kept per rollup bucket for `quantile_over_time`
    /// over rollups (e.g. 0.01); none by default (sketches make the tiers several times
    /// larger).
    pub sketch_alpha: Option<f64>,
}

/// One rollup tier of [`StorageConfig::tiers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// Rollup interval, ms.
    pub resolution_ms: i64,
    /// Blocks of this tier older than this are deleted, ms.
    pub retention_ms: i64,
    /// Range of one rollup block, ms: a multiple of the resolution and of the finer tier's.
    pub block_range_ms: i64,
}

impl StorageConfig {
    /// The storage's tier configuration.
    pub fn tier_config(&self) -> TierConfig {
        TierConfig {
            raw_retention_ms: self.raw_retention_ms,
            tiers: self
                .tiers
                .iter()
                .map(|t| Tier {
                    resolution_ms: t.resolution_ms,
                    retention_ms: t.retention_ms,
                    block_range_ms: t.block_range_ms,
                })
                .collect(),
            sketch_alpha: self.sketch_alpha,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::new(),
            ack: AckMode::Synced,
            sync_interval_ms: 0,
            wal_segment_bytes: 128 << 20,
            out_of_order_window_ms: 5 * 60_000,
            chunk_max_samples: 120,
            block_range_ms: 2 * 3_600_000,
            maintenance_interval_ms: 60_000,
            raw_retention_ms: TierConfig::default().raw_retention_ms,
            tiers: TierConfig::default()
                .tiers
                .iter()
                .map(|t| TierSpec {
                    resolution_ms: t.resolution_ms,
                    retention_ms: t.retention_ms,
                    block_range_ms: t.block_range_ms,
                })
                .collect(),
            sketch_alpha: None,
        }
    }
}

/// Queue settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Batches the ingest queue holds; a source blocks (or is refused, for HTTP) when full.
    pub queue_batches: usize,
    /// Batches the aggregation queue holds; ingest waits when it is full.
    pub aggregation_queue_batches: usize,
    /// Samples per batch when replaying a file.
    pub replay_batch_samples: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { queue_batches: 64, aggregation_queue_batches: 64, replay_batch_samples: 16_384 }
    }
}

/// Which quantile sketch the aggregation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SketchKind {
    /// t-digest (`tdigest` crate).
    #[default]
    Tdigest,
    /// DDSketch (`sketches-ddsketch` crate), relative-error guarantees.
    Ddsketch,
    /// No percentiles.
    None,
}

/// Windowed aggregation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregationConfig {
    /// Window width, ms (epoch-aligned tumbling windows).
    pub window_ms: i64,
    /// How far behind the newest timestamp a sample may arrive and still count, ms.
    pub allowed_lateness_ms: i64,
    /// Quantile sketch per series and window.
    pub sketch: SketchKind,
    /// Quantiles reported from the sketch.
    pub quantiles: Vec<f64>,
    /// Most window records kept in memory for reports and the API (oldest dropped first).
    pub keep_records: usize,
    /// Most series aggregated; further series are counted and skipped.
    pub max_series: usize,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            window_ms: 60_000,
            allowed_lateness_ms: 10_000,
            sketch: SketchKind::Tdigest,
            quantiles: vec![0.5, 0.9, 0.99],
            keep_records: 200_000,
            max_series: 1_000_000,
        }
    }
}

/// What value of a window feeds a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowValue {
    /// Counter increase per second over the window (reset-aware), summed over the key's series.
    Rate,
    /// Mean of the samples.
    Mean,
    /// Largest sample.
    Max,
    /// Smallest sample.
    Min,
    /// Last sample.
    Last,
    /// Number of samples.
    Count,
}

impl WindowValue {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowValue::Rate => "rate",
            WindowValue::Mean => "mean",
            WindowValue::Max => "max",
            WindowValue::Min => "min",
            WindowValue::Last => "last",
            WindowValue::Count => "count",
        }
    }
}

/// One detection rule: which series, aggregated how, scored on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRule {
    /// A name for the rule (the `rule` label of its `anomaly_score` series).
    pub name: String,
    /// A PromQL vector selector choosing the series, e.g.
    /// `node_cpu_seconds_total{mode=~"user|system|idle"}`.
    pub selector: String,
    /// The window value scored.
    pub value: WindowValue,
    /// Labels kept in the detection key (PromQL `by`); empty keeps every label. The metric
    /// name is always kept.
    #[serde(default)]
    pub by: Vec<String>,
}

/// Anomaly detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Detector: `holt-winters`, `hw-additive`, `hw-multiplicative`, `stl` or `ensemble`.
    pub detector: String,
    /// Window of the aggregation that feeds the detectors, ms (one score per key and window).
    pub window_ms: i64,
    /// Sensitivity: robust standard deviations from the forecast that count as anomalous.
    pub threshold: f64,
    /// Consecutive anomalous windows before a point is flagged.
    pub min_duration: u32,
    /// Anomalous points closer than this to an event's end extend it, ms.
    pub suppression_ms: i64,
    /// Windows scored by the warm-up baseline before the model is fitted (at least 16).
    pub warmup: usize,
    /// Trailing windows kept for refits (at least `warmup`).
    pub history: usize,
    /// Memory budget of all detectors, bytes (least recently updated evicted first).
    pub max_bytes: usize,
    /// The rules. An empty list disables detection.
    pub rules: Vec<AnomalyRule>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            detector: "holt-winters".into(),
            window_ms: 10_000,
            threshold: 5.0,
            min_duration: 2,
            suppression_ms: 5 * 60_000,
            warmup: 36,
            history: 720,
            max_bytes: 64 << 20,
            rules: vec![
                AnomalyRule {
                    name: "cpu".into(),
                    selector: r#"node_cpu_seconds_total{mode=~"user|system|idle"}"#.into(),
                    value: WindowValue::Rate,
                    by: vec![],
                },
                AnomalyRule {
                    name: "load".into(),
                    selector: "node_load1".into(),
                    value: WindowValue::Mean,
                    by: vec![],
                },
            ],
        }
    }
}

/// PromQL engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// How far back an instant selector looks, ms.
    pub lookback_delta_ms: i64,
    /// Most samples one query may load.
    pub max_samples: usize,
    /// Wall-clock limit of one query, ms (0 = none).
    pub timeout_ms: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig { lookback_delta_ms: 5 * 60_000, max_samples: 50_000_000, timeout_ms: 120_000 }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body accepted, bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Bearer token required by write endpoints; empty: none.
    pub write_token: String,
    /// Bearer token required by read endpoints; empty: none.
    pub read_token: String,
    /// `Retry-After` seconds sent with 429 when the ingest queue is full.
    pub retry_after_s: u64,
    /// Serve the admin endpoints (`/api/v1/admin/tsdb/delete_series` and `clean_tombstones`,
    /// which need the write token when one is set); off: they answer 503, as Prometheus without
    /// `--web.enable-admin-api`.
    pub enable_admin_api: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9201".into(),
            max_body_bytes: 64 << 20,
            write_token: String::new(),
            read_token: String::new(),
            retry_after_s: 1,
            enable_admin_api: false,
        }
    }
}

/// One aggregate a StatsD timer, histogram or distribution is flushed into (besides the
/// percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsdAggregate {
    /// `<name>_count`: observations in the interval, each divided by its sample rate.
    Count,
    /// `<name>_sum`: sum of the observations, each divided by its sample rate.
    Sum,
    /// `<name>_min`: smallest observation.
    Min,
    /// `<name>_max`: largest observation.
    Max,
    /// `<name>_avg`: sum / count.
    Avg,
}

impl StatsdAggregate {
    /// The series name suffix, e.g. `_count`.
    pub fn suffix(self) -> &'static str {
        match self {
            StatsdAggregate::Count => "_count",
            StatsdAggregate::Sum => "_sum",
            StatsdAggregate::Min => "_min",
            StatsdAggregate::Max => "_max",
            StatsdAggregate::Avg => "_avg",
        }
    }
}

/// The UDP StatsD/DogStatsD source. The series each metric type becomes are listed in the
/// `statsd` module's documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsdConfig {
    /// Listen for StatsD packets (with `--serve`). On by default.
    pub enabled: bool,
    /// UDP address; an empty string disables the source as `enabled = false` does.
    pub listen: String,
    /// Local aggregation interval, ms: every interval the aggregated values are written with
    /// the flush time as timestamp.
    pub flush_interval_ms: u64,
    /// Aggregates of timers (`ms`), histograms (`h`) and distributions (`d`).
    pub aggregates: Vec<StatsdAggregate>,
    /// Percentiles of timers, histograms and distributions, each in (0, 1]; written as
    /// `<name>{quantile="0.99"}`.
    pub percentiles: Vec<f64>,
    /// Observations kept exactly per series and interval; past it they go into a t-digest.
    pub max_exact_values: usize,
    /// Most series aggregated at once; lines of further series are dropped and counted.
    pub max_series: usize,
    /// Counters and gauges are written every interval until they have not been updated for
    /// this long, ms; then a stale marker ends them.
    pub expire_after_ms: u64,
    /// Largest datagram read, bytes.
    pub max_packet_bytes: usize,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            enabled: true,
            listen: "127.0.0.1:8125".into(),
            flush_interval_ms: 10_000,
            aggregates: vec![StatsdAggregate::Count, StatsdAggregate::Sum, StatsdAggregate::Min, StatsdAggregate::Max],
            percentiles: vec![0.5, 0.9, 0.99],
            max_exact_values: 10_000,
            max_series: 100_000,
            expire_after_ms: 5 * 60_000,
            max_packet_bytes: 65_535,
        }
    }
}

/// The scrape manager: jobs of targets scraped over HTTP as Prometheus does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Default time between two scrapes of a target, ms.
    pub scrape_interval_ms: u64,
    /// Default scrape timeout, ms (at most the interval).
    pub scrape_timeout_ms: u64,
    /// The jobs; none by default.
    pub jobs: Vec<ScrapeJob>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig { scrape_interval_ms: 15_000, scrape_timeout_ms: 10_000, jobs: Vec::new() }
    }
}

/// One scrape job (Prometheus's `scrape_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeJob {
    /// The `job` label of every series scraped.
    pub job_name: String,
    /// Time between two scrapes, ms; 0 = `scrape.scrape_interval_ms`.
    pub scrape_interval_ms: u64,
    /// Scrape timeout, ms; 0 = `scrape.scrape_timeout_ms` (capped at the interval).
    pub scrape_timeout_ms: u64,
    /// HTTP path of the exposition.
    pub metrics_path: String,
    /// `http` (plain HTTP only).
    pub scheme: String,
    /// On a label conflict between the exposition and the target, keep the exposition's
    /// (else the exposition's becomes `exported_<name>`).
    pub honor_labels: bool,
    /// Use timestamps from the exposition (else the scrape time).
    pub honor_timestamps: bool,
    /// Fixed targets.
    pub static_configs: Vec<StaticTargets>,
    /// Targets from Prometheus `file_sd` files (JSON or YAML), re-read when they change.
    pub file_sd_configs: Vec<FileSdConfig>,
}

impl Default for ScrapeJob {
    fn default() -> Self {
        ScrapeJob {
            job_name: String::new(),
            scrape_interval_ms: 0,
            scrape_timeout_ms: 0,
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            honor_labels: false,
            honor_timestamps: true,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
        }
    }
}

/// A target group: addresses (`host:port`) and labels added to all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticTargets {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels of every target of the group.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Prometheus `file_sd_config`: files holding lists of target groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (`.json`, `.yml` or `.yaml`); the last path element may hold `*` wildcards.
    pub files: Vec<PathBuf>,
    /// How often the files' modification times are checked, ms.
    pub refresh_interval_ms: u64,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig { files: Vec::new(), refresh_interval_ms: 5_000 }
    }
}

impl ScrapeJob {
    /// The effective interval and timeout, ms.
    pub fn interval_and_timeout(&self, defaults: &ScrapeConfig) -> (u64, u64) {
        let interval = if self.scrape_interval_ms == 0 { defaults.scrape_interval_ms } else { self.scrape_interval_ms };
        let timeout = if self.scrape_timeout_ms == 0 { defaults.scrape_timeout_ms } else { self.scrape_timeout_ms };
        (interval, timeout.min(interval))
    }
}

/// The Pushgateway-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Serve `PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}`.
    pub enabled: bool,
    /// Pushed groups are written again at this period (as a Prometheus scraping a
    /// Pushgateway sees them), so that they stay current; 0 writes them only when pushed.
    pub refresh_interval_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig { enabled: true, refresh_interval_ms: 15_000 }
    }
}

/// A configuration file that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or a field has the wrong type or an unknown name (the message
    /// names the line, column and key).
    #[error("invalid config{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value {field} = {value}: {reason}")]
    Invalid {
        /// The field, as `section.key`.
        field: String,
        /// The value.
        value: String,
        /// What is allowed.
        reason: String,
    },
}

impl PipelineConfig {
    /// Parses TOML text; missing fields take their defaults.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for malformed TOML, unknown keys or wrong types;
    /// [`ConfigError::Invalid`] from [`validate`](Self::validate).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: PipelineConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: None, message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read, else as
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: Some(path.to_path_buf()), message },
            other => other,
        })
    }

    /// The configuration as TOML (without comments; see [`DEFAULT_CONFIG_TOML`] for the
    /// documented defaults).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] if a value cannot be written as TOML (does not happen for
    /// configurations read from TOML).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Parse { path: None, message: e.to_string() })
    }

    /// Checks ranges that serde cannot.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, value: &dyn std::fmt::Display, reason: &str| {
            Err(ConfigError::Invalid { field: field.into(), value: value.to_string(), reason: reason.into() })
        };
        if self.ingest.queue_batches == 0 {
            return bad("ingest.queue_batches", &0, "must be at least 1");
        }
        if self.ingest.aggregation_queue_batches == 0 {
            return bad("ingest.aggregation_queue_batches", &0, "must be at least 1");
        }
        if self.ingest.replay_batch_samples == 0 {
            return bad("ingest.replay_batch_samples", &0, "must be at least 1");
        }
        if self.storage.chunk_max_samples == 0 {
            return bad("storage.chunk_max_samples", &0, "must be at least 1");
        }
        if self.storage.out_of_order_window_ms < 0 {
            return bad("storage.out_of_order_window_ms", &self.storage.out_of_order_window_ms, "must be >= 0");
        }
        if self.storage.block_range_ms <= 0 {
            return bad("storage.block_range_ms", &self.storage.block_range_ms, "must be > 0");
        }
        if let Err(reason) = self.storage.tier_config().validate() {
            return bad("storage.tiers", &format!("{:?}", self.storage.tiers), &reason);
        }
        if self.aggregation.window_ms <= 0 {
            return bad("aggregation.window_ms", &self.aggregation.window_ms, "must be > 0");
        }
        for q in &self.aggregation.quantiles {
            if !(0.0..=1.0).contains(q) {
                return bad("aggregation.quantiles", q, "each must be in [0, 1]");
            }
        }
        if self.anomaly.window_ms <= 0 {
            return bad("anomaly.window_ms", &self.anomaly.window_ms, "must be > 0");
        }
        if let Err(e) = telemetry_anomaly::DetectorKind::from_name(&self.anomaly.detector) {
            return bad("anomaly.detector", &self.anomaly.detector, &e.to_string());
        }
        for (i, r) in self.anomaly.rules.iter().enumerate() {
            if let Err(e) = crate::anomaly::parse_selector(&r.selector) {
                return bad(&format!("anomaly.rules[{i}].selector"), &r.selector, &e);
            }
        }
        if let Err(e) = crate::anomaly::detector_config(&self.anomaly).validate() {
            return bad("anomaly", &"(detector settings)", &e.to_string());
        }
        if self.query.lookback_delta_ms <= 0 {
            return bad("query.lookback_delta_ms", &self.query.lookback_delta_ms, "must be > 0");
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("server.listen", &self.server.listen, "must be an IP address and port, e.g. 127.0.0.1:9201");
        }
        let st = &self.statsd;
        if st.enabled && !st.listen.is_empty() && st.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("statsd.listen", &st.listen, "must be an IP address and port, e.g. 127.0.0.1:8125, or empty");
        }
        if st.flush_interval_ms == 0 {
            return bad("statsd.flush_interval_ms", &0, "must be > 0");
        }
        for q in &st.percentiles {
            if !(*q > 0.0 && *q <= 1.0) {
                return bad("statsd.percentiles", q, "each must be in (0, 1]");
            }
        }
        if st.max_packet_bytes == 0 || st.max_packet_bytes > 65_535 {
            return bad("statsd.max_packet_bytes", &st.max_packet_bytes, "must be in 1..=65535");
        }
        if st.max_exact_values == 0 {
            return bad("statsd.max_exact_values", &0, "must be at least 1");
        }
        let sc = &self.scrape;
        if sc.scrape_interval_ms == 0 {
            return bad("scrape.scrape_interval_ms", &0, "must be > 0");
        }
        if sc.scrape_timeout_ms == 0 {
            return bad("scrape.scrape_timeout_ms", &0, "must be > 0");
        }
        let mut names = std::collections::HashSet::new();
        for (i, j) in sc.jobs.iter().enumerate() {
            let f = |k: &str| format!("scrape.jobs[{i}].{k}");
            if j.job_name.is_empty() {
                return bad(&f("job_name"), &"\"\"", "must not be empty");
            }
            if !names.insert(j.job_name.as_str()) {
                return bad(&f("job_name"), &j.job_name, "job names must be unique");
            }
            if j.scheme != "http" {
                return bad(&f("scheme"), &j.scheme, "only \"http\" is supported");
            }
            if !j.metrics_path.starts_with('/') {
                return bad(&f("metrics_path"), &j.metrics_path, "must start with '/'");
            }
            for (g, group) in j.static_configs.iter().enumerate() {
                for t in &group.targets {
                    if t.is_empty() || t.contains(['/', ' ']) || !t.contains(':') {
                        return bad(&format!("scrape.jobs[{i}].static_configs[{g}].targets"), t, "must be host:port");
                    }
                }
                for n in group.labels.keys() {
                    if !telemetry_core::labels::is_valid_label_name(n) {
                        return bad(&format!("scrape.jobs[{i}].static_configs[{g}].labels"), n, "invalid label name");
                    }
                }
            }
            for (g, fsd) in j.file_sd_configs.iter().enumerate() {
                if fsd.refresh_interval_ms == 0 {
                    return bad(
                        &format!("scrape.jobs[{i}].file_sd_configs[{g}].refresh_interval_ms"),
                        &0,
                        "must be > 0",
                    );
                }
            }
        }
        Ok(())
    }
}

/// The default configuration, documented: what `--print-default-config` writes. Parsing it
/// gives [`PipelineConfig::default`].
pub const DEFAULT_CONFIG_TOML: &str = r#"# telemetry pipeline configuration. Every field is optional: a missing field (or a missing
# file) takes the default written here. Times are milliseconds unless a name says otherwise.

[storage]
# Data directory; the WAL lives in <data_dir>/wal. Empty: a temporary directory removed at exit.
data_dir = ""
# When a batch is acknowledged: "synced" = after fdatasync of its WAL record (group commit:
# batches waiting together share one sync); "written" = after write(2) (survives a process
# crash; an OS crash may lose up to sync_interval_ms).
ack = "synced"
# Shortest time between two WAL syncs. With ack = "synced", 0 syncs as soon as a batch waits;
# with ack = "written", the background sync period (0 = never).
sync_interval_ms = 0
# WAL segment size in bytes (128 MiB, as Prometheus).
wal_segment_bytes = 134217728
# Samples up to this much older than their series' newest sample are accepted (5 minutes).
out_of_order_window_ms = 300000
# Samples per head chunk (120, as Prometheus).
chunk_max_samples = 120
# Range of a block written from the head (2 hours, as Prometheus); the head is persisted
# into <data_dir>/blocks once it spans 1.5 times this.
block_range_ms = 7200000
# Period of the background maintenance: head persistence, compaction (2 h, 6 h, 24 h),
# downsampling into the rollup tiers, retention. 0 turns it off.
maintenance_interval_ms = 60000
# Raw blocks older than this are deleted (15 days).
raw_retention_ms = 1296000000
# A DDSketch per rollup bucket, so that quantile_over_time over rollups is within this
# relative error; off by default (it makes the tiers several times larger).
# sketch_alpha = 0.01

# Rollup tiers, finest first: count, sum, min, max and counter increase per interval.
# 1-minute rollups for 90 days, in 1-day blocks.
[[storage.tiers]]
resolution_ms = 60000
retention_ms = 7776000000
block_range_ms = 86400000

# 1-hour rollups (built from the 1-minute ones) for 2 years, in 28-day blocks.
[[storage.tiers]]
resolution_ms = 3600000
retention_ms = 63072000000
block_range_ms = 2419200000

[ingest]
# Batches the ingest queue holds. When it is full, replay waits and HTTP answers 429 with
# Retry-After; its fill level (percent) is the backpressure signal of adaptive sampling.
queue_batches = 64
# Batches the aggregation queue holds; ingest waits for it (aggregation loses nothing).
aggregation_queue_batches = 64
# Samples per batch when replaying a file.
replay_batch_samples = 16384

[limits]
# Most series per metric name; a new series past a limit is refused and counted.
per_metric = 10000
# Most distinct values per label name (over all metrics; __name__ exempt).
per_label_name = 10000
# Most series overall.
global = 10000000

[sampling]
# Most series tracked by stateful policies (rate limiter, reservoir).
max_series = 1000000
# Rules are tried in order; the first whose anchored regular expression matches the metric
# name chooses the policy, else `default`. Policies: "full"; "probabilistic" (p, seed);
# "rate_limited" (per_second, burst); "adaptive" (high, low, min_p, factor, step_ms, seed:
# the signal is the ingest queue's fill level in percent); "reservoir" (k, window_ms, seed).
# Example:
#   [[sampling.rules]]
#   pattern = "go_.*"
#   policy = "probabilistic"
#   p = 0.1
rules = []

[sampling.default]
policy = "full"

[aggregation]
# Tumbling, epoch-aligned windows of this width (1 minute), one per series.
window_ms = 60000
# A window closes when the newest timestamp seen passes its end by this much.
allowed_lateness_ms = 10000
# Quantile sketch: "tdigest", "ddsketch" or "none".
sketch = "tdigest"
quantiles = [0.5, 0.9, 0.99]
# Most window records kept in memory for reports and the API.
keep_records = 200000
# Most series aggregated.
max_series = 1000000

[anomaly]
# "holt-winters", "hw-additive", "hw-multiplicative", "stl" or "ensemble".
detector = "holt-winters"
# Each rule's series are aggregated over windows of this width; each window is one point scored
# by the detector, and written as `anomaly_score{rule=..., metric=..., <key labels>}`.
window_ms = 10000
# Robust standard deviations from the forecast that count as anomalous.
threshold = 5.0
# Consecutive anomalous points before one is flagged.
min_duration = 2
# Anomalous points within this time of an event's end extend the event (5 minutes).
suppression_ms = 300000
# Points scored by the warm-up baseline before the model is fitted (>= 16).
warmup = 36
# Trailing points kept for refits (>= warmup).
history = 720
# Memory budget of all detectors, bytes.
max_bytes = 67108864

# The metric families watched. `selector` is a PromQL vector selector; `value` is the window
# value scored ("rate" for counters, "mean", "max", "min", "last", "count"); `by` keeps only
# these labels in the detection key (empty: one detector per series).
[[anomaly.rules]]
name = "cpu"
selector = 'node_cpu_seconds_total{mode=~"user|system|idle"}'
value = "rate"
by = []

[[anomaly.rules]]
name = "load"
selector = "node_load1"
value = "mean"
by = []

[query]
# How far back an instant selector looks for a sample (5 minutes).
lookback_delta_ms = 300000
# Most samples one query may load.
max_samples = 50000000
# Wall-clock limit of one query (0 = none).
timeout_ms = 120000

[server]
# Address of the HTTP API (--serve).
listen = "127.0.0.1:9201"
# Largest request body, bytes (larger: 413).
max_body_bytes = 67108864
# Bearer tokens (Authorization: Bearer <token>) for write and read endpoints; empty: none.
write_token = ""
read_token = ""
# Retry-After seconds sent with 429 when the ingest queue is full.
retry_after_s = 1
# Admin endpoints: POST /api/v1/admin/tsdb/delete_series?match[]=...&start=&end= and
# POST /api/v1/admin/tsdb/clean_tombstones (write token when set). Off: 503, as Prometheus.
enable_admin_api = false

[statsd]
# UDP StatsD/DogStatsD source, started with --serve. On by default on the loopback port 8125;
# enabled = false (or listen = "") turns it off.
enabled = true
listen = "127.0.0.1:8125"
# Values are aggregated locally and written every flush interval (10 s), at the flush time.
# Counters: a running total `<name>` (each value divided by its sample rate; use rate()).
# Gauges: `<name>`, the last value (+N/-N change it). Sets: `<name>`, distinct members in
# the interval. Timers, histograms, distributions: `<name>_<aggregate>` and
# `<name>{quantile="q"}` over the interval.
flush_interval_ms = 10000
# Aggregates of timers, histograms and distributions: "count", "sum", "min", "max", "avg".
aggregates = ["count", "sum", "min", "max"]
# Percentiles of timers, histograms and distributions (nearest rank; a t-digest past
# max_exact_values observations per series and interval).
percentiles = [0.5, 0.9, 0.99]
max_exact_values = 10000
# Most series aggregated at once; lines of further series are dropped and counted.
max_series = 100000
# Counters and gauges are written every interval until not updated for this long (5 minutes),
# then ended with a stale marker.
expire_after_ms = 300000
# Largest datagram read, bytes.
max_packet_bytes = 65535

[scrape]
# Defaults of every job: time between scrapes and scrape timeout.
scrape_interval_ms = 15000
scrape_timeout_ms = 10000
# Jobs, as Prometheus's scrape_configs (plain http only). Each target's series get the labels
# job and instance (the address) plus the group's labels; `up`, `scrape_duration_seconds`,
# `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling` and `scrape_series_added`
# are written per scrape, and a series that disappears (or whose target does) gets a stale
# marker. Example:
#   [[scrape.jobs]]
#   job_name = "node"
#   scrape_interval_ms = 15000   # 0 = the default above
#   scrape_timeout_ms = 10000    # 0 = the default above
#   metrics_path = "/metrics"
#   scheme = "http"
#   honor_labels = false         # conflicting exposition labels become exported_<name>
#   honor_timestamps = true
#   static_configs = [{ targets = ["127.0.0.1:9100"], labels = { env = "dev" } }]
#   file_sd_configs = [{ files = ["targets/*.json"], refresh_interval_ms = 5000 }]
jobs = []

[push]
# Pushgateway API: PUT/POST/DELETE /metrics/job/<job>{/<label>/<value>} on the HTTP server.
enabled = true
# Pushed groups are written again at this period, as a Prometheus scraping a Pushgateway would
# see them, so they stay current; 0 = only when pushed.
refresh_interval_ms = 15000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_defaults() {
        let parsed = PipelineConfig::from_toml_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed, PipelineConfig::default());
        assert_eq!(PipelineConfig::from_toml_str("").unwrap(), PipelineConfig::default());
    }

    #[test]
    fn round_trips_through_toml() {
        let text = PipelineConfig::default().to_toml_string().unwrap();
        assert_eq!(PipelineConfig::from_toml_str(&text).unwrap(), PipelineConfig::default());
    }

    #[test]
    fn sources_parse() {
        let cfg = PipelineConfig::from_toml_str(
            r#"
[statsd]
listen = "127.0.0.1:9125"
aggregates = ["count", "avg"]
percentiles = [0.5, 0.999]

[[scrape.jobs]]
job_name = "node"
scrape_interval_ms = 15000
honor_labels = true
static_configs = [{ targets = ["127.0.0.1:9100"], labels = { env = "dev" } }]
file_sd_configs = [{ files = ["targets/*.json"], refresh_interval_ms = 5000 }]

[push]
refresh_interval_ms = 0
"#,
        )
        .unwrap();
        assert_eq!(cfg.statsd.aggregates, [StatsdAggregate::Count, StatsdAggregate::Avg]);
        let j = &cfg.scrape.jobs[0];
        assert_eq!(j.static_configs[0].labels.get("env").map(String::as_str), Some("dev"));
        assert_eq!(j.interval_and_timeout(&cfg.scrape), (15_000, 10_000));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(PipelineConfig::from_toml_str(&cfg.to_toml_string().unwrap()).unwrap(), cfg);
        let e = PipelineConfig::from_toml_str("[[scrape.jobs]]\njob_name = \"a\"\nscheme = \"https\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scrape.jobs[0].scheme"), "{e}");
        let e = PipelineConfig::from_toml_str(
            "[[scrape.jobs]]\njob_name = \"a\"\nstatic_configs = [{ targets = [\"no-port\"] }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("static_configs[0].targets"), "{e}");
        let e = PipelineConfig::from_toml_str("[statsd]\npercentiles = [0]\n").unwrap_err().to_string();
        assert!(e.contains("statsd.percentiles"), "{e}");
        let e = PipelineConfig::from_toml_str("[statsd]\nlisten = \"8125\"\n").unwrap_err().to_string();
        assert!(e.contains("statsd.listen"), "{e}");
        assert!(PipelineConfig::from_toml_str("[statsd]\nlisten = \"\"\n").is_ok(), "empty disables");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = PipelineConfig::from_toml_str("[storage]\nack = \"sometimes\"\n").unwrap_err().to_string();
        assert!(e.contains("ack") || e.contains("sometimes"), "{e}");
        let e = PipelineConfig::from_toml_str("[aggregation]\nwindow_ms = 0\n").unwrap_err().to_string();
        assert!(e.contains("aggregation.window_ms"), "{e}");
        let e = PipelineConfig::from_toml_str("[storage]\nnope = 1\n").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = PipelineConfig::from_toml_str(
            "[[anomaly.rules]]\nname = \"x\"\nselector = \"rate(x[1m])\"\nvalue = \"mean\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("anomaly.rules[0].selector"), "{e}");
        let e = PipelineConfig::from_toml_str("[sampling.default]\npolicy = \"sometimes\"\n").unwrap_err().to_string();
        assert!(e.contains("sometimes"), "{e}");
        let e = PipelineConfig::from_toml_str("[server]\nlisten = \"localhost\"\n").unwrap_err().to_string();
        assert!(e.contains("server.listen"), "{e}");
    }
}
