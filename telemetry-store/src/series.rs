//! One series in the head: its chunks, its out-of-order samples, and the ordering rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};

use telemetry_core::{Fingerprint, Labels};

use crate::SeriesRef;
use telemetry_compress::{XorChunk, decode_xor_chunk};

/// Bytes reserved for a new open chunk: 120 samples of typical scrape data take ~150.
const OPEN_CHUNK_CAPACITY: usize = 32;

/// A full (cut) chunk: immutable XOR bytes and their time range.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) data: Arc<[u8]>,
}

/// Chunk-cutting and ordering configuration, copied out of the head options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) chunk_max_samples: usize,
    pub(crate) chunk_range_ms: i64,
    pub(crate) ooo_window_ms: i64,
}

/// Why a sample was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Older than the series' newest sample minus the out-of-order window.
    TooOld { max_t: i64 },
    /// A sample at this timestamp exists with different value bits.
    Duplicate { existing_bits: u64 },
}

/// What happened to an accepted sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Stored.
    Stored,
    /// Stored out of order.
    StoredOutOfOrder,
    /// Already there with the same bits: nothing to do.
    Duplicate,
}

/// Ordered for the ingest path (`repr(C)`): the open chunk and the newest sample first.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SeriesData {
    /// Newest in-order timestamp; `i64::MIN` when the series has no in-order sample.
    pub(crate) max_t: i64,
    pub(crate) last_bits: u64,
    pub(crate) open_mint: i64,
    pub(crate) open: XorChunk,
    pub(crate) full: Vec<Chunk>,
    /// Out-of-order data; `None` for a series that never had any (most), so that it costs
    /// one pointer.
    pub(crate) late: Option<Box<OutOfOrder>>,
}

/// A series' out-of-order data.
#[derive(Debug, Default)]
pub(crate) struct OutOfOrder {
    /// Samples not yet cut into a chunk: sorted, unique timestamps.
    pub(crate) samples: Vec<(i64, f64)>,
    /// Chunks: each sorted; their timestamps are disjoint from every other sample of the
    /// series.
    pub(crate) chunks: Vec<Chunk>,
}

impl Default for SeriesData {
    fn default() -> Self {
        SeriesData {
            open: XorChunk::with_capacity(OPEN_CHUNK_CAPACITY),
            open_mint: 0,
            full: Vec::new(),
            max_t: i64::MIN,
            last_bits: 0,
            late: None,
        }
    }
}

fn find_in_chunk(data: &[u8], t: i64) -> Option<u64> {
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    decode_xor_chunk(data, &mut ts, &mut vs).ok()?;
    ts.binary_search(&t).ok().map(|i| vs[i].to_bits())
}

impl SeriesData {
    /// Out-of-order samples not yet cut into a chunk.
    #[inline]
    fn ooo(&self) -> &[(i64, f64)] {
        self.late.as_ref().map_or(&[], |l| &l.samples)
    }

    /// Out-of-order chunks.
    #[inline]
    fn ooo_chunks(&self) -> &[Chunk] {
        self.late.as_ref().map_or(&[], |l| &l.chunks)
    }

    /// Decides what inserting `(t, v)` would do, without changing anything. Samples newer
    /// than the newest take the fast path; older ones look for an existing sample at `t`
    /// first (an exact duplicate is accepted even beyond the window, so that retried batches
    /// are idempotent), then apply the out-of-order window.
    #[inline]
    pub(crate) fn classify(&self, t: i64, v: f64, rules: &Rules) -> Result<Accepted, Refusal> {
        if self.max_t == i64::MIN || t > self.max_t {
            return Ok(Accepted::Stored);
        }
        self.classify_slow(t, v.to_bits(), rules)
    }

    #[cold]
    fn classify_slow(&self, t: i64, bits: u64, rules: &Rules) -> Result<Accepted, Refusal> {
        let same = |existing_bits: u64| {
            if existing_bits == bits { Ok(Accepted::Duplicate) } else { Err(Refusal::Duplicate { existing_bits }) }
        };
        if t == self.max_t {
            return same(self.last_bits);
        }
        if let Some(b) = self.find(t) {
            return same(b);
        }
        if t < self.max_t.saturating_sub(rules.ooo_window_ms) {
            return Err(Refusal::TooOld { max_t: self.max_t });
        }
        Ok(Accepted::StoredOutOfOrder)
    }

