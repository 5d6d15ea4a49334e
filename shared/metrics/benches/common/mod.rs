//! The mixed traffic the aggregation and rollup benchmarks feed: metrics over 20 hosts, page
//! views with visitors, API requests over 5 routes with a 2 % error rate.

use pulse_core::identity::TenantId;
use pulse_ingest::events::{Body, Event};
use std::collections::BTreeMap;

/// Event `i` of the mix at `timestamp_ms`, its visitor one of `visitors`.
pub fn event(tenant: &TenantId, i: i64, timestamp_ms: i64, visitors: i64) -> Event {
    let (name, body, visitor) = match i % 3 {
        0 => (
            "cpu.load",
            Body::Metric {
                value: (i % 97) as f64 / 97.0,
                unit: None,
            },
            None,
        ),
        1 => (
            "page_view",
            Body::PageView {
                path: "/".into(),
                referrer: None,
                title: None,
            },
            Some(format!("v{}", i % visitors)),
        ),
        _ => (
            "api_request",
            Body::ApiRequest {
                route: format!("/r{}", i % 5),
                method: "GET".into(),
                status: if i % 50 == 0 { 500 } else { 200 },
                latency_ms: 5.0 + (i % 200) as f64,
            },
            None,
        ),
    };
    Event {
        id: format!("e{i}"),
        tenant: tenant.clone(),
        timestamp_ms,
        name: name.into(),
        tags: BTreeMap::from([("host".into(), format!("web-{}", i % 20))]),
        visitor,
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body,
    }
}
