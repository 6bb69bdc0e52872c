//! The query logic shared by the in-memory and the persisted index.
//!
//! An index implements the few primitive calls of [`IndexReader`] (values of a label in
//! order, postings of a label pair, labels of a series); matcher evaluation, label listing and
//! the cardinality report are provided methods written once on top of them.
//!
//! # Matcher semantics (Prometheus `tsdb/querier.go`, `PostingsForMatchers`)
//! A selector's matchers are ANDed. A series lacking label `l` is tested as if `l=""`. So, per
//! matcher `m` on label `l`:
//! - if `m` does not match `""`, a selected series must carry `l` with a value `m` accepts:
//!   the union of the postings of those values is intersected with the result;
//! - if `m` matches `""` (`l!="x"`, `l!~"x.*"`, `l=""`, `l=~"|x"`, `l=~".*"`), a series is
//!   rejected only when it carries `l` with a value `m` refuses: the union of the postings of
//!   those values is subtracted.
//!
//! When no matcher is of the first kind the subtraction starts from all series.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use telemetry_core::{Labels, Matcher};

use crate::postings::{difference_slices, filter_by_bitmap, intersect_slices, union_many};
use crate::pred::{Compiled, Pred};
use crate::{IndexError, Postings, SeriesRef};

/// One label pair and the number of series that carry it (see
/// [`IndexReader::top_label_pairs`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelPairCount {
    /// Series carrying the pair.
    pub series: usize,
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

/// Read access to a label index: the primitives each index implements, and the query calls
/// built on them. Implemented by [`MemReader`](crate::MemReader) (a read view of
/// [`MemIndex`](crate::MemIndex)) and [`BlockIndex`](crate::BlockIndex).
pub trait IndexReader {
    /// Number of series in the index.
    fn num_series(&self) -> usize;

    /// A bitmap of the postings of `name="value"` when the index keeps one for this list
    /// (dense lists): bit `r % 64` of word `r / 64` is set iff series `r` carries the pair;
    /// words past the end are zero. `None` when there is none; queries then use the list.
    fn postings_bitmap(&self, name: &str, value: &str) -> Option<&[u64]> {
        let _ = (name, value);
        None
    }

    /// All label names, sorted.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn all_label_names(&self) -> Result<Vec<String>, IndexError>;

    /// Calls `f` with each value of label `name` that is `>= from` (byte order), in increasing
    /// order, until `f` returns `false`. Values are never empty.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn visit_values(&self, name: &str, from: &str, f: &mut dyn FnMut(&str) -> bool) -> Result<(), IndexError>;

    /// The postings of `name="value"` (empty when the pair is absent).
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, [SeriesRef]>, IndexError>;

