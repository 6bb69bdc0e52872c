//! The running pipeline: stages, queues, acknowledgement.
//!
//! ```text
//!  sources ──▶ [ingest queue] ──▶ ingest thread ──────────────▶ [sync queue] ──▶ syncer ──▶ ack
//!  (bounded, backpressure)       cardinality limits                         (group commit:
//!                                sampling (adaptive ← queue fill)            one fdatasync for
//!                                head append + WAL write (commit)            every waiting batch)
//!                                      │
//!                                      ▼ [aggregation queue] (bounded; ingest waits)
//!                                aggregation thread: 1-minute windows (rollups with percentiles)
//!                                                    detection windows ─▶ detectors ─▶ events
//!                                                    `anomaly_score` series ─▶ head + WAL
//! ```
//!
//! A batch is acknowledged (its callback called with `Ok`) only once its WAL record is durable:
//! after `fdatasync` with [`AckMode::Synced`], after `write(2)` with [`AckMode::Written`].
//! Aggregation sees the samples the head accepted, with their sampling weights.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use telemetry_agg::{
    AggStats, AggregateSet, AggregateValues, Aggregator, AggregatorConfig, DdSketchConfig, Decision, Grouping,
    KeyOverflow, Policy, Sampler, SamplerStats, TDigestConfig, WindowOverflow,
};
use telemetry_core::cardinality::CardinalityLimiter;
use telemetry_core::{Fingerprint, Labels, Metadata, Sample};
use telemetry_query::{Engine, EngineOptions, QueryError, QueryResult};
use telemetry_store::db::{BackgroundHandle, Db, DbAppender, DbOptions, DbStats};
use telemetry_store::{AppendError, HeadOptions, SeriesRef, SyncPolicy, WalOptions};

use crate::anomaly::{AnomalyRecord, Detection, ScorePoint};
use crate::batch::Batch;
use crate::config::{AckMode, PipelineConfig, SketchKind};
use crate::metrics::Histogram;

/// What happened to an acknowledged batch's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    /// Samples in the batch.
    pub samples: u64,
    /// Samples now durable in storage.
    pub stored: u64,
    /// Exact duplicates of stored samples (accepted, not stored again).
    pub duplicates: u64,
    /// Samples of new series refused by a cardinality limit.
    pub refused_limits: u64,
    /// Samples refused by storage: older than the out-of-order window, or a different value
    /// at an existing timestamp.
    pub refused_storage: u64,
    /// Samples whose series labels are invalid.
    pub refused_invalid: u64,
    /// Samples dropped by a sampling policy.
    pub dropped_sampling: u64,
}

impl Ack {
    fn add(&mut self, o: &Ack) {
        self.samples += o.samples;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.refused_limits += o.refused_limits;
        self.refused_storage += o.refused_storage;
        self.refused_invalid += o.refused_invalid;
        self.dropped_sampling += o.dropped_sampling;
    }
}

/// Why a batch was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The pipeline is shut down (or shutting down).
    #[error("pipeline is shut down")]
    Closed,
    /// The ingest queue is full (only from [`Pipeline::try_submit`]).
    #[error("ingest queue is full ({capacity} batches); retry later")]
    QueueFull {
        /// The queue's capacity in batches.
        capacity: usize,
    },
    /// The WAL could not be written or synced: nothing of the batch may be considered stored.
    #[error("storage failure: {0}")]
    Storage(String),
}

/// Errors starting the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory cannot be created or its WAL opened.
    #[error("cannot open storage in {dir}: {message}")]
    Storage {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
    /// A stage cannot be built from the configuration.
    #[error("invalid {stage} settings: {message}")]
    Stage {
        /// Which stage (`sampling`, `aggregation`, `anomaly`).
        stage: &'static str,
        /// Why.
        message: String,
    },
    /// A stage thread ended abnormally.
    #[error("the {0} stage ended abnormally")]
    StageFailed(&'static str),
}

/// Called once per submitted batch with its outcome.
pub type AckFn = Box<dyn FnOnce(Result<Ack, IngestError>) + Send>;

/// One closed aggregation window of one series (a slim [`telemetry_agg::WindowRecord`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RollupRecord {
    /// The series.
    pub labels: Labels,
    /// Window start, ms (inclusive).
    pub start_ms: i64,
    /// Window end, ms (exclusive).
    pub end_ms: i64,
    /// Emitted before the window closed normally.
    pub partial: bool,
    /// Count, sum, min, max, mean, counter increase and rate, quantiles.
    pub values: AggregateValues,
}

