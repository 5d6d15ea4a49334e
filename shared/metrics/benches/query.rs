//! Query compute: 30 days at 1-hour resolution over 50 series (720 buckets each, every bucket
//! with a DDSketch, frozen with its percentiles as the store writes it), grouped by a tag into
//! 50 groups, with count, avg and p95 — the in-memory part of `POST /api/v1/metrics/query`
//! after the buckets are read. Bar (issue #4): ≤ 10 ms.
//!
//! `cargo bench -p pulse-metrics --bench query`

#![allow(clippy::print_stdout)]

use pulse_metrics::aggregate::Bucket;
use pulse_metrics::query::{SeriesData, compute, parse};
use pulse_metrics::rollup::Retention;
use serde_json::json;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const NOW: i64 = 1_795_341_600;

fn main() {
    let start = NOW - 30 * 86_400;
    let series: Vec<SeriesData> = (0..50)
        .map(|s| {
            let tags = BTreeMap::from([
                ("route".to_owned(), format!("/r{s}")),
                ("status".to_owned(), "200".to_owned()),
            ]);
            let buckets = (0..720)
                .map(|h| {
                    let mut b = Bucket::default();
                    for i in 0..20 {
                        b.add(5.0 + f64::from((h * 7 + i * 13 + s) % 400), None);
                    }
                    // As the store returns it: frozen when written.
                    b.freeze();
                    (start - start.rem_euclid(3_600) + i64::from(h) * 3_600, b)
                })
                .collect();
            (tags, buckets)
        })
        .collect();
    let q = parse(
        &json!({"metric_name": "api_request", "time_range": "30d", "interval": "1h",
                "aggregations": ["count", "avg", "p95"], "group_by": "route", "limit": 50}),
        NOW,
        &Retention::default(),
    )
    .expect("query");
    let mut times = Vec::new();
    let mut json_times = Vec::new();
    let mut points = 0;
    let mut bytes = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let answer = compute(black_box(&q), black_box(&series));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        points = answer.points.len();
        let t = Instant::now();
        let body = serde_json::to_vec(&answer).expect("json");
        json_times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    json_times.sort_by(f64::total_cmp);
    println!("| step | series | buckets | points | p50 (ms) | min | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| compute | 50 | 36,000 | {points} | {:.2} | {:.2} | {:.2} |",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    println!(
        "| serialise ({bytes} bytes) | | | | {:.2} | {:.2} | {:.2} |",
        json_times[json_times.len() / 2],
        json_times[0],
        json_times[json_times.len() - 1]
    );
}
