//! Sessions on a small fixed event set, every figure computed by hand.

use super::*;
use crate::aggregate::{Bucket, TOTAL_SERIES};
use pulse_core::identity::TenantId;
use pulse_ingest::events::{Body, Event};

/// An hour start (epoch s).
const H: i64 = 1_795_341_600;
const MIN: i64 = 60;

fn view(id: &str, visitor: &str, at_secs: i64, source: &str) -> Event {
    Event {
        id: id.into(),
        tenant: TenantId::parse("t1").expect("tenant"),
        timestamp_ms: at_secs * 1000,
        name: "page_view".into(),
        tags: BTreeMap::from([
            ("source".to_owned(), source.to_owned()),
            ("device".to_owned(), "desktop".to_owned()),
        ]),
        visitor: Some(visitor.into()),
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::PageView {
            path: "/".into(),
            referrer: None,
            title: None,
        },
    }
}

/// A: a 25-minute visit in three views (one delivered twice). B: one view (a bounce).
/// C: a visit from Twitter begun 20 minutes before the hour, then after a 45-minute gap a
/// second visit that goes on into the next hour. D: one view at :59, the next 30.5 minutes
/// later (two bounces). E: an API request without a visitor.
fn fixture() -> Vec<Event> {
    let mut api = view("e1", "-", H + 7 * MIN, "Direct");
    api.visitor = None;
    vec![
        view("a1", "A", H, "Google"),
        view("a2", "A", H + 10 * MIN, "Direct"),
        view("a2", "A", H + 10 * MIN, "Direct"),
        view("a3", "A", H + 25 * MIN, "Direct"),
        view("b1", "B", H + 5 * MIN, "Direct"),
        view("c1", "C", H - 20 * MIN, "Twitter"),
        view("c2", "C", H + 5 * MIN, "Direct"),
        view("c3", "C", H + 50 * MIN, "Direct"),
        view("c4", "C", H + 65 * MIN, "Direct"),
        view("d1", "D", H + 59 * MIN, "Bing"),
        view("d2", "D", H + 89 * MIN + 30, "Bing"),
        api,
    ]
}

fn total(agg: &Aggregation<()>, metric: &str) -> Bucket {
    agg.buckets
        .iter()
        .find(|(k, _)| k.metric == metric && k.series == TOTAL_SERIES)
        .map(|(_, (b, _))| b.clone())
        .unwrap_or_default()
}

fn by_source(agg: &Aggregation<()>, metric: &str, source: &str) -> Bucket {
    let mut out = Bucket::default();
    for (k, (b, _)) in &agg.buckets {
        let tags = agg
            .series
            .iter()
            .find(|(s, _)| s.series == k.series && s.metric == k.metric && k.metric == metric);
        if tags.is_some_and(|(_, t)| t.get("source").map(String::as_str) == Some(source)) {
            out.merge(b);
        }
    }
    out
}

#[test]
fn visits_bounces_and_durations_match_the_hand_computed_figures() {
    // Given the fixed events
    let events = fixture();
    // When the hour is sessionized
    let agg = sessionize(H, &events);
    // Then four visits start in it (A, B, C's second, D), two of them bounces
    let visits = total(&agg, SESSIONS);
    assert_eq!((visits.count, visits.sum), (4, 2.0));
    assert_eq!(visits.sum / visits.count as f64, 0.5, "bounce rate");
    // And the hour holds 600 + 900 s of A's visit and 1,500 s of C's first
    let seconds = total(&agg, SESSION_SECONDS);
    assert_eq!((seconds.count, seconds.sum), (3, 3000.0));
    assert_eq!(
        seconds.sum / visits.count as f64,
        750.0,
        "average visit duration"
    );
    // And each keeps its entry source: A's whole visit is Google's though its later views say Direct
    assert_eq!(by_source(&agg, SESSIONS, "Google").count, 1);
    assert_eq!(by_source(&agg, SESSION_SECONDS, "Google").sum, 1500.0);
    assert_eq!(by_source(&agg, SESSION_SECONDS, "Twitter").sum, 1500.0);
    let direct = by_source(&agg, SESSIONS, "Direct");
    assert_eq!(
        (direct.count, direct.sum),
        (2, 1.0),
        "B bounced, C's second did not"
    );
    let bing = by_source(&agg, SESSIONS, "Bing");
    assert_eq!(
        (bing.count, bing.sum),
        (1, 1.0),
        "D's next view is 30.5 minutes later"
    );
    // And the buckets sit at the hour's start
    assert!(agg.buckets.keys().all(|k| k.minute * 60 == H));
}

