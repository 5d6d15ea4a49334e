//! Funnels (`POST /api/v1/funnels/query`): how many visitors went through 2 to 10 steps in
//! order, each step a page path (exact or with `*` wildcards) or an event name, within a
//! conversion window from their first step.
//!
//! A funnel needs each visitor's events in order, which no rollup keeps. So when the rollup
//! job computes an hour's sessions (it reads that hour's visitor events anyway) it also
//! writes the hour's **trail** ([`Trail`]): per visitor (a 64-bit hash of the id), the
//! offsets and step keys (`p:` + path for page views, `e:` + name for other events) of their
//! events, compactly encoded. A funnel query reads the trails of its range (one Query per
//! megabyte) and matches steps greedily: the first event matching step 1 enters the funnel,
//! then each next step is the first matching event after the previous one and within the
//! window from the entry. Trails, like sessions, cover hours at least 30 minutes old.

use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use pulse_ingest::events::{Body, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Steps a funnel may have.
pub const MAX_STEPS: usize = 10;
/// The longest range a funnel reads, in days.
pub const MAX_RANGE_DAYS: i64 = 31;
/// Encoded trail bytes per stored chunk (DynamoDB items hold 400 KB).
pub const CHUNK_BYTES: usize = 350_000;
const HOUR: i64 = 3_600;

/// `items` encoded in parts of at most about [`CHUNK_BYTES`], each `part(items)` of its own
/// (so each decodes alone); `size` is an item's encoded size, about.
pub(crate) fn encode_chunked<I: Clone, P: Serialize>(
    items: &[I],
    size: impl Fn(&I) -> usize,
    part: impl Fn(Vec<I>) -> P,
) -> Vec<Vec<u8>> {
    let base = postcard::to_allocvec(&part(Vec::new())).map_or(0, |b| b.len());
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = base;
    for item in items {
        let add = size(item);
        if bytes + add > CHUNK_BYTES && !current.is_empty() {
            chunks.extend(postcard::to_allocvec(&part(std::mem::take(&mut current))).ok());
            bytes = base;
        }
        current.push(item.clone());
        bytes += add;
    }
    chunks.extend(postcard::to_allocvec(&part(current)).ok());
    chunks
}

/// One hour of visitor events, reduced to what funnels match on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trail {
    /// Epoch s of the hour.
    pub hour: i64,
    /// Step keys, indexed by the events.
    pub keys: Vec<String>,
    /// Per visitor hash: (seconds into the hour, key index), in time order.
    pub visitors: Vec<(u64, Vec<(u16, u32)>)>,
}

/// The step key of an event.
fn key(e: &Event) -> String {
    match &e.body {
        Body::PageView { path, .. } => format!("p:{path}"),
        _ => format!("e:{}", e.name),
    }
}

