//! The Events table adapter: raw events as items, written with BatchWriteItem.
//!
//! Key design (docs/ARCHITECTURE.md): `pk = {tenant}#{minute}#{shard}`, `sk = {ts_ms}#{id}`.
//! The shard is a stable hash of the event id over [`EVENT_SHARDS`], so one tenant's minute
//! spreads over 16 partition keys, and a retried event lands on the very same key: DynamoDB
//! overwrites it in place and emits no new INSERT stream record, so it is counted once.

use super::keys::{EVENT_SHARDS, EXPIRES_AT, GSI1_PK, GSI1_SK, PK, SK};
use super::{EventReader, EventWriter, Incomplete, StoreError};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use pulse_ingest::events::Event;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Items per BatchWriteItem call (DynamoDB's limit).
const BATCH: usize = 25;
/// BatchWriteItem calls in flight at once for one request.
const CONCURRENCY: usize = 8;

/// The Events table.
#[derive(Debug, Clone)]
pub struct DynamoEvents {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_secs: i64,
    /// The table holding id claims ([`DynamoEvents::with_claims`]).
    claims: Option<String>,
}

/// Id claims written at once for one request.
const CLAIM_CONCURRENCY: usize = 16;

impl DynamoEvents {
    pub fn new(aws: &SdkConfig, table: &str, retention_days: i64) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(aws), table, retention_days)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, table: &str, retention_days: i64) -> Self {
        Self {
            client,
            table: table.to_owned(),
            retention_secs: retention_days.saturating_mul(86_400),
            claims: None,
        }
    }

    /// The same writer making client-chosen ids idempotent on their own: before an event with
    /// a [`Event::supplied_id`] is written, its id is claimed in `app_table` (item
    /// `{tenant}#eid#{id}`, holding the event time, for the raw-event retention). The first
    /// claim fixes the event's time; a resend (with another timestamp, or none, so a new
    /// receive time) is written at that time, onto the very same item: a MODIFY, never a
    /// second INSERT, so live and sealed counts see it once. A claim whose write of the event
    /// failed still fixes the time, so resending after a 503 stores the event exactly once.
    pub fn with_claims(self, app_table: &str) -> Self {
        Self {
            claims: Some(app_table.to_owned()),
            ..self
        }
    }

    /// The time of `event`'s id: the one its first claim recorded, or its own if this is the
    /// first. Throttling and errors are retried (the SDK's policy) and then reported.
    async fn claim(&self, table: &str, event: &Event, now: i64) -> Result<i64, StoreError> {
        let pk = format!("{}#eid#{}", event.tenant, event.id);
        let put = self
            .client
            .put_item()
            .table_name(table)
            .item(PK, AttributeValue::S(pk.clone()))
            .item(SK, AttributeValue::S("eid".to_owned()))
            .item("ts", AttributeValue::N(event.timestamp_ms.to_string()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((now + self.retention_secs).to_string()),
            )
            // An expired claim (TTL deletes lazily) no longer names a stored event.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        let failed = match put {
            Ok(_) => return Ok(event.timestamp_ms),
            Err(e) => e,
        };
        let old_ts = |item: Option<&HashMap<String, AttributeValue>>| {
            item.and_then(|i| i.get("ts"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let conditional = failed
            .as_service_error()
            .and_then(|e| match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => Some(c),
                _ => None,
            });
        let Some(conditional) = conditional else {
            return Err(super::classify(failed));
        };
        if let Some(ts) = old_ts(conditional.item.as_ref()) {
            return Ok(ts);
        }
        // An endpoint that does not return the old item on a failed condition: read it.
        let read = self
            .client
            .get_item()
            .table_name(table)
            .key(PK, AttributeValue::S(pk))
            .key(SK, AttributeValue::S("eid".to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(super::classify)?;
        old_ts(read.item()).ok_or_else(|| {
            StoreError::Unavailable(format!("the claim of event {} has no time", event.id).into())
        })
    }

    /// `events` with every client-chosen id claimed and set to its claimed time; the ids
    /// whose claim failed are left out and returned with the last error.
    async fn settle(&self, events: &[Event]) -> (Vec<Event>, Vec<String>, Option<StoreError>) {
        let Some(table) = self.claims.as_deref() else {
            return (events.to_vec(), Vec::new(), None);
        };
        let now = chrono::Utc::now().timestamp();
        let claims: Vec<_> = events
            .iter()
            .map(|e| async move {
                let ts = if e.supplied_id {
                    self.claim(table, e, now).await
                } else {
                    Ok(e.timestamp_ms)
                };
                (e.clone(), ts)
            })
            .collect();
        let settled: Vec<(Event, Result<i64, StoreError>)> = futures::stream::iter(claims)
            .buffered(CLAIM_CONCURRENCY)
            .collect()
            .await;
        let (mut ok, mut failed, mut last) = (Vec::new(), Vec::new(), None);
        for (mut event, ts) in settled {
            match ts {
                Ok(ts) => {
                    event.timestamp_ms = ts;
                    ok.push(event);
                }
                Err(e) => {
                    failed.push(event.id.clone());
                    last = Some(e);
                }
            }
        }
        (ok, failed, last)
    }
}

/// The shard of an event id.
pub fn shard_of(id: &str) -> u32 {
    // The remainder is below EVENT_SHARDS, so it fits.
    (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % u64::from(EVENT_SHARDS)) as u32
}

/// The partition key of an event: tenant, minute, shard.
pub fn partition_key(event: &Event) -> String {
    let minute = event.timestamp_ms.div_euclid(60_000);
    let shard = shard_of(&event.id);
    format!("{}#{minute}#{shard:02}", event.tenant)
}

/// The sort key of an event: time, then id, so a shard reads in time order.
pub fn sort_key(event: &Event) -> String {
    format!("{:013}#{}", event.timestamp_ms, event.id)
}

/// Marks an item written by a history import ([`crate::stream::StreamRecord::is_imported`]).
const IMPORTED: &str = "imported";

/// The item an event is stored as, written at `now_secs`. It expires its retention after the
/// event's time, but never sooner than a day after the write, so the rollup job can seal
/// imported history before DynamoDB's TTL deletes it.
pub fn item(event: &Event, retention_secs: i64, now_secs: i64) -> HashMap<String, AttributeValue> {
    let s = AttributeValue::S;
    let n = |v: i64| AttributeValue::N(v.to_string());
    let mut item = HashMap::from([
        (PK.to_owned(), s(partition_key(event))),
        (SK.to_owned(), s(sort_key(event))),
        ("id".to_owned(), s(event.id.clone())),
        ("tenant".to_owned(), s(event.tenant.to_string())),
        ("kind".to_owned(), s(event.kind().to_owned())),
        ("name".to_owned(), s(event.name.clone())),
        ("ts".to_owned(), n(event.timestamp_ms)),
        // The whole event as JSON: the stream consumer and the sealer parse it back into an
        // Event, so the item's attribute layout never leaks past this adapter.
        (
            "data".to_owned(),
            s(serde_json::to_string(event).unwrap_or_default()),
        ),
        (
            EXPIRES_AT.to_owned(),
            n((event.timestamp_ms.div_euclid(1000) + retention_secs)
                .max(now_secs + pulse_metrics::rollup::IMPORT_GRACE_SECS)),
        ),
    ]);
    if let Some(visitor) = &event.visitor {
        item.insert(
            GSI1_PK.to_owned(),
            s(format!("{}#v#{visitor}", event.tenant)),
        );
        item.insert(GSI1_SK.to_owned(), s(sort_key(event)));
    }
    item
}

fn id_of(request: &WriteRequest) -> String {
    request
        .put_request()
        .and_then(|p| p.item().get("id"))
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

impl DynamoEvents {
    /// Writes one chunk of ≤ 25 items, retrying unprocessed ones with jittered exponential
    /// backoff until `deadline`; returns the ids left unwritten and the last error.
    async fn write_chunk(
        &self,
        mut pending: Vec<WriteRequest>,
        deadline: Instant,
    ) -> (Vec<String>, Option<StoreError>) {
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(25))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(usize::MAX)
            .build();
        loop {
            let call = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await;
            let last_error = match call {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.table))
                        .unwrap_or_default();
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, items = pending.len(), "BatchWriteItem failed; retrying");
                    Some(StoreError::Unavailable(Box::new(e)))
                }
            };
            if pending.is_empty() {
                return (Vec::new(), None);
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(1));
            if Instant::now() + delay >= deadline {
                return (pending.iter().map(id_of).collect(), last_error);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

impl DynamoEvents {
    /// Every event of one shard of a tenant's minute, all pages.
    async fn shard_events(&self, pk: String) -> Result<Vec<Event>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(":p", AttributeValue::S(pk.clone()))
            .projection_expression("#d, #i")
            .expression_attribute_names("#d", "data")
            .expression_attribute_names("#i", IMPORTED)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let data = item.get("data").and_then(|v| v.as_s().ok());
                let mut event = data.and_then(|d| serde_json::from_str::<Event>(d).ok());
                match &mut event {
                    Some(e) => {
                        e.imported =
                            item.get(IMPORTED).and_then(|v| v.as_bool().ok()) == Some(&true);
                    }
                    None => tracing::warn!(%pk, "a raw event item without a readable event"),
                }
                event
            })
            .collect())
    }
}