    /// The value bits stored at `t`, if any (decodes the chunks that may hold it).
    fn find(&self, t: i64) -> Option<u64> {
        if self.open.num_samples() > 0 && t >= self.open_mint {
            if let Some(b) = find_in_chunk(self.open.bytes(), t) {
                return Some(b);
            }
        } else {
            let i = self.full.partition_point(|c| c.maxt < t);
            if let Some(c) = self.full.get(i)
                && c.mint <= t
                && let Some(b) = find_in_chunk(&c.data, t)
            {
                return Some(b);
            }
        }
        for c in self.ooo_chunks().iter().filter(|c| c.mint <= t && t <= c.maxt) {
            if let Some(b) = find_in_chunk(&c.data, t) {
                return Some(b);
            }
        }
        let ooo = self.ooo();
        ooo.binary_search_by_key(&t, |&(ts, _)| ts).ok().map(|i| ooo[i].1.to_bits())
    }

    /// Stores a sample, or says why not.
    #[inline]
    pub(crate) fn insert(&mut self, t: i64, v: f64, rules: &Rules) -> Result<Accepted, Refusal> {
        let a = self.classify(t, v, rules)?;
        match a {
            Accepted::Stored => self.append_in_order(t, v, rules),
            Accepted::StoredOutOfOrder => self.insert_out_of_order(t, v, rules),
            Accepted::Duplicate => {}
        }
        Ok(a)
    }

    #[inline]
    fn append_in_order(&mut self, t: i64, v: f64, rules: &Rules) {
        let n = self.open.num_samples();
        if n > 0
            && (n >= rules.chunk_max_samples
                || (rules.chunk_range_ms > 0
                    && t.div_euclid(rules.chunk_range_ms) != self.open_mint.div_euclid(rules.chunk_range_ms)))
        {
            self.cut();
        }
        if self.open.num_samples() == 0 {
            self.open_mint = t;
        }
        if self.open.append(t, v).is_err() {
            // Only a full chunk (65,535 samples) refuses; chunk_max_samples is clamped below it.
            self.cut();
            self.open_mint = t;
            let _ = self.open.append(t, v);
        }
        self.max_t = t;
        self.last_bits = v.to_bits();
    }

    fn cut(&mut self) {
        let data: Arc<[u8]> = Arc::from(self.open.bytes());
        self.open = XorChunk::with_capacity(OPEN_CHUNK_CAPACITY);
        self.full.push(Chunk { mint: self.open_mint, maxt: self.max_t, data });
    }

    #[cold]
    fn insert_out_of_order(&mut self, t: i64, v: f64, rules: &Rules) {
        let late = self.late.get_or_insert_with(Box::default);
        let i = late.samples.partition_point(|&(ts, _)| ts < t);
        late.samples.insert(i, (t, v));
        if late.samples.len() >= rules.chunk_max_samples.max(1) {
            let mut c = XorChunk::with_capacity(OPEN_CHUNK_CAPACITY);
            for &(t, v) in &late.samples {
                // ok to ignore: at most chunk_max_samples (< 65,535) samples go in.
                let _ = c.append(t, v);
            }
            let (mint, maxt) = (late.samples[0].0, late.samples[late.samples.len() - 1].0);
            late.chunks.push(Chunk { mint, maxt, data: Arc::from(c.bytes()) });
            late.samples.clear();
        }
    }

