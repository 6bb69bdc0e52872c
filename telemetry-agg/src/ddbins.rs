//! A DDSketch with explicit bins and a compact binary encoding, small enough to keep one per
//! rollup bucket.
//!
//! [`CompactDdSketch`] is the DDSketch of Masson, Rim & Lee ("DDSketch: A Fast and
//! Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", PVLDB 12(12), 2019) with
//! the logarithmic mapping and dense stores, using the paper's collapsing of the lowest buckets
//! only as a safety cap. Unlike [`DdSketch`](crate::DdSketch), which wraps the `sketches-ddsketch`
//! crate, its bins are plain data: a sketch of an hour of a gauge encodes in a few dozen bytes,
//! and merging is exact, so `merge(sketch(A), sketch(B)) == sketch(A ∪ B)` bin for bin.
//!
//! # Mapping
//!
//! With relative accuracy `alpha` in [`MIN_ALPHA`]`..1` and `gamma = (1 + alpha) / (1 - alpha)`:
//!
//! - a finite value `v >= MIN_INDEXABLE` goes to bin `i = ceil(ln(v) / ln(gamma))` of the
//!   positive store (computed as `ceil(ln(v) · m)` with `m = 1 / ln(gamma)` fixed per alpha,
//!   the same `f64` operations on every path, so a value's bin depends only on `(alpha, v)`);
//! - a finite value `v <= -MIN_INDEXABLE` goes to the negative store, at index `-i` where `i`
//!   is the bin of `|v|`: negating the index orders both stores by value, so both collapse
//!   their lowest (most negative) bins;
//! - a finite value with `|v| <` [`MIN_INDEXABLE`] (`1e-9`), including `±0`, counts in the zero
//!   bucket, whose representative value is `0` (absolute error below `1e-9`);
//! - `NaN` and `±Inf` are not recorded (the caller counts them elsewhere).
//!
//! The representative value of bin `i` is `2 · gamma^i / (gamma + 1)`, within relative error
//! `alpha` of every value in `(gamma^(i-1), gamma^i]` (the paper's bucket estimate).
//!
//! Bins are a pure function of `(alpha, v)` for one build of the program. The bin of a value
//! lying within an ulp or so of a bin boundary `gamma^i` can differ between platforms whose
//! `ln` rounds differently; this never affects the error bound.
//!
//! # Bin cap
//!
//! Each store is a dense run of at most [`MAX_BINS`] (4,096) bins. With `alpha = 0.01` the
//! range `1e-9..1e12` spans about 2,420 bins, so the cap is a safety net. If a value would
//! make a run longer, the lowest bins are folded into the lowest kept bin (the highest
//! `MAX_BINS` bins are kept) and the sketch is marked collapsed
//! ([`CompactDdSketch::is_collapsed`], kept through merge and encoding). Folding only moves
//! values up, preserving their order, so the relative-error bound still holds for every rank
//! whose exact order statistic lies in a kept bin; ranks in folded bins (the lowest positive
//! values, or the most negative values) are overestimated. Which bins are kept depends only on
//! the highest bin index reached, so merge stays exact with collapsing.
//!
//! # Byte layout
//!
//! The encoding ([`CompactDdSketch::encode`], [`CompactDdSketch::decode`]) does not carry
//! alpha: the reader must know it (a rollup block records it once).
//!
//! ```text
//! flags        u8        bit 0: collapsed; bits 1..=7 must be 0
//! zero_count   uvarint   values in the zero bucket
//! positive run:
//!   nbins      uvarint   0..=MAX_BINS
//!   offset     varint    zig-zag i32, index of the first bin       (only if nbins > 0)
//!   counts     uvarint × nbins, bins offset, offset+1, …           (only if nbins > 0)
//! negative run: same layout; indices are the negated bin indices of |v|
//! ```
//!
//! `uvarint` is unsigned LEB128 (7 bits per byte, least significant group first, high bit set
//! on every byte but the last; at most 10 bytes), as in protobuf and Go's `encoding/binary`;
//! `varint` is the zig-zag mapping `(n << 1) ^ (n >> 63)` followed by a `uvarint`. The first
//! and last count of a non-empty run are non-zero (zeros inside are allowed), so the encoder's
//! output is a function of the bins alone (the decoder also accepts over-long varints). Sketches can be concatenated: [`CompactDdSketch::decode`] returns
//! the number of bytes it consumed.
//!
//! To fold many encoded buckets into one window, keep one accumulator and call
//! [`CompactDdSketch::merge_encoded`] on each encoding (same result as decode then merge, no
//! temporary sketch; [`CompactDdSketch::clear`] readies the accumulator for the next window
//! without freeing its bins). [`CompactDdSketch::quantile_of_encoded`] reads a quantile straight
//! from an encoding.
//!
//! Sizes (alpha 0.01, unit test `encoded_sizes_of_rollup_buckets`): one hour of a gauge
//! sampled every 10 s (360 values spread over 40..=60) spans 21 bins and encodes in 27 bytes;
//! one minute (6 values) in 10 to 27 bytes (the run is dense: each empty bin between two
//! values costs a byte); an hour of 21,600 values over the same range in 48 bytes (the same 21
//! bins, but counts above 127 take two bytes).

use crate::error::{MergeError, SketchDecodeError, SketchError};

