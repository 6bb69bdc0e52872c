//! One writer adding and removing series while readers query: readers only ever see whole
//! series, and every answer is consistent with the labels of the series it returns.

use std::sync::atomic::{AtomicBool, Ordering};

use telemetry_core::{Labels, Matcher, matches_all};
use telemetry_index::MemIndex;

fn labels(i: u32) -> Labels {
    Labels::from_pairs([
        ("__name__", if i.is_multiple_of(2) { "up" } else { "scrape_duration_seconds" }),
        ("instance", &format!("host-{}", i % 50)),
        ("job", if i.is_multiple_of(3) { "node" } else { "api" }),
    ])
    .unwrap()
}

#[test]
fn readers_see_whole_series_while_a_writer_adds() {
    let idx = MemIndex::new();
    let done = AtomicBool::new(false);
    let queries = [
        vec![Matcher::equal("__name__", "up"), Matcher::equal("job", "node")],
        vec![Matcher::regex("instance", "host-1.*").unwrap(), Matcher::not_equal("job", "api")],
        vec![Matcher::not_regex("job", "node").unwrap()],
    ];
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20_000u32 {
                idx.add(i, &labels(i)).unwrap();
                if i % 1000 == 999 {
                    let gone: Vec<u32> = (i - 999..=i).filter(|r| r % 7 == 0).collect();
                    idx.remove(&gone);
                }
            }
            done.store(true, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut rounds = 0;
                while !done.load(Ordering::Acquire) || rounds < 10 {
                    for q in &queries {
                        let r = idx.reader();
                        let sel = telemetry_index::IndexReader::postings_for_matchers(&r, q).unwrap();
                        for id in sel.iter() {
                            let l = telemetry_index::IndexReader::series_labels(&r, id).unwrap().unwrap();
                            assert_eq!(l, labels(id));
                            assert!(matches_all(q, &l));
                        }
                    }
                    rounds += 1;
                }
            });
        }
    });
    let expected = (0..20_000u32).filter(|r| r % 7 != 0).count();
    assert_eq!(idx.num_series(), expected);
    let all = idx.postings_for_matchers(&[Matcher::regex("__name__", ".+").unwrap()]);
    assert_eq!(all.len(), expected);
}
