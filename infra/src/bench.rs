//! What the bench binaries (`src/bin/`) share.

/// The `q` quantile (0..=1) of `sorted` by the nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// The numeric command-line arguments, in order (the program's path is never a number).
pub fn numeric_args() -> Vec<usize> {
    std::env::args().filter_map(|a| a.parse().ok()).collect()
}