/// Values with a magnitude below this (`1e-9`) are counted in the zero bucket.
pub const MIN_INDEXABLE: f64 = 1e-9;

/// Most bins per sign; beyond it the lowest bins are folded together (see the module docs).
pub const MAX_BINS: usize = 4096;

/// Smallest accepted relative accuracy: below about `1.7e-7` the bin index of `f64::MAX`
/// would not fit an `i32`.
pub const MIN_ALPHA: f64 = 2e-7;

/// The logarithmic index mapping of one alpha (all fields derived from alpha).
#[derive(Debug, Clone, Copy)]
struct Mapping {
    /// `ln(gamma)`.
    ln_gamma: f64,
    /// `1 / ln(gamma)`: a value's bin is `ceil(ln(v) * multiplier)`.
    multiplier: f64,
    /// `ln((gamma + 1) / 2)`: the representative of bin `i` is `exp(i·ln_gamma − ln_half)`.
    ln_half: f64,
    /// Bin of `MIN_INDEXABLE`: the lowest positive-store index.
    min_index: i32,
    /// Bin of `f64::MAX`: the highest positive-store index.
    max_index: i32,
}

impl Mapping {
    fn new(alpha: f64) -> Result<Mapping, SketchError> {
        // NaN is in no range.
        if !(MIN_ALPHA..1.0).contains(&alpha) {
            return Err(SketchError::Alpha { got: alpha, min: MIN_ALPHA });
        }
        // gamma − 1 = 2α / (1 − α); ln_1p keeps precision for small alpha.
        let ln_gamma = (2.0 * alpha / (1.0 - alpha)).ln_1p();
        let multiplier = 1.0 / ln_gamma;
        // (gamma + 1) / 2 = 1 / (1 − α).
        let ln_half = -(-alpha).ln_1p();
        let lo = (MIN_INDEXABLE.ln() * multiplier).ceil();
        let hi = (f64::MAX.ln() * multiplier).ceil();
        if !(hi < f64::from(i32::MAX) && lo > -f64::from(i32::MAX)) {
            return Err(SketchError::Alpha { got: alpha, min: MIN_ALPHA });
        }
        // ok: both bounds checked against the i32 range just above.
        Ok(Mapping { ln_gamma, multiplier, ln_half, min_index: lo as i32, max_index: hi as i32 })
    }

    /// Bin of a finite `v >= MIN_INDEXABLE`. The one place where indices are computed.
    #[inline]
    fn index(&self, v: f64) -> i32 {
        // In min_index..=max_index for v in MIN_INDEXABLE..=f64::MAX (checked in `new`).
        (v.ln() * self.multiplier).ceil() as i32
    }

    /// Representative value `2·gamma^i / (gamma + 1)` of positive bin `i`, capped at `f64::MAX`
    /// (the cap only moves the estimate of values near `f64::MAX` closer to them).
    #[inline]
    fn value(&self, i: i32) -> f64 {
        (f64::from(i) * self.ln_gamma - self.ln_half).exp().min(f64::MAX)
    }

    /// The representative value of the element of rank `rank` among the bins in ascending
    /// order: the negative run `(first index, counts)` (stored with negated indices, so its
    /// counts ascend in value), the zero bucket, then the positive run; the bin whose running
    /// count first passes `rank`. `None` when `rank` is not below the total.
    fn value_of_rank(
        &self,
        rank: u64,
        neg: (i32, impl Iterator<Item = u64>),
        zero_count: u64,
        pos: (i32, impl Iterator<Item = u64>),
    ) -> Option<f64> {
        let mut seen = 0u64;
        for (k, c) in neg.1.enumerate() {
            seen += c;
            if seen > rank {
                // ok: first + k is a valid negative-store index (at least −max_index).
                return Some(-self.value(-(neg.0 + k as i32)));
            }
        }
        seen += zero_count;
        if seen > rank {
            return Some(0.0);
        }
        for (k, c) in pos.1.enumerate() {
            seen += c;
            if seen > rank {
                return Some(self.value(pos.0 + k as i32));
            }
        }
        None
    }
}

/// A dense run of bins: `counts[k]` is the count of bin `offset + k`. Empty runs have
/// `offset == 0`; non-empty runs have non-zero first and last counts and at most `MAX_BINS`
/// bins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Run {
    offset: i32,
    counts: Vec<u64>,
}

impl Run {
    /// Index of the last bin (`offset − 1` when empty).
    fn last(&self) -> i64 {
        i64::from(self.offset) + self.counts.len() as i64 - 1
    }

    /// Adds `n > 0` values to bin `idx`; returns whether bins were folded.
    #[inline]
    fn add(&mut self, idx: i32, n: u64) -> bool {
        let rel = i64::from(idx) - i64::from(self.offset);
        if rel >= 0 && (rel as usize) < self.counts.len() {
            self.counts[rel as usize] += n;
            return false;
        }
        if self.counts.is_empty() {
            self.offset = idx;
            self.counts.push(n);
            return false;
        }
        let wanted_lo = i64::from(idx).min(i64::from(self.offset));
        let hi = i64::from(idx).max(self.last());
        let lo = wanted_lo.max(hi - MAX_BINS as i64 + 1);
        self.rebase(lo, hi);
        let k = (i64::from(idx).max(lo) - lo) as usize;
        self.counts[k] += n;
        lo > wanted_lo
    }

