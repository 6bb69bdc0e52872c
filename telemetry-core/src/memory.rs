//! An in-memory reference implementation of the storage interface.
//!
//! [`MemStorage`] is a test and example aid: a sorted map from labels to columns of samples. It
//! is simple enough to trust, so other implementations are checked against it, and it lets the
//! query engine run without telemetry-store. It is not built for millions of series: selection
//! scans every series, and a write while a [`Querier`] is open copies the map.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::labels::Labels;
use crate::matcher::{Matcher, matches_all};
use crate::storage::{Querier, Queryable, SampleBatch, SampleBatches, SelectHints, Series, SeriesSet, StorageError};

/// Samples of one series in two columns, sorted by timestamp, unique timestamps.
#[derive(Debug, Clone, Default)]
struct Columns {
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

/// How many samples one batch of [`MemStorage`] holds at most.
pub const MEM_BATCH: usize = 1024;

type SeriesMap = BTreeMap<Labels, Columns>;

/// In-memory storage. See the [module docs](self).
///
/// ```
/// use telemetry_core::{Labels, Matcher, MemStorage, Queryable, SelectHints, SampleBatches};
///
/// let db = MemStorage::new();
/// let up = Labels::from_pairs([("__name__", "up"), ("job", "node")]).unwrap();
/// db.append(&up, 1_000, 1.0);
/// db.append(&up, 2_000, 0.0);
/// let q = db.querier(0, 1_500).unwrap();
/// let mut set = q.select(&SelectHints::default(), &[Matcher::equal("job", "node")]).unwrap();
/// let mut series = set.next().unwrap().unwrap();
/// assert_eq!(series.labels, up);
/// assert_eq!(series.samples.collect_all().unwrap().values, vec![1.0]);
/// ```
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<Arc<SeriesMap>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        MemStorage::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Arc<SeriesMap>> {
        // A poisoned lock only means a writer panicked; the map is still consistent because
        // every mutation below is a single insert.
        self.series.write().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Arc<SeriesMap> {
        self.series.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds a sample. A sample at a timestamp the series already has replaces the old value
    /// (last write wins); samples may arrive in any order.
    pub fn append(&self, labels: &Labels, timestamp_ms: i64, value: f64) {
        let mut g = self.write();
        let map = Arc::make_mut(&mut g);
        let cols = map.entry(labels.clone()).or_default();
        match cols.timestamps.last() {
            Some(&last) if last >= timestamp_ms => match cols.timestamps.binary_search(&timestamp_ms) {
                Ok(i) => cols.values[i] = value,
                Err(i) => {
                    cols.timestamps.insert(i, timestamp_ms);
                    cols.values.insert(i, value);
                }
            },
            _ => {
                cols.timestamps.push(timestamp_ms);
                cols.values.push(value);
            }
        }
    }

    /// Adds many samples of one series (any order; same rules as [`append`](Self::append)).
    pub fn append_many(&self, labels: &Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        for (t, v) in samples {
            self.append(labels, t, v);
        }
    }

    /// Removes every series.
    pub fn clear(&self) {
        *self.write() = Arc::default();
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.snapshot().len()
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.snapshot().values().map(|c| c.timestamps.len()).sum()
    }
}

impl Queryable for MemStorage {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(MemQuerier { map: self.snapshot(), mint, maxt }))
    }
}

/// A [`Querier`] over a snapshot of a [`MemStorage`].
#[derive(Debug)]
pub struct MemQuerier {
    map: Arc<SeriesMap>,
    mint: i64,
    maxt: i64,
}

impl MemQuerier {
    fn range(&self, c: &Columns) -> (usize, usize) {
        let lo = c.timestamps.partition_point(|&t| t < self.mint);
        let hi = c.timestamps.partition_point(|&t| t <= self.maxt);
        (lo, hi.max(lo))
    }

    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = (&'a Labels, &'a Columns)> + 'a {
        self.map.iter().filter(move |(l, c)| {
            let (lo, hi) = self.range(c);
            hi > lo && matches_all(matchers, l)
        })
    }
}