    /// How many series carry `name="value"`, without materialising the list where possible.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn postings_len(&self, name: &str, value: &str) -> Result<usize, IndexError> {
        Ok(self.postings(name, value)?.len())
    }

    /// Every series reference, increasing.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn all_postings(&self) -> Result<Cow<'_, [SeriesRef]>, IndexError>;

    /// The labels of one series, or `None` when `r` is not in the index.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn series_labels(&self, r: SeriesRef) -> Result<Option<Labels>, IndexError>;

    /// The distinct label names carried by any of `refs` (sorted).
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn label_names_of(&self, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError>;

    /// The distinct values of label `name` carried by any of `refs` (sorted).
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn label_values_of(&self, name: &str, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError>;

    /// The series selected by `matchers`, ANDed, with Prometheus semantics (see the
    /// [module docs](self)). An empty matcher list selects nothing, as Prometheus refuses a
    /// selector without matchers.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn postings_for_matchers(&self, matchers: &[Matcher]) -> Result<Postings, IndexError> {
        if matchers.is_empty() {
            return Ok(Postings::empty());
        }
        let mut positive: Vec<Sel<'_>> = Vec::new();
        let mut negative: Vec<Sel<'_>> = Vec::new();
        // Cheap, selective matchers first so that an empty intersection stops early.
        let mut order: Vec<(usize, Compiled)> = matchers.iter().map(Compiled::new).enumerate().collect();
        order.sort_by_key(|(_, c)| cost(c));
        for (i, c) in order {
            let m = &matchers[i];
            if m.matches_empty() {
                // Refused values are those where `pred(v) == negate`.
                let p = values_postings(self, &m.name, &c.pred, !c.negate)?;
                if !p.list.is_empty() {
                    negative.push(p);
                }
            } else {
                let p = values_postings(self, &m.name, &c.pred, c.negate)?;
                if p.list.is_empty() {
                    return Ok(Postings::empty());
                }
                positive.push(p);
            }
        }
        // Intersect from the shortest list up: a long list that has a bitmap is probed per
        // reference of the running result, others are intersected (galloping when skewed).
        positive.sort_by_key(|p| p.list.len());
        let mut base: Vec<SeriesRef> =
            if positive.is_empty() { self.all_postings()?.into_owned() } else { positive[0].list.to_vec() };
        for p in positive.iter().skip(1) {
            if base.is_empty() {
                break;
            }
            base = match p.bits {
                Some(bits) if probe_bitmap(base.len(), p.list.len()) => filter_by_bitmap(&base, bits, true),
                _ => intersect_slices(&base, &p.list),
            };
        }
        for n in &negative {
            if base.is_empty() {
                break;
            }
            base = match n.bits {
                Some(bits) if probe_bitmap(base.len(), n.list.len()) => filter_by_bitmap(&base, bits, false),
                _ => difference_slices(&base, &n.list),
            };
        }
        Ok(Postings::from_sorted_unchecked(base))
    }

    /// Label names of the series selected by `matchers` (all names when `matchers` is empty),
    /// sorted.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, IndexError> {
        if matchers.is_empty() {
            return self.all_label_names();
        }
        let sel = self.postings_for_matchers(matchers)?;
        self.label_names_of(sel.as_slice())
    }

    /// Values of label `name` among the series selected by `matchers` (all values when
    /// `matchers` is empty), sorted.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, IndexError> {
        let mut all = Vec::new();
        self.visit_values(name, "", &mut |v| {
            all.push(v.to_string());
            true
        })?;
        if matchers.is_empty() || all.is_empty() {
            return Ok(all);
        }
        let sel = self.postings_for_matchers(matchers)?;
        if sel.is_empty() {
            return Ok(Vec::new());
        }
        // Few values against many selected series: test each value's postings for overlap;
        // otherwise look the label up series by series.
        if all.len().saturating_mul(16) < sel.len() {
            let mut out = Vec::new();
            for v in all {
                let p = self.postings(name, &v)?;
                if overlaps(&p, sel.as_slice()) {
                    out.push(v);
                }
            }
            Ok(out)
        } else {
            self.label_values_of(name, sel.as_slice())
        }
    }

    /// Number of series per metric name (`__name__` value), sorted by name.
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn series_count_by_metric_name(&self) -> Result<Vec<(String, usize)>, IndexError> {
        let mut names = Vec::new();
        self.visit_values(telemetry_core::METRIC_NAME, "", &mut |v| {
            names.push(v.to_string());
            true
        })?;
        names.into_iter().map(|n| Ok((n.clone(), self.postings_len(telemetry_core::METRIC_NAME, &n)?))).collect()
    }

    /// The `n` label pairs carried by the most series, most first (ties by name, then value):
    /// the cardinality report (Prometheus' TSDB status page, `seriesCountByLabelValuePair`).
    ///
    /// # Errors
    /// [`IndexError`] when a persisted index is corrupt.
    fn top_label_pairs(&self, n: usize) -> Result<Vec<LabelPairCount>, IndexError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // Min-heap of the best n by (count desc, name asc, value asc).
        let mut heap: BinaryHeap<Reverse<RankedPair>> = BinaryHeap::new();
        for name in self.all_label_names()? {
            let mut values = Vec::new();
            self.visit_values(&name, "", &mut |v| {
                values.push(v.to_string());
                true
            })?;
            for v in values {
                let c = self.postings_len(&name, &v)?;
                if heap.len() < n {
                    heap.push(Reverse((c, Reverse(name.clone()), Reverse(v))));
                } else if let Some(Reverse(min)) = heap.peek() {
                    let cand = (c, Reverse(name.clone()), Reverse(v));
                    if cand > *min {
                        heap.pop();
                        heap.push(Reverse(cand));
                    }
                }
            }
        }
        let mut out: Vec<LabelPairCount> = heap
            .into_iter()
            .map(|Reverse((series, Reverse(name), Reverse(value)))| LabelPairCount { series, name, value })
            .collect();
        out.sort_by(|a, b| {
            b.series.cmp(&a.series).then_with(|| a.name.cmp(&b.name)).then_with(|| a.value.cmp(&b.value))
        });
        Ok(out)
    }
}

