//! Pulse's local cloud: everything template.yaml declares, on localhost, with no AWS account
//! and no Docker.
//!
//! [`LocalCloud::start`] starts the AWS emulator (moto, from the project's venv), creates the
//! template's tables, buckets and topics in it, builds every function in-process with the
//! environment the template gives it, serves the template's HTTP API (with a local JWT issuer
//! standing in for Cognito) and WebSocket API, fires its schedules, and delivers its DynamoDB
//! streams to their functions. Integration tests start the same thing in-process.

pub mod bench;
pub mod dashboard;
pub mod demo;
pub mod emulator;
pub mod functions;
pub mod http_api;
pub mod iam;
pub mod jwt;
pub mod publish;
pub mod queues;
pub mod resources;
pub mod schedules;
pub mod streams;
pub mod template;
pub mod ws_api;

use aws_config::SdkConfig;
use axum::response::IntoResponse;
use functions::Invoke;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use template::{JwtAuthorizer, Model};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The repository root this binary was built from (holds template.yaml and .venv).
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// How to start the local cloud.
#[derive(Debug, Clone)]
pub struct Options {
    /// Repository root: .venv and infra/scripts live here.
    pub root: PathBuf,
    /// The SAM template to build from (default `<root>/template.yaml`).
    pub template: PathBuf,
    /// The one folder holding local state (signing key, emulator log).
    pub state_dir: PathBuf,
    /// Port of the HTTP API (0: any free port).
    pub http_port: u16,
    /// Port of the WebSocket API (0: any free port).
    pub ws_port: u16,
    /// Port of the AWS emulator (0: any free port).
    pub aws_port: u16,
    /// Template parameter overrides.
    pub parameters: BTreeMap<String, String>,
    /// Every `rate(...)` schedule fires this often instead (`PULSE_RATE_SECS`): the end-to-end
    /// run uses 10 s so its steps do not wait up to a minute for the rollup job. `make dev`
    /// keeps the template's rates.
    pub rate_secs: Option<u64>,
}

