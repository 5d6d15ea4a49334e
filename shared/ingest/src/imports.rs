//! Historical imports: events with old timestamps, as NDJSON or CSV, validated as a whole
//! before anything is written (the same rules as `POST /api/v1/events`, except the age limit:
//! history reaches back as far as the daily rollups are kept, and every event needs its
//! `timestamp`).
//!
//! NDJSON: one event object per line, exactly as in a batch. CSV: a header row naming event
//! fields (`kind`, `name`, `value`, `timestamp`, `id`, `visitor`, and each kind's own fields
//! such as `route`, `status`, `latency_ms`, `path`, `order_id`, `revenue`), `tags.<key>`
//! columns for tags and `properties.<key>` for a custom event's properties; empty cells are
//! absent fields. Cells of numeric fields are numbers, every other cell is text. Problems
//! point at `#/events/{record}` (record 0 is the first line of NDJSON, the first row after a
//! CSV header).

use crate::events::{Context, Event, parse_events};
use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use serde_json::{Map, Value};

/// Fields whose CSV cells are numbers.
const NUMERIC: &[&str] = &[
    "value",
    "status",
    "latency_ms",
    "start_ms",
    "end_ms",
    "duration_ms",
    "cpu_percent",
    "memory_mb",
    "cost",
    "revenue",
    "price",
    "quantity",
    "cart_value",
];

/// How an import is encoded, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    /// `application/x-ndjson` (or `application/jsonl`) and `text/csv`.
    pub fn from_media_type(media: &str) -> Option<Self> {
        match media {
            "application/x-ndjson" | "application/jsonl" | "application/json-seq" => {
                Some(Self::Ndjson)
            }
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Parses an import into events, or the problem listing every bad record.
pub fn parse_import(
    body: &[u8],
    format: Format,
    ctx: &Context<'_>,
) -> Result<Vec<Event>, ApiError> {
    if body.len() > ctx.limits.max_body_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the import is {} bytes; an import is at most {} bytes",
            body.len(),
            ctx.limits.max_body_bytes
        )));
    }
    let mut errors = Vec::new();
    let records = match format {
        Format::Ndjson => ndjson(body, &mut errors),
        Format::Csv => csv_records(body, &mut errors)?,
    };
    if records.len() > ctx.limits.max_events {
        return Err(ApiError::PayloadTooLarge(format!(
            "the import has {} events; an import is at most {}",
            records.len(),
            ctx.limits.max_events
        )));
    }
    if records.is_empty() && errors.is_empty() {
        return Err(ApiError::invalid_field::<&str>(
            &[],
            "the import holds no events",
        ));
    }
    // History has its times: an event stamped with the receive time would land elsewhere each
    // time the import is sent, and so escape the import's once-only mark.
    for (i, record) in records.iter().enumerate() {
        if record.is_object() && record.get("timestamp").is_none_or(Value::is_null) {
            errors.push(FieldError::at(
                &["events", &i.to_string(), "timestamp"],
                "an imported event needs its timestamp",
            ));
        }
    }
    parse_events(&records, ctx, errors)
}

fn ndjson(body: &[u8], errors: &mut Vec<FieldError>) -> Vec<Value> {
    let mut records = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => records.push(v),
            Err(e) => {
                errors.push(FieldError::at(
                    &["events", &records.len().to_string()],
                    format!("not a JSON object: {e}"),
                ));
                records.push(Value::Null);
            }
        }
    }
    records
}

