//! Postings: sorted sets of series references, with a cursor and set operations.
//!
//! A postings list is the set of series that carry one label pair, kept as a strictly
//! increasing sequence of [`SeriesRef`]s (Prometheus `tsdb/index/postings.go`). Queries combine
//! lists: intersection for ANDed matchers, union for the values a regex selects, difference for
//! negative matchers.
//!
//! Intersection gallops (exponential search, Bentley & Yao 1976; the "galloping" step of
//! Demaine, López-Ortiz & Munro, *Adaptive set intersections, unions and differences*, SODA 2000):
//! each element of the shorter list seeks in the longer one with steps 1, 2, 4, … and then a
//! binary search, so the cost is `O(m log(n/m))` for lists of sizes `m ≤ n`, which is what
//! selective queries (`instance="host-42"` against `job="node"`) need. Unions of many lists
//! switch to a bitmap over the reference range when the output is dense.
//!
//! Why sorted `u32` vectors rather than `roaring` bitmaps (measured in `benches/postings.rs`):
//! roaring wins when both operands are already stored as roaring and one is dense (bitmap
//! containers make an AND a word-wise operation), but the index appends references one by one,
//! unions a hundred lists per regex (15× faster as vectors plus a scratch bitmap), lends lists
//! zero-copy from a mapped file, and returns plain sorted references to the storage layer;
//! converting to and from roaring per query costs more than the intersection. The in-memory
//! index therefore keeps vectors and adds a plain bitmap beside each dense list (see
//! [`crate::mem`]), which gives selective queries the O(1) probe that makes roaring fast.

use crate::SeriesRef;

/// A sorted set of series references (strictly increasing, no duplicates).
///
/// ```
/// use telemetry_index::Postings;
/// let a = Postings::from_unsorted(vec![5, 1, 3, 9]);
/// let b = Postings::from_sorted(vec![3, 4, 5]).unwrap();
/// assert_eq!(a.intersect(&b).as_slice(), &[3, 5]);
/// assert_eq!(a.union(&b).as_slice(), &[1, 3, 4, 5, 9]);
/// assert_eq!(a.difference(&b).as_slice(), &[1, 9]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Postings {
    refs: Vec<SeriesRef>,
}

impl std::fmt::Debug for Postings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.refs.iter()).finish()
    }
}

/// A list given to [`Postings::from_sorted`] that is not strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postings not strictly increasing at index {index}: {prev} then {next}")]
pub struct UnsortedPostings {
    /// Index of the first element that is not greater than its predecessor.
    pub index: usize,
    /// The predecessor.
    pub prev: SeriesRef,
    /// The offending element.
    pub next: SeriesRef,
}

impl Postings {
    /// The empty set.
    pub fn empty() -> Self {
        Postings { refs: Vec::new() }
    }

    /// Takes a strictly increasing vector.
    ///
    /// # Errors
    /// [`UnsortedPostings`] naming the first element out of order or repeated.
    pub fn from_sorted(refs: Vec<SeriesRef>) -> Result<Self, UnsortedPostings> {
        if let Some(i) = refs.windows(2).position(|w| w[0] >= w[1]) {
            return Err(UnsortedPostings { index: i + 1, prev: refs[i], next: refs[i + 1] });
        }
        Ok(Postings { refs })
    }

    /// Sorts and deduplicates any vector.
    pub fn from_unsorted(mut refs: Vec<SeriesRef>) -> Self {
        refs.sort_unstable();
        refs.dedup();
        Postings { refs }
    }

    /// Wraps a vector the caller knows is strictly increasing (checked in debug builds).
    pub(crate) fn from_sorted_unchecked(refs: Vec<SeriesRef>) -> Self {
        debug_assert!(refs.windows(2).all(|w| w[0] < w[1]), "postings not sorted");
        Postings { refs }
    }

    /// All references `0..n`.
    pub fn range(n: SeriesRef) -> Self {
        Postings { refs: (0..n).collect() }
    }