    /// Oldest timestamp held, if any.
    pub(crate) fn min_time(&self) -> Option<i64> {
        let mut m = self.full.first().map(|c| c.mint);
        if m.is_none() && self.open.num_samples() > 0 {
            m = Some(self.open_mint);
        }
        let o = self.ooo().first().map(|s| s.0).into_iter().chain(self.ooo_chunks().iter().map(|c| c.mint)).min();
        match (m, o) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Newest timestamp held, if any.
    pub(crate) fn max_time(&self) -> Option<i64> {
        let o = self.ooo().last().map(|s| s.0).into_iter().chain(self.ooo_chunks().iter().map(|c| c.maxt)).max();
        let m = (self.max_t != i64::MIN).then_some(self.max_t);
        match (m, o) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open.num_samples() == 0 && self.full.is_empty() && self.ooo().is_empty() && self.ooo_chunks().is_empty()
    }

    /// Chunks held (full, open, out-of-order).
    pub(crate) fn num_chunks(&self) -> usize {
        self.full.len()
            + usize::from(self.open.num_samples() > 0)
            + self.ooo_chunks().len()
            + usize::from(!self.ooo().is_empty())
    }

    /// Heap bytes held by the chunks and buffers.
    pub(crate) fn heap_bytes(&self) -> usize {
        let chunk = |c: &Chunk| c.data.len() + 16 + std::mem::size_of::<Chunk>();
        OPEN_CHUNK_CAPACITY.max(self.open.size_bytes())
            + self.full.capacity() * std::mem::size_of::<Chunk>()
            + self.full.iter().map(|c| c.data.len() + 16).sum::<usize>()
            + self.late.as_ref().map_or(0, |l| {
                std::mem::size_of::<OutOfOrder>()
                    + l.samples.capacity() * 16
                    + l.chunks.capacity() * std::mem::size_of::<Chunk>()
                    + l.chunks.iter().map(chunk).sum::<usize>()
            })
    }

    /// Drops everything older than `mint`: whole chunks ending before it, out-of-order samples
    /// before it. The open chunk goes when its newest sample is older.
    pub(crate) fn truncate_before(&mut self, mint: i64) -> usize {
        let mut removed = 0;
        let before = self.full.len();
        self.full.retain(|c| c.maxt >= mint);
        removed += before - self.full.len();
        if self.open.num_samples() > 0 && self.max_t < mint {
            self.open = XorChunk::with_capacity(OPEN_CHUNK_CAPACITY);
            removed += 1;
        }
        if let Some(late) = &mut self.late {
            let before = late.chunks.len();
            late.chunks.retain(|c| c.maxt >= mint);
            removed += before - late.chunks.len();
            late.samples.retain(|s| s.0 >= mint);
            if late.chunks.is_empty() && late.samples.is_empty() {
                self.late = None;
            }
        }
        removed
    }

    /// A consistent copy of what a reader needs for `[mint, maxt]`.
    pub(crate) fn snapshot(&self, mint: i64, maxt: i64) -> Snapshot {
        let lo = self.full.partition_point(|c| c.maxt < mint);
        let chunks: Vec<Chunk> = self.full[lo..].iter().take_while(|c| c.mint <= maxt).cloned().collect();
        let open = (self.open.num_samples() > 0 && self.open_mint <= maxt && self.max_t >= mint)
            .then(|| self.open.bytes().to_vec());
        let ooo: Vec<(i64, f64)> = self.ooo().iter().copied().filter(|&(t, _)| t >= mint && t <= maxt).collect();
        let ooo_chunks: Vec<Chunk> =
            self.ooo_chunks().iter().filter(|c| c.maxt >= mint && c.mint <= maxt).cloned().collect();
        Snapshot { chunks, open, ooo, ooo_chunks, mint, maxt }
    }
}

/// What a reader copied out of a series under its lock.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) open: Option<Vec<u8>>,
    pub(crate) ooo: Vec<(i64, f64)>,
    pub(crate) ooo_chunks: Vec<Chunk>,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
}

impl Snapshot {
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.open.is_none() && self.ooo.is_empty() && self.ooo_chunks.is_empty()
    }

    pub(crate) fn has_out_of_order(&self) -> bool {
        !self.ooo.is_empty() || !self.ooo_chunks.is_empty()
    }
}

/// Asks the CPU to bring the cache line holding `p` into its caches. A hint: it never faults,
/// whatever the address, and changes nothing a program can observe but time. On targets
/// other than x86-64 it does nothing.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults, whatever the address.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch_read`] for a line about to be written: brought in exclusive, so that the write
/// (an atomic increment, say) does not have to ask the other cores again.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults, whatever the address.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A series in the head.
///
/// The fields the ingest path touches come first (`repr(C)`): key, fingerprint, newest
/// timestamp, flags, then the lock and the open chunk; the labels, read by queries, last.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct MemSeries {
    /// The labels as the bytes the fingerprint hashes (`name 0xff value 0xff …`): one
    /// contiguous slice, so that the ingest path compares parsed pairs without chasing a
    /// pointer per string.
    pub(crate) key: Box<[u8]>,
    pub(crate) fingerprint: Fingerprint,
    /// The newest in-order timestamp, published after each commit: appends newer than this
    /// pass the append-time check without taking the series lock.
    pub(crate) newest: AtomicI64,
    pub(crate) series_ref: SeriesRef,
    /// Where the open chunk's bytes were when a commit last wrote to them (address, length):
    /// the next commit asks for those cache lines ahead of time. Only ever a hint for a
    /// prefetch (never dereferenced); 0 until the first commit.
    pub(crate) chunk_at: AtomicUsize,
    pub(crate) chunk_len: AtomicU32,
    /// Its series record is in the WAL (set under the commit lock).
    pub(crate) logged: AtomicBool,
    /// Removed from the head by garbage collection or truncation (set under the commit lock).
    pub(crate) removed: AtomicBool,
    pub(crate) data: std::sync::Mutex<SeriesData>,
    /// Its labels; the strings are shared with every other series through the head's
    /// symbol table.
    pub(crate) labels: Labels,
}

