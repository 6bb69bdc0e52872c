//! Reading the head through telemetry-core's storage interface.

use std::sync::Arc;

use telemetry_core::Matcher;
use telemetry_core::{Querier, Queryable, SampleBatch, SampleBatches, SelectHints, Series, SeriesSet, StorageError};

use crate::head::{Head, decode_chunk};
use crate::series::{MemSeries, Snapshot};

impl Queryable for Head {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(HeadQuerier { head: self, mint, maxt }))
    }
}

/// A [`Querier`] over the head for `[mint, maxt]`.
///
/// Each selected series is copied out under its lock when the series set reaches it (full
/// chunks are shared, not copied): a series' samples never change under a reader, and reads
/// never block appends for longer than that copy.
#[derive(Debug)]
pub struct HeadQuerier<'h> {
    head: &'h Head,
    mint: i64,
    maxt: i64,
}

impl HeadQuerier<'_> {
    fn overlapping(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let (mint, maxt) = (self.mint, self.maxt);
        let mut v: Vec<Arc<MemSeries>> = self
            .head
            .matching_series(matchers)
            .into_iter()
            .filter(|s| {
                let d = s.lock();
                matches!((d.min_time(), d.max_time()), (Some(a), Some(b)) if a <= maxt && b >= mint)
            })
            .collect();
        v.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        v
    }
}

impl Querier for HeadQuerier<'_> {
    fn select(&self, _hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet<'_>, StorageError> {
        if self.mint > self.maxt {
            return Ok(Box::new(std::iter::empty()));
        }
        let series = self.overlapping(matchers);
        let (mint, maxt) = (self.mint, self.maxt);
        Ok(Box::new(series.into_iter().filter_map(move |s| {
            let snap = s.lock().snapshot(mint, maxt);
            if snap.is_empty() {
                return None;
            }
            // Read the first batch now so that a series with no sample in range is left out.
            let mut batches = HeadBatches::new(snap);
            let mut first = SampleBatch::default();
            match batches.next_batch(&mut first) {
                Ok(false) => None,
                Ok(true) => {
                    batches.peeked = Some(first);
                    Some(Ok(Series { labels: s.labels.clone(), samples: Box::new(batches) }))
                }
                Err(e) => Some(Err(e)),
            }
        })))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .overlapping(matchers)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> =
            self.overlapping(matchers).iter().filter_map(|s| s.labels.get(name).map(str::to_string)).collect();
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

impl Head {
    /// Series matching `matchers` (all for none) with samples in `[mint, maxt]`, sorted by
    /// labels; each series is copied out and decoded only when the iterator reaches it.
    pub(crate) fn select_series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> impl Iterator<Item = Result<(telemetry_core::Labels, SampleBatch), StorageError>> + 'static {
        let series =
            if mint > maxt { Vec::new() } else { HeadQuerier { head: self, mint, maxt }.overlapping(matchers) };
        series.into_iter().filter_map(move |s| {
            let snap = s.lock().snapshot(mint, maxt);
            if snap.is_empty() {
                return None;
            }
            match HeadBatches::new(snap).collect_all() {
                Ok(b) if b.is_empty() => None,
                Ok(b) => Some(Ok((s.labels.clone(), b))),
                Err(e) => Some(Err(e)),
            }
        })
    }
}

/// Batches of one series: one per chunk when the data is in order, one merged batch when
/// out-of-order samples exist.
struct HeadBatches {
    snap: Snapshot,
    next_chunk: usize,
    open_done: bool,
    merged: Option<SampleBatch>,
    peeked: Option<SampleBatch>,
    done: bool,
}

impl HeadBatches {
    fn new(snap: Snapshot) -> Self {
        HeadBatches { snap, next_chunk: 0, open_done: false, merged: None, peeked: None, done: false }
    }

    fn corrupt(e: telemetry_compress::ChunkError) -> StorageError {
        StorageError::Corruption { location: "head chunk".into(), reason: e.to_string() }
    }

    fn trim(out: &mut SampleBatch, mint: i64, maxt: i64) {
        let lo = out.timestamps.partition_point(|&t| t < mint);
        let hi = out.timestamps.partition_point(|&t| t <= maxt).max(lo);
        if lo > 0 || hi < out.len() {
            out.timestamps.truncate(hi);
            out.values.truncate(hi);
            out.timestamps.drain(..lo);
            out.values.drain(..lo);
        }
    }

    fn merge_all(&mut self) -> Result<SampleBatch, StorageError> {
        let mut all = SampleBatch::default();
        for c in self.snap.chunks.iter().chain(&self.snap.ooo_chunks) {
            decode_chunk(&c.data, &mut all.timestamps, &mut all.values).map_err(Self::corrupt)?;
        }
        if let Some(open) = &self.snap.open {
            decode_chunk(open, &mut all.timestamps, &mut all.values).map_err(Self::corrupt)?;
        }
        for &(t, v) in &self.snap.ooo {
            all.push(t, v);
        }
        let mut idx: Vec<usize> = (0..all.len()).collect();
        idx.sort_by_key(|&i| all.timestamps[i]);
        let mut out = SampleBatch::default();
        for i in idx {
            let t = all.timestamps[i];
            if t < self.snap.mint || t > self.snap.maxt || out.timestamps.last() == Some(&t) {
                continue;
            }
            out.push(t, all.values[i]);
        }
        Ok(out)
    }
}

impl SampleBatches for HeadBatches {
    fn next_batch(&mut self, out: &mut SampleBatch) -> Result<bool, StorageError> {
        out.clear();
        if let Some(p) = self.peeked.take() {
            *out = p;
            return Ok(true);
        }
        if self.done {
            return Ok(false);
        }
        if self.snap.has_out_of_order() {
            let merged = match self.merged.take() {
                Some(m) => m,
                None => self.merge_all()?,
            };
            self.done = true;
            *out = merged;
            return Ok(!out.is_empty());
        }
        loop {
            if let Some(c) = self.snap.chunks.get(self.next_chunk) {
                self.next_chunk += 1;
                decode_chunk(&c.data, &mut out.timestamps, &mut out.values).map_err(Self::corrupt)?;
            } else if !self.open_done {
                self.open_done = true;
                if let Some(open) = &self.snap.open {
                    decode_chunk(open, &mut out.timestamps, &mut out.values).map_err(Self::corrupt)?;
                }
            } else {
                self.done = true;
                return Ok(false);
            }
            Self::trim(out, self.snap.mint, self.snap.maxt);
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }
}
