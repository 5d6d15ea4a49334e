//! The event model: what enters Pulse, parsed at the edge into domain types.
//!
//! A batch is `{"events": [ ... ]}`; each event names its `kind` and carries the fields of that
//! kind. [`parse_batch`] checks every event against the [`Limits`] and collects *every* problem
//! with a JSON pointer before anything is stored, so a rejected batch stores nothing and the
//! client learns all that is wrong at once. Unknown fields are errors: a typo such as
//! `lattency_ms` would otherwise be silently dropped.

use pulse_core::error::ApiError;
use pulse_core::identity::TenantId;
use pulse_core::problem::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

pub use pulse_core::limits::Limits;

/// A line item of an order or checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// What an event is, with the fields of its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A named sample of a measured quantity.
    Metric {
        value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    /// A custom event with scalar properties and an optional value.
    Event {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        properties: Map<String, Value>,
    },
    PageView {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referrer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ApiRequest {
        route: String,
        method: String,
        status: u16,
        latency_ms: f64,
    },
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
    },
    TaskExecution {
        task_id: String,
        task_type: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_percent: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_mb: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_message: Option<String>,
    },
    MlJob {
        pipeline: String,
        provider: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<f64>,
    },
    Order {
        order_id: String,
        revenue: f64,
        currency: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        items: Vec<Item>,
    },
    ProductView {
        product: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<f64>,
    },
    AddToCart {
        product: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
        quantity: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<f64>,
    },
    Checkout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cart_value: Option<f64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        items: Vec<Item>,
    },
}

/// The kinds, as clients name them.
pub const KINDS: &[&str] = &[
    "metric",
    "event",
    "page_view",
    "api_request",
    "error",
    "task_execution",
    "ml_job",
    "order",
    "product_view",
    "add_to_cart",
    "checkout",
];

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-supplied (retries rewrite the same item) or a generated UUIDv7.
    pub id: String,
    pub tenant: TenantId,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    /// The metric or event name; typed kinds default to their kind.
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// A pseudonymous visitor id, never an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Whether the client chose the id. A resend of such an event is the same event whatever
    /// its time (a resend without a timestamp gets a new receive time), so the writer claims
    /// the id first and stores the event at the time of its first claim. Not stored.
    #[serde(skip)]
    pub supplied_id: bool,
    /// Whether a history import wrote the stored event (its raw item's flag): the import
    /// merged it into every resolution itself. Not part of the stored event.
    #[serde(skip)]
    pub imported: bool,
    #[serde(flatten)]
    pub body: Body,
}

impl Event {
    /// The kind, as clients name it.
    pub fn kind(&self) -> &'static str {
        match self.body {
            Body::Metric { .. } => "metric",
            Body::Event { .. } => "event",
            Body::PageView { .. } => "page_view",
            Body::ApiRequest { .. } => "api_request",
            Body::Error { .. } => "error",
            Body::TaskExecution { .. } => "task_execution",
            Body::MlJob { .. } => "ml_job",
            Body::Order { .. } => "order",
            Body::ProductView { .. } => "product_view",
            Body::AddToCart { .. } => "add_to_cart",
            Body::Checkout { .. } => "checkout",
        }
    }
}

/// Who sent a batch and when: what the parser adds to every event.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub tenant: &'a TenantId,
    pub now_ms: i64,
    pub correlation_id: Option<&'a str>,
    pub limits: &'a Limits,
}

/// Parses a batch body into events, or the problem that lists everything wrong with it.
pub fn parse_batch(body: &[u8], ctx: &Context<'_>) -> Result<Vec<Event>, ApiError> {
    if body.len() > ctx.limits.max_body_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; a batch is at most {} bytes",
            body.len(),
            ctx.limits.max_body_bytes
        )));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| ApiError::Validation {
        detail: format!("the body is not valid JSON: {e}"),
        errors: vec![FieldError::at::<&str>(
            &[],
            format!("malformed JSON at line {} column {}", e.line(), e.column()),
        )],
    })?;
    let Some(top) = doc.as_object() else {
        return Err(ApiError::invalid_field::<&str>(
            &[],
            "the body must be an object {\"events\": [...]}",
        ));
    };
    let Some(list) = top.get("events").and_then(Value::as_array) else {
        return Err(ApiError::invalid_field(
            &["events"],
            "required: an array of events",
        ));
    };
    if list.len() > ctx.limits.max_events {
        return Err(ApiError::PayloadTooLarge(format!(
            "the batch has {} events; a batch is at most {}",
            list.len(),
            ctx.limits.max_events
        )));
    }
    if list.is_empty() {
        return Err(ApiError::invalid_field(&["events"], "the batch is empty"));
    }
    let mut errors = Vec::new();
    if let Some(extra) = top.keys().find(|k| k.as_str() != "events") {
        errors.push(FieldError::at(&[extra.as_str()], "unknown field"));
    }
    parse_events(list, ctx, errors)
}