impl Trail {
    /// The trail of the hour starting at `hour` from `events` (those with a visitor inside
    /// the hour; an id seen twice counts once).
    pub fn build<'a>(hour: i64, events: impl IntoIterator<Item = &'a Event>) -> Trail {
        let mut seen = HashSet::new();
        let mut keys: Vec<String> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut by_visitor: BTreeMap<u64, Vec<(i64, String, u32)>> = BTreeMap::new();
        for e in events {
            let Some(visitor) = e.visitor.as_deref() else {
                continue;
            };
            let at = e.timestamp_ms.div_euclid(1000);
            if !(hour..hour + HOUR).contains(&at) || !seen.insert(e.id.as_str()) {
                continue;
            }
            let k = key(e);
            let i = *index.entry(k.clone()).or_insert_with(|| {
                keys.push(k);
                (keys.len() - 1) as u32
            });
            by_visitor
                .entry(xxhash_rust::xxh3::xxh3_64(visitor.as_bytes()))
                .or_default()
                .push((e.timestamp_ms, e.id.clone(), i));
        }
        let visitors = by_visitor
            .into_iter()
            .map(|(v, mut list)| {
                list.sort();
                let steps = list
                    .into_iter()
                    .map(|(ms, _, i)| ((ms.div_euclid(1000) - hour) as u16, i))
                    .collect();
                (v, steps)
            })
            .collect();
        Trail {
            hour,
            keys,
            visitors,
        }
    }

    /// The trail encoded in chunks of at most about [`CHUNK_BYTES`] (each decodes alone).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        encode_chunked(
            &self.visitors,
            |(_, steps)| 10 + steps.len() * 6,
            |visitors| Trail {
                hour: self.hour,
                keys: self.keys.clone(),
                visitors,
            },
        )
    }

    /// Adds `other`'s steps (an import into an hour that has a trail). Funnels match steps in
    /// order, so a step already there (same second, same key) is kept once: merging the same
    /// trail twice changes nothing.
    pub fn merge(&mut self, other: &Trail) {
        let index: Vec<u32> = other
            .keys
            .iter()
            .map(|k| match self.keys.iter().position(|x| x == k) {
                Some(i) => i as u32,
                None => {
                    self.keys.push(k.clone());
                    (self.keys.len() - 1) as u32
                }
            })
            .collect();
        let mut by_visitor: BTreeMap<u64, BTreeSet<(u16, u32)>> = self
            .visitors
            .drain(..)
            .map(|(v, steps)| (v, steps.into_iter().collect()))
            .collect();
        for (v, steps) in &other.visitors {
            let mine = by_visitor.entry(*v).or_default();
            for (second, key) in steps {
                if let Some(k) = index.get(*key as usize) {
                    mine.insert((*second, *k));
                }
            }
        }
        self.visitors = by_visitor
            .into_iter()
            .map(|(v, steps)| (v, steps.into_iter().collect()))
            .collect();
    }

    pub fn decode(bytes: &[u8]) -> Option<Trail> {
        postcard::from_bytes(bytes).ok()
    }
}

/// What a step matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A page path; `*` matches any characters.
    Path(String),
    /// An event name.
    Event(String),
}

impl Step {
    fn matches(&self, key: &str) -> bool {
        match self {
            Step::Path(pattern) => key
                .strip_prefix("p:")
                .is_some_and(|path| wildcard(pattern, path)),
            Step::Event(name) => key.strip_prefix("e:") == Some(name.as_str()),
        }
    }

    fn label(&self) -> String {
        match self {
            Step::Path(p) => p.clone(),
            Step::Event(e) => e.clone(),
        }
    }
}

/// `*`-wildcard match of a whole text.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A parsed funnel query.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub steps: Vec<Step>,
    /// Seconds from entering to the last step at most.
    pub window: i64,
    /// Epoch s, aligned down to the hour.
    pub start: i64,
    /// Epoch s, exclusive.
    pub end: i64,
}

