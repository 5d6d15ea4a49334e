//! Inference in-process, as api-insights and job-detect call it (weights already loaded):
//!
//! 1. A 7-day forecast from 365 days of history (the whole pipeline: cleaning, the four
//!    members, 365 conformal calibration origins). Bar (issue #17): ≤ 5 ms per series.
//! 2. Detection per point, over 1,000,000 points of noise with level shifts and spikes, state
//!    kept in memory, days of 1,440 points followed (as job-detect's minutes). Bar: ≤ 50 µs a
//!    point.
//! 3. A detector's state stored and restored (postcard bytes) each time: what job-detect does
//!    once per metric and run.
//!
//! `cargo bench -p pulse-models --bench inference`

#![allow(clippy::print_stdout)]

use pulse_models::detect::Detector;
use pulse_models::forecast::forecast;
use std::hint::black_box;
use std::time::Instant;

/// A year of daily counts: a weekly pattern, a slow trend and noise (seeded).
fn year() -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..365)
        .map(|d| {
            let weekly = [1.0, 1.1, 1.15, 1.1, 1.0, 0.6, 0.5][d % 7];
            (200.0 + 0.2 * d as f64) * weekly + 15.0 * (rng.f64() - 0.5)
        })
        .collect()
}

/// Median and 95th percentile of `runs` timings of `f`, in ms.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[runs / 2], ms[runs * 95 / 100])
}

fn main() {
    let history = year();
    // The first call loads the network's weights, as the cold start does.
    let loaded = Instant::now();
    let first = forecast(&history, 7, 7).map(|f| f.model);
    println!(
        "first forecast (weights loaded): {:.1} ms, model {}",
        loaded.elapsed().as_secs_f64() * 1e3,
        first.unwrap_or_else(|e| format!("error: {e}"))
    );
    let (p50, p95) = time(200, || {
        black_box(forecast(black_box(&history), 7, 7).ok());
    });
    println!("forecast of 7 days from 365: p50 {p50:.2} ms, p95 {p95:.2} ms (bar ≤ 5 ms)");

    let mut rng = fastrand::Rng::with_seed(11);
    let points: Vec<f64> = (0..1_000_000)
        .map(|i| {
            let level = if (i / 50_000) % 2 == 0 { 10.0 } else { 14.0 };
            let spike = if rng.u32(0..2_000) == 0 { 30.0 } else { 0.0 };
            level + rng.f64() + spike
        })
        .collect();
    let mut detector = Detector::with_days(1_440);
    let started = Instant::now();
    let mut alarms = 0usize;
    for &x in &points {
        if detector.score(black_box(x)).score >= pulse_models::detect::ALARM {
            alarms += 1;
        }
    }
    let per_point = started.elapsed().as_secs_f64() * 1e6 / points.len() as f64;
    println!(
        "detection: {per_point:.3} µs a point over {} points ({alarms} alarms; bar ≤ 50 µs)",
        points.len()
    );

    let state = detector.to_bytes();
    let (p50, p95) = time(1_000, || {
        let restored = Detector::from_bytes(black_box(&state));
        black_box(restored.map(|d| d.to_bytes()));
    });
    println!(
        "state of {} bytes restored and stored again: p50 {:.1} µs, p95 {:.1} µs",
        state.len(),
        p50 * 1e3,
        p95 * 1e3
    );
}
