//! Ingest limits: how many events a batch may hold, how long names and tags may be, how far in
//! the past or future an event may be. Every one is configuration.

/// Ingest limits. Every one is configuration (see [`Limits::from_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Events per batch.
    pub max_events: usize,
    /// Bytes per request body.
    pub max_body_bytes: usize,
    /// Characters of an event or metric name.
    pub max_name_len: usize,
    pub max_tags: usize,
    pub max_tag_key_len: usize,
    pub max_tag_value_len: usize,
    /// Characters of free text (messages, paths, titles, property values).
    pub max_text_len: usize,
    /// Properties of a custom event.
    pub max_properties: usize,
    /// Line items of an order or checkout.
    pub max_items: usize,
    /// How far in the past a timestamp may be, in milliseconds.
    pub max_past_ms: i64,
    /// How far in the future a timestamp may be, in milliseconds (clock skew).
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_body_bytes: 1024 * 1024,
            max_name_len: 128,
            max_tags: 32,
            max_tag_key_len: 64,
            max_tag_value_len: 256,
            max_text_len: 2048,
            max_properties: 64,
            max_items: 100,
            max_past_ms: 7 * 24 * 3600 * 1000,
            max_future_ms: 5 * 60 * 1000,
        }
    }
}

impl Limits {
    /// The defaults, each overridable by an `INGEST_*` variable (`INGEST_MAX_EVENTS`,
    /// `INGEST_MAX_BODY_BYTES`, `INGEST_MAX_TAGS`, `INGEST_MAX_PAST_SECS`, ...).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let n =
            |name: &str, default: usize| get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        let secs = |name: &str, default_ms: i64| {
            get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(default_ms, |s| s.saturating_mul(1000))
        };
        Self {
            max_events: n("INGEST_MAX_EVENTS", d.max_events),
            max_body_bytes: n("INGEST_MAX_BODY_BYTES", d.max_body_bytes),
            max_name_len: n("INGEST_MAX_NAME_LEN", d.max_name_len),
            max_tags: n("INGEST_MAX_TAGS", d.max_tags),
            max_tag_key_len: n("INGEST_MAX_TAG_KEY_LEN", d.max_tag_key_len),
            max_tag_value_len: n("INGEST_MAX_TAG_VALUE_LEN", d.max_tag_value_len),
            max_text_len: n("INGEST_MAX_TEXT_LEN", d.max_text_len),
            max_properties: n("INGEST_MAX_PROPERTIES", d.max_properties),
            max_items: n("INGEST_MAX_ITEMS", d.max_items),
            max_past_ms: secs("INGEST_MAX_PAST_SECS", d.max_past_ms),
            max_future_ms: secs("INGEST_MAX_FUTURE_SECS", d.max_future_ms),
        }
    }
}
