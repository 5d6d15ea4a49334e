//! The rollup of one day holding 1,000,000 events, in memory on one core: seal its 1,440
//! minutes from their raw events (694 or 695 each: metrics over 20 series, page views with
//! visitors, API requests over 5 routes), compute each hour's sessions and funnel trail from
//! its events and the 30 minutes either side, then roll 1m → 5m → 1h → 1d per series. Reports
//! the time of each step and the process's peak resident memory (VmHWM). The storage round
//! trips the job adds on AWS are not included.
//!
//! `cargo bench -p pulse-metrics --bench rollup`

#![allow(clippy::print_stdout)]

mod common;

use pulse_core::identity::TenantId;
use pulse_ingest::events::Event;
use pulse_metrics::aggregate::{Bucket, BucketKey, SeriesKey, TOTAL_SERIES};
use pulse_metrics::rollup::{Resolution, roll, seal};
use std::collections::BTreeMap;
use std::time::Instant;

const EVENTS: i64 = 1_000_000;
/// Metrics derived from others: their samples are not events of their own.
const DERIVED: &[&str] = &[
    pulse_metrics::aggregate::WEB_PAGES,
    pulse_metrics::aggregate::ORDER_ITEMS,
    pulse_metrics::aggregate::API_FAILED,
    pulse_metrics::aggregate::ML_COST,
    pulse_metrics::aggregate::ML_FAILED,
];
const DAY: i64 = 1_795_132_800;

/// Event `i` of the day, spread evenly over it.
fn event(tenant: &TenantId, i: i64) -> Event {
    common::event(tenant, i, DAY * 1000 + i * 86_400_000 / EVENTS, 20_000)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let tenant = TenantId::parse("bench").expect("tenant");
    // The job reads one minute's events at a time; so does the benchmark.
    let per_minute = |m: i64| -> Vec<Event> {
        let first = (m * EVENTS + 1439) / 1440;
        let last = ((m + 1) * EVENTS + 1439) / 1440;
        (first..last).map(|i| event(&tenant, i)).collect()
    };
    let mut generate = std::time::Duration::ZERO;
    let started = Instant::now();
    let mut minutes: BTreeMap<(SeriesKey, i64), Bucket> = BTreeMap::new();
    let mut sealed_events = 0u64;
    for m in 0..1440 {
        let t = Instant::now();
        let events = per_minute(m);
        generate += t.elapsed();
        let sealed = seal(DAY + m * 60, &events);
        for (
            BucketKey {
                tenant,
                metric,
                series,
                minute,
            },
            (bucket, _),
        ) in sealed.buckets
        {
            // Each event counts once in its own metric's total (derived metrics aside).
            if series == TOTAL_SERIES && !DERIVED.contains(&metric.as_str()) {
                sealed_events += bucket.count;
            }
            minutes.insert(
                (
                    SeriesKey {
                        tenant,
                        metric,
                        series,
                    },
                    minute * 60,
                ),
                bucket,
            );
        }
    }
    let seal_time = started.elapsed() - generate;
    // Sessions and trails, hour by hour, over a window of the minutes they need.
    let mut session_time = std::time::Duration::ZERO;
    let mut visits = 0u64;
    let mut trail_bytes = 0usize;
    for h in 0..24 {
        let hour = DAY + h * 3_600;
        let t = Instant::now();
        let events: Vec<Event> = (h * 60 - 30..h * 60 + 90)
            .filter(|m| (0..1440).contains(m))
            .flat_map(per_minute)
            .collect();
        generate += t.elapsed();
        let t = Instant::now();
        let sessions = pulse_metrics::sessions::sessionize(hour, &events);
        let trail = pulse_metrics::funnels::Trail::build(hour, &events);
        trail_bytes += trail.encode().iter().map(Vec::len).sum::<usize>();
        session_time += t.elapsed();
        visits += sessions
            .buckets
            .iter()
            .filter(|(k, _)| {
                k.series == TOTAL_SERIES && k.metric == pulse_metrics::sessions::SESSIONS
            })
            .map(|(_, (b, _))| b.count)
            .sum::<u64>();
    }
    let started = Instant::now();
    let mut level = minutes;
    for resolution in [Resolution::FiveMinutes, Resolution::Hour, Resolution::Day] {
        let mut groups: BTreeMap<(SeriesKey, i64), Vec<Bucket>> = BTreeMap::new();
        for ((series, start), bucket) in level {
            groups
                .entry((series, resolution.window_start(start)))
                .or_default()
                .push(bucket);
        }
        level = groups
            .into_iter()
            .filter_map(|(k, buckets)| roll(&buckets).map(|b| (k, b)))
            .collect();
    }
    let roll_time = started.elapsed();
    let total: u64 = level
        .iter()
        .filter(|((k, _), _)| k.series == TOTAL_SERIES && !DERIVED.contains(&k.metric.as_str()))
        .map(|(_, b)| b.count)
        .sum();
    assert_eq!(total, EVENTS as u64);
    assert_eq!(sealed_events, EVENTS as u64);
    println!("| step | time (s) | events/s |");
    println!("| --- | --- | --- |");
    println!(
        "| seal 1,440 minutes ({EVENTS} events; generating them excluded: {:.2} s) | {:.2} | {:.0} |",
        generate.as_secs_f64(),
        seal_time.as_secs_f64(),
        EVENTS as f64 / seal_time.as_secs_f64()
    );
    println!(
        "| sessions and funnel trails of 24 hours ({visits} visits, trails {:.1} MB) | {:.2} | |",
        trail_bytes as f64 / 1e6,
        session_time.as_secs_f64()
    );
    println!(
        "| roll 1m → 5m → 1h → 1d ({} daily series) | {:.3} | |",
        level.len(),
        roll_time.as_secs_f64()
    );
    println!("\npeak RSS: {:.0} MB", peak_rss_mb());
}
