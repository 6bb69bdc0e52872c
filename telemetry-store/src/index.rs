//! The head's in-memory inverted index: label pair → sorted postings of series references.
//!
//! Minimal and internal: candidate series are narrowed with the postings of the matchers that
//! cannot match an empty value, and every candidate is then checked against all matchers, so
//! the result is exact whatever the index narrows.

use std::collections::HashMap;
use std::sync::Arc;

use telemetry_core::{Labels, MatchOp, Matcher};

use crate::SeriesRef;

#[derive(Debug, Default)]
pub(crate) struct MemIndex {
    postings: HashMap<Arc<str>, HashMap<Arc<str>, Vec<SeriesRef>>>,
}

fn insert_sorted(v: &mut Vec<SeriesRef>, r: SeriesRef) {
    match v.last() {
        Some(&last) if last >= r => {
            if let Err(i) = v.binary_search(&r) {
                v.insert(i, r);
            }
        }
        _ => v.push(r),
    }
}

fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl MemIndex {
    pub(crate) fn add(&mut self, r: SeriesRef, labels: &Labels) {
        for l in labels {
            let values = self.postings.entry(l.name.clone()).or_default();
            insert_sorted(values.entry(l.value.clone()).or_default(), r);
        }
    }

    pub(crate) fn remove(&mut self, r: SeriesRef, labels: &Labels) {
        for l in labels {
            if let Some(values) = self.postings.get_mut(&*l.name) {
                if let Some(p) = values.get_mut(&*l.value) {
                    if let Ok(i) = p.binary_search(&r) {
                        p.remove(i);
                    }
                    if p.is_empty() {
                        values.remove(&*l.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&*l.name);
                }
            }
        }
    }

    /// Candidate references for `matchers` (a superset of the matching series), or `None` when
    /// no matcher narrows the set (every series is a candidate).
    pub(crate) fn candidates(&self, matchers: &[Matcher]) -> Option<Vec<SeriesRef>> {
        let mut cand: Option<Vec<SeriesRef>> = None;
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let values = self.postings.get(m.name.as_str());
            let ps: Vec<SeriesRef> = match (m.op, values) {
                (_, None) => vec![],
                (MatchOp::Equal, Some(vals)) => vals.get(m.value.as_str()).cloned().unwrap_or_default(),
                (_, Some(vals)) => {
                    let mut u: Vec<SeriesRef> =
                        vals.iter().filter(|(v, _)| m.matches(v)).flat_map(|(_, p)| p.iter().copied()).collect();
                    u.sort_unstable();
                    u.dedup();
                    u
                }
            };
            cand = Some(match cand {
                None => ps,
                Some(c) => intersect(&c, &ps),
            });
            if cand.as_ref().is_some_and(|c| c.is_empty()) {
                break;
            }
        }
        cand
    }

    /// Approximate heap bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.postings
            .iter()
            .map(|(n, vals)| n.len() + 64 + vals.iter().map(|(v, p)| v.len() + 48 + p.capacity() * 8).sum::<usize>())
            .sum()
    }
}