/// Parses `list` (the events of a batch or an import) into events, or one problem listing
/// every bad field of every event (`#/events/{index}/...`), plus any `errors` found before.
pub fn parse_events(
    list: &[Value],
    ctx: &Context<'_>,
    mut errors: Vec<FieldError>,
) -> Result<Vec<Event>, ApiError> {
    let mut events = Vec::with_capacity(list.len());
    let mut ids = BTreeSet::new();
    for (i, raw) in list.iter().enumerate() {
        let index = i.to_string();
        let before = errors.len();
        let parsed = parse_event(raw, &index, ctx, &mut errors);
        if let Some(event) = parsed.filter(|_| errors.len() == before) {
            if !ids.insert(event.id.clone()) {
                errors.push(FieldError::at(
                    &["events", &index, "id"],
                    "duplicate id in this batch",
                ));
            }
            events.push(event);
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        let bad: BTreeSet<&str> = errors
            .iter()
            .filter_map(|e| e.pointer.strip_prefix("#/events/")?.split('/').next())
            .collect();
        Err(ApiError::Validation {
            detail: format!(
                "{} of {} events are invalid ({} problems); nothing was stored",
                bad.len(),
                list.len(),
                errors.len()
            ),
            errors,
        })
    }
}

fn parse_event(
    raw: &Value,
    index: &str,
    ctx: &Context<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Event> {
    let Some(obj) = raw.as_object() else {
        errors.push(FieldError::at(&["events", index], "an event is an object"));
        return None;
    };
    let mut r = Reader {
        obj,
        index,
        errors,
        seen: Vec::with_capacity(obj.len()),
        limits: ctx.limits,
    };
    let kind = r.string("kind", true, 32);
    let kind = match kind.as_deref() {
        Some(k) if KINDS.contains(&k) => k.to_owned(),
        Some(k) => {
            r.error(
                "kind",
                format!("unknown kind {k:?}; one of {}", KINDS.join(", ")),
            );
            return None;
        }
        None => return None,
    };
    let (id, supplied_id) = match r.string("id", false, 64) {
        Some(id) if valid_token(&id) => (id, true),
        Some(_) => {
            r.error(
                "id",
                "1 to 64 characters of letters, digits, '.', '_', ':' and '-'",
            );
            (String::new(), true)
        }
        None => (uuid::Uuid::now_v7().to_string(), false),
    };
    let timestamp_ms = r.timestamp(ctx);
    let needs_name = matches!(kind.as_str(), "metric" | "event");
    let name = match r.string("name", needs_name, ctx.limits.max_name_len) {
        Some(n) => match check_name(&n, ctx.limits.max_name_len) {
            Ok(()) => n,
            Err(detail) => {
                r.error("name", detail);
                String::new()
            }
        },
        None => kind.clone(),
    };
    let tags = r.tags();
    let visitor = r.string("visitor", false, 128);
    let limit = ctx.limits.max_text_len;
    let nonneg = 0.0..=f64::MAX;
    let body = match kind.as_str() {
        "metric" => Body::Metric {
            value: r
                .number("value", true, f64::MIN..=f64::MAX)
                .unwrap_or_default(),
            unit: r.string("unit", false, 32),
        },
        "event" => Body::Event {
            value: r.number("value", false, f64::MIN..=f64::MAX),
            properties: r.properties(),
        },
        "page_view" => {
            let path = r.string("path", true, limit).unwrap_or_default();
            if !path.is_empty() && !path.starts_with('/') {
                r.error("path", "a path starts with '/'");
            }
            Body::PageView {
                path,
                referrer: r.string("referrer", false, limit),
                title: r.string("title", false, limit),
            }
        }
        "api_request" => Body::ApiRequest {
            route: r.string("route", true, limit).unwrap_or_default(),
            method: r.method(),
            status: r.integer("status", true, 100..=599).map_or(0, |s| s as u16),
            latency_ms: r
                .number("latency_ms", true, nonneg.clone())
                .unwrap_or_default(),
        },
        "error" => Body::Error {
            message: r.string("message", true, limit).unwrap_or_default(),
            error_type: r.string("error_type", false, 128),
            route: r.string("route", false, limit),
        },
        "task_execution" => {
            let start_ms = r.instant("start", ctx);
            let end_ms = r.instant("end", ctx);
            if start_ms.zip(end_ms).is_some_and(|(s, e)| e < s) {
                r.error("end", "end is before start");
            }
            Body::TaskExecution {
                task_id: r.string("task_id", true, 128).unwrap_or_default(),
                task_type: r.string("task_type", true, 128).unwrap_or_default(),
                status: r.string("status", true, 64).unwrap_or_default(),
                start_ms,
                end_ms,
                duration_ms: r.number("duration_ms", false, nonneg.clone()),
                cpu_percent: r.number("cpu_percent", false, nonneg.clone()),
                memory_mb: r.number("memory_mb", false, nonneg.clone()),
                error_message: r.string("error_message", false, limit),
            }
        }
        "ml_job" => Body::MlJob {
            pipeline: r.string("pipeline", true, 128).unwrap_or_default(),
            provider: r.string("provider", true, 128).unwrap_or_default(),
            status: r.string("status", true, 64).unwrap_or_default(),
            duration_ms: r.number("duration_ms", false, nonneg.clone()),
            cost: r.number("cost", false, nonneg.clone()),
        },
        "order" => Body::Order {
            order_id: r.string("order_id", true, 128).unwrap_or_default(),
            revenue: r
                .number("revenue", true, nonneg.clone())
                .unwrap_or_default(),
            currency: r.currency(),
            items: r.items(),
        },
        "product_view" => Body::ProductView {
            product: r.string("product", true, 256).unwrap_or_default(),
            collection: r.string("collection", false, 256),
            price: r.number("price", false, nonneg.clone()),
        },
        "add_to_cart" => Body::AddToCart {
            product: r.string("product", true, 256).unwrap_or_default(),
            collection: r.string("collection", false, 256),
            quantity: r
                .integer("quantity", false, 1..=1_000_000)
                .map_or(1, |q| q as u32),
            price: r.number("price", false, nonneg.clone()),
        },
        "checkout" => Body::Checkout {
            cart_value: r.number("cart_value", false, nonneg),
            items: r.items(),
        },
        _ => return None,
    };
    r.unknown_fields();
    Some(Event {
        id,
        tenant: ctx.tenant.clone(),
        timestamp_ms,
        name,
        tags,
        visitor,
        correlation_id: ctx.correlation_id.map(str::to_owned),
        supplied_id,
        imported: false,
        body,
    })
}

/// Reads the fields of one event, recording each problem with its pointer.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    index: &'a str,
    errors: &'a mut Vec<FieldError>,
    seen: Vec<&'static str>,
    limits: &'a Limits,
}

impl<'a> Reader<'a> {
    fn error(&mut self, field: &str, detail: impl Into<String>) {
        self.errors
            .push(FieldError::at(&["events", self.index, field], detail));
    }

    fn get(&mut self, key: &'static str, required: bool) -> Option<&'a Value> {
        self.seen.push(key);
        let obj: &'a Map<String, Value> = self.obj;
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.errors
                        .push(FieldError::at(&["events", self.index, key], "required"));
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    fn string(&mut self, key: &'static str, required: bool, max: usize) -> Option<String> {
        let index = self.index;
        let v = self.get(key, required)?;
        let outcome = match v.as_str() {
            None => Err(format!("must be a string, not {}", type_name(v))),
            Some("") if required => Err("must not be empty".to_owned()),
            Some(s) if s.chars().count() > max => Err(format!("at most {max} characters")),
            Some(s) if s.chars().any(char::is_control) => {
                Err("control characters are not allowed".to_owned())
            }
            Some(s) => Ok(s.to_owned()),
        };
        outcome
            .map_err(|detail| {
                self.errors
                    .push(FieldError::at(&["events", index, key], detail))
            })
            .ok()
    }

    fn number(
        &mut self,
        key: &'static str,
        required: bool,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        let index = self.index;
        let v = self.get(key, required)?;
        let outcome = match v.as_f64() {
            None => Err(format!("must be a finite number, not {}", type_name(v))),
            Some(n) if !n.is_finite() => Err("must be finite".to_owned()),
            Some(n) if !storable(n) => Err(NOT_STORABLE.to_owned()),
            Some(n) if !range.contains(&n) => Err(if *range.start() == 0.0 {
                "must not be negative".to_owned()
            } else {
                format!("must be in {range:?}")
            }),
            Some(n) => Ok(n),
        };
        outcome
            .map_err(|detail| {
                self.errors
                    .push(FieldError::at(&["events", index, key], detail))
            })
            .ok()
    }

    fn integer(
        &mut self,
        key: &'static str,
        required: bool,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let index = self.index;
        let v = self.get(key, required)?;
        let outcome = match v.as_i64() {
            None => Err(format!("must be an integer, not {}", type_name(v))),
            Some(n) if !range.contains(&n) => {
                Err(format!("must be in {}..={}", range.start(), range.end()))
            }
            Some(n) => Ok(n),
        };
        outcome
            .map_err(|detail| {
                self.errors
                    .push(FieldError::at(&["events", index, key], detail))
            })
            .ok()
    }

    /// An RFC 3339 instant within the accepted window.
    fn instant(&mut self, key: &'static str, ctx: &Context<'_>) -> Option<i64> {
        let raw = self.string(key, false, 64)?;
        match chrono::DateTime::parse_from_rfc3339(&raw) {
            Err(_) => {
                self.error(
                    key,
                    "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z",
                );
                None
            }
            Ok(t) => {
                let ms = t.timestamp_millis();
                if ms < ctx.now_ms - self.limits.max_past_ms {
                    self.error(
                        key,
                        format!(
                            "is more than {} s in the past",
                            self.limits.max_past_ms / 1000
                        ),
                    );
                    None
                } else if ms > ctx.now_ms + self.limits.max_future_ms {
                    self.error(
                        key,
                        format!(
                            "is more than {} s in the future",
                            self.limits.max_future_ms / 1000
                        ),
                    );
                    None
                } else {
                    Some(ms)
                }
            }
        }
    }

    fn timestamp(&mut self, ctx: &Context<'_>) -> i64 {
        self.instant("timestamp", ctx).unwrap_or(ctx.now_ms)
    }

    fn method(&mut self) -> String {
        const METHODS: &[&str] = &[
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
        ];
        let m = self
            .string("method", true, 16)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !m.is_empty() && !METHODS.contains(&m.as_str()) {
            self.error("method", format!("one of {}", METHODS.join(", ")));
        }
        m
    }

    fn currency(&mut self) -> String {
        let c = self.string("currency", true, 3).unwrap_or_default();
        let iso = c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
        if !c.is_empty() && !iso {
            self.error(
                "currency",
                "an ISO 4217 code of three capital letters, such as EUR",
            );
        }
        c
    }

    fn tags(&mut self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let index = self.index;
        let Some(v) = self.get("tags", false) else {
            return out;
        };
        let Some(map) = v.as_object() else {
            let detail = format!("must be an object of strings, not {}", type_name(v));
            self.error("tags", detail);
            return out;
        };
        if map.len() > self.limits.max_tags {
            let detail = format!("{} tags; at most {}", map.len(), self.limits.max_tags);
            self.error("tags", detail);
            return out;
        }
        for (k, v) in map {
            let at =
                |detail: String| FieldError::at(&["events", index, "tags", k.as_str()], detail);
            if k.len() > self.limits.max_tag_key_len || !valid_tag_key(k) {
                self.errors.push(at(format!(
                    "a tag key is 1 to {} of letters, digits, '_', '.', ':' and '-', not starting with \"__\"",
                    self.limits.max_tag_key_len
                )));
                continue;
            }
            match v.as_str() {
                Some(s)
                    if s.chars().count() <= self.limits.max_tag_value_len
                        && !s.chars().any(char::is_control) =>
                {
                    out.insert(k.clone(), s.to_owned());
                }
                Some(_) => self.errors.push(at(format!(
                    "a tag value is at most {} characters without control characters",
                    self.limits.max_tag_value_len
                ))),
                None => self
                    .errors
                    .push(at(format!("must be a string, not {}", type_name(v)))),
            }
        }
        out
    }

    fn properties(&mut self) -> Map<String, Value> {
        let index = self.index;
        let Some(v) = self.get("properties", false) else {
            return Map::new();
        };
        let Some(map) = v.as_object() else {
            let detail = format!("must be an object, not {}", type_name(v));
            self.error("properties", detail);
            return Map::new();
        };
        if map.len() > self.limits.max_properties {
            let detail = format!(
                "{} properties; at most {}",
                map.len(),
                self.limits.max_properties
            );
            self.error("properties", detail);
            return Map::new();
        }
        for (k, v) in map {
            let ok = match v {
                Value::String(s) => s.chars().count() <= self.limits.max_text_len,
                Value::Number(n) => n.as_f64().is_some_and(storable),
                Value::Bool(_) | Value::Null => true,
                _ => false,
            };
            if !ok || k.len() > self.limits.max_tag_key_len || k.is_empty() {
                self.errors.push(FieldError::at(
                    &["events", index, "properties", k.as_str()],
                    format!(
                        "a property is a string of at most {} characters, a number DynamoDB can store (0 or 1e-130 to 9.99e125 in magnitude), a boolean or null",
                        self.limits.max_text_len
                    ),
                ));
            }
        }
        map.clone()
    }

    fn items(&mut self) -> Vec<Item> {
        let index = self.index;
        let Some(v) = self.get("items", false) else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            let detail = format!("must be an array, not {}", type_name(v));
            self.error("items", detail);
            return Vec::new();
        };
        if list.len() > self.limits.max_items {
            let detail = format!("{} items; at most {}", list.len(), self.limits.max_items);
            self.error("items", detail);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(list.len());
        for (j, item) in list.iter().enumerate() {
            let j = j.to_string();
            let at = |field: &str, detail: &str| {
                FieldError::at(&["events", index, "items", j.as_str(), field], detail)
            };
            let Some(obj) = item.as_object() else {
                self.errors.push(FieldError::at(
                    &["events", index, "items", j.as_str()],
                    "an item is an object",
                ));
                continue;
            };
            let product = obj
                .get("product")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty() && p.len() <= 256);
            if product.is_none() {
                self.errors
                    .push(at("product", "required: a string of 1 to 256 characters"));
            }
            let collection = match obj.get("collection") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if c.len() <= 256 => Some(c.clone()),
                Some(_) => {
                    self.errors
                        .push(at("collection", "a string of at most 256 characters"));
                    None
                }
            };
            let quantity = match obj.get("quantity") {
                None | Some(Value::Null) => Some(1),
                Some(q) => q
                    .as_u64()
                    .filter(|q| (1..=1_000_000).contains(q))
                    .map(|q| q as u32),
            };
            if quantity.is_none() {
                self.errors
                    .push(at("quantity", "an integer in 1..=1000000"));
            }
            let price = match obj.get("price") {
                None | Some(Value::Null) => None,
                Some(p) => match p.as_f64().filter(|p| {
                    // The line's value (quantity × price) must be storable too.
                    *p >= 0.0 && storable(*p) && storable(*p * f64::from(quantity.unwrap_or(1)))
                }) {
                    Some(p) => Some(p),
                    None => {
                        self.errors.push(at(
                            "price",
                            "a number, not negative, whose quantity × price DynamoDB can store (at most 9.99e125)",
                        ));
                        None
                    }
                },
            };
            if let Some(extra) = obj
                .keys()
                .find(|k| !["product", "collection", "quantity", "price"].contains(&k.as_str()))
            {
                self.errors.push(at(extra, "unknown field"));
            }
            if let (Some(product), Some(quantity)) = (product, quantity) {
                out.push(Item {
                    product: product.to_owned(),
                    collection,
                    quantity,
                    price,
                });
            }
        }
        out
    }

    fn unknown_fields(&mut self) {
        const COMMON: &[&str] = &["kind", "id", "timestamp", "name", "tags", "visitor"];
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !COMMON.contains(&k.as_str()) && !self.seen.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.error(&key, "unknown field for this kind");
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The largest magnitude Pulse stores in a number: DynamoDB stops just below 1e126.
pub const DYNAMO_MAX: f64 = 9.99e125;
/// The smallest non-zero magnitude DynamoDB stores in a number.
pub const DYNAMO_MIN_POSITIVE: f64 = 1e-130;
/// What a number field says when DynamoDB could not store its value.
pub const NOT_STORABLE: &str =
    "must be 0 or between 1e-130 and 9.99e125 in magnitude (what DynamoDB can store)";

/// Whether DynamoDB can store `x` as a number: finite, 0 or a magnitude in
/// [[`DYNAMO_MIN_POSITIVE`], [`DYNAMO_MAX`]]. Every value that reaches storage passes this at
/// the edge, so no write downstream (a live bucket, a rollup) can fail on it.
pub fn storable(x: f64) -> bool {
    x.is_finite() && (x == 0.0 || (DYNAMO_MIN_POSITIVE..=DYNAMO_MAX).contains(&x.abs()))
}

/// `x` brought into what DynamoDB stores: saturated at ±[`DYNAMO_MAX`] (a sum of many large
/// values), flushed to 0 below [`DYNAMO_MIN_POSITIVE`], NaN as 0. Stored figures that are
/// derived (sums, means) go through this, so an aggregate can never make a write fail.
pub fn saturate(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else if x.abs() > DYNAMO_MAX {
        DYNAMO_MAX.copysign(x)
    } else if x.abs() < DYNAMO_MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// 1–64 of `[A-Za-z0-9._:-]`: ids and correlation ids.
fn valid_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks a metric or event name, wherever it comes from (the API, the tracker, imports): 1 to
/// `max_len` characters, a letter or `_` then `[A-Za-z0-9_.:/-]`, and not starting with `__`
/// (Pulse's own series and items: `__totals__`, `__trails__`, `__other__`, `__total__`).
/// The charset keeps names out of key separators (`#`), CSV formulas and log lines.
pub fn check_name(s: &str, max_len: usize) -> Result<(), &'static str> {
    let mut bytes = s.bytes();
    let shaped = s.len() <= max_len
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'));
    if !shaped {
        Err("starts with a letter or '_', then letters, digits, '_', '.', ':', '/' and '-'")
    } else if s.starts_with("__") {
        Err("names starting with \"__\" are reserved for Pulse")
    } else {
        Ok(())
    }
}

/// A tag key: `[A-Za-z0-9_.:-]`, not starting with `__` (reserved, e.g. `__other__`).
pub fn valid_tag_key(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with("__")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

    fn parse(body: Value) -> Result<Vec<Event>, ApiError> {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits::default();
        let ctx = Context {
            tenant: &tenant,
            now_ms: NOW,
            correlation_id: Some("c-1"),
            limits: &limits,
        };
        parse_batch(body.to_string().as_bytes(), &ctx)
    }

    fn pointers(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation { errors, .. } => errors.into_iter().map(|e| e.pointer).collect(),
            other => panic!("expected a validation problem, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_parses_into_its_typed_body() {
        let events = parse(json!({"events": [
            {"kind": "metric", "name": "cpu.load", "value": 0.5, "unit": "ratio", "tags": {"host": "a"}, "id": "m-1", "timestamp": "2026-11-22T09:59:00Z"},
            {"kind": "event", "name": "signup", "properties": {"plan": "pro", "seats": 3}},
            {"kind": "page_view", "path": "/pricing", "referrer": "https://news.example/", "visitor": "v1"},
            {"kind": "api_request", "route": "/api/v1/me", "method": "get", "status": 200, "latency_ms": 12.5},
            {"kind": "error", "message": "boom", "error_type": "Timeout"},
            {"kind": "task_execution", "task_id": "t1", "task_type": "etl", "status": "success", "start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:01:00Z", "duration_ms": 60000, "cpu_percent": 80, "memory_mb": 512},
            {"kind": "ml_job", "pipeline": "train", "provider": "bedrock", "status": "success", "duration_ms": 1200, "cost": 0.12},
            {"kind": "order", "order_id": "o1", "revenue": 99.9, "currency": "EUR", "items": [{"product": "mug", "collection": "kitchen", "quantity": 2, "price": 49.95}]},
            {"kind": "product_view", "product": "mug"},
            {"kind": "add_to_cart", "product": "mug", "quantity": 2},
            {"kind": "checkout", "cart_value": 99.9}
        ]}))
        .expect("valid batch");
        assert_eq!(events.len(), 11);
        assert_eq!(events[0].id, "m-1");
        assert_eq!(events[0].timestamp_ms, NOW - 60_000);
        assert_eq!(
            events[0].body,
            Body::Metric {
                value: 0.5,
                unit: Some("ratio".into())
            }
        );
        assert_eq!(events[1].timestamp_ms, NOW, "no timestamp: received now");
        assert_eq!(
            events[2].name, "page_view",
            "typed kinds default their name"
        );
        assert_eq!(events[2].visitor.as_deref(), Some("v1"));
        assert!(
            matches!(events[3].body, Body::ApiRequest { ref method, status: 200, .. } if method == "GET")
        );
        assert!(matches!(events[7].body, Body::Order { ref items, .. } if items[0].quantity == 2));
        assert!(matches!(
            events[9].body,
            Body::AddToCart { quantity: 2, .. }
        ));
        assert!(
            events
                .iter()
                .all(|e| e.correlation_id.as_deref() == Some("c-1"))
        );
        assert_eq!(events.iter().map(Event::kind).collect::<Vec<_>>(), KINDS);
        // Generated ids are distinct UUIDs.
        assert!(uuid::Uuid::parse_str(&events[1].id).is_ok());
        assert_ne!(events[1].id, events[2].id);
    }

    #[test]
    fn every_bad_event_is_listed_with_its_pointer() {
        let old = "2026-11-14T10:00:00Z"; // 8 days before NOW
        let tags: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
        let err = parse(json!({"events": [
            {"kind": "metric", "name": "ok", "value": 1},
            {"kind": "metric", "name": "cpu", "value": "NaN"},
            {"kind": "metric", "name": "cpu", "value": 1, "timestamp": old},
            {"kind": "metric", "name": "cpu", "value": 1, "tags": tags},
            {"kind": "page_view"},
            {"kind": "api_request", "route": "/x", "method": "FETCH", "status": 700, "lattency_ms": 3},
            {"kind": "telemetry"},
            {"kind": "metric", "name": "9lives", "value": 1, "tags": {"__other__": "x", "ok": 5}}
        ]}))
        .expect_err("invalid batch");
        let p = pointers(err);
        for expected in [
            "#/events/1/value",
            "#/events/2/timestamp",
            "#/events/3/tags",
            "#/events/4/path",
            "#/events/5/method",
            "#/events/5/status",
            "#/events/5/latency_ms",
            "#/events/5/lattency_ms",
            "#/events/6/kind",
            "#/events/7/name",
            "#/events/7/tags/__other__",
            "#/events/7/tags/ok",
        ] {
            assert!(
                p.contains(&expected.to_owned()),
                "{expected} missing from {p:?}"
            );
        }
        assert!(
            !p.iter().any(|x| x.starts_with("#/events/0/")),
            "event 0 is valid"
        );
    }

    #[test]
    fn infinities_and_malformed_json_are_precise_validation_problems() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits::default();
        let ctx = Context {
            tenant: &tenant,
            now_ms: NOW,
            correlation_id: None,
            limits: &limits,
        };
        for body in [
            &br#"{"events":[{"kind":"metric","name":"x","value":NaN}]}"#[..],
            br#"{"events":[{"kind":"metric","name":"x","value":1e999}]}"#,
            b"{\"events\": [",
        ] {
            let err = parse_batch(body, &ctx).expect_err("rejected");
            assert_eq!(err.status(), 400);
            assert!(
                err.to_problem().detail.contains("line 1 column"),
                "{}",
                err.to_problem().detail
            );
        }
    }

    #[test]
    fn oversized_batches_are_413() {
        let events: Vec<Value> = (0..1001)
            .map(|_| json!({"kind": "metric", "name": "x", "value": 1}))
            .collect();
        assert_eq!(
            parse(json!({"events": events}))
                .expect_err("too many")
                .status(),
            413
        );
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let ctx = Context {
            tenant: &tenant,
            now_ms: NOW,
            correlation_id: None,
            limits: &limits,
        };
        assert_eq!(
            parse_batch(b"{\"events\": []}", &ctx)
                .expect_err("too big")
                .status(),
            413
        );
    }

    #[test]
    fn duplicate_ids_within_a_batch_are_refused() {
        let err = parse(json!({"events": [
            {"kind": "metric", "name": "x", "value": 1, "id": "same"},
            {"kind": "metric", "name": "x", "value": 2, "id": "same"}
        ]}))
        .expect_err("duplicate");
        assert_eq!(pointers(err), ["#/events/1/id"]);
    }

    #[test]
    fn limits_come_from_configuration() {
        let l = Limits::from_lookup(|k| match k {
            "INGEST_MAX_TAGS" => Some("4".into()),
            "INGEST_MAX_PAST_SECS" => Some("60".into()),
            _ => None,
        });
        assert_eq!(l.max_tags, 4);
        assert_eq!(l.max_past_ms, 60_000);
        assert_eq!(l.max_events, 1000);
    }

    #[test]
    fn an_event_round_trips_through_its_stored_json() {
        let e = parse(json!({"events": [{"kind": "order", "order_id": "o1", "revenue": 10, "currency": "USD", "tags": {"shop": "eu"}}]}))
            .expect("valid")
            .remove(0);
        let stored = serde_json::to_string(&e).expect("serialises");
        assert_eq!(serde_json::from_str::<Event>(&stored).expect("parses"), e);
    }

    #[test]
    fn a_value_dynamodb_cannot_store_is_refused_at_ingest() {
        // Given values past DynamoDB's number range, as value, latency, price and property
        for bad in [1e126_f64, -1e126, 1e-131, 1.7e308] {
            let err = parse(json!({"events": [
                {"kind": "metric", "name": "cpu", "value": bad},
                {"kind": "api_request", "route": "/", "method": "GET", "status": 200, "latency_ms": bad.abs()},
                {"kind": "event", "name": "e", "properties": {"n": bad}},
                {"kind": "order", "order_id": "o", "revenue": 1, "currency": "EUR", "items": [{"product": "p", "price": bad.abs()}]}
            ]}))
            .expect_err("refused");
            // Then each is named by its pointer and nothing is stored
            assert_eq!(
                pointers(err),
                [
                    "#/events/0/value",
                    "#/events/1/latency_ms",
                    "#/events/2/properties/n",
                    "#/events/3/items/0/price"
                ],
                "{bad}"
            );
        }
        // A price that is storable alone but not times its quantity is refused too
        let err = parse(
            json!({"events": [{"kind": "order", "order_id": "o", "revenue": 1, "currency": "EUR",
            "items": [{"product": "p", "quantity": 1000000, "price": 1e125}]}]}),
        )
        .expect_err("refused");
        assert_eq!(pointers(err), ["#/events/0/items/0/price"]);
        // And the edges of the range, and zero, are accepted
        for ok in [0.0, 9.99e125, -9.99e125, 2e-130, -2e-130] {
            assert!(
                parse(json!({"events": [{"kind": "metric", "name": "cpu", "value": ok}]})).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn saturate_keeps_every_figure_storable() {
        for x in [
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
            -1e-300,
            5.0,
            0.0,
        ] {
            assert!(storable(saturate(x)), "{x}");
        }
        assert_eq!(saturate(5.0), 5.0);
        assert_eq!(saturate(1e130), DYNAMO_MAX);
    }

    #[test]
    fn reserved_and_malformed_names_are_refused_everywhere_with_the_same_rule() {
        for bad in [
            "__totals__",
            "__trails__",
            "__other__",
            "__total__",
            "__x",
            "x#y|z",
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "sign\u{0}up",
            "注册\nsignup",
            "page_view#1m#0000000000000000",
        ] {
            let err = parse(json!({"events": [{"kind": "event", "name": bad}]})).expect_err(bad);
            assert_eq!(pointers(err), ["#/events/0/name"], "{bad}");
            assert!(check_name(bad, 128).is_err(), "{bad}");
        }
        assert!(check_name("_private.ok", 128).is_ok());
        assert!(check_name("signup", 128).is_ok());
    }

    #[test]
    fn a_client_id_is_marked_supplied_and_a_generated_one_is_not() {
        let events = parse(json!({"events": [
            {"kind": "metric", "name": "cpu", "value": 1, "id": "e-1"},
            {"kind": "metric", "name": "cpu", "value": 1}
        ]}))
        .expect("valid");
        assert!(events[0].supplied_id);
        assert!(!events[1].supplied_id);
    }
}
