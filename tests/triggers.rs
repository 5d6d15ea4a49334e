//! The local cloud's trigger mechanism, driven by a template of the test's own: the WebSocket
//! API (connect, route selection, two-way routes, Forbidden, the management API, disconnect),
//! schedules, and DynamoDB stream delivery with partial batch failures.
//!
//! Pulse's own template has no such functions yet; this template declares them the way the
//! live-updates, rollup and aggregator functions will, and small test functions stand behind
//! them so the mechanism itself is what is checked.

use futures::{SinkExt, StreamExt};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_http::HttpHandler;
use pulse_local::functions::{Invoke, http};
use pulse_local::{LocalCloud, Options};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Environment:
      Variables:
        EVENTS_TABLE: !Ref Things
        METRICS_TABLE: !Ref Things
        APP_TABLE: !Ref Things
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  LiveApi:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: live, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  LiveStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref LiveApi, StageName: test, AutoDeploy: true}
  ConnectIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref LiveApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${LiveFunction.Arn}/invocations"
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref LiveApi, RouteKey: $connect, Target: !Sub "integrations/${ConnectIntegration}"}
  DisconnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref LiveApi, RouteKey: $disconnect, Target: !Sub "integrations/${ConnectIntegration}"}
  EchoRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref LiveApi
      RouteKey: echo
      RouteResponseSelectionExpression: $default
      Target: !Sub "integrations/${ConnectIntegration}"
  LiveFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: test-live}}
    Properties:
      CodeUri: .
  TickFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: test-tick}}
    Properties:
      CodeUri: .
      Events:
        Every:
          Type: Schedule
          Properties: {Schedule: rate(1 minute)}
  StreamFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: test-stream}}
    Properties:
      CodeUri: .
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Things.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 0
            FunctionResponseTypes: [ReportBatchItemFailures]
  Strict:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Failures:
    Type: AWS::S3::Bucket
  StrictFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: test-strict}}
    Properties:
      CodeUri: .
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Strict.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 1
            MaximumRetryAttempts: 2
            BisectBatchOnFunctionError: true
            DestinationConfig: {OnFailure: {Destination: !GetAtt Failures.Arn}}
            FunctionResponseTypes: [ReportBatchItemFailures]
"#;

/// What the test functions saw.
#[derive(Default)]
struct Seen {
    connected: Vec<String>,
    disconnected: Vec<String>,
    stream_keys: Vec<String>,
    poison_attempts: u32,
    /// What the strict function processed, and how often it was handed "never".
    strict_keys: Vec<String>,
    never_attempts: u32,
}

type Shared = Arc<Mutex<Seen>>;

/// The WebSocket function, a real lambda_http handler: refuses a connect without
/// `?token=ok`, records connects and disconnects, and echoes on the `echo` route.
struct Live(Shared);

impl HttpHandler for Live {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref() else {
            return Ok(Response::builder()
                .status(500)
                .body(Body::from("not a WebSocket event"))?);
        };
        let id = ctx.connection_id.clone().unwrap_or_default();
        let route = ctx.route_key.clone().unwrap_or_default();
        match route.as_str() {
            "$connect" => {
                let token = req
                    .query_string_parameters_ref()
                    .and_then(|q| q.first("token").map(str::to_owned));
                if token.as_deref() != Some("ok") {
                    return Ok(Response::builder().status(401).body(Body::Empty)?);
                }
                self.0.lock().expect("lock").connected.push(id);
            }
            "$disconnect" => self.0.lock().expect("lock").disconnected.push(id),
            _ => {
                let body = match req.body() {
                    Body::Text(t) => t.clone(),
                    _ => String::new(),
                };
                return Ok(Response::new(Body::from(
                    json!({"echo": body, "connection": id}).to_string(),
                )));
            }
        }
        Ok(Response::new(Body::Empty))
    }
}

