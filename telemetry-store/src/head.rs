//! The head block: recent, writable data in memory, made durable by the WAL.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use smallvec::SmallVec;
use telemetry_core::{Fingerprint, Label, Labels, Matcher, matches_all};

use crate::SeriesRef;
use crate::error::{AppendError, HeadError};
use crate::record::{self, Record, SamplesEncoder};
use crate::series::{Accepted, MemSeries, Refusal, Rules, SeriesData, prefetch_read};
use crate::wal::{CheckpointReport, ReplayReport, Wal, WalOptions};
use telemetry_index::MemIndex;

/// Head configuration. Every field has a default (see [`HeadOptions::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadOptions {
    /// A chunk is cut after this many samples (default 120, as Prometheus).
    pub chunk_max_samples: usize,
    /// A chunk is also cut when a sample crosses a multiple of this many milliseconds (default
    /// 2 hours, the block range, so no chunk straddles a block boundary); 0 disables.
    pub chunk_range_ms: i64,
    /// Samples up to this many milliseconds older than their series' newest sample are
    /// accepted out of order and merged at read time (default 5 minutes); older ones are
    /// refused with [`RefuseReason::TooOld`](crate::RefuseReason::TooOld).
    pub out_of_order_window_ms: i64,
    /// [`Head::gc`] removes series whose newest sample is older than this (default 1 hour).
    pub gc_idle_ms: i64,
    /// WAL settings; used by [`Head::open`].
    pub wal: WalOptions,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            chunk_max_samples: 120,
            chunk_range_ms: 2 * 3_600_000,
            out_of_order_window_ms: 5 * 60_000,
            gc_idle_ms: 3_600_000,
            wal: WalOptions::default(),
        }
    }
}

impl HeadOptions {
    fn rules(&self) -> Rules {
        Rules {
            chunk_max_samples: self.chunk_max_samples.clamp(1, u16::MAX as usize),
            chunk_range_ms: self.chunk_range_ms.max(0),
            ooo_window_ms: self.out_of_order_window_ms.max(0),
        }
    }
}

/// Counters a user can read with [`Head::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    /// Series in the head.
    pub series: u64,
    /// Series created since open (replay included).
    pub series_created: u64,
    /// Series removed by [`Head::gc`] and [`Head::truncate`].
    pub series_removed: u64,
    /// Samples stored since open (replay included), out-of-order ones included.
    pub samples_appended: u64,
    /// Of those, samples stored out of order.
    pub samples_out_of_order: u64,
    /// Exact duplicates (same timestamp and value bits) accepted without storing again.
    pub samples_duplicate_ignored: u64,
    /// Samples refused because they were older than the out-of-order window.
    pub refused_too_old: u64,
    /// Samples refused because a different value exists at their timestamp.
    pub refused_duplicate: u64,
    /// Chunks in memory (full, open and out-of-order).
    pub chunks: u64,
    /// Approximate heap bytes: series, labels, chunks, index.
    pub bytes_in_memory: u64,
    /// Bytes of WAL on disk (0 without a WAL).
    pub wal_bytes: u64,
    /// Oldest and newest timestamp held, if any sample is.
    pub time_range: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
struct Counters {
    series_created: AtomicU64,
    series_removed: AtomicU64,
    appended: AtomicU64,
    ooo: AtomicU64,
    dup_ignored: AtomicU64,
    refused_too_old: AtomicU64,
    refused_duplicate: AtomicU64,
}

/// A hasher for keys that are already hashes (fingerprints, references).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fingerprints are xxHash64 output; references are spread with a multiply.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Series slots per [`Slab`] page.
const PAGE_BITS: u32 = 10;
const PAGE_LEN: usize = 1 << PAGE_BITS;

struct Page {
    live: usize,
    slots: Box<[Option<Arc<MemSeries>>]>,
}

/// Series by reference: pages of [`PAGE_LEN`] slots indexed by the reference's high bits.
///
/// References are handed out in increasing order and never reused, so series created
/// together sit next to each other (an ingest round touches the slots in order), and a
/// page whose series are all removed is freed: memory follows the live series, plus 8 bytes
/// per page for the directory.
#[derive(Default)]
pub(crate) struct Slab {
    pages: Vec<Option<Page>>,
}

impl Slab {
    #[inline]
    pub(crate) fn get(&self, r: u64) -> Option<&Arc<MemSeries>> {
        let p = self.pages.get((r >> PAGE_BITS) as usize)?.as_ref()?;
        p.slots[(r as usize) & (PAGE_LEN - 1)].as_ref()
    }

    pub(crate) fn contains_key(&self, r: u64) -> bool {
        self.get(r).is_some()
    }

    fn insert(&mut self, r: u64, s: Arc<MemSeries>) {
        let pi = (r >> PAGE_BITS) as usize;
        if self.pages.len() <= pi {
            self.pages.resize_with(pi + 1, || None);
        }
        let page = self.pages[pi].get_or_insert_with(|| Page { live: 0, slots: vec![None; PAGE_LEN].into() });
        let slot = &mut page.slots[(r as usize) & (PAGE_LEN - 1)];
        if slot.is_none() {
            page.live += 1;
        }
        *slot = Some(s);
    }

    fn remove(&mut self, r: u64) -> Option<Arc<MemSeries>> {
        let pi = (r >> PAGE_BITS) as usize;
        let page = self.pages.get_mut(pi)?.as_mut()?;
        let s = page.slots[(r as usize) & (PAGE_LEN - 1)].take()?;
        page.live -= 1;
        if page.live == 0 {
            self.pages[pi] = None;
            while matches!(self.pages.last(), Some(None)) {
                self.pages.pop();
            }
        }
        Some(s)
    }

    /// Series in reference order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.pages.iter().flatten().flat_map(|p| p.slots.iter().flatten())
    }

    fn heap_bytes(&self) -> usize {
        self.pages.capacity() * std::mem::size_of::<Option<Page>>()
            + self.pages.iter().flatten().count() * PAGE_LEN * std::mem::size_of::<Option<Arc<MemSeries>>>()
    }
}

/// Series by fingerprint: open addressing with linear probing over one array of
/// `(fingerprint, series)` slots (16 bytes), so that a look-up of a known series touches one
/// slot (one cache line, as a rule) and then the series. Series whose fingerprints collide
/// sit in the same probe run and are told apart by their labels.
#[derive(Default)]
struct FpTable {
    slots: Vec<(u64, Option<Arc<MemSeries>>)>,
    len: usize,
    /// Bumped whenever an entry may move to another slot or leave the table (growth,
    /// removal); an insert into a free slot leaves it alone. A slot index found under one
    /// value still names the same entry while the value is unchanged.
    moves: u64,
}

