//! Damaged WAL segments: random byte flips and truncations. Opening must always succeed, never
//! panic, and keep exactly the commits before the damage (a prefix of what was written, and at
//! least every commit that ended before the first damaged byte).

mod common;

use std::fs;
use std::path::Path;

use common::copy_dir;
use rand::{Rng, SeedableRng};
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::{Head, HeadOptions, SyncPolicy};

const SERIES: usize = 8;
const COMMITS: u64 = 300;

fn opts() -> HeadOptions {
    let mut o = HeadOptions::default();
    o.wal.segment_size = 8 << 10;
    o.wal.sync = SyncPolicy::Never;
    o
}

fn bits(b: u64, i: usize) -> u64 {
    (b * 31 + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Writes the reference WAL; returns per commit `(segment, end offset)`.
fn write_reference(dir: &Path) -> Vec<(u32, u64)> {
    let (head, _) = Head::open(dir, opts()).unwrap();
    let wal_dir = head.wal().unwrap().dir().to_path_buf();
    let mut ends = vec![];
    let mut app = head.appender();
    for b in 0..COMMITS {
        // New series keep appearing, so series records are damaged too.
        let n = SERIES + (b as usize / 20);
        for i in 0..n {
            let l = Labels::from_pairs([("__name__", "m"), ("s", &i.to_string())]).unwrap();
            app.append(&l, b as i64 * 10, f64::from_bits(bits(b, i))).unwrap();
        }
        app.commit().unwrap();
        let seg = head.wal().unwrap().current_segment();
        let len = fs::metadata(wal_dir.join(format!("{seg:08}"))).unwrap().len();
        ends.push((seg, len));
    }
    ends
}

/// Commits fully present, checking that what is present is a prefix and bit-exact.
fn commits_present(dir: &Path) -> u64 {
    let (head, _) = Head::open(dir, opts()).unwrap();
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    let mut per_commit = vec![0usize; COMMITS as usize];
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let i: usize = s.labels.get("s").unwrap().parse().unwrap();
        for smp in s.samples.collect_all().unwrap().iter() {
            let b = (smp.timestamp_ms / 10) as u64;
            assert_eq!(smp.value.to_bits(), bits(b, i), "wrong value for commit {b} series {i}");
            per_commit[b as usize] += 1;
        }
    }
    let mut k = 0;
    while k < COMMITS && per_commit[k as usize] == SERIES + (k as usize / 20) {
        k += 1;
    }
    assert!(
        per_commit[k as usize..].iter().all(|&n| n == 0),
        "not a prefix: commit {k} partial or later commits present"
    );
    k
}

#[test]
fn damaged_segments_open_up_to_the_last_good_record() {
    let base = tempfile::tempdir().unwrap();
    let reference = base.path().join("ref");
    let ends = write_reference(&reference);
    let wal = reference.join("wal");
    let mut segs: Vec<(u32, u64)> = fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((n, e.metadata().unwrap().len()))
        })
        .filter(|&(_, len)| len > 0)
        .collect();
    segs.sort_unstable();
    assert!(segs.len() > 5, "want several segments, got {}", segs.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let iterations: usize = std::env::var("CORRUPT_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    for it in 0..iterations {
        let dir = base.path().join(format!("it{it}"));
        copy_dir(&reference, &dir);
        let (seg, len) = segs[rng.gen_range(0..segs.len())];
        let path = dir.join("wal").join(format!("{seg:08}"));
        let off = rng.gen_range(0..len);
        let mut data = fs::read(&path).unwrap();
        let what = rng.gen_range(0..3);
        match what {
            0 => data[off as usize] ^= 1 << rng.gen_range(0..8),
            1 => {
                for j in off as usize..(off as usize + rng.gen_range(1..64)).min(data.len()) {
                    data[j] = rng.r#gen();
                }
            }
            _ => data.truncate(off as usize),
        }
        fs::write(&path, &data).unwrap();
        let k = commits_present(&dir);
        // Every commit that ended at or before the damaged byte survives.
        let intact = ends.iter().take_while(|&&(s, end)| s < seg || (s == seg && end <= off)).count() as u64;
        assert!(
            k >= intact,
            "iteration {it}: damage at segment {seg} byte {off} (kind {what}) kept {k} commits, {intact} intact"
        );
        // Opening again after the repair finds nothing more to repair and the same data.
        let (_, report) = Head::open(&dir, opts()).unwrap();
        assert!(report.corruption.is_none(), "iteration {it}: second open still finds damage");
        assert_eq!(commits_present(&dir), k);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn garbage_files_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        fs::create_dir_all(&wal).unwrap();
        for s in 0..rng.gen_range(1..4) {
            let n = rng.gen_range(0..2000);
            let bytes: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
            fs::write(wal.join(format!("{s:08}")), bytes).unwrap();
        }
        let (head, report) = Head::open(dir.path(), opts()).unwrap();
        assert!(report.corruption.is_some() || report.records == 0);
        assert_eq!(head.stats().samples_appended, 0);
    }
}