fn registry(
    seen: Shared,
) -> impl Fn(&str, &pulse_core::Config, &aws_config::SdkConfig) -> Option<Invoke> {
    move |binary, _, _| {
        let seen = seen.clone();
        match binary {
            "test-live" => Some(http(Live(seen))),
            // Returns the event it got, so the test can look at it.
            "test-tick" => Some(Arc::new(|event: Value| Box::pin(async move { Ok(event) }))),
            // Fails the record keyed "poison" on its first delivery only.
            "test-stream" => Some(Arc::new(move |event: Value| {
                let seen = seen.clone();
                Box::pin(async move {
                    let mut failures = Vec::new();
                    let mut s = seen.lock().expect("lock");
                    for r in event["Records"].as_array().into_iter().flatten() {
                        let key = r["dynamodb"]["Keys"]["pk"]["S"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        let seq = r["dynamodb"]["SequenceNumber"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        if key == "poison" {
                            s.poison_attempts += 1;
                            if s.poison_attempts == 1 {
                                failures.push(json!({"itemIdentifier": seq}));
                                break;
                            }
                        }
                        s.stream_keys.push(key);
                    }
                    Ok(json!({"batchItemFailures": failures}))
                })
            })),
            // Fails the record keyed "never" on every delivery (and so the records after it).
            "test-strict" => Some(Arc::new(move |event: Value| {
                let seen = seen.clone();
                Box::pin(async move {
                    let mut failures = Vec::new();
                    let mut s = seen.lock().expect("lock");
                    for r in event["Records"].as_array().into_iter().flatten() {
                        let key = r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap_or("");
                        if key == "never" {
                            s.never_attempts += 1;
                            failures
                                .push(json!({"itemIdentifier": r["dynamodb"]["SequenceNumber"]}));
                            break;
                        }
                        s.strict_keys.push(key.to_owned());
                    }
                    Ok(json!({"batchItemFailures": failures}))
                })
            })),
            _ => None,
        }
    }
}

async fn start(seen: Shared) -> LocalCloud {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let template = dir.join("template.yaml");
    std::fs::write(&template, TEMPLATE).expect("template written");
    let opts = Options {
        template,
        ..Options::ephemeral(dir.join("state"))
    };
    LocalCloud::start_with(opts, registry(seen))
        .await
        .expect("local cloud starts")
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
        .expect("open")
        .expect("frame");
    serde_json::from_str(frame.to_text().expect("text")).expect("json")
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 10 s");
}

#[tokio::test]
async fn websocket_api_connects_routes_manages_and_disconnects_like_api_gateway() {
    let seen: Shared = Arc::default();
    let cloud = start(seen.clone()).await;
    let url = cloud
        .ws_url()
        .expect("the template declares a WebSocket API");

    // A connect the $connect function refuses is not upgraded, and carries its status.
    let refused = tokio_tungstenite::connect_async(format!("{url}/test?token=bad")).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(res)) = refused else {
        panic!("the upgrade should be refused")
    };
    assert_eq!(res.status(), 401);

    // An accepted connect: the two-way route echoes through the function.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/test?token=ok"))
        .await
        .expect("connected");
    let id = seen
        .lock()
        .expect("lock")
        .connected
        .first()
        .cloned()
        .expect("connect recorded");
    ws.send(Message::text(r#"{"action":"echo","n":1}"#))
        .await
        .expect("sent");
    let echoed = next_text(&mut ws).await;
    assert_eq!(echoed["connection"], id);
    assert_eq!(echoed["echo"], r#"{"action":"echo","n":1}"#);

    // No route and no $default: API Gateway's Forbidden frame, and the socket stays open.
    ws.send(Message::text(r#"{"action":"nope"}"#))
        .await
        .expect("sent");
    let forbidden = next_text(&mut ws).await;
    assert_eq!(forbidden["message"], "Forbidden");
    ws.send(Message::text("not json")).await.expect("sent");
    assert_eq!(next_text(&mut ws).await["message"], "Forbidden");

    // The management API posts to the connection, describes it, and deletes it.
    let http = reqwest::Client::new();
    let base = url.replacen("ws://", "http://", 1);
    let posted = http
        .post(format!("{base}/test/@connections/{id}"))
        .body(r#"{"type":"metrics_update"}"#)
        .send()
        .await
        .expect("posted");
    assert_eq!(posted.status(), 200);
    assert_eq!(next_text(&mut ws).await["type"], "metrics_update");
    let info: Value = http
        .get(format!("{base}/@connections/{id}"))
        .send()
        .await
        .expect("described")
        .json()
        .await
        .expect("json");
    assert!(
        info["connectedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let deleted = http
        .delete(format!("{base}/@connections/{id}"))
        .send()
        .await
        .expect("deleted");
    assert_eq!(deleted.status(), 204);
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed in time");
    assert!(matches!(closed, Some(Ok(Message::Close(_))) | None));

    // A gone connection is 410, and $disconnect ran for it.
    let gone = http
        .post(format!("{base}/@connections/{id}"))
        .body("x")
        .send()
        .await
        .expect("answered");
    assert_eq!(gone.status(), 410);
    wait_until(|| seen.lock().expect("lock").disconnected.contains(&id)).await;
    cloud.stop().await;
}

#[tokio::test]
async fn schedules_fire_eventbridge_scheduled_events() {
    let cloud = start(Arc::default()).await;
    let event = cloud.fire("TickFunction", "Every").await.expect("fired");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert!(cloud.fire("TickFunction", "Missing").await.is_err());
    cloud.stop().await;
}

#[tokio::test]
async fn stream_records_reach_the_function_and_a_failed_record_is_retried() {
    // Given the stream function, which fails "poison" once
    let seen: Shared = Arc::default();
    let cloud = start(seen.clone()).await;
    let table = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "Things")
        .expect("Things")
        .name
        .clone();
    let dynamo = aws_sdk_dynamodb::Client::new(cloud.sdk_config());
    // When three items are written
    for key in ["first", "poison", "last"] {
        dynamo
            .put_item()
            .table_name(&table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(key.to_owned()),
            )
            .send()
            .await
            .expect("put");
    }
    // Then each reaches the function once, in order, with poison delivered a second time
    wait_until(|| seen.lock().expect("lock").stream_keys.len() >= 3).await;
    let (keys, poison_attempts) = {
        let s = seen.lock().expect("lock");
        (s.stream_keys.clone(), s.poison_attempts)
    };
    assert_eq!(keys, ["first", "poison", "last"]);
    assert_eq!(poison_attempts, 2);
    cloud.stop().await;
}

#[tokio::test]
async fn a_record_that_always_fails_is_isolated_retried_a_bounded_number_of_times_and_set_aside() {
    // Given a mapping with 2 retries, bisection and an S3 on-failure destination, and a
    // function that always fails the record keyed "never"
    let seen: Shared = Arc::default();
    let cloud = start(seen.clone()).await;
    let table = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "Strict")
        .expect("Strict")
        .name
        .clone();
    let dynamo = aws_sdk_dynamodb::Client::new(cloud.sdk_config());
    // When five items are written, the third of them "never"
    for key in ["a1", "a2", "never", "a3", "a4"] {
        dynamo
            .put_item()
            .table_name(&table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(key.to_owned()),
            )
            .send()
            .await
            .expect("put");
    }
    // Then every other record is processed once, in order, and the stream moves past "never"
    wait_until(|| seen.lock().expect("lock").strict_keys.len() >= 4).await;
    let (keys, attempts) = {
        let s = seen.lock().expect("lock");
        (s.strict_keys.clone(), s.never_attempts)
    };
    assert_eq!(keys, ["a1", "a2", "a3", "a4"]);
    // And "never" was delivered a bounded number of times: alone once and retried twice
    // (MaximumRetryAttempts: 2), after at most two deliveries in the larger batches it was
    // split out of (splits are not retries)
    assert!((3..=5).contains(&attempts), "{attempts}");
    // And it alone was recorded in the on-failure bucket, as Lambda records a batch
    let bucket = cloud
        .model()
        .buckets
        .iter()
        .find(|b| b.contains("failures"))
        .expect("the failures bucket")
        .clone();
    let objects = pulse_tests::json_objects(cloud.sdk_config(), &bucket).await;
    assert_eq!(objects.len(), 1);
    let (key, record) = &objects[0];
    assert!(key.starts_with("aws/lambda/"), "{key}");
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["DDBStreamBatchInfo"]["batchSize"], 1);
    let payload = record["payload"]["Records"].as_array().expect("records");
    assert_eq!(payload[0]["dynamodb"]["Keys"]["pk"]["S"], "never");
    cloud.stop().await;
}