    /// Re-lays a non-empty run over bins `lo..=hi` (`hi >= self.last()`, at most `MAX_BINS`
    /// bins), folding bins below `lo` into bin `lo`.
    fn rebase(&mut self, lo: i64, hi: i64) {
        let old_lo = i64::from(self.offset);
        let len = (hi - lo + 1) as usize;
        if lo <= old_lo {
            let pad = (old_lo - lo) as usize;
            if pad > 0 {
                self.counts.splice(0..0, std::iter::repeat_n(0, pad));
            }
        } else {
            let cut = (lo - old_lo) as usize;
            if cut >= self.counts.len() {
                let sum: u64 = self.counts.iter().sum();
                self.counts.clear();
                self.counts.push(sum);
            } else {
                let sum: u64 = self.counts[..=cut].iter().sum();
                self.counts.drain(..cut);
                self.counts[0] = sum;
            }
        }
        self.counts.resize(len, 0);
        // ok: lo lies between two valid i32 bin indices.
        self.offset = lo as i32;
    }

    /// Adds every bin of `o`; returns whether bins were folded.
    fn merge(&mut self, o: &Run) -> bool {
        self.add_counts(o.offset, o.counts.iter().copied())
    }

    /// Adds the counts of a validated run of `bytes` (see [`RunSpan`]), exactly as
    /// [`merge`](Self::merge) adds a decoded run; returns whether bins were folded. Reuses the
    /// run's capacity and allocates only when the run grows beyond it.
    fn merge_span(&mut self, bytes: &[u8], span: RunSpan) -> bool {
        if span.nbins == 0 {
            return false;
        }
        match span.single_bytes(bytes) {
            Some(one) => self.add_counts(span.first, one.iter().map(|&b| u64::from(b))),
            None => self.add_counts(span.first, Scanned::counts(bytes, span)),
        }
    }

    /// Adds `counts` to bins `first, first + 1, …` (a run of another sketch: its first and
    /// last counts are not zero), growing the run, and folding the bins below the kept range
    /// into its lowest bin, as [`add`](Self::add) does; returns whether bins were folded.
    fn add_counts(&mut self, first: i32, counts: impl ExactSizeIterator<Item = u64>) -> bool {
        let n = counts.len();
        if n == 0 {
            return false;
        }
        if self.counts.is_empty() {
            // Take the run as it is.
            self.offset = first;
            self.counts.extend(counts);
            return false;
        }
        let o_lo = i64::from(first);
        let wanted_lo = o_lo.min(i64::from(self.offset));
        let hi = (o_lo + n as i64 - 1).max(self.last());
        let lo = wanted_lo.max(hi - MAX_BINS as i64 + 1);
        if lo != i64::from(self.offset) || hi != self.last() {
            self.rebase(lo, hi);
        }
        if o_lo >= lo {
            // No bin of the added run is folded: add them side by side. The run now spans
            // lo..=hi, which holds o_lo..o_lo + n.
            let start = (o_lo - lo) as usize;
            // ok: the run spans lo..=hi after the rebase, and o_lo..o_lo + n lies inside.
            for (c, add) in self.counts[start..start + n].iter_mut().zip(counts) {
                *c += add;
            }
        } else {
            for (k, add) in counts.enumerate() {
                let idx = (o_lo + k as i64).max(lo);
                // ok: idx is in lo..=hi, the run's span after the rebase.
                self.counts[(idx - lo) as usize] += add;
            }
        }
        lo > wanted_lo
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.counts.len() as u64);
        if !self.counts.is_empty() {
            put_uvarint(out, zigzag(i64::from(self.offset)));
            for &c in &self.counts {
                put_uvarint(out, c);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        let mut n = uvarint_len(self.counts.len() as u64);
        if !self.counts.is_empty() {
            n += uvarint_len(zigzag(i64::from(self.offset)));
            n += self.counts.iter().map(|&c| uvarint_len(c)).sum::<usize>();
        }
        n
    }

    /// Decodes a run whose indices must lie in `min..=max`, adding its counts to `total`: the
    /// checks of [`RunSpan::scan`], then the counts it located.
    fn decode(
        r: &mut Reader<'_>,
        store: &'static str,
        min: i64,
        max: i64,
        total: &mut u64,
    ) -> Result<Run, SketchDecodeError> {
        let span = RunSpan::scan(r, store, min, max, total)?;
        if span.nbins == 0 {
            return Ok(Run::default());
        }
        Ok(Run { offset: span.first, counts: Scanned::counts(r.bytes, span).collect() })
    }
}

/// Where the counts of one validated run lie in the input: `nbins` uvarints in bytes
/// `at..end`, for bins `first, first + 1, …` (`nbins == 0` for an empty run).
#[derive(Debug, Clone, Copy, Default)]
struct RunSpan {
    first: i32,
    nbins: usize,
    at: usize,
    end: usize,
}

impl RunSpan {
    /// The counts' bytes when every count takes one byte (each byte is then a count), the
    /// usual case for rollup buckets.
    #[inline]
    fn single_bytes<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        if self.end - self.at == self.nbins { bytes.get(self.at..self.end) } else { None }
    }