/// `(series, name, value)` ordered so that more series and then smaller names rank higher.
type RankedPair = (usize, Reverse<String>, Reverse<String>);

/// Rough cost rank: direct look-ups first, regex scans last.
fn cost(c: &Compiled) -> u8 {
    match (&c.pred, c.negate) {
        (Pred::Set(s), false) if s.len() == 1 => 0,
        (Pred::Set(_), false) => 1,
        (Pred::Prefix { .. }, false) => 2,
        (Pred::Set(_), true) => 3,
        _ => 4,
    }
}

fn overlaps(a: &[SeriesRef], b: &[SeriesRef]) -> bool {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut j = 0;
    for &x in small {
        j += crate::postings::gallop(&large[j..], x);
        if j >= large.len() {
            return false;
        }
        if large[j] == x {
            return true;
        }
    }
    false
}

/// A matcher's series: the sorted list, and a bitmap of it when the index keeps one.
struct Sel<'a> {
    list: Cow<'a, [SeriesRef]>,
    bits: Option<&'a [u64]>,
}

/// Union of the postings of every value `v` of `name` with `pred.test(v) != negate`.
fn values_postings<'a, R: IndexReader + ?Sized>(
    r: &'a R,
    name: &str,
    pred: &Pred,
    negate: bool,
) -> Result<Sel<'a>, IndexError> {
    let mut lists: Vec<Cow<'a, [SeriesRef]>> = Vec::new();
    match (pred, negate) {
        (Pred::Set(set), false) if set.len() == 1 => {
            let list = r.postings(name, &set[0])?;
            let bits = if list.is_empty() { None } else { r.postings_bitmap(name, &set[0]) };
            return Ok(Sel { list, bits });
        }
        (Pred::Set(set), false) => {
            for v in set {
                if v.is_empty() {
                    continue;
                }
                let p = r.postings(name, v)?;
                if !p.is_empty() {
                    lists.push(p);
                }
            }
        }
        (Pred::Any | Pred::NonEmpty, true) => {}
        _ => {
            let prefix = if negate { "" } else { pred.prefix() };
            let mut values = Vec::new();
            let everything = matches!(pred, Pred::Any | Pred::NonEmpty);
            r.visit_values(name, prefix, &mut |v| {
                if !v.starts_with(prefix) {
                    return false;
                }
                if everything || pred.test(v) != negate {
                    values.push(v.to_string());
                }
                true
            })?;
            for v in values {
                let p = r.postings(name, &v)?;
                if !p.is_empty() {
                    lists.push(p);
                }
            }
        }
    }
    let list = match lists.len() {
        0 => Cow::Borrowed(&[][..]),
        1 => lists.pop().unwrap_or(Cow::Borrowed(&[])), // ok: len is 1
        _ => {
            let slices: Vec<&[SeriesRef]> = lists.iter().map(|c| c.as_ref()).collect();
            Cow::Owned(union_many(&slices))
        }
    };
    Ok(Sel { list, bits: None })
}

/// `true` when probing a bitmap for each of `n` references beats walking a list of `m`.
fn probe_bitmap(n: usize, m: usize) -> bool {
    n.saturating_mul(4) < m
}
