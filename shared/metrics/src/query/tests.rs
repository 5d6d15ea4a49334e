use super::*;
use serde_json::json;

/// 2026-11-22T10:00:00Z.
const NOW: i64 = 1_795_341_600;

fn pointers(err: ApiError) -> Vec<String> {
    err.to_problem()
        .errors
        .iter()
        .map(|e| e.pointer.clone())
        .collect()
}

#[test]
fn the_seed_contract_parses_with_its_defaults() {
    let q = parse(
        &json!({"metric_name": "api_request", "time_range": {"start": "2026-11-21T10:00:00Z", "end": "2026-11-22T10:00:00Z"}, "aggregation": "p95"}),
        NOW,
        &Retention::default(),
    )
    .expect("valid");
    assert_eq!(q.aggregations, [Aggregation::P95]);
    assert_eq!(
        q.resolution,
        Resolution::Minute,
        "24 h fit in 1,440 minutes"
    );
    assert_eq!(q.limit, DEFAULT_GROUPS);
}

#[test]
fn auto_picks_the_finest_resolution_within_1500_points_and_retention() {
    let r = Retention::default();
    let pick = |range: &str| {
        parse(&json!({"metric_name": "m", "time_range": range}), NOW, &r)
            .expect("valid")
            .resolution
    };
    assert_eq!(pick("1h"), Resolution::Minute);
    assert_eq!(pick("24h"), Resolution::Minute);
    assert_eq!(
        pick("1490m"),
        Resolution::FiveMinutes,
        "over a day: from rollups"
    );
    assert_eq!(pick("2d"), Resolution::FiveMinutes);
    assert_eq!(pick("7d"), Resolution::Hour, "5m would be 2,016 points");
    assert_eq!(pick("30d"), Resolution::Hour);
    assert_eq!(pick("90d"), Resolution::Day);
}

#[test]
fn bad_queries_are_listed_by_pointer() {
    let r = Retention::default();
    let cases = [
        (
            json!({"metric_name": "m", "time_range": {"start": "2026-11-22T10:00:00Z", "end": "2026-11-21T10:00:00Z"}}),
            "#/time_range/end",
        ),
        (
            json!({"metric_name": "m", "time_range": {"start": "2019-01-01T00:00:00Z"}}),
            "#/time_range/start",
        ),
        (
            json!({"metric_name": "m", "time_range": "30d", "interval": "1m"}),
            "#/interval",
        ),
        (
            json!({"metric_name": "m", "time_range": "24h", "limit": 500}),
            "#/limit",
        ),
        (
            json!({"metric_name": "m", "time_range": "24h", "aggregation": "median"}),
            "#/aggregation",
        ),
        (
            json!({"metric_name": "m", "time_range": "24h", "aggregations": ["sum", "p42"]}),
            "#/aggregations/1",
        ),
        (
            json!({"metric_name": "m", "time_range": "24h", "filters": {"route": {"like": "/x"}}}),
            "#/filters/route",
        ),
        (
            json!({"metric_name": "m", "time_range": "yesterday"}),
            "#/time_range",
        ),
        (json!({"time_range": "24h"}), "#/metric_name"),
        (
            json!({"metric_name": "m", "time_range": "24h", "colour": "red"}),
            "#/colour",
        ),
    ];
    for (body, pointer) in cases {
        let err = parse(&body, NOW, &r).expect_err("invalid");
        assert_eq!(err.status(), 400);
        assert!(
            pointers(err).contains(&pointer.to_owned()),
            "{body} → {pointer}"
        );
    }
}

fn bucket(values: &[f64]) -> Bucket {
    let mut b = Bucket::default();
    for v in values {
        b.add(*v, None);
    }
    b
}

