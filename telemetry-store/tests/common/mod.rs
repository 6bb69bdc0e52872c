//! Scaffolding shared by the store's integration tests: the `BTreeMap` model of a database,
//! small-database options, scratch directories, and the runner of the SIGKILL tests' child
//! processes.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::SyncPolicy;
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::tier::{Tier, TierConfig};

/// Per series, value bits by timestamp.
pub type Model = BTreeMap<Labels, BTreeMap<i64, u64>>;

/// A database with everything small: 5-sample head chunks, 10 s blocks compacted to 30 s and
/// 90 s, a 30 s out-of-order window, 7-sample block chunks and a 5 s rollup tier kept for good.
pub fn small_db_opts(sync: SyncPolicy) -> DbOptions {
    let mut head = telemetry_store::HeadOptions {
        chunk_max_samples: 5,
        chunk_range_ms: 10_000,
        out_of_order_window_ms: 30_000,
        ..Default::default()
    };
    head.wal.sync = sync;
    DbOptions {
        head,
        block_range_ms: 10_000,
        compaction_ranges: vec![10_000, 30_000, 90_000],
        tiers: TierConfig {
            raw_retention_ms: i64::MAX / 4,
            tiers: vec![Tier { resolution_ms: 5_000, retention_ms: i64::MAX / 4, block_range_ms: 30_000 }],
            ..Default::default()
        },
        block: telemetry_store::block::BlockWriterOptions { chunk_max_samples: 7, ..Default::default() },
    }
}

/// Everything `db` answers over all time, checking that each series' timestamps increase.
pub fn read_model(db: &Db) -> Model {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut out = Model::new();
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        assert!(b.timestamps.windows(2).all(|w| w[0] < w[1]));
        out.insert(s.labels, b.timestamps.iter().zip(&b.values).map(|(t, v)| (*t, v.to_bits())).collect());
    }
    out
}

/// A scratch directory, in memory when the system has `/dev/shm` (model tests do not need
/// real fsyncs, and they dominate the run time on disk).
pub fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm") {
        p if p.is_dir() => tempfile::tempdir_in(p).unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        _ => tempfile::tempdir().unwrap(),
    }
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// One round of a SIGKILL test: runs this test binary's ignored test `child_test` alone with
/// the environment `envs` and its standard error to `stderr`, waits (up to 60 s) for the first
/// line of its standard output that `progress` accepts, lets it run `run_for` longer, kills it
/// with SIGKILL, and returns every line it printed.
pub fn run_and_kill(
    child_test: &str,
    envs: &[(&str, &OsStr)],
    stderr: Stdio,
    progress: fn(&str) -> bool,
    run_for: Duration,
) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([child_test, "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut lines = vec![];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else { break };
        let seen = progress(&line);
        lines.push(line);
        if seen {
            break;
        }
    }
    std::thread::sleep(run_for);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}
