//! Property tests: every index answers exactly what a scan over all series answers.

use std::collections::BTreeSet;

use proptest::prelude::*;
use telemetry_core::{Labels, MatchOp, Matcher, matches_all};
use telemetry_index::{BlockIndex, BlockWriter, IndexReader, MemIndex};

const NAMES: &[&str] = &["__name__", "job", "instance", "mode", "a"];
const VALUES: &[&str] = &["a", "b", "ab", "api-1", "api-2", "api-", "x-prod", "A", "node", "NODE", "é", "a\nb", "up"];
const PATTERNS: &[&str] = &[
    ".*",
    ".+",
    "a|b",
    "api-.*",
    "api-.+",
    ".*-prod",
    ".+-prod",
    ".*a.*",
    "(?i)a",
    "(?i)node",
    "a?",
    "",
    "[ab]+",
    "x|",
    "api-[0-9]",
    ".+b",
    "a.b",
    "(a|b)(b|)",
    "api-(1|2)",
    "[^a]*",
    "up|node|x-prod",
];

fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 1..5).prop_filter_map("empty", |pairs| {
        let l = Labels::from_pairs(
            pairs.into_iter().map(|(n, v)| (NAMES[n], VALUES[v])).collect::<std::collections::BTreeMap<_, _>>(),
        )
        .ok()?;
        (!l.is_empty()).then_some(l)
    })
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let name = prop_oneof![4 => (0..NAMES.len()).prop_map(|i| NAMES[i]), 1 => Just("zz")];
    (name, 0..4u8, 0..VALUES.len() + 1, 0..PATTERNS.len()).prop_map(|(n, op, v, p)| {
        let value = if v == VALUES.len() { "" } else { VALUES[v] };
        match op {
            0 => Matcher::equal(n, value),
            1 => Matcher::not_equal(n, value),
            2 => Matcher::new(MatchOp::RegexMatch, n, PATTERNS[p]).unwrap(),
            _ => Matcher::new(MatchOp::RegexNoMatch, n, PATTERNS[p]).unwrap(),
        }
    })
}

fn brute(series: &[(u32, Labels)], ms: &[Matcher]) -> Vec<u32> {
    if ms.is_empty() {
        return Vec::new();
    }
    series.iter().filter(|(_, l)| matches_all(ms, l)).map(|(r, _)| *r).collect()
}

fn check<R: IndexReader>(idx: &R, series: &[(u32, Labels)], queries: &[Vec<Matcher>]) -> Result<(), TestCaseError> {
    prop_assert_eq!(idx.num_series(), series.len());
    for ms in queries {
        let want = brute(series, ms);
        let got = idx.postings_for_matchers(ms).unwrap().into_vec();
        prop_assert_eq!(&got, &want, "matchers {:?}", ms);
        let sel: Vec<&Labels> = series.iter().filter(|(r, _)| want.contains(r)).map(|(_, l)| l).collect();
        let names: BTreeSet<String> = if ms.is_empty() {
            series.iter().flat_map(|(_, l)| l.iter().map(|l| l.name.to_string())).collect()
        } else {
            sel.iter().flat_map(|l| l.iter().map(|l| l.name.to_string())).collect()
        };
        prop_assert_eq!(idx.label_names(ms).unwrap(), names.into_iter().collect::<Vec<_>>());
        for n in NAMES {
            let vals: BTreeSet<String> = if ms.is_empty() {
                series.iter().filter_map(|(_, l)| l.get(n).map(str::to_string)).collect()
            } else {
                sel.iter().filter_map(|l| l.get(n).map(str::to_string)).collect()
            };
            prop_assert_eq!(
                idx.label_values(n, ms).unwrap(),
                vals.into_iter().collect::<Vec<_>>(),
                "name {} matchers {:?}",
                n,
                ms
            );
        }
    }
    for (r, l) in series {
        prop_assert_eq!(idx.series_labels(*r).unwrap(), Some(l.clone()));
    }
    let mut by_name: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, l) in series {
        if let Some(n) = l.metric_name() {
            *by_name.entry(n.to_string()).or_default() += 1;
        }
    }
    prop_assert_eq!(idx.series_count_by_metric_name().unwrap(), by_name.into_iter().collect::<Vec<_>>());
    let mut pairs: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (_, l) in series {
        for p in l {
            *pairs.entry((p.name.to_string(), p.value.to_string())).or_default() += 1;
        }
    }
    let mut want: Vec<(usize, String, String)> = pairs.into_iter().map(|((n, v), c)| (c, n, v)).collect();
    want.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2)));
    want.truncate(5);
    let got: Vec<(usize, String, String)> =
        idx.top_label_pairs(5).unwrap().into_iter().map(|p| (p.series, p.name, p.value)).collect();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mem_and_block_match_brute_force(
        sets in prop::collection::vec(labels(), 0..40),
        gaps in prop::collection::vec(1u32..4, 40),
        removed in prop::collection::vec(any::<bool>(), 40),
        queries in prop::collection::vec(prop::collection::vec(matcher(), 0..4), 1..12),
    ) {
        // Dense-ish references with gaps, added out of order half of the time.
        let mut series: Vec<(u32, Labels)> = Vec::new();
        let mut r = 0u32;
        for (i, l) in sets.into_iter().enumerate() {
            r += gaps[i];
            series.push((r, l));
        }
        let idx = MemIndex::new();
        for (i, (r, l)) in series.iter().enumerate() {
            if i % 2 == 0 { idx.add(*r, l).unwrap(); }
        }
        for (i, (r, l)) in series.iter().enumerate().rev() {
            if i % 2 == 1 { idx.add(*r, l).unwrap(); }
        }
        if let Some((r0, _)) = series.first() {
            prop_assert!(idx.add(*r0, &Labels::from_pairs([("a", "b")]).unwrap()).is_err());
        }
        check(&idx.reader(), &series, &queries)?;

        // Remove some series; the rest must still be answered exactly.
        let gone: Vec<u32> = series.iter().enumerate().filter(|(i, _)| removed[*i]).map(|(_, s)| s.0).collect();
        prop_assert_eq!(idx.remove(&gone), gone.len());
        series.retain(|(r, _)| !gone.contains(r));
        check(&idx.reader(), &series, &queries)?;

        // The persisted index, with references renumbered densely by the writer.
        let mut w = BlockWriter::new();
        let mut dense = Vec::new();
        for (i, (_, l)) in series.iter().enumerate() {
            let chunk = (i as u32).to_le_bytes();
            prop_assert_eq!(w.add_series(l, &chunk).unwrap(), i as u32);
            dense.push((i as u32, l.clone()));
        }
        let bytes = w.finish().unwrap();
        let block = BlockIndex::from_bytes(bytes).unwrap();
        check(&block, &dense, &queries)?;
        for (r, _) in &dense {
            prop_assert_eq!(block.chunk_meta(*r).unwrap(), &r.to_le_bytes()[..]);
        }
    }
}