    /// Validates a run (bin count, index range, counts, no zero count at either end), adding
    /// its counts to `total`, and returns where its counts lie, without storing them.
    #[inline]
    fn scan(
        r: &mut Reader<'_>,
        store: &'static str,
        min: i64,
        max: i64,
        total: &mut u64,
    ) -> Result<RunSpan, SketchDecodeError> {
        let at = r.pos;
        let nbins = r.uvarint("bin count")?;
        if nbins > MAX_BINS as u64 {
            return Err(SketchDecodeError::TooManyBins { offset: at, store, nbins, max: MAX_BINS });
        }
        if nbins == 0 {
            return Ok(RunSpan::default());
        }
        let at = r.pos;
        let first = unzigzag(r.uvarint("first bin index")?);
        let last = first.saturating_add(nbins as i64 - 1);
        if first < min || last > max {
            return Err(SketchDecodeError::IndexRange { offset: at, store, first, last, min, max });
        }
        let counts_at = r.pos;
        let n = nbins as usize;
        // Fast path, same outcome as the loop below: every count takes one byte and the total
        // does not overflow, so the only possible error is a zero at an edge.
        if let Some(one) = r.bytes.get(counts_at..counts_at + n)
            && let (high, sum) = one.iter().fold((0u8, 0u64), |(h, s), &b| (h | b, s + u64::from(b)))
            && high < 0x80
            && let Some(t) = total.checked_add(sum)
        {
            // ok: one has n >= 1 bytes (nbins > 0 here).
            if one[n - 1] == 0 {
                return Err(SketchDecodeError::ZeroEdge { offset: counts_at + n - 1, store });
            }
            if one[0] == 0 {
                return Err(SketchDecodeError::ZeroEdge { offset: counts_at, store });
            }
            *total = t;
            r.pos = counts_at + n;
            // ok: first lies in min..=max, both i32 bin indices; nbins <= MAX_BINS.
            return Ok(RunSpan { first: first as i32, nbins: n, at: counts_at, end: r.pos });
        }
        let mut first_is_zero = false;
        for k in 0..nbins {
            let at = r.pos;
            let c = r.uvarint("bin count value")?;
            *total = total.checked_add(c).ok_or(SketchDecodeError::CountOverflow { offset: at })?;
            if c == 0 {
                if k + 1 == nbins {
                    return Err(SketchDecodeError::ZeroEdge { offset: at, store });
                }
                first_is_zero |= k == 0;
            }
        }
        if first_is_zero {
            return Err(SketchDecodeError::ZeroEdge { offset: counts_at, store });
        }
        // ok: first lies in min..=max, both i32 bin indices; nbins <= MAX_BINS.
        Ok(RunSpan { first: first as i32, nbins: nbins as usize, at: counts_at, end: r.pos })
    }
}

/// One encoded sketch, validated: its header fields and where its runs' counts lie.
#[derive(Debug, Clone, Copy)]
struct Scanned {
    collapsed: bool,
    zero_count: u64,
    /// Sum of every count, zero bucket included.
    total: u64,
    pos: RunSpan,
    neg: RunSpan,
    /// Bytes consumed.
    end: usize,
}

impl Scanned {
    /// Validates one encoding for `mapping`, with the checks and errors of
    /// [`CompactDdSketch::decode`], reading every byte once and allocating nothing.
    #[inline]
    fn scan(mapping: &Mapping, bytes: &[u8]) -> Result<Scanned, SketchDecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let flags = r.byte("flags")?;
        if flags & !1 != 0 {
            return Err(SketchDecodeError::Flags { offset: 0, flags });
        }
        let zero_count = r.uvarint("zero count")?;
        let mut total = zero_count;
        let (min, max) = (i64::from(mapping.min_index), i64::from(mapping.max_index));
        let pos = RunSpan::scan(&mut r, "positive", min, max, &mut total)?;
        let neg = RunSpan::scan(&mut r, "negative", -max, -min, &mut total)?;
        Ok(Scanned { collapsed: flags & 1 != 0, zero_count, total, pos, neg, end: r.pos })
    }

    /// The counts of a run, in bin order (valid for the bytes that were scanned).
    fn counts<'a>(bytes: &'a [u8], span: RunSpan) -> impl ExactSizeIterator<Item = u64> + 'a {
        let mut p = span.at;
        (0..span.nbins).map(move |_| trusted_uvarint(bytes, &mut p))
    }
}

