//! The in-memory index of the head block.
//!
//! # Layout
//! - Per label name, a table of its values: a hash map from value to a slot, a slot array with
//!   the value string and its postings (a sorted `Vec<SeriesRef>`), and a `BTreeMap` from value
//!   to slot that keeps values in byte order for prefix-range scans and listings.
//! - Per series, its labels as `(name slot, value slot)` pairs of `u32` in one flat arena, and a
//!   `Vec<u32>` from [`SeriesRef`] to the series' arena offset. Label strings are stored once
//!   per distinct name and value, shared through `Arc<str>`.
//!
//! Lists that are dense (at least 4,096 references and one in 64 of the reference space)
//! also keep a bitmap of the reference space, so that a selective query probes them in O(1)
//! per candidate; the bitmap is at most twice the size of the list it mirrors.
//!
//! Memory per series is therefore about `4 × labels` bytes of postings, `8 × labels + 8`
//! bytes of arena and offset, plus vector growth slack ([`MemIndex::memory_bytes`] reports the
//! allocated total).
//!
//! # Concurrency
//! [`MemIndex`] is `Send + Sync` and all methods take `&self`, so it lives in an `Arc` shared by
//! the appender and by queriers. State sits behind one [`RwLock`]: writers ([`add`](MemIndex::add),
//! [`add_batch`](MemIndex::add_batch), [`remove`](MemIndex::remove)) hold the write lock for one
//! series (or one batch) at a time; queries hold the read lock while they evaluate and return
//! owned results ([`Postings`], `Vec<String>`), so a reader never sees a half-added series and
//! never blocks a writer for longer than one evaluation. Many readers run at once. For a long
//! sequence of calls on one consistent view, [`MemIndex::reader`] returns a [`MemReader`] guard
//! implementing [`IndexReader`] (writers wait while it is alive).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ahash::AHashMap;
use telemetry_core::{Label, Labels, Matcher};

use crate::reader::LabelPairCount;
use crate::{IndexError, IndexReader, Postings, SeriesRef};

const NO_SERIES: u32 = u32::MAX;

#[derive(Default)]
struct ValueSlot {
    value: Arc<str>,
    postings: Vec<SeriesRef>,
    /// For dense lists, the same set as a bitmap over `0..=max ref` (see [`DENSE_MIN_LEN`]).
    bits: Option<Vec<u64>>,
}

/// A postings list gets a bitmap once it holds at least this many references and at least
/// one reference in [`DENSE_RATIO`] of the reference space: then the bitmap is at most twice
/// the size of the list, and a selective query probes it in O(1) per candidate instead of galloping
/// through the list (a cache miss per step when the references are scattered).
const DENSE_MIN_LEN: usize = 4096;
/// See [`DENSE_MIN_LEN`]; a bitmap is dropped again below half this density.
const DENSE_RATIO: usize = 64;

fn set_bit(bits: &mut Vec<u64>, r: SeriesRef) {
    let w = (r >> 6) as usize;
    if w >= bits.len() {
        bits.resize(w + 1, 0);
    }
    bits[w] |= 1u64 << (r & 63);
}

impl ValueSlot {
    fn insert(&mut self, r: SeriesRef, universe: usize) {
        insert_sorted(&mut self.postings, r);
        match &mut self.bits {
            Some(bits) => set_bit(bits, r),
            None if self.postings.len() >= DENSE_MIN_LEN && self.postings.len() * DENSE_RATIO >= universe => {
                let mut bits = Vec::with_capacity(universe.div_ceil(64));
                for &p in &self.postings {
                    set_bit(&mut bits, p);
                }
                self.bits = Some(bits);
            }
            None => {}
        }
    }

    fn remove(&mut self, sorted: &[SeriesRef], universe: usize) {
        self.postings = crate::postings::difference_slices(&self.postings, sorted);
        if let Some(bits) = &mut self.bits {
            for &r in sorted {
                if let Some(w) = bits.get_mut((r >> 6) as usize) {
                    *w &= !(1u64 << (r & 63));
                }
            }
        }
        if self.postings.len() < DENSE_MIN_LEN / 2 || self.postings.len() * DENSE_RATIO * 2 < universe {
            self.bits = None;
        }
    }
}

#[derive(Default)]
struct NameTable {
    name: Arc<str>,
    by_value: AHashMap<Arc<str>, u32>,
    sorted: BTreeMap<Arc<str>, u32>,
    slots: Vec<ValueSlot>,
    free: Vec<u32>,
}

impl NameTable {
    fn slot_for(&mut self, value: &Arc<str>) -> u32 {
        if let Some(&s) = self.by_value.get(&**value) {
            return s;
        }
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = ValueSlot { value: value.clone(), postings: Vec::new(), bits: None };
                s
            }
            None => {
                self.slots.push(ValueSlot { value: value.clone(), postings: Vec::new(), bits: None });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_value.insert(value.clone(), s);
        self.sorted.insert(value.clone(), s);
        s
    }