/// Lists large and dense enough to carry bitmaps in the in-memory index, with removals.
#[test]
fn dense_lists_match_brute_force() {
    let mut x = 0x2545_f491_u64;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut series: Vec<(u32, Labels)> = Vec::new();
    let idx = MemIndex::new();
    for r in 0..30_000u32 {
        let l = Labels::from_pairs([
            ("__name__", ["up", "node_load1", "node_cpu_seconds_total"][next(3) as usize]),
            ("job", ["node", "api", ""][next(3) as usize]),
            ("instance", &format!("host-{}", next(300))),
            ("mode", ["idle", "user", "", "", ""][next(5) as usize]),
        ])
        .unwrap();
        idx.add(r, &l).unwrap();
        series.push((r, l));
    }
    let queries: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("job", "node"), Matcher::equal("instance", "host-42")],
        vec![Matcher::equal("instance", "host-7"), Matcher::not_equal("job", "api")],
        vec![Matcher::equal("instance", "host-7"), Matcher::equal("job", "")],
        vec![Matcher::regex("instance", "host-1.*").unwrap(), Matcher::equal("mode", "idle")],
        vec![Matcher::equal("__name__", "up"), Matcher::not_regex("job", "node").unwrap()],
        vec![Matcher::not_equal("job", "node"), Matcher::not_equal("mode", "user")],
    ];
    let check = |series: &[(u32, Labels)]| {
        for q in &queries {
            assert_eq!(idx.postings_for_matchers(q).into_vec(), brute(series, q), "{q:?}");
        }
    };
    check(&series);
    // Keeps the lists dense, so the bitmaps stay and must lose the removed bits.
    let gone: Vec<u32> = series.iter().map(|s| s.0).filter(|r| r % 5 == 0).collect();
    assert_eq!(idx.remove(&gone), gone.len());
    series.retain(|(r, _)| r % 5 != 0);
    check(&series);
    // References reused for other series: stale bits would show up here.
    for r in gone.iter().copied().filter(|r| r % 10 == 0) {
        let inst = format!("host-{}", (r / 10) % 300);
        let l = Labels::from_pairs([("__name__", "up"), ("job", "other"), ("instance", inst.as_str())]).unwrap();
        idx.add(r, &l).unwrap();
        series.push((r, l));
    }
    series.sort_by_key(|s| s.0);
    check(&series);
}