impl EventReader for DynamoEvents {
    async fn minute_events(
        &self,
        tenant: &pulse_core::identity::TenantId,
        minute: i64,
        shards: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<Event>, StoreError> {
        let wanted: Vec<u32> = if shards.is_empty() {
            (0..EVENT_SHARDS).collect()
        } else {
            shards.iter().copied().collect()
        };
        let shards: Vec<Result<Vec<Event>, StoreError>> = futures::stream::iter(wanted)
            .map(|shard| self.shard_events(format!("{tenant}#{minute}#{shard:02}")))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut events = Vec::new();
        for shard in shards {
            events.extend(shard?);
        }
        Ok(events)
    }
}

impl EventWriter for DynamoEvents {
    async fn write_events(&self, events: &[Event], deadline: Instant) -> Result<(), Incomplete> {
        self.write(events, deadline, false).await
    }

    async fn write_imported(&self, events: &[Event], deadline: Instant) -> Result<(), Incomplete> {
        self.write(events, deadline, true).await
    }
}

impl DynamoEvents {
    /// Claims, then writes in batches; `imported` items carry the flag the stream skips.
    async fn write(
        &self,
        events: &[Event],
        deadline: Instant,
        imported: bool,
    ) -> Result<(), Incomplete> {
        let (settled, unclaimed, claim_error) = self.settle(events).await;
        let now = chrono::Utc::now().timestamp();
        let requests: Vec<WriteRequest> = settled
            .iter()
            .filter_map(|e| {
                let mut item = item(e, self.retention_secs, now);
                if imported {
                    item.insert(IMPORTED.to_owned(), AttributeValue::Bool(true));
                }
                let put = PutRequest::builder().set_item(Some(item)).build().ok()?;
                Some(WriteRequest::builder().put_request(put).build())
            })
            .collect();
        let chunks: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
        let outcomes: Vec<(Vec<String>, Option<StoreError>)> = futures::stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk, deadline))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut unstored = unclaimed;
        let mut last_error = claim_error;
        for (ids, err) in outcomes {
            unstored.extend(ids);
            last_error = last_error.or(err);
        }
        if unstored.is_empty() {
            return Ok(());
        }
        let stored = events
            .iter()
            .map(|e| e.id.clone())
            .filter(|id| !unstored.contains(id))
            .collect();
        Err(Incomplete {
            stored,
            unstored,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use pulse_core::identity::TenantId;
    use pulse_ingest::events::{Body, Event};
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    fn event(id: &str) -> Event {
        Event {
            id: id.to_owned(),
            tenant: TenantId::parse("acme").expect("tenant"),
            timestamp_ms: 1_795_341_600_123,
            name: "cpu".into(),
            tags: Default::default(),
            visitor: None,
            correlation_id: None,
            supplied_id: false,
            imported: false,
            body: Body::Metric {
                value: 1.0,
                unit: None,
            },
        }
    }

    /// A BatchWriteItem endpoint that leaves the first item of each call unprocessed for the
    /// first `unprocessed_rounds` calls, and records every id it stored.
    async fn fake(unprocessed_rounds: usize) -> (String, Arc<Mutex<Vec<String>>>) {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(0usize));
        let log = stored.clone();
        let app = Router::new().route(
            "/",
            post(move |body: String| {
                let (log, calls) = (log.clone(), calls.clone());
                async move {
                    let req: Value = serde_json::from_str(&body).unwrap_or_default();
                    let (table, items) = req["RequestItems"]
                        .as_object()
                        .and_then(|m| m.iter().next())
                        .map(|(t, v)| (t.clone(), v.as_array().cloned().unwrap_or_default()))
                        .unwrap_or_default();
                    let n = {
                        let mut c = calls.lock().expect("lock");
                        *c += 1;
                        *c
                    };
                    let (kept, stored_now) = if n <= unprocessed_rounds {
                        items.split_at(1.min(items.len()))
                    } else {
                        items.split_at(0)
                    };
                    for i in stored_now {
                        if let Some(id) = i["PutRequest"]["Item"]["id"]["S"].as_str() {
                            log.lock().expect("lock").push(id.to_owned());
                        }
                    }
                    let body = json!({"UnprocessedItems": if kept.is_empty() { json!({}) } else { json!({table: kept}) }});
                    (StatusCode::OK, body.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, stored)
    }

    fn events_at(url: &str) -> DynamoEvents {
        DynamoEvents::from_client(crate::test_client(url), "events", 7)
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_until_every_event_is_stored() {
        // Given a table that leaves an item unprocessed on each of the first three calls
        let (url, stored) = fake(3).await;
        let events: Vec<Event> = (0..60).map(|i| event(&format!("e{i}"))).collect();
        // When 60 events (three BatchWriteItem chunks) are written
        let outcome = events_at(&url)
            .write_events(&events, Instant::now() + Duration::from_secs(10))
            .await;
        // Then all are stored, each exactly once
        assert!(outcome.is_ok(), "{outcome:?}");
        let mut ids = stored.lock().expect("lock").clone();
        ids.sort();
        let mut want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        want.sort();
        assert_eq!(ids, want);
    }

    #[tokio::test]
    async fn a_deadline_reports_exactly_which_events_are_stored() {
        // Given a table that never processes the first item of a call
        let (url, stored) = fake(usize::MAX).await;
        let events: Vec<Event> = (0..3).map(|i| event(&format!("e{i}"))).collect();
        // When the deadline passes
        let err = events_at(&url)
            .write_events(&events, Instant::now() + Duration::from_millis(300))
            .await
            .expect_err("incomplete");
        // Then the stored and unstored ids partition the batch, as the table saw them
        assert_eq!(err.unstored.len(), 1);
        let mut stored_ids = stored.lock().expect("lock").clone();
        stored_ids.sort();
        let mut reported = err.stored.clone();
        reported.sort();
        assert_eq!(reported, stored_ids);
        assert_eq!(err.stored.len() + err.unstored.len(), 3);
    }

    #[test]
    fn a_retried_event_maps_to_the_same_key_and_shards_spread() {
        let e = event("same-id");
        assert_eq!(partition_key(&e), partition_key(&e.clone()));
        assert_eq!(sort_key(&e), "1795341600123#same-id");
        assert!(partition_key(&e).starts_with("acme#29922360#"));
        let shards: std::collections::BTreeSet<String> = (0..200)
            .map(|i| partition_key(&event(&format!("id-{i}"))))
            .collect();
        assert_eq!(
            shards.len(),
            EVENT_SHARDS as usize,
            "200 ids cover every shard"
        );
    }
}
