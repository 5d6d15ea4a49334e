//! No input can panic a parser: arbitrary bytes, strings (any Unicode, multi-byte characters
//! where a unit is expected) and JSON into every parser the HTTP and WebSocket edges call.
//! A panic here would be a 500 (or API Gateway's generic error frame) in production.

use proptest::prelude::*;
use pulse_core::identity::TenantId;
use pulse_ingest::events::{Context, Limits};
use pulse_metrics::rollup::Retention;
use serde_json::{Value, json};

const NOW: i64 = 1_795_341_600; // 2026-11-22T10:00:00Z

/// Arbitrary JSON, a few levels deep, with any Unicode in keys and strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
        ".*".prop_map(Value::String),
        range_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text shaped like a relative range, often with a multi-byte unit or digits.
fn range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,4}[mhdwé€😀]",
        "[0-9é€]{0,3}",
        Just("1é".to_owned()),
        Just("é".to_owned()),
        Just("1€".to_owned()),
        ".{0,6}",
    ]
}

/// A body shaped like one the field names of `fields`, with arbitrary values.
fn shaped(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(fields).prop_map(str::to_owned),
        prop_oneof![any_json(), range_text().prop_map(Value::String)],
        0..fields.len(),
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// An event-shaped object: a known kind with arbitrary fields, often the kind's own.
fn any_event() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "name",
        "value",
        "id",
        "timestamp",
        "tags",
        "path",
        "items",
        "properties",
        "route",
        "status",
        "latency_ms",
        "revenue",
        "currency",
        "price",
        "quantity",
        "start",
        "end",
    ];
    (
        prop::sample::select(pulse_ingest::events::KINDS),
        prop::collection::btree_map(
            prop_oneof![prop::sample::select(FIELDS).prop_map(str::to_owned), ".*"],
            any_json(),
            0..10,
        ),
    )
        .prop_map(|(kind, mut fields)| {
            fields.insert("kind".into(), json!(kind));
            Value::Object(fields.into_iter().collect())
        })
}

/// `events` as a batch body through the ingest parser.
fn parse_events(
    events: Vec<Value>,
) -> Result<Vec<pulse_ingest::events::Event>, pulse_core::ApiError> {
    let tenant = TenantId::parse("acme").expect("tenant");
    let limits = Limits::default();
    let ctx = Context {
        tenant: &tenant,
        now_ms: NOW * 1000,
        correlation_id: None,
        limits: &limits,
    };
    pulse_ingest::events::parse_batch(json!({ "events": events }).to_string().as_bytes(), &ctx)
}

const QUERY_FIELDS: &[&str] = &[
    "metric_name",
    "time_range",
    "aggregations",
    "group_by",
    "filters",
    "interval",
    "limit",
    "compare_to",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_body_panics_the_batch_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits::default();
        let ctx = Context { tenant: &tenant, now_ms: NOW * 1000, correlation_id: None, limits: &limits };
        let _ = pulse_ingest::events::parse_batch(&bytes, &ctx);
    }

    #[test]
    fn no_json_panics_the_batch_parser(events in prop::collection::vec(prop_oneof![any_event(), any_json()], 0..6)) {
        let _ = parse_events(events);
    }

    #[test]
    fn every_accepted_value_is_storable(events in prop::collection::vec(any_event(), 1..6)) {
        if let Ok(parsed) = parse_events(events) {
            for e in &parsed {
                for s in pulse_metrics::aggregate::samples(e) {
                    prop_assert!(pulse_ingest::events::storable(s.value), "{:?}", s.value);
                }
            }
        }
    }

    #[test]
    fn relative_ranges_never_panic(text in ".*") {
        let _ = pulse_metrics::query::relative(&text);
    }

    #[test]
    fn metric_queries_never_panic(body in prop_oneof![shaped(QUERY_FIELDS), any_json()]) {
        let _ = pulse_metrics::query::parse(&body, NOW, &Retention::default());
        let _ = pulse_metrics::live::parse_query(&body, NOW, &Retention::default());
    }

    #[test]
    fn funnel_queries_never_panic(body in prop_oneof![shaped(&["steps", "window", "time_range"]), any_json()]) {
        let _ = pulse_metrics::funnels::parse(&body, NOW);
    }

    #[test]
    fn websocket_frames_never_panic(text in prop_oneof![".*", any_json().prop_map(|v| v.to_string()),
        shaped(&["action", "id", "query", "metrics", "interval", "resume"]).prop_map(|v| v.to_string())]) {
        let _ = pulse_metrics::live::parse(&text);
    }

    #[test]
    fn definitions_never_panic(body in prop_oneof![shaped(&["name", "unit", "description", "min", "max", "derived", "default_aggregation"]), any_json()], name in proptest::option::of(".*")) {
        let _ = pulse_metrics::definitions::parse(&body, name.as_deref());
    }

    #[test]
    fn beacons_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        shaped(&["site", "kind", "url", "referrer", "title", "name", "props", "id"]).prop_map(|v| v.to_string().into_bytes()),
    ]) {
        if let Ok(beacon) = pulse_ingest::track::parse_beacon(&bytes) {
            let site = pulse_ingest::track::Site {
                id: "s1".into(),
                tenant: TenantId::parse("acme").expect("tenant"),
                domain: "example.com".into(),
                allowed_origins: vec!["https://example.com".into()],
            };
            let client = pulse_ingest::track::Client { ip: "203.0.113.9", user_agent: "Mozilla/5.0", country: Some("é1") };
            let agent = pulse_ingest::track::Agent { browser: "Chrome".into(), os: "Linux".into(), device: "desktop" };
            let _ = pulse_ingest::track::enrich(beacon, &site, &client, &agent, "v".into(), NOW * 1000);
        }
    }

    #[test]
    fn imports_and_otlp_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), text in ".{0,256}") {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits::default();
        let ctx = Context { tenant: &tenant, now_ms: NOW * 1000, correlation_id: None, limits: &limits };
        for format in [pulse_ingest::imports::Format::Ndjson, pulse_ingest::imports::Format::Csv] {
            let _ = pulse_ingest::imports::parse_import(&bytes, format, &ctx);
            let _ = pulse_ingest::imports::parse_import(text.as_bytes(), format, &ctx);
        }
        for encoding in [pulse_ingest::otlp::Encoding::Protobuf, pulse_ingest::otlp::Encoding::Json] {
            if let Ok(request) = pulse_ingest::otlp::decode(&bytes, encoding) {
                let _ = pulse_ingest::otlp::to_events(&request, &ctx);
            }
        }
    }

    #[test]
    fn roles_and_tenants_never_panic(text in ".*") {
        let _ = pulse_core::identity::parse_roles(&text);
        let _ = TenantId::parse(&text);
        let _ = pulse_core::routes::matching("GET", &text);
    }
}

#[test]
fn multi_byte_units_are_refused_not_split() {
    for text in ["1é", "1€", "é", "€", "😀", "1😀d", ""] {
        assert_eq!(pulse_metrics::query::relative(text), None, "{text}");
    }
    for bad in ["1é", "1€", "é"] {
        assert!(
            pulse_metrics::query::parse(
                &json!({"metric_name": "page_view", "time_range": bad}),
                NOW,
                &Retention::default()
            )
            .is_err()
        );
        assert!(pulse_metrics::funnels::parse(&json!({"steps": [{"path": "/"}, {"path": "/b"}], "window": bad, "time_range": bad}), NOW).is_err());
    }
}