/// Parses a funnel query at `now` (epoch s): `steps` (2 to 10 of `{"path": …}` or
/// `{"event": …}`), `window` (default `1d`), `time_range` (relative such as `"7d"`, or
/// `{start, end}`; at most 31 days). Every problem is listed by pointer.
pub fn parse(body: &Value, now: i64) -> Result<Funnel, ApiError> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid_field::<&str>(
            &[],
            "a funnel query is a JSON object",
        ));
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "steps" | "window" | "time_range") {
            errors.push(FieldError::at(&[k.as_str()], "unknown field"));
        }
    }
    let mut steps = Vec::new();
    match obj.get("steps").and_then(Value::as_array) {
        Some(list) if (2..=MAX_STEPS).contains(&list.len()) => {
            for (i, s) in list.iter().enumerate() {
                let i = i.to_string();
                let text = |k: &str| {
                    s.get(k)
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty() && t.len() <= 2048)
                };
                let one_field = s.as_object().is_some_and(|o| o.len() == 1);
                match (text("path"), text("event")) {
                    (Some(p), None) if one_field && p.starts_with('/') => {
                        steps.push(Step::Path(p.to_owned()));
                    }
                    (None, Some(e)) if one_field => steps.push(Step::Event(e.to_owned())),
                    _ => errors.push(FieldError::at(
                        &["steps", &i],
                        "a step is {\"path\": \"/pricing\"} (with * wildcards) or {\"event\": \"signup\"}",
                    )),
                }
            }
        }
        _ => errors.push(FieldError::at(
            &["steps"],
            format!("required: 2 to {MAX_STEPS} steps"),
        )),
    }
    let window = match obj.get("window") {
        None => Some(86_400),
        Some(Value::String(w)) => pulse_core::time::relative(w),
        _ => None,
    };
    if window.is_none() {
        errors.push(FieldError::at(
            &["window"],
            "a duration such as \"30m\", \"1h\", \"1d\"",
        ));
    }
    let ts = |v: &Value| match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp()),
        _ => None,
    };
    let range = match obj.get("time_range") {
        None => Some((now - 7 * 86_400, now)),
        Some(Value::String(r)) => pulse_core::time::relative(r).map(|len| (now - len, now)),
        Some(Value::Object(o)) => match (o.get("start").and_then(ts), o.get("end").map(ts)) {
            (Some(s), None) => Some((s, now)),
            (Some(s), Some(Some(e))) => Some((s, e)),
            _ => None,
        },
        _ => None,
    };
    match range {
        None => errors.push(FieldError::at(
            &["time_range"],
            "a relative range such as \"7d\", or {start, end} in RFC 3339",
        )),
        Some((s, e)) if e <= s => {
            errors.push(FieldError::at(&["time_range"], "end must be after start"));
        }
        Some((s, e)) if e - s > MAX_RANGE_DAYS * 86_400 => errors.push(FieldError::at(
            &["time_range"],
            format!("a funnel covers at most {MAX_RANGE_DAYS} days"),
        )),
        Some(_) => {}
    }
    match (errors.is_empty(), window, range) {
        (true, Some(window), Some((start, end))) => Ok(Funnel {
            steps,
            window,
            start: start - start.rem_euclid(HOUR),
            end,
        }),
        _ => Err(ApiError::Validation {
            detail: format!("{} problems with the funnel", errors.len()),
            errors,
        }),
    }
}

/// One step's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    pub step: String,
    /// Visitors who reached this step.
    pub visitors: u64,
    /// Share of the previous step's visitors (1 for the first).
    pub conversion: Option<f64>,
    /// Share of the first step's visitors.
    pub conversion_from_start: Option<f64>,
    /// Visitors of the previous step who did not reach this one.
    pub drop_off: u64,
}

/// The answer: entered, converted and each step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub entered: u64,
    pub converted: u64,
    pub conversion_rate: Option<f64>,
    pub steps: Vec<StepResult>,
}

/// Matches `funnel` against the trails of its range.
pub fn compute(funnel: &Funnel, trails: &[Trail]) -> Answer {
    // Each visitor's events over the range, in time order.
    let mut by_visitor: HashMap<u64, Vec<(i64, &str)>> = HashMap::new();
    for t in trails {
        for (v, steps) in &t.visitors {
            let list = by_visitor.entry(*v).or_default();
            for (offset, k) in steps {
                let at = t.hour + i64::from(*offset);
                if (funnel.start..funnel.end).contains(&at)
                    && let Some(key) = t.keys.get(*k as usize)
                {
                    list.push((at, key.as_str()));
                }
            }
        }
    }
    let mut reached = vec![0u64; funnel.steps.len()];
    for list in by_visitor.values_mut() {
        list.sort_by_key(|(at, _)| *at);
        let Some(entry) = list.iter().position(|(_, k)| funnel.steps[0].matches(k)) else {
            continue;
        };
        let t0 = list[entry].0;
        reached[0] += 1;
        let mut from = entry + 1;
        for (i, step) in funnel.steps.iter().enumerate().skip(1) {
            match list[from..]
                .iter()
                .position(|(at, k)| *at - t0 <= funnel.window && step.matches(k))
            {
                Some(j) => {
                    reached[i] += 1;
                    from += j + 1;
                }
                None => break,
            }
        }
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let entered = reached[0];
    let converted = *reached.last().unwrap_or(&0);
    let steps = funnel
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prev = if i == 0 { entered } else { reached[i - 1] };
            StepResult {
                step: s.label(),
                visitors: reached[i],
                conversion: ratio(reached[i], prev),
                conversion_from_start: ratio(reached[i], entered),
                drop_off: prev - reached[i],
            }
        })
        .collect();
    Answer {
        entered,
        converted,
        conversion_rate: ratio(converted, entered),
        steps,
    }
}

#[cfg(test)]
mod tests;
