//! Damaged persisted indexes: typed errors, never a panic.

use proptest::prelude::*;
use telemetry_core::{Labels, Matcher};
use telemetry_index::block::{FORMAT_VERSION, MAGIC};
use telemetry_index::{BlockIndex, BlockWriter, IndexError, IndexReader, SymbolCache};

fn sample_index() -> Vec<u8> {
    let mut w = BlockWriter::new();
    for i in 0..300u32 {
        let l = Labels::from_pairs([
            ("__name__", ["up", "node_cpu_seconds_total", "node_load1"][i as usize % 3]),
            ("instance", &format!("host-{}", i % 17)),
            ("job", if i % 2 == 0 { "node" } else { "api" }),
            ("mode", ["idle", "user", "system", ""][i as usize % 4]),
        ])
        .unwrap();
        w.add_series(&l, &i.to_le_bytes()).unwrap();
    }
    w.finish().unwrap()
}

/// Runs every reader call; errors are fine, panics are not.
fn exercise(idx: &BlockIndex) {
    let qs: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("job", "node")],
        vec![Matcher::regex("instance", "host-1.*").unwrap(), Matcher::not_equal("mode", "idle")],
        vec![Matcher::not_regex("job", "api|x").unwrap()],
        vec![Matcher::regex("__name__", "node_.+").unwrap(), Matcher::equal("mode", "")],
    ];
    for q in &qs {
        let _ = idx.postings_for_matchers(q);
        let _ = idx.label_names(q);
        let _ = idx.label_values("instance", q);
    }
    let _ = idx.label_names(&[]);
    let _ = idx.label_values("job", &[]);
    let _ = idx.series_count_by_metric_name();
    let _ = idx.top_label_pairs(3);
    let mut cache = SymbolCache::new();
    for r in [0, 1, 150, 299, 300, u32::MAX] {
        let _ = idx.series_labels(r);
        let _ = idx.chunk_meta(r);
        // Damage reads the same with or without the cache.
        let cached = idx.series_labels_and_meta_cached(r, &mut cache);
        assert_eq!(cached.is_ok(), idx.series_labels_and_meta(r).is_ok(), "series {r}");
    }
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites the TOC checksum so that the reader gets past it to the field checks.
fn fix_toc_crc(b: &mut [u8]) {
    let n = b.len();
    let c = crc32c::crc32c(&b[n - 64..n - 4]);
    b[n - 4..].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn intact_index_answers() {
    let idx = BlockIndex::from_bytes(sample_index()).unwrap();
    assert_eq!(idx.num_series(), 300);
    assert_eq!(idx.postings_for_matchers(&[Matcher::equal("job", "node")]).unwrap().len(), 150);
    exercise(&idx);
}

#[test]
fn typed_errors_for_known_damage() {
    let good = sample_index();
    assert!(matches!(BlockIndex::from_bytes(Vec::new()), Err(IndexError::TooShort { len: 0, .. })));
    assert!(matches!(BlockIndex::from_bytes(good[..good.len() - 1].to_vec()), Err(IndexError::Checksum { .. })));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(BlockIndex::from_bytes(bad), Err(IndexError::BadMagic { expected: MAGIC, .. })));
    let mut bad = good.clone();
    bad[4] = FORMAT_VERSION + 1;
    assert!(matches!(
        BlockIndex::from_bytes(bad),
        Err(IndexError::UnsupportedVersion { found, supported: FORMAT_VERSION }) if found == FORMAT_VERSION + 1
    ));
    // An offset past the end, with a valid TOC checksum.
    let n = good.len();
    for field in 0..6 {
        let mut bad = good.clone();
        put_u64(&mut bad, n - 64 + 8 * field, n as u64 + 10);
        fix_toc_crc(&mut bad);
        let e = BlockIndex::from_bytes(bad).unwrap_err();
        assert!(matches!(e, IndexError::OutOfBounds { .. } | IndexError::Corrupt { .. }), "field {field}: {e}");
    }
    // A flipped bit inside the postings section is caught when that list is read.
    let mut bad = good.clone();
    let rd = |at: usize| u64::from_le_bytes(good[at..at + 8].try_into().unwrap()) as usize;
    let (start, end) = (rd(n - 64 + 24), rd(n - 64 + 32));
    bad[(start + end) / 2] ^= 0x10;
    let idx = BlockIndex::from_bytes(bad).unwrap();
    let mut errors = 0;
    for name in idx.label_names(&[]).unwrap() {
        for v in idx.label_values(&name, &[]).unwrap() {
            match idx.postings(&name, &v) {
                Ok(_) => {}
                Err(IndexError::Checksum { what: "postings list", .. } | IndexError::OutOfBounds { .. }) => errors += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    assert_eq!(errors, 1);
}

#[test]
fn series_offsets_page_checked_before_use_and_on_every_read_until_it_passes() {
    let good = sample_index();
    let intact = BlockIndex::from_bytes(good.clone()).unwrap();
    for r in [0, 7, 299] {
        let (labels, meta) = intact.series_labels_and_meta(r).unwrap().unwrap();
        assert_eq!(Some(labels), intact.series_labels(r).unwrap());
        assert_eq!(meta, intact.chunk_meta(r).unwrap());
        // Second read goes through the remembered page.
        assert_eq!(meta, r.to_le_bytes());
    }
    assert!(intact.series_labels_and_meta(300).unwrap().is_none());
    // Through a symbol cache: the same answers, first and second time round.
    let mut cache = SymbolCache::new();
    for _ in 0..2 {
        for r in 0..300 {
            assert_eq!(
                intact.series_labels_and_meta_cached(r, &mut cache).unwrap(),
                intact.series_labels_and_meta(r).unwrap()
            );
        }
    }
    assert!(intact.series_labels_and_meta_cached(300, &mut cache).unwrap().is_none());

    let n = good.len();
    let table = u64::from_le_bytes(good[n - 64 + 16..n - 64 + 24].try_into().unwrap()) as usize;
    let mut bad = good.clone();
    bad[table + 8 * 5] ^= 0x01; // a bit of series 5's offset
    let idx = BlockIndex::from_bytes(bad).unwrap();
    for _ in 0..3 {
        for r in [0, 5, 299] {
            assert!(matches!(idx.series_labels(r), Err(IndexError::Checksum { what: "series offsets page", .. })));
            assert!(matches!(idx.chunk_meta(r), Err(IndexError::Checksum { what: "series offsets page", .. })));
            assert!(matches!(
                idx.series_labels_and_meta(r),
                Err(IndexError::Checksum { what: "series offsets page", .. })
            ));
            assert!(matches!(
                idx.series_labels_and_meta_cached(r, &mut SymbolCache::new()),
                Err(IndexError::Checksum { what: "series offsets page", .. })
            ));
        }
    }
}

#[test]
fn file_round_trip_through_mmap() {
    let dir = std::env::temp_dir().join(format!("telemetry-index-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("index");
    std::fs::write(&path, sample_index()).unwrap();
    let idx = BlockIndex::open(&path).unwrap();
    assert_eq!(idx.label_values("job", &[]).unwrap(), ["api", "node"]);
    assert_eq!(idx.chunk_meta(7).unwrap(), 7u32.to_le_bytes());
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(BlockIndex::open(&path), Err(IndexError::TooShort { .. })));
    assert!(matches!(BlockIndex::open(dir.join("missing")), Err(IndexError::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_damage_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        toc_field in 0usize..8,
        toc_value in any::<u64>(),
        fix_crc in any::<bool>(),
    ) {
        let mut b = sample_index();
        for (i, x) in &flips {
            let at = i.index(b.len());
            b[at] ^= x | 1;
        }
        if fix_crc {
            let n = b.len();
            if toc_field < 6 {
                put_u64(&mut b, n - 64 + 8 * toc_field, toc_value % (n as u64 * 2));
            } else {
                let at = n - 64 + 48 + 4 * (toc_field - 6);
                b[at..at + 4].copy_from_slice(&(toc_value as u32 % 1000).to_le_bytes());
            }
            fix_toc_crc(&mut b);
        }
        if truncate {
            let n = cut.index(b.len());
            b.truncate(n);
        }
        if let Ok(idx) = BlockIndex::from_bytes(b) {
            exercise(&idx);
        }
    }
}
