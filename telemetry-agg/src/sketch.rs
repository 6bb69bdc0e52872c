//! Mergeable, serializable sketch wrappers: t-digest, DDSketch, HyperLogLog, and the
//! weighted moments accumulator.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as DdConfig, DDSketch};
use tdigest::TDigest;

use crate::error::MergeError;

/// Values buffered per t-digest before they are compressed into it (`merge_unsorted`): the
/// `tdigest` crate's API is batch-oriented, so single values are collected first.
pub const TDIGEST_BATCH: usize = 256;

/// Weighted count, mean and second central moment: West's weighted form of Welford's online
/// algorithm, merged with Chan et al.'s parallel formula ("Updating formulae and a pairwise
/// algorithm for computing sample variances", 1979). Numerically stable: no sum of squares.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    /// Sum of weights.
    pub weight: f64,
    /// Weighted mean.
    pub mean: f64,
    /// Weighted sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds value `x` with weight `w` (> 0).
    #[inline]
    pub fn add(&mut self, x: f64, w: f64) {
        let total = self.weight + w;
        let delta = x - self.mean;
        let r = delta * w / total;
        self.mean += r;
        self.m2 += self.weight * delta * r;
        self.weight = total;
    }

    /// Merges another accumulator (Chan's formula).
    pub fn merge(&mut self, o: &Moments) {
        if o.weight == 0.0 {
            return;
        }
        if self.weight == 0.0 {
            *self = *o;
            return;
        }
        let total = self.weight + o.weight;
        let delta = o.mean - self.mean;
        self.mean += delta * o.weight / total;
        self.m2 += o.m2 + delta * delta * self.weight * o.weight / total;
        self.weight = total;
    }

    /// Population variance `m2 / weight` (weights as frequency weights), `None` when empty.
    pub fn variance(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| (self.m2 / self.weight).max(0.0))
    }
}

/// A t-digest (Dunning & Ertl, "Computing extremely accurate quantiles using t-digests", 2019)
/// from the `tdigest` crate, with a buffer of up to [`TDIGEST_BATCH`] values that are sorted
/// and merged in one pass. The digest stays `None` until the first batch so that an empty
/// sketch serializes without NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TDigestSketch {
    compression: usize,
    digest: Option<TDigest>,
    buffer: Vec<f64>,
}

impl TDigestSketch {
    /// An empty sketch keeping at most `compression` centroids.
    pub fn new(compression: usize) -> Self {
        TDigestSketch { compression, digest: None, buffer: Vec::new() }
    }

    /// The compression (most centroids).
    pub fn compression(&self) -> usize {
        self.compression
    }

    /// Adds a value (non-finite values are ignored). Allocates only once per
    /// [`TDIGEST_BATCH`] values.
    #[inline]
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(TDIGEST_BATCH);
        }
        self.buffer.push(v);
        if self.buffer.len() >= TDIGEST_BATCH {
            self.flush();
        }
    }

    /// Compresses the buffered values into the digest.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(TDIGEST_BATCH));
        batch.sort_unstable_by(f64::total_cmp);
        let base = self.digest.take().unwrap_or_else(|| TDigest::new_with_size(self.compression));
        self.digest = Some(base.merge_sorted(batch));
    }

    /// Merges values sorted ascending (finite: callers filter) in one pass.
    pub fn add_sorted(&mut self, sorted: Vec<f64>) {
        if sorted.is_empty() {
            return;
        }
        self.flush();
        let base = self.digest.take().unwrap_or_else(|| TDigest::new_with_size(self.compression));
        self.digest = Some(base.merge_sorted(sorted));
    }

    /// Releases the buffer's spare capacity (for closed windows kept as rollups).
    pub fn shrink(&mut self) {
        self.flush();
        self.buffer = Vec::new();
    }

    /// Number of values seen.
    pub fn count(&self) -> f64 {
        self.digest.as_ref().map_or(0.0, |d| d.count()) + self.buffer.len() as f64
    }

    fn full_digest(&self) -> Option<TDigest> {
        let base = self.digest.clone();
        if self.buffer.is_empty() {
            return base;
        }
        let base = base.unwrap_or_else(|| TDigest::new_with_size(self.compression));
        Some(base.merge_unsorted(self.buffer.clone()))
    }

    /// Estimates quantile `q` in `[0, 1]`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.full_digest().map(|d| d.estimate_quantile(q))
    }

    /// Estimates several quantiles at once.
    pub fn quantiles(&self, qs: &[f64]) -> Option<Vec<f64>> {
        let d = self.full_digest()?;
        Some(qs.iter().map(|&q| d.estimate_quantile(q)).collect())
    }

    /// Merges another sketch of the same compression.
    ///
    /// # Errors
    /// [`MergeError::Parameters`] when the compressions differ.
    pub fn merge(&mut self, o: &TDigestSketch) -> Result<(), MergeError> {
        if self.compression != o.compression {
            return Err(MergeError::Parameters("t-digest"));
        }
        let mut parts = Vec::with_capacity(2);
        if let Some(d) = self.full_digest() {
            parts.push(d);
        }
        if let Some(d) = o.full_digest() {
            parts.push(d);
        }
        self.buffer.clear();
        self.digest = match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(TDigest::merge_digests(parts)),
        };
        Ok(())
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        // A centroid is two f64 (mean and weight).
        self.buffer.capacity() * 8 + self.digest.as_ref().map_or(0, |_| self.compression * 16)
    }
}

