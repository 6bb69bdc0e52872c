//! Rollup math: from raw samples (or finer rollups) to rollup points at a resolution `R`.
//!
//! # Buckets
//!
//! A rollup point at timestamp `k·R` (a multiple of `R`, ms since the Unix epoch) summarises
//! the samples with timestamps in the left-open bucket `(k·R − R, k·R]`, the same shape as a
//! PromQL range window `(t − range, t]`. So a range window ending on a multiple of `R` whose
//! length is a multiple of `R` covers exactly the rollup points of the buckets it covers, and
//! `min_over_time`, `max_over_time` and `sum_over_time` over such a window read from rollups
//! equal the raw result (sum: up to the order of floating-point additions, see below).
//!
//! # Aggregates
//!
//! Per bucket, over the samples that are not stale markers
//! ([`is_stale_nan`]; stale markers are no samples and are skipped everywhere):
//! - **count**: number of samples (NaN values included), as `f64`;
//! - **sum**: their sum in time order (a NaN or ±Inf value propagates, as in `sum_over_time`);
//! - **min** / **max**: smallest / largest value, ignoring NaN unless every value is NaN
//!   (the rule of Prometheus's `min_over_time`/`max_over_time`);
//! - **counter**: the counter increase *into and within* the bucket, with resets removed: the
//!   sum of the steps between consecutive non-NaN samples whose later sample is in the bucket,
//!   a step `prev → v` adding `v − prev`, or `v` when `v < prev` (a counter reset, PromQL's
//!   rule). The first step of a bucket starts from the previous bucket's last sample (or from
//!   `prev_counter` given by the caller for the first bucket; without it the series' first
//!   sample adds nothing, as PromQL's `increase` starts from its first sample). NaN values take
//!   no part in counter steps.
//!
//! Hence for bucket boundaries `b1 < b2` (multiples of `R`), the sum of the counter aggregate
//! over the points in `(b1, b2]` is the reset-adjusted increase of the counter from its last
//! sample at or before `b1` to its last sample at or before `b2`: the raw computation at bucket
//! boundaries. Unlike Thanos (`pkg/compact/downsample`, whose `AggrCounter` holds a running
//! total and extra raw first/last samples per chunk so that a reader can stitch chunks), every
//! point here stands alone, so rollup blocks need no stitching and a coarser rollup's counter
//! is the sum of the finer ones.
//!
//! # Sketches
//!
//! Optionally ([`BucketSketches`]), a bucket also keeps a DDSketch (telemetry-agg's
//! `CompactDdSketch`) of its finite values, for quantiles within a relative accuracy `alpha`.
//! DDSketch bins depend only on the value, so a coarse bucket's sketch, the merge of its fine
//! buckets' sketches, equals the sketch of its raw values bin for bin.
//!
//! # Coarser from finer
//!
//! [`Rollups::coarsen`] builds resolution `R2` from resolution `R1` when `R1` divides `R2`:
//! count and sum add up, min/max take the extreme (same NaN rule), counter adds up. A
//! 1-hour bucket `(k·H − H, k·H]` is exactly the union of the 1-minute buckets ending in it, so
//! count, min and max are equal to the ones built from raw bit for bit, and sum and counter are
//! equal whenever the additions are exact (integer-valued data below 2^53, or any data whose
//! partial sums are representable); otherwise they differ by the rounding of a differently
//! ordered sum (relative error below `n·ε` for `n` samples).

use telemetry_agg::CompactDdSketch;
use telemetry_core::is_stale_nan;
use thiserror::Error;