/// A DDSketch (Masson, Rim & Lee, VLDB 2019) with logarithmic mapping, explicit dense bins per
/// sign and a compact, alpha-free binary encoding; see the [module docs](self) for the
/// mapping, the bin cap and the byte layout.
///
/// Counts are `u64` values; [`quantile`](Self::quantile) estimates are within relative error
/// `alpha` of the exact order statistic `x_(floor(q·(n−1)))` (0-based, ascending), and within
/// `1e-9` absolutely when that statistic is in the zero bucket.
///
/// ```
/// use telemetry_agg::CompactDdSketch;
///
/// let mut minute1 = CompactDdSketch::new(0.01)?;
/// let mut minute2 = CompactDdSketch::new(0.01)?;
/// let mut hour = CompactDdSketch::new(0.01)?;
/// for i in 0..120 {
///     let v = 40.0 + (i % 21) as f64; // a gauge between 40 and 60
///     if i < 60 { minute1.add(v) } else { minute2.add(v) }
///     hour.add(v);
/// }
/// minute1.merge(&minute2)?;
/// assert_eq!(minute1, hour); // merging is exact
///
/// // 40..=54 occur 6 times each, 55..=60 five times: rank floor(0.5 · 119) = 59 is 49.
/// let p50 = hour.quantile(0.5).unwrap();
/// assert!((p50 - 49.0).abs() <= 0.01 * 49.0);
///
/// let mut bytes = Vec::new();
/// hour.encode(&mut bytes);
/// assert!(bytes.len() < 32);
/// let (back, used) = CompactDdSketch::decode(0.01, &bytes)?;
/// assert_eq!((back, used), (hour, bytes.len()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CompactDdSketch {
    alpha: f64,
    mapping: Mapping,
    collapsed: bool,
    zero_count: u64,
    /// Values held, zero bucket included (the sum of every count).
    count: u64,
    pos: Run,
    /// Indexed by the negated bin of `|v|`.
    neg: Run,
}

impl PartialEq for CompactDdSketch {
    /// Same alpha (bit for bit), same bins and counts, same collapsed flag.
    fn eq(&self, o: &Self) -> bool {
        self.alpha.to_bits() == o.alpha.to_bits()
            && self.collapsed == o.collapsed
            && self.zero_count == o.zero_count
            && self.pos == o.pos
            && self.neg == o.neg
    }
}

impl CompactDdSketch {
    /// An empty sketch with relative accuracy `alpha`.
    ///
    /// # Errors
    /// [`SketchError::Alpha`] unless `alpha` is finite and in [`MIN_ALPHA`]`..1`.
    pub fn new(alpha: f64) -> Result<Self, SketchError> {
        let mapping = Mapping::new(alpha)?;
        Ok(CompactDdSketch {
            alpha,
            mapping,
            collapsed: false,
            zero_count: 0,
            count: 0,
            pos: Run::default(),
            neg: Run::default(),
        })
    }

    /// The relative accuracy.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Adds one value. `NaN` and `±Inf` are not recorded.
    #[inline]
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    /// Adds `n` copies of a value. `NaN`, `±Inf` and `n == 0` record nothing. The total count
    /// saturates at `u64::MAX` values (copies beyond it are not recorded).
    #[inline]
    pub fn add_n(&mut self, v: f64, n: u64) {
        let n = n.min(u64::MAX - self.count);
        if n == 0 || !v.is_finite() {
            return;
        }
        self.count += n;
        let folded = if v >= MIN_INDEXABLE {
            self.pos.add(self.mapping.index(v), n)
        } else if v <= -MIN_INDEXABLE {
            self.neg.add(-self.mapping.index(-v), n)
        } else {
            self.zero_count += n;
            false
        };
        self.collapsed |= folded;
    }

    /// Values held, zero bucket included.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether bins were ever folded by the [`MAX_BINS`] cap (here or in a merged sketch); the
    /// bound then holds only for ranks outside the folded bins (see the module docs).
    pub fn is_collapsed(&self) -> bool {
        self.collapsed
    }

    /// Adds every value of `other`. Exact: bin counts add, so the result equals the sketch of
    /// both inputs' values, whatever the order of merges.
    ///
    /// # Errors
    /// [`MergeError::Parameters("DDSketch")`](MergeError::Parameters) when the alphas differ
    /// (compared bit for bit); [`MergeError::CountOverflow`] when the sketches hold more than
    /// `u64::MAX` values together. `self` is unchanged on error.
    pub fn merge(&mut self, other: &CompactDdSketch) -> Result<(), MergeError> {
        if self.alpha.to_bits() != other.alpha.to_bits() {
            return Err(MergeError::Parameters("DDSketch"));
        }
        // Every bin is at most the total, so no bin can overflow once the total fits.
        self.count = self.count.checked_add(other.count).ok_or(MergeError::CountOverflow("DDSketch"))?;
        self.zero_count += other.zero_count;
        let folded_pos = self.pos.merge(&other.pos);
        let folded_neg = self.neg.merge(&other.neg);
        self.collapsed |= other.collapsed || folded_pos || folded_neg;
        Ok(())
    }

    /// Empties the sketch: no values, not collapsed, same alpha. The bins' allocated capacity is
    /// kept, so a cleared sketch can be refilled (by [`add`](Self::add), [`merge`](Self::merge)
    /// or [`merge_encoded`](Self::merge_encoded)) without allocating; the result equals what a
    /// fresh [`new`](Self::new) sketch would give.
    pub fn clear(&mut self) {
        self.collapsed = false;
        self.zero_count = 0;
        self.count = 0;
        for run in [&mut self.pos, &mut self.neg] {
            run.offset = 0;
            run.counts.clear();
        }
    }