/// DDSketch parameters: relative accuracy `alpha` and the bin cap per sign.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DdSketchConfig {
    /// Relative accuracy: every quantile estimate is within `alpha · |true value|` of the value
    /// at the quantile's rank (Masson, Rim & Lee, "DDSketch", VLDB 2019, Theorem 2). Default 0.01.
    pub alpha: f64,
    /// Most bins per sign (default 2,048); beyond it the lowest bins collapse.
    pub max_bins: u32,
}

impl Default for DdSketchConfig {
    fn default() -> Self {
        DdSketchConfig { alpha: 0.01, max_bins: 2048 }
    }
}

impl DdSketchConfig {
    fn build(&self) -> DdConfig {
        DdConfig::new(self.alpha, self.max_bins, 1.0e-9)
    }
}

/// A DDSketch from the `sketches-ddsketch` crate, created on the first value (an empty sketch
/// has infinite min/max, which text formats cannot carry).
#[derive(Clone, Serialize, Deserialize)]
pub struct DdSketch {
    config: DdSketchConfig,
    sketch: Option<DDSketch>,
}

impl fmt::Debug for DdSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DdSketch").field("config", &self.config).field("count", &self.count()).finish_non_exhaustive()
    }
}

impl DdSketch {
    /// An empty sketch.
    pub fn new(config: DdSketchConfig) -> Self {
        DdSketch { config, sketch: None }
    }

    /// The parameters.
    pub fn config(&self) -> DdSketchConfig {
        self.config
    }

    /// Adds a value (non-finite values are ignored).
    #[inline]
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        match &mut self.sketch {
            Some(s) => s.add(v),
            None => {
                let mut s = DDSketch::new(self.config.build());
                s.add(v);
                self.sketch = Some(s);
            }
        }
    }

    /// Number of values seen.
    pub fn count(&self) -> usize {
        self.sketch.as_ref().map_or(0, |s| s.count())
    }

    /// Estimates quantile `q` in `[0, 1]`; `None` when empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.as_ref().and_then(|s| s.quantile(q).ok().flatten())
    }

    /// Merges another sketch with the same parameters.
    ///
    /// # Errors
    /// [`MergeError::Parameters`] when the parameters differ or a deserialized sketch is
    /// internally inconsistent.
    pub fn merge(&mut self, o: &DdSketch) -> Result<(), MergeError> {
        if self.config != o.config {
            return Err(MergeError::Parameters("DDSketch"));
        }
        let Some(other) = &o.sketch else { return Ok(()) };
        let Some(mine) = &self.sketch else {
            self.sketch = Some(other.clone());
            return Ok(());
        };
        // The crate indexes its bins without checks; a sketch deserialized from corrupt bytes
        // could make it panic, so merge into a copy and keep it only on success.
        let mut copy = mine.clone();
        let ok = catch_unwind(AssertUnwindSafe(|| copy.merge(other).is_ok())).unwrap_or(false);
        if !ok {
            return Err(MergeError::Parameters("DDSketch"));
        }
        self.sketch = Some(copy);
        Ok(())
    }

    /// Approximate heap bytes held (bins are `u64`, allocated in chunks of 128 per sign).
    pub fn heap_bytes(&self) -> usize {
        self.sketch.as_ref().map_or(0, |s| s.length() * 8)
    }
}

/// HyperLogLog precision: `2^14` registers.
pub const HLL_PRECISION: u8 = 14;