/// Errors of the rollup math: bad input named with its position.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RollupError {
    /// The resolution must be positive.
    #[error("rollup resolution must be positive, got {resolution_ms} ms")]
    InvalidResolution {
        /// The resolution given.
        resolution_ms: i64,
    },
    /// A coarser resolution must be a multiple of the finer one.
    #[error("resolution {to_ms} ms is not a multiple of the source resolution {from_ms} ms")]
    NotMultiple {
        /// Source resolution.
        from_ms: i64,
        /// Target resolution.
        to_ms: i64,
    },
    /// Timestamps and values differ in length.
    #[error("{timestamps} timestamps but {values} values")]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// Timestamps must be strictly increasing.
    #[error("timestamp {timestamp} at index {index} does not follow {previous}")]
    NotIncreasing {
        /// Index of the offending sample.
        index: usize,
        /// Its timestamp.
        timestamp: i64,
        /// The timestamp before it.
        previous: i64,
    },
    /// The bucket end of a timestamp does not fit in an `i64`.
    #[error("timestamp {timestamp} has no bucket end at resolution {resolution_ms} ms within i64")]
    Overflow {
        /// The timestamp.
        timestamp: i64,
        /// The resolution.
        resolution_ms: i64,
    },
    /// A sketch parameter or merge was refused (named).
    #[error("quantile sketch: {0}")]
    Sketch(String),
}

/// The end of the bucket holding `t` at resolution `r` (> 0): the smallest multiple of `r`
/// that is `>= t`. `None` when it overflows `i64`.
#[inline]
pub fn bucket_end(t: i64, r: i64) -> Option<i64> {
    let rem = t.rem_euclid(r);
    if rem == 0 { Some(t) } else { t.checked_add(r - rem) }
}

/// Rollup points of one series at one resolution, column by column (the shape a rollup
/// block stores: one stream per aggregate, all sharing the timestamps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollups {
    /// Resolution in ms.
    pub resolution_ms: i64,
    /// Bucket ends (multiples of `resolution_ms`), strictly increasing.
    pub timestamps: Vec<i64>,
    /// Samples per bucket.
    pub count: Vec<f64>,
    /// Sum of the values.
    pub sum: Vec<f64>,
    /// Smallest value (NaN only when every value is NaN).
    pub min: Vec<f64>,
    /// Largest value (NaN only when every value is NaN).
    pub max: Vec<f64>,
    /// Counter increase into and within the bucket, resets removed.
    pub counter: Vec<f64>,
}

/// One bucket being accumulated.
#[derive(Debug, Clone, Copy)]
struct Acc {
    end: i64,
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
}

impl Acc {
    fn new(end: i64) -> Self {
        Acc { end, count: 0.0, sum: 0.0, min: f64::NAN, max: f64::NAN, counter: 0.0 }
    }
}

/// `min_over_time`'s rule: NaN only when every value is NaN.
#[inline]
fn nan_min(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

/// `max_over_time`'s rule: NaN only when every value is NaN.
#[inline]
fn nan_max(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

/// One reset-adjusted counter step from `prev` to `v` (PromQL's rule).
#[inline]
pub fn counter_step(prev: f64, v: f64) -> f64 {
    if v < prev { v } else { v - prev }
}

/// The accumulator of the bucket ending at `end`: the open one when it is that bucket, else a
/// new one, after the open one (if any) is pushed to `out`.
fn bucket<'a>(acc: &'a mut Option<Acc>, end: i64, out: &mut Rollups) -> &'a mut Acc {
    if acc.as_ref().is_some_and(|a| a.end != end)
        && let Some(done) = acc.take()
    {
        out.push(&done);
    }
    acc.get_or_insert_with(|| Acc::new(end))
}

impl Rollups {
    /// Empty rollups at `resolution_ms`.
    pub fn new(resolution_ms: i64) -> Self {
        Rollups { resolution_ms, ..Default::default() }
    }

