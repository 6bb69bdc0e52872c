//! The write-ahead log: numbered segment files of framed, checksummed records
//! ([`crate::record`] framing), replayed on open, with a checkpoint that drops what blocks hold.
//!
//! The design follows Prometheus's `tsdb/wlog` (segments named by an 8-digit sequence number,
//! `checkpoint.N` directories holding the still-needed part of segments `..=N`), simplified:
//! a record never spans two segments (a write that does not fit the current segment starts a
//! new one; a write larger than a whole segment gets a segment of its own).
//!
//! # Durability
//!
//! [`Wal::log`] hands the bytes to the operating system with `write(2)` before it returns,
//! under every [`SyncPolicy`]; what the policies add is when the data reaches the disk:
//!
//! | policy | survives a process crash (SIGKILL, panic) | survives an OS crash or power loss |
//! |---|---|---|
//! | [`SyncPolicy::Always`] | everything `log` returned for | everything `log` returned for (`fdatasync` before returning) |
//! | [`SyncPolicy::Interval`]`(d)` | everything `log` returned for | everything except at most the last `d` (a background thread syncs every `d`) |
//! | [`SyncPolicy::Never`] | everything `log` returned for | whatever the OS had written back; no bound |
//!
//! # Recovery
//!
//! [`Wal::open`] replays the newest checkpoint, then every later segment in order. At the first
//! record that is torn (shorter than its header or declared length) or corrupt (checksum, type
//! or payload check fails), it logs a warning, truncates that segment there, deletes every
//! later segment, and carries on: the log then holds exactly the records before the damage.
//! Writing always continues in a fresh segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::SeriesRef;
use crate::record::{self, HEADER_LEN, Record, RecordError, RecordType, RefSample};

/// When the WAL forces written data to disk. See the [module docs](self) for what each
/// guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` before every [`Wal::log`] returns.
    Always,
    /// A background thread syncs at this interval.
    Interval(Duration),
    /// Never sync explicitly (the OS writes back on its own schedule).
    Never,
}

/// WAL configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Segment size in bytes after which a new segment starts (default 128 MiB, as Prometheus).
    pub segment_size: u64,
    /// When data is forced to disk.
    pub sync: SyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_size: 128 << 20, sync: SyncPolicy::Interval(Duration::from_millis(100)) }
    }
}

/// WAL errors.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O error on a WAL file.
    #[error("WAL I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An earlier write failed; the log refuses further writes until reopened.
    #[error("WAL unusable after an earlier write error: {0}")]
    Failed(String),
    /// A segment read during a checkpoint is corrupt.
    #[error("corrupt WAL record in {path} at byte {offset}: {source}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        source: RecordError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_path_buf(), source }
}

/// Where replay found damage, and what it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The damaged segment.
    pub segment: PathBuf,
    /// Offset of the first bad record; the segment is truncated here.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// Bytes removed: the rest of the segment and every later segment.
    pub dropped_bytes: u64,
    /// Later segments deleted.
    pub dropped_segments: usize,
}

/// What [`Wal::open`] replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Checkpoint replayed first, by the last segment it covers.
    pub checkpoint: Option<u32>,
    /// Segments replayed.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
    /// Bytes replayed.
    pub bytes: u64,
    /// Damage found and repaired, if any.
    pub corruption: Option<Corruption>,
}

/// What [`Wal::checkpoint`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Last segment the checkpoint covers (`checkpoint.N`).
    pub through_segment: u32,
    /// Segments deleted.
    pub segments_removed: usize,
    /// Series records kept.
    pub series_kept: u64,
    /// Samples kept.
    pub samples_kept: u64,
    /// Samples dropped (older than the cut or of dropped series).
    pub samples_dropped: u64,
}

struct Writer {
    file: Arc<File>,
    seg: u32,
    seg_len: u64,
    dirty: bool,
    failed: Option<String>,
}

struct SyncState {
    stop: Mutex<bool>,
    cv: Condvar,
}

