//! Metric definitions (`/api/v1/metric-definitions`): what a tenant says about a metric — its
//! unit, description and default aggregation, the range its values may take, or how it is
//! derived from two others.
//!
//! - **Range**: ingest refuses an event whose value (the quantity [`crate::aggregate::sample`]
//!   takes from it: a metric's value, an order's revenue, a request's latency) falls outside
//!   `[min, max]`, pointing at the event, so a broken sender is caught at the door rather
//!   than skewing every percentile.
//! - **Derived**: `{"op": "ratio" | "difference", "of": [a, b], "aggregation": "count"}` makes
//!   the metric a query-time combination of `a` and `b` per point and group (`error_rate =
//!   errors / requests`). It has no data of its own and may not be sent.

use crate::aggregation::Aggregation;
use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use pulse_ingest::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Definitions a tenant may keep.
pub const MAX_DEFINITIONS: usize = 200;

/// How a derived metric combines its two metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Ratio,
    Difference,
}

/// A metric computed from two others at query time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub op: Op,
    /// The two metrics: numerator and denominator, or minuend and subtrahend.
    pub of: [String; 2],
    /// What is taken of each before combining.
    pub aggregation: Aggregation,
}

impl Derived {
    /// `a` combined with `b`.
    pub fn combine(&self, a: Option<f64>, b: Option<f64>) -> Option<f64> {
        match self.op {
            Op::Ratio => match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            },
            Op::Difference => Some(a.unwrap_or(0.0) - b.unwrap_or(0.0)),
        }
    }
}

/// A tenant's definition of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_aggregation: Option<Aggregation>,
    /// The smallest value ingest accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest value ingest accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<Derived>,
}

/// A metric name, by the same rule as ingest ([`pulse_ingest::events::check_name`]).
fn valid_name(name: &str) -> bool {
    pulse_ingest::events::check_name(name, 128).is_ok()
}

/// Parses a definition body; `name` is the one in the path (PUT) or `None` (POST, where the
/// body names it). Every problem is listed by pointer.
pub fn parse(body: &Value, name: Option<&str>) -> Result<Definition, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid_field::<&str>(
            &[],
            "a definition is a JSON object",
        ));
    };
    let mut errors = Vec::new();
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "name" | "unit" | "description" | "default_aggregation" | "min" | "max" | "derived"
        ) {
            errors.push(FieldError::at(&[k.as_str()], "unknown field"));
        }
    }
    let text = |k: &str, max: usize, errors: &mut Vec<FieldError>| match obj.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::at(
                &[k],
                format!("a string of at most {max} characters"),
            ));
            None
        }
    };
    let body_name = text("name", 128, &mut errors);
    let name = match (name, body_name) {
        (Some(path), Some(body)) if path != body => {
            errors.push(FieldError::at(
                &["name"],
                "differs from the name in the path",
            ));
            path.to_owned()
        }
        (Some(path), _) => path.to_owned(),
        (None, Some(body)) => body,
        (None, None) => {
            errors.push(FieldError::at(&["name"], "required: the metric's name"));
            String::new()
        }
    };
    // An empty name is as invalid as a malformed one (it would become an empty key); a
    // missing one is already reported above.
    if !valid_name(&name) && !errors.iter().any(|e| e.pointer == "#/name") {
        errors.push(FieldError::at(
            &["name"],
            "starts with a letter or '_', then letters, digits, '_', '.', ':', '/' and '-'",
        ));
    }
    let unit = text("unit", 32, &mut errors);
    let description = text("description", 1024, &mut errors);
    let aggregation = |v: Option<&Value>, at: &[&str], errors: &mut Vec<FieldError>| match v {
        None | Some(Value::Null) => None,
        Some(v) => {
            let parsed = serde_json::from_value::<Aggregation>(v.clone()).ok();
            if parsed.is_none() {
                errors.push(FieldError::at(
                    at,
                    "one of count, sum, avg, min, max, p50, p95, p99, rate, uniques",
                ));
            }
            parsed
        }
    };
    let default_aggregation = aggregation(
        obj.get("default_aggregation"),
        &["default_aggregation"],
        &mut errors,
    );
    let number = |k: &str, errors: &mut Vec<FieldError>| match obj.get(k) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v.as_f64().filter(|n| n.is_finite());
            if n.is_none() {
                errors.push(FieldError::at(&[k], "a finite number"));
            }
            n
        }
    };
    let (min, max) = (number("min", &mut errors), number("max", &mut errors));
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        errors.push(FieldError::at(&["max"], "must not be below min"));
    }
    let derived = match obj.get("derived") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => {
            let op = match d.get("op").and_then(Value::as_str) {
                Some("ratio") => Some(Op::Ratio),
                Some("difference") => Some(Op::Difference),
                _ => {
                    errors.push(FieldError::at(&["derived", "op"], "ratio or difference"));
                    None
                }
            };
            let of: Option<[String; 2]> = d
                .get("of")
                .and_then(Value::as_array)
                .filter(|a| a.len() == 2)
                .and_then(|a| {
                    let names: Vec<String> = a
                        .iter()
                        .filter_map(|v| v.as_str().filter(|s| valid_name(s)).map(str::to_owned))
                        .collect();
                    <[String; 2]>::try_from(names).ok()
                });
            if of.is_none() {
                errors.push(FieldError::at(&["derived", "of"], "two metric names"));
            }
            if of.as_ref().is_some_and(|[a, b]| *a == name || *b == name) {
                errors.push(FieldError::at(
                    &["derived", "of"],
                    "a metric cannot be derived from itself",
                ));
            }
            let agg = match d.get("aggregation") {
                None => Some(Aggregation::Count),
                v => aggregation(v, &["derived", "aggregation"], &mut errors),
            };
            for k in d.keys() {
                if !matches!(k.as_str(), "op" | "of" | "aggregation") {
                    errors.push(FieldError::at(&["derived", k.as_str()], "unknown field"));
                }
            }
            if min.is_some() || max.is_some() {
                errors.push(FieldError::at(
                    &["derived"],
                    "a derived metric has no values of its own to bound",
                ));
            }
            match (op, of, agg) {
                (Some(op), Some(of), Some(aggregation)) => Some(Derived {
                    op,
                    of,
                    aggregation,
                }),
                _ => None,
            }
        }
        Some(_) => {
            errors.push(FieldError::at(
                &["derived"],
                "an object {op, of, aggregation}",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation {
            detail: format!("{} problems with the definition", errors.len()),
            errors,
        });
    }
    Ok(Definition {
        name,
        unit,
        description,
        default_aggregation,
        min,
        max,
        derived,
    })
}