type Estimator = cardinality_estimator::CardinalityEstimator<u64, cardinality_estimator_hasher::Unused, 14, 6>;

mod cardinality_estimator_hasher {
    //! Items enter the estimator as 64-bit hashes (`insert_hash`), so its hasher is never used;
    //! this one exists only to satisfy the type.
    use std::hash::Hasher;

    /// An identity hasher over the last `u64` written.
    #[derive(Default)]
    pub struct Unused(u64);

    impl Hasher for Unused {
        fn finish(&self) -> u64 {
            crate::sampling::mix64(self.0)
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
}

/// A HyperLogLog++ distinct counter (Heule, Nunkesser & Hall, "HyperLogLog in Practice",
/// EDBT 2013) from Cloudflare's `cardinality-estimator` crate: exact for small sets (sparse
/// representation: a few bytes for a handful of items), then `2^14` six-bit registers
/// (12 KiB, standard error `1.04 / sqrt(2^14)` = 0.81 %).
///
/// `probabilistic-collections` (0.7), the first choice, fails the accuracy checks: its raw
/// estimate is computed as `1 / (α·m²·Σ2^−M)` instead of `α·m² / Σ2^−M`, so it always falls
/// back to linear counting (3 % error at 100k items with 2^14 registers, and an infinite
/// estimate once every register is set); see `tests/accuracy.rs`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DistinctCount {
    hll: Estimator,
}

impl fmt::Debug for DistinctCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctCount").field("estimate", &self.estimate()).finish()
    }
}

impl Default for DistinctCount {
    fn default() -> Self {
        DistinctCount::new()
    }
}

impl DistinctCount {
    /// An empty counter.
    pub fn new() -> Self {
        DistinctCount { hll: Estimator::new() }
    }

    /// Adds an item by its 64-bit hash (which must be well mixed: a fingerprint, or
    /// [`mix64`](crate::sampling::mix64) of a raw value).
    #[inline]
    pub fn insert(&mut self, item_hash: u64) {
        self.hll.insert_hash(item_hash);
    }

    /// The estimated number of distinct items.
    pub fn estimate(&self) -> f64 {
        self.hll.estimate() as f64
    }

    /// Merges another counter (register-wise maximum: the union, in any order).
    pub fn merge(&mut self, o: &DistinctCount) {
        self.hll.merge(&o.hll);
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.hll.size_of()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_match_two_pass() {
        let xs: Vec<f64> = (0..1000).map(|i| 1e9 + (i as f64 * 0.37).sin()).collect();
        let mut m = Moments::default();
        for &x in &xs {
            m.add(x, 1.0);
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!((m.mean - mean).abs() < 1e-6);
        assert!((m.variance().unwrap() - var).abs() / var < 1e-6);
        let (a, b) = xs.split_at(333);
        let (mut ma, mut mb) = (Moments::default(), Moments::default());
        a.iter().for_each(|&x| ma.add(x, 1.0));
        b.iter().for_each(|&x| mb.add(x, 1.0));
        ma.merge(&mb);
        assert!((ma.variance().unwrap() - var).abs() / var < 1e-6);
    }

    #[test]
    fn weighted_moments_equal_repeated_values() {
        let mut w = Moments::default();
        let mut r = Moments::default();
        for (x, k) in [(1.0, 3u32), (5.0, 1), (2.5, 2)] {
            w.add(x, f64::from(k));
            for _ in 0..k {
                r.add(x, 1.0);
            }
        }
        assert!((w.mean - r.mean).abs() < 1e-12);
        assert!((w.m2 - r.m2).abs() < 1e-9);
    }

    #[test]
    fn distinct_count_round_trips_and_merges() {
        let mut a = DistinctCount::new();
        let mut b = DistinctCount::new();
        for i in 0..50_000u64 {
            a.insert(crate::sampling::mix64(i));
            b.insert(crate::sampling::mix64(i + 25_000));
        }
        let back: DistinctCount = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        a.merge(&b);
        assert!((a.estimate() / 75_000.0 - 1.0).abs() < 0.03, "{}", a.estimate());
        let bad: Result<DistinctCount, _> = serde_json::from_str(r#"{"hll":[3,[1,2,3]]}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn empty_sketches_round_trip_through_json() {
        let t = TDigestSketch::new(100);
        let back: TDigestSketch = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let d = DdSketch::new(DdSketchConfig::default());
        let back: DdSketch = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back.count(), 0);
    }
}
