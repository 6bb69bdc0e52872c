//! Replaying captures: a text exposition with timestamps (OpenMetrics 1.0 or Prometheus 0.0.4,
//! optionally gzip-compressed) read whole, then fed to the pipeline in event-time order.
//!
//! Captures such as `promtool tsdb dump` output hold each series' samples contiguously, so
//! file order is not time order. [`read_capture`] decodes the file into one column of
//! `(timestamp, value)` per series (16 bytes per sample), decompressing on one thread while
//! parsing on another; [`Capture::replay`] merges the columns by timestamp (a k-way merge, ties
//! broken by series order) into batches, submits them with backpressure and waits for every
//! acknowledgement.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use telemetry_core::format::text::{Entry, Flavor, TextDecoder, TextErrorKind};
use telemetry_core::{LabelError, Labels, Metadata};

use crate::batch::{Batch, BatchBuilder};
use crate::pipeline::{Ack, IngestError, Pipeline, add_ack};

/// The text format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Decide from the file name (`.om`, `.om.gz`) or content (`# EOF`, `# UNIT`, timestamps
    /// in seconds).
    #[default]
    Auto,
    /// OpenMetrics 1.0 text (timestamps in seconds).
    OpenMetrics,
    /// Prometheus text exposition 0.0.4 (timestamps in milliseconds).
    Prometheus,
}

/// Errors reading or replaying a capture.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be read (or is not valid gzip).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line cannot be decoded.
    #[error("{path}: line {line}, column {column}: {kind}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based byte column.
        column: usize,
        /// What is wrong.
        kind: TextErrorKind,
    },
    /// A line's labels are invalid (duplicate names, limits).
    #[error("{path}: line {line}: {source}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        source: LabelError,
    },
    /// The pipeline refused a batch.
    #[error("replay stopped: {0}")]
    Ingest(#[from] IngestError),
}

/// A decoded capture: one column per series.
#[derive(Debug, Default)]
pub struct Capture {
    /// The series, in order of first appearance.
    pub series: Vec<Labels>,
    /// Timestamps (ms) per series, in file order.
    timestamps: Vec<Vec<i64>>,
    /// Values per series.
    values: Vec<Vec<f64>>,
    /// Family metadata, in file order.
    pub metadata: Vec<(String, Metadata)>,
    /// Samples in the capture.
    pub samples: u64,
    /// Uncompressed bytes decoded.
    pub bytes: u64,
    /// Time spent reading and decoding.
    pub decode_time: Duration,
    /// The flavour read.
    pub flavor: Option<Flavor>,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Batches submitted.
    pub batches: u64,
    /// Outcome totals of every acknowledged batch.
    pub ack: Ack,
    /// Batches that failed (their errors: the first few in `errors`).
    pub failed_batches: u64,
    /// The first few batch errors.
    pub errors: Vec<String>,
    /// Smallest and largest timestamp replayed.
    pub time_range: Option<(i64, i64)>,
    /// Wall time from the first submission to the last acknowledgement.
    pub elapsed: Duration,
}

const CHUNK: usize = 4 << 20;

/// Reads a whole capture (see the [module docs](self)). `progress` is called now and then with
/// the bytes of the file read so far and the file's size.
///
/// # Errors
/// [`ReplayError::Io`], [`ReplayError::Decode`] (with the line and column) or
/// [`ReplayError::Labels`].
pub fn read_capture(
    path: &Path,
    format: InputFormat,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Capture, ReplayError> {
    let t0 = Instant::now();
    let io = |source| ReplayError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let read = Arc::new(AtomicU64::new(0));
    let counting = CountingReader { inner: file, n: read.clone() };
    let mut head = [0u8; 2];
    let gz = {
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.read(&mut head).map_err(io)? == 2 && head == [0x1f, 0x8b]
    };
    let reader: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, counting)))
    } else {
        Box::new(counting)
    };
    // Decompress on one thread, parse on this one.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    let reader_thread =
        std::thread::Builder::new().name("capture-reader".into()).spawn(move || chunker(reader, tx)).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut flavor = match format {
        InputFormat::OpenMetrics => Some(Flavor::OpenMetrics),
        InputFormat::Prometheus => Some(Flavor::Prometheus),
        InputFormat::Auto if name.ends_with(".om") || name.ends_with(".om.gz") => Some(Flavor::OpenMetrics),
        InputFormat::Auto => None,
    };
    let mut p = Parser::new(path, now_ms());
    let mut first_err = None;
    while let Ok(chunk) = rx.recv() {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                first_err = Some(io(e));
                break;
            }
        };
        let fl = *flavor.get_or_insert_with(|| sniff(&chunk));
        if let Err(e) = p.chunk(&chunk, fl) {
            first_err = Some(e);
            break;
        }
        progress(read.load(Ordering::Relaxed), size);
    }
    drop(rx);
    let _ = reader_thread.join();
    if let Some(e) = first_err {
        return Err(e);
    }
    if flavor == Some(Flavor::OpenMetrics) && !p.seen_eof && p.lines > 0 {
        return Err(ReplayError::Decode {
            path: path.to_path_buf(),
            line: p.lines + 1,
            column: 1,
            kind: TextErrorKind::MissingEof,
        });
    }
    progress(size, size);
    let mut c = p.capture;
    c.decode_time = t0.elapsed();
    c.flavor = flavor;
    Ok(c)
}

