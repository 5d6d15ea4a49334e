//! Nelder–Mead minimisation over unbounded parameters (members map them into their ranges):
//! derivative-free, which suits smoothing models whose error surface has kinks.

/// Minimises `f` from `x0` with initial simplex steps `step`; at most `iterations` steps.
pub fn minimize(f: impl Fn(&[f64]) -> f64, x0: &[f64], step: f64, iterations: usize) -> Vec<f64> {
    let d = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(d + 1);
    simplex.push((x0.to_vec(), f(x0)));
    for i in 0..d {
        let mut x = x0.to_vec();
        x[i] += step;
        let v = f(&x);
        simplex.push((x, v));
    }
    for _ in 0..iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best = simplex[0].1;
        let worst = simplex[d].1;
        if (worst - best).abs() <= 1e-10 * (1.0 + best.abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..d)
            .map(|j| simplex[..d].iter().map(|(x, _)| x[j]).sum::<f64>() / d as f64)
            .collect();
        let toward = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[d].0)
                .map(|(c, w)| c + t * (w - c))
                .collect()
        };
        let reflected = toward(-1.0);
        let fr = f(&reflected);
        if fr < best {
            let expanded = toward(-2.0);
            let fe = f(&expanded);
            simplex[d] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[d - 1].1 {
            simplex[d] = (reflected, fr);
        } else {
            let contracted = if fr < worst {
                toward(-0.5)
            } else {
                toward(0.5)
            };
            let fc = f(&contracted);
            if fc < worst.min(fr) {
                simplex[d] = (contracted, fc);
            } else {
                let best_x = simplex[0].0.clone();
                for (x, v) in simplex.iter_mut().skip(1) {
                    for (xi, bi) in x.iter_mut().zip(&best_x) {
                        *xi = bi + 0.5 * (*xi - bi);
                    }
                    *v = f(x);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

/// The logistic function, mapping a parameter onto (0, 1).
pub fn logistic(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_of_a_bowl_is_found() {
        let x = minimize(
            |x| (x[0] - 3.0).powi(2) + 2.0 * (x[1] + 1.0).powi(2),
            &[0.0, 0.0],
            1.0,
            500,
        );
        assert!(
            (x[0] - 3.0).abs() < 1e-4 && (x[1] + 1.0).abs() < 1e-4,
            "{x:?}"
        );
    }
}
