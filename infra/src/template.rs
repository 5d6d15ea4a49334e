//! Reads template.yaml the way CloudFormation and SAM would, far enough to build the local
//! cloud from it: parameters with their defaults, conditions, the intrinsic functions Pulse's
//! template uses, and a typed model of the tables, buckets, topics, HTTP API, WebSocket API
//! and functions with their triggers.
//!
//! It is strict: a resource type, a function event type or an intrinsic function it does not
//! know is an error, not something silently skipped, so the local cloud never serves less than
//! the template declares without saying so.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// Name of the local stack; prefixes every physical name.
pub const STACK: &str = "pulse-local";
/// Region the local cloud pretends to be in.
pub const REGION: &str = "us-east-1";
/// moto's default account id.
pub const ACCOUNT: &str = "123456789012";

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template.yaml: {0}")]
    Invalid(String),
    #[error("template.yaml: resource {id} has type {kind}, which the local cloud does not emulate")]
    UnknownResource { id: String, kind: String },
    #[error(
        "template.yaml: function {function} has event {event} of type {kind}, which the local cloud does not emulate"
    )]
    UnknownEvent {
        function: String,
        event: String,
        kind: String,
    },
    #[error("template.yaml: {0} is not an intrinsic function the local cloud resolves")]
    UnknownIntrinsic(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// Resource types the local cloud emulates, or knows to be deploy-only (identity, CDN,
/// policies) and replaces with its own equivalent.
const KNOWN_TYPES: &[&str] = &[
    "AWS::Serverless::Function",
    "AWS::Serverless::HttpApi",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SQS::Queue",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::Lambda::Permission",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolGroup",
    "AWS::Cognito::UserPoolDomain",
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
];

/// A DynamoDB table as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    /// (attribute name, type) pairs.
    pub attributes: Vec<(String, String)>,
    /// (attribute name, HASH | RANGE) pairs.
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<Index>,
    pub ttl_attribute: Option<String>,
    pub stream_view_type: Option<String>,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

/// An HTTP API route served by a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The authorizer the route uses, or `None` for a public route.
    pub authorizer: Option<String>,
    pub scopes: Vec<String>,
    pub function: String,
}

impl Route {
    /// API Gateway's route key: `GET /api/v1/me`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A JWT authorizer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthorizer {
    pub issuer: String,
    pub audience: Vec<String>,
    /// Header the token is read from (lower-case), from `$request.header.X`.
    pub header: String,
}

/// A Lambda authorizer of the HTTP API (payload format 2.0, simple responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaAuthorizer {
    /// The logical id of the authorizer function.
    pub function: String,
    /// Identity source headers (lower-case): all must be present, or API Gateway answers 401
    /// without calling the function; their values key the cache.
    pub headers: Vec<String>,
    /// How long an answer is cached (`Identity.ReauthorizeEvery`; 0: not cached).
    pub ttl_secs: u64,
}

/// A function and the environment template.yaml gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    /// `ReservedConcurrentExecutions`: invocations past it are throttled.
    pub reserved_concurrency: Option<u32>,
}

/// A scheduled trigger (`Schedule` / `ScheduleV2` events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    pub name: String,
    pub expression: String,
    pub input: Option<String>,
}

