//! Blocks: round trips through the writer and reader, selection, corruption, listing, deletion.

use std::collections::BTreeMap;

use proptest::prelude::*;
use telemetry_core::{Labels, Matcher};
use telemetry_store::block::{
    Aggr, Block, BlockCompaction, BlockError, BlockWriter, BlockWriterOptions, delete_block, list_blocks, open_blocks,
};

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "m"),
        ("i", &format!("{i:03}")),
        ("parity", if i.is_multiple_of(2) { "even" } else { "odd" }),
    ])
    .unwrap()
}

type Model = BTreeMap<Labels, (Vec<i64>, Vec<f64>)>;

fn sample_series(n_series: usize, n: usize, seed: u64) -> Model {
    let mut m = Model::new();
    for i in 0..n_series {
        let mut t = 1_000 * i as i64;
        let (mut ts, mut vs) = (vec![], vec![]);
        for k in 0..n + i {
            t += 1000 + ((k as u64 ^ seed) % 7) as i64;
            ts.push(t);
            let bits = match (k + i) % 9 {
                0 => 0x7ff8_0000_0000_0001 + seed,
                1 => (-0.0f64).to_bits(),
                _ => ((k as f64) * 0.1 + seed as f64).to_bits(),
            };
            vs.push(f64::from_bits(bits));
        }
        m.insert(labels(i), (ts, vs));
    }
    m
}

fn write(dir: &std::path::Path, m: &Model, chunk: usize) -> telemetry_store::block::BlockMeta {
    let mut w =
        BlockWriter::with_options(dir, 0, BlockWriterOptions { chunk_max_samples: chunk, segment_max_bytes: 4096 })
            .unwrap();
    // Any order: reversed.
    for (l, (ts, vs)) in m.iter().rev() {
        w.add_series(l, &[(Aggr::Raw, ts, vs)]).unwrap();
    }
    w.finish(0, 10_000_000, BlockCompaction::default()).unwrap()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_select_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample_series(20, 500, 3);
    let meta = write(dir.path(), &m, 100);
    assert_eq!(meta.stats.series, 20);
    assert_eq!(meta.stats.samples, m.values().map(|s| s.0.len() as u64).sum::<u64>());
    assert!(meta.stats.chunks >= 20 * 5);
    assert_eq!(meta.compaction.level, 1);
    assert_eq!(meta.compaction.sources, vec![meta.id.clone()]);
    let b = Block::open(&dir.path().join(&meta.id)).unwrap();
    assert_eq!(b.meta(), &meta);
    // Sizes on disk add up to the stats.
    let on_disk: u64 = walk(b.dir());
    assert_eq!(on_disk, meta.stats.bytes);
    // Several segments (4 KiB cap).
    assert!(b.dir().join("chunks/000002").exists());

    let all = b.select(&[], i64::MIN, i64::MAX, Aggr::Raw).unwrap();
    assert_eq!(all.len(), 20);
    for (l, batch) in &all {
        let (ts, vs) = &m[l];
        assert_eq!(&batch.timestamps, ts);
        assert_eq!(bits(&batch.values), bits(vs));
    }
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "sorted by labels");
    // Matchers and a time range cutting chunks.
    let (mint, maxt) = (120_000, 250_500);
    let sel = b.select(&[Matcher::equal("parity", "odd")], mint, maxt, Aggr::Raw).unwrap();
    assert_eq!(sel.len(), 10);
    for (l, batch) in &sel {
        let (ts, vs) = &m[l];
        let want: Vec<(i64, u64)> =
            ts.iter().zip(vs).filter(|(t, _)| **t >= mint && **t <= maxt).map(|(t, v)| (*t, v.to_bits())).collect();
        let got: Vec<(i64, u64)> = batch.timestamps.iter().zip(&batch.values).map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
    }
    // Other kinds and empty ranges select nothing.
    assert!(b.select(&[], i64::MIN, i64::MAX, Aggr::Sum).unwrap().is_empty());
    assert!(b.select(&[], 0, 1, Aggr::Raw).unwrap().is_empty());
    assert!(b.select(&[Matcher::equal("i", "nope")], i64::MIN, i64::MAX, Aggr::Raw).unwrap().is_empty());
}

fn walk(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        n += if md.is_dir() { walk(&e.path()) } else { md.len() };
    }
    n
}