/// An open write-ahead log. See the [module docs](self).
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    w: Arc<Mutex<Writer>>,
    size: Arc<AtomicU64>,
    syncer: Option<(JoinHandle<()>, Arc<SyncState>)>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).field("opts", &self.opts).finish_non_exhaustive()
    }
}

fn segment_name(n: u32) -> String {
    format!("{n:08}")
}

fn checkpoint_name(n: u32) -> String {
    format!("checkpoint.{n:08}")
}

fn parse_segment(name: &str) -> Option<u32> {
    (name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

fn parse_checkpoint(name: &str) -> Option<u32> {
    name.strip_prefix("checkpoint.").and_then(parse_segment)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Lists `(segments, checkpoints)` in `dir`, each sorted; removes leftover temporary files.
fn list(dir: &Path) -> Result<(Vec<u32>, Vec<u32>), WalError> {
    let mut segs = vec![];
    let mut cps = vec![];
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_segment(name) {
            segs.push(n);
        } else if let Some(n) = parse_checkpoint(name) {
            cps.push(n);
        } else if name.ends_with(".tmp") {
            let p = e.path();
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
    }
    segs.sort_unstable();
    cps.sort_unstable();
    Ok((segs, cps))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                total += if m.is_dir() { dir_size(&e.path()) } else { m.len() };
            }
        }
    }
    total
}