    fn postings(&self, value: &str) -> &[SeriesRef] {
        self.by_value.get(value).map(|&s| self.slots[s as usize].postings.as_slice()).unwrap_or(&[])
    }
}

#[derive(Default)]
struct Inner {
    by_name: AHashMap<Arc<str>, u32>,
    names: Vec<NameTable>,
    /// Arena offset per series reference; `NO_SERIES` when absent.
    offsets: Vec<u32>,
    /// Per series: label count, then `(name slot, value slot)` pairs.
    arena: Vec<u32>,
    /// Arena words of removed series, reclaimed by compaction.
    dead_words: usize,
    all: Vec<SeriesRef>,
}

fn insert_sorted(v: &mut Vec<SeriesRef>, r: SeriesRef) {
    match v.last() {
        None => v.push(r),
        Some(&last) if last < r => v.push(r),
        _ => {
            if let Err(i) = v.binary_search(&r) {
                v.insert(i, r);
            }
        }
    }
}

impl Inner {
    fn add(&mut self, r: SeriesRef, labels: &Labels) -> Result<(), IndexError> {
        if r == NO_SERIES {
            return Err(IndexError::RefOutOfRange { series_ref: r });
        }
        if labels.is_empty() {
            return Err(IndexError::EmptyLabels { series_ref: r });
        }
        let ri = r as usize;
        if ri < self.offsets.len() && self.offsets[ri] != NO_SERIES {
            return Err(IndexError::DuplicateSeries { series_ref: r });
        }
        let off = self.arena.len();
        if off + 1 + 2 * labels.len() > NO_SERIES as usize {
            return Err(IndexError::TooLarge { what: "label arena", value: off as u64, max: NO_SERIES as u64 });
        }
        if ri >= self.offsets.len() {
            self.offsets.resize(ri + 1, NO_SERIES);
        }
        self.offsets[ri] = off as u32;
        self.arena.push(labels.len() as u32);
        for l in labels {
            let n = match self.by_name.get(&*l.name) {
                Some(&n) => n,
                None => {
                    self.names.push(NameTable { name: l.name.clone(), ..NameTable::default() });
                    let n = (self.names.len() - 1) as u32;
                    self.by_name.insert(l.name.clone(), n);
                    n
                }
            };
            let universe = self.offsets.len();
            let table = &mut self.names[n as usize];
            let s = table.slot_for(&l.value);
            table.slots[s as usize].insert(r, universe);
            self.arena.push(n);
            self.arena.push(s);
        }
        insert_sorted(&mut self.all, r);
        Ok(())
    }

    fn pairs(&self, r: SeriesRef) -> Option<&[u32]> {
        let off = *self.offsets.get(r as usize)?;
        if off == NO_SERIES {
            return None;
        }
        let off = off as usize;
        let n = self.arena[off] as usize;
        Some(&self.arena[off + 1..off + 1 + 2 * n])
    }

    fn remove(&mut self, refs: &[SeriesRef]) -> usize {
        let mut doomed: AHashMap<(u32, u32), Vec<SeriesRef>> = AHashMap::new();
        let mut gone = Vec::new();
        for &r in refs {
            let Some(pairs) = self.pairs(r) else { continue };
            for p in pairs.chunks_exact(2) {
                doomed.entry((p[0], p[1])).or_default().push(r);
            }
            self.dead_words += 1 + pairs.len();
            self.offsets[r as usize] = NO_SERIES;
            gone.push(r);
        }
        if gone.is_empty() {
            return 0;
        }
        gone.sort_unstable();
        gone.dedup();
        for ((n, s), mut rs) in doomed {
            rs.sort_unstable();
            rs.dedup();
            let universe = self.offsets.len();
            let table = &mut self.names[n as usize];
            let slot = &mut table.slots[s as usize];
            slot.remove(&rs, universe);
            if slot.postings.is_empty() {
                let value = std::mem::take(&mut slot.value);
                table.by_value.remove(&value);
                table.sorted.remove(&value);
                table.free.push(s);
            }
        }
        self.all = crate::postings::difference_slices(&self.all, &gone);
        if self.dead_words > 1024 && self.dead_words * 2 > self.arena.len() {
            self.compact();
        }
        gone.len()
    }

    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead_words);
        for off in self.offsets.iter_mut() {
            if *off == NO_SERIES {
                continue;
            }
            let o = *off as usize;
            let n = self.arena[o] as usize;
            *off = arena.len() as u32;
            arena.extend_from_slice(&self.arena[o..o + 1 + 2 * n]);
        }
        self.arena = arena;
        self.dead_words = 0;
    }

    fn labels_of(&self, pairs: &[u32]) -> Labels {
        Labels::from_sorted_unchecked(pairs.chunks_exact(2).map(|p| {
            let t = &self.names[p[0] as usize];
            Label { name: t.name.clone(), value: t.slots[p[1] as usize].value.clone() }
        }))
    }

    fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut b = self.offsets.capacity() * 4 + self.arena.capacity() * 4 + self.all.capacity() * 4;
        b += self.by_name.capacity() * (size_of::<Arc<str>>() + 4 + 1);
        for t in &self.names {
            b += size_of::<NameTable>();
            b += t.by_value.capacity() * (size_of::<Arc<str>>() + 4 + 1);
            // BTreeMap: about one (key, value) per entry plus node overhead.
            b += t.sorted.len() * (size_of::<Arc<str>>() + 4 + 8);
            b += t.slots.capacity() * size_of::<ValueSlot>() + t.free.capacity() * 4;
            for s in &t.slots {
                b += s.postings.capacity() * 4 + s.bits.as_ref().map_or(0, |w| w.capacity() * 8);
            }
        }
        b
    }

    fn string_bytes(&self) -> usize {
        self.names.iter().map(|t| t.name.len() + t.sorted.keys().map(|k| k.len()).sum::<usize>()).sum()
    }
}