/// Problems of `events` against the tenant's `definitions`: values outside a metric's range
/// (at `#/events/{i}/value`, or the event when its value is implied) and events sent to a
/// derived metric. `index` maps an event to its place in the request.
pub fn check(
    definitions: &HashMap<String, Definition>,
    events: &[Event],
    index: impl Fn(usize) -> usize,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if definitions.is_empty() {
        return errors;
    }
    for (i, e) in events.iter().enumerate() {
        let s = crate::aggregate::sample(e);
        let Some(def) = definitions.get(s.metric) else {
            continue;
        };
        let at = index(i).to_string();
        if def.derived.is_some() {
            errors.push(FieldError::at(
                &["events", &at, "name"],
                format!("{} is derived from other metrics; send those", def.name),
            ));
            continue;
        }
        let below = def.min.is_some_and(|m| s.value < m);
        let above = def.max.is_some_and(|m| s.value > m);
        if below || above {
            let bound = |b: Option<f64>| b.map_or("-".to_owned(), |b| b.to_string());
            errors.push(FieldError::at(
                &["events", &at, "value"],
                format!(
                    "{} is outside the range of {} [{}, {}]",
                    s.value,
                    def.name,
                    bound(def.min),
                    bound(def.max)
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric(name: &str, value: f64) -> Event {
        Event {
            id: "e".into(),
            tenant: pulse_core::identity::TenantId::parse("t").expect("tenant"),
            timestamp_ms: 0,
            name: name.into(),
            tags: Default::default(),
            visitor: None,
            correlation_id: None,
            supplied_id: false,
            imported: false,
            body: pulse_ingest::events::Body::Metric { value, unit: None },
        }
    }

    #[test]
    fn values_outside_a_defined_range_are_pointed_at() {
        // Given cpu defined as 0..=100 and error_rate derived
        let cpu = parse(
            &json!({"name": "cpu", "unit": "%", "min": 0, "max": 100}),
            None,
        )
        .expect("cpu");
        let rate = parse(
            &json!({"derived": {"op": "ratio", "of": ["errors", "requests"]}}),
            Some("error_rate"),
        )
        .expect("rate");
        assert_eq!(
            rate.derived.as_ref().map(|d| d.aggregation),
            Some(Aggregation::Count)
        );
        let defs = HashMap::from([("cpu".to_owned(), cpu), ("error_rate".to_owned(), rate)]);
        // When a batch holds 50, 140, -1, an undefined metric and a value for the derived one
        let events = [
            metric("cpu", 50.0),
            metric("cpu", 140.0),
            metric("cpu", -1.0),
            metric("disk", 1e9),
            metric("error_rate", 0.5),
        ];
        let errors = check(&defs, &events, |i| i);
        // Then exactly the three bad ones are named
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec!["#/events/1/value", "#/events/2/value", "#/events/4/name"]
        );
    }

    #[test]
    fn derived_metrics_combine_per_point() {
        let d = Derived {
            op: Op::Ratio,
            of: ["a".into(), "b".into()],
            aggregation: Aggregation::Count,
        };
        assert_eq!(d.combine(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(d.combine(Some(1.0), Some(0.0)), None);
        let diff = Derived {
            op: Op::Difference,
            ..d
        };
        assert_eq!(diff.combine(Some(5.0), None), Some(5.0));
    }

    #[test]
    fn bad_definitions_are_precise_problems() {
        for (body, name, pointer) in [
            (json!({"unit": "ms"}), None, "#/name"),
            (json!({"name": "9x"}), None, "#/name"),
            (json!({"name": ""}), None, "#/name"),
            (json!({"unit": "ms"}), Some(""), "#/name"),
            (json!({"name": "a", "min": 5, "max": 1}), None, "#/max"),
            (json!({"name": "a", "min": "low"}), None, "#/min"),
            (
                json!({"name": "a", "default_aggregation": "median"}),
                None,
                "#/default_aggregation",
            ),
            (
                json!({"name": "a", "derived": {"op": "product", "of": ["b", "c"]}}),
                None,
                "#/derived/op",
            ),
            (
                json!({"name": "a", "derived": {"op": "ratio", "of": ["b"]}}),
                None,
                "#/derived/of",
            ),
            (
                json!({"name": "a", "derived": {"op": "ratio", "of": ["a", "b"]}}),
                None,
                "#/derived/of",
            ),
            (json!({"name": "b"}), Some("a"), "#/name"),
            (json!({"name": "a", "colour": 1}), None, "#/colour"),
        ] {
            let err = parse(&body, name).expect_err("refused");
            let v = serde_json::to_value(err.to_problem()).expect("json");
            assert_eq!(v["errors"][0]["pointer"], pointer, "{body}");
        }
    }
}
