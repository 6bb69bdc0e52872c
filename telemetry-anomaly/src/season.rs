//! Season-length detection by autocorrelation.
//!
//! The window is detrended by a least-squares line, then the sample autocorrelation function
//! (ACF) is computed. A lag is accepted as the season when its autocorrelation is a local
//! maximum, at least [`MIN_ACF`], at least [`MIN_PROMINENCE`] above the lowest
//! autocorrelation at shorter lags (a trend or random walk has a slowly decaying ACF with no
//! trough, so it is not mistaken for a season), and the window holds two full periods. The
//! daily and weekly periods implied by the sampling step win when they qualify (weekly only
//! when its autocorrelation beats the daily one by 0.1); otherwise the
//! first peak within 0.1 of the highest one is taken (the fundamental rather than a multiple).
//! Windows longer than [`EXHAUSTIVE_MAX`] points only test the calendar periods.

/// Minimum autocorrelation for a lag to count as a season.
pub const MIN_ACF: f64 = 0.3;
/// Minimum rise of the ACF peak above the trough before it.
pub const MIN_PROMINENCE: f64 = 0.2;
/// How much higher the weekly autocorrelation must be than the daily one for the weekly
/// period to be chosen.
pub const WEEKLY_MARGIN: f64 = 0.1;
/// Longest window for which every lag is tested (O(n²/2) multiply-adds).
pub const EXHAUSTIVE_MAX: usize = 4096;

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

fn detrend(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = values.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in values.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (v - my);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    values.iter().enumerate().map(|(i, v)| v - my - slope * (i as f64 - mx)).collect()
}

fn acf(x: &[f64], var_sum: f64, lag: usize) -> f64 {
    if lag >= x.len() {
        return 0.0;
    }
    // Normalised per overlapping pair, so that long lags are not shrunk towards zero.
    let s: f64 = x[lag..].iter().zip(x).map(|(a, b)| a * b).sum();
    (s / (x.len() - lag) as f64) / (var_sum / x.len() as f64)
}

/// Detects the dominant season length, in samples, of a regularly sampled window `values`
/// whose sampling step is `step_ms` (0 when unknown). Returns `None` for "no seasonality".
/// Lags longer than `max_period` or half the window are not considered.
///
/// Cost: O(n) per tested lag, so O(n²/2) for windows up to [`EXHAUSTIVE_MAX`] points and
/// O(n) beyond (calendar lags only).
pub fn detect_period(values: &[f64], step_ms: i64, max_period: usize) -> Option<usize> {
    let n = values.len();
    if n < 16 {
        return None;
    }
    let x = detrend(values);
    let var_sum: f64 = x.iter().map(|v| v * v).sum();
    let scale: f64 = values.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
    if var_sum <= (1e-12 * (1.0 + scale)).powi(2) * n as f64 {
        return None;
    }
    let limit = max_period.min(n / 2);
    if limit < 3 {
        return None;
    }
    let calendar: Vec<usize> = if step_ms > 0 {
        [DAY_MS, WEEK_MS]
            .iter()
            .map(|p| ((*p as f64) / (step_ms as f64)).round() as usize)
            .filter(|&lag| lag >= 3 && lag < limit)
            .collect()
    } else {
        Vec::new()
    };
    if n <= EXHAUSTIVE_MAX {
        let r: Vec<f64> = (0..=limit).map(|lag| if lag == 0 { 1.0 } else { acf(&x, var_sum, lag) }).collect();
        let mut peaks = Vec::new();
        let mut trough = f64::INFINITY;
        for lag in 2..limit {
            trough = trough.min(r[lag - 1]);
            let c = r[lag];
            if c >= MIN_ACF && c >= r[lag - 1] && c >= r[lag + 1] && c - trough >= MIN_PROMINENCE {
                peaks.push((lag, c));
            }
        }
        let near = |lag: usize, target: usize| lag.abs_diff(target) <= (target / 50).max(1);
        // Best peak near each calendar period; the longer period (weekly) wins only when its
        // autocorrelation is clearly higher, since a daily season also peaks at a week.
        let mut cal: Option<(usize, f64)> = None;
        for &t in &calendar {
            let here = peaks.iter().filter(|(lag, _)| near(*lag, t)).map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            if here.is_finite() && cal.is_none_or(|(_, c)| here > c + WEEKLY_MARGIN) {
                cal = Some((t, here));
            }
        }
        if let Some((t, _)) = cal {
            return Some(t);
        }
        let best = peaks.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        return peaks.into_iter().find(|p| p.1 >= best - 0.1).map(|p| p.0);
    }
    let mut best: Option<(usize, f64)> = None;
    for target in calendar {
        let spread = (target / 50).max(1);
        let trough = acf(&x, var_sum, target / 2);
        for lag in target.saturating_sub(spread).max(2)..=(target + spread).min(limit - 1) {
            let c = acf(&x, var_sum, lag);
            if c >= MIN_ACF
                && c - trough >= MIN_PROMINENCE
                && c >= acf(&x, var_sum, lag - 1)
                && c >= acf(&x, var_sum, lag + 1)
                && best.is_none_or(|(t, b)| if t < target { c > b + WEEKLY_MARGIN } else { c > b })
            {
                best = Some((target, c));
            }
        }
    }
    best.map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-random noise in [-0.5, 0.5) (splitmix64 of the index).
        let mut x = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        ((x >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    fn seasonal(n: usize, period: f64, amp: f64) -> Vec<f64> {
        (0..n).map(|i| 10.0 + amp * (2.0 * std::f64::consts::PI * i as f64 / period).sin() + noise(i)).collect()
    }

    #[test]
    fn daily_at_five_minutes() {
        assert_eq!(detect_period(&seasonal(288 * 4, 288.0, 5.0), 300_000, 2016), Some(288));
    }

    #[test]
    fn daily_at_one_minute() {
        assert_eq!(detect_period(&seasonal(1440 * 3, 1440.0, 5.0), 60_000, 2016), Some(1440));
    }

    #[test]
    fn weekly_at_one_hour() {
        // A weekly pattern: weekdays high, weekends low, plus a daily shape.
        let v: Vec<f64> = (0..168 * 4)
            .map(|i| {
                let day = (i / 24) % 7;
                let base = if day >= 5 { 2.0 } else { 10.0 };
                base + 3.0 * (2.0 * std::f64::consts::PI * (i % 24) as f64 / 24.0).sin() * (base / 10.0) + noise(i)
            })
            .collect();
        let p = detect_period(&v, 3_600_000, 2016);
        assert!(p == Some(168) || p == Some(24), "got {p:?}");
    }

    #[test]
    fn unknown_step_exhaustive() {
        assert_eq!(detect_period(&seasonal(500, 50.0, 5.0), 0, 2016), Some(50));
    }

    #[test]
    fn noise_has_no_season() {
        let v: Vec<f64> = (0..2000).map(noise).collect();
        assert_eq!(detect_period(&v, 300_000, 2016), None);
        assert_eq!(detect_period(&[5.0; 100], 300_000, 2016), None);
    }
}