/// Counters of the whole pipeline (a snapshot).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PipelineStats {
    /// Batches processed by the ingest stage.
    pub batches: u64,
    /// Outcome totals over every batch.
    pub totals: Ack,
    /// Samples acknowledged (their batch's WAL record durable).
    pub samples_acknowledged: u64,
    /// Batches acknowledged with an error.
    pub batches_failed: u64,
    /// Batches refused because the queue was full (`try_submit`).
    pub batches_refused_full: u64,
    /// Batches waiting in the ingest queue now.
    pub queue_depth: usize,
    /// Capacity of the ingest queue.
    pub queue_capacity: usize,
    /// Batches waiting in the aggregation queue now.
    pub aggregation_queue_depth: usize,
    /// WAL syncs done for acknowledgement.
    pub wal_syncs: u64,
    /// Series refused by cardinality limits (refusal events, by metric name).
    pub refused_by_metric: Vec<(String, u64)>,
    /// The sampler's counters.
    pub sampling: SamplerStats,
    /// The current keep probability of an adaptive sampling policy, if one is configured.
    pub adaptive_probability: Option<f64>,
    /// The 1-minute aggregator's counters.
    pub aggregation: AggStats,
    /// Anomaly points scored.
    pub anomaly_points_scored: u64,
    /// Anomaly points flagged.
    pub anomaly_points_flagged: u64,
    /// Scores written as `anomaly_score` samples.
    pub anomaly_scores_stored: u64,
    /// The storage's statistics (head, WAL and blocks).
    #[serde(skip)]
    pub storage: DbStats,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    samples: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    refused_limits: AtomicU64,
    refused_storage: AtomicU64,
    refused_invalid: AtomicU64,
    dropped_sampling: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    refused_full: AtomicU64,
    wal_syncs: AtomicU64,
    scores_stored: AtomicU64,
    scored: AtomicU64,
    flagged: AtomicU64,
}

/// State shared by the stages and readers.
pub(crate) struct Shared {
    pub(crate) cfg: PipelineConfig,
    pub(crate) db: Arc<Db>,
    pub(crate) engine: Engine,
    pub(crate) data_dir: PathBuf,
    queue_depth: AtomicUsize,
    agg_queue_depth: AtomicUsize,
    counters: Counters,
    events: Mutex<Vec<AnomalyRecord>>,
    records: Mutex<VecDeque<RollupRecord>>,
    metadata: Mutex<BTreeMap<String, Metadata>>,
    refused_by_metric: Mutex<Vec<(String, u64)>>,
    sampler_stats: Mutex<(SamplerStats, Option<f64>)>,
    agg_stats: Mutex<AggStats>,
    pub(crate) wal_sync_seconds: Histogram,
    pub(crate) query_seconds: Histogram,
    pub(crate) ack_seconds: Histogram,
    extra_metrics: Mutex<Vec<MetricsRenderer>>,
    closed: AtomicBool,
}

/// Appends a source's own self-monitoring lines (Prometheus text 0.0.4, `# HELP`/`# TYPE`
/// included) to the `/metrics` text; see [`Pipeline::add_metrics`].
pub type MetricsRenderer = Arc<dyn Fn(&mut String) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Msg {
    Batch(Batch, AckFn, Instant),
    Barrier(SyncSender<()>),
}

struct AggSample {
    r: u64,
    t: i64,
    v: f64,
    w: f64,
}

enum AggMsg {
    Batch { new_series: Vec<(u64, Labels)>, samples: Vec<AggSample> },
    Barrier(SyncSender<()>),
}

