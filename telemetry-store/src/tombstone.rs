//! Tombstones: series time ranges deleted by [`Db::delete`](crate::db::Db::delete), hidden at
//! read time at once and removed physically when blocks are written (head flush, compaction,
//! [`Db::clean_tombstones`](crate::db::Db::clean_tombstones)).
//!
//! As Prometheus's `POST /api/v1/admin/tsdb/delete_series` (`tsdb/tombstones`): a deletion
//! names series by matchers and a time range `[mint, maxt]` (ms, both inclusive); the matchers
//! are resolved, when the deletion is made, to the series that hold data in the range, and a
//! tombstone is recorded per series and interval. Samples of those series in the interval are
//! not returned by any querier created afterwards, including samples appended to the range
//! later, as long as the tombstone lives (as in Prometheus, whose head and block tombstones
//! apply to every sample of the series in the interval). Series that did not exist when the
//! deletion was made are not affected.
//!
//! # The tombstone log (`<dir>/tombstones`)
//!
//! ```text
//! header   magic "TTMB" (4 B) │ version u8 = 1 │ 3 × 0
//! record   len u32 LE │ crc32c(payload) u32 LE │ payload (len bytes)
//! payload  series uvarint, then per series:
//!            labels uvarint, per label: name (uvarint length, bytes), value (likewise)
//!            intervals uvarint, per interval: mint varint (zig-zag), maxt varint (zig-zag)
//! ```
//!
//! A deletion appends one record and syncs the file before it returns (the commit point: a
//! crash before the sync leaves the deletion absent, after it present). On open, a record
//! running past the end of the file or failing its checksum as the file's last record is a torn
//! write and is cut off; damage followed by further data is reported as corruption.
//! [`Db::clean_tombstones`](crate::db::Db::clean_tombstones) replaces the whole log with what
//! remains (temporary file, sync, rename, directory sync).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use telemetry_core::{Label, Labels, SampleBatch};

use crate::block::BlockError;
use crate::error::DbError;
use crate::record::{put_uvarint, put_varint};

/// Name of the tombstone log in the database directory.
pub const TOMBSTONES_FILE: &str = "tombstones";
/// The magic number at the start of the tombstone log: `"TTMB"`.
pub const TOMBSTONES_MAGIC: [u8; 4] = *b"TTMB";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
const RECORD_HEADER_LEN: usize = 8;

/// Deleted time intervals per series: `[mint, maxt]` (ms, both inclusive), per series sorted
/// and merged (no two intervals overlap or touch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<Labels, Vec<(i64, i64)>>,
}