/// Guesses the flavour from the first chunk.
fn sniff(chunk: &[u8]) -> Flavor {
    let text = String::from_utf8_lossy(&chunk[..chunk.len().min(1 << 16)]);
    if text.contains("# EOF") || text.contains("# UNIT ") {
        return Flavor::OpenMetrics;
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let after_labels = match line.rfind('}') {
            Some(i) => &line[i + 1..],
            None => line,
        };
        let fields: Vec<&str> = after_labels.split_whitespace().collect();
        let ts = if line.contains('}') { fields.get(1) } else { fields.get(2) };
        if let Some(ts) = ts {
            // OpenMetrics writes seconds (often with a fraction); 0.0.4 integer milliseconds.
            // An integer between 1e8 and 1e11 reads as seconds since 1973..5138, not as ms.
            if ts.contains('.') || ts.parse::<f64>().is_ok_and(|t| (1e8..1e11).contains(&t.abs())) {
                return Flavor::OpenMetrics;
            }
            return Flavor::Prometheus;
        }
    }
    Flavor::Prometheus
}

fn chunker(mut r: Box<dyn Read + Send>, tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut carry);
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let mut filled = start;
        let mut eof = false;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        buf.truncate(filled);
        if !eof {
            // Keep the partial last line for the next chunk.
            match memchr_last_newline(&buf) {
                Some(i) => carry = buf.split_off(i + 1),
                None => {
                    carry = buf;
                    continue;
                }
            }
        }
        if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
            return;
        }
        if eof {
            return;
        }
    }
}

fn memchr_last_newline(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == b'\n')
}

struct CountingReader<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct Parser {
    path: PathBuf,
    capture: Capture,
    by_key: HashMap<String, u32>,
    by_labels: HashMap<Labels, u32>,
    prev: Option<(String, String, u32)>,
    lines: usize,
    seen_eof: bool,
    default_ts: i64,
}

impl Parser {
    fn new(path: &Path, default_ts: i64) -> Self {
        Parser {
            path: path.to_path_buf(),
            capture: Capture::default(),
            by_key: HashMap::new(),
            by_labels: HashMap::new(),
            prev: None,
            lines: 0,
            seen_eof: false,
            default_ts,
        }
    }