    /// The references, increasing.
    pub fn as_slice(&self) -> &[SeriesRef] {
        &self.refs
    }

    /// The references as a vector.
    pub fn into_vec(self) -> Vec<SeriesRef> {
        self.refs
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// `true` for the empty set.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// `true` when `r` is in the set (binary search).
    pub fn contains(&self, r: SeriesRef) -> bool {
        self.refs.binary_search(&r).is_ok()
    }

    /// Iterates over the references in increasing order.
    pub fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, SeriesRef>> {
        self.refs.iter().copied()
    }

    /// A cursor with [`next`](SliceCursor::next) and [`seek`](SliceCursor::seek).
    pub fn cursor(&self) -> SliceCursor<'_> {
        SliceCursor::new(&self.refs)
    }

    /// Series in both sets (galloping).
    pub fn intersect(&self, other: &Postings) -> Postings {
        Postings { refs: intersect_slices(&self.refs, &other.refs) }
    }

    /// Series in either set.
    pub fn union(&self, other: &Postings) -> Postings {
        Postings { refs: union_two(&self.refs, &other.refs) }
    }

    /// Series in `self` but not in `other`.
    pub fn difference(&self, other: &Postings) -> Postings {
        Postings { refs: difference_slices(&self.refs, &other.refs) }
    }

    /// Intersection of any number of sets; the smallest drives, so the cost follows the most
    /// selective set. The intersection of no sets is empty.
    pub fn intersect_all(sets: &[&[SeriesRef]]) -> Postings {
        Postings { refs: intersect_many(sets) }
    }

    /// Union of any number of sets.
    pub fn union_all(sets: &[&[SeriesRef]]) -> Postings {
        Postings { refs: union_many(sets) }
    }
}

impl From<Postings> for Vec<SeriesRef> {
    fn from(p: Postings) -> Self {
        p.refs
    }
}

impl<'a> IntoIterator for &'a Postings {
    type Item = SeriesRef;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, SeriesRef>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A forward cursor over a postings list (Prometheus' `index.Postings` iterator).
pub trait PostingsCursor {
    /// Advances to the next reference and returns it, or `None` at the end.
    fn next(&mut self) -> Option<SeriesRef>;
    /// Advances to the first reference `>= target` and returns it, or `None` when there is
    /// none. Never moves backwards: if the current reference is already `>= target` it is
    /// returned again.
    fn seek(&mut self, target: SeriesRef) -> Option<SeriesRef>;
    /// The reference the cursor stands on (after a successful `next` or `seek`).
    fn at(&self) -> Option<SeriesRef>;
}

/// A [`PostingsCursor`] over a sorted slice; `seek` gallops.
#[derive(Debug, Clone)]
pub struct SliceCursor<'a> {
    refs: &'a [SeriesRef],
    /// Index of the current element; `usize::MAX` before the first call.
    pos: usize,
}

impl<'a> SliceCursor<'a> {
    /// A cursor before the first element of `refs`, which must be strictly increasing.
    pub fn new(refs: &'a [SeriesRef]) -> Self {
        SliceCursor { refs, pos: usize::MAX }
    }
}

impl PostingsCursor for SliceCursor<'_> {
    fn next(&mut self) -> Option<SeriesRef> {
        self.pos = self.pos.wrapping_add(1);
        if self.pos >= self.refs.len() {
            self.pos = self.refs.len();
            return None;
        }
        Some(self.refs[self.pos])
    }

    fn seek(&mut self, target: SeriesRef) -> Option<SeriesRef> {
        let start = if self.pos == usize::MAX { 0 } else { self.pos };
        if start >= self.refs.len() {
            return None;
        }
        self.pos = start + gallop(&self.refs[start..], target);
        self.refs.get(self.pos).copied()
    }

    fn at(&self) -> Option<SeriesRef> {
        self.refs.get(self.pos).copied()
    }
}