impl Tombstones {
    /// No tombstones.
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` when nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of series with at least one deleted interval.
    pub fn num_series(&self) -> usize {
        self.by_series.len()
    }

    /// The deleted intervals of `labels`, sorted and merged.
    pub fn get(&self, labels: &Labels) -> Option<&[(i64, i64)]> {
        self.by_series.get(labels).map(Vec::as_slice)
    }

    /// Every series with its deleted intervals, sorted by labels.
    pub fn iter(&self) -> impl Iterator<Item = (&Labels, &[(i64, i64)])> {
        self.by_series.iter().map(|(l, v)| (l, v.as_slice()))
    }

    /// Adds the interval `[mint, maxt]` for `labels` (ignored when `mint > maxt`).
    pub fn add(&mut self, labels: &Labels, mint: i64, maxt: i64) {
        if mint > maxt {
            return;
        }
        let v = self.by_series.entry(labels.clone()).or_default();
        v.push((mint, maxt));
        merge_intervals(v);
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: &Tombstones) {
        for (l, ivs) in other.iter() {
            for &(a, b) in ivs {
                self.add(l, a, b);
            }
        }
    }

    /// Keeps, per series, only the intervals for which `keep(labels, mint, maxt)` holds;
    /// returns how many intervals were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&Labels, i64, i64) -> bool) -> usize {
        let mut dropped = 0;
        self.by_series.retain(|l, ivs| {
            let before = ivs.len();
            ivs.retain(|&(a, b)| keep(l, a, b));
            dropped += before - ivs.len();
            !ivs.is_empty()
        });
        dropped
    }

    /// `true` when a sample of `labels` at a timestamp in `[lo, hi]` is deleted somewhere in
    /// that range, for points standing for `widen_ms` of data before them (0 for raw samples,
    /// `resolution − 1` for rollup points, see [`filter`](Self::filter)).
    pub fn overlaps(&self, labels: &Labels, lo: i64, hi: i64, widen_ms: i64) -> bool {
        self.get(labels).is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= hi && b.saturating_add(widen_ms) >= lo))
    }

    /// Removes from `batch` (in time order) the samples of `labels` that a tombstone deletes;
    /// returns how many were removed. With `widen_ms = R − 1` for a rollup tier of resolution
    /// `R`, a point `p` standing for the source data `(p − R, p]` is removed when that bucket
    /// meets a deleted interval (a partly deleted bucket is dropped whole: its aggregates
    /// include deleted samples).
    pub fn filter(&self, labels: &Labels, batch: &mut SampleBatch, widen_ms: i64) -> usize {
        match self.get(labels) {
            Some(ivs) => filter_batch(ivs, batch, widen_ms),
            None => 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.by_series.len() as u64);
        for (labels, ivs) in &self.by_series {
            put_uvarint(out, labels.len() as u64);
            for l in labels.iter() {
                for s in [&*l.name, &*l.value] {
                    put_uvarint(out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            put_uvarint(out, ivs.len() as u64);
            for &(a, b) in ivs {
                put_varint(out, a);
                put_varint(out, b);
            }
        }
    }

    fn decode_into(&mut self, b: &[u8]) -> Result<(), String> {
        let mut pos = 0;
        let n = uvarint(b, &mut pos)?;
        for _ in 0..n {
            let nl = uvarint(b, &mut pos)?;
            if nl > b.len() as u64 {
                return Err(format!("{nl} labels in a {}-byte record", b.len()));
            }
            let mut ls = Vec::with_capacity(nl as usize);
            for _ in 0..nl {
                let name = string(b, &mut pos)?;
                let value = string(b, &mut pos)?;
                ls.push(Label::new(name, value));
            }
            let pairs: Vec<(&str, &str)> = ls.iter().map(|l| (&*l.name, &*l.value)).collect();
            let labels = Labels::from_pairs(pairs).map_err(|e| format!("invalid labels: {e}"))?;
            let ni = uvarint(b, &mut pos)?;
            for _ in 0..ni {
                let a = varint(b, &mut pos)?;
                let z = varint(b, &mut pos)?;
                if a > z {
                    return Err(format!("interval [{a}, {z}] of {labels} is empty"));
                }
                self.add(&labels, a, z);
            }
        }
        if pos != b.len() {
            return Err(format!("{} bytes left after the last series", b.len() - pos));
        }
        Ok(())
    }
}

fn merge_intervals(v: &mut Vec<(i64, i64)>) {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

/// Removes the samples of `batch` deleted by the sorted, merged intervals `ivs` (widened as
/// in [`Tombstones::filter`]).
pub(crate) fn filter_batch(ivs: &[(i64, i64)], batch: &mut SampleBatch, widen_ms: i64) -> usize {
    let (Some(&first), Some(&last)) = (batch.timestamps.first(), batch.timestamps.last()) else {
        return 0;
    };
    let deleted = |t: i64| ivs.iter().any(|&(a, b)| a <= t && t <= b.saturating_add(widen_ms));
    if !ivs.iter().any(|&(a, b)| a <= last && b.saturating_add(widen_ms) >= first) {
        return 0;
    }
    let before = batch.len();
    let mut keep = 0;
    for i in 0..before {
        let t = batch.timestamps[i];
        if !deleted(t) {
            batch.timestamps[keep] = t;
            batch.values[keep] = batch.values[i];
            keep += 1;
        }
    }
    batch.timestamps.truncate(keep);
    batch.values.truncate(keep);
    before - keep
}

fn uvarint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = b.get(*pos) else { return Err(format!("varint runs past the record at {}", *pos)) };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(format!("varint overflows at {}", *pos - 1));
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(format!("varint too long at {}", *pos))
}

fn varint(b: &[u8], pos: &mut usize) -> Result<i64, String> {
    let u = uvarint(b, pos)?;
    Ok((u >> 1) as i64 ^ -((u & 1) as i64))
}

fn string(b: &[u8], pos: &mut usize) -> Result<String, String> {
    let n = uvarint(b, pos)?;
    let end = usize::try_from(n).ok().and_then(|n| pos.checked_add(n)).filter(|&e| e <= b.len());
    let Some(end) = end else { return Err(format!("string of {n} bytes runs past the record at {}", *pos)) };
    let s = std::str::from_utf8(&b[*pos..end]).map_err(|e| format!("label at {}: {e}", *pos))?.to_string();
    *pos = end;
    Ok(s)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
    move |source| DbError::Io { path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> DbError {
    DbError::Block(BlockError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() })
}

fn sync_dir(dir: &Path) -> Result<(), DbError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_err(dir))
}

/// The tombstone log of a database directory (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct TombstoneLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
}

impl TombstoneLog {
    /// Opens (creating it atomically when missing) the log in `dir` and reads every record;
    /// a torn last record is cut off (and the cut synced). A leftover temporary file of an
    /// interrupted rewrite is removed.
    pub(crate) fn open(dir: &Path) -> Result<(TombstoneLog, Tombstones), DbError> {
        let path = dir.join(TOMBSTONES_FILE);
        let tmp = dir.join(format!("{TOMBSTONES_FILE}.tmp"));
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DbError::Io { path: tmp, source: e }),
        }
        if !path.exists() {
            write_atomically(dir, &Tombstones::new())?;
        }
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let mut all = Tombstones::new();
        if bytes.len() < HEADER_LEN || bytes[..4] != TOMBSTONES_MAGIC {
            return Err(corrupt(&path, 0, "bad tombstone log header"));
        }
        if bytes[4] != VERSION {
            return Err(corrupt(&path, 4, format!("unsupported tombstone log version {}", bytes[4])));
        }
        let mut pos = HEADER_LEN;
        let mut torn_at = None;
        while pos < bytes.len() {
            let rest = bytes.len() - pos;
            // A damaged record is a torn write when it reaches the end of the file or only
            // zeros follow (a file extended but not written); otherwise it is corruption.
            let torn = |reach: usize| reach >= rest || bytes[pos..].iter().all(|&b| b == 0);
            if rest < RECORD_HEADER_LEN {
                torn_at = Some(pos);
                break;
            }
            let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            let (len, crc) = (word(pos) as usize, word(pos + 4));
            let reach = RECORD_HEADER_LEN.saturating_add(len);
            if len == 0 || reach > rest {
                if torn(reach) {
                    torn_at = Some(pos);
                    break;
                }
                return Err(corrupt(&path, pos as u64, format!("tombstone record length {len} is invalid")));
            }
            let payload = &bytes[pos + RECORD_HEADER_LEN..pos + reach];
            if crc32c::crc32c(payload) != crc {
                if torn(reach) {
                    torn_at = Some(pos);
                    break;
                }
                return Err(corrupt(&path, pos as u64, "tombstone record checksum mismatch"));
            }
            let mut rec = Tombstones::new();
            rec.decode_into(payload).map_err(|r| corrupt(&path, pos as u64, r))?;
            all.extend(&rec);
            pos += reach;
        }
        let file = OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
        if let Some(at) = torn_at {
            tracing::warn!(path = %path.display(), offset = at, "cutting off a torn tombstone record");
            file.set_len(at as u64).and_then(|_| file.sync_all()).map_err(io_err(&path))?;
        }
        Ok((TombstoneLog { dir: dir.to_path_buf(), path, file }, all))
    }

    /// Appends `rec` as one record and syncs it: durable on return.
    pub(crate) fn append(&mut self, rec: &Tombstones) -> Result<(), DbError> {
        let mut buf = vec![0u8; RECORD_HEADER_LEN];
        rec.encode(&mut buf);
        let len = u32::try_from(buf.len() - RECORD_HEADER_LEN).map_err(|_| DbError::Io {
            path: self.path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "tombstone record over 4 GiB"),
        })?;
        let crc = crc32c::crc32c(&buf[RECORD_HEADER_LEN..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let path = self.path.clone();
        self.file.write_all(&buf).and_then(|_| self.file.sync_data()).map_err(io_err(&path))
    }

    /// Replaces the log by one holding exactly `all` (temporary file, sync, rename, directory
    /// sync): a crash leaves the old log or the new one.
    pub(crate) fn rewrite(&mut self, all: &Tombstones) -> Result<(), DbError> {
        write_atomically(&self.dir, all)?;
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(io_err(&self.path))?;
        Ok(())
    }
}

fn write_atomically(dir: &Path, all: &Tombstones) -> Result<(), DbError> {
    let path = dir.join(TOMBSTONES_FILE);
    let tmp = dir.join(format!("{TOMBSTONES_FILE}.tmp"));
    let mut buf = TOMBSTONES_MAGIC.to_vec();
    buf.extend_from_slice(&[VERSION, 0, 0, 0]);
    if !all.is_empty() {
        let at = buf.len();
        buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        all.encode(&mut buf);
        let len = u32::try_from(buf.len() - at - RECORD_HEADER_LEN).map_err(|_| DbError::Io {
            path: tmp.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "tombstone record over 4 GiB"),
        })?;
        let crc = crc32c::crc32c(&buf[at + RECORD_HEADER_LEN..]);
        buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    }
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&buf).and_then(|_| f.sync_all()).map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &str) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", v)]).unwrap()
    }

    fn batch(ts: &[i64]) -> SampleBatch {
        let mut b = SampleBatch::default();
        for &t in ts {
            b.push(t, t as f64);
        }
        b
    }

    #[test]
    fn intervals_merge_and_filter() {
        let mut t = Tombstones::new();
        t.add(&l("a"), 10, 20);
        t.add(&l("a"), 21, 30);
        t.add(&l("a"), 50, 60);
        t.add(&l("a"), 5, 12);
        t.add(&l("a"), 9, 1); // empty: ignored
        assert_eq!(t.get(&l("a")).unwrap(), &[(5, 30), (50, 60)]);
        let mut b = batch(&[1, 5, 30, 31, 49, 50, 60, 61]);
        assert_eq!(t.filter(&l("a"), &mut b, 0), 4);
        assert_eq!(b.timestamps, vec![1, 31, 49, 61]);
        // Rollup points of resolution 10 standing for (p - 10, p]: 40 covers (30, 40], kept;
        // 35 covers (25, 35], dropped; 55 and 69 meet [50, 60], dropped; 70 covers (60, 70], kept.
        let mut b = batch(&[35, 40, 45, 55, 69, 70, 80]);
        t.filter(&l("a"), &mut b, 9);
        assert_eq!(b.timestamps, vec![40, 45, 70, 80]);
        assert!(!t.overlaps(&l("a"), 61, 100, 0) && t.overlaps(&l("a"), 61, 100, 1));
        assert_eq!(t.filter(&l("b"), &mut batch(&[10]), 0), 0);
    }

    #[test]
    fn log_round_trips_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, t0) = TombstoneLog::open(dir.path()).unwrap();
        assert!(t0.is_empty());
        let mut r1 = Tombstones::new();
        r1.add(&l("a"), -5, 7);
        r1.add(&l("x"), i64::MIN, i64::MAX);
        log.append(&r1).unwrap();
        let good = std::fs::metadata(dir.path().join(TOMBSTONES_FILE)).unwrap().len();
        let mut r2 = Tombstones::new();
        r2.add(&l("b"), 1, 2);
        log.append(&r2).unwrap();
        drop(log);
        let (_, all) = TombstoneLog::open(dir.path()).unwrap();
        let mut want = r1.clone();
        want.extend(&r2);
        assert_eq!(all, want);
        // Every cut of the last record reads as the first record alone.
        let full = std::fs::read(dir.path().join(TOMBSTONES_FILE)).unwrap();
        for cut in good as usize..full.len() {
            std::fs::write(dir.path().join(TOMBSTONES_FILE), &full[..cut]).unwrap();
            let (_, all) = TombstoneLog::open(dir.path()).unwrap();
            assert_eq!(all, r1, "cut at {cut}");
            assert_eq!(std::fs::metadata(dir.path().join(TOMBSTONES_FILE)).unwrap().len(), good);
        }
        // Damage in the first record, followed by the second: corruption, not silence.
        let mut bad = full.clone();
        bad[HEADER_LEN + RECORD_HEADER_LEN + 2] ^= 0xff;
        std::fs::write(dir.path().join(TOMBSTONES_FILE), &bad).unwrap();
        let err = TombstoneLog::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains("offset 8"), "{err}");
        // Rewrite replaces everything.
        std::fs::write(dir.path().join(TOMBSTONES_FILE), &full).unwrap();
        let (mut log, _) = TombstoneLog::open(dir.path()).unwrap();
        log.rewrite(&r2).unwrap();
        log.append(&r1).unwrap();
        drop(log);
        assert_eq!(TombstoneLog::open(dir.path()).unwrap().1, want);
    }
}