    /// Number of rollup points.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// `true` when there is no point.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    fn push(&mut self, a: &Acc) {
        self.timestamps.push(a.end);
        self.count.push(a.count);
        self.sum.push(a.sum);
        self.min.push(a.min);
        self.max.push(a.max);
        self.counter.push(a.counter);
    }

    /// Builds rollups at `resolution_ms` from raw samples (`timestamps` strictly increasing,
    /// ms). `prev_counter` is the series' last non-NaN, non-stale value before the first
    /// sample, when the caller knows it (the first counter step starts from it).
    ///
    /// # Errors
    /// [`RollupError`] for a non-positive resolution, slices of different lengths,
    /// timestamps not strictly increasing, or a bucket end beyond `i64`.
    pub fn from_raw(
        timestamps: &[i64],
        values: &[f64],
        resolution_ms: i64,
        prev_counter: Option<f64>,
    ) -> Result<Rollups, RollupError> {
        check_resolution(resolution_ms)?;
        check_series(timestamps, values)?;
        let mut out = Rollups::new(resolution_ms);
        let mut last = prev_counter.filter(|v| !v.is_nan());
        let mut acc: Option<Acc> = None;
        for (&t, &v) in timestamps.iter().zip(values) {
            if is_stale_nan(v) {
                continue;
            }
            let end = bucket_end(t, resolution_ms).ok_or(RollupError::Overflow { timestamp: t, resolution_ms })?;
            let a = bucket(&mut acc, end, &mut out);
            a.count += 1.0;
            a.sum += v;
            a.min = nan_min(a.min, v);
            a.max = nan_max(a.max, v);
            if !v.is_nan() {
                if let Some(p) = last {
                    a.counter += counter_step(p, v);
                }
                last = Some(v);
            }
        }
        if let Some(done) = acc {
            out.push(&done);
        }
        Ok(out)
    }

    /// Builds rollups at `resolution_ms` from these (finer) ones. `resolution_ms` must be a
    /// multiple of `self.resolution_ms`.
    ///
    /// # Errors
    /// [`RollupError::NotMultiple`], [`RollupError::InvalidResolution`], or the series checks
    /// of [`from_raw`](Self::from_raw) on `self`'s columns.
    pub fn coarsen(&self, resolution_ms: i64) -> Result<Rollups, RollupError> {
        check_resolution(resolution_ms)?;
        check_resolution(self.resolution_ms)?;
        if resolution_ms % self.resolution_ms != 0 {
            return Err(RollupError::NotMultiple { from_ms: self.resolution_ms, to_ms: resolution_ms });
        }
        let n = self.timestamps.len();
        for len in [self.count.len(), self.sum.len(), self.min.len(), self.max.len(), self.counter.len()] {
            if len != n {
                return Err(RollupError::LengthMismatch { timestamps: n, values: len });
            }
        }
        check_increasing(&self.timestamps)?;
        let mut out = Rollups::new(resolution_ms);
        let mut acc: Option<Acc> = None;
        for i in 0..n {
            let t = self.timestamps[i];
            let end = bucket_end(t, resolution_ms).ok_or(RollupError::Overflow { timestamp: t, resolution_ms })?;
            let a = bucket(&mut acc, end, &mut out);
            a.count += self.count[i];
            a.sum += self.sum[i];
            a.min = nan_min(a.min, self.min[i]);
            a.max = nan_max(a.max, self.max[i]);
            a.counter += self.counter[i];
        }
        if let Some(done) = acc {
            out.push(&done);
        }
        Ok(out)
    }

    /// Keeps only the points with `mint <= timestamp < maxt`.
    pub fn retain_range(&mut self, mint: i64, maxt: i64) {
        let lo = self.timestamps.partition_point(|&t| t < mint);
        let hi = self.timestamps.partition_point(|&t| t < maxt);
        for col in [&mut self.count, &mut self.sum, &mut self.min, &mut self.max, &mut self.counter] {
            col.truncate(hi);
            col.drain(..lo);
        }
        self.timestamps.truncate(hi);
        self.timestamps.drain(..lo);
    }
}

/// Quantile sketches per bucket: bucket ends (strictly increasing) and one sketch each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketSketches {
    /// Bucket ends (multiples of the resolution).
    pub timestamps: Vec<i64>,
    /// The sketch of each bucket.
    pub sketches: Vec<CompactDdSketch>,
}

