//! Nelder-Mead simplex minimisation (Nelder & Mead 1965, with the standard coefficients
//! reflection 1, expansion 2, contraction 0.5, shrink 0.5; Lagarias et al. 1998 §2).

/// Minimises `f` from `start` with an initial simplex of edge `step` along each axis, stopping
/// after `max_evals` evaluations or when the spread of function values falls below `tol`.
/// Returns the best point and its value. Non-finite values are treated as +∞.
pub fn nelder_mead<const D: usize>(
    mut f: impl FnMut(&[f64; D]) -> f64,
    start: [f64; D],
    step: f64,
    max_evals: usize,
    tol: f64,
) -> ([f64; D], f64) {
    let mut eval = |x: &[f64; D], n: &mut usize| {
        *n += 1;
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut evals = 0usize;
    let mut pts: Vec<([f64; D], f64)> = Vec::with_capacity(D + 1);
    let v0 = eval(&start, &mut evals);
    pts.push((start, v0));
    for i in 0..D {
        let mut p = start;
        p[i] += step;
        let v = eval(&p, &mut evals);
        pts.push((p, v));
    }
    while evals < max_evals {
        pts.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (pts[0].1, pts[D].1);
        if (worst - best).abs() <= tol * (best.abs() + tol) {
            break;
        }
        let mut centroid = [0.0; D];
        for (p, _) in &pts[..D] {
            for i in 0..D {
                centroid[i] += p[i] / D as f64;
            }
        }
        let along = |t: f64| {
            let mut x = [0.0; D];
            for i in 0..D {
                x[i] = centroid[i] + t * (pts[D].0[i] - centroid[i]);
            }
            x
        };
        let xr = along(-1.0);
        let fr = eval(&xr, &mut evals);
        if fr < pts[0].1 {
            let xe = along(-2.0);
            let fe = eval(&xe, &mut evals);
            pts[D] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < pts[D - 1].1 {
            pts[D] = (xr, fr);
        } else {
            let (xc, fc) = if fr < pts[D].1 {
                let xc = along(-0.5);
                (xc, eval(&xc, &mut evals))
            } else {
                let xc = along(0.5);
                (xc, eval(&xc, &mut evals))
            };
            if fc < pts[D].1.min(fr) {
                pts[D] = (xc, fc);
            } else {
                let b = pts[0].0;
                for (p, v) in pts.iter_mut().skip(1) {
                    for i in 0..D {
                        p[i] = b[i] + 0.5 * (p[i] - b[i]);
                    }
                    *v = eval(p, &mut evals);
                }
            }
        }
    }
    pts.sort_by(|a, b| a.1.total_cmp(&b.1));
    (pts[0].0, pts[0].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rosenbrock_minimum() {
        let (x, v) = nelder_mead(
            |p: &[f64; 2]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2),
            [-1.2, 1.0],
            0.5,
            2000,
            1e-14,
        );
        assert!(v < 1e-6, "{v}");
        assert!((x[0] - 1.0).abs() < 1e-2 && (x[1] - 1.0).abs() < 1e-2, "{x:?}");
    }
}
