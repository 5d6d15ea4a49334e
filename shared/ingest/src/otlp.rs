//! OTLP/HTTP metrics (`POST /v1/metrics`): what any OpenTelemetry SDK's OTLP/HTTP exporter
//! sends, in protobuf or JSON, turned into Pulse metric events.
//!
//! - Gauge and sum points become one `metric` event each (the point's value).
//! - A histogram point becomes `<name>.count`, `<name>.sum`, `<name>.min` and `<name>.max`
//!   metrics (those the point carries), so counts and totals aggregate exactly; a point's
//!   bucket layout is not kept.
//! - Resource attributes, then data-point attributes (which win), become tags; keys are made
//!   to fit Pulse's tag charset, values are stringified.
//! - Each event's id is a hash of (metric, tags, point time, part), so an exporter's retry
//!   rewrites the same items and is counted once.
//! - Points Pulse cannot take (summaries, exponential histograms, no value, out of the time
//!   window, too many attributes, invalid names) are left out and reported through OTLP's
//!   `partial_success`, as the protocol asks, rather than failing the whole export.

use crate::events::{Body, Context, Event};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use prost::Message;
use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use std::collections::BTreeMap;

/// How an export is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, if Pulse reads it.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Decodes an export request.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, ApiError> {
    let invalid = |e: String| ApiError::Validation {
        detail: format!("the OTLP export does not decode: {e}"),
        errors: vec![FieldError::at::<&str>(&[], e)],
    };
    match encoding {
        Encoding::Protobuf => {
            ExportMetricsServiceRequest::decode(body).map_err(|e| invalid(e.to_string()))
        }
        Encoding::Json => serde_json::from_slice(body).map_err(|e| invalid(e.to_string())),
    }
}

/// Encodes the export response.
pub fn encode_response(response: &ExportMetricsServiceResponse, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// The events of an export, and what was left out.
#[derive(Debug, Default)]
pub struct Converted {
    pub events: Vec<Event>,
    pub rejected: i64,
    pub reasons: Vec<String>,
}

impl Converted {
    /// Leaves out the points named by `bad` (problems at `#/events/{i}/…`, as checking the
    /// events against the tenant's metric definitions reports them), counting them as
    /// rejected.
    pub fn leave_out(&mut self, bad: &[pulse_core::problem::FieldError]) {
        if bad.is_empty() {
            return;
        }
        let drop: std::collections::HashSet<usize> = bad
            .iter()
            .filter_map(|e| {
                e.pointer
                    .strip_prefix("#/events/")?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        let mut kept = Vec::with_capacity(self.events.len());
        for (i, e) in std::mem::take(&mut self.events).into_iter().enumerate() {
            if drop.contains(&i) {
                self.reject(format!("{}: outside the metric's defined range", e.name));
            } else {
                kept.push(e);
            }
        }
        self.events = kept;
    }

    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < 5 && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// The OTLP response: `partial_success` when points were left out.
    pub fn response(&self) -> ExportMetricsServiceResponse {
        ExportMetricsServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: self.rejected,
                error_message: self.reasons.join("; "),
            }),
        }
    }
}

/// A tag key in Pulse's charset: other characters become `_`, and no leading `__`.
fn tag_key(key: &str) -> String {
    let mut k: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while k.starts_with("__") {
        k.remove(0);
    }
    k
}

