//! Mergeable, serializable sketch wrappers: t-digest, DDSketch, HyperLogLog, and the
//! weighted moments accumulator.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use probabilistic_collections::SipHasherBuilder;
use probabilistic_collections::hyperloglog::HyperLogLog;
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

    /// Adds a finite value. Allocates only once per [`TDIGEST_BATCH`] values.
    #[inline]
    pub fn add(&mut self, v: f64) {
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

    /// Adds a finite value.
    #[inline]
    pub fn add(&mut self, v: f64) {
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

/// Fixed SipHash keys so that every HyperLogLog hashes alike and sketches built in different
/// processes merge.
const HLL_KEYS: (u64, u64) = (0x7465_6c65_6d65_7472, 0x792d_6167_672d_686c);

/// Error probability passed to `probabilistic-collections` so that it picks `2^precision`
/// registers: that crate computes `p = ceil(ln((1.04 / e)²))`.
fn hll_error_for_precision(precision: u8) -> f64 {
    1.04 / ((f64::from(precision) - 0.5) / 2.0).exp()
}

/// A HyperLogLog distinct counter (Flajolet et al., 2007) from `probabilistic-collections`,
/// over 64-bit item hashes, with `2^precision` one-byte registers (standard error
/// `1.04 / sqrt(2^precision)`: 0.81 % at the default precision 14).
#[derive(Serialize, Deserialize)]
pub struct DistinctCount {
    precision: u8,
    hll: HyperLogLog<u64>,
}

impl fmt::Debug for DistinctCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctCount").field("precision", &self.precision).field("estimate", &self.estimate()).finish()
    }
}

impl Clone for DistinctCount {
    fn clone(&self) -> Self {
        // `HyperLogLog` is not `Clone`: merging into an empty counter copies the registers.
        let mut c = DistinctCount::new(self.precision);
        if c.merge_registers(&self.hll).is_err() {
            // Only a corrupt deserialized counter can fail here; its clone is empty.
            return DistinctCount::new(self.precision);
        }
        c
    }
}

impl DistinctCount {
    /// An empty counter with `2^precision` registers; `precision` must be in `4..=16`
    /// (checked by [`AggregateSet::validate`](crate::AggregateSet::validate)).
    pub fn new(precision: u8) -> Self {
        let p = precision.clamp(4, 16);
        let hll =
            HyperLogLog::with_hasher(hll_error_for_precision(p), SipHasherBuilder::from_seed(HLL_KEYS.0, HLL_KEYS.1));
        DistinctCount { precision: p, hll }
    }

    /// The precision (log2 of the register count).
    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Adds an item by its 64-bit hash.
    #[inline]
    pub fn insert(&mut self, item_hash: u64) {
        self.hll.insert(&item_hash);
    }

    /// The estimated number of distinct items.
    pub fn estimate(&self) -> f64 {
        self.hll.len()
    }

    /// Merges another counter (register-wise maximum: exact union, order-independent).
    ///
    /// # Errors
    /// [`MergeError::Parameters`] when the precisions or hash keys differ, or a deserialized
    /// counter is internally inconsistent.
    pub fn merge(&mut self, o: &DistinctCount) -> Result<(), MergeError> {
        if self.precision != o.precision || self.hll.hasher() != o.hll.hasher() {
            return Err(MergeError::Parameters("HyperLogLog"));
        }
        let mut copy = DistinctCount::new(self.precision);
        copy.merge_registers(&self.hll)?;
        copy.merge_registers(&o.hll)?;
        *self = copy;
        Ok(())
    }

    fn merge_registers(&mut self, o: &HyperLogLog<u64>) -> Result<(), MergeError> {
        // The crate asserts on mismatched register counts, which only corrupt bytes produce;
        // callers merge into a fresh copy, so a failure leaves nothing half-merged.
        catch_unwind(AssertUnwindSafe(|| self.hll.merge(o))).map_err(|_| MergeError::Parameters("HyperLogLog"))
    }

    /// Heap bytes held by the registers.
    pub fn heap_bytes(&self) -> usize {
        1usize << self.precision
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
    fn hll_precision_maps_to_register_count() {
        for p in 4..=16u8 {
            let d = DistinctCount::new(p);
            let json = serde_json::to_value(&d).unwrap();
            assert_eq!(json["hll"]["registers"].as_array().unwrap().len(), 1usize << p, "precision {p}");
        }
    }

    #[test]
    fn corrupt_hll_merge_is_an_error_not_a_panic() {
        let a = DistinctCount::new(10);
        let mut json = serde_json::to_value(&a).unwrap();
        json["hll"]["registers"] = serde_json::json!([0, 1, 2]);
        let bad: DistinctCount = serde_json::from_value(json).unwrap();
        let mut a = a;
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = a.merge(&bad);
        std::panic::set_hook(prev);
        assert_eq!(r, Err(MergeError::Parameters("HyperLogLog")));
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