fn csv_records(body: &[u8], errors: &mut Vec<FieldError>) -> Result<Vec<Value>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::invalid_field::<&str>(&[], format!("the CSV header row: {e}")))?
        .clone();
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let index = i.to_string();
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                errors.push(FieldError::at(
                    &["events", &index],
                    format!("unreadable row: {e}"),
                ));
                records.push(Value::Null);
                continue;
            }
        };
        let mut obj = Map::new();
        let mut tags = Map::new();
        let mut properties = Map::new();
        for (header, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            if let Some(key) = header.strip_prefix("tags.") {
                tags.insert(key.to_owned(), Value::String(cell.to_owned()));
            } else if let Some(key) = header.strip_prefix("properties.") {
                properties.insert(key.to_owned(), Value::String(cell.to_owned()));
            } else if NUMERIC.contains(&header) {
                match cell.parse::<f64>() {
                    Ok(n) if n.fract() == 0.0 && n.abs() < 9e15 => {
                        obj.insert(header.to_owned(), Value::from(n as i64));
                    }
                    Ok(n) => {
                        obj.insert(
                            header.to_owned(),
                            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
                        );
                    }
                    Err(_) => errors.push(FieldError::at(
                        &["events", &index, header],
                        format!("{cell:?} is not a number"),
                    )),
                }
            } else {
                obj.insert(header.to_owned(), Value::String(cell.to_owned()));
            }
        }
        if !tags.is_empty() {
            obj.insert("tags".into(), Value::Object(tags));
        }
        if !properties.is_empty() {
            obj.insert("properties".into(), Value::Object(properties));
        }
        records.push(Value::Object(obj));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Body, Limits};
    use pulse_core::identity::TenantId;

    const NOW: i64 = 1_795_341_600_000;

    fn ctx<'a>(tenant: &'a TenantId, limits: &'a Limits) -> Context<'a> {
        Context {
            tenant,
            now_ms: NOW,
            correlation_id: None,
            limits,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_past_ms: 400 * 86_400_000,
            ..Limits::default()
        }
    }

    #[test]
    fn an_imported_event_without_its_timestamp_is_refused_by_pointer() {
        // Given an import whose second event has no time
        let body =
            br#"{"kind":"metric","name":"cpu","value":0.5,"timestamp":"2026-08-01T10:00:00Z"}
{"kind":"metric","name":"cpu","value":0.7}
"#;
        // When it is parsed
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = limits();
        let err = parse_import(body, Format::Ndjson, &ctx(&tenant, &limits)).expect_err("refused");
        // Then the problem points at that event's timestamp
        let ApiError::Validation { errors, .. } = err else {
            panic!("not a validation problem: {err:?}");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "#/events/1/timestamp");
    }

    #[test]
    fn ndjson_lines_become_events_with_old_timestamps() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = limits();
        let body = br#"{"kind":"metric","name":"cpu","value":0.5,"timestamp":"2026-08-01T10:00:00Z","id":"a"}

{"kind":"page_view","path":"/","timestamp":"2026-08-01T10:00:01Z","visitor":"v1"}
"#;
        let events = parse_import(body, Format::Ndjson, &ctx(&tenant, &limits)).expect("valid");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, "a");
        assert!(NOW - events[0].timestamp_ms > 100 * 86_400_000);
        assert!(matches!(events[1].body, Body::PageView { .. }));
    }

    #[test]
    fn csv_rows_map_columns_tags_and_numbers() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = limits();
        let body = b"kind,route,method,status,latency_ms,timestamp,tags.region\n\
api_request,/cart,GET,200,12.5,2026-08-01T10:00:00Z,eu\n\
api_request,/pay,POST,503,80,2026-08-01T10:00:02Z,\n";
        let events = parse_import(body, Format::Csv, &ctx(&tenant, &limits)).expect("valid");
        assert_eq!(events.len(), 2);
        match &events[1].body {
            Body::ApiRequest {
                status, latency_ms, ..
            } => {
                assert_eq!((*status, *latency_ms), (503, 80.0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[0].tags["region"], "eu");
        assert!(events[1].tags.is_empty(), "an empty cell is no tag");
    }

    #[test]
    fn every_bad_record_is_listed_and_nothing_parses() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let limits = limits();
        let body = b"kind,name,value,timestamp\n\
metric,cpu,abc,2026-08-01T10:00:00Z\n\
metric,cpu,1,2020-01-01T00:00:00Z\n\
metric,cpu,2,2026-08-01T10:00:00Z\n";
        let err = parse_import(body, Format::Csv, &ctx(&tenant, &limits)).expect_err("invalid");
        let problem = err.to_problem();
        let pointers: Vec<String> = problem.errors.iter().map(|e| e.pointer.clone()).collect();
        assert!(
            pointers.contains(&"#/events/0/value".to_owned()),
            "{pointers:?}"
        );
        assert!(
            pointers.contains(&"#/events/1/timestamp".to_owned()),
            "{pointers:?}"
        );
        assert!(!pointers.iter().any(|p| p.starts_with("#/events/2")));
        let broken = b"{\"kind\":\"metric\"\n";
        let err = parse_import(broken, Format::Ndjson, &ctx(&tenant, &limits)).expect_err("bad");
        assert_eq!(err.status(), 400);
    }
}