fn value_text(v: Option<&any_value::Value>) -> Option<String> {
    Some(match v? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

fn add_tags(tags: &mut BTreeMap<String, String>, attributes: &[KeyValue], max_len: usize) {
    for kv in attributes {
        let key = tag_key(&kv.key);
        if key.is_empty() {
            continue;
        }
        if let Some(text) = value_text(kv.value.as_ref().and_then(|v| v.value.as_ref())) {
            tags.insert(
                key,
                text.chars()
                    .filter(|c| !c.is_control())
                    .take(max_len)
                    .collect(),
            );
        }
    }
}

/// Turns an export into metric events for `ctx`'s tenant.
pub fn to_events(request: &ExportMetricsServiceRequest, ctx: &Context<'_>) -> Converted {
    let limits = ctx.limits;
    let mut out = Converted::default();
    for rm in &request.resource_metrics {
        let mut resource_tags = BTreeMap::new();
        if let Some(resource) = &rm.resource {
            add_tags(
                &mut resource_tags,
                &resource.attributes,
                limits.max_tag_value_len,
            );
        }
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                // (attributes, time, [(suffix, value)]) per point.
                let points: Vec<Point<'_>> = match &metric.data {
                    Some(Data::Gauge(g)) => g.data_points.iter().map(number).collect(),
                    Some(Data::Sum(s)) => s.data_points.iter().map(number).collect(),
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| {
                            let mut parts = vec![(".count", p.count as f64)];
                            parts.extend(p.sum.map(|s| (".sum", s)));
                            parts.extend(p.min.map(|m| (".min", m)));
                            parts.extend(p.max.map(|m| (".max", m)));
                            (
                                p.attributes.as_slice(),
                                p.time_unix_nano,
                                parts,
                                p.flags & 1 == 1,
                            )
                        })
                        .collect(),
                    Some(Data::ExponentialHistogram(h)) => {
                        for _ in &h.data_points {
                            out.reject(format!(
                                "{}: exponential histograms are not ingested",
                                metric.name
                            ));
                        }
                        continue;
                    }
                    Some(Data::Summary(s)) => {
                        for _ in &s.data_points {
                            out.reject(format!("{}: summaries are not ingested", metric.name));
                        }
                        continue;
                    }
                    None => continue,
                };
                for (attributes, time_unix_nano, parts, no_value) in points {
                    if no_value || parts.is_empty() {
                        out.reject(format!("{}: a point without a value", metric.name));
                        continue;
                    }
                    let timestamp_ms = if time_unix_nano == 0 {
                        ctx.now_ms
                    } else {
                        i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX)
                    };
                    if timestamp_ms < ctx.now_ms - limits.max_past_ms
                        || timestamp_ms > ctx.now_ms + limits.max_future_ms
                    {
                        out.reject(format!(
                            "{}: a point outside the accepted time window",
                            metric.name
                        ));
                        continue;
                    }
                    let mut tags = resource_tags.clone();
                    add_tags(&mut tags, attributes, limits.max_tag_value_len);
                    tags.retain(|k, _| k.len() <= limits.max_tag_key_len);
                    if tags.len() > limits.max_tags {
                        out.reject(format!(
                            "{}: more than {} attributes",
                            metric.name, limits.max_tags
                        ));
                        continue;
                    }
                    for (suffix, value) in parts {
                        let name = format!("{}{suffix}", metric.name);
                        if crate::events::check_name(&name, limits.max_name_len).is_err()
                            || !crate::events::storable(value)
                        {
                            out.reject(format!(
                                "{name}: an invalid or reserved name, or a value DynamoDB cannot store"
                            ));
                            continue;
                        }
                        let mut h = xxhash_rust::xxh3::Xxh3::new();
                        h.update(name.as_bytes());
                        for (k, v) in &tags {
                            h.update(k.as_bytes());
                            h.update(&[0x1f]);
                            h.update(v.as_bytes());
                            h.update(&[0x1e]);
                        }
                        h.update(&time_unix_nano.to_le_bytes());
                        out.events.push(Event {
                            id: format!("otlp-{:032x}", h.digest128()),
                            tenant: ctx.tenant.clone(),
                            timestamp_ms,
                            name,
                            tags: tags.clone(),
                            visitor: None,
                            correlation_id: ctx.correlation_id.map(str::to_owned),
                            supplied_id: false,
                            imported: false,
                            body: Body::Metric {
                                value,
                                unit: (!metric.unit.is_empty())
                                    .then(|| metric.unit.chars().take(32).collect()),
                            },
                        });
                    }
                }
            }
        }
    }
    out
}