/// The head block's inverted index; see the [module docs](self) for layout and concurrency.
///
/// ```
/// use telemetry_core::{Labels, Matcher};
/// use telemetry_index::MemIndex;
///
/// let idx = MemIndex::new();
/// idx.add(0, &Labels::from_pairs([("__name__", "up"), ("job", "node")]).unwrap()).unwrap();
/// idx.add(1, &Labels::from_pairs([("__name__", "up"), ("job", "api")]).unwrap()).unwrap();
/// idx.add(2, &Labels::from_pairs([("__name__", "up")]).unwrap()).unwrap();
///
/// let sel = idx.postings_for_matchers(&[Matcher::equal("__name__", "up"), Matcher::not_equal("job", "api")]);
/// assert_eq!(sel.as_slice(), &[0, 2]); // series 2 has no `job`, so `job!="api"` keeps it
/// assert_eq!(idx.label_values("job", &[]), ["api", "node"]);
/// ```
#[derive(Default)]
pub struct MemIndex {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for MemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemIndex").field("series", &self.num_series()).finish()
    }
}

/// A consistent read view of a [`MemIndex`] (holds its read lock; writers wait while it lives).
pub struct MemReader<'a> {
    inner: RwLockReadGuard<'a, Inner>,
}

impl std::fmt::Debug for MemReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemReader").field("series", &self.inner.all.len()).finish()
    }
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        MemIndex::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A writer that panicked mid-update cannot leave a torn series: `add` mutates only
        // after its checks pass and finishes without fallible steps. Keep serving.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A read view for several calls on one consistent state.
    pub fn reader(&self) -> MemReader<'_> {
        MemReader { inner: self.read() }
    }

    /// Indexes series `r` with `labels`. References are dense integers chosen by the caller
    /// (the head hands them out in creation order; any order works, increasing is cheapest).
    ///
    /// # Errors
    /// [`IndexError::DuplicateSeries`] when `r` is already indexed, [`IndexError::EmptyLabels`]
    /// for an empty label set, [`IndexError::RefOutOfRange`] for `u32::MAX`.
    pub fn add(&self, r: SeriesRef, labels: &Labels) -> Result<(), IndexError> {
        self.write().add(r, labels)
    }

    /// Indexes many series under one lock acquisition. Stops at the first error; the series
    /// before it stay indexed.
    ///
    /// # Errors
    /// As [`add`](Self::add), for the first series that fails.
    pub fn add_batch<'a>(&self, series: impl IntoIterator<Item = (SeriesRef, &'a Labels)>) -> Result<(), IndexError> {
        let mut g = self.write();
        for (r, l) in series {
            g.add(r, l)?;
        }
        Ok(())
    }

    /// Removes series (after retention or head truncation); unknown references are ignored.
    /// Returns how many were removed. Label values left without series disappear from
    /// listings.
    pub fn remove(&self, refs: &[SeriesRef]) -> usize {
        self.write().remove(refs)
    }

    /// Number of series indexed.
    pub fn num_series(&self) -> usize {
        self.read().all.len()
    }

    /// `true` when `r` is indexed.
    pub fn contains(&self, r: SeriesRef) -> bool {
        self.read().pairs(r).is_some()
    }

    /// The labels of series `r`.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        let g = self.read();
        g.pairs(r).map(|p| g.labels_of(p))
    }

    /// The postings of `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> Postings {
        let g = self.read();
        let p = g.by_name.get(name).map(|&n| g.names[n as usize].postings(value)).unwrap_or(&[]);
        Postings::from_sorted_unchecked(p.to_vec())
    }

    /// The series selected by `matchers` (ANDed, Prometheus semantics; see
    /// [`IndexReader::postings_for_matchers`]).
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Postings {
        self.reader().postings_for_matchers(matchers).unwrap_or_default() // ok: the in-memory reader never errs
    }

    /// Label names of the selected series (all names for no matchers), sorted.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        self.reader().label_names(matchers).unwrap_or_default() // ok: the in-memory reader never errs
    }

    /// Values of `name` among the selected series (all values for no matchers), sorted.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        self.reader().label_values(name, matchers).unwrap_or_default() // ok: the in-memory reader never errs
    }

    /// Series per metric name, sorted by name.
    pub fn series_count_by_metric_name(&self) -> Vec<(String, usize)> {
        self.reader().series_count_by_metric_name().unwrap_or_default() // ok: the in-memory reader never errs
    }

    /// The `n` label pairs with the most series, most first.
    pub fn top_label_pairs(&self, n: usize) -> Vec<LabelPairCount> {
        self.reader().top_label_pairs(n).unwrap_or_default() // ok: the in-memory reader never errs
    }

    /// Bytes allocated by the index structures, excluding the label strings themselves
    /// (estimated for hash and B-tree maps from their capacity and entry sizes).
    pub fn memory_bytes(&self) -> usize {
        self.read().memory_bytes()
    }

    /// Bytes of the distinct label name and value strings.
    pub fn string_bytes(&self) -> usize {
        self.read().string_bytes()
    }

    /// Releases spare capacity of the internal vectors (after a bulk load).
    pub fn shrink_to_fit(&self) {
        let mut g = self.write();
        if g.dead_words > 0 {
            g.compact();
        }
        g.arena.shrink_to_fit();
        g.offsets.shrink_to_fit();
        g.all.shrink_to_fit();
        for t in &mut g.names {
            t.slots.shrink_to_fit();
            for s in &mut t.slots {
                s.postings.shrink_to_fit();
                if let Some(b) = &mut s.bits {
                    b.shrink_to_fit();
                }
            }
        }
    }
}