struct MemBatches<'q> {
    cols: &'q Columns,
    pos: usize,
    end: usize,
}

impl SampleBatches for MemBatches<'_> {
    fn next_batch(&mut self, out: &mut SampleBatch) -> Result<bool, StorageError> {
        out.clear();
        if self.pos >= self.end {
            return Ok(false);
        }
        let to = (self.pos + MEM_BATCH).min(self.end);
        out.timestamps.extend_from_slice(&self.cols.timestamps[self.pos..to]);
        out.values.extend_from_slice(&self.cols.values[self.pos..to]);
        self.pos = to;
        Ok(true)
    }
}

impl Querier for MemQuerier {
    fn select(&self, _hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet<'_>, StorageError> {
        let matchers = matchers.to_vec();
        let it = self.map.iter().filter(move |(l, _)| matches_all(&matchers, l)).filter_map(move |(l, c)| {
            let (lo, hi) = self.range(c);
            (hi > lo).then(|| {
                Ok(Series { labels: l.clone(), samples: Box::new(MemBatches { cols: c, pos: lo, end: hi }) as _ })
            })
        });
        Ok(Box::new(it))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> =
            self.matching(matchers).flat_map(|(l, _)| l.iter().map(|l| l.name.to_string())).collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> =
            self.matching(matchers).filter_map(|(l, _)| l.get(name).map(str::to_string)).collect();
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn select_sorted_and_ranged() {
        let db = MemStorage::new();
        let b = ls(&[("__name__", "m"), ("i", "b")]);
        let a = ls(&[("__name__", "m"), ("i", "a")]);
        for t in (0..5000).rev() {
            db.append(&b, t, t as f64);
        }
        db.append(&a, 10, 1.0);
        db.append(&a, 10, 2.0);
        let q = db.querier(10, 2999).unwrap();
        let got: Vec<_> = q.select(&SelectHints::default(), &[]).unwrap().map(|s| s.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels, a);
        let mut it = got.into_iter();
        let mut sa = it.next().unwrap();
        assert_eq!(sa.samples.collect_all().unwrap().values, vec![2.0]);
        let mut sb = it.next().unwrap();
        let all = sb.samples.collect_all().unwrap();
        assert_eq!(all.len(), 2990);
        assert_eq!(all.timestamps[0], 10);
        assert_eq!(*all.timestamps.last().unwrap(), 2999);
        assert!(all.timestamps.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn labels_api_respects_matchers_and_range() {
        let db = MemStorage::new();
        db.append(&ls(&[("__name__", "up"), ("job", "a")]), 100, 1.0);
        db.append(&ls(&[("__name__", "x"), ("zone", "z")]), 100, 1.0);
        db.append(&ls(&[("__name__", "old"), ("gone", "g")]), 1, 1.0);
        let q = db.querier(50, 200).unwrap();
        assert_eq!(q.label_names(&[]).unwrap(), ["__name__", "job", "zone"]);
        assert_eq!(q.label_names(&[Matcher::equal("__name__", "up")]).unwrap(), ["__name__", "job"]);
        assert_eq!(q.label_values("__name__", &[]).unwrap(), ["up", "x"]);
        assert_eq!(q.label_values("job", &[Matcher::equal("job", "")]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn snapshot_isolation() {
        let db = MemStorage::new();
        let s = ls(&[("__name__", "m")]);
        db.append(&s, 1, 1.0);
        let q = db.querier(0, 100).unwrap();
        db.append(&s, 2, 2.0);
        let mut set = q.select(&SelectHints::default(), &[]).unwrap();
        assert_eq!(set.next().unwrap().unwrap().samples.collect_all().unwrap().len(), 1);
        assert_eq!(db.sample_count(), 2);
    }
}