impl FpTable {
    /// Fibonacci hashing of the (already uniform) fingerprint into a slot.
    #[inline]
    fn home(&self, fp: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (fp.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    #[inline]
    fn find(&self, fp: u64, is: impl Fn(&MemSeries) -> bool) -> Option<&Arc<MemSeries>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(fp);
        loop {
            let (f, s) = &self.slots[i];
            let s = s.as_ref()?;
            if *f == fp && is(s) {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
    }

    /// Asks the CPU to bring `fp`'s home slot into cache (a hint; never faults).
    #[inline(always)]
    fn prefetch(&self, fp: u64) {
        if !self.slots.is_empty() {
            // The home slot and the next one (the probe run goes on there about half the
            // time, and a quarter of home slots end their cache line).
            let p = self.slots.as_ptr().wrapping_add(self.home(fp));
            prefetch_read(p.cast());
            prefetch_read(p.wrapping_add(1).cast());
        }
    }

    /// The slot of the first entry filed under `fp` (its labels still to be compared).
    #[inline]
    fn probe(&self, fp: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(fp);
        loop {
            let (f, s) = &self.slots[i];
            s.as_ref()?;
            if *f == fp {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, fp: u64, s: Arc<MemSeries>) {
        // At most three quarters full: probe runs stay short.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.moves += 1;
            let cap = (self.slots.len() * 2).max(16);
            let old = std::mem::replace(&mut self.slots, vec![(0, None); cap]);
            self.len = 0;
            for (f, s) in old {
                if let Some(s) = s {
                    self.place(f, s);
                }
            }
        }
        self.place(fp, s);
    }

    fn place(&mut self, fp: u64, s: Arc<MemSeries>) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(fp);
        while self.slots[i].1.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = (fp, Some(s));
        self.len += 1;
    }

    /// Removes the series `r` filed under `fp` (backward-shift deletion: no tombstones).
    fn remove(&mut self, fp: u64, r: SeriesRef) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(fp);
        loop {
            match &self.slots[i].1 {
                None => return,
                Some(s) if self.slots[i].0 == fp && s.series_ref == r => break,
                Some(_) => i = (i + 1) & mask,
            }
        }
        self.slots[i] = (0, None);
        self.len -= 1;
        self.moves += 1;
        // Move later members of the run back into the hole when their home allows it.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let Some(_) = &self.slots[j].1 else { break };
            let home = self.home(self.slots[j].0);
            // The entry at j may move to the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots.swap(hole, j);
                hole = j;
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(u64, Option<Arc<MemSeries>>)>()
    }
}

#[derive(Default)]
pub(crate) struct Table {
    by_fp: FpTable,
    pub(crate) by_ref: Slab,
    /// WAL references of series that were re-created under another reference during replay.
    aliases: IdMap<SeriesRef>,
    /// Label names and values of the series, each string stored once and shared.
    symbols: HashSet<Arc<str>>,
    next_ref: u64,
}

impl Table {
    #[inline]
    fn lookup_key(&self, fp: Fingerprint, key: &[u8]) -> Option<&Arc<MemSeries>> {
        self.by_fp.find(fp.0, |s| *s.key == *key)
    }

    fn lookup(&self, labels: &Labels, fp: Fingerprint) -> Option<&Arc<MemSeries>> {
        self.by_fp.find(fp.0, |s| s.labels == *labels)
    }

    fn insert(&mut self, s: Arc<MemSeries>) {
        self.by_ref.insert(s.series_ref.0, s.clone());
        self.by_fp.insert(s.fingerprint.0, s);
    }

    fn remove(&mut self, s: &MemSeries) {
        self.by_ref.remove(s.series_ref.0);
        self.by_fp.remove(s.fingerprint.0, s.series_ref);
    }

    /// The labels with every string replaced by the table's shared copy.
    fn intern(&mut self, labels: &Labels) -> Labels {
        let mut one = |x: &Arc<str>| match self.symbols.get(&**x) {
            Some(s) => s.clone(),
            None => {
                self.symbols.insert(x.clone());
                x.clone()
            }
        };
        Labels::from_sorted_unchecked(
            labels.iter().map(|l| Label::new(one(&l.name), one(&l.value))).collect::<SmallVec<[Label; 8]>>(),
        )
    }

    /// Forgets the strings no series uses any more.
    fn sweep_symbols(&mut self) {
        self.symbols.retain(|s| Arc::strong_count(s) > 1);
    }

    fn heap_bytes(&self) -> usize {
        self.by_fp.heap_bytes()
            + self.by_ref.heap_bytes()
            + self.symbols.capacity() * (std::mem::size_of::<Arc<str>>() + 1)
            + self.symbols.iter().map(|s| s.len() + 16).sum::<usize>()
    }
}

pub(crate) struct CommitState {
    buf: Vec<u8>,
}

/// The head block: the in-memory, writable part of the store, made durable by a WAL.
///
/// - Series are found by [`Fingerprint`] (collisions resolved by comparing labels) and get a
///   [`SeriesRef`] that never changes while the series lives and is never reused.
/// - Each series has an open XOR chunk (Prometheus's encoding, bit for bit); a chunk is cut
///   after [`HeadOptions::chunk_max_samples`] samples or at a multiple of
///   [`HeadOptions::chunk_range_ms`]; cut chunks are kept as immutable shared byte slices.
/// - Writes go through an [`Appender`]: `append` (one sample, by [`Labels`], label pairs or
///   [`SeriesRef`]; or a batch of samples by label pairs with
///   [`Appender::append_pairs_batch`], the fast path for heads with many series) validates
///   and buffers, [`Appender::commit`]
///   stores the batch, writes one WAL write for it and returns when it is durable under the
///   [`SyncPolicy`](crate::SyncPolicy). Readers ([`Queryable`](telemetry_core::Queryable))
///   run concurrently and may see a batch's samples while its commit is still in progress;
///   only a returned commit is a promise.
/// - Ordering rules per series: a sample newer than the newest is appended; one at the same
///   timestamp with the same value bits is an idempotent duplicate; one with other bits is
///   refused ([`RefuseReason::Duplicate`](crate::RefuseReason::Duplicate)); an older one is accepted within
///   [`HeadOptions::out_of_order_window_ms`] of the newest (merged at read time) and refused
///   beyond ([`RefuseReason::TooOld`](crate::RefuseReason::TooOld)). Refusals are counted in [`HeadStats`].
pub struct Head {
    opts: HeadOptions,
    rules: Rules,
    pub(crate) table: RwLock<Table>,
    pub(crate) index: MemIndex,
    commit: Mutex<CommitState>,
    wal: Option<Wal>,
    failed: AtomicBool,
    counters: Counters,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head").field("opts", &self.opts).field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Poisoning means a panic while a writer held the lock; table and index mutations are
    // single inserts/removes that leave the maps consistent.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Head {
    /// A head without a WAL: nothing survives the process. For tests, benchmarks and data that
    /// can be re-derived.
    pub fn in_memory(opts: HeadOptions) -> Head {
        let rules = opts.rules();
        Head {
            opts,
            rules,
            table: RwLock::new(Table::default()),
            index: MemIndex::new(),
            commit: Mutex::new(CommitState { buf: Vec::new() }),
            wal: None,
            failed: AtomicBool::new(false),
            counters: Counters::default(),
            dir: None,
        }
    }

    /// Opens the head whose WAL lives in `dir/wal` (created if missing), replaying it: the head
    /// is rebuilt exactly as the acknowledged commits left it. A torn or corrupt WAL tail is
    /// cut at the last good record with a warning (see [`ReplayReport::corruption`]).
    ///
    /// # Errors
    /// [`HeadError::Wal`] when the directory cannot be read or written.
    pub fn open(dir: impl AsRef<Path>, opts: HeadOptions) -> Result<(Head, ReplayReport), HeadError> {
        let mut head = Head::in_memory(opts);
        let dir = dir.as_ref().to_path_buf();
        let mut unknown_refs = 0u64;
        let (wal, report) = Wal::open(dir.join("wal"), head.opts.wal, |rec| head.replay(rec, &mut unknown_refs))?;
        if unknown_refs > 0 {
            tracing::warn!(samples = unknown_refs, "WAL samples for unknown series references skipped during replay");
        }
        write(&head.table).sweep_symbols();
        head.wal = Some(wal);
        head.dir = Some(dir);
        Ok((head, report))
    }

    fn replay(&self, rec: &Record, unknown: &mut u64) {
        match rec {
            Record::Series(list) => {
                let mut t = write(&self.table);
                for s in list {
                    let fp = s.labels.fingerprint();
                    if let Some(existing) = t.lookup(&s.labels, fp) {
                        let to = existing.series_ref;
                        if to != s.series_ref {
                            t.aliases.insert(s.series_ref.0, to);
                        }
                        continue;
                    }
                    t.aliases.remove(&s.series_ref.0);
                    match self.insert_series(&mut t, s.labels.clone(), fp, Some(s.series_ref)) {
                        Ok(series) => series.logged.store(true, Ordering::Relaxed),
                        Err(e) => tracing::warn!(series_ref = s.series_ref.0, error = %e, "WAL series record skipped"),
                    }
                }
            }
            Record::Samples(list) => {
                let t = read(&self.table);
                let mut cur: Option<(SeriesRef, &Arc<MemSeries>)> = None;
                let mut guard: Option<std::sync::MutexGuard<'_, SeriesData>> = None;
                let (mut ok, mut ooo, mut dup) = (0u64, 0u64, 0u64);
                for s in list {
                    if cur.map(|c| c.0) != Some(s.series_ref) {
                        if let (Some((_, x)), Some(g)) = (cur, guard.as_ref()) {
                            x.newest.store(g.max_t, Ordering::Relaxed);
                        }
                        guard = None;
                        let r = t.aliases.get(&s.series_ref.0).copied().unwrap_or(s.series_ref);
                        cur = t.by_ref.get(r.0).map(|x| (s.series_ref, x));
                        if let Some((_, x)) = cur {
                            guard = Some(x.lock());
                        }
                    }
                    let Some(g) = guard.as_mut() else {
                        *unknown += 1;
                        continue;
                    };
                    match g.insert(s.timestamp_ms, s.value, &self.rules) {
                        Ok(Accepted::Stored) => ok += 1,
                        Ok(Accepted::StoredOutOfOrder) => {
                            ok += 1;
                            ooo += 1;
                        }
                        Ok(Accepted::Duplicate) => dup += 1,
                        // Replay re-applies the rules that accepted these samples; a refusal
                        // here means a record older than a checkpoint cut, which is not data.
                        Err(_) => {}
                    }
                }
                if let Some((_, x)) = cur
                    && let Some(g) = guard.as_ref()
                {
                    x.newest.store(g.max_t, Ordering::Relaxed);
                }
                self.counters.appended.fetch_add(ok, Ordering::Relaxed);
                self.counters.ooo.fetch_add(ooo, Ordering::Relaxed);
                self.counters.dup_ignored.fetch_add(dup, Ordering::Relaxed);
            }
            Record::Dropped(refs) => {
                let mut t = write(&self.table);
                for r in refs {
                    let r = t.aliases.remove(&r.0).unwrap_or(*r);
                    if let Some(s) = t.by_ref.get(r.0).cloned() {
                        t.remove(&s);
                        self.index.remove(&[s.series_ref.index_ref()]);
                        s.removed.store(true, Ordering::Relaxed);
                        self.counters.series_removed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn insert_series(
        &self,
        t: &mut Table,
        labels: Labels,
        fp: Fingerprint,
        r: Option<SeriesRef>,
    ) -> Result<Arc<MemSeries>, AppendError> {
        let series_ref = r.unwrap_or(SeriesRef(t.next_ref));
        if labels.is_empty() {
            return Err(AppendError::EmptyLabels);
        }
        if series_ref.0 >= u32::MAX as u64 {
            return Err(AppendError::TooManySeries);
        }
        self.index
            .add(series_ref.index_ref(), &labels)
            .map_err(|e| AppendError::Index { series: labels.to_string(), reason: e.to_string() })?;
        t.next_ref = t.next_ref.max(series_ref.0 + 1);
        let labels = t.intern(&labels);
        let s = Arc::new(MemSeries::new(labels, fp, series_ref));
        t.insert(s.clone());
        self.counters.series_created.fetch_add(1, Ordering::Relaxed);
        Ok(s)
    }

    fn get_or_create(&self, labels: &Labels) -> Result<Arc<MemSeries>, AppendError> {
        let fp = labels.fingerprint();
        if let Some(s) = read(&self.table).lookup(labels, fp) {
            return Ok(s.clone());
        }
        let mut t = write(&self.table);
        if let Some(s) = t.lookup(labels, fp) {
            return Ok(s.clone());
        }
        self.insert_series(&mut t, labels.clone(), fp, None)
    }

    /// The options the head runs with.
    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    /// The WAL, when the head was opened with one.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    /// A new appender. Appenders are independent; many may be used from different threads.
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            head: self,
            pending: Vec::new(),
            refused: 0,
            key: Vec::with_capacity(256),
            batch: BatchScratch::default(),
        }
    }

    /// The reference of the series with these labels, if the head has it.
    pub fn series_ref(&self, labels: &Labels) -> Option<SeriesRef> {
        read(&self.table).lookup(labels, labels.fingerprint()).map(|s| s.series_ref)
    }

    /// The labels of a series reference, if the head has it.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        read(&self.table).by_ref.get(r.0).map(|s| s.labels.clone())
    }

    /// Current statistics. Walks every series (locking each briefly): call it for monitoring,
    /// not per sample.
    pub fn stats(&self) -> HeadStats {
        let (series, table_bytes) = {
            let t = read(&self.table);
            (t.by_ref.values().cloned().collect::<Vec<Arc<MemSeries>>>(), t.heap_bytes())
        };
        let mut chunks = 0u64;
        let mut bytes = table_bytes as u64;
        let mut range: Option<(i64, i64)> = None;
        for s in &series {
            let d = s.lock();
            chunks += d.num_chunks() as u64;
            // The series (with its reference-count header), its key, its label array beyond
            // the inline ones (the strings are the table's), its chunks.
            bytes += (d.heap_bytes()
                + std::mem::size_of::<MemSeries>()
                + 16
                + s.key.len()
                + 16
                + if s.labels.len() > telemetry_core::labels::INLINE_LABELS { s.labels.len() * 32 } else { 0 })
                as u64;
            if let (Some(a), Some(b)) = (d.min_time(), d.max_time()) {
                range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
        bytes += (self.index.memory_bytes() + self.index.string_bytes()) as u64;
        let c = &self.counters;
        HeadStats {
            series: series.len() as u64,
            series_created: c.series_created.load(Ordering::Relaxed),
            series_removed: c.series_removed.load(Ordering::Relaxed),
            samples_appended: c.appended.load(Ordering::Relaxed),
            samples_out_of_order: c.ooo.load(Ordering::Relaxed),
            samples_duplicate_ignored: c.dup_ignored.load(Ordering::Relaxed),
            refused_too_old: c.refused_too_old.load(Ordering::Relaxed),
            refused_duplicate: c.refused_duplicate.load(Ordering::Relaxed),
            chunks,
            bytes_in_memory: bytes,
            wal_bytes: self.wal.as_ref().map_or(0, |w| w.size_bytes()),
            time_range: range,
        }
    }

    fn count_refusal(&self, r: &Refusal) {
        match r {
            Refusal::TooOld { .. } => self.counters.refused_too_old.fetch_add(1, Ordering::Relaxed),
            Refusal::Duplicate { .. } => self.counters.refused_duplicate.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn check_failed(&self) -> Result<(), HeadError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(HeadError::Failed);
        }
        Ok(())
    }

    /// Removes series whose newest sample is older than `now_ms - gc_idle_ms`, logging their
    /// removal to the WAL so that replay does not bring them back. Returns how many went.
    ///
    /// Their samples go with them: for a head used alone, this is its retention. A
    /// [`Db`](crate::db::Db) does not call it (its head's data leaves by being persisted to
    /// blocks, then [`truncate`](Self::truncate)). Appenders holding a removed series
    /// re-create it on commit.
    ///
    /// # Errors
    /// [`HeadError::Wal`] when the removal record cannot be written.
    pub fn gc(&self, now_ms: i64) -> Result<usize, HeadError> {
        let cutoff = now_ms.saturating_sub(self.opts.gc_idle_ms);
        self.remove_series_where(|d| d.max_time().is_none_or(|t| t < cutoff))
    }

    fn remove_series_where(&self, pred: impl Fn(&SeriesData) -> bool) -> Result<usize, HeadError> {
        let mut st = lock(&self.commit);
        self.check_failed()?;
        let victims: Vec<Arc<MemSeries>> =
            read(&self.table).by_ref.values().filter(|s| pred(&s.lock())).cloned().collect();
        if victims.is_empty() {
            return Ok(0);
        }
        {
            let mut t = write(&self.table);
            for s in &victims {
                t.remove(s);
                s.removed.store(true, Ordering::Relaxed);
            }
            let refs: Vec<u32> = victims.iter().map(|s| s.series_ref.index_ref()).collect();
            self.index.remove(&refs);
        }
        let n = victims.len();
        self.counters.series_removed.fetch_add(n as u64, Ordering::Relaxed);
        let logged: Vec<SeriesRef> =
            victims.iter().filter(|s| s.logged.load(Ordering::Relaxed)).map(|s| s.series_ref).collect();
        drop(victims);
        write(&self.table).sweep_symbols();
        if let Some(wal) = &self.wal
            && !logged.is_empty()
        {
            st.buf.clear();
            record::encode_dropped(&mut st.buf, &logged);
            if let Err(e) = wal.log(&st.buf) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
        }
        Ok(n)
    }

    /// Drops from memory every chunk that ends before `mint_ms`, removes series left empty,
    /// and checkpoints the WAL so that it keeps only series still in the head and samples at
    /// or after `mint_ms`.
    ///
    /// The hook for block persistence: [`Db`](crate::db::Db) calls it once a block durably
    /// holds every sample before `mint_ms`. Without a WAL only the memory part runs.
    ///
    /// # Errors
    /// [`HeadError::Wal`] when the checkpoint cannot be written; the WAL is then unchanged.
    pub fn truncate(&self, mint_ms: i64) -> Result<Option<CheckpointReport>, HeadError> {
        for s in read(&self.table).by_ref.values().cloned().collect::<Vec<_>>() {
            s.lock().truncate_before(mint_ms);
        }
        self.remove_series_where(|d| d.is_empty())?;
        let Some(wal) = &self.wal else { return Ok(None) };
        let keep = |r: SeriesRef| read(&self.table).by_ref.contains_key(r.0);
        Ok(Some(wal.checkpoint(&keep, mint_ms)?))
    }

    /// Series matching `matchers` (all for none), unsorted.
    pub(crate) fn matching_series(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        if matchers.is_empty() {
            return read(&self.table).by_ref.values().cloned().collect();
        }
        let refs = self.index.postings_for_matchers(matchers);
        let t = read(&self.table);
        refs.iter()
            .filter_map(|r| t.by_ref.get(r as u64))
            .filter(|s| matches_all(matchers, &s.labels))
            .cloned()
            .collect()
    }
}

/// Builds a batch of samples for one [`Head::commit`](Appender::commit).
///
/// `append*` checks each sample against what its series already holds and refuses it at once
/// (typed error, counted) when it is too old or a conflicting duplicate; accepted samples wait
/// in the appender until [`commit`](Self::commit). Dropping an appender without committing
/// discards its samples ([`rollback`](Self::rollback) says so explicitly). New series are
/// created (and indexed) at their first append, and logged to the WAL by the first commit
/// that carries one of their samples.
pub struct Appender<'h> {
    head: &'h Head,
    pending: Vec<(Arc<MemSeries>, i64, f64)>,
    refused: u64,
    /// Reused buffer for the byte key of parsed pairs.
    key: Vec<u8>,
    /// Reused buffers of [`append_pairs_batch`](Self::append_pairs_batch).
    batch: BatchScratch,
}

/// The keys and fingerprints of one [`Appender::append_pairs_batch`] call.
#[derive(Default)]
struct BatchScratch {
    /// The samples' series keys (see [`MemSeries::key`]), one after another.
    keys: Vec<u8>,
    /// Where each sample's key ends in `keys`.
    ends: Vec<usize>,
    /// Each sample's fingerprint.
    fps: Vec<u64>,
}

impl BatchScratch {
    #[inline]
    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.keys[start..self.ends[i]]
    }
}

/// Samples between two stages of [`Appender::append_pairs_batch`]'s pipeline: each stage
/// starts a memory load this many samples before the next stage needs it.
const BATCH_LAG: usize = 8;
/// [`Appender::append_pairs_batch`] works through a batch in parts of this many samples.
const BATCH_PART: usize = 4096;
/// Ring of probed slots in that pipeline: a power of two above `2 * BATCH_LAG`.
const BATCH_RING: usize = 4 * BATCH_LAG;
/// How far ahead of the sample it stores [`Appender::commit`] asks for a series' lock and
/// open chunk state (the batch path asks only for the fields it reads itself).
const COMMIT_AHEAD: usize = 8;

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").field("pending", &self.pending.len()).finish_non_exhaustive()
    }
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitSummary {
    /// Samples stored (out-of-order ones included).
    pub appended: u64,
    /// Exact duplicates already present.
    pub duplicates_ignored: u64,
    /// Samples refused at commit: they passed the append-time check but conflicted with a
    /// sample committed since (by another appender or earlier in this batch).
    pub refused: u64,
    /// Samples refused earlier by `append*` in this batch.
    pub refused_at_append: u64,
}

impl Appender<'_> {
    #[inline]
    fn push(&mut self, s: Arc<MemSeries>, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        s.prefetch();
        self.push_prefetched(s, t, v)
    }

    /// [`push`](Self::push) for a series whose ingest fields were already asked for.
    #[inline]
    fn push_prefetched(&mut self, s: Arc<MemSeries>, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let r = s.series_ref;
        if t > s.newest.load(Ordering::Relaxed) {
            // Newer than every committed sample: accepted (commit re-checks against samples
            // committed in the meantime).
            self.pending.push((s, t, v));
            return Ok(r);
        }
        let res = s.lock().classify(t, v, &self.head.rules);
        match res {
            Ok(_) => {
                self.pending.push((s, t, v));
                Ok(r)
            }
            Err(refusal) => {
                self.head.count_refusal(&refusal);
                self.refused += 1;
                Err(AppendError::refused(&s.labels, t, v, refusal))
            }
        }
    }

    /// Adds a sample of the series `labels`, creating the series if new.
    ///
    /// # Errors
    /// [`AppendError::Refused`] when the sample is too old or conflicts with a stored one.
    pub fn append(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) -> Result<SeriesRef, AppendError> {
        let s = self.head.get_or_create(labels)?;
        self.push(s, timestamp_ms, value)
    }

    /// Adds a sample of the series given by label pairs **sorted by name** (as a parser
    /// produces them after sorting in place). For a series the head knows, this hashes the
    /// bytes and compares them with the stored labels: nothing is allocated. For a new series
    /// the pairs are validated into [`Labels`]. For many samples at once,
    /// [`append_pairs_batch`](Self::append_pairs_batch) does the same faster.
    ///
    /// # Errors
    /// [`AppendError::InvalidLabels`] for invalid pairs of a new series;
    /// [`AppendError::Refused`] as [`append`](Self::append).
    #[inline]
    pub fn append_pairs<'a, I>(&mut self, pairs: I, timestamp_ms: i64, value: f64) -> Result<SeriesRef, AppendError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        // The key is exactly the byte string the fingerprint hashes (`name 0xff value 0xff …`,
        // see telemetry-core's `Fingerprint`), so one pass builds both, and a known series is
        // confirmed with one comparison.
        self.key.clear();
        for (n, v) in pairs.clone() {
            self.key.extend_from_slice(n.as_bytes());
            self.key.push(0xff);
            self.key.extend_from_slice(v.as_bytes());
            self.key.push(0xff);
        }
        let fp = Fingerprint::of_key_bytes(&self.key);
        debug_assert_eq!(fp, Fingerprint::of_sorted_pairs(pairs.clone()));
        let found = read(&self.head.table).lookup_key(fp, &self.key).cloned();
        let s = match found {
            Some(s) => s,
            None => {
                let labels = Labels::from_pairs(pairs).map_err(AppendError::InvalidLabels)?;
                self.head.get_or_create(&labels)?
            }
        };
        self.push(s, timestamp_ms, value)
    }

    /// Adds a batch of samples given by label pairs, each `(pairs, timestamp_ms, value)` with
    /// the pairs **sorted by name** as for [`append_pairs`](Self::append_pairs). The outcome is
    /// that of calling `append_pairs` on each sample in slice order: `results` is cleared and
    /// then holds one entry per sample, `results[i]` being what `append_pairs` would have
    /// returned for `batch[i]` (the series reference, or the typed error, counted in
    /// [`HeadStats`] as there); accepted samples wait for [`commit`](Self::commit) in slice
    /// order; new series are created in order of first appearance. An error for one sample
    /// does not stop the others.
    ///
    /// Faster than one call per sample when the head holds many more series than fit in the
    /// CPU caches: each sample's fingerprint-table slot, series and series key are asked for
    /// (prefetched) a few samples before they are needed, so the memory latencies of
    /// neighbouring samples overlap instead of adding up, and the table's lock is taken once
    /// per batch (released only while a new series is created). A batch of a few hundred to a
    /// few thousand samples (one scrape, one remote-write request) is the intended size;
    /// `results` and the appender's buffers are reused between calls. (On 1,000,000 series,
    /// one sample each per round, 1,000 per batch and commit, the ingest bench measured about
    /// 3.0M samples/s one by one and 5.7M samples/s in batches on one core, criterion
    /// medians; see `benches/ingest.rs`.) Prefetching is x86-64 only; elsewhere the batch still saves the
    /// per-sample lock.
    ///
    /// Shapes: `pairs` is anything that yields `(name, value)` string pairs and can be cloned
    /// cheaply (an array or slice iterator of pairs, or a `map` over parsed labels): it is
    /// iterated twice per sample (to prefetch the strings and to build the key), and once more
    /// for a series the head does not know yet. Pairs that are not sorted by name, or that
    /// carry an empty value, still reach the right series, through the slow path of a new
    /// series (validation and a look-up by [`Labels`]).
    ///
    /// ```
    /// use telemetry_store::{Head, HeadOptions};
    ///
    /// let head = Head::in_memory(HeadOptions::default());
    /// let mut app = head.appender();
    /// let batch = [
    ///     ([("__name__", "up"), ("job", "node")], 1_000, 1.0),
    ///     ([("__name__", "up"), ("job", "api")], 1_000, 0.0),
    ///     ([("__name__", "up"), ("job", "node")], 2_000, 1.0),
    ///     ([("__name__", "up"), ("job", "node")], 2_000, 5.0), // another value at 2_000
    /// ];
    /// let mut results = Vec::new();
    /// app.append_pairs_batch(&batch, &mut results);
    /// assert!(results[..3].iter().all(|r| r.is_ok()));
    /// assert_eq!(results[0].as_ref().ok(), results[2].as_ref().ok()); // the same series
    /// // Checked against committed samples only: the conflict shows at commit.
    /// assert!(results[3].is_ok());
    /// let summary = app.commit()?;
    /// assert_eq!((summary.appended, summary.refused), (3, 1));
    /// # Ok::<(), telemetry_store::HeadError>(())
    /// ```
    ///
    /// # Errors
    /// None for the call as a whole. Per sample, in `results`: [`AppendError::InvalidLabels`]
    /// for invalid pairs of a new series, [`AppendError::EmptyLabels`],
    /// [`AppendError::TooManySeries`] and [`AppendError::Index`] when a new series cannot be
    /// created, [`AppendError::Refused`] as [`append`](Self::append) (too old, or a different
    /// value at a committed sample's timestamp; counted by reason in [`HeadStats`]).
    pub fn append_pairs_batch<'a, P>(
        &mut self,
        batch: &[(P, i64, f64)],
        results: &mut Vec<Result<SeriesRef, AppendError>>,
    ) where
        P: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        results.clear();
        results.reserve(batch.len());
        self.pending.reserve(batch.len());
        // Long batches in parts: the keys stay in cache between the two passes, and other
        // threads waiting to create or remove series wait for one part at most.
        for part in batch.chunks(BATCH_PART) {
            self.append_pairs_part(part, results);
        }
    }

    /// [`append_pairs_batch`](Self::append_pairs_batch) for at most [`BATCH_PART`] samples,
    /// pushing to `results`.
    fn append_pairs_part<'a, P>(&mut self, batch: &[(P, i64, f64)], results: &mut Vec<Result<SeriesRef, AppendError>>)
    where
        P: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        let mut sc = std::mem::take(&mut self.batch);
        sc.keys.clear();
        sc.ends.clear();
        sc.fps.clear();
        // Keys and fingerprints first, without the lock (as `append_pairs`).
        for (j, (pairs, _, _)) in batch.iter().enumerate() {
            if let Some((ahead, _, _)) = batch.get(j + BATCH_LAG) {
                for (n, v) in ahead.clone() {
                    prefetch_read(n.as_ptr());
                    prefetch_read(v.as_ptr());
                }
            }
            let start = sc.keys.len();
            for (n, v) in pairs.clone() {
                sc.keys.extend_from_slice(n.as_bytes());
                sc.keys.push(0xff);
                sc.keys.extend_from_slice(v.as_bytes());
                sc.keys.push(0xff);
            }
            sc.fps.push(Fingerprint::of_key_bytes(&sc.keys[start..]).0);
            sc.ends.push(sc.keys.len());
        }
        // Then a pipeline over the samples, `BATCH_LAG` apart: prefetch the home slot (up to
        // sample `p`), probe it and prefetch the series (`b`), prefetch the series key (`c`),
        // confirm and append (`d`). `slot` holds the probed slots of samples `d..b`; they
        // stay valid while the table's `moves` is unchanged.
        let head = self.head;
        let n = batch.len();
        let mut slot = [usize::MAX; BATCH_RING];
        let (mut p, mut b, mut c) = (0usize, 0usize, 0usize);
        let mut t = read(&head.table);
        for (d, (pairs, ts, v)) in batch.iter().enumerate() {
            while p < n.min(d + 3 * BATCH_LAG) {
                t.by_fp.prefetch(sc.fps[p]);
                p += 1;
            }
            while b < n.min(d + 2 * BATCH_LAG) {
                let i = t.by_fp.probe(sc.fps[b]);
                if let Some(s) = i.and_then(|i| t.by_fp.slots[i].1.as_ref()) {
                    s.prefetch_head();
                }
                slot[b % BATCH_RING] = i.unwrap_or(usize::MAX);
                b += 1;
            }
            while c < n.min(d + BATCH_LAG) {
                if let Some((_, Some(s))) = t.by_fp.slots.get(slot[c % BATCH_RING]) {
                    s.prefetch_key();
                }
                c += 1;
            }
            let key = sc.key(d);
            let fp = sc.fps[d];
            let found = match t.by_fp.slots.get(slot[d % BATCH_RING]) {
                Some((_, Some(s))) if *s.key == *key => Some(s),
                // Not in the table when probed (perhaps created since, earlier in this
                // batch), or another series with the same fingerprint: the full look-up.
                _ => t.lookup_key(Fingerprint(fp), key),
            }
            .cloned();
            let s = match found {
                Some(s) => s,
                None => {
                    let moves = t.by_fp.moves;
                    drop(t);
                    let created = Labels::from_pairs(pairs.clone())
                        .map_err(AppendError::InvalidLabels)
                        .and_then(|l| head.get_or_create(&l));
                    t = read(&head.table);
                    if t.by_fp.moves != moves {
                        // Entries moved while the lock was free: probe the rest again.
                        b = d + 1;
                        c = d + 1;
                    }
                    match created {
                        Ok(s) => s,
                        Err(e) => {
                            results.push(Err(e));
                            continue;
                        }
                    }
                }
            };
            results.push(self.push_prefetched(s, *ts, *v));
        }
        drop(t);
        self.batch = sc;
    }

    /// Adds a sample of a series by reference (as returned by an earlier `append*`).
    ///
    /// # Errors
    /// [`AppendError::UnknownRef`] when the head has no such series (never had it, or removed
    /// it); [`AppendError::Refused`] as [`append`](Self::append).
    #[inline]
    pub fn append_ref(&mut self, r: SeriesRef, timestamp_ms: i64, value: f64) -> Result<(), AppendError> {
        let s = read(&self.head.table).by_ref.get(r.0).cloned().ok_or(AppendError::UnknownRef(r))?;
        self.push(s, timestamp_ms, value).map(|_| ())
    }

    /// Removes the pending samples older than `t` and returns them with their labels (the
    /// store routes samples for an already persisted range to an out-of-order block).
    pub(crate) fn take_older_than(&mut self, t: i64) -> Vec<(Labels, i64, f64)> {
        if self.pending.iter().all(|p| p.1 >= t) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.pending.retain(|p| {
            if p.1 < t {
                out.push((p.0.labels.clone(), p.1, p.2));
                false
            } else {
                true
            }
        });
        out
    }

    /// Samples waiting for commit.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// `true` when no sample waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Discards the pending samples.
    pub fn rollback(mut self) {
        self.pending.clear();
    }

    /// Stores the pending samples in the head and writes them to the WAL as one record (after
    /// a record for the batch's new series); returns once that record is durable under the WAL's
    /// [`SyncPolicy`](crate::SyncPolicy). This is the moment a caller may acknowledge. The
    /// appender is empty afterwards and can be reused.
    ///
    /// # Errors
    /// [`HeadError::Wal`] when the WAL write fails: the batch must not be acknowledged, and
    /// the head refuses further commits ([`HeadError::Failed`]) until reopened (its memory
    /// may hold samples the WAL does not).
    pub fn commit(&mut self) -> Result<CommitSummary, HeadError> {
        let head = self.head;
        let mut summary = CommitSummary { refused_at_append: std::mem::take(&mut self.refused), ..Default::default() };
        if self.pending.is_empty() {
            return Ok(summary);
        }
        let mut st = lock(&head.commit);
        head.check_failed()?;
        let wal = head.wal.as_ref();
        let buf = &mut st.buf;
        buf.clear();
        for p in self.pending.iter_mut() {
            if p.0.removed.load(Ordering::Relaxed) {
                // The labels were valid when the series was first created, and a reference
                // is free (the one just removed went back): creation cannot fail here
                // except when the reference space is exhausted.
                p.0 = head.get_or_create(&p.0.labels).map_err(|_| HeadError::TooManySeries)?;
            }
        }
        if wal.is_some() {
            let mut new: Vec<&Arc<MemSeries>> = vec![];
            for p in &self.pending {
                if !p.0.logged.load(Ordering::Relaxed) {
                    p.0.logged.store(true, Ordering::Relaxed);
                    new.push(&p.0);
                }
            }
            if !new.is_empty() {
                record::encode_series(buf, new.iter().map(|s| (s.series_ref, &s.labels)));
            }
        }
        let mut enc = wal.map(|_| SamplesEncoder::begin(buf));
        let (mut ooo, mut too_old, mut dup_refused) = (0u64, 0u64, 0u64);
        let mut i = 0;
        let pending = &self.pending;
        while i < pending.len() {
            if let Some(ahead) = pending.get(i + COMMIT_AHEAD) {
                ahead.0.prefetch_data();
                ahead.0.prefetch_open_chunk();
            }
            let s = &pending[i].0;
            let mut d = s.lock();
            while i < pending.len() && Arc::ptr_eq(&pending[i].0, s) {
                let (_, t, v) = pending[i];
                match d.insert(t, v, &head.rules) {
                    Ok(a) => {
                        if a == Accepted::Duplicate {
                            summary.duplicates_ignored += 1;
                        } else {
                            summary.appended += 1;
                            ooo += u64::from(a == Accepted::StoredOutOfOrder);
                            if let Some(e) = enc.as_mut() {
                                e.push(buf, s.series_ref, t, v);
                            }
                        }
                    }
                    Err(Refusal::TooOld { .. }) => too_old += 1,
                    Err(Refusal::Duplicate { .. }) => dup_refused += 1,
                }
                i += 1;
            }
            s.newest.store(d.max_t, Ordering::Relaxed);
            s.note_open_chunk(&d);
        }
        summary.refused = too_old + dup_refused;
        let c = &head.counters;
        c.appended.fetch_add(summary.appended, Ordering::Relaxed);
        c.ooo.fetch_add(ooo, Ordering::Relaxed);
        c.dup_ignored.fetch_add(summary.duplicates_ignored, Ordering::Relaxed);
        c.refused_too_old.fetch_add(too_old, Ordering::Relaxed);
        c.refused_duplicate.fetch_add(dup_refused, Ordering::Relaxed);
        self.pending.clear();
        if let (Some(wal), Some(enc)) = (wal, enc) {
            enc.finish(buf);
            if let Err(e) = wal.log(buf) {
                head.failed.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
        }
        drop(st);
        Ok(summary)
    }
}