impl IndexReader for MemReader<'_> {
    fn num_series(&self) -> usize {
        self.inner.all.len()
    }

    fn all_label_names(&self) -> Result<Vec<String>, IndexError> {
        let mut v: Vec<String> =
            self.inner.names.iter().filter(|t| !t.sorted.is_empty()).map(|t| t.name.to_string()).collect();
        v.sort_unstable();
        Ok(v)
    }

    fn visit_values(&self, name: &str, from: &str, f: &mut dyn FnMut(&str) -> bool) -> Result<(), IndexError> {
        if let Some(&n) = self.inner.by_name.get(name) {
            for (v, _) in self.inner.names[n as usize].sorted.range::<str, _>((Bound::Included(from), Bound::Unbounded))
            {
                if !f(v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, [SeriesRef]>, IndexError> {
        let g = &self.inner;
        Ok(Cow::Borrowed(g.by_name.get(name).map(|&n| g.names[n as usize].postings(value)).unwrap_or(&[])))
    }

    fn all_postings(&self) -> Result<Cow<'_, [SeriesRef]>, IndexError> {
        Ok(Cow::Borrowed(&self.inner.all))
    }

    fn postings_bitmap(&self, name: &str, value: &str) -> Option<&[u64]> {
        let g = &self.inner;
        let t = &g.names[*g.by_name.get(name)? as usize];
        t.slots[*t.by_value.get(value)? as usize].bits.as_deref()
    }

    fn series_labels(&self, r: SeriesRef) -> Result<Option<Labels>, IndexError> {
        Ok(self.inner.pairs(r).map(|p| self.inner.labels_of(p)))
    }

    fn label_names_of(&self, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError> {
        let g = &self.inner;
        let mut seen = vec![false; g.names.len()];
        for &r in refs {
            if let Some(p) = g.pairs(r) {
                for pair in p.chunks_exact(2) {
                    seen[pair[0] as usize] = true;
                }
            }
        }
        let mut v: Vec<String> =
            seen.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| g.names[i].name.to_string()).collect();
        v.sort_unstable();
        Ok(v)
    }

    fn label_values_of(&self, name: &str, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError> {
        let g = &self.inner;
        let Some(&n) = g.by_name.get(name) else { return Ok(Vec::new()) };
        let t = &g.names[n as usize];
        let mut seen = vec![false; t.slots.len()];
        for &r in refs {
            if let Some(p) = g.pairs(r)
                && let Some(pair) = p.chunks_exact(2).find(|pair| pair[0] == n)
            {
                seen[pair[1] as usize] = true;
            }
        }
        let mut v: Vec<String> =
            seen.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| t.slots[i].value.to_string()).collect();
        v.sort_unstable();
        Ok(v)
    }
}