/// A tag set from pairs (also the insights tests').
pub(crate) fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn groups_filters_and_top_k_over_series() {
    // Given three series of a latency metric over two hours
    let h = NOW - 7_200;
    let series = vec![
        (
            tags(&[("route", "/cart"), ("status", "200")]),
            vec![(h, bucket(&[10.0, 20.0])), (h + 3_600, bucket(&[30.0]))],
        ),
        (
            tags(&[("route", "/cart"), ("status", "500")]),
            vec![(h, bucket(&[900.0]))],
        ),
        (
            tags(&[("route", "/pay"), ("status", "200")]),
            vec![(h, bucket(&[5.0]))],
        ),
    ];
    // When grouped by route, without errors, top 1
    let q = parse(
        &json!({"metric_name": "api_request", "time_range": "2h", "interval": "1h",
                "aggregations": ["count", "avg", "max"], "group_by": "route",
                "filters": {"status": {"neq": "500"}}, "limit": 1}),
        NOW,
        &Retention::default(),
    )
    .expect("valid");
    let answer = compute(&q, &series);
    // Then /cart (3 requests) wins over /pay (1), and the 500 is filtered out
    assert_eq!(answer.groups, 2);
    assert_eq!(answer.points.len(), 2, "two hourly points of one group");
    assert_eq!(answer.tags, [tags(&[("route", "/cart")])]);
    assert_eq!(
        answer.values_of(0, Aggregation::Count),
        [Some(2.0), Some(1.0)]
    );
    assert_eq!(
        answer.values_of(0, Aggregation::Avg),
        [Some(15.0), Some(30.0)]
    );
    // And it serialises in the seed contract's shape
    let v = serde_json::to_value(&answer).expect("json");
    assert_eq!(v["resolution"], "1h");
    assert_eq!(v["data"][0]["value"], 2.0);
    assert_eq!(v["data"][0]["values"]["max"], 20.0);
    assert_eq!(v["data"][0]["tags"], json!({"route": "/cart"}));
    assert!(
        v["data"][0]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[test]
fn series_of_one_group_merge_into_one_point() {
    let h = NOW - 3_600;
    let series = vec![
        (tags(&[("status", "200")]), vec![(h, bucket(&[1.0, 3.0]))]),
        (tags(&[("status", "500")]), vec![(h, bucket(&[100.0]))]),
    ];
    let q = parse(
        &json!({"metric_name": "m", "time_range": "1h", "interval": "1h", "aggregations": ["count", "max", "p50"]}),
        NOW,
        &Retention::default(),
    )
    .expect("valid");
    let answer = compute(&q, &series);
    assert_eq!(answer.points.len(), 1);
    assert_eq!(answer.values_of(0, Aggregation::Count), [Some(3.0)]);
    assert_eq!(answer.values_of(0, Aggregation::Max), [Some(100.0)]);
    let p50 = answer.values_of(0, Aggregation::P50)[0].expect("p50");
    assert!((p50 - 3.0).abs() / 3.0 < 0.01, "{p50}");
}

#[test]
fn each_group_is_summarised_over_the_whole_range_from_its_merged_buckets() {
    // Given two routes over two hours: /a with one slow request then 99 fast ones
    let h = NOW - 7_200;
    let fast: Vec<f64> = (1..=99).map(f64::from).collect();
    let series = vec![
        (
            tags(&[("route", "/a")]),
            vec![(h, bucket(&[1_000.0])), (h + 3_600, bucket(&fast))],
        ),
        (tags(&[("route", "/b")]), vec![(h, bucket(&[7.0, 9.0]))]),
    ];
    // When grouped by route with p50, count and rate over the two hours
    let q = parse(
        &json!({"metric_name": "api_request", "time_range": "2h", "interval": "1h",
                "aggregations": ["p50", "count", "max", "rate"], "group_by": "route"}),
        NOW,
        &Retention::default(),
    )
    .expect("valid");
    let answer = compute(&q, &series);
    // Then each group has one row of the range's own figures, in the ranked order: /a's
    // median is the 100 requests' (about 50), not the mean of its hourly medians (525)
    assert_eq!(
        answer.tags,
        [tags(&[("route", "/a")]), tags(&[("route", "/b")])]
    );
    let a = &answer.summary[0];
    let p50 = a[0].expect("p50");
    assert!((p50 - 50.0).abs() < 2.0, "{p50}");
    assert_eq!(a[1], Some(100.0));
    assert_eq!(a[2], Some(1_000.0));
    assert_eq!(a[3], Some(100.0 / 7_200.0));
    assert_eq!(answer.summary[1][1], Some(2.0));
    // And it serialises beside the points, by aggregation name
    let v = serde_json::to_value(&answer).expect("json");
    assert_eq!(
        v["summary"][1],
        json!({"tags": {"route": "/b"}, "values": {"p50": answer.summary[1][0], "count": 2.0, "max": 9.0, "rate": 2.0 / 7_200.0}})
    );
}

#[test]
fn compare_to_shifts_the_range_by_a_period_or_52_weeks() {
    let r = Retention::default();
    let q = parse(
        &json!({"metric_name": "m", "time_range": "7d", "compare_to": "previous_period"}),
        NOW,
        &r,
    )
    .expect("valid");
    let prev = q.comparison().expect("comparison");
    assert_eq!(prev.end, q.end - 7 * 86_400);
    assert_eq!(prev.resolution, q.resolution);
    assert_eq!(prev.compare, None);
    let y = parse(
        &json!({"metric_name": "m", "time_range": "24h", "compare_to": "previous_year"}),
        NOW,
        &r,
    )
    .expect("valid");
    let last_year = y.comparison().expect("comparison");
    assert_eq!(y.end - last_year.end, 364 * 86_400, "same weekday");
    for bad in [json!("last_week"), json!(3)] {
        let err = parse(
            &json!({"metric_name": "m", "time_range": "24h", "compare_to": bad}),
            NOW,
            &r,
        )
        .expect_err("invalid");
        assert!(pointers(err).contains(&"#/compare_to".to_owned()));
    }
    let beyond = Retention {
        day_days: 10,
        ..Retention::default()
    };
    let err = parse(
        &json!({"metric_name": "m", "time_range": "7d", "compare_to": "previous_period"}),
        NOW,
        &beyond,
    )
    .expect_err("compared range beyond retention");
    assert!(pointers(err).contains(&"#/compare_to".to_owned()));
}

#[test]
fn weekly_points_merge_the_daily_buckets_of_each_iso_week() {
    // Given 21 daily buckets from Monday 2026-11-02, one event each day
    let monday = 1_793_577_600;
    assert_eq!(
        week_start(monday + 3 * 86_400 + 5),
        monday,
        "a Thursday's week"
    );
    let days: Vec<(i64, Bucket)> = (0..21)
        .map(|d| (monday + d * 86_400, bucket(&[1.0])))
        .collect();
    // When weeks are asked for over a range starting mid-week
    let q = parse(
        &json!({"metric_name": "m", "time_range": {"start": "2026-11-04T10:00:00Z", "end": "2026-11-23T00:00:00Z"}, "interval": "1w", "aggregations": ["count"]}),
        monday + 30 * 86_400,
        &Retention::default(),
    )
    .expect("query");
    assert!(q.weekly && q.resolution == Resolution::Day);
    assert_eq!(q.start, monday, "aligned to the week's Monday");
    let answer = compute(&q, &[(BTreeMap::new(), days)]);
    // Then there are three weekly points of seven events each
    assert_eq!(
        answer.values_of(0, Aggregation::Count),
        vec![Some(7.0), Some(7.0), Some(7.0)]
    );
    assert_eq!(
        serde_json::to_value(&answer).expect("json")["resolution"],
        "1w"
    );
}

#[test]
fn the_series_folded_past_the_cap_is_labelled_and_filterable() {
    // Given a real series and the folded one (tag sets past the metric's cap)
    let h = NOW - 3_600;
    let series = vec![
        (tags(&[("host", "web-1")]), vec![(h, bucket(&[1.0]))]),
        (tags(&[(FOLDED, "true")]), vec![(h, bucket(&[1.0, 1.0]))]),
    ];
    let query = |body: serde_json::Value| parse(&body, NOW, &Retention::default()).expect("valid");
    // When grouped by host
    let answer = compute(
        &query(
            json!({"metric_name": "cpu", "time_range": "1h", "interval": "1h",
            "aggregations": ["count"], "group_by": ["host"]}),
        ),
        &series,
    );
    // Then the folded series is its own group, labelled __other__
    assert!(
        answer.tags.contains(&tags(&[("host", "__other__")])),
        "{:?}",
        answer.tags
    );
    assert!(answer.tags.contains(&tags(&[("host", "web-1")])));
    // And a filter on a real value leaves it out, one on __other__ selects it alone
    let only = |filters: serde_json::Value| {
        compute(
            &query(
                json!({"metric_name": "cpu", "time_range": "1h", "interval": "1h",
                "aggregations": ["count"], "group_by": ["host"], "filters": filters}),
            ),
            &series,
        )
        .tags
    };
    assert_eq!(only(json!({"host": "web-1"})), [tags(&[("host", "web-1")])]);
    assert_eq!(
        only(json!({"host": "__other__"})),
        [tags(&[("host", "__other__")])]
    );
}