impl MemSeries {
    /// Asks the CPU to bring the series' ingest fields (reference counts, key pointer, newest
    /// timestamp, lock, open chunk state) into cache: the appender calls it when it takes a
    /// sample, so that the commit, a few hundred samples later, finds them there instead of
    /// waiting for memory once per sample.
    #[inline(always)]
    pub(crate) fn prefetch(self: &Arc<Self>) {
        let p = Arc::as_ptr(self).cast::<u8>();
        // One address per cache line from the reference counts (16 bytes before the
        // value) to the end of the open chunk's state.
        for off in [-16isize, 48, 112, 176, 199] {
            prefetch_read(p.wrapping_offset(off));
        }
    }

    /// Asks the CPU to bring the key's bytes into cache (the ingest path compares them).
    #[inline(always)]
    pub(crate) fn prefetch_key(&self) {
        let k = self.key.as_ptr();
        prefetch_read(k);
        prefetch_read(k.wrapping_add(self.key.len().saturating_sub(1)));
    }

    /// The first part of [`prefetch`](Self::prefetch): reference counts, key pointer,
    /// newest timestamp, reference.
    #[inline(always)]
    pub(crate) fn prefetch_head(self: &Arc<Self>) {
        let p = Arc::as_ptr(self).cast::<u8>();
        // The reference count is about to be incremented: ask for the line to write.
        prefetch_write(p.wrapping_offset(-16));
        prefetch_read(p.wrapping_offset(53));
    }

    /// The rest of [`prefetch`](Self::prefetch): lock and open chunk state.
    #[inline(always)]
    pub(crate) fn prefetch_data(self: &Arc<Self>) {
        let p = Arc::as_ptr(self).cast::<u8>();
        for off in [56isize, 120, 184, 199] {
            prefetch_read(p.wrapping_offset(off));
        }
    }

    /// A series with no samples.
    pub(crate) fn new(labels: Labels, fingerprint: Fingerprint, series_ref: SeriesRef) -> MemSeries {
        MemSeries {
            key: MemSeries::key_of(&labels),
            fingerprint,
            newest: AtomicI64::new(i64::MIN),
            series_ref,
            chunk_at: AtomicUsize::new(0),
            chunk_len: AtomicU32::new(0),
            logged: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            data: std::sync::Mutex::new(SeriesData::default()),
            labels,
        }
    }

    /// Records where `d`'s open chunk is (see [`chunk_at`](Self::chunk_at)); `d` is this
    /// series' data, locked.
    #[inline]
    pub(crate) fn note_open_chunk(&self, d: &SeriesData) {
        let b = d.open.bytes();
        self.chunk_at.store(b.as_ptr().addr(), Ordering::Relaxed);
        self.chunk_len.store(b.len() as u32, Ordering::Relaxed);
    }

    /// Asks the CPU for the open chunk's first and last bytes, where the next sample is
    /// written, as a commit last left them (a hint: a chunk cut or grown since makes it a
    /// wasted request, never a wrong result).
    #[inline(always)]
    pub(crate) fn prefetch_open_chunk(&self) {
        let at = self.chunk_at.load(Ordering::Relaxed);
        if at != 0 {
            let p = std::ptr::without_provenance::<u8>(at);
            prefetch_write(p);
            prefetch_write(p.wrapping_add(self.chunk_len.load(Ordering::Relaxed) as usize));
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SeriesData> {
        // Poisoning means a panic while holding the lock; every mutation of SeriesData leaves
        // it readable (chunks are appended or replaced whole), so the data is still usable.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The byte key of a label set (see [`MemSeries::key`]).
    pub(crate) fn key_of(labels: &Labels) -> Box<[u8]> {
        let mut k = Vec::with_capacity(labels.bytes_len() + 2 * labels.len());
        for l in labels {
            k.extend_from_slice(l.name.as_bytes());
            k.push(0xff);
            k.extend_from_slice(l.value.as_bytes());
            k.push(0xff);
        }
        k.into_boxed_slice()
    }
}
