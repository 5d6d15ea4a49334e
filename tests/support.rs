//! Test support: one local cloud per test binary, started on first use on its own runtime
//! thread so every test (each with its own runtime) can reach it over HTTP.

use pulse_local::jwt::LocalIssuer;
use pulse_local::template::{JwtAuthorizer, Model};
use pulse_local::{LocalCloud, Options};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What a test needs of the shared local cloud.
#[derive(Debug)]
pub struct Cloud {
    pub http: String,
    /// The WebSocket API's URL, when the template has one.
    pub ws: Option<String>,
    pub aws_endpoint: String,
    pub issuer: Arc<LocalIssuer>,
    pub authorizer: JwtAuthorizer,
    pub model: Model,
    /// Asks the cloud's own thread to fire a schedule (`fire`).
    fires: tokio::sync::mpsc::UnboundedSender<Fire>,
}

/// A schedule to fire: function, schedule name, and where the outcome goes.
type Fire = (
    String,
    String,
    tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>,
);

impl Cloud {
    /// A valid dev token for `tenant` in `role`.
    pub fn token(&self, tenant: &str, role: &str) -> String {
        self.issuer
            .mint(&self.authorizer, tenant, role, Duration::from_secs(600))
            .expect("token")
    }

    /// Fires `function`'s schedule `name` now, as EventBridge would ([`LocalCloud::fire`]).
    pub async fn fire(&self, function: &str, name: &str) -> Result<serde_json::Value, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.fires
            .send((function.to_owned(), name.to_owned(), tx))
            .map_err(|_| "the local cloud's thread is gone".to_owned())?;
        rx.await
            .map_err(|_| "the local cloud dropped the request".to_owned())?
    }

    /// `GET path` as `tenant`'s `role`: the status and the JSON body (null if none).
    pub async fn get(&self, tenant: &str, role: &str, path: &str) -> (u16, serde_json::Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.http))
            .bearer_auth(self.token(tenant, role))
            .send()
            .await
            .expect("response");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// An SDK configuration for the emulator, made in the calling test's runtime.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        pulse_local::sdk_config(&self.aws_endpoint).await
    }
}

static CLOUD: OnceLock<Cloud> = OnceLock::new();

/// The shared local cloud, started on first use. It lives until the test process exits;
/// its emulator exits with it.
pub fn cloud() -> &'static Cloud {
    shared(&CLOUD, |opts| opts)
}

/// The cloud in `cell`, started on first use with the test options `edit` makes (a test
/// binary that needs other parameters or template text keeps its own cell).
pub fn shared(cell: &'static OnceLock<Cloud>, edit: fn(Options) -> Options) -> &'static Cloud {
    cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let cloud = start_with(edit).await;
                let (fires, mut asked) = tokio::sync::mpsc::unbounded_channel::<Fire>();
                let shared = Cloud {
                    fires,
                    http: cloud.http_url(),
                    ws: cloud.ws_url(),
                    aws_endpoint: cloud.aws_endpoint().to_owned(),
                    issuer: cloud.issuer().clone(),
                    authorizer: cloud.authorizer().cloned().expect("an authorizer"),
                    model: cloud.model().clone(),
                };
                tx.send(shared).expect("test waits");
                while let Some((function, name, reply)) = asked.recv().await {
                    let _ = reply.send(cloud.fire(&function, &name).await);
                }
                std::future::pending::<()>().await;
            });
        });
        rx.recv()
            .expect("the local cloud started (see the panic above)")
    })
}

/// A local cloud of the test's own, on free ports with a fresh state folder.
pub async fn start() -> LocalCloud {
    start_with(|opts| opts).await
}

/// As [`start`], with the options `edit` makes of the test defaults.
pub async fn start_with(edit: fn(Options) -> Options) -> LocalCloud {
    let state = tempfile::tempdir().expect("tempdir").keep();
    LocalCloud::start(edit(Options::ephemeral(state)))
        .await
        .unwrap_or_else(|e| panic!("the local cloud did not start: {e}"))
}

/// template.yaml, parsed as plain YAML (no Pulse code in between), for checks from the
/// template's side.
pub fn raw_template() -> serde_yaml_ng::Value {
    let path = pulse_local::default_root().join("template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml_ng::from_str(&text).expect("YAML")
}

/// An item as the SDK returns it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

impl Cloud {
    /// The physical name of the table `logical_id` of template.yaml.
    pub fn table(&self, logical_id: &str) -> String {
        self.model
            .tables
            .iter()
            .find(|t| t.logical_id == logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares {logical_id}"))
            .name
            .clone()
    }

    /// Every item of the table `logical_id` whose `tenant` attribute is `tenant` (all items
    /// when `None`), following pages.
    pub async fn scan(&self, logical_id: &str, tenant: Option<&str>) -> Vec<Item> {
        scan(&self.sdk().await, &self.table(logical_id), tenant).await
    }
}

/// Whether a raw event item is Pulse's record of a request to its own API (an `api_request`
/// tagged `service=pulse`, see `pulse_http::selfmon`): tests counting what they sent leave
/// those out; `tests/views.rs` checks them.
pub fn own_record(item: &Item) -> bool {
    item.get("data")
        .and_then(|v| v.as_s().ok())
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .is_some_and(|d| d["tags"]["service"] == "pulse")
}

/// Every item of `table` (of `tenant` if given), following pages; Pulse's records of its own
/// API requests left out ([`own_record`]).
pub async fn scan(sdk: &aws_config::SdkConfig, table: &str, tenant: Option<&str>) -> Vec<Item> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut req = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start);
        if let Some(t) = tenant {
            req = req
                .filter_expression("tenant = :t")
                .expression_attribute_values(
                    ":t",
                    aws_sdk_dynamodb::types::AttributeValue::S(t.to_owned()),
                );
        }
        let page = req.send().await.expect("scan");
        items.extend(page.items().iter().filter(|i| !own_record(i)).cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}

/// Every object of `bucket` as JSON, with its key, in key order.
pub async fn json_objects(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
) -> Vec<(String, serde_json::Value)> {
    let s3 = pulse_local::s3_client(sdk);
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("listed");
    let mut out = Vec::new();
    for object in listed.contents() {
        let key = object.key().unwrap_or_default().to_owned();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("object")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        out.push((key, serde_json::from_slice(&body).expect("JSON")));
    }
    out
}