/// A DynamoDB stream trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub function: String,
    pub table: String,
    pub batch_size: u32,
    pub batching_window_secs: u32,
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` on `eventName`: only these records reach the function (all if empty).
    pub event_names: Vec<String>,
    /// `MaximumRetryAttempts` (`None`: retry until the records expire, Lambda's default).
    pub max_retries: Option<u32>,
    /// `ParallelizationFactor`: batches of one shard in flight at once (1–10), records of one
    /// partition key kept in order.
    pub parallelization: u32,
    /// The table's partition key attribute: records of one value stay in one lane, in order.
    pub partition_key: String,
    /// `BisectBatchOnFunctionError`: a failing batch is split in two and each half retried.
    pub bisect: bool,
    /// The bucket of `DestinationConfig.OnFailure`: where a batch that exhausted its retries
    /// is recorded before the mapping moves past it.
    pub on_failure: Option<String>,
}

/// A stage's throttling: a token bucket of `burst` requests refilled at `rate` per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttling {
    pub rate: f64,
    pub burst: f64,
}

/// An SQS event source mapping: a queue's messages delivered to a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMapping {
    pub function: String,
    /// The queue's name.
    pub queue: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
}

/// A WebSocket API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    pub route_key: String,
    pub function: String,
    /// Whether the function's response body goes back to the client
    /// (`RouteResponseSelectionExpression` declared).
    pub two_way: bool,
}

/// What the local cloud builds, read from template.yaml.
#[derive(Debug, Clone)]
pub struct Model {
    pub parameters: BTreeMap<String, Value>,
    pub tables: Vec<Table>,
    pub buckets: Vec<String>,
    pub topics: Vec<String>,
    pub functions: BTreeMap<String, Function>,
    pub routes: Vec<Route>,
    pub authorizers: BTreeMap<String, JwtAuthorizer>,
    pub lambda_authorizers: BTreeMap<String, LambdaAuthorizer>,
    pub schedules: Vec<Schedule>,
    pub streams: Vec<StreamMapping>,
    /// The HTTP API stage's `DefaultRouteSettings` throttling, if declared.
    pub http_throttle: Option<Throttling>,
    /// SQS queues (names) and their event source mappings.
    pub queues: Vec<String>,
    pub queue_mappings: Vec<QueueMapping>,
    pub ws_routes: Vec<WsRoute>,
    /// The WebSocket API's route selection expression; `None` when the template has no
    /// WebSocket API.
    pub ws_route_selection: Option<String>,
    /// The WebSocket API's stage name.
    pub ws_stage: Option<String>,
}

/// Reads `path` and builds the model, with parameter `overrides` on top of the defaults.
pub fn load(path: &Path, overrides: &BTreeMap<String, String>) -> Result<Model, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, overrides)
}

/// Builds the model from template text.
pub fn parse(text: &str, overrides: &BTreeMap<String, String>) -> Result<Model, TemplateError> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    let doc = to_json(yaml)?;
    Resolver::new(&doc, overrides)?.model()
}

/// Converts YAML to JSON, turning short-form tags (`!Ref X`) into CloudFormation's long form
/// (`{"Ref": "X"}`), so the rest of the reader sees one shape.
fn to_json(value: serde_yaml_ng::Value) -> Result<Value, TemplateError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).map_err(|e| invalid(e.to_string()))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    other => serde_yaml_ng::to_string(&other)?.trim().to_owned(),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" => ("Ref".to_owned(), inner),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (res, attr) = s.split_once('.').ok_or_else(|| {
                                invalid(format!("!GetAtt {s} needs Resource.Attribute"))
                            })?;
                            Value::Array(vec![res.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), parts)
                }
                "Condition" => ("Condition".to_owned(), inner),
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, inner);
            Value::Object(out)
        }
    })
}

struct Resolver<'a> {
    doc: &'a Value,
    resources: &'a Map<String, Value>,
    parameters: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
}

impl<'a> Resolver<'a> {
    fn new(doc: &'a Value, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let resources = doc
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("no Resources"))?;
        let mut parameters = BTreeMap::new();
        if let Some(params) = doc.get("Parameters").and_then(Value::as_object) {
            for (name, decl) in params {
                let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
                let raw = match overrides.get(name) {
                    Some(v) => Value::String(v.clone()),
                    None => decl.get("Default").cloned().ok_or_else(|| {
                        invalid(format!("parameter {name} has no Default; pass a value"))
                    })?,
                };
                let value = match (kind, raw) {
                    ("CommaDelimitedList", Value::String(s)) => Value::Array(
                        s.split(',')
                            .map(|p| Value::String(p.trim().to_owned()))
                            .collect(),
                    ),
                    (_, Value::Number(n)) => Value::String(n.to_string()),
                    (_, other) => other,
                };
                parameters.insert(name.clone(), value);
            }
        }
        let mut resolver = Self {
            doc,
            resources,
            parameters,
            conditions: BTreeMap::new(),
        };
        if let Some(conds) = doc.get("Conditions").and_then(Value::as_object) {
            // Conditions may refer to earlier ones; resolve in order of declaration.
            for (name, expr) in conds {
                let v = resolver.condition(expr)?;
                resolver.conditions.insert(name.clone(), v);
            }
        }
        for (id, res) in resources {
            let kind = res.get("Type").and_then(Value::as_str).unwrap_or("");
            if !KNOWN_TYPES.contains(&kind) {
                return Err(TemplateError::UnknownResource {
                    id: id.clone(),
                    kind: kind.to_owned(),
                });
            }
        }
        Ok(resolver)
    }

    fn condition(&self, expr: &Value) -> Result<bool, TemplateError> {
        let obj = expr
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| invalid(format!("condition {expr} is not a function")))?;
        let (name, arg) = obj
            .iter()
            .next()
            .ok_or_else(|| invalid("empty condition"))?;
        let args = || {
            arg.as_array()
                .ok_or_else(|| invalid(format!("{name} takes a list")))
        };
        match name.as_str() {
            "Fn::Equals" => {
                let a = args()?;
                if a.len() != 2 {
                    return Err(invalid("Fn::Equals takes two values"));
                }
                Ok(self.resolve(&a[0])? == self.resolve(&a[1])?)
            }
            "Fn::Not" => Ok(!self.condition(args()?.first().ok_or_else(|| invalid("Fn::Not"))?)?),
            "Fn::And" => args()?
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.condition(c)?)),
            "Fn::Or" => args()?
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.condition(c)?)),
            "Condition" => self.named_condition(arg),
            other => Err(TemplateError::UnknownIntrinsic(other.to_owned())),
        }
    }

    fn named_condition(&self, name: &Value) -> Result<bool, TemplateError> {
        let name = name.as_str().ok_or_else(|| invalid("condition name"))?;
        self.conditions
            .get(name)
            .copied()
            .ok_or_else(|| invalid(format!("unknown condition {name}")))
    }

    /// Whether a resource exists (its `Condition`, if any, holds).
    fn exists(&self, id: &str) -> Result<bool, TemplateError> {
        match self.resources.get(id).and_then(|r| r.get("Condition")) {
            None => Ok(self.resources.contains_key(id)),
            Some(c) => self.named_condition(c),
        }
    }

    fn resource_type(&self, id: &str) -> Option<&str> {
        self.resources.get(id)?.get("Type")?.as_str()
    }

    /// The local physical id of `Ref` to a resource.
    fn reference(&self, id: &str) -> Result<Value, TemplateError> {
        if let Some(p) = self.parameters.get(id) {
            return Ok(p.clone());
        }
        let pseudo = match id {
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT.to_owned()),
            "AWS::StackName" => Some(STACK.to_owned()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::NoValue" => return Ok(Value::Null),
            _ => None,
        };
        if let Some(v) = pseudo {
            return Ok(Value::String(v));
        }
        let kind = self
            .resource_type(id)
            .ok_or_else(|| invalid(format!("Ref to unknown {id}")))?;
        let name = match kind {
            "AWS::DynamoDB::Table" => format!("{STACK}-{id}"),
            "AWS::S3::Bucket" => format!("{STACK}-{}", id.to_lowercase()),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-{id}"),
            "AWS::Cognito::UserPool" => format!("{REGION}_pulselocal"),
            "AWS::Cognito::UserPoolClient" => "pulse-local-dashboard".to_owned(),
            "AWS::ApiGatewayV2::Stage" => self
                .resources
                .get(id)
                .and_then(|r| r.pointer("/Properties/StageName"))
                .map(|v| self.resolve(v))
                .transpose()?
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "$default".to_owned()),
            _ => format!("{STACK}-{id}"),
        };
        Ok(Value::String(name))
    }

    fn attribute(&self, id: &str, attr: &str) -> Result<Value, TemplateError> {
        let kind = self
            .resource_type(id)
            .ok_or_else(|| invalid(format!("GetAtt of unknown {id}")))?;
        let name = self.reference(id)?;
        let name = name.as_str().unwrap_or(id);
        let v = match (kind, attr) {
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
            }
            ("AWS::DynamoDB::Table", "StreamArn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/local")
            }
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::S3::Bucket", "RegionalDomainName") => {
                format!("{name}.s3.{REGION}.amazonaws.com")
            }
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
            }
            ("AWS::CloudFront::Distribution", "DomainName") => "127.0.0.1".to_owned(),
            ("AWS::SNS::Topic", "TopicArn") => name.to_owned(),
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            ("AWS::SQS::Queue", "QueueName") => name.to_owned(),
            (_, "Id") => name.to_owned(),
            _ => return Err(invalid(format!("GetAtt {id}.{attr} is not emulated"))),
        };
        Ok(Value::String(v))
    }

    /// Resolves every intrinsic function in `value`.
    fn resolve(&self, value: &Value) -> Result<Value, TemplateError> {
        match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(obj) if obj.len() == 1 => {
                let (name, arg) = obj.iter().next().ok_or_else(|| invalid("empty object"))?;
                match name.as_str() {
                    "Ref" => {
                        self.reference(arg.as_str().ok_or_else(|| invalid("Ref needs a name"))?)
                    }
                    "Fn::GetAtt" => {
                        let parts: Vec<&str> = arg
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        match parts.as_slice() {
                            [id, attr] => self.attribute(id, attr),
                            _ => Err(invalid(format!("GetAtt {arg}"))),
                        }
                    }
                    "Fn::Sub" => self.sub(arg),
                    "Fn::If" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 3)
                            .ok_or_else(|| invalid("Fn::If takes three values"))?;
                        let branch = if self.named_condition(&a[0])? {
                            &a[1]
                        } else {
                            &a[2]
                        };
                        self.resolve(branch)
                    }
                    "Fn::Join" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| invalid("Fn::Join takes two values"))?;
                        let sep = a[0].as_str().unwrap_or("");
                        let parts = self.resolve(&a[1])?;
                        let parts: Vec<String> = parts
                            .as_array()
                            .map(|p| p.iter().map(scalar).collect())
                            .unwrap_or_default();
                        Ok(Value::String(parts.join(sep)))
                    }
                    n if n.starts_with("Fn::") => {
                        Err(TemplateError::UnknownIntrinsic(n.to_owned()))
                    }
                    _ => Ok(Value::Object(self.resolve_map(obj)?)),
                }
            }
            Value::Object(obj) => Ok(Value::Object(self.resolve_map(obj)?)),
            other => Ok(other.clone()),
        }
    }

    fn resolve_map(&self, obj: &Map<String, Value>) -> Result<Map<String, Value>, TemplateError> {
        obj.iter()
            .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
            .collect()
    }

    /// `Fn::Sub` with `${Name}`, `${Resource.Attr}` and `${!Literal}`.
    fn sub(&self, arg: &Value) -> Result<Value, TemplateError> {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(a) if a.len() == 2 => (
                a[0].as_str().ok_or_else(|| invalid("Fn::Sub text"))?,
                self.resolve(&a[1])?
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => return Err(invalid("Fn::Sub takes a string or [string, map]")),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(format!("unclosed ${{ in {text}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&scalar(v));
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&scalar(&self.attribute(id, attr)?));
            } else {
                out.push_str(&scalar(&self.reference(name)?));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn props(&self, id: &str) -> Result<Value, TemplateError> {
        let raw = self
            .resources
            .get(id)
            .and_then(|r| r.get("Properties"))
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        self.resolve(&raw)
    }

    /// The logical id of the function whose ARN is `arn`.
    fn function_of_arn(&self, arn: &str) -> Result<Option<String>, TemplateError> {
        for id in self.ids_of("AWS::Serverless::Function")? {
            if scalar(&self.attribute(&id, "Arn")?) == arn {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn ids_of(&self, kind: &str) -> Result<Vec<String>, TemplateError> {
        let mut out = Vec::new();
        for (id, res) in self.resources {
            if res.get("Type").and_then(Value::as_str) == Some(kind) && self.exists(id)? {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    fn model(&self) -> Result<Model, TemplateError> {
        let mut tables = Vec::new();
        for id in self.ids_of("AWS::DynamoDB::Table")? {
            tables.push(self.table(&id)?);
        }
        let buckets = self
            .ids_of("AWS::S3::Bucket")?
            .iter()
            .map(|id| self.reference(id).map(|v| scalar(&v)))
            .collect::<Result<_, _>>()?;
        let topics = self
            .ids_of("AWS::SNS::Topic")?
            .iter()
            .map(|id| self.reference(id).map(|v| scalar(&v)))
            .collect::<Result<_, _>>()?;
        let queues = self
            .ids_of("AWS::SQS::Queue")?
            .iter()
            .map(|id| self.reference(id).map(|v| scalar(&v)))
            .collect::<Result<_, _>>()?;

        let http_apis = self.ids_of("AWS::Serverless::HttpApi")?;
        let mut authorizers = BTreeMap::new();
        let mut lambda_authorizers = BTreeMap::new();
        let mut default_authorizer: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut http_throttle = None;
        for api in &http_apis {
            let props = self.props(api)?;
            if let Some(settings) = props.get("DefaultRouteSettings") {
                let number = |k: &str| {
                    settings
                        .get(k)
                        .map(scalar)
                        .and_then(|v| v.parse::<f64>().ok())
                };
                if let (Some(rate), Some(burst)) = (
                    number("ThrottlingRateLimit"),
                    number("ThrottlingBurstLimit"),
                ) {
                    http_throttle = Some(Throttling { rate, burst });
                }
            }
            let auth = props.get("Auth");
            default_authorizer.insert(
                api.clone(),
                auth.and_then(|a| a.get("DefaultAuthorizer"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
            if let Some(list) = auth
                .and_then(|a| a.get("Authorizers"))
                .and_then(Value::as_object)
            {
                for (name, decl) in list {
                    if let Some(arn) = decl.get("FunctionArn") {
                        let function = self.function_of_arn(&scalar(arn))?.ok_or_else(|| {
                            invalid(format!(
                                "authorizer {name}: FunctionArn is not a function of this template"
                            ))
                        })?;
                        lambda_authorizers
                            .insert(name.clone(), lambda_authorizer(name, decl, function)?);
                    } else {
                        authorizers.insert(name.clone(), jwt_authorizer(name, decl)?);
                    }
                }
            }
        }

        let mut functions = BTreeMap::new();
        let mut routes = Vec::new();
        let mut schedules = Vec::new();
        let mut streams = Vec::new();
        let mut queue_mappings = Vec::new();
        let globals_env = self.globals_environment()?;
        for id in self.ids_of("AWS::Serverless::Function")? {
            let res = &self.resources[&id];
            let binary = res
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(format!(
                        "function {id} has no Metadata.BuildProperties.Binary"
                    ))
                })?
                .to_owned();
            if res.pointer("/Metadata/BuildMethod").and_then(Value::as_str)
                != Some("rust-cargolambda")
            {
                return Err(invalid(format!(
                    "function {id} is not built with rust-cargolambda"
                )));
            }
            let props = self.props(&id)?;
            let mut environment = globals_env.clone();
            if let Some(vars) = props
                .pointer("/Environment/Variables")
                .and_then(Value::as_object)
            {
                for (k, v) in vars {
                    environment.insert(k.clone(), scalar(v));
                }
            }
            if let Some(events) = props.get("Events").and_then(Value::as_object) {
                for (name, event) in events {
                    let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
                    let ep = event.get("Properties").cloned().unwrap_or(Value::Null);
                    match kind {
                        "HttpApi" => routes.push(
                            self.route(
                                &id,
                                name,
                                &ep,
                                &http_apis,
                                &default_authorizer,
                                &authorizers
                                    .keys()
                                    .chain(lambda_authorizers.keys())
                                    .cloned()
                                    .collect(),
                            )?,
                        ),
                        "Schedule" | "ScheduleV2" => schedules.push(Schedule {
                            function: id.clone(),
                            name: name.clone(),
                            expression: ep
                                .get("Schedule")
                                .or_else(|| ep.get("ScheduleExpression"))
                                .and_then(Value::as_str)
                                .ok_or_else(|| {
                                    invalid(format!("{id}.{name}: no schedule expression"))
                                })?
                                .to_owned(),
                            input: ep.get("Input").map(scalar),
                        }),
                        "DynamoDB" => streams.push(self.stream(&id, name, &ep, &tables)?),
                        "SQS" => queue_mappings.push(self.queue_mapping(&id, name, &ep)?),
                        other => {
                            return Err(TemplateError::UnknownEvent {
                                function: id.clone(),
                                event: name.clone(),
                                kind: other.to_owned(),
                            });
                        }
                    }
                }
            }
            functions.insert(
                id.clone(),
                Function {
                    logical_id: id.clone(),
                    binary,
                    environment,
                    reserved_concurrency: props
                        .get("ReservedConcurrentExecutions")
                        .and_then(|v| scalar(v).parse().ok()),
                },
            );
        }

        let (ws_routes, ws_route_selection) = self.websocket()?;
        let ws_stage = self
            .ids_of("AWS::ApiGatewayV2::Stage")?
            .first()
            .map(|id| self.reference(id).map(|v| scalar(&v)))
            .transpose()?;
        Ok(Model {
            parameters: self.parameters.clone(),
            tables,
            buckets,
            topics,
            functions,
            routes,
            authorizers,
            lambda_authorizers,
            schedules,
            streams,
            queues,
            queue_mappings,
            http_throttle,
            ws_routes,
            ws_route_selection,
            ws_stage,
        })
    }

    fn globals_environment(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let vars = match self.doc.pointer("/Globals/Function/Environment/Variables") {
            Some(v) => self.resolve(v)?,
            None => return Ok(BTreeMap::new()),
        };
        Ok(vars
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
            .unwrap_or_default())
    }

    fn table(&self, id: &str) -> Result<Table, TemplateError> {
        let p = self.props(id)?;
        let pairs = |v: Option<&Value>, a: &str, b: &str| -> Vec<(String, String)> {
            v.and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| (scalar(&i[a]), scalar(&i[b])))
                        .collect()
                })
                .unwrap_or_default()
        };
        let indexes = p
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|g| Index {
                        name: scalar(&g["IndexName"]),
                        key_schema: pairs(g.get("KeySchema"), "AttributeName", "KeyType"),
                        projection: scalar(&g["Projection"]["ProjectionType"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ttl = p
            .get("TimeToLiveSpecification")
            .filter(|t| t.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
            .map(|t| scalar(&t["AttributeName"]));
        Ok(Table {
            logical_id: id.to_owned(),
            name: scalar(&self.reference(id)?),
            attributes: pairs(
                p.get("AttributeDefinitions"),
                "AttributeName",
                "AttributeType",
            ),
            key_schema: pairs(p.get("KeySchema"), "AttributeName", "KeyType"),
            indexes,
            ttl_attribute: ttl,
            stream_view_type: p.pointer("/StreamSpecification/StreamViewType").map(scalar),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        function: &str,
        event: &str,
        p: &Value,
        apis: &[String],
        defaults: &BTreeMap<String, Option<String>>,
        authorizers: &std::collections::BTreeSet<String>,
    ) -> Result<Route, TemplateError> {
        let api = p
            .get("ApiId")
            .map(scalar)
            .ok_or_else(|| invalid(format!("{function}.{event}: HttpApi event without ApiId")))?;
        let api_id = apis
            .iter()
            .find(|id| {
                self.reference(id)
                    .map(|r| scalar(&r) == api)
                    .unwrap_or(false)
            })
            .ok_or_else(|| {
                invalid(format!(
                    "{function}.{event}: ApiId is not an HttpApi of this template"
                ))
            })?;
        let method = p
            .get("Method")
            .map(scalar)
            .unwrap_or_else(|| "ANY".into())
            .to_uppercase();
        let path = p
            .get("Path")
            .map(scalar)
            .ok_or_else(|| invalid(format!("{function}.{event}: HttpApi event without Path")))?;
        let named = p.pointer("/Auth/Authorizer").map(scalar);
        let authorizer = match named.as_deref() {
            Some("NONE") => None,
            Some(name) => Some(name.to_owned()),
            None => defaults.get(api_id).cloned().flatten(),
        };
        if let Some(name) = authorizer.as_ref().filter(|n| !authorizers.contains(*n)) {
            return Err(invalid(format!(
                "{function}.{event}: authorizer {name} is not declared"
            )));
        }
        let scopes = p
            .pointer("/Auth/AuthorizationScopes")
            .and_then(Value::as_array)
            .map(|s| s.iter().map(scalar).collect())
            .unwrap_or_default();
        Ok(Route {
            method,
            path,
            authorizer,
            scopes,
            function: function.to_owned(),
        })
    }

    fn stream(
        &self,
        function: &str,
        event: &str,
        p: &Value,
        tables: &[Table],
    ) -> Result<StreamMapping, TemplateError> {
        let arn = p.get("Stream").map(scalar).unwrap_or_default();
        let table = tables
            .iter()
            .find(|t| arn.contains(&format!("table/{}/stream", t.name)))
            .ok_or_else(|| {
                invalid(format!(
                    "{function}.{event}: Stream is not a table of this template"
                ))
            })?;
        let number = |k: &str, d: u32| {
            p.get(k)
                .map(scalar)
                .and_then(|s| s.parse().ok())
                .unwrap_or(d)
        };
        let failures = p
            .get("FunctionResponseTypes")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
        let mut event_names = Vec::new();
        for filter in p
            .pointer("/FilterCriteria/Filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pattern: Value =
                serde_json::from_str(&scalar(&filter["Pattern"])).map_err(|e| {
                    invalid(format!(
                        "{function}.{event}: filter pattern is not JSON: {e}"
                    ))
                })?;
            let names = pattern
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.get("eventName"))
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    invalid(format!(
                        "{function}.{event}: only {{\"eventName\": [...]}} filters are emulated"
                    ))
                })?;
            event_names.extend(names.iter().map(scalar));
        }
        let known = [
            "Stream",
            "StartingPosition",
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "MaximumRetryAttempts",
            "BisectBatchOnFunctionError",
            "ParallelizationFactor",
            "DestinationConfig",
            "FunctionResponseTypes",
            "FilterCriteria",
        ];
        if let Some(k) = p
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
        {
            return Err(invalid(format!(
                "{function}.{event}: {k} is not emulated for DynamoDB streams"
            )));
        }
        // On-failure destination: an S3 bucket of this template (SQS and SNS are not emulated).
        let on_failure = match p.pointer("/DestinationConfig/OnFailure/Destination") {
            None => None,
            Some(d) => {
                let arn = scalar(d);
                let bucket = arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
                    invalid(format!(
                        "{function}.{event}: only an S3 bucket is emulated as the on-failure destination, not {arn}"
                    ))
                })?;
                Some(bucket.to_owned())
            }
        };
        Ok(StreamMapping {
            function: function.to_owned(),
            table: table.name.clone(),
            batch_size: number("BatchSize", 100),
            batching_window_secs: number("MaximumBatchingWindowInSeconds", 0),
            report_batch_item_failures: failures,
            event_names,
            // Lambda's default for streams is -1: retry until the record expires.
            max_retries: p
                .get("MaximumRetryAttempts")
                .map(scalar)
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|n| u32::try_from(n).ok()),
            parallelization: number("ParallelizationFactor", 1).clamp(1, 10),
            partition_key: table
                .key_schema
                .iter()
                .find(|(_, kind)| kind == "HASH")
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            bisect: p
                .get("BisectBatchOnFunctionError")
                .is_some_and(|v| scalar(v) == "true"),
            on_failure,
        })
    }

    fn queue_mapping(
        &self,
        function: &str,
        event: &str,
        p: &Value,
    ) -> Result<QueueMapping, TemplateError> {
        let known = [
            "Queue",
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "FunctionResponseTypes",
            "Enabled",
        ];
        if let Some(k) = p
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
        {
            return Err(invalid(format!(
                "{function}.{event}: {k} is not emulated for SQS event sources"
            )));
        }
        let arn = p.get("Queue").map(scalar).unwrap_or_default();
        let queue = arn
            .strip_prefix(&format!("arn:aws:sqs:{REGION}:{ACCOUNT}:"))
            .ok_or_else(|| {
                invalid(format!(
                    "{function}.{event}: Queue is not a queue of this template"
                ))
            })?
            .to_owned();
        Ok(QueueMapping {
            function: function.to_owned(),
            queue,
            batch_size: p
                .get("BatchSize")
                .map(scalar)
                .and_then(|s| s.parse().ok())
                .unwrap_or(10),
            report_batch_item_failures: p
                .get("FunctionResponseTypes")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures")),
        })
    }

    fn websocket(&self) -> Result<(Vec<WsRoute>, Option<String>), TemplateError> {
        let mut selection = None;
        for id in self.ids_of("AWS::ApiGatewayV2::Api")? {
            let p = self.props(&id)?;
            if scalar(&p["ProtocolType"]) != "WEBSOCKET" {
                return Err(invalid(format!(
                    "{id}: only WEBSOCKET ApiGatewayV2 APIs are emulated (HTTP APIs are AWS::Serverless::HttpApi)"
                )));
            }
            selection = p.get("RouteSelectionExpression").map(scalar);
        }
        let mut routes = Vec::new();
        for id in self.ids_of("AWS::ApiGatewayV2::Route")? {
            let p = self.props(&id)?;
            let target = scalar(&p["Target"]);
            let integration = target.trim_start_matches("integrations/");
            let uri = self
                .ids_of("AWS::ApiGatewayV2::Integration")?
                .into_iter()
                .find(|i| {
                    self.reference(i)
                        .map(|r| scalar(&r) == integration)
                        .unwrap_or(false)
                })
                .map(|i| self.props(&i))
                .transpose()?
                .and_then(|ip| ip.get("IntegrationUri").map(scalar))
                .ok_or_else(|| {
                    invalid(format!(
                        "{id}: Target is not an integration of this template"
                    ))
                })?;
            let function = self
                .ids_of("AWS::Serverless::Function")?
                .into_iter()
                .find(|f| {
                    self.attribute(f, "Arn")
                        .map(|arn| uri.contains(&format!("{}/", scalar(&arn))))
                        .unwrap_or(false)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "{id}: integration does not invoke a function of this template"
                    ))
                })?;
            routes.push(WsRoute {
                route_key: scalar(&p["RouteKey"]),
                function,
                two_way: p.get("RouteResponseSelectionExpression").is_some(),
            });
        }
        Ok((routes, selection))
    }
}

fn lambda_authorizer(
    name: &str,
    decl: &Value,
    function: String,
) -> Result<LambdaAuthorizer, TemplateError> {
    let version = decl
        .get("AuthorizerPayloadFormatVersion")
        .map(scalar)
        .unwrap_or_default();
    if version != "2.0" && version != "2" {
        return Err(invalid(format!(
            "authorizer {name}: only AuthorizerPayloadFormatVersion 2.0 is emulated"
        )));
    }
    if decl.get("EnableSimpleResponses") != Some(&Value::Bool(true)) {
        return Err(invalid(format!(
            "authorizer {name}: only simple responses (EnableSimpleResponses: true) are emulated"
        )));
    }
    let identity = decl.get("Identity");
    let headers: Vec<String> = identity
        .and_then(|i| i.get("Headers"))
        .and_then(Value::as_array)
        .map(|h| h.iter().map(|v| scalar(v).to_lowercase()).collect())
        .unwrap_or_default();
    if headers.is_empty() {
        return Err(invalid(format!(
            "authorizer {name}: declare Identity.Headers (a cache needs an identity source)"
        )));
    }
    let ttl_secs = match identity.and_then(|i| i.get("ReauthorizeEvery")) {
        None => 300,
        Some(v) => scalar(v).parse().map_err(|_| {
            invalid(format!(
                "authorizer {name}: ReauthorizeEvery is not a number of seconds"
            ))
        })?,
    };
    Ok(LambdaAuthorizer {
        function,
        headers,
        ttl_secs,
    })
}

fn jwt_authorizer(name: &str, decl: &Value) -> Result<JwtAuthorizer, TemplateError> {
    let cfg = decl.get("JwtConfiguration").ok_or_else(|| {
        invalid(format!(
            "authorizer {name}: only JWT authorizers are emulated"
        ))
    })?;
    let issuer = cfg.get("issuer").map(scalar).unwrap_or_default();
    let audience = cfg
        .get("audience")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(scalar).collect())
        .unwrap_or_default();
    let source = decl
        .get("IdentitySource")
        .map(scalar)
        .unwrap_or_else(|| "$request.header.Authorization".into());
    let header = source
        .strip_prefix("$request.header.")
        .ok_or_else(|| {
            invalid(format!(
                "authorizer {name}: identity source {source} is not a header"
            ))
        })?
        .to_lowercase();
    Ok(JwtAuthorizer {
        issuer,
        audience,
        header,
    })
}

/// A scalar as CloudFormation would stringify it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
Parameters:
  Stage: {Type: String, Default: dev}
  Origins: {Type: CommaDelimitedList, Default: "a,b"}
  Issuer: {Type: String, Default: ""}
Conditions:
  UseLocal: !Equals [!Ref Issuer, ""]
Globals:
  Function:
    Environment:
      Variables:
        STAGE: !Ref Stage
        TABLE: !Ref Things
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Jwt
        Authorizers:
          Jwt:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !If [UseLocal, !Sub "https://issuer/${AWS::Region}", !Ref Issuer]
              audience: [aud]
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: fn-bin}}
    Properties:
      Environment:
        Variables:
          ARN: !GetAtt Things.Arn
      Events:
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: "/x/{id}", Method: get}}
        Open: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /open, Method: GET, Auth: {Authorizer: NONE}}}
        Tick: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
        Stream: {Type: DynamoDB, Properties: {Stream: !GetAtt Things.StreamArn, BatchSize: 50, StartingPosition: LATEST, FunctionResponseTypes: [ReportBatchItemFailures]}}
"#;

    #[test]
    fn resolves_globals_intrinsics_conditions_and_triggers() {
        let m = parse(BASE, &BTreeMap::new()).expect("parses");
        let f = &m.functions["Fn"];
        assert_eq!(f.binary, "fn-bin");
        assert_eq!(f.environment["STAGE"], "dev");
        assert_eq!(f.environment["TABLE"], "pulse-local-Things");
        assert_eq!(
            f.environment["ARN"],
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pulse-local-Things")
        );
        assert_eq!(m.authorizers["Jwt"].issuer, "https://issuer/us-east-1");
        assert_eq!(m.parameters["Origins"], serde_json::json!(["a", "b"]));
        let get = m
            .routes
            .iter()
            .find(|r| r.path == "/x/{id}")
            .expect("route");
        assert_eq!(
            (get.method.as_str(), get.authorizer.as_deref()),
            ("GET", Some("Jwt"))
        );
        let open = m.routes.iter().find(|r| r.path == "/open").expect("route");
        assert_eq!(open.authorizer, None);
        assert_eq!(m.schedules[0].expression, "rate(1 minute)");
        assert_eq!(m.streams[0].table, "pulse-local-Things");
        assert_eq!(m.streams[0].batch_size, 50);
        assert!(m.streams[0].report_batch_item_failures);
    }

    #[test]
    fn parameter_overrides_flip_conditions() {
        let overrides = BTreeMap::from([("Issuer".to_owned(), "https://idp.example".to_owned())]);
        let m = parse(BASE, &overrides).expect("parses");
        assert_eq!(m.authorizers["Jwt"].issuer, "https://idp.example");
    }

    #[test]
    fn unknown_resource_types_are_refused() {
        let text = format!("{BASE}  Stream:\n    Type: AWS::Kinesis::Stream\n");
        let err = parse(&text, &BTreeMap::new()).expect_err("Kinesis is not emulated");
        assert!(
            matches!(err, TemplateError::UnknownResource { ref kind, .. } if kind == "AWS::Kinesis::Stream"),
            "{err}"
        );
    }

    #[test]
    fn unknown_event_types_are_refused() {
        let text = BASE.replace("Type: Schedule,", "Type: Kinesis,");
        let err = parse(&text, &BTreeMap::new()).expect_err("Kinesis events are not emulated");
        assert!(
            matches!(err, TemplateError::UnknownEvent { ref kind, .. } if kind == "Kinesis"),
            "{err}"
        );
    }

    #[test]
    fn a_route_naming_an_undeclared_authorizer_is_refused() {
        let text = BASE.replace("Auth: {Authorizer: NONE}", "Auth: {Authorizer: Missing}");
        assert!(parse(&text, &BTreeMap::new()).is_err());
    }

    #[test]
    fn unknown_intrinsics_are_refused() {
        let text = BASE.replace("!Ref Stage", "!Select [0, [a]]");
        let err = parse(&text, &BTreeMap::new()).expect_err("Select is not resolved");
        assert!(matches!(err, TemplateError::UnknownIntrinsic(_)), "{err}");
    }

    #[test]
    fn the_project_template_reads_without_error() {
        let m = load(
            &crate::default_root().join("template.yaml"),
            &BTreeMap::new(),
        )
        .expect("template.yaml");
        assert_eq!(m.tables.len(), 3);
        assert!(
            m.routes
                .iter()
                .any(|r| r.key() == "GET /api/v1/health" && r.authorizer.is_none())
        );
        assert!(
            m.routes
                .iter()
                .any(|r| r.key() == "GET /api/v1/me" && r.authorizer.is_some())
        );
        assert_eq!(
            m.ws_route_selection.as_deref(),
            Some("$request.body.action")
        );
    }
}