#[test]
fn the_next_hour_continues_visits_that_cross_into_it() {
    // Given the same events, when the next hour is sessionized
    let agg = sessionize(H + 3600, &fixture());
    // Then C's view at :05 continues its visit (900 s, still Direct from its entry at :50)
    let seconds = total(&agg, SESSION_SECONDS);
    assert_eq!((seconds.count, seconds.sum), (1, 900.0));
    assert_eq!(by_source(&agg, SESSION_SECONDS, "Direct").sum, 900.0);
    // And D's view at 1:29:30 starts a new visit, a bounce
    let visits = total(&agg, SESSIONS);
    assert_eq!((visits.count, visits.sum), (1, 1.0));
}

#[test]
fn an_event_changes_the_sessions_of_the_hours_within_thirty_minutes_of_it() {
    assert_eq!(hours_touched(H + 10 * MIN), BTreeSet::from([H - 3600, H]));
    assert_eq!(hours_touched(H + 40 * MIN), BTreeSet::from([H, H + 3600]));
    assert_eq!(hours_touched(H + 30 * MIN), BTreeSet::from([H, H + 3600]));
    assert_eq!(hours_touched(H + 29 * MIN), BTreeSet::from([H - 3600, H]));
    for m in (0..120).map(|i| H - 3600 + i * MIN) {
        for h in hours_touched(m) {
            let n = needed(h);
            assert!(n.start < m + 60 && m < n.end);
        }
    }
}

#[test]
fn sessionizing_twice_gives_the_same_figures() {
    let (a, b) = (sessionize(H, &fixture()), sessionize(H, &fixture()));
    assert_eq!(total(&a, SESSIONS), total(&b, SESSIONS));
    assert_eq!(total(&a, SESSION_SECONDS), total(&b, SESSION_SECONDS));
}

#[test]
fn a_backend_event_with_a_visitor_opens_no_visit_and_keeps_none_going() {
    // Given X, who only has an order a backend reported, and Y, one page view followed by a
    // server-side product view 5 minutes later
    let mut order = view("x1", "X", H + 3 * MIN, "Direct");
    order.name = "order".into();
    order.body = Body::Order {
        order_id: "o1".into(),
        revenue: 30.0,
        currency: "EUR".into(),
        items: Vec::new(),
    };
    let mut product = view("y2", "Y", H + 9 * MIN, "Direct");
    product.name = "product_view".into();
    product.body = Body::ProductView {
        product: "shoe".into(),
        collection: None,
        price: Some(30.0),
    };
    let events = vec![order, view("y1", "Y", H + 4 * MIN, "Google"), product];
    // When the hour is sessionized
    let agg = sessionize(H, &events);
    // Then there is one visit, Y's, a bounce of no duration
    let visits = total(&agg, SESSIONS);
    assert_eq!((visits.count, visits.sum), (1, 1.0));
    assert_eq!(total(&agg, SESSION_SECONDS).count, 0);
}

/// The fixture as the rollup job keeps it: one record per minute, encoded and decoded.
fn as_minutes(events: &[Event]) -> Vec<VisitMinute> {
    let minutes: BTreeSet<i64> = events
        .iter()
        .map(|e| e.timestamp_ms.div_euclid(60_000) * 60)
        .collect();
    minutes
        .into_iter()
        .flat_map(|m| VisitMinute::of(m, events).encode())
        .map(|bytes| VisitMinute::decode(&bytes).expect("decodes"))
        .collect()
}