/// Reads records from one segment file, calling `visit` for each good one; stops at the first
/// bad one and returns its offset and error.
fn read_segment(
    path: &Path,
    samples_buf: &mut Vec<RefSample>,
    visit: &mut dyn FnMut(&Record),
    records: &mut u64,
) -> Result<Option<(u64, RecordError)>, WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut off = 0u64;
    let mut payload = Vec::new();
    while off < len {
        let remaining = len - off;
        if remaining < HEADER_LEN as u64 {
            return Ok(Some((off, RecordError::Truncated { needed: HEADER_LEN, available: remaining as usize })));
        }
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h).map_err(io_err(path))?;
        let (plen, kind, crc) = record::parse_header(&h);
        if plen as u64 > remaining - HEADER_LEN as u64 {
            return Ok(Some((
                off,
                RecordError::Truncated { needed: HEADER_LEN + plen, available: remaining as usize },
            )));
        }
        payload.resize(plen, 0);
        r.read_exact(&mut payload).map_err(io_err(path))?;
        let decoded = record::check(kind, &payload, crc).and_then(|kind| match kind {
            RecordType::Series => record::decode_series(&payload).map(Record::Series),
            RecordType::Samples => {
                record::decode_samples(&payload, samples_buf).map(|_| Record::Samples(std::mem::take(samples_buf)))
            }
            RecordType::Dropped => record::decode_dropped(&payload).map(Record::Dropped),
        });
        match decoded {
            Ok(rec) => {
                visit(&rec);
                if let Record::Samples(v) = rec {
                    *samples_buf = v;
                }
                *records += 1;
            }
            Err(e) => return Ok(Some((off, e))),
        }
        off += (HEADER_LEN + plen) as u64;
    }
    Ok(None)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replays every record through `visit` in write order,
    /// repairs a torn or corrupt tail (see the [module docs](self#recovery)) and starts a new
    /// segment for writing.
    ///
    /// # Errors
    /// [`WalError::Io`] when the directory or a file cannot be read, truncated or created.
    /// Damaged records are never an error.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: WalOptions,
        mut visit: impl FnMut(&Record),
    ) -> Result<(Wal, ReplayReport), WalError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let (segs, cps) = list(&dir)?;
        let mut report = ReplayReport::default();
        let mut samples_buf = Vec::new();
        let mut first_seg = 0u32;
        if let Some(&cp) = cps.last() {
            let cp_dir = dir.join(checkpoint_name(cp));
            let (cp_segs, _) = list(&cp_dir)?;
            for s in cp_segs {
                let p = cp_dir.join(segment_name(s));
                if let Some((off, e)) = read_segment(&p, &mut samples_buf, &mut visit, &mut report.records)? {
                    tracing::warn!(checkpoint = %p.display(), offset = off, error = %e, "corrupt WAL checkpoint; replaying the part before the damage");
                    break;
                }
            }
            report.checkpoint = Some(cp);
            first_seg = cp.saturating_add(1);
            for &old in &cps[..cps.len() - 1] {
                let _ = fs::remove_dir_all(dir.join(checkpoint_name(old)));
            }
        }
        let mut last_seg: Option<u32> = report.checkpoint;
        let mut damaged: Option<usize> = None;
        let live: Vec<u32> = segs.iter().copied().filter(|&s| s >= first_seg || report.checkpoint.is_none()).collect();
        for &s in segs.iter().filter(|&&s| s < first_seg && report.checkpoint.is_some()) {
            let _ = fs::remove_file(dir.join(segment_name(s)));
        }
        for (i, &s) in live.iter().enumerate() {
            let p = dir.join(segment_name(s));
            if let Some(prev) = last_seg
                && s != prev.wrapping_add(1)
            {
                tracing::warn!(segment = %p.display(), expected = prev.wrapping_add(1), "gap in WAL segment numbers; dropping the segments after it");
                report.corruption = Some(Corruption {
                    segment: p.clone(),
                    offset: 0,
                    reason: format!("segment {s} follows segment {prev}"),
                    dropped_bytes: 0,
                    dropped_segments: 0,
                });
                damaged = Some(i);
                break;
            }
            let seg_len = fs::metadata(&p).map_err(io_err(&p))?.len();
            let bad = read_segment(&p, &mut samples_buf, &mut visit, &mut report.records)?;
            report.segments += 1;
            last_seg = Some(s);
            if let Some((off, e)) = bad {
                tracing::warn!(segment = %p.display(), offset = off, error = %e, "torn or corrupt WAL record; truncating the log there");
                report.bytes += off;
                let f = OpenOptions::new().write(true).open(&p).map_err(io_err(&p))?;
                f.set_len(off).map_err(io_err(&p))?;
                f.sync_all().map_err(io_err(&p))?;
                report.corruption = Some(Corruption {
                    segment: p.clone(),
                    offset: off,
                    reason: e.to_string(),
                    dropped_bytes: seg_len - off,
                    dropped_segments: 0,
                });
                damaged = Some(i + 1);
                break;
            }
            report.bytes += seg_len;
        }
        if let Some(from) = damaged {
            let c = report.corruption.as_mut().expect("ok: set together with `damaged`");
            for &s in &live[from..] {
                let p = dir.join(segment_name(s));
                c.dropped_bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                c.dropped_segments += 1;
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
            sync_dir(&dir)?;
        }
        let next = last_seg.map_or(0, |s| s.wrapping_add(1));
        let path = dir.join(segment_name(next));
        let file = OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io_err(&path))?;
        if opts.sync != SyncPolicy::Never {
            sync_dir(&dir)?;
        }
        let w =
            Arc::new(Mutex::new(Writer { file: Arc::new(file), seg: next, seg_len: 0, dirty: false, failed: None }));
        let size = Arc::new(AtomicU64::new(dir_size(&dir)));
        let syncer = match opts.sync {
            SyncPolicy::Interval(every) => Some(spawn_syncer(w.clone(), every).map_err(io_err(&dir))?),
            _ => None,
        };
        Ok((Wal { dir, opts, w, size, syncer }, report))
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> WalOptions {
        self.opts
    }

    /// Bytes on disk: segments and checkpoint.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Number of the segment being written.
    pub fn current_segment(&self) -> u32 {
        lock(&self.w).seg
    }

    fn cut(&self, w: &mut Writer) -> Result<(), WalError> {
        if self.opts.sync != SyncPolicy::Never && w.dirty {
            let p = self.dir.join(segment_name(w.seg));
            w.file.sync_data().map_err(io_err(&p))?;
        }
        let next = w.seg.wrapping_add(1);
        let path = self.dir.join(segment_name(next));
        let file = OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io_err(&path))?;
        if self.opts.sync != SyncPolicy::Never {
            sync_dir(&self.dir)?;
        }
        w.file = Arc::new(file);
        w.seg = next;
        w.seg_len = 0;
        w.dirty = false;
        Ok(())
    }

    /// Appends framed records (one or more, built by the head) as one write. They land in one
    /// segment; when they do not fit the current one, a new segment starts first. Returns when
    /// the bytes are durable under the [`SyncPolicy`].
    ///
    /// # Errors
    /// [`WalError::Io`] on a write or sync error, after which the log refuses further writes
    /// ([`WalError::Failed`]) because the tail's state is unknown; reopening repairs it.
    pub fn log(&self, bytes: &[u8]) -> Result<(), WalError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut w = lock(&self.w);
        if let Some(f) = &w.failed {
            return Err(WalError::Failed(f.clone()));
        }
        let res: Result<(), WalError> = (|| {
            if w.seg_len > 0 && w.seg_len + bytes.len() as u64 > self.opts.segment_size {
                self.cut(&mut w)?;
            }
            let seg = w.seg;
            let p = || self.dir.join(segment_name(seg));
            (&*w.file).write_all(bytes).map_err(|e| io_err(&p())(e))?;
            w.seg_len += bytes.len() as u64;
            w.dirty = true;
            self.size.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if self.opts.sync == SyncPolicy::Always {
                w.file.sync_data().map_err(|e| io_err(&p())(e))?;
                w.dirty = false;
            }
            Ok(())
        })();
        if let Err(e) = &res {
            w.failed = Some(e.to_string());
        }
        res
    }

    /// Forces everything written so far to disk.
    ///
    /// # Errors
    /// [`WalError::Io`] when the sync fails.
    pub fn sync(&self) -> Result<(), WalError> {
        let (file, seg) = {
            let mut w = lock(&self.w);
            w.dirty = false;
            (w.file.clone(), w.seg)
        };
        file.sync_data().map_err(io_err(&self.dir.join(segment_name(seg))))
    }

    /// Writes `checkpoint.N` holding what is still needed from every segment before the current
    /// one (and from the previous checkpoint), then deletes those segments and older
    /// checkpoints. Kept: series records for which `keep_series` is true, and their samples at
    /// or after `mint_ms`. Dropped-series records are not kept (their series are not kept
    /// either).
    ///
    /// This is the hook block persistence uses: once a block durably holds every sample before
    /// `mint_ms`, the head truncates its memory and calls this (through
    /// [`Head::truncate`](crate::Head::truncate)). A crash at any point leaves either the old
    /// segments or the complete new checkpoint: the checkpoint is written to a temporary
    /// directory, synced and renamed before anything is deleted.
    ///
    /// # Errors
    /// [`WalError`] on I/O errors or when a segment turns out corrupt (nothing is deleted then).
    pub fn checkpoint(
        &self,
        keep_series: &dyn Fn(SeriesRef) -> bool,
        mint_ms: i64,
    ) -> Result<CheckpointReport, WalError> {
        let through = {
            let mut w = lock(&self.w);
            if w.seg_len > 0 {
                self.cut(&mut w)?;
            } else if self.opts.sync != SyncPolicy::Never {
                w.file.sync_data().map_err(io_err(&self.dir))?;
            }
            w.seg.checked_sub(1)
        };
        let Some(through) = through else { return Ok(CheckpointReport::default()) };
        let (segs, cps) = list(&self.dir)?;
        let mut report = CheckpointReport { through_segment: through, ..Default::default() };
        if cps.last().is_some_and(|&cp| cp >= through) {
            // Nothing written since the last checkpoint.
            return Ok(report);
        }
        let mut sources: Vec<PathBuf> = vec![];
        if let Some(&cp) = cps.last() {
            let cp_dir = self.dir.join(checkpoint_name(cp));
            let (cp_segs, _) = list(&cp_dir)?;
            sources.extend(cp_segs.into_iter().map(|s| cp_dir.join(segment_name(s))));
        }
        let old: Vec<u32> = segs.into_iter().filter(|&s| s <= through).collect();
        sources.extend(old.iter().map(|&s| self.dir.join(segment_name(s))));

        let mut out = Vec::with_capacity(1 << 20);
        let mut samples_buf = Vec::new();
        let mut records = 0u64;
        for src in &sources {
            let mut visit = |rec: &Record| match rec {
                Record::Series(list) => {
                    let kept: Vec<_> = list.iter().filter(|s| keep_series(s.series_ref)).collect();
                    report.series_kept += kept.len() as u64;
                    if !kept.is_empty() {
                        record::encode_series(&mut out, kept.iter().map(|s| (s.series_ref, &s.labels)));
                    }
                }
                Record::Samples(list) => {
                    let mut enc = record::SamplesEncoder::begin(&mut out);
                    for s in list {
                        if s.timestamp_ms >= mint_ms && keep_series(s.series_ref) {
                            enc.push(&mut out, s.series_ref, s.timestamp_ms, s.value);
                        }
                    }
                    report.samples_kept += enc.len() as u64;
                    report.samples_dropped += list.len() as u64 - enc.len() as u64;
                    enc.finish(&mut out);
                }
                Record::Dropped(_) => {}
            };
            if let Some((offset, source)) = read_segment(src, &mut samples_buf, &mut visit, &mut records)? {
                return Err(WalError::Corrupt { path: src.clone(), offset, source });
            }
        }
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(through)));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let seg_path = tmp.join(segment_name(0));
        let mut f = File::create(&seg_path).map_err(io_err(&seg_path))?;
        f.write_all(&out).map_err(io_err(&seg_path))?;
        f.sync_all().map_err(io_err(&seg_path))?;
        sync_dir(&tmp)?;
        let final_dir = self.dir.join(checkpoint_name(through));
        fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
        sync_dir(&self.dir)?;
        for s in &old {
            let p = self.dir.join(segment_name(*s));
            fs::remove_file(&p).map_err(io_err(&p))?;
            report.segments_removed += 1;
        }
        for cp in cps.into_iter().filter(|&c| c < through) {
            let p = self.dir.join(checkpoint_name(cp));
            fs::remove_dir_all(&p).map_err(io_err(&p))?;
        }
        sync_dir(&self.dir)?;
        self.size.store(dir_size(&self.dir), Ordering::Relaxed);
        Ok(report)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a thread panicked while holding it; the writer's fields are updated
    // in an order that leaves them consistent, and `failed` guards the file's tail.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_syncer(w: Arc<Mutex<Writer>>, every: Duration) -> io::Result<(JoinHandle<()>, Arc<SyncState>)> {
    let st = Arc::new(SyncState { stop: Mutex::new(false), cv: Condvar::new() });
    let st2 = st.clone();
    let h = std::thread::Builder::new().name("wal-sync".into()).spawn(move || {
        let mut stop = lock(&st2.stop);
        loop {
            let (g, _) = st2.cv.wait_timeout(stop, every).unwrap_or_else(|p| p.into_inner());
            stop = g;
            if *stop {
                return;
            }
            let file = {
                let mut w = lock(&w);
                if !w.dirty {
                    continue;
                }
                w.dirty = false;
                w.file.clone()
            };
            if let Err(e) = file.sync_data() {
                tracing::warn!(error = %e, "WAL background sync failed");
            }
        }
    })?;
    Ok((h, st))
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some((h, st)) = self.syncer.take() {
            *lock(&st.stop) = true;
            st.cv.notify_all();
            let _ = h.join();
        }
        if self.opts.sync != SyncPolicy::Never {
            let _ = self.sync();
        }
    }
}