impl BucketSketches {
    /// Sketches (relative accuracy `alpha`) of raw samples per bucket at `resolution_ms`: one
    /// for every bucket [`Rollups::from_raw`] makes a point for (same timestamps), holding
    /// its finite values (stale markers are no samples; NaN and ±Inf count in the rollup's
    /// count but not in the sketch).
    ///
    /// # Errors
    /// As [`Rollups::from_raw`]; [`RollupError::Sketch`] for an invalid `alpha`.
    pub fn from_raw(
        timestamps: &[i64],
        values: &[f64],
        resolution_ms: i64,
        alpha: f64,
    ) -> Result<BucketSketches, RollupError> {
        check_resolution(resolution_ms)?;
        check_series(timestamps, values)?;
        let empty = CompactDdSketch::new(alpha).map_err(|e| RollupError::Sketch(e.to_string()))?;
        let mut out = BucketSketches::default();
        for (&t, &v) in timestamps.iter().zip(values) {
            if is_stale_nan(v) {
                continue;
            }
            let end = bucket_end(t, resolution_ms).ok_or(RollupError::Overflow { timestamp: t, resolution_ms })?;
            if out.timestamps.last() != Some(&end) {
                out.timestamps.push(end);
                out.sketches.push(empty.clone());
            }
            if let Some(s) = out.sketches.last_mut() {
                s.add(v);
            }
        }
        Ok(out)
    }

    /// Sketches at `to_ms` from these at `from_ms` (a divisor of `to_ms`), given `points`, the
    /// bucket ends of every finer rollup point (strictly increasing; these sketches may cover
    /// only some of them). A coarse bucket gets a sketch, the merge of its finer ones, only
    /// when every finer point in it has one (otherwise its quantiles would miss values).
    /// Sketches with an alpha other than `alpha` count as missing.
    ///
    /// # Errors
    /// [`RollupError::NotMultiple`] / [`RollupError::InvalidResolution`];
    /// [`RollupError::NotIncreasing`] for unordered points or sketch timestamps;
    /// [`RollupError::LengthMismatch`] when the sketches and their timestamps differ in
    /// length; [`RollupError::Sketch`] when a merge overflows.
    pub fn coarsen(&self, points: &[i64], from_ms: i64, to_ms: i64, alpha: f64) -> Result<BucketSketches, RollupError> {
        check_resolution(from_ms)?;
        check_resolution(to_ms)?;
        if to_ms % from_ms != 0 {
            return Err(RollupError::NotMultiple { from_ms, to_ms });
        }
        if self.timestamps.len() != self.sketches.len() {
            return Err(RollupError::LengthMismatch { timestamps: self.timestamps.len(), values: self.sketches.len() });
        }
        check_increasing(points)?;
        check_increasing(&self.timestamps)?;
        let mut out = BucketSketches::default();
        let mut next = 0; // index into self
        let mut i = 0;
        while i < points.len() {
            let end = bucket_end(points[i], to_ms)
                .ok_or(RollupError::Overflow { timestamp: points[i], resolution_ms: to_ms })?;
            let mut merged: Option<CompactDdSketch> = None;
            let mut complete = true;
            while i < points.len() && points[i] <= end {
                let p = points[i];
                while next < self.timestamps.len() && self.timestamps[next] < p {
                    next += 1;
                }
                match self.sketches.get(next).filter(|s| self.timestamps[next] == p && s.alpha() == alpha) {
                    Some(s) if complete => match &mut merged {
                        Some(m) => m.merge(s).map_err(|e| RollupError::Sketch(e.to_string()))?,
                        None => merged = Some(s.clone()),
                    },
                    Some(_) => {}
                    None => complete = false,
                }
                i += 1;
            }
            if let (true, Some(m)) = (complete, merged) {
                out.timestamps.push(end);
                out.sketches.push(m);
            }
        }
        Ok(out)
    }

