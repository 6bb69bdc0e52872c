//! Batches: what sources hand to the pipeline.

use std::collections::HashMap;
use std::sync::Arc;

use telemetry_core::{Fingerprint, Labels, Metadata};

/// One sample of a [`Batch`]: an index into the batch's series, a timestamp (ms since the
/// Unix epoch) and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSample {
    /// Index into [`Batch::series`].
    pub series: u32,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (stale markers and other NaNs are stored as they are).
    pub value: f64,
}

/// Samples of several series, acknowledged together: the unit that moves through the
/// pipeline's queues. Each series' labels appear once; samples refer to them by index.
///
/// ```
/// use telemetry_core::Labels;
/// use telemetry_pipeline::Batch;
///
/// let mut b = Batch::default();
/// let up = b.add_series(Labels::from_pairs([("__name__", "up"), ("job", "node")])?);
/// b.push(up, 1_700_000_000_000, 1.0);
/// b.push(up, 1_700_000_001_000, 1.0);
/// assert_eq!((b.series.len(), b.len()), (1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The series, each once.
    pub series: Vec<Labels>,
    /// The samples.
    pub samples: Vec<BatchSample>,
    /// Metric family metadata (`# TYPE`/`# HELP`/`# UNIT`) seen with the samples.
    pub metadata: Vec<(String, Metadata)>,
    /// The series as shared label sets with their fingerprints (remote write's label cache),
    /// in place of `series` when not empty: moving one costs a reference count, not a copy of
    /// its labels. Only the server's remote-write path fills it; [`Batch::series`] is empty then.
    pub(crate) interned: Vec<Arc<InternedSeries>>,
}

impl Batch {
    /// Adds a series and returns its index (it is not deduplicated: see [`BatchBuilder`]).
    pub fn add_series(&mut self, labels: Labels) -> u32 {
        self.series.push(labels);
        (self.series.len() - 1) as u32
    }

    /// Adds a shared series (only into a batch whose `series` is empty) and returns its index.
    #[cfg(feature = "server")]
    pub(crate) fn add_interned(&mut self, series: Arc<InternedSeries>) -> u32 {
        self.interned.push(series);
        (self.interned.len() - 1) as u32
    }

    /// Turns shared series into [`Batch::series`] (for callers outside the crate).
    #[cfg(feature = "server")]
    pub(crate) fn uninterned(mut self) -> Batch {
        if !self.interned.is_empty() {
            self.series = self.interned.drain(..).map(|s| s.labels.clone()).collect();
        }
        self
    }

    /// Adds a sample of series `series` (an index returned by [`add_series`](Self::add_series)).
    pub fn push(&mut self, series: u32, timestamp_ms: i64, value: f64) {
        self.samples.push(BatchSample { series, timestamp_ms, value });
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// `true` when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// A label set and its fingerprint (`labels.fingerprint()`), shared between a source's cache
/// and the batches that name it.
#[derive(Debug)]
pub(crate) struct InternedSeries {
    /// The labels.
    pub(crate) labels: Labels,
    /// Their fingerprint.
    pub(crate) fp: Fingerprint,
}

/// Builds a [`Batch`], giving each distinct series one index.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: Batch,
    index: HashMap<Labels, u32>,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample of `labels`.
    pub fn push(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) {
        let i = match self.index.get(labels) {
            Some(&i) => i,
            None => {
                let i = self.batch.add_series(labels.clone());
                self.index.insert(labels.clone(), i);
                i
            }
        };
        self.batch.push(i, timestamp_ms, value);
    }

    /// Records a family's metadata.
    pub fn metadata(&mut self, family: &str, m: Metadata) {
        self.batch.metadata.push((family.to_string(), m));
    }

    /// Samples so far.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// `true` when no sample was added.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch.
    pub fn finish(self) -> Batch {
        self.batch
    }
}
