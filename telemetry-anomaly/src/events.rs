//! Anomaly events: consecutive anomalous points merged within a suppression window.

/// One anomaly event: a run of anomalous points in which no two consecutive anomalous points
/// are further apart than the suppression window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyEvent {
    /// Timestamp of the first anomalous point (the start of the run that met the minimum
    /// duration), ms.
    pub start_ms: i64,
    /// Timestamp of the last anomalous point, ms.
    pub end_ms: i64,
    /// Largest absolute normalized score in the event, in robust sigmas.
    pub peak_score: f64,
    /// Timestamp of the peak, ms.
    pub peak_ms: i64,
    /// Number of anomalous points in the event.
    pub points: u32,
}

/// Merges anomalous points into events (see [`AnomalyEvent`]).
#[derive(Debug, Clone, Default)]
pub struct EventTracker {
    suppression_ms: i64,
    open: Option<AnomalyEvent>,
}

/// What [`EventTracker::observe`] reports for one point.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EventUpdate {
    /// The point opened a new event.
    pub started: bool,
    /// An event that ended before this point and can no longer be extended.
    pub closed: Option<AnomalyEvent>,
}

impl EventTracker {
    /// A tracker with the given suppression window (ms).
    pub fn new(suppression_ms: i64) -> Self {
        EventTracker { suppression_ms, open: None }
    }

    /// The event still open (it may be extended by later points).
    pub fn open_event(&self) -> Option<&AnomalyEvent> {
        self.open.as_ref()
    }

    /// Feeds one point at `ts`. `anomalous` points extend the open event when they are within
    /// the suppression window of its end, and open a new one (starting at `run_start_ms`, the
    /// first point of the qualifying run) otherwise.
    pub fn observe(&mut self, ts: i64, anomalous: bool, run_start_ms: i64, score: f64) -> EventUpdate {
        let mut out = EventUpdate::default();
        if let Some(e) = self.open
            && ts.saturating_sub(e.end_ms) > self.suppression_ms
        {
            out.closed = self.open.take();
        }
        if anomalous {
            let score = score.abs();
            match &mut self.open {
                Some(e) => {
                    e.end_ms = ts;
                    e.points = e.points.saturating_add(1);
                    if score > e.peak_score {
                        e.peak_score = score;
                        e.peak_ms = ts;
                    }
                }
                None => {
                    self.open = Some(AnomalyEvent {
                        start_ms: run_start_ms,
                        end_ms: ts,
                        peak_score: score,
                        peak_ms: ts,
                        points: 1,
                    });
                    out.started = true;
                }
            }
        }
        out
    }

    /// Closes and returns the open event (at the end of a stream).
    pub fn flush(&mut self) -> Option<AnomalyEvent> {
        self.open.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_within_suppression() {
        let mut t = EventTracker::new(300_000);
        assert!(t.observe(0, true, 0, 4.0).started);
        assert!(!t.observe(60_000, false, 0, 0.0).started);
        let u = t.observe(240_000, true, 240_000, 6.0);
        assert!(!u.started && u.closed.is_none());
        let u = t.observe(600_000, true, 600_000, 5.0);
        assert!(u.started);
        let closed = u.closed.unwrap();
        assert_eq!((closed.start_ms, closed.end_ms, closed.peak_ms, closed.points), (0, 240_000, 240_000, 2));
        assert_eq!(closed.peak_score, 6.0);
        assert_eq!(t.flush().unwrap().start_ms, 600_000);
    }
}

/// Passes a score through only when it exceeds every score of the previous `window` rows
/// (a sliding maximum, kept as a monotonic queue: at most `window` entries, O(1) amortised per
/// row); other rows get 0. Applied to a continuous score it alarms once per rise, whatever
/// threshold is later put on it, so one anomaly makes one alarm instead of a run.
#[derive(Debug, Clone)]
pub struct PeakGate {
    window: u64,
    row: u64,
    /// (row, score), scores strictly decreasing from front to back.
    queue: std::collections::VecDeque<(u64, f64)>,
}

impl PeakGate {
    /// A gate over the previous `window` rows (0 passes every score through).
    pub fn new(window: usize) -> Self {
        PeakGate { window: window as u64, row: 0, queue: std::collections::VecDeque::new() }
    }

    /// Feeds the next score and returns it, or 0 when an earlier row in the window scored at
    /// least as high.
    pub fn update(&mut self, score: f64) -> f64 {
        let row = self.row;
        self.row += 1;
        while self.queue.front().is_some_and(|&(r, _)| r + self.window < row) {
            self.queue.pop_front();
        }
        let beaten = self.queue.front().is_some_and(|&(_, s)| s >= score);
        while self.queue.back().is_some_and(|&(_, s)| s <= score) {
            self.queue.pop_back();
        }
        if self.window > 0 {
            self.queue.push_back((row, score));
        }
        if beaten { 0.0 } else { score }
    }

    /// Bytes held now.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.queue.capacity() * std::mem::size_of::<(u64, f64)>()
    }
}

#[cfg(test)]
mod gate_tests {
    use super::PeakGate;

    #[test]
    fn matches_brute_force_sliding_max() {
        let xs: Vec<f64> = (0..500u64).map(|i| ((i * 7919 + 13) % 101) as f64 / 100.0).collect();
        for w in [0usize, 1, 5, 30] {
            let mut g = PeakGate::new(w);
            for (i, &x) in xs.iter().enumerate() {
                let prev = &xs[i.saturating_sub(w)..i];
                let want = if prev.iter().any(|&p| p >= x) { 0.0 } else { x };
                assert_eq!(g.update(x), want, "w={w} i={i}");
            }
        }
    }
}
