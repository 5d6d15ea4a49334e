//! Funnels on a small fixed event set, every figure computed by hand.

use super::*;
use pulse_core::identity::TenantId;
use serde_json::json;

/// An hour start (epoch s).
const H: i64 = 1_795_341_600;
const MIN: i64 = 60;

fn page(id: &str, visitor: &str, at: i64, path: &str) -> Event {
    Event {
        id: id.into(),
        tenant: TenantId::parse("t1").expect("tenant"),
        timestamp_ms: at * 1000,
        name: "page_view".into(),
        tags: Default::default(),
        visitor: Some(visitor.into()),
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::PageView {
            path: path.into(),
            referrer: None,
            title: None,
        },
    }
}

fn custom(id: &str, visitor: &str, at: i64, name: &str) -> Event {
    Event {
        name: name.into(),
        body: Body::Event {
            value: None,
            properties: Default::default(),
        },
        ..page(id, visitor, at, "/")
    }
}

/// A: / → /pricing (+10 min) → /signup (+25 min). B: / only. C: /blog (+50 min), /pricing
/// (+65 min, the next hour), the event signup (+70 min). D: /pricing (+1 min) before / (+2 min).
fn trails() -> Vec<Trail> {
    let events = [
        page("a1", "A", H, "/"),
        page("a2", "A", H + 10 * MIN, "/pricing"),
        page("a3", "A", H + 25 * MIN, "/signup"),
        page("a3", "A", H + 25 * MIN, "/signup"),
        page("b1", "B", H + 5 * MIN, "/"),
        page("c1", "C", H + 50 * MIN, "/blog/launch"),
        page("c2", "C", H + 65 * MIN, "/pricing"),
        custom("c3", "C", H + 70 * MIN, "signup"),
        page("d1", "D", H + MIN, "/pricing"),
        page("d2", "D", H + 2 * MIN, "/"),
    ];
    vec![Trail::build(H, &events), Trail::build(H + 3_600, &events)]
}

fn funnel(steps: Value, window: &str) -> Funnel {
    parse(
        &json!({"steps": steps, "window": window, "time_range": {"start": "2026-11-22T08:00:00Z", "end": "2026-11-22T14:00:00Z"}}),
        H + 86_400,
    )
    .expect("valid funnel")
}

fn reached(answer: &Answer) -> Vec<u64> {
    answer.steps.iter().map(|s| s.visitors).collect()
}

#[test]
fn visitors_are_counted_at_each_step_they_reach_in_order() {
    // Given the fixed trails, when / → /pricing → /signup is matched within an hour
    let f = funnel(
        json!([{"path": "/"}, {"path": "/pricing"}, {"path": "/signup"}]),
        "1h",
    );
    let answer = compute(&f, &trails());
    // Then A, B and D enter (D's /pricing came before its /), only A goes on to the end
    assert_eq!(reached(&answer), vec![3, 1, 1]);
    assert_eq!((answer.entered, answer.converted), (3, 1));
    assert_eq!(answer.conversion_rate, Some(1.0 / 3.0));
    assert_eq!(answer.steps[1].drop_off, 2);
    assert_eq!(answer.steps[1].conversion, Some(1.0 / 3.0));
    assert_eq!(answer.steps[2].conversion, Some(1.0));
}

#[test]
fn the_conversion_window_counts_from_the_first_step() {
    // A's /signup is 25 minutes after its /: outside a 20-minute window
    let f = funnel(
        json!([{"path": "/"}, {"path": "/pricing"}, {"path": "/signup"}]),
        "20m",
    );
    assert_eq!(reached(&compute(&f, &trails())), vec![3, 1, 0]);
}

#[test]
fn wildcards_and_events_match_across_hours() {
    // C: /blog/launch at :50, /pricing at 1:05, signup at 1:10
    let f = funnel(
        json!([{"path": "/blog/*"}, {"path": "/pricing"}, {"event": "signup"}]),
        "30m",
    );
    let answer = compute(&f, &trails());
    assert_eq!(reached(&answer), vec![1, 1, 1]);
    assert_eq!(answer.steps[0].step, "/blog/*");
    assert!(wildcard("/a*c*e", "/abcde") && !wildcard("/a*c*e", "/abde"));
}