/// The pipeline. Create it with [`Pipeline::start`], feed it with [`submit`](Self::submit) /
/// [`ingest`](Self::ingest), read it with [`query_instant`](Self::query_instant) and friends,
/// and stop it with [`shutdown`](Self::shutdown) (which drains the queues, syncs the WAL and
/// closes the open windows). Share it between threads behind an `Arc`.
pub struct Pipeline {
    shared: Arc<Shared>,
    tx: Mutex<Option<SyncSender<Msg>>>,
    threads: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    maintenance: Mutex<Option<BackgroundHandle>>,
    // Dropped last: the head (in `shared`) must close before its directory goes.
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("data_dir", &self.shared.data_dir).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens storage (replaying its WAL, if the directory holds one) and starts the stages.
    ///
    /// # Errors
    /// [`PipelineError`] when the configuration is invalid or storage cannot be opened.
    pub fn start(cfg: PipelineConfig) -> Result<Pipeline, PipelineError> {
        cfg.validate()?;
        let (tmp, data_dir) = if cfg.storage.data_dir.as_os_str().is_empty() {
            let t = tempfile::Builder::new()
                .prefix("telemetry-pipeline-")
                .tempdir()
                .map_err(|e| PipelineError::Storage { dir: std::env::temp_dir(), message: e.to_string() })?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        } else {
            (None, cfg.storage.data_dir.clone())
        };
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| PipelineError::Storage { dir: data_dir.clone(), message: e.to_string() })?;
        let sync = match cfg.storage.ack {
            // The syncer thread forces the data to disk before acknowledging; the background
            // sync only matters for segment rotation (which syncs the finished segment).
            AckMode::Synced => SyncPolicy::Interval(Duration::from_secs(1)),
            AckMode::Written if cfg.storage.sync_interval_ms == 0 => SyncPolicy::Never,
            AckMode::Written => SyncPolicy::Interval(Duration::from_millis(cfg.storage.sync_interval_ms)),
        };
        let opts = HeadOptions {
            chunk_max_samples: cfg.storage.chunk_max_samples,
            out_of_order_window_ms: cfg.storage.out_of_order_window_ms,
            wal: WalOptions { segment_size: cfg.storage.wal_segment_bytes, sync },
            ..HeadOptions::default()
        };
        let db_opts = DbOptions {
            head: opts,
            block_range_ms: cfg.storage.block_range_ms,
            compaction_ranges: [1, 3, 12].map(|k| k * cfg.storage.block_range_ms).to_vec(),
            tiers: cfg.storage.tier_config(),
            ..DbOptions::default()
        };
        let (db, _replay) = Db::open(&data_dir, db_opts)
            .map_err(|e| PipelineError::Storage { dir: data_dir.clone(), message: e.to_string() })?;
        let db = Arc::new(db);
        let maintenance = (cfg.storage.maintenance_interval_ms > 0)
            .then(|| db.start_background(Duration::from_millis(cfg.storage.maintenance_interval_ms)));
        let engine = Engine::new(EngineOptions {
            lookback_delta_ms: cfg.query.lookback_delta_ms,
            max_samples: cfg.query.max_samples,
            timeout: (cfg.query.timeout_ms > 0).then(|| Duration::from_millis(cfg.query.timeout_ms)),
            ..EngineOptions::default()
        });
        let sampler = Sampler::new(&cfg.sampling)
            .map_err(|e| PipelineError::Stage { stage: "sampling", message: e.to_string() })?;
        let main_agg = Aggregator::new(main_aggregator_config(&cfg))
            .map_err(|e| PipelineError::Stage { stage: "aggregation", message: e.to_string() })?;
        let detection =
            Detection::new(&cfg.anomaly).map_err(|message| PipelineError::Stage { stage: "anomaly", message })?;
        let shared = Arc::new(Shared {
            db,
            engine,
            data_dir,
            queue_depth: AtomicUsize::new(0),
            agg_queue_depth: AtomicUsize::new(0),
            counters: Counters::default(),
            events: Mutex::new(Vec::new()),
            records: Mutex::new(VecDeque::new()),
            metadata: Mutex::new(BTreeMap::new()),
            refused_by_metric: Mutex::new(Vec::new()),
            sampler_stats: Mutex::new((SamplerStats::default(), None)),
            agg_stats: Mutex::new(AggStats::default()),
            wal_sync_seconds: Histogram::new(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            query_seconds: Histogram::new(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            ack_seconds: Histogram::new(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
            extra_metrics: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            cfg,
        });
        let (tx, rx) = sync_channel::<Msg>(shared.cfg.ingest.queue_batches);
        let (agg_tx, agg_rx) = sync_channel::<AggMsg>(shared.cfg.ingest.aggregation_queue_batches);
        let mut threads = Vec::new();
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("pipeline-{name}"))
                .spawn(f)
                .map(|h| (name, h))
                .map_err(|e| PipelineError::Stage { stage: "threads", message: e.to_string() })
        };
        let sync_tx = if shared.cfg.storage.ack == AckMode::Synced {
            let (stx, srx) = sync_channel::<(AckFn, Ack, Instant)>(1 << 16);
            let s = shared.clone();
            threads.push(spawn("syncer", Box::new(move || syncer(s, srx)))?);
            Some(stx)
        } else {
            None
        };
        {
            let s = shared.clone();
            threads.push(spawn("aggregation", Box::new(move || aggregation(s, agg_rx, main_agg, detection)))?);
        }
        {
            let s = shared.clone();
            let limiter = CardinalityLimiter::new(s.cfg.limits);
            threads.push(spawn(
                "ingest",
                Box::new(move || {
                    let mut st = IngestState::new(limiter, sampler);
                    ingest(s, rx, agg_tx, sync_tx, &mut st)
                }),
            )?);
        }
        Ok(Pipeline {
            shared,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            maintenance: Mutex::new(maintenance),
            _tmp: tmp,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.shared.cfg
    }

    /// The data directory (a temporary one when the configuration names none).
    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// The storage: head block, WAL and blocks with their rollup tiers. It implements
    /// [`Queryable`](telemetry_core::Queryable).
    pub fn storage(&self) -> &Db {
        &self.shared.db
    }

    /// Submits a batch, waiting while the ingest queue is full (backpressure). `ack` is called
    /// once, from a pipeline thread, when the batch is durable (or failed).
    ///
    /// # Errors
    /// [`IngestError::Closed`] after shutdown (`ack` is not called then).
    pub fn submit(&self, batch: Batch, ack: AckFn) -> Result<(), IngestError> {
        let tx = self.sender()?;
        self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        tx.send(Msg::Batch(batch, ack, Instant::now())).map_err(|_| {
            self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
            IngestError::Closed
        })
    }

    /// Submits a batch if the ingest queue has room (for sources that can tell their client
    /// to retry, such as HTTP's 429).
    ///
    /// # Errors
    /// [`IngestError::QueueFull`] (counted; `ack` dropped uncalled) or [`IngestError::Closed`].
    pub fn try_submit(&self, batch: Batch, ack: AckFn) -> Result<(), IngestError> {
        let tx = self.sender()?;
        self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Msg::Batch(batch, ack, Instant::now())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.shared.counters.refused_full.fetch_add(1, Ordering::Relaxed);
                Err(IngestError::QueueFull { capacity: self.shared.cfg.ingest.queue_batches })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Err(IngestError::Closed)
            }
        }
    }