/// Index of the first element `>= target` in sorted `s` (or `s.len()`), found by exponential
/// search from the front: `O(log d)` where `d` is the distance to the answer.
#[inline]
pub(crate) fn gallop(s: &[SeriesRef], target: SeriesRef) -> usize {
    if s.is_empty() || s[0] >= target {
        return 0;
    }
    // Invariant: s[lo] < target.
    let mut lo = 0usize;
    let mut step = 1usize;
    loop {
        let hi = lo + step;
        if hi >= s.len() {
            return lo + 1 + s[lo + 1..].partition_point(|&x| x < target);
        }
        if s[hi] >= target {
            return lo + 1 + s[lo + 1..hi].partition_point(|&x| x < target);
        }
        lo = hi;
        step *= 2;
    }
}

/// Intersection of two sorted slices, by the ratio of their sizes:
/// - at least 64: each element of the short list gallops in the long one (`O(m log(n/m))`);
/// - both dense in their common range (more than one reference in 32): the shorter list
///   becomes a bitmap over that range and the longer one is filtered by bit tests;
/// - otherwise: for each element of the short list, whole blocks of 8 of the long list are
///   skipped and the position inside a block is a branch-free count (vectorised).
pub(crate) fn intersect_slices(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.is_empty() {
        return out;
    }
    if large.len() / small.len() >= 64 {
        let mut j = 0;
        for &x in small {
            j += gallop(&large[j..], x);
            if j >= large.len() {
                break;
            }
            if large[j] == x {
                out.push(x);
                j += 1;
            }
        }
        return out;
    }
    let lo = small[0].max(large[0]);
    let hi = small[small.len() - 1].min(large[large.len() - 1]);
    if lo > hi {
        return out;
    }
    let span = (hi - lo) as usize + 1;
    if small.len() >= 4096 && small.len() >= span / 32 {
        let mut words = vec![0u64; span.div_ceil(64)];
        for &x in small {
            if x >= lo && x <= hi {
                let d = (x - lo) as usize;
                words[d >> 6] |= 1u64 << (d & 63);
            }
        }
        for &y in large {
            if y >= lo && y <= hi {
                let d = (y - lo) as usize;
                if words[d >> 6] & (1u64 << (d & 63)) != 0 {
                    out.push(y);
                }
            }
        }
        return out;
    }
    let mut j = 0;
    let n = large.len();
    for &x in small {
        while j + 8 <= n && large[j + 7] < x {
            j += 8;
        }
        let end = (j + 8).min(n);
        j += large[j..end].iter().map(|&y| usize::from(y < x)).sum::<usize>();
        if j >= n {
            break;
        }
        if large[j] == x {
            out.push(x);
            j += 1;
        }
    }
    out
}

pub(crate) fn intersect_many(sets: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    let mut sorted: Vec<&[SeriesRef]> = sets.to_vec();
    sorted.sort_by_key(|s| s.len());
    let Some((first, rest)) = sorted.split_first() else {
        return Vec::new();
    };
    let mut acc = first.to_vec();
    for s in rest {
        if acc.is_empty() {
            break;
        }
        acc = intersect_slices(&acc, s);
    }
    acc
}

