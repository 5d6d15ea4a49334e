//! The local cloud is built from template.yaml: its tables equal the declarations, and every
//! HttpApi route declared is served and reaches its function.

use pulse_tests::{cloud, raw_template};
use serde_yaml_ng::Value as Y;
use std::collections::BTreeSet;

fn s(v: &Y) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

fn pairs(v: &Y, a: &str, b: &str) -> BTreeSet<(String, String)> {
    v.as_sequence()
        .map(|items| items.iter().map(|i| (s(&i[a]), s(&i[b]))).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn emulator_tables_equal_the_template_declarations() {
    // Given the template's tables, read as plain YAML
    let template = raw_template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    let declared: Vec<(String, &Y)> = resources
        .iter()
        .filter(|(_, r)| s(&r["Type"]) == "AWS::DynamoDB::Table")
        .map(|(id, r)| (s(id), &r["Properties"]))
        .collect();
    assert_eq!(declared.len(), 3, "Events, Metrics and App");

    // When the local cloud has created them in the emulator
    let cloud = cloud();
    let client = aws_sdk_dynamodb::Client::new(&cloud.sdk().await);
    for (logical_id, props) in declared {
        let name = &cloud
            .model
            .tables
            .iter()
            .find(|t| t.logical_id == logical_id)
            .unwrap_or_else(|| panic!("the local cloud knows {logical_id}"))
            .name;
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe")
            .table
            .expect("table");

        // Then keys, attributes, indexes, stream and TTL are the declared ones
        let keys: BTreeSet<_> = described
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            pairs(&props["KeySchema"], "AttributeName", "KeyType"),
            "{logical_id} keys"
        );
        let attrs: BTreeSet<_> = described
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            attrs,
            pairs(
                &props["AttributeDefinitions"],
                "AttributeName",
                "AttributeType"
            ),
            "{logical_id} attributes"
        );

        let indexes: BTreeSet<_> = described
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let keys: Vec<_> = g
                    .key_schema()
                    .iter()
                    .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
                    .collect();
                let projection = g
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                (
                    g.index_name().unwrap_or_default().to_owned(),
                    keys.join(","),
                    projection,
                )
            })
            .collect();
        let declared_indexes: BTreeSet<_> = props["GlobalSecondaryIndexes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|g| {
                let keys: Vec<_> = g["KeySchema"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .map(|k| format!("{}:{}", s(&k["AttributeName"]), s(&k["KeyType"])))
                    .collect();
                (
                    s(&g["IndexName"]),
                    keys.join(","),
                    s(&g["Projection"]["ProjectionType"]),
                )
            })
            .collect();
        assert_eq!(indexes, declared_indexes, "{logical_id} indexes");

        let stream = described
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned());
        let declared_stream = props["StreamSpecification"]["StreamViewType"]
            .as_str()
            .map(str::to_owned);
        assert_eq!(stream, declared_stream, "{logical_id} stream");

        let ttl = client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .expect("describe ttl")
            .time_to_live_description
            .expect("ttl description");
        assert_eq!(
            ttl.time_to_live_status().map(|s| s.as_str()),
            Some("ENABLED"),
            "{logical_id} TTL on"
        );
        assert_eq!(
            ttl.attribute_name(),
            props["TimeToLiveSpecification"]["AttributeName"].as_str(),
            "{logical_id} TTL attribute"
        );
    }
}

#[tokio::test]
async fn every_http_api_route_in_the_template_reaches_its_function() {
    // Given every HttpApi event of every function in the template
    let template = raw_template();
    let mut routes = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
        if s(&resource["Type"]) != "AWS::Serverless::Function" {
            continue;
        }
        for (_, event) in resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if s(&event["Type"]) == "HttpApi" {
                routes.push((
                    s(&event["Properties"]["Method"]),
                    s(&event["Properties"]["Path"]),
                ));
            }
        }
    }
    assert!(routes.len() >= 2, "health and me at least");

    // When each is called with an admin token and a correlation id
    let cloud = cloud();
    let token = cloud.token("routes", "admin");
    let http = reqwest::Client::new();
    for (method, path) in routes {
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "test-id" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let res = http
            .request(method.clone(), format!("{}{concrete}", cloud.http))
            .bearer_auth(&token)
            .header("x-correlation-id", "route-check")
            .send()
            .await
            .expect("response");
        // Then the function answered: not the local cloud's unknown-route 404, not a failed
        // invocation, and its response went through the shared request edge.
        let status = res.status();
        assert_eq!(
            res.headers()["x-correlation-id"],
            "route-check",
            "{method} {path}"
        );
        let body = res.text().await.expect("body");
        assert!(
            !body.contains("no route for"),
            "{method} {path} is not served: {body}"
        );
        assert!(
            status.as_u16() < 500 || status == 503,
            "{method} {path} failed: {status} {body}"
        );
    }
}

#[test]
fn every_template_function_has_an_in_process_handler() {
    // A function added to template.yaml without a handler in the local cloud fails here.
    let model = &cloud().model;
    for function in model.functions.values() {
        assert!(
            pulse_local::functions::BINARIES.contains(&function.binary.as_str()),
            "{} ({}) has no handler in infra/src/functions.rs",
            function.logical_id,
            function.binary
        );
    }
}