    /// Submits a batch and waits for its acknowledgement.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), and the batch's own failure.
    pub fn ingest(&self, batch: Batch) -> Result<Ack, IngestError> {
        let (tx, rx) = sync_channel(1);
        self.submit(
            batch,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| IngestError::Closed)?
    }

    /// Waits until every batch submitted before this call has been stored and aggregated (its
    /// samples and the anomaly scores they produced are queryable).
    ///
    /// # Errors
    /// [`IngestError::Closed`] after shutdown.
    pub fn barrier(&self) -> Result<(), IngestError> {
        let tx = self.sender()?;
        let (btx, brx) = sync_channel(1);
        self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        tx.send(Msg::Barrier(btx)).map_err(|_| IngestError::Closed)?;
        brx.recv().map_err(|_| IngestError::Closed)
    }

    fn sender(&self) -> Result<SyncSender<Msg>, IngestError> {
        lock(&self.tx).as_ref().cloned().ok_or(IngestError::Closed)
    }

    /// Stops accepting batches, drains the queues (every submitted batch is acknowledged),
    /// closes every open aggregation window (scoring it), stores the last anomaly scores and
    /// syncs the WAL. Queries keep working afterwards. Calling it twice is harmless.
    ///
    /// # Errors
    /// [`PipelineError::StageFailed`] when a stage thread panicked;
    /// [`PipelineError::Storage`] when the final WAL sync fails.
    pub fn shutdown(&self) -> Result<(), PipelineError> {
        self.shared.closed.store(true, Ordering::Relaxed);
        drop(lock(&self.tx).take());
        let threads = std::mem::take(&mut *lock(&self.threads));
        let mut failed = None;
        for (name, h) in threads {
            if h.join().is_err() {
                failed = Some(name);
            }
        }
        if let Some(m) = lock(&self.maintenance).take() {
            m.stop();
        }
        if let Some(w) = self.shared.db.wal() {
            w.sync()
                .map_err(|e| PipelineError::Storage { dir: self.shared.data_dir.clone(), message: e.to_string() })?;
        }
        match failed {
            Some(name) => Err(PipelineError::StageFailed(name)),
            None => Ok(()),
        }
    }

    /// `true` once [`shutdown`](Self::shutdown) has begun.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// Evaluates a PromQL expression at `time_ms`.
    ///
    /// # Errors
    /// The engine's [`QueryError`].
    pub fn query_instant(&self, query: &str, time_ms: i64) -> Result<QueryResult, QueryError> {
        let t0 = Instant::now();
        let r = self.shared.engine.instant_query(&*self.shared.db, query, time_ms);
        self.shared.query_seconds.observe(t0.elapsed().as_secs_f64());
        r
    }

