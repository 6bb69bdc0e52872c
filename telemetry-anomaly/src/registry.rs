//! Detectors for many series, keyed by fingerprint, within a memory budget.

use std::collections::{BTreeMap, HashMap};

use telemetry_core::Fingerprint;

use crate::config::DetectorConfig;
use crate::detector::Detector;
use crate::error::AnomalyError;
use crate::score::Score;
use crate::{DetectorKind, build_detector};

struct Entry {
    detector: Box<dyn Detector + Send>,
    bytes: usize,
    last_used: u64,
}

/// One detector per series, created on first sample, evicting the least recently updated
/// series when the summed [`Detector::memory_bytes`] exceeds the budget. An evicted series
/// starts warming up again when its next sample arrives.
///
/// Per-entry overhead of the map itself (about 64 bytes) is counted in the budget.
pub struct Registry {
    kind: DetectorKind,
    cfg: DetectorConfig,
    max_bytes: usize,
    map: HashMap<Fingerprint, Entry>,
    lru: BTreeMap<u64, Fingerprint>,
    bytes: usize,
    clock: u64,
    evictions: u64,
}

const ENTRY_OVERHEAD: usize = 64;

impl Registry {
    /// A registry building `kind` detectors with `cfg`, holding at most `max_bytes`.
    ///
    /// # Errors
    /// [`AnomalyError::InvalidConfig`] when `cfg` is invalid.
    pub fn new(kind: DetectorKind, cfg: DetectorConfig, max_bytes: usize) -> Result<Self, AnomalyError> {
        cfg.validate()?;
        Ok(Registry {
            kind,
            cfg,
            max_bytes,
            map: HashMap::new(),
            lru: BTreeMap::new(),
            bytes: 0,
            clock: 0,
            evictions: 0,
        })
    }

    /// Scores one sample of series `fp`.
    ///
    /// # Errors
    /// As [`Detector::update`].
    pub fn update(&mut self, fp: Fingerprint, timestamp_ms: i64, value: f64) -> Result<Score, AnomalyError> {
        self.clock += 1;
        let now = self.clock;
        let entry = match self.map.entry(fp) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let e = o.into_mut();
                self.lru.remove(&e.last_used);
                e
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let detector = build_detector(self.kind, self.cfg.clone())?;
                let bytes = detector.memory_bytes() + ENTRY_OVERHEAD;
                self.bytes += bytes;
                v.insert(Entry { detector, bytes, last_used: now })
            }
        };
        entry.last_used = now;
        self.lru.insert(now, fp);
        let result = entry.detector.update(timestamp_ms, value);
        let bytes = entry.detector.memory_bytes() + ENTRY_OVERHEAD;
        self.bytes = self.bytes + bytes - entry.bytes;
        entry.bytes = bytes;
        self.evict(fp);
        result
    }

    fn evict(&mut self, keep: Fingerprint) {
        while self.bytes > self.max_bytes {
            let Some((&t, &fp)) = self.lru.iter().next() else { break };
            if fp == keep {
                break;
            }
            self.lru.remove(&t);
            if let Some(e) = self.map.remove(&fp) {
                self.bytes -= e.bytes;
                self.evictions += 1;
            }
        }
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes accounted for all held detectors.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// Series evicted so far to stay within the budget.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Removes a series (e.g. when it goes stale), returning whether it was held.
    pub fn remove(&mut self, fp: Fingerprint) -> bool {
        match self.map.remove(&fp) {
            Some(e) => {
                self.lru.remove(&e.last_used);
                self.bytes -= e.bytes;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget() {
        let cfg = DetectorConfig { warmup: 32, history: 64, ..DetectorConfig::default() };
        let mut r = Registry::new(DetectorKind::HoltWinters, cfg, 20_000).unwrap();
        for t in 0..100i64 {
            for s in 0..50u64 {
                r.update(Fingerprint(s), t * 60_000, (t as f64 * 0.3).sin() + s as f64).unwrap();
            }
            assert!(r.memory_bytes() <= 20_000, "{}", r.memory_bytes());
        }
        assert!(r.evictions() > 0);
        assert!(!r.is_empty());
        assert!(r.remove(Fingerprint(49)));
    }
}