fn union_two(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Union of many sorted slices. Dense outputs go through a bitmap over `[min, max]`
/// (one bit per reference, then a scan of the words); sparse ones are concatenated and
/// sorted; two lists merge.
pub(crate) fn union_many(sets: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    let sets: Vec<&[SeriesRef]> = sets.iter().copied().filter(|s| !s.is_empty()).collect();
    match sets.len() {
        0 => return Vec::new(),
        1 => return sets[0].to_vec(),
        2 => return union_two(sets[0], sets[1]),
        _ => {}
    }
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let min = sets.iter().map(|s| s[0]).min().unwrap_or(0); // ok: sets are non-empty
    let max = sets.iter().map(|s| s[s.len() - 1]).max().unwrap_or(0); // ok: sets are non-empty
    let span = (max - min) as usize + 1;
    if total >= span / 64 {
        let mut words = vec![0u64; span.div_ceil(64)];
        for s in &sets {
            for &r in *s {
                let d = (r - min) as usize;
                words[d >> 6] |= 1u64 << (d & 63);
            }
        }
        bitmap_to_vec(&words, min, total)
    } else {
        let mut out = Vec::with_capacity(total);
        for s in &sets {
            out.extend_from_slice(s);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn bitmap_to_vec(words: &[u64], base: SeriesRef, cap: usize) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(cap);
    for (wi, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let bit = w.trailing_zeros();
            out.push(base + (wi as u32) * 64 + bit);
            w &= w - 1;
        }
    }
    out
}

/// The references of `refs` whose bit in `words` is `keep_if_set` (bits past the end of
/// `words` count as clear).
pub(crate) fn filter_by_bitmap(refs: &[SeriesRef], words: &[u64], keep_if_set: bool) -> Vec<SeriesRef> {
    refs.iter()
        .copied()
        .filter(|&r| {
            let set = words.get((r >> 6) as usize).is_some_and(|w| w & (1u64 << (r & 63)) != 0);
            set == keep_if_set
        })
        .collect()
}

/// `a \ b` for sorted slices; gallops in `b` when it is much longer.
pub(crate) fn difference_slices(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    if b.is_empty() {
        return a.to_vec();
    }
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    let gallop_b = b.len() / a.len().max(1) >= 8;
    for &x in a {
        if gallop_b {
            j += gallop(&b[j..], x);
        } else {
            while j < b.len() && b[j] < x {
                j += 1;
            }
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set() -> impl Strategy<Value = BTreeSet<u32>> {
        prop_oneof![
            prop::collection::btree_set(0u32..64, 0..40),
            prop::collection::btree_set(0u32..5000, 0..300),
            prop::collection::btree_set(0u32..200, 0..200),
        ]
    }

    fn v(s: &BTreeSet<u32>) -> Vec<u32> {
        s.iter().copied().collect()
    }

    proptest! {
        #[test]
        fn ops_match_btreeset(a in set(), b in set(), c in set(), d in set()) {
            let (pa, pb) = (Postings::from_sorted(v(&a)).unwrap(), Postings::from_sorted(v(&b)).unwrap());
            prop_assert_eq!(pa.intersect(&pb).into_vec(), a.intersection(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(pa.union(&pb).into_vec(), a.union(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(pa.difference(&pb).into_vec(), a.difference(&b).copied().collect::<Vec<_>>());
            let (vc, vd) = (v(&c), v(&d));
            let all: Vec<&[u32]> = vec![pa.as_slice(), pb.as_slice(), &vc, &vd];
            let want_u: BTreeSet<u32> = a.iter().chain(&b).chain(&c).chain(&d).copied().collect();
            prop_assert_eq!(Postings::union_all(&all).into_vec(), v(&want_u));
            let want_i: Vec<u32> = a.iter().copied().filter(|x| b.contains(x) && c.contains(x) && d.contains(x)).collect();
            prop_assert_eq!(Postings::intersect_all(&all).into_vec(), want_i);
        }

        #[test]
        fn cursor_seek_and_next(a in set(), targets in prop::collection::vec(0u32..5100, 0..30)) {
            let p = Postings::from_sorted(v(&a)).unwrap();
            let mut c = p.cursor();
            let mut floor = 0u32;
            for t in targets {
                let t = t.max(floor);
                let got = c.seek(t);
                let want = a.range(t..).next().copied();
                prop_assert_eq!(got, want);
                prop_assert_eq!(c.at(), want);
                match got {
                    Some(x) => {
                        let n = c.next();
                        prop_assert_eq!(n, a.range(x + 1..).next().copied());
                        if let Some(n) = n { floor = n; } else { break; }
                    }
                    None => break,
                }
            }
        }
    }

    #[test]
    fn from_sorted_rejects_disorder() {
        assert_eq!(Postings::from_sorted(vec![1, 3, 3]), Err(UnsortedPostings { index: 2, prev: 3, next: 3 }));
        let mut c = SliceCursor::new(&[]);
        assert_eq!(c.next(), None);
        assert_eq!(c.seek(4), None);
    }
}