    /// Evaluates a PromQL expression from `start_ms` to `end_ms` every `step_ms`.
    ///
    /// # Errors
    /// The engine's [`QueryError`].
    pub fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let t0 = Instant::now();
        let r = self.shared.engine.range_query(&*self.shared.db, query, start_ms, end_ms, step_ms);
        self.shared.query_seconds.observe(t0.elapsed().as_secs_f64());
        r
    }

    /// Anomaly events so far (closed ones first, then open ones), in the order found.
    pub fn anomalies(&self) -> Vec<AnomalyRecord> {
        lock(&self.shared.events).clone()
    }

    /// The most recent closed aggregation windows (at most `aggregation.keep_records`), oldest
    /// first.
    pub fn rollups(&self) -> Vec<RollupRecord> {
        lock(&self.shared.records).iter().cloned().collect()
    }

    /// Metric family metadata seen so far, by family name.
    pub fn metadata(&self) -> BTreeMap<String, Metadata> {
        lock(&self.shared.metadata).clone()
    }

    /// A snapshot of every counter. Walks the head's series: call it for monitoring, not per
    /// batch.
    pub fn stats(&self) -> PipelineStats {
        let c = &self.shared.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (sampling, adaptive_probability) = *lock(&self.shared.sampler_stats);
        PipelineStats {
            batches: ld(&c.batches),
            totals: Ack {
                samples: ld(&c.samples),
                stored: ld(&c.stored),
                duplicates: ld(&c.duplicates),
                refused_limits: ld(&c.refused_limits),
                refused_storage: ld(&c.refused_storage),
                refused_invalid: ld(&c.refused_invalid),
                dropped_sampling: ld(&c.dropped_sampling),
            },
            samples_acknowledged: ld(&c.acknowledged),
            batches_failed: ld(&c.failed),
            batches_refused_full: ld(&c.refused_full),
            queue_depth: self.shared.queue_depth.load(Ordering::Relaxed),
            queue_capacity: self.shared.cfg.ingest.queue_batches,
            aggregation_queue_depth: self.shared.agg_queue_depth.load(Ordering::Relaxed),
            wal_syncs: ld(&c.wal_syncs),
            refused_by_metric: lock(&self.shared.refused_by_metric).clone(),
            sampling,
            adaptive_probability,
            aggregation: *lock(&self.shared.agg_stats),
            anomaly_points_scored: ld(&c.scored),
            anomaly_points_flagged: ld(&c.flagged),
            anomaly_scores_stored: ld(&c.scores_stored),
            storage: self.shared.db.stats(),
        }
    }

    /// The self-monitoring metrics in Prometheus text format 0.0.4.
    pub fn metrics_text(&self) -> String {
        let mut out = crate::metrics::render(&self.stats(), &self.shared);
        for r in lock(&self.shared.extra_metrics).iter() {
            r(&mut out);
        }
        out
    }

    /// Registers a source's self-monitoring lines, rendered after the pipeline's own by
    /// [`metrics_text`](Self::metrics_text) (and so on `/metrics`).
    pub fn add_metrics(&self, renderer: MetricsRenderer) {
        lock(&self.shared.extra_metrics).push(renderer);
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn main_aggregator_config(cfg: &PipelineConfig) -> AggregatorConfig {
    let a = &cfg.aggregation;
    AggregatorConfig {
        window_ms: a.window_ms,
        allowed_lateness_ms: a.allowed_lateness_ms,
        grouping: Grouping::Series,
        aggregates: AggregateSet {
            counter: true,
            tdigest: (a.sketch == SketchKind::Tdigest).then(TDigestConfig::default),
            ddsketch: (a.sketch == SketchKind::Ddsketch).then(DdSketchConfig::default),
            quantiles: a.quantiles.clone(),
            ..AggregateSet::default()
        },
        max_open_windows: 16,
        max_keys: a.max_series,
        max_series: a.max_series,
        key_overflow: KeyOverflow::EvictIdle,
        window_overflow: WindowOverflow::CloseOldest,
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest stage

struct Entry {
    labels: Labels,
    fp: Fingerprint,
    store: Option<SeriesRef>,
    told_agg: bool,
}

struct IngestState {
    limiter: CardinalityLimiter,
    sampler: Sampler,
    sampling_trivial: bool,
    entries: Vec<Entry>,
    by_fp: HashMap<Fingerprint, Vec<u32>>,
    max_ts: i64,
}

impl IngestState {
    fn new(limiter: CardinalityLimiter, sampler: Sampler) -> Self {
        IngestState {
            limiter,
            sampler,
            sampling_trivial: false,
            entries: Vec::new(),
            by_fp: HashMap::new(),
            max_ts: i64::MIN,
        }
    }

    /// The entry of `labels`, admitting it through the cardinality limiter when new.
    fn resolve(&mut self, labels: &Labels) -> Option<u32> {
        let fp = labels.fingerprint();
        if let Some(ids) = self.by_fp.get(&fp) {
            for &i in ids {
                if self.entries[i as usize].labels == *labels {
                    return Some(i);
                }
            }
        }
        self.admit(labels, fp)
    }

    /// [`resolve`](Self::resolve) with a fingerprint the source computed: an entry with these
    /// labels under `hint` is returned at once; otherwise the fingerprint is computed again.
    fn resolve_hinted(&mut self, labels: &Labels, hint: Fingerprint) -> Option<u32> {
        if let Some(ids) = self.by_fp.get(&hint) {
            for &i in ids {
                if self.entries[i as usize].labels == *labels {
                    return Some(i);
                }
            }
        }
        self.resolve(labels)
    }

    /// Admits a series not seen before (fingerprint `fp`) through the cardinality limiter.
    fn admit(&mut self, labels: &Labels, fp: Fingerprint) -> Option<u32> {
        self.limiter.admit_with_fingerprint(labels, fp).ok()?;
        let i = self.entries.len() as u32;
        self.entries.push(Entry { labels: labels.clone(), fp, store: None, told_agg: false });
        self.by_fp.entry(fp).or_default().push(i);
        Some(i)
    }
}

fn ingest(
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    agg_tx: SyncSender<AggMsg>,
    sync_tx: Option<SyncSender<(AckFn, Ack, Instant)>>,
    st: &mut IngestState,
) {
    st.sampling_trivial = shared.cfg.sampling.default == Policy::Full && shared.cfg.sampling.rules.is_empty();
    let has_reservoir = std::iter::once(&shared.cfg.sampling.default)
        .chain(shared.cfg.sampling.rules.iter().map(|r| &r.policy))
        .any(|p| matches!(p, Policy::Reservoir { .. }));
    let db = &shared.db;
    let mut app = db.appender();
    let mut slots: Vec<Option<u32>> = Vec::new();
    let mut agg_samples: Vec<AggSample> = Vec::new();
    let mut new_series: Vec<(u64, Labels)> = Vec::new();
    let c = &shared.counters;
    let mut limiter_refusals_seen = 0u64;
    while let Ok(msg) = rx.recv() {
        shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
        let (batch, ack_fn, enqueued) = match msg {
            Msg::Batch(b, a, t) => (b, a, t),
            Msg::Barrier(tx) => {
                shared.agg_queue_depth.fetch_add(1, Ordering::Relaxed);
                let _ = agg_tx.send(AggMsg::Barrier(tx));
                continue;
            }
        };
        if !batch.metadata.is_empty() {
            let mut m = lock(&shared.metadata);
            for (family, md) in batch.metadata {
                m.insert(family, md);
            }
        }
        if !st.sampling_trivial {
            let fill =
                100.0 * shared.queue_depth.load(Ordering::Relaxed) as f64 / shared.cfg.ingest.queue_batches as f64;
            st.sampler.observe_backpressure(fill, now_ms());
        }
        let mut ack = Ack { samples: batch.samples.len() as u64, ..Ack::default() };
        slots.clear();
        if !batch.interned.is_empty() {
            for s in &batch.interned {
                slots.push(st.resolve_hinted(&s.labels, s.fp));
            }
        } else {
            for labels in &batch.series {
                slots.push(st.resolve(labels));
            }
        }
        for s in &batch.samples {
            let Some(Some(ei)) = slots.get(s.series as usize).copied() else {
                ack.refused_limits += 1;
                continue;
            };
            st.max_ts = st.max_ts.max(s.timestamp_ms);
            let e = &mut st.entries[ei as usize];
            let weight = if st.sampling_trivial {
                1.0
            } else {
                match st.sampler.decide(&e.labels, e.fp, Sample::new(s.timestamp_ms, s.value)) {
                    Decision::Keep { weight } => weight,
                    Decision::Drop => {
                        ack.dropped_sampling += 1;
                        continue;
                    }
                    Decision::Held => continue,
                }
            };
            append_one(&mut app, e, s.timestamp_ms, s.value, weight, &mut ack, &mut agg_samples, &mut new_series);
        }
        if has_reservoir {
            let wm = st.max_ts.saturating_sub(shared.cfg.aggregation.allowed_lateness_ms);
            for r in st.sampler.drain_reservoirs(wm) {
                if let Some(ei) = st.resolve(&r.labels) {
                    let e = &mut st.entries[ei as usize];
                    let (t, v) = (r.sample.timestamp_ms, r.sample.value);
                    append_one(&mut app, e, t, v, r.weight, &mut ack, &mut agg_samples, &mut new_series);
                }
            }
        }
        let result = app.commit();
        c.batches.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(sum) => {
                // Samples that conflicted at commit (another appender wrote the same series and
                // timestamp meanwhile) are refused, not stored.
                ack.stored = sum.head.appended + sum.out_of_order_block;
                ack.duplicates = sum.head.duplicates_ignored + sum.out_of_order_duplicates_ignored;
                ack.refused_storage += sum.head.refused + sum.out_of_order_refused;
            }
            Err(e) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                agg_samples.clear();
                new_series.clear();
                ack_fn(Err(IngestError::Storage(e.to_string())));
                continue;
            }
        }
        c.samples.fetch_add(ack.samples, Ordering::Relaxed);
        c.stored.fetch_add(ack.stored, Ordering::Relaxed);
        c.duplicates.fetch_add(ack.duplicates, Ordering::Relaxed);
        c.refused_limits.fetch_add(ack.refused_limits, Ordering::Relaxed);
        c.refused_storage.fetch_add(ack.refused_storage, Ordering::Relaxed);
        c.refused_invalid.fetch_add(ack.refused_invalid, Ordering::Relaxed);
        c.dropped_sampling.fetch_add(ack.dropped_sampling, Ordering::Relaxed);
        if st.limiter.refused_total() != limiter_refusals_seen {
            limiter_refusals_seen = st.limiter.refused_total();
            let mut v: Vec<(String, u64)> = st.limiter.refused_by_metric().map(|(k, n)| (k.to_string(), n)).collect();
            v.sort();
            *lock(&shared.refused_by_metric) = v;
        }
        if !st.sampling_trivial {
            *lock(&shared.sampler_stats) = (st.sampler.stats(), st.sampler.adaptive_probability());
        }
        match &sync_tx {
            Some(stx) => {
                if let Err(std::sync::mpsc::SendError((f, a, _))) = stx.send((ack_fn, ack, enqueued)) {
                    // The syncer is gone (it only stops when this stage stops): sync here.
                    let r = db
                        .wal()
                        .map_or(Ok(()), |w| w.sync())
                        .map(|_| a)
                        .map_err(|e| IngestError::Storage(e.to_string()));
                    f(r);
                }
            }
            None => {
                c.acknowledged.fetch_add(ack.samples, Ordering::Relaxed);
                shared.ack_seconds.observe(enqueued.elapsed().as_secs_f64());
                ack_fn(Ok(ack));
            }
        }
        if !agg_samples.is_empty() || !new_series.is_empty() {
            shared.agg_queue_depth.fetch_add(1, Ordering::Relaxed);
            let msg = AggMsg::Batch {
                new_series: std::mem::take(&mut new_series),
                samples: std::mem::take(&mut agg_samples),
            };
            if agg_tx.send(msg).is_err() {
                shared.agg_queue_depth.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn append_one(
    app: &mut DbAppender<'_>,
    e: &mut Entry,
    t: i64,
    v: f64,
    w: f64,
    ack: &mut Ack,
    agg_samples: &mut Vec<AggSample>,
    new_series: &mut Vec<(u64, Labels)>,
) {
    let res = match e.store {
        Some(r) => match app.append_ref(r, t, v) {
            Err(AppendError::UnknownRef(_)) => app.append(&e.labels, t, v),
            other => other.map(|()| None),
        },
        None => app.append(&e.labels, t, v),
    };
    match res {
        Ok(new_ref) => {
            if let Some(r) = new_ref
                && e.store != Some(r)
            {
                e.store = Some(r);
                e.told_agg = false;
            }
            let Some(r) = e.store else { return };
            if !e.told_agg {
                e.told_agg = true;
                new_series.push((r.0, e.labels.clone()));
            }
            agg_samples.push(AggSample { r: r.0, t, v, w });
        }
        Err(AppendError::Refused { .. }) => ack.refused_storage += 1,
        // Invalid or empty labels, an exhausted reference space, an index refusal.
        Err(_) => ack.refused_invalid += 1,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------------------------
// Syncer stage: group commit.

fn syncer(shared: Arc<Shared>, rx: Receiver<(AckFn, Ack, Instant)>) {
    let interval = Duration::from_millis(shared.cfg.storage.sync_interval_ms);
    let c = &shared.counters;
    let mut pending = Vec::new();
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        pending.push(first);
        while let Ok(p) = rx.try_recv() {
            pending.push(p);
        }
        let t0 = Instant::now();
        let res = shared.db.wal().map_or(Ok(()), |w| w.sync());
        shared.wal_sync_seconds.observe(t0.elapsed().as_secs_f64());
        c.wal_syncs.fetch_add(1, Ordering::Relaxed);
        for (f, ack, enqueued) in pending.drain(..) {
            match &res {
                Ok(()) => {
                    c.acknowledged.fetch_add(ack.samples, Ordering::Relaxed);
                    shared.ack_seconds.observe(enqueued.elapsed().as_secs_f64());
                    f(Ok(ack));
                }
                Err(e) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    f(Err(IngestError::Storage(e.to_string())));
                }
            }
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation and detection stage.

struct AggSeries {
    main: Option<telemetry_agg::SeriesRef>,
    rules: Vec<(u32, telemetry_agg::SeriesRef)>,
}

fn aggregation(shared: Arc<Shared>, rx: Receiver<AggMsg>, mut main: Aggregator, mut det: Detection) {
    let mut series: HashMap<u64, AggSeries> = HashMap::new();
    let mut points: Vec<ScorePoint> = Vec::new();
    let keep = shared.cfg.aggregation.keep_records;
    let c = &shared.counters;
    let mut app = shared.db.appender();
    let mut last_events = (0usize, 0u64);
    let store_scores = |points: &mut Vec<ScorePoint>, app: &mut DbAppender<'_>| {
        if points.is_empty() {
            return;
        }
        for p in points.drain(..) {
            let _ = app.append(&p.labels, p.timestamp_ms, p.value);
        }
        if let Ok(s) = app.commit() {
            c.scores_stored.fetch_add(s.head.appended + s.out_of_order_block, Ordering::Relaxed);
        }
    };
    let publish = |main: &mut Aggregator, det: &Detection, last_events: &mut (usize, u64)| {
        let recs = main.drain_records();
        if !recs.is_empty() {
            let mut r = lock(&shared.records);
            for w in recs {
                r.push_back(RollupRecord {
                    labels: w.labels,
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    partial: w.partial,
                    values: w.values,
                });
            }
            while r.len() > keep {
                r.pop_front();
            }
        }
        *lock(&shared.agg_stats) = main.stats();
        c.scored.store(det.scored, Ordering::Relaxed);
        c.flagged.store(det.flagged, Ordering::Relaxed);
        let now = (det.closed.len(), det.flagged);
        if now != *last_events {
            *last_events = now;
            *lock(&shared.events) = det.events();
        }
    };
    while let Ok(msg) = rx.recv() {
        shared.agg_queue_depth.fetch_sub(1, Ordering::Relaxed);
        match msg {
            AggMsg::Barrier(tx) => {
                let _ = tx.send(());
            }
            AggMsg::Batch { new_series, samples } => {
                for (r, labels) in new_series {
                    let m = main.series_ref(&labels).ok();
                    let rules = det.register(&labels);
                    series.insert(r, AggSeries { main: m, rules });
                }
                for s in &samples {
                    let Some(a) = series.get(&s.r) else { continue };
                    if let Some(h) = a.main {
                        let _ = main.push(h, Sample::new(s.t, s.v), s.w);
                    }
                    for &(ri, h) in &a.rules {
                        det.push(ri, h, s.t, s.v, s.w);
                    }
                }
                det.score(false, &mut points);
                store_scores(&mut points, &mut app);
                publish(&mut main, &det, &mut last_events);
            }
        }
    }
    // Shutdown: close every window.
    main.flush();
    det.score(true, &mut points);
    store_scores(&mut points, &mut app);
    last_events = (usize::MAX, 0);
    publish(&mut main, &det, &mut last_events);
}

/// Adds `o` into `acc` (for sources that sum acknowledgements).
pub fn add_ack(acc: &mut Ack, o: &Ack) {
    acc.add(o);
}
