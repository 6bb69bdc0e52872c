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
        if let Some(e) = self.open {
            if ts.saturating_sub(e.end_ms) > self.suppression_ms {
                out.closed = self.open.take();
            }
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