impl Options {
    /// Defaults for `root`: ports from `PULSE_HTTP_PORT` (3000), `PULSE_WS_PORT` (3001) and
    /// `PULSE_AWS_PORT` (4566), state in `PULSE_STATE_DIR` or `<root>/.pulse`.
    pub fn from_env(root: PathBuf) -> Self {
        let port = |name: &str, default: u16| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let state_dir = std::env::var_os("PULSE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".pulse"));
        Self {
            state_dir,
            template: root.join("template.yaml"),
            http_port: port("PULSE_HTTP_PORT", 3000),
            ws_port: port("PULSE_WS_PORT", 3001),
            aws_port: port("PULSE_AWS_PORT", 4566),
            parameters: BTreeMap::from([("Stage".to_owned(), "local".to_owned())]),
            rate_secs: std::env::var("PULSE_RATE_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|s| *s > 0),
            root,
        }
    }

    /// Options for a test: free ports and a fresh state folder under `state_dir`.
    pub fn ephemeral(state_dir: PathBuf) -> Self {
        Self {
            http_port: 0,
            ws_port: 0,
            aws_port: 0,
            state_dir,
            ..Self::from_env(default_root())
        }
    }
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
    #[error(transparent)]
    Provision(#[from] resources::ProvisionError),
    #[error(transparent)]
    Issuer(#[from] jwt::IssuerError),
    #[error("function {function}: {detail}")]
    Function { function: String, detail: String },
    #[error("{0}")]
    Routes(String),
    #[error("schedule {schedule}: {detail}")]
    Schedule { schedule: String, detail: String },
    #[error("cannot use {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// A running local cloud. Stop it with [`LocalCloud::stop`]; dropping it kills the emulator.
pub struct LocalCloud {
    model: Model,
    emulator: emulator::Emulator,
    aws: SdkConfig,
    issuer: Arc<jwt::LocalIssuer>,
    http_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    schedules: Vec<(template::Schedule, Invoke)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCloud")
            .field("http", &self.http_addr)
            .field("ws", &self.ws_addr)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

impl LocalCloud {
    /// Starts the emulator, provisions the template's resources, serves its APIs and runs
    /// its triggers, with the project's functions.
    pub async fn start(opts: Options) -> Result<Self, StartError> {
        Self::start_with(opts, functions::wire).await
    }

    /// As [`LocalCloud::start`], building each function with `registry` (binary name,
    /// configuration, SDK configuration); tests use it to run a template of their own.
    pub async fn start_with(
        opts: Options,
        registry: impl Fn(&str, &pulse_core::Config, &SdkConfig) -> Option<Invoke>,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(&opts.state_dir)
            .map_err(io(opts.state_dir.display().to_string()))?;
        let model = template::load(&opts.template, &opts.parameters)?;
        let issuer = Arc::new(jwt::LocalIssuer::load_or_create(&opts.state_dir)?);
        let mut schedule_plan = Vec::new();
        for schedule in &model.schedules {
            let expression =
                schedules::parse(&schedule.expression).map_err(|detail| StartError::Schedule {
                    schedule: format!("{}.{}", schedule.function, schedule.name),
                    detail,
                })?;
            let expression = match (expression, opts.rate_secs) {
                (schedules::Expression::Rate(_), Some(secs)) => {
                    schedules::Expression::Rate(std::time::Duration::from_secs(secs))
                }
                (e, _) => e,
            };
            schedule_plan.push((schedule.clone(), expression));
        }

        let aws_port = if opts.aws_port == 0 {
            free_port()?
        } else {
            opts.aws_port
        };
        let emulator =
            emulator::Emulator::start(&opts.root, aws_port, &opts.state_dir.join("emulator.log"))
                .await?;
        let aws = sdk_config(emulator.endpoint()).await;
        resources::provision(&model, &aws).await?;
        // Bound first: functions that verify tokens themselves fetch the local issuer's keys
        // from this address.
        let http_listener = bind(opts.http_port).await?;
        let http_addr = http_listener.local_addr().map_err(io("a listener"))?;
        let jwks_url = format!("http://{http_addr}{JWKS_PATH}");
        // The WebSocket listener is bound before the functions are wired too: they post to
        // its management API at WS_ENDPOINT.
        let ws_stage = model
            .ws_stage
            .clone()
            .unwrap_or_else(|| "$default".to_owned());
        let ws_listener = match &model.ws_route_selection {
            Some(_) => Some(bind(opts.ws_port).await?),
            None => None,
        };
        let ws_endpoint = match &ws_listener {
            Some(l) => Some(format!(
                "http://{}/{ws_stage}",
                l.local_addr().map_err(io("a listener"))?
            )),
            None => None,
        };
        let functions = wire_functions(&model, &aws, &registry, &jwks_url, ws_endpoint.as_deref())?;

        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let api = http_api::HttpApi::new(
            &model.routes,
            &model.authorizers,
            &model.lambda_authorizers,
            &functions,
            issuer.clone(),
        )
        .map_err(StartError::Routes)?
        .throttled(model.http_throttle);
        let tracker = opts.root.join("tracker").join("dist").join("pulse.js");
        let jwks = issuer.jwks();
        let client_ws_url = match &ws_listener {
            Some(l) => Some(format!(
                "ws://{}/",
                l.local_addr().map_err(io("a listener"))?
            )),
            None => None,
        };
        let dashboard = dashboard::router(
            &opts.root,
            issuer.clone(),
            default_authorizer(&model),
            client_ws_url,
        );
        let router = api
            .router()
            .merge(dashboard)
            .route(
                JWKS_PATH,
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            )
            .route(
                "/pulse.js",
                axum::routing::get(move || {
                    let tracker = tracker.clone();
                    async move {
                        // Read per request, so a rebuilt script is served without a restart.
                        match tokio::fs::read(&tracker).await {
                            Ok(js) => {
                                ([(http::header::CONTENT_TYPE, "application/javascript")], js)
                                    .into_response()
                            }
                            Err(_) => (
                                http::StatusCode::NOT_FOUND,
                                "build the tracker: make tracker",
                            )
                                .into_response(),
                        }
                    }
                }),
            );
        tasks.push(serve_on(http_listener, router, stopped.clone())?);

        let ws_addr = match (&model.ws_route_selection, ws_listener) {
            (Some(selection), Some(listener)) => {
                let ws =
                    ws_api::WsApi::new(&model.ws_routes, Some(selection), &ws_stage, &functions)
                        .map_err(StartError::Routes)?;
                let addr = listener.local_addr().map_err(io("a listener"))?;
                tasks.push(serve_on(listener, ws.router(), stopped.clone())?);
                Some(addr)
            }
            _ => None,
        };

        let mut fired = Vec::new();
        let mut timed = Vec::new();
        for (schedule, expression) in schedule_plan {
            let invoke = functions[&schedule.function].clone();
            fired.push((schedule.clone(), invoke.clone()));
            timed.push((schedule, expression, invoke));
        }
        tasks.push(schedules::spawn(timed, stopped.clone()));
        for mapping in &model.streams {
            let invoke = functions[&mapping.function].clone();
            tasks.push(streams::spawn(
                mapping.clone(),
                invoke,
                emulator.endpoint().to_owned(),
                stopped.clone(),
            ));
        }
        for mapping in &model.queue_mappings {
            let invoke = functions[&mapping.function].clone();
            tasks.push(queues::spawn(
                mapping.clone(),
                invoke,
                aws.clone(),
                stopped.clone(),
            ));
        }

        Ok(Self {
            model,
            emulator,
            aws,
            issuer,
            http_addr,
            ws_addr,
            schedules: fired,
            shutdown,
            tasks,
        })
    }

    /// Fires the schedule `name` of `function` (logical id) now, as EventBridge would at its
    /// next tick, and returns the function's result.
    pub async fn fire(&self, function: &str, name: &str) -> Result<serde_json::Value, String> {
        let (schedule, invoke) = self
            .schedules
            .iter()
            .find(|(s, _)| s.function == function && s.name == name)
            .ok_or_else(|| format!("no schedule {function}.{name} in the template"))?;
        invoke(schedules::event(schedule, chrono::Utc::now()))
            .await
            .map_err(|e| e.to_string())
    }

    /// URL of the WebSocket API, if the template declares one.
    pub fn ws_url(&self) -> Option<String> {
        self.ws_addr.map(|a| format!("ws://{a}"))
    }

    /// Base URL of the HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Endpoint of the AWS emulator.
    pub fn aws_endpoint(&self) -> &str {
        self.emulator.endpoint()
    }

    /// SDK configuration pointing at the emulator.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.aws
    }

    /// What the local cloud read from template.yaml.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The local token issuer.
    pub fn issuer(&self) -> &Arc<jwt::LocalIssuer> {
        &self.issuer
    }

    /// The HTTP API's default JWT authorizer (its issuer and audience).
    pub fn authorizer(&self) -> Option<&JwtAuthorizer> {
        self.model.authorizers.values().next()
    }

    /// A dev token for `tenant` in `role`, valid for an hour.
    pub fn token(&self, tenant: &str, role: &str) -> Result<String, jwt::IssuerError> {
        self.issuer.mint(
            &default_authorizer(&self.model),
            tenant,
            role,
            Duration::from_secs(3600),
        )
    }

    /// Starts demo traffic through the HTTP API (see [`demo`]); it stops with the local cloud.
    pub fn start_demo(&mut self) -> Result<(), jwt::IssuerError> {
        let token = self.token("demo", "admin")?;
        let task = demo::spawn(self.http_url(), token, self.shutdown.subscribe());
        self.tasks.push(task);
        Ok(())
    }

    /// Stops serving, waits for in-flight requests, and stops the emulator.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.emulator.stop().await;
    }
}

/// Where the local cloud serves its issuer's public keys (JWKS).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A listener on `127.0.0.1:port` (0: any free port).
async fn bind(port: u16) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(io(format!("127.0.0.1:{port}")))
}

/// Serves `router` on `listener` until `stopped` turns true.
fn serve_on(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    let addr = listener.local_addr().map_err(io("a listener"))?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, %addr, "server stopped");
        }
    });
    Ok(task)
}