    /// Adds the sketch encoded at the start of `bytes` (layout in the [module docs](self)) and
    /// returns the number of bytes consumed. Same result, bit for bit, and same errors as
    /// `let (s, used) = CompactDdSketch::decode(self.alpha(), bytes)?; self.merge(&s)?`, but
    /// without building `s`: the counts are added straight from the bytes into this sketch's
    /// runs, which grow as needed and otherwise reuse their capacity (merging into a warm
    /// accumulator allocates nothing).
    ///
    /// The encoding does not carry alpha: `bytes` must have been written by a sketch with this
    /// sketch's alpha. Bytes of another alpha are not detected (their bin indices are read as
    /// bins of this alpha) unless an index lies outside this alpha's range.
    ///
    /// Works in two passes: the whole encoding is first validated (every check of
    /// [`decode`](Self::decode), reading each byte once, allocating nothing), and only then
    /// added. So on any error `self` is unchanged.
    ///
    /// # Errors
    /// Every error of [`decode`](Self::decode) for the same bytes, with the same byte offsets;
    /// then [`SketchDecodeError::Merge`] wrapping [`MergeError::CountOverflow`] when this
    /// sketch and the encoded one hold more than `u64::MAX` values together (as
    /// [`merge`](Self::merge) would report). `self` is unchanged on error.
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<usize, SketchDecodeError> {
        let sc = Scanned::scan(&self.mapping, bytes)?;
        // Every bin is at most the total, so no bin can overflow once the total fits.
        self.count =
            self.count.checked_add(sc.total).ok_or(SketchDecodeError::Merge(MergeError::CountOverflow("DDSketch")))?;
        self.zero_count += sc.zero_count;
        let folded_pos = self.pos.merge_span(bytes, sc.pos);
        let folded_neg = self.neg.merge_span(bytes, sc.neg);
        self.collapsed |= sc.collapsed || folded_pos || folded_neg;
        Ok(sc.end)
    }

    /// The [`quantile`](Self::quantile) of the sketch with relative accuracy `alpha` encoded at
    /// the start of `bytes`, computed from the bytes without decoding them into a sketch (no
    /// allocation). Same result, bit for bit, as
    /// `CompactDdSketch::decode(alpha, bytes)?.0.quantile(q)`; `Ok(None)` when the sketch is
    /// empty or `q` is NaN or outside `[0, 1]`.
    ///
    /// # Errors
    /// Every error of [`decode`](Self::decode) for the same `alpha` and bytes (the bytes are
    /// validated whatever `q`).
    pub fn quantile_of_encoded(alpha: f64, bytes: &[u8], q: f64) -> Result<Option<f64>, SketchDecodeError> {
        let mapping = Mapping::new(alpha)?;
        let sc = Scanned::scan(&mapping, bytes)?;
        let Some(rank) = rank_of(q, sc.total) else { return Ok(None) };
        let neg = (sc.neg.first, Scanned::counts(bytes, sc.neg));
        let pos = (sc.pos.first, Scanned::counts(bytes, sc.pos));
        Ok(mapping.value_of_rank(rank, neg, sc.zero_count, pos))
    }

    /// Estimates the `q`-quantile, `q` in `[0, 1]`: the representative value of the bin holding
    /// the element of 0-based rank `floor(q·(n−1))` in ascending order (negative values, then
    /// the zero bucket, then positive values). The estimate is within `alpha·|x|` of that exact
    /// order statistic `x`, or within `1e-9` of it when `|x| < MIN_INDEXABLE` (estimate `0`);
    /// see [`is_collapsed`](Self::is_collapsed) for the exception.
    ///
    /// `None` when the sketch is empty or `q` is NaN or outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let rank = rank_of(q, self.count)?;
        if rank >= self.count / 2 {
            return self.quantile_from_the_top(rank);
        }
        let neg = (self.neg.offset, self.neg.counts.iter().copied());
        let pos = (self.pos.offset, self.pos.counts.iter().copied());
        self.mapping.value_of_rank(rank, neg, self.zero_count, pos)
    }

    /// The bin of the element of rank `rank` (below `count`), found from the largest value
    /// down, for high ranks (a p99 is a bin or two from the top): the highest bin that,
    /// with every bin above it, holds at least `count − rank` elements. It is the bin the
    /// ascending walk of [`quantile`](Self::quantile) finds, the first whose running count
    /// passes `rank`.
    fn quantile_from_the_top(&self, rank: u64) -> Option<f64> {
        let need = self.count - rank;
        let mut above = 0u64;
        for (k, &c) in self.pos.counts.iter().enumerate().rev() {
            above += c;
            if above >= need {
                return Some(self.mapping.value(self.pos.offset + k as i32));
            }
        }
        above += self.zero_count;
        if above >= need {
            return Some(0.0);
        }
        for (k, &c) in self.neg.counts.iter().enumerate().rev() {
            above += c;
            if above >= need {
                // ok: offset + k is a valid negative-store index (at least −max_index).
                return Some(-self.mapping.value(-(self.neg.offset + k as i32)));
            }
        }
        // Unreachable while count is the sum of the bins (an invariant of every constructor).
        None
    }

    /// Appends the encoding (layout in the [module docs](self); alpha is not included).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(u8::from(self.collapsed));
        put_uvarint(out, self.zero_count);
        self.pos.encode(out);
        self.neg.encode(out);
    }

    /// Length in bytes of [`encode`](Self::encode)'s output.
    pub fn encoded_len(&self) -> usize {
        1 + uvarint_len(self.zero_count) + self.pos.encoded_len() + self.neg.encoded_len()
    }

    /// Decodes one sketch with relative accuracy `alpha` from the start of `bytes`; returns it
    /// and the number of bytes consumed (bytes after it are left alone, so encodings can be
    /// concatenated). Never panics; allocates at most [`MAX_BINS`] counts per sign.
    ///
    /// # Errors
    /// [`SketchDecodeError`] naming the byte offset of the bad field: invalid alpha, truncated
    /// input, a varint above `u64::MAX`, unknown flag bits, more than [`MAX_BINS`] bins, bin
    /// indices no finite value reaches for this alpha, a zero count at the edge of a run, or
    /// counts summing above `u64::MAX`.
    pub fn decode(alpha: f64, bytes: &[u8]) -> Result<(Self, usize), SketchDecodeError> {
        let mut s = CompactDdSketch::new(alpha)?;
        let mut r = Reader { bytes, pos: 0 };
        let flags = r.byte("flags")?;
        if flags & !1 != 0 {
            return Err(SketchDecodeError::Flags { offset: 0, flags });
        }
        s.collapsed = flags & 1 != 0;
        s.zero_count = r.uvarint("zero count")?;
        let mut total = s.zero_count;
        let (min, max) = (i64::from(s.mapping.min_index), i64::from(s.mapping.max_index));
        s.pos = Run::decode(&mut r, "positive", min, max, &mut total)?;
        s.neg = Run::decode(&mut r, "negative", -max, -min, &mut total)?;
        s.count = total;
        Ok((s, r.pos))
    }

    /// Heap bytes held by the bins.
    pub fn heap_bytes(&self) -> usize {
        (self.pos.counts.capacity() + self.neg.counts.capacity()) * std::mem::size_of::<u64>()
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn uvarint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The 0-based rank `floor(q·(n−1))` a `q`-quantile of `n` values reads; `None` when `n` is 0
/// or `q` is NaN or outside `[0, 1]`.
fn rank_of(q: f64, n: u64) -> Option<u64> {
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // ok: q·(n−1) is in 0..=n−1 (as f64); the cast saturates and min() clamps rounding.
    Some(((q * (n - 1) as f64).floor() as u64).min(n - 1))
}

/// Reads a uvarint at `*pos` that a [`Reader`] has already validated, advancing `pos`. Never
/// panics: on bytes that were not validated it returns an unspecified value.
#[inline(always)]
fn trusted_uvarint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0u32;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= u64::from(b & 0x7f).wrapping_shl(shift);
        if b < 0x80 {
            break;
        }
        shift = shift.wrapping_add(7);
    }
    v
}