#[test]
fn a_large_trail_is_stored_in_chunks_that_each_decode() {
    // Given 60,000 visitors with four events each in one hour
    let events: Vec<Event> = (0..240_000)
        .map(|i| {
            page(
                &format!("e{i}"),
                &format!("v{}", i % 60_000),
                H + (i % 3_600) as i64,
                "/x",
            )
        })
        .collect();
    let trail = Trail::build(H, &events);
    // When it is encoded
    let chunks = trail.encode();
    // Then no chunk exceeds an item's room and together they hold every visitor
    assert!(chunks.len() > 1, "{} chunk(s)", chunks.len());
    assert!(chunks.iter().all(|c| c.len() <= 400_000));
    let visitors: usize = chunks
        .iter()
        .map(|c| Trail::decode(c).expect("decodes").visitors.len())
        .sum();
    assert_eq!(visitors, 60_000);
}

#[test]
fn bad_funnels_are_precise_problems() {
    for (body, pointer) in [
        (json!({"steps": [{"path": "/"}]}), "#/steps"),
        (
            json!({"steps": [{"path": "/"}, {"page": "/x"}]}),
            "#/steps/1",
        ),
        (
            json!({"steps": [{"path": "/"}, {"path": "x"}]}),
            "#/steps/1",
        ),
        (
            json!({"steps": [{"path": "/"}, {"event": "e"}], "window": "soon"}),
            "#/window",
        ),
        (
            json!({"steps": [{"path": "/"}, {"event": "e"}], "time_range": "90d"}),
            "#/time_range",
        ),
        (
            json!({"steps": [{"path": "/"}, {"event": "e"}], "colour": 1}),
            "#/colour",
        ),
    ] {
        let err = parse(&body, H).expect_err("refused");
        let problem = err.to_problem();
        let json = serde_json::to_value(&problem).expect("json");
        assert_eq!(json["errors"][0]["pointer"], pointer, "{body}");
    }
}

#[test]
fn a_week_means_the_same_in_a_funnel_as_in_a_query() {
    // Given a funnel over the last week with a one-week window, as a query range says it
    let funnel = |len: &str| {
        serde_json::json!({"steps": [{"path": "/"}, {"event": "signup"}],
            "window": len, "time_range": len})
    };
    // When it is parsed, and the same funnel in days
    let weeks = crate::funnels::parse(&funnel("1w"), 1_000_000_000).expect("a week is a length");
    let days = crate::funnels::parse(&funnel("7d"), 1_000_000_000).expect("seven days");
    // Then both say seven days, as `relative` reads them for queries and views
    assert_eq!(weeks.window, crate::query::relative("1w").expect("a week"));
    assert_eq!(
        (weeks.window, weeks.start, weeks.end),
        (days.window, days.start, days.end)
    );
}

#[test]
fn merging_two_halves_of_an_hour_gives_the_trail_of_the_whole_and_merging_again_changes_nothing() {
    // Given an hour's events split in two parts (one visitor's journey across both)
    let first = vec![
        page("1", "a", H + 60, "/"),
        page("2", "b", H + 120, "/blog"),
    ];
    let second = vec![
        page("3", "a", H + 600, "/pricing"),
        custom("4", "a", H + 900, "signup"),
    ];
    let whole: Vec<Event> = first.iter().chain(&second).cloned().collect();
    // When the second part's trail is merged into the first's, twice
    let mut merged = Trail::build(H, &first);
    merged.merge(&Trail::build(H, &second));
    let once = merged.clone();
    merged.merge(&Trail::build(H, &second));
    // Then a funnel over it answers as over the whole hour, and the second merge changed nothing
    let funnel = parse(
        &json!({"steps": [{"path": "/"}, {"path": "/pricing"}, {"event": "signup"}], "time_range": "1h"}),
        H + 3_600,
    )
    .expect("funnel");
    let counts = |t: &Trail| -> Vec<u64> {
        compute(&funnel, std::slice::from_ref(t))
            .steps
            .iter()
            .map(|s| s.visitors)
            .collect()
    };
    assert_eq!(counts(&merged), counts(&Trail::build(H, &whole)));
    assert_eq!(counts(&merged), vec![1, 1, 1]);
    assert_eq!(merged, once);
}