#[tokio::test]
async fn the_dashboard_its_config_and_the_dev_sign_in_are_served() {
    // `make test` builds dashboard/dist before the Rust tests run.
    let http = &cloud().http;
    let page = reqwest::get(format!("{http}/")).await.expect("page");
    assert_eq!(
        page.status(),
        200,
        "build the dashboard first: make dashboard"
    );
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.expect("html");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script");
    let js = reqwest::get(format!("{http}{script}"))
        .await
        .expect("script");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap_or("")
            .contains("immutable")
    );
    // The config points at this local cloud's WebSocket API and its dev sign-in
    let config: serde_json::Value = reqwest::get(format!("{http}/config.json"))
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["auth"]["mode"], "dev");
    assert!(
        config["wsUrl"]
            .as_str()
            .unwrap_or("")
            .starts_with("ws://127.0.0.1:")
    );
    // The dev sign-in mints a token the API accepts, and refuses a bad role
    let client = reqwest::Client::new();
    let signed: serde_json::Value = client
        .post(format!("{http}/dev/token"))
        .json(&serde_json::json!({"tenant": "dash", "role": "analyst"}))
        .send()
        .await
        .expect("sign-in")
        .json()
        .await
        .expect("json");
    let me: serde_json::Value = client
        .get(format!("{http}/api/v1/me"))
        .bearer_auth(signed["token"].as_str().expect("token"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (me["tenant"].as_str(), me["role"].as_str()),
        (Some("dash"), Some("analyst"))
    );
    let refused = client
        .post(format!("{http}/dev/token"))
        .json(&serde_json::json!({"tenant": "dash", "role": "root"}))
        .send()
        .await
        .expect("sign-in");
    assert_eq!(refused.status(), 400);
    // And paths outside the build are not served
    let escape = reqwest::get(format!("{http}/assets/..%2F..%2FCargo.toml"))
        .await
        .expect("res");
    assert_eq!(escape.status(), 404);
}

#[tokio::test]
async fn the_tracking_script_is_served_at_pulse_js() {
    // `make test` builds tracker/dist/pulse.js before the Rust tests run.
    let res = reqwest::get(format!("{}/pulse.js", cloud().http))
        .await
        .expect("response");
    assert_eq!(res.status(), 200, "build the tracker first: make tracker");
    assert_eq!(res.headers()["content-type"], "application/javascript");
    let js = res.text().await.expect("text");
    assert!(js.contains("/api/v1/track") && js.contains("sendBeacon"));
}

#[tokio::test]
async fn the_tracking_script_and_the_dashboard_publish_to_the_dashboard_bucket() {
    // Given the emulator's dashboard bucket (what `sam deploy` creates on AWS)
    let c = cloud();
    let bucket = c
        .model
        .buckets
        .iter()
        .find(|b| b.to_ascii_lowercase().contains("dashboard"))
        .expect("a dashboard bucket");
    let s3 = pulse_local::s3_client(&c.sdk().await);
    let root = pulse_local::default_root();
    // When the static files are published with a deployment's config
    let config = serde_json::json!({"apiUrl": "https://api.test", "wsUrl": "wss://ws.test", "auth": {"mode": "oidc", "domain": "https://auth.test", "clientId": "c"}});
    let keys = pulse_local::publish::publish(&s3, bucket, &root, Some(&config))
        .await
        .expect("published (make tracker dashboard first)");
    // Then the bucket holds the script, the dashboard's page and assets, and its config
    assert_eq!(keys.first().map(String::as_str), Some("pulse.js"));
    assert_eq!(keys.last().map(String::as_str), Some("config.json"));
    assert!(keys.iter().any(|k| k == "index.html"), "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("assets/") && k.ends_with(".js")),
        "{keys:?}"
    );
    let page = s3
        .get_object()
        .bucket(bucket)
        .key("index.html")
        .send()
        .await
        .expect("page");
    assert_eq!(page.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(page.cache_control(), Some("no-cache"));
    let stored = s3
        .get_object()
        .bucket(bucket)
        .key("config.json")
        .send()
        .await
        .expect("config");
    let stored: serde_json::Value =
        serde_json::from_slice(&stored.body.collect().await.expect("body").into_bytes())
            .expect("json");
    assert_eq!(stored, config);
    let object = s3
        .get_object()
        .bucket(bucket)
        .key("pulse.js")
        .send()
        .await
        .expect("object");
    assert_eq!(
        object.content_type(),
        Some("application/javascript; charset=utf-8")
    );
    let bytes = object.body.collect().await.expect("body").into_bytes();
    let built = std::fs::read(root.join("tracker/dist/pulse.js")).expect("make tracker");
    assert_eq!(bytes.as_ref(), built.as_slice());
}

#[test]
fn every_function_has_a_sample_event_that_its_trigger_would_send() {
    // `cargo lambda invoke --data-file events/<binary>.json` needs one per function.
    let events = pulse_local::default_root().join("events");
    for (id, function) in &cloud().model.functions {
        let scheduled = cloud().model.schedules.iter().any(|s| &s.function == id);
        let path = events.join(format!("{}.json", function.binary));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing", path.display()));
        let event: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if function.binary.starts_with("api-") {
            assert!(
                lambda_http::request::from_str(&text).is_ok(),
                "{} is not an HTTP API event",
                path.display()
            );
        } else if scheduled {
            assert_eq!(
                event["detail-type"],
                "Scheduled Event",
                "{}",
                path.display()
            );
        } else if function.binary == "ws" {
            let e: ws::WsEvent = serde_json::from_value(event).expect("WebSocket event");
            assert_eq!(e.context.route_key, "$connect", "{}", path.display());
        } else if function.binary == "authorizer" {
            let req: authorizer::Request = serde_json::from_value(event).expect("authorizer event");
            assert!(req.identity_source.is_some_and(|s| !s.is_empty()));
        } else {
            assert!(
                event["Records"].as_array().is_some_and(|r| !r.is_empty()),
                "{} has no Records",
                path.display()
            );
        }
    }
}