    /// Keeps only the sketches with `mint <= timestamp < maxt`.
    pub fn retain_range(&mut self, mint: i64, maxt: i64) {
        let lo = self.timestamps.partition_point(|&t| t < mint);
        let hi = self.timestamps.partition_point(|&t| t < maxt);
        self.sketches.truncate(hi);
        self.sketches.drain(..lo);
        self.timestamps.truncate(hi);
        self.timestamps.drain(..lo);
    }
}

fn check_resolution(resolution_ms: i64) -> Result<(), RollupError> {
    if resolution_ms <= 0 { Err(RollupError::InvalidResolution { resolution_ms }) } else { Ok(()) }
}

fn check_series(timestamps: &[i64], values: &[f64]) -> Result<(), RollupError> {
    if timestamps.len() != values.len() {
        return Err(RollupError::LengthMismatch { timestamps: timestamps.len(), values: values.len() });
    }
    check_increasing(timestamps)
}

fn check_increasing(timestamps: &[i64]) -> Result<(), RollupError> {
    for (i, w) in timestamps.windows(2).enumerate() {
        if w[1] <= w[0] {
            return Err(RollupError::NotIncreasing { index: i + 1, timestamp: w[1], previous: w[0] });
        }
    }
    Ok(())
}

/// The reset-adjusted increase of a counter over raw samples, computed directly: the sum of
/// the steps between consecutive non-NaN, non-stale samples (starting from `prev` when
/// given). The reference the rollup counter is checked against.
pub fn counter_increase(values: &[f64], prev: Option<f64>) -> f64 {
    let mut last = prev.filter(|v| !v.is_nan());
    let mut inc = 0.0;
    for &v in values {
        if v.is_nan() {
            continue; // stale markers are NaN too
        }
        if let Some(p) = last {
            inc += counter_step(p, v);
        }
        last = Some(v);
    }
    inc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use telemetry_core::STALE_NAN;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;

    #[test]
    fn sketches_follow_the_rollup_buckets_and_merge_only_complete_buckets() {
        let ts = [1, M, M + 1, 2 * M, 3 * M + 5, 3 * M + 6, H + 1];
        let vs = [1.0, 2.0, STALE_NAN, f64::NAN, 4.0, -5.0, 7.0];
        let r = Rollups::from_raw(&ts, &vs, M, None).unwrap();
        let sk = BucketSketches::from_raw(&ts, &vs, M, 0.01).unwrap();
        assert_eq!(sk.timestamps, r.timestamps);
        let counts: Vec<u64> = sk.sketches.iter().map(|s| s.count()).collect();
        // The NaN bucket has an empty sketch; stale markers are no samples.
        assert_eq!(counts, vec![2, 0, 2, 1]);
        let (lo, hi) = (sk.sketches[2].quantile(0.0).unwrap(), sk.sketches[2].quantile(1.0).unwrap());
        assert!((lo + 5.0).abs() <= 0.05 && (hi - 4.0).abs() <= 0.04, "{lo} {hi}");
        // Coarsening equals sketching the raw values at the coarse resolution...
        let hour = sk.coarsen(&r.timestamps, M, H, 0.01).unwrap();
        assert_eq!(hour, BucketSketches::from_raw(&ts, &vs, H, 0.01).unwrap());
        // ...but a coarse bucket with a finer point lacking its sketch gets none.
        let mut partial = sk.clone();
        partial.timestamps.remove(1);
        partial.sketches.remove(1);
        let hour = partial.coarsen(&r.timestamps, M, H, 0.01).unwrap();
        assert_eq!(hour.timestamps, vec![2 * H]);
        // Sketches of another alpha count as missing.
        assert!(sk.coarsen(&r.timestamps, M, H, 0.02).unwrap().timestamps.is_empty());
        assert!(matches!(BucketSketches::from_raw(&ts, &vs, M, 1.5), Err(RollupError::Sketch(_))));
        assert!(matches!(sk.coarsen(&r.timestamps, M, 90_000, 0.01), Err(RollupError::NotMultiple { .. })));
    }

    /// PromQL's reset rule written out again, independent of the code under test.
    fn increase(values: &[f64], prev: Option<f64>) -> f64 {
        let vals: Vec<f64> = prev.into_iter().chain(values.iter().copied()).filter(|v| !v.is_nan()).collect();
        let mut inc = 0.0;
        for w in vals.windows(2) {
            inc += if w[1] >= w[0] { w[1] - w[0] } else { w[1] };
        }
        inc
    }

    fn same(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b
    }

    /// Direct computation of one bucket from raw samples, independent of the streaming code.
    fn direct(ts: &[i64], vs: &[f64], lo: i64, hi: i64, prev: Option<f64>) -> Option<[f64; 5]> {
        let inb: Vec<f64> =
            ts.iter().zip(vs).filter(|(t, v)| **t > lo && **t <= hi && !is_stale_nan(**v)).map(|(_, v)| *v).collect();
        if inb.is_empty() {
            return None;
        }
        let count = inb.len() as f64;
        let sum: f64 = inb.iter().sum();
        let non_nan: Vec<f64> = inb.iter().copied().filter(|v| !v.is_nan()).collect();
        let min = non_nan.iter().copied().fold(f64::INFINITY, f64::min);
        let max = non_nan.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (min, max) = if non_nan.is_empty() { (f64::NAN, f64::NAN) } else { (min, max) };
        // last sample at or before lo (or prev)
        let before: Vec<f64> = ts.iter().zip(vs).filter(|(t, v)| **t <= lo && !v.is_nan()).map(|(_, v)| *v).collect();
        let start = before.last().copied().or(prev);
        let counter = increase(&inb, start);
        Some([count, sum, min, max, counter])
    }

    fn series() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
        let value = prop_oneof![
            20 => (0i64..1000).prop_map(|v| v as f64),
            2 => Just(f64::NAN),
            2 => Just(STALE_NAN),
            1 => -1e6f64..1e6,
        ];
        (-3 * H..3 * H, proptest::collection::vec((1i64..120_000, value), 0..400)).prop_map(|(start, steps)| {
            let mut t = start;
            let mut ts = Vec::new();
            let mut vs = Vec::new();
            for (d, v) in steps {
                t += d;
                ts.push(t);
                vs.push(v);
            }
            (ts, vs)
        })
    }

    /// Counter-like integer data: increasing with occasional resets.
    fn counter_series() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
        (0i64..2 * H, proptest::collection::vec((1i64..90_000, 0u32..50, prop::bool::weighted(0.03)), 0..600)).prop_map(
            |(start, steps)| {
                let mut t = start;
                let mut v = 0.0;
                let mut ts = Vec::new();
                let mut vs = Vec::new();
                for (d, inc, reset) in steps {
                    t += d;
                    v = if reset { f64::from(inc) } else { v + f64::from(inc) };
                    ts.push(t);
                    vs.push(v);
                }
                (ts, vs)
            },
        )
    }

    fn check_against_direct(ts: &[i64], vs: &[f64], r: i64, prev: Option<f64>, exact: bool) {
        let roll = Rollups::from_raw(ts, vs, r, prev).unwrap();
        let mut expected = Vec::new();
        if let (Some(&first), Some(&last)) = (ts.first(), ts.last()) {
            let mut end = bucket_end(first, r).unwrap();
            while end - r < last {
                if let Some(agg) = direct(ts, vs, end - r, end, prev) {
                    expected.push((end, agg));
                }
                end += r;
            }
        }
        assert_eq!(roll.timestamps, expected.iter().map(|e| e.0).collect::<Vec<_>>());
        for (i, (_, e)) in expected.iter().enumerate() {
            let got = [roll.count[i], roll.sum[i], roll.min[i], roll.max[i], roll.counter[i]];
            for k in 0..5 {
                let ok = if exact || k == 0 || k == 2 || k == 3 {
                    same(got[k], e[k])
                } else {
                    same(got[k], e[k]) || (got[k] - e[k]).abs() <= 1e-9 * e[k].abs().max(1.0)
                };
                assert!(ok, "bucket {i} aggregate {k}: got {} expected {}", got[k], e[k]);
            }
        }
    }

    proptest! {
        #[test]
        fn from_raw_matches_direct((ts, vs) in series(), prev in prop::option::of(0u32..100)) {
            check_against_direct(&ts, &vs, M, prev.map(f64::from), false);
            check_against_direct(&ts, &vs, 7 * 1000, None, false);
        }

        #[test]
        fn counter_buckets_sum_to_raw_increase((ts, vs) in counter_series(), b1 in 0i64..4, len in 1i64..6) {
            let roll = Rollups::from_raw(&ts, &vs, M, None).unwrap();
            // boundaries b1 < b2 in multiples of 10 minutes
            let lo = b1 * 10 * M;
            let hi = lo + len * 10 * M;
            let from_rollups: f64 = roll.timestamps.iter().zip(&roll.counter)
                .filter(|(t, _)| **t > lo && **t <= hi).map(|(_, c)| *c).sum();
            let start = ts.iter().zip(&vs).filter(|(t, _)| **t <= lo).map(|(_, v)| *v).next_back();
            let window: Vec<f64> = ts.iter().zip(&vs).filter(|(t, _)| **t > lo && **t <= hi).map(|(_, v)| *v).collect();
            prop_assert_eq!(from_rollups, increase(&window, start));
            prop_assert_eq!(counter_increase(&window, start), increase(&window, start));
        }

        #[test]
        fn hour_sketches_from_minutes_equal_hour_sketches_from_raw((ts, vs) in series()) {
            let minutes = Rollups::from_raw(&ts, &vs, M, None).unwrap();
            let sk = BucketSketches::from_raw(&ts, &vs, M, 0.01).unwrap();
            prop_assert_eq!(&sk.timestamps, &minutes.timestamps);
            let via_m = sk.coarsen(&minutes.timestamps, M, H, 0.01).unwrap();
            prop_assert_eq!(via_m, BucketSketches::from_raw(&ts, &vs, H, 0.01).unwrap());
        }

        #[test]
        fn hour_from_minutes_equals_hour_from_raw((ts, vs) in series()) {
            let direct_h = Rollups::from_raw(&ts, &vs, H, None).unwrap();
            let via_m = Rollups::from_raw(&ts, &vs, M, None).unwrap().coarsen(H).unwrap();
            prop_assert_eq!(&direct_h.timestamps, &via_m.timestamps);
            for i in 0..direct_h.len() {
                prop_assert!(same(direct_h.count[i], via_m.count[i]));
                prop_assert!(same(direct_h.min[i], via_m.min[i]));
                prop_assert!(same(direct_h.max[i], via_m.max[i]));
                // integer-valued data: exact; the occasional real in the mix: rounding only
                let close = |a: f64, b: f64| same(a, b) || (a - b).abs() <= 1e-6 * a.abs().max(1.0);
                prop_assert!(close(direct_h.sum[i], via_m.sum[i]));
                prop_assert!(close(direct_h.counter[i], via_m.counter[i]));
            }
        }

        #[test]
        fn hour_from_minutes_exact_on_integer_counters((ts, vs) in counter_series()) {
            let direct_h = Rollups::from_raw(&ts, &vs, H, Some(3.0)).unwrap();
            let via_m = Rollups::from_raw(&ts, &vs, M, Some(3.0)).unwrap().coarsen(H).unwrap();
            prop_assert_eq!(direct_h, via_m);
        }

        #[test]
        fn split_series_with_prev_equals_whole((ts, vs) in counter_series(), cut in 0usize..600) {
            // Building two halves separately (as two rollup ranges) with the first half's last
            // value as `prev_counter` gives the same points as building the whole.
            let whole = Rollups::from_raw(&ts, &vs, M, None).unwrap();
            let boundary = ts.get(cut.min(ts.len().saturating_sub(1))).map(|t| bucket_end(*t, M).unwrap()).unwrap_or(0);
            let k = ts.partition_point(|&t| t <= boundary);
            let a = Rollups::from_raw(&ts[..k], &vs[..k], M, None).unwrap();
            let b = Rollups::from_raw(&ts[k..], &vs[k..], M, vs[..k].last().copied()).unwrap();
            let mut joined = a.clone();
            for col in 0..b.len() {
                joined.timestamps.push(b.timestamps[col]);
                joined.count.push(b.count[col]);
                joined.sum.push(b.sum[col]);
                joined.min.push(b.min[col]);
                joined.max.push(b.max[col]);
                joined.counter.push(b.counter[col]);
            }
            prop_assert_eq!(whole, joined);
        }
    }

    #[test]
    fn bucket_ends() {
        assert_eq!(bucket_end(0, M), Some(0));
        assert_eq!(bucket_end(1, M), Some(M));
        assert_eq!(bucket_end(M, M), Some(M));
        assert_eq!(bucket_end(-1, M), Some(0));
        assert_eq!(bucket_end(-M - 1, M), Some(-M));
        assert_eq!(bucket_end(i64::MAX, M), None);
    }

    #[test]
    fn stale_markers_and_nan() {
        let ts = [10_000, 20_000, 30_000, 40_000, 70_000, 80_000];
        let vs = [5.0, f64::NAN, STALE_NAN, 3.0, STALE_NAN, STALE_NAN];
        let r = Rollups::from_raw(&ts, &vs, M, Some(4.0)).unwrap();
        // The second bucket holds only stale markers: no point.
        assert_eq!(r.timestamps, vec![M]);
        assert_eq!(r.count, vec![3.0]);
        assert!(r.sum[0].is_nan());
        assert_eq!((r.min[0], r.max[0]), (3.0, 5.0));
        // 4 -> 5 (+1), NaN skipped, 5 -> 3 is a reset (+3)
        assert_eq!(r.counter, vec![4.0]);
        let all_nan = Rollups::from_raw(&[1, 2], &[f64::NAN, f64::NAN], M, None).unwrap();
        assert!(all_nan.min[0].is_nan() && all_nan.max[0].is_nan());
        assert_eq!(all_nan.counter, vec![0.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(Rollups::from_raw(&[1], &[1.0], 0, None), Err(RollupError::InvalidResolution { resolution_ms: 0 }));
        assert_eq!(
            Rollups::from_raw(&[1, 2], &[1.0], M, None),
            Err(RollupError::LengthMismatch { timestamps: 2, values: 1 })
        );
        assert_eq!(
            Rollups::from_raw(&[5, 5], &[1.0, 2.0], M, None),
            Err(RollupError::NotIncreasing { index: 1, timestamp: 5, previous: 5 })
        );
        assert_eq!(
            Rollups::from_raw(&[i64::MAX], &[1.0], M, None),
            Err(RollupError::Overflow { timestamp: i64::MAX, resolution_ms: M })
        );
        let m = Rollups::from_raw(&[1], &[1.0], M, None).unwrap();
        assert_eq!(m.coarsen(90_000), Err(RollupError::NotMultiple { from_ms: M, to_ms: 90_000 }));
    }

    #[test]
    fn retain_range_keeps_half_open() {
        let ts: Vec<i64> = (0..10).map(|i| i * M + 1).collect();
        let vs: Vec<f64> = (0..10).map(f64::from).collect();
        let mut r = Rollups::from_raw(&ts, &vs, M, None).unwrap();
        r.retain_range(3 * M, 6 * M);
        assert_eq!(r.timestamps, vec![3 * M, 4 * M, 5 * M]);
        assert_eq!(r.sum, vec![2.0, 3.0, 4.0]);
    }
}