#[test]
fn rollup_kinds_share_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let ts: Vec<i64> = (0..300).map(|i| i * 60_000).collect();
    let count: Vec<f64> = (0..300).map(|i| (i % 7) as f64).collect();
    let sum: Vec<f64> = (0..300).map(|i| i as f64 * 1.5).collect();
    let mut w = BlockWriter::new(dir.path(), 60_000).unwrap();
    w.add_series(&labels(1), &[(Aggr::Count, &ts, &count), (Aggr::Sum, &ts, &sum)]).unwrap();
    let meta = w.finish(0, 18_000_000, BlockCompaction::default()).unwrap();
    assert_eq!(meta.resolution_ms, 60_000);
    let b = Block::open(&dir.path().join(&meta.id)).unwrap();
    let c = b.select(&[], 0, i64::MAX, Aggr::Count).unwrap();
    assert_eq!(c[0].1.values, count);
    let s = b.select(&[], 60_000, 120_000, Aggr::Sum).unwrap();
    assert_eq!(s[0].1.values, vec![1.5, 3.0]);
    assert!(b.select(&[], 0, i64::MAX, Aggr::Raw).unwrap().is_empty());
}

#[test]
fn sketches_round_trip_and_damage_is_a_typed_error() {
    use telemetry_agg::CompactDdSketch;
    let dir = tempfile::tempdir().unwrap();
    let ts: Vec<i64> = (1..=300).map(|i| i * 60_000).collect();
    let count: Vec<f64> = vec![6.0; 300];
    let sketches: Vec<CompactDdSketch> = (0..300)
        .map(|i| {
            let mut s = CompactDdSketch::new(0.01).unwrap();
            for j in 0..6 {
                s.add((i * 6 + j) as f64 % 97.0 - 20.0);
            }
            s
        })
        .collect();
    // Sketches for every other bucket, cut into chunks of 64 like the other kinds.
    let (sts, sks): (Vec<i64>, Vec<CompactDdSketch>) =
        ts.iter().zip(&sketches).step_by(2).map(|(t, s)| (*t, s.clone())).unzip();
    let opts = BlockWriterOptions { chunk_max_samples: 64, ..Default::default() };
    let mut w = BlockWriter::with_options(dir.path(), 60_000, opts).unwrap();
    w.add_series_with_sketches(&labels(1), &[(Aggr::Count, &ts, &count)], &sts, &sks).unwrap();
    let e = w.add_series_with_sketches(&labels(2), &[], &sts[..2], &sks[..1]).unwrap_err();
    assert!(matches!(e, BlockError::InvalidSamples { .. }), "{e}");
    let e = w.add_series(&labels(3), &[(Aggr::Sketch, &ts, &count)]).unwrap_err();
    assert!(matches!(e, BlockError::InvalidSamples { .. }), "{e}");
    let meta = w.finish(0, 18_060_000, BlockCompaction::default()).unwrap();
    assert_eq!(meta.stats.samples, 300, "sketches are not samples");
    let bdir = dir.path().join(&meta.id);
    let b = Block::open(&bdir).unwrap();
    let (_, crefs) = b.series(0).unwrap();
    let (mut t2, mut s2) = (Vec::new(), Vec::new());
    b.read_sketches(&crefs, i64::MIN, i64::MAX, &mut t2, &mut s2).unwrap();
    assert_eq!((&t2, &s2), (&sts, &sks));
    // A range inside chunks.
    let (mut t3, mut s3) = (Vec::new(), Vec::new());
    b.read_sketches(&crefs, 100 * 60_000, 200 * 60_000, &mut t3, &mut s3).unwrap();
    let want: Vec<usize> = (0..sts.len()).filter(|&i| (100 * 60_000..=200 * 60_000).contains(&sts[i])).collect();
    assert_eq!(t3, want.iter().map(|&i| sts[i]).collect::<Vec<_>>());
    assert_eq!(s3, want.iter().map(|&i| sks[i].clone()).collect::<Vec<_>>());
    // Damage in a sketch chunk: the checksum catches it, named by file and offset.
    let c = crefs.iter().find(|c| c.aggr == Aggr::Sketch).unwrap();
    let seg = bdir.join("chunks/000001");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[c.offset as usize + 12] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let b = Block::open(&bdir).unwrap();
    let e = b.read_sketches(&crefs, i64::MIN, i64::MAX, &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("000001") && e.to_string().contains("offset"), "{e}");
}