/// Decodes an XOR chunk, appending to `ts` and `vs`.
pub(crate) fn decode_chunk(
    data: &[u8],
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
) -> Result<usize, telemetry_compress::ChunkError> {
    telemetry_compress::decode_xor_chunk(data, ts, vs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(r: u64, fp: u64) -> Arc<MemSeries> {
        let labels = Labels::from_pairs([("__name__", format!("m{r}"))]).expect("ok: valid labels");
        Arc::new(MemSeries::new(labels, Fingerprint(fp), SeriesRef(r)))
    }

    /// Insertions and removals with many equal fingerprints (collisions) and many equal
    /// home slots, checked against a plain list after every step.
    #[test]
    fn fingerprint_table_matches_a_list() {
        let mut t = FpTable::default();
        let mut model: Vec<Arc<MemSeries>> = vec![];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for r in 0..4_000u64 {
            let fp = match rnd() % 4 {
                0 => 7,                  // a fingerprint shared by many series
                1 => (rnd() % 16) << 60, // few distinct home slots
                _ => rnd(),
            };
            let s = series(r, fp);
            t.insert(fp, s.clone());
            model.push(s);
            if rnd() % 3 == 0 {
                let i = (rnd() % model.len() as u64) as usize;
                let gone = model.swap_remove(i);
                t.remove(gone.fingerprint.0, gone.series_ref);
                assert!(t.find(gone.fingerprint.0, |s| s.series_ref == gone.series_ref).is_none());
            }
            if r % 97 == 0 {
                assert_eq!(t.len, model.len());
                for s in &model {
                    let got = t.find(s.fingerprint.0, |x| *x.key == *s.key).map(|x| x.series_ref);
                    assert_eq!(got, Some(s.series_ref));
                }
            }
        }
    }

    #[test]
    fn slab_frees_empty_pages() {
        let mut s = Slab::default();
        for r in 0..3 * PAGE_LEN as u64 {
            s.insert(r, series(r, r));
        }
        for r in 0..PAGE_LEN as u64 {
            assert!(s.remove(r).is_some());
        }
        assert!(s.pages[0].is_none());
        for r in 2 * PAGE_LEN as u64..3 * PAGE_LEN as u64 {
            s.remove(r);
        }
        assert_eq!(s.pages.len(), 2);
        assert_eq!(s.values().count(), PAGE_LEN);
        assert!(s.get(PAGE_LEN as u64 + 5).is_some() && s.get(5).is_none() && s.get(1 << 40).is_none());
    }

    /// A series filed under another series' fingerprint, ahead of it in the probe run: the
    /// batch path's first candidate has the fingerprint but not the labels, and the sample
    /// must still go to the series whose labels match.
    #[test]
    fn batch_tells_apart_series_with_one_fingerprint() {
        let head = Head::in_memory(HeadOptions::default());
        let b = Labels::from_pairs([("__name__", "b")]).expect("ok: valid labels");
        let decoy = {
            let mut t = write(&head.table);
            let c = Labels::from_pairs([("__name__", "c")]).expect("ok: valid labels");
            head.insert_series(&mut t, c, b.fingerprint(), None).expect("ok: valid series").series_ref
        };
        let b_ref = head.get_or_create(&b).expect("ok: valid series").series_ref;
        assert_ne!(decoy, b_ref);
        {
            // The decoy comes first in the probe run.
            let t = read(&head.table);
            let first = t.by_fp.probe(b.fingerprint().0).and_then(|i| t.by_fp.slots[i].1.as_ref());
            assert_eq!(first.map(|s| s.series_ref), Some(decoy));
        }
        let mut app = head.appender();
        let mut results = Vec::new();
        let batch: Vec<_> = (0..40).map(|i| ([("__name__", "b")], i, i as f64)).collect();
        app.append_pairs_batch(&batch, &mut results);
        assert!(results.iter().all(|r| r.as_ref().ok() == Some(&b_ref)), "{results:?}");
        assert_eq!(app.append_pairs([("__name__", "b")], 40, 1.0).expect("ok: accepted"), b_ref);
        assert_eq!(app.commit().expect("ok: no WAL").appended, 41);
        let t = read(&head.table);
        assert_eq!(t.by_ref.get(decoy.0).expect("ok: present").lock().num_chunks(), 0);
    }

    /// The prefetch offsets in `MemSeries::prefetch_head` and `prefetch_data` (relative to
    /// the series) cover the fields the ingest path touches: reference counts to the flags in
    /// the first, the lock to the end of the open chunk's state in the second.
    #[test]
    fn prefetched_lines_cover_the_ingest_fields() {
        let s = series(1, 1);
        let base = Arc::as_ptr(&s).addr();
        let flags_end = std::mem::offset_of!(MemSeries, removed) + 1;
        assert!(flags_end <= 54, "prefetch_head covers up to offset 53, flags end at {flags_end}");
        assert!(std::mem::offset_of!(MemSeries, data) >= 54, "data starts before 54");
        let d = s.lock();
        let data_at = (&*d as *const SeriesData).addr() - base;
        let open_end =
            data_at + std::mem::offset_of!(SeriesData, open) + std::mem::size_of::<telemetry_compress::XorChunk>();
        assert!(open_end <= 200, "prefetch_data covers up to offset 199, the open chunk ends at {open_end}");
        assert!(std::mem::offset_of!(SeriesData, max_t) < std::mem::offset_of!(SeriesData, open));
    }

    #[test]
    fn labels_are_interned() {
        let head = Head::in_memory(HeadOptions::default());
        let mut app = head.appender();
        let a = app.append_pairs([("__name__", "up"), ("job", "node")], 1, 1.0).expect("ok: valid");
        let b = app.append_pairs([("__name__", "down"), ("job", "node")], 1, 1.0).expect("ok: valid");
        app.commit().expect("ok: no WAL");
        let t = read(&head.table);
        let (a, b) = (t.by_ref.get(a.0).expect("ok: present"), t.by_ref.get(b.0).expect("ok: present"));
        let job = |s: &MemSeries| s.labels.iter().find(|l| &*l.name == "job").map(|l| l.value.clone());
        assert!(Arc::ptr_eq(&job(a).expect("ok: has job"), &job(b).expect("ok: has job")));
        eprintln!(
            "MemSeries: {} bytes; data at {}, labels at {}; SeriesData: {} bytes, open chunk at {}, full at {}",
            std::mem::size_of::<MemSeries>(),
            std::mem::offset_of!(MemSeries, data),
            std::mem::offset_of!(MemSeries, labels),
            std::mem::size_of::<SeriesData>(),
            std::mem::offset_of!(SeriesData, open),
            std::mem::offset_of!(SeriesData, full),
        );
    }
}