/// Builds every function of the template with the environment the template gives it, plus
/// `JWKS_URL` (the local issuer's keys stand in for the ones a deployed issuer publishes) and
/// `WS_ENDPOINT` (the local WebSocket API's management API).
fn wire_functions(
    model: &Model,
    aws: &SdkConfig,
    registry: &impl Fn(&str, &pulse_core::Config, &SdkConfig) -> Option<Invoke>,
    jwks_url: &str,
    ws_endpoint: Option<&str>,
) -> Result<HashMap<String, Invoke>, StartError> {
    let mut out = HashMap::new();
    for (id, function) in &model.functions {
        let config = pulse_core::Config::from_lookup(|k| match k {
            "JWKS_URL" => Some(jwks_url.to_owned()),
            "WS_ENDPOINT" => ws_endpoint.map(str::to_owned),
            _ => function.environment.get(k).cloned(),
        })
        .map_err(|e| StartError::Function {
            function: id.clone(),
            detail: e.to_string(),
        })?;
        let invoke =
            registry(&function.binary, &config, aws).ok_or_else(|| StartError::Function {
                function: id.clone(),
                detail: format!(
                    "binary {} has no in-process handler in infra/src/functions.rs",
                    function.binary
                ),
            })?;
        let invoke = match function.reserved_concurrency {
            Some(limit) => functions::reserved(invoke, limit),
            None => invoke,
        };
        out.insert(id.clone(), invoke);
    }
    Ok(out)
}

/// SDK configuration for the emulator at `endpoint`, with Pulse's retry policy.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    pulse_store::aws::at_endpoint(endpoint, template::REGION).await
}

/// An S3 client for `aws`: path-style addressing, which the emulator on 127.0.0.1 needs.
pub fn s3_client(aws: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn free_port() -> Result<u16, StartError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("a free port"))?;
    Ok(listener.local_addr().map_err(io("a free port"))?.port())
}

/// The HTTP API's default JWT authorizer, whose issuer and audience dev tokens carry.
fn default_authorizer(model: &template::Model) -> JwtAuthorizer {
    model
        .authorizers
        .values()
        .next()
        .cloned()
        .unwrap_or_else(|| JwtAuthorizer {
            issuer: String::new(),
            audience: Vec::new(),
            header: "authorization".into(),
        })
}