/// A cursor over the input that reports offsets in its errors.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self, field: &'static str) -> Result<u8, SketchDecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(SketchDecodeError::Truncated { offset: self.pos, field })?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn uvarint(&mut self, field: &'static str) -> Result<u64, SketchDecodeError> {
        let start = self.pos;
        // Fast path: most fields (bin counts, small counts, offsets) fit one byte.
        if let Some(&b) = self.bytes.get(start)
            && b < 0x80
        {
            self.pos = start + 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(start + i) else {
                return Err(SketchDecodeError::Truncated { offset: start, field });
            };
            // The 10th byte may carry only bit 63.
            if i == 9 && b > 1 {
                return Err(SketchDecodeError::VarintOverflow { offset: start, field });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos = start + i + 1;
                return Ok(v);
            }
        }
        Err(SketchDecodeError::VarintOverflow { offset: start, field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// A gauge between 40 and 60: uniform (every bin of the range in use: the largest
    /// encoding) or a random walk with steps of up to ±2.
    fn gauge(n: usize, uniform: bool, rng: &mut StdRng) -> Vec<f64> {
        let mut v = 50.0;
        (0..n)
            .map(|_| {
                v = if uniform {
                    rng.gen_range(40.0..=60.0)
                } else {
                    (v + rng.gen_range(-2.0..2.0f64)).clamp(40.0, 60.0)
                };
                v
            })
            .collect()
    }

    fn sketch(values: &[f64]) -> CompactDdSketch {
        let mut s = CompactDdSketch::new(0.01).unwrap();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    fn bins(s: &CompactDdSketch) -> usize {
        s.pos.counts.len() + s.neg.counts.len()
    }

    #[test]
    fn encoded_sizes_of_rollup_buckets() {
        for (uniform, max_minute, max_hour, max_big) in [(true, 28, 32, 56), (false, 16, 32, 56)] {
            let mut rng = StdRng::seed_from_u64(7);
            // (b) one minute at a 10 s interval; (a) sixty of them merged into an hour.
            let mut hour = CompactDdSketch::new(0.01).unwrap();
            let mut all = Vec::new();
            let mut minute_sizes = Vec::new();
            for _ in 0..60 {
                let vs = gauge(6, uniform, &mut rng);
                let m = sketch(&vs);
                minute_sizes.push(m.encoded_len());
                hour.merge(&m).unwrap();
                all.extend(vs);
            }
            assert_eq!(hour, sketch(&all));
            // (c) one hour at 6 values per second, merged from sixty minutes of 360 values.
            let mut big = CompactDdSketch::new(0.01).unwrap();
            let mut big_all = Vec::new();
            for _ in 0..60 {
                let vs = gauge(360, uniform, &mut rng);
                big.merge(&sketch(&vs)).unwrap();
                big_all.extend(vs);
            }
            assert_eq!(big, sketch(&big_all));
            let minute = minute_sizes.iter().max().copied().unwrap();
            println!(
                "{}: 6 values: max {minute} B, mean {:.1} B over 60 minutes; 360 values: {} B, {} bins; \
                 21,600 values: {} B, {} bins",
                if uniform { "uniform 40..=60" } else { "random walk in 40..=60" },
                minute_sizes.iter().sum::<usize>() as f64 / 60.0,
                hour.encoded_len(),
                bins(&hour),
                big.encoded_len(),
                bins(&big)
            );
            assert!(minute <= max_minute, "6 values: {minute} B");
            assert!(hour.encoded_len() <= max_hour, "360 values: {} B", hour.encoded_len());
            assert!(big.encoded_len() <= max_big, "21,600 values: {} B", big.encoded_len());
            for s in [&hour, &big] {
                let mut b = Vec::new();
                s.encode(&mut b);
                assert_eq!(b.len(), s.encoded_len());
            }
        }
    }

    #[test]
    fn bin_index_matches_the_paper() {
        let s = CompactDdSketch::new(0.01).unwrap();
        let gamma: f64 = 1.01 / 0.99;
        for v in [1e-9, 1e-3, 0.5, 1.0, 1.5, 40.0, 60.0, 1e12, 1e300, f64::MAX] {
            let i = s.mapping.index(v);
            // gamma^(i−1) < v <= gamma^i, up to rounding at the boundary.
            assert!(gamma.powi(i - 1) < v * (1.0 + 1e-12), "{v} in bin {i}");
            assert!(v <= gamma.powi(i) * (1.0 + 1e-12) || v > 1e300, "{v} in bin {i}");
            let rep = s.mapping.value(i);
            assert!((rep - v).abs() <= 0.01 * v * (1.0 + 1e-9), "{v}: rep {rep}");
        }
        assert_eq!(s.mapping.index(1.0), 0);
        assert!((s.mapping.value(0) - 2.0 / (gamma + 1.0)).abs() < 1e-15);
        // 1e-9..1e12 spans about 2,420 bins at alpha 0.01.
        let span = s.mapping.index(1e12) - s.mapping.index(1e-9) + 1;
        assert!((2400..2450).contains(&span), "{span}");
    }

    #[test]
    fn collapsing_keeps_the_top_bins_and_the_bound_above_them() {
        // alpha 0.001: 1..1e6 spans about 6,900 bins, more than MAX_BINS.
        let alpha = 0.001;
        let mut rng = StdRng::seed_from_u64(3);
        let mut vs: Vec<f64> = (0..20_000).map(|_| 10f64.powf(rng.gen_range(0.0..6.0))).collect();
        let mut s = CompactDdSketch::new(alpha).unwrap();
        vs.iter().for_each(|&v| s.add(v));
        assert!(s.is_collapsed());
        assert_eq!(s.pos.counts.len(), MAX_BINS);
        assert_eq!(s.count(), 20_000);
        vs.sort_by(f64::total_cmp);
        // Folded values are at most gamma^(offset−1) = value(offset−1) / (1 − alpha).
        let lowest_kept = s.mapping.value(s.pos.offset - 1) / (1.0 - alpha);
        for q in [0.5, 0.9, 0.99, 1.0] {
            let x = vs[(q * (vs.len() - 1) as f64).floor() as usize];
            assert!(x > lowest_kept);
            let est = s.quantile(q).unwrap();
            assert!((est - x).abs() <= alpha * x * (1.0 + 1e-9), "q {q}: {est} vs {x}");
        }
        // The lowest values are overestimated (folded into the lowest kept bin).
        assert!(s.quantile(0.0).unwrap() > vs[0] * 10.0);
        // Negative values fold their most negative bins, likewise upward.
        let mut n = CompactDdSketch::new(alpha).unwrap();
        vs.iter().for_each(|&v| n.add(-v));
        assert!(n.is_collapsed());
        let x = -vs[vs.len() - 1];
        assert!(n.quantile(0.0).unwrap() > x * 0.1);
        let x = -vs[vs.len() / 2];
        let est = n.quantile(0.5).unwrap();
        assert!((est - x).abs() <= alpha * x.abs() * (1.0 + 1e-9), "{est} vs {x}");
    }

    #[test]
    fn uvarint_lengths_and_zigzag() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v), "{v}");
            let mut r = Reader { bytes: &b, pos: 0 };
            assert_eq!(r.uvarint("x").unwrap(), v);
        }
        for n in [0i64, -1, 1, i64::from(i32::MIN), i64::from(i32::MAX), i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        let mut r = Reader { bytes: &[0xff; 10], pos: 0 };
        assert!(matches!(r.uvarint("x"), Err(SketchDecodeError::VarintOverflow { offset: 0, .. })));
        let mut r = Reader { bytes: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], pos: 0 };
        assert_eq!(r.uvarint("x").unwrap(), u64::MAX);
    }

    #[test]
    fn heap_bytes_counts_the_bins() {
        let s = sketch(&[40.0, 60.0]);
        assert!(s.heap_bytes() >= bins(&s) * 8);
        assert_eq!(CompactDdSketch::new(0.01).unwrap().heap_bytes(), 0);
    }
}
