//! Aggregation of stream batches into minute buckets, and the accuracy of the sketches.
//!
//! 1. Throughput on one core: batches of 1,000 events (metrics over 20 series, page views
//!    with visitors, API requests) folded into buckets; measured without and with decoding
//!    each record's stored JSON. Bar (DESIGN.md): ≥ 1,000,000 events/s.
//! 2. DDSketch relative error of p50/p95/p99 against the exact values of 1M samples from a
//!    lognormal and a Pareto distribution. Bar: ≤ 1 %.
//! 3. HyperLogLog relative error at 10k and 1M distinct visitors. Bar: ≤ 2 %.
//!
//! `cargo bench -p pulse-metrics --bench aggregate`

#![allow(clippy::print_stdout)]

mod common;

use pulse_core::identity::TenantId;
use pulse_ingest::events::Event;
use pulse_metrics::aggregate::{Aggregation, Bucket};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn batch() -> Vec<Event> {
    let tenant = TenantId::parse("bench").expect("tenant");
    let base = 1_795_341_600_000i64;
    (0..1000)
        .map(|i: i64| common::event(&tenant, i, base + i * 100, 400))
        .collect()
}

fn throughput(label: &str, mut run: impl FnMut() -> usize) {
    let mut rates = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(500) {
            n += run();
        }
        rates.push(n as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{label}: median {:.0} events/s (min {:.0}, max {:.0}); bar 1000000",
        rates[3], rates[0], rates[6]
    );
}

fn normal(rng: &mut fastrand::Rng) -> f64 {
    // Box-Muller.
    let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn sketch_error(label: &str, mut values: Vec<f64>) {
    let mut bucket = Bucket::default();
    for v in &values {
        bucket.add(*v, None);
    }
    values.sort_by(f64::total_cmp);
    let mut worst: f64 = 0.0;
    let mut parts = Vec::new();
    for q in [0.5, 0.95, 0.99] {
        // The exact q-quantile with the same rank convention as DDSketch (lower rank).
        let exact = values[((q * (values.len() - 1) as f64).floor()) as usize];
        let est = bucket.quantile(q).unwrap_or(f64::NAN);
        let err = (est - exact).abs() / exact.abs();
        worst = worst.max(err);
        parts.push(format!(
            "p{}: exact {exact:.4} sketch {est:.4} error {:.3} %",
            (q * 100.0) as u32,
            err * 100.0
        ));
    }
    println!(
        "{label} (1M samples): {}; worst {:.3} % (bar 1 %)",
        parts.join(", "),
        worst * 100.0
    );
}

#[allow(clippy::print_stdout)]
fn main() {
    let events = batch();
    let stored: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    throughput(
        "aggregation of 1,000-event batches into minute buckets",
        || {
            let mut agg = Aggregation::new();
            for (i, e) in events.iter().enumerate() {
                agg.add(e, i);
            }
            black_box(&agg);
            events.len()
        },
    );
    throughput(
        "same, decoding each stream record's stored JSON first",
        || {
            let mut agg = Aggregation::new();
            for (i, s) in stored.iter().enumerate() {
                let e: Event = serde_json::from_str(s).expect("event");
                agg.add(&e, i);
            }
            black_box(&agg);
            stored.len()
        },
    );

    let mut rng = fastrand::Rng::with_seed(7);
    let lognormal: Vec<f64> = (0..1_000_000)
        .map(|_| (3.0 + 1.0 * normal(&mut rng)).exp())
        .collect();
    sketch_error("DDSketch lognormal(mu 3, sigma 1)", lognormal);
    let pareto: Vec<f64> = (0..1_000_000)
        .map(|_| 1.0 / (1.0 - rng.f64()).powf(1.0 / 1.5))
        .collect();
    sketch_error("DDSketch Pareto(x_m 1, alpha 1.5)", pareto);

    for n in [10_000usize, 1_000_000] {
        let mut bucket = Bucket::default();
        for i in 0..n {
            let visitor = format!("visitor-{i}");
            bucket.add(1.0, Some(&visitor));
            bucket.add(1.0, Some(&visitor)); // every visitor seen twice
        }
        let est = bucket.unique_visitors() as f64;
        println!(
            "HyperLogLog at {n} uniques: estimate {est:.0}, error {:.3} % (bar 2 %)",
            (est - n as f64).abs() / n as f64 * 100.0
        );
    }
}
