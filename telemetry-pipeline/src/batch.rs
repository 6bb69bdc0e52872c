//! Batches: what sources hand to the pipeline.

use std::collections::HashMap;

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
    /// Each series' fingerprint when the source already knew it (remote write's label cache),
    /// parallel to `series`; otherwise empty. Only a hint for finding the series again: the
    /// ingest stage compares the labels themselves, and ignores this when its length differs.
    pub(crate) fingerprints: Vec<Fingerprint>,
}

impl Batch {
    /// Adds a series and returns its index (it is not deduplicated: see [`BatchBuilder`]).
    pub fn add_series(&mut self, labels: Labels) -> u32 {
        self.series.push(labels);
        (self.series.len() - 1) as u32
    }

    /// Adds a series with its fingerprint (`labels.fingerprint()`), keeping `fingerprints`
    /// parallel to `series` while every series comes this way.
    pub(crate) fn add_series_with_fingerprint(&mut self, labels: Labels, fp: Fingerprint) -> u32 {
        if self.fingerprints.len() == self.series.len() {
            self.fingerprints.push(fp);
        }
        self.add_series(labels)
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