    fn chunk(&mut self, chunk: &[u8], flavor: Flavor) -> Result<(), ReplayError> {
        self.capture.bytes += chunk.len() as u64;
        let mut dec = TextDecoder::new(chunk, flavor);
        let mut family_md: Option<(String, Metadata)> = None;
        let mut missing_eof = false;
        while let Some(e) = dec.next() {
            let e = match e {
                Ok(e) => e,
                Err(err) if err.kind == TextErrorKind::MissingEof => {
                    missing_eof = true;
                    break;
                }
                Err(err) => {
                    return Err(ReplayError::Decode {
                        path: self.path.clone(),
                        line: self.lines + err.line,
                        column: err.column,
                        kind: err.kind,
                    });
                }
            };
            match e {
                Entry::Sample(s) => {
                    let same = matches!(&self.prev, Some((n, r, _)) if n == s.name && r == s.labels.raw());
                    let idx = if same {
                        self.prev.as_ref().map_or(0, |p| p.2)
                    } else {
                        let key = format!("{}{{{}}}", s.name, s.labels.raw());
                        let idx = match self.by_key.get(&key) {
                            Some(&i) => i,
                            None => {
                                let labels = s.to_labels().map_err(|source| ReplayError::Labels {
                                    path: self.path.clone(),
                                    line: self.lines + dec.line(),
                                    source,
                                })?;
                                let i = match self.by_labels.get(&labels) {
                                    Some(&i) => i,
                                    None => {
                                        let i = self.capture.series.len() as u32;
                                        self.capture.series.push(labels.clone());
                                        self.capture.timestamps.push(Vec::new());
                                        self.capture.values.push(Vec::new());
                                        self.by_labels.insert(labels, i);
                                        i
                                    }
                                };
                                self.by_key.insert(key, i);
                                i
                            }
                        };
                        self.prev = Some((s.name.to_string(), s.labels.raw().to_string(), idx));
                        idx
                    };
                    let i = idx as usize;
                    self.capture.timestamps[i].push(s.timestamp_ms.unwrap_or(self.default_ts));
                    self.capture.values[i].push(s.value);
                    self.capture.samples += 1;
                }
                Entry::Type { family, metric_type } => {
                    self.flush_md(&mut family_md, family);
                    if let Some((_, m)) = family_md.as_mut() {
                        m.metric_type = metric_type;
                    }
                }
                Entry::Help { family, help } => {
                    self.flush_md(&mut family_md, family);
                    if let Some((_, m)) = family_md.as_mut() {
                        m.help = help.unescape().into_owned();
                    }
                }
                Entry::Unit { family, unit } => {
                    self.flush_md(&mut family_md, family);
                    if let Some((_, m)) = family_md.as_mut() {
                        m.unit = unit.to_string();
                    }
                }
                Entry::Eof => self.seen_eof = true,
                Entry::Comment(_) => {}
            }
        }
        if let Some(md) = family_md {
            self.capture.metadata.push(md);
        }
        // The decoder counts the missing `# EOF` as one more line.
        self.lines += dec.line() - usize::from(missing_eof);
        Ok(())
    }