#[test]
fn invalid_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BlockWriter::new(dir.path(), 0).unwrap();
    let e = w.add_series(&labels(0), &[(Aggr::Raw, &[2, 1], &[0.0, 0.0])]).unwrap_err();
    assert!(matches!(e, BlockError::InvalidSamples { .. }), "{e}");
    let e = w.add_series(&labels(0), &[(Aggr::Raw, &[1, 2], &[0.0])]).unwrap_err();
    assert!(matches!(e, BlockError::InvalidSamples { .. }), "{e}");
    w.add_series(&labels(0), &[(Aggr::Raw, &[1], &[0.0])]).unwrap();
    w.add_series(&labels(0), &[(Aggr::Raw, &[3], &[0.0])]).unwrap();
    assert!(matches!(w.finish(0, 10, BlockCompaction::default()), Err(BlockError::DuplicateSeries(_))));
    // The failed writer removed its temporary directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn open_blocks_cleans_up_and_sorts_and_delete_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample_series(3, 10, 1);
    let a = write(dir.path(), &m, 2048);
    let b = write(dir.path(), &m, 2048);
    // A writer killed before its rename leaves a .tmp directory; a killed deletion a .deleted one.
    std::fs::create_dir_all(dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp/chunks")).unwrap();
    std::fs::create_dir_all(dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAW.deleted")).unwrap();
    assert_eq!(list_blocks(dir.path()).unwrap().len(), 2);
    let blocks = open_blocks(dir.path()).unwrap();
    assert_eq!(blocks.iter().map(|b| b.meta().id.clone()).collect::<Vec<_>>(), vec![a.id.clone(), b.id.clone()]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    delete_block(&blocks[0]).unwrap();
    let left = list_blocks(dir.path()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, b.id);
    assert!(open_blocks(&dir.path().join("missing")).unwrap().is_empty());
}

#[test]
fn damaged_chunks_and_meta_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample_series(4, 300, 2);
    let meta = write(dir.path(), &m, 64);
    let bdir = dir.path().join(&meta.id);
    let seg = bdir.join("chunks/000001");
    let orig = std::fs::read(&seg).unwrap();
    let mut rng_state = 12345u64;
    for _ in 0..200 {
        rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut bytes = orig.clone();
        let at = (rng_state >> 33) as usize % bytes.len();
        if rng_state.is_multiple_of(3) {
            bytes.truncate(at);
        } else {
            bytes[at] ^= 1 << (rng_state % 8);
        }
        std::fs::write(&seg, &bytes).unwrap();
        match Block::open(&bdir) {
            Err(e) => assert!(e.to_string().contains("000001"), "{e}"),
            Ok(b) => {
                if let Err(e) = b.select(&[], i64::MIN, i64::MAX, Aggr::Raw) {
                    let s = e.to_string();
                    assert!(s.contains("000001") && s.contains("offset"), "{s}");
                }
            }
        }
    }
    std::fs::write(&seg, &orig).unwrap();
    // The index: any damage is an error or a correct answer, never a panic.
    let idx = bdir.join("index");
    let orig = std::fs::read(&idx).unwrap();
    for at in (0..orig.len()).step_by(7) {
        let mut bytes = orig.clone();
        bytes[at] ^= 0x20;
        std::fs::write(&idx, &bytes).unwrap();
        if let Ok(b) = Block::open(&bdir) {
            let _ = b.select(&[Matcher::equal("parity", "odd")], i64::MIN, i64::MAX, Aggr::Raw);
        }
    }
    std::fs::write(&idx, &orig).unwrap();
    std::fs::write(bdir.join("meta.json"), b"{").unwrap();
    let e = Block::open(&bdir).unwrap_err();
    assert!(matches!(e, BlockError::Meta { .. }) && e.to_string().contains("meta.json"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn any_samples_round_trip(
        series in proptest::collection::vec(proptest::collection::btree_map(any::<i64>(), any::<u64>(), 0..300), 1..6),
        chunk in 1usize..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BlockWriter::with_options(dir.path(), 0, BlockWriterOptions { chunk_max_samples: chunk, ..Default::default() }).unwrap();
        let mut want = BTreeMap::new();
        for (i, s) in series.iter().enumerate() {
            let ts: Vec<i64> = s.keys().copied().collect();
            let vs: Vec<f64> = s.values().map(|b| f64::from_bits(*b)).collect();
            w.add_series(&labels(i), &[(Aggr::Raw, &ts, &vs)]).unwrap();
            if !ts.is_empty() {
                want.insert(labels(i), s.clone());
            }
        }
        let meta = w.finish(i64::MIN, i64::MAX, BlockCompaction::default()).unwrap();
        let b = Block::open(&dir.path().join(&meta.id)).unwrap();
        let got: BTreeMap<Labels, BTreeMap<i64, u64>> = b
            .select(&[], i64::MIN, i64::MAX, Aggr::Raw)
            .unwrap()
            .into_iter()
            .map(|(l, b)| (l, b.timestamps.iter().zip(&b.values).map(|(t, v)| (*t, v.to_bits())).collect()))
            .collect();
        prop_assert_eq!(got, want);
    }
}