#[test]
fn sessions_from_the_kept_minutes_equal_those_from_the_raw_events() {
    // Given the fixed events kept as visit minutes (the duplicate delivery of a2 included)
    let tenant = TenantId::parse("t1").expect("tenant");
    let minutes = as_minutes(&fixture());
    // When both hours are sessionized from them
    for hour in [H, H + 3600] {
        let kept = sessionize_minutes(&tenant, hour, &minutes);
        let raw = sessionize(hour, &fixture());
        // Then every bucket is the one the raw events give
        for metric in [SESSIONS, SESSION_SECONDS] {
            let (a, b) = (total(&kept, metric), total(&raw, metric));
            assert_eq!((a.count, a.sum), (b.count, b.sum), "{metric} at {hour}");
            assert_eq!(a.unique_visitors(), b.unique_visitors());
        }
        for source in ["Google", "Direct", "Twitter", "Bing"] {
            let (a, b) = (
                by_source(&kept, SESSIONS, source),
                by_source(&raw, SESSIONS, source),
            );
            assert_eq!((a.count, a.sum), (b.count, b.sum), "{source} at {hour}");
        }
    }
}

#[test]
fn an_open_hour_counts_the_visits_begun_so_far_with_one_event_visits_as_bounces() {
    // Given only the minutes sealed by H + 26 min (A's third view and everything later not yet)
    let tenant = TenantId::parse("t1").expect("tenant");
    let early: Vec<Event> = fixture()
        .into_iter()
        .filter(|e| e.timestamp_ms < (H + 25 * MIN) * 1000)
        .collect();
    // When the open hour is sessionized from them
    let agg = sessionize_minutes(&tenant, H, &as_minutes(&early));
    // Then A and B have begun visits (B's a bounce so far; A has a second view) and C's view at
    // :05 continues its visit from before the hour
    let visits = total(&agg, SESSIONS);
    assert_eq!((visits.count, visits.sum), (2, 1.0));
    assert_eq!(total(&agg, SESSION_SECONDS).sum, 600.0 + 1500.0);
}

#[test]
fn a_crowded_minute_is_kept_in_chunks_that_decode_alone() {
    // Given 20,000 views in one minute from as many visitors
    let events: Vec<Event> = (0..20_000)
        .map(|i| {
            view(
                &format!("id-{i}"),
                &format!("visitor-{i:08}"),
                H + i % 60,
                "Direct",
            )
        })
        .collect();
    // When the minute is encoded
    let chunks = VisitMinute::of(H, &events).encode();
    // Then it takes several chunks under DynamoDB's item limit, and together they hold every view
    assert!(chunks.len() > 1);
    assert!(chunks.iter().all(|c| c.len() < 400_000));
    let visits: usize = chunks
        .iter()
        .map(|c| VisitMinute::decode(c).expect("decodes").visits.len())
        .sum();
    assert_eq!(visits, 20_000);
}

#[test]
fn a_run_rewrites_only_the_series_its_new_minutes_changed() {
    // Given the fixture's minutes, of which only B's view at :05 is new
    let tenant = TenantId::parse("t1").expect("tenant");
    let minutes = as_minutes(&fixture());
    let fresh = BTreeSet::from([H + 5 * MIN]);
    // When the hour's changed buckets are computed
    let all = sessionize_minutes(&tenant, H, &minutes);
    let changed = sessionize_changed(&tenant, H, &minutes, &fresh, &all);
    // Then they are the total and the series of the visits seen at :05 (B's, and C's second
    // view, whose visit entered from Twitter), each equal to the whole hour's bucket
    let sources: BTreeSet<String> = changed
        .series
        .values()
        .filter_map(|t| t.get("source").cloned())
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from(["Direct".to_owned(), "Twitter".to_owned()])
    );
    assert!(changed.buckets.len() < all.buckets.len());
    for (k, (b, _)) in &changed.buckets {
        let whole = &all.buckets[k].0;
        assert_eq!((b.count, b.sum), (whole.count, whole.sum));
    }
    assert_eq!(total(&changed, SESSIONS).count, 4);
}