/// A data point: its attributes, time, values by name suffix, and whether it has no value.
type Point<'a> = (&'a [KeyValue], u64, Vec<(&'static str, f64)>, bool);

fn number(p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> Point<'_> {
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Some(d),
        Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
        None => None,
    };
    (
        p.attributes.as_slice(),
        p.time_unix_nano,
        value.map(|v| ("", v)).into_iter().collect(),
        p.flags & 1 == 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Limits;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use pulse_core::identity::TenantId;

    const NOW_MS: i64 = 1_795_341_600_000;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "checkout")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn convert(req: &ExportMetricsServiceRequest) -> Converted {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = Limits::default();
        to_events(
            req,
            &Context {
                tenant: &tenant,
                now_ms: NOW_MS,
                correlation_id: None,
                limits: &limits,
            },
        )
    }

    #[test]
    fn points_the_definitions_refuse_are_left_out_as_partial_success() {
        // Given two points of queue.depth, 7 and 500, and 500 above its defined max
        let t = (NOW_MS as u64 - 1000) * 1_000_000;
        let point = |v: i64| NumberDataPoint {
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        };
        let req = request(vec![Metric {
            name: "queue.depth".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![point(7), point(500)],
            })),
            ..Default::default()
        }]);
        // When the export is converted and the point the definitions refuse is left out
        let mut c = convert(&req);
        c.leave_out(&[pulse_core::problem::FieldError::at(
            &["events", "1", "value"],
            "above the metric's max",
        )]);
        // Then 7 is kept and 500 is reported rejected
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.rejected, 1);
        let partial = c.response().partial_success.expect("partial success");
        assert!(
            partial.error_message.contains("queue.depth"),
            "{}",
            partial.error_message
        );
    }

    #[test]
    fn gauges_and_histograms_become_metrics_with_resource_and_point_tags() {
        let t = (NOW_MS as u64 - 1000) * 1_000_000;
        let req = request(vec![
            Metric {
                name: "queue.depth".into(),
                unit: "{items}".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        attributes: vec![kv("queue", "orders")],
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsInt(7)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
            Metric {
                name: "http.server.duration".into(),
                unit: "ms".into(),
                data: Some(Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: vec![kv("http.route", "/cart")],
                        time_unix_nano: t,
                        count: 4,
                        sum: Some(100.0),
                        min: Some(5.0),
                        max: Some(60.0),
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            },
        ]);
        let c = convert(&req);
        assert_eq!(c.rejected, 0);
        let names: Vec<&str> = c.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "queue.depth",
                "http.server.duration.count",
                "http.server.duration.sum",
                "http.server.duration.min",
                "http.server.duration.max"
            ]
        );
        assert_eq!(
            c.events[0].body,
            Body::Metric {
                value: 7.0,
                unit: Some("{items}".into())
            }
        );
        assert_eq!(c.events[0].tags["service.name"], "checkout");
        assert_eq!(c.events[0].tags["queue"], "orders");
        assert_eq!(c.events[1].timestamp_ms, NOW_MS - 1000);
        // The same export again yields the same ids: a retry is stored once.
        let again = convert(&req);
        assert_eq!(
            c.events.iter().map(|e| &e.id).collect::<Vec<_>>(),
            again.events.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn unsupported_or_out_of_window_points_are_a_partial_success() {
        let old = (NOW_MS as u64 - 8 * 86_400_000) * 1_000_000;
        let req = request(vec![
            Metric {
                name: "s".into(),
                data: Some(Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint::default()],
                })),
                ..Default::default()
            },
            Metric {
                name: "old".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: old,
                        value: Some(number_data_point::Value::AsDouble(1.0)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
        ]);
        let c = convert(&req);
        assert!(c.events.is_empty());
        let partial = c.response().partial_success.expect("partial success");
        assert_eq!(partial.rejected_data_points, 2);
        assert!(partial.error_message.contains("summaries"));
    }

    #[test]
    fn both_encodings_round_trip_and_content_types_select_them() {
        let req = request(vec![]);
        let pb = req.encode_to_vec();
        assert_eq!(decode(&pb, Encoding::Protobuf).expect("protobuf"), req);
        let json = serde_json::to_vec(&req).expect("json");
        assert_eq!(decode(&json, Encoding::Json).expect("json"), req);
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(
            decode(b"\xff\xff", Encoding::Protobuf)
                .expect_err("garbage")
                .status(),
            400
        );
    }

    #[test]
    fn attribute_keys_are_fitted_to_the_tag_charset() {
        assert_eq!(tag_key("k8s.pod/name"), "k8s.pod_name");
        assert_eq!(
            tag_key("__private"),
            "_private",
            "only a leading __ is reserved"
        );
    }
}