    fn flush_md(&mut self, cur: &mut Option<(String, Metadata)>, family: &str) {
        if cur.as_ref().is_some_and(|(f, _)| f == family) {
            return;
        }
        if let Some(md) = cur.take() {
            self.capture.metadata.push(md);
        }
        *cur = Some((family.to_string(), Metadata::default()));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Capture {
    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The timestamps (ms) and values of series `i` (an index into [`series`](Self::series)),
    /// in file order.
    pub fn column(&self, i: usize) -> Option<(&[i64], &[f64])> {
        Some((self.timestamps.get(i)?, self.values.get(i)?))
    }

    /// Smallest and largest timestamp, ms.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let min = self.timestamps.iter().filter_map(|t| t.iter().min()).min()?;
        let max = self.timestamps.iter().filter_map(|t| t.iter().max()).max()?;
        Some((*min, *max))
    }

    /// Feeds the capture to `pipeline` in event-time order, `batch_samples` samples per batch
    /// (waiting while the ingest queue is full), and waits for every acknowledgement.
    /// `progress` is called with the samples acknowledged so far.
    ///
    /// # Errors
    /// [`ReplayError::Ingest`] when the pipeline is shut down during the replay. Failed batches
    /// (storage errors) are counted in the summary instead.
    pub fn replay(
        &self,
        pipeline: &Pipeline,
        batch_samples: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ReplaySummary, ReplayError> {
        let t0 = Instant::now();
        let batch_samples = batch_samples.max(1);
        let n = self.series.len();
        let mut pos = vec![0usize; n];
        let mut heap: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::with_capacity(n);
        for (i, ts) in self.timestamps.iter().enumerate() {
            if let Some(&t) = ts.first() {
                heap.push(Reverse((t, i as u32)));
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<Result<Ack, IngestError>>();
        let mut summary = ReplaySummary::default();
        let mut local = vec![u32::MAX; n];
        let mut used: Vec<u32> = Vec::new();
        let mut batch = Batch::default();
        let mut acked_batches = 0u64;
        let handle = |r: Result<Ack, IngestError>, s: &mut ReplaySummary| match r {
            Ok(a) => add_ack(&mut s.ack, &a),
            Err(e) => {
                s.failed_batches += 1;
                if s.errors.len() < 5 {
                    s.errors.push(e.to_string());
                }
            }
        };
        let mut tmin = i64::MAX;
        let mut tmax = i64::MIN;
        loop {
            let next = heap.pop();
            if let Some(Reverse((t, i))) = next {
                let iu = i as usize;
                if local[iu] == u32::MAX {
                    local[iu] = batch.add_series(self.series[iu].clone());
                    used.push(i);
                }
                batch.push(local[iu], t, self.values[iu][pos[iu]]);
                tmin = tmin.min(t);
                tmax = tmax.max(t);
                pos[iu] += 1;
                if let Some(&nt) = self.timestamps[iu].get(pos[iu]) {
                    heap.push(Reverse((nt, i)));
                }
            }
            if batch.len() >= batch_samples || (next.is_none() && !batch.is_empty()) {
                for &u in &used {
                    local[u as usize] = u32::MAX;
                }
                used.clear();
                let txc = tx.clone();
                pipeline.submit(
                    std::mem::take(&mut batch),
                    Box::new(move |r| {
                        let _ = txc.send(r);
                    }),
                )?;
                summary.batches += 1;
                while let Ok(r) = rx.try_recv() {
                    acked_batches += 1;
                    handle(r, &mut summary);
                }
                progress(summary.ack.samples);
            }
            if next.is_none() {
                break;
            }
        }
        if self.metadata.is_empty() {
            // Nothing to add.
        } else {
            let mut b = BatchBuilder::new();
            for (f, m) in &self.metadata {
                b.metadata(f, m.clone());
            }
            let txc = tx.clone();
            pipeline.submit(
                b.finish(),
                Box::new(move |r| {
                    let _ = txc.send(r);
                }),
            )?;
            summary.batches += 1;
        }
        drop(tx);
        while acked_batches < summary.batches {
            match rx.recv() {
                Ok(r) => {
                    acked_batches += 1;
                    handle(r, &mut summary);
                    progress(summary.ack.samples);
                }
                Err(_) => return Err(ReplayError::Ingest(IngestError::Closed)),
            }
        }
        summary.time_range = (tmin <= tmax).then_some((tmin, tmax));
        summary.elapsed = t0.elapsed();
        Ok(summary)
    }
}

/// Decodes a text exposition (a request body) into a batch. Samples without a timestamp get
/// `default_ts_ms`.
///
/// # Errors
/// A message naming the line and column of the first bad line (nothing of the body is kept).
pub fn decode_text(body: &[u8], flavor: Flavor, default_ts_ms: i64) -> Result<Batch, String> {
    let mut b = BatchBuilder::new();
    let mut md: Option<(String, Metadata)> = None;
    let mut dec = TextDecoder::new(body, flavor);
    while let Some(e) = dec.next() {
        let e = e.map_err(|e| e.to_string())?;
        match e {
            Entry::Sample(s) => {
                let labels = s.to_labels().map_err(|err| format!("line {}: {err}", dec.line()))?;
                b.push(&labels, s.timestamp_ms.unwrap_or(default_ts_ms), s.value);
            }
            Entry::Type { family, metric_type } => {
                let m = md.get_or_insert_with(|| (family.to_string(), Metadata::default()));
                if m.0 != family {
                    let done = std::mem::replace(m, (family.to_string(), Metadata::default()));
                    b.metadata(&done.0, done.1);
                }
                m.1.metric_type = metric_type;
            }
            Entry::Help { family, help } => {
                let m = md.get_or_insert_with(|| (family.to_string(), Metadata::default()));
                if m.0 != family {
                    let done = std::mem::replace(m, (family.to_string(), Metadata::default()));
                    b.metadata(&done.0, done.1);
                }
                m.1.help = help.unescape().into_owned();
            }
            _ => {}
        }
    }
    if let Some((f, m)) = md {
        b.metadata(&f, m);
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_flavour() {
        assert_eq!(sniff(b"# TYPE up gauge\nup{job=\"a\"} 1 1795264944.510\n# EOF\n"), Flavor::OpenMetrics);
        assert_eq!(sniff(b"up{job=\"a\"} 1 1795264944\n"), Flavor::OpenMetrics);
        assert_eq!(sniff(b"# HELP up x\nup{job=\"a\"} 1 1795264944510\n"), Flavor::Prometheus);
        assert_eq!(sniff(b"up 1 1795264944510\n"), Flavor::Prometheus);
    }

    #[test]
    fn reads_plain_prometheus_text_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cap.prom");
        std::fs::write(&p, "# TYPE a counter\na_total{x=\"1\"} 1 1000\nb 2 1000\na_total{x=\"1\"} 3 2000\n").unwrap();
        let c = read_capture(&p, InputFormat::Auto, &mut |_, _| {}).unwrap();
        assert_eq!((c.series_count(), c.samples), (2, 3));
        assert_eq!(c.column(0).unwrap(), (&[1000i64, 2000][..], &[1.0, 3.0][..]));
        assert_eq!(c.flavor, Some(Flavor::Prometheus));
        std::fs::write(&p, "a 1 1000\na 2 2000\nb{ 3 1000\n").unwrap();
        let e = read_capture(&p, InputFormat::Auto, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = read_capture(&dir.path().join("missing"), InputFormat::Auto, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
