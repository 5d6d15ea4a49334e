//! Breakdowns: every series of every metric of a tenant in one window, kept together so a
//! dashboard view that splits several metrics by a tag reads one record per window instead
//! of each metric's registry and series shards.
//!
//! A breakdown is derived from what the rollup job and imports already compute, never from
//! the live stream: sealing a minute writes its breakdown ([`Kind::Sealed`]), rolling a
//! window merges its finer windows' breakdowns of the same kind, an hour's sessions write
//! [`Kind::Sessions`], and an import writes its old events' own ([`Kind::Imported`], keyed by
//! the import so a resend rewrites rather than adds). The kinds hold disjoint events, so a
//! window's breakdown is the merge of all its records.

use crate::aggregate::{Aggregation, Bucket, OTHER_SERIES, TOTAL_SERIES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who wrote a breakdown record, which is also what a roll merges: a window's records of one
/// kind are rolled from its finer windows' records of that kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Sealed minutes and their rollups.
    Sealed,
    /// Hours' sessions and their rollups.
    Sessions,
    /// An import's events too old to be sealed, by the import's contribution id.
    Imported(String),
}

impl Kind {
    /// The record's key part (`m`, `s`, `i{contribution}`).
    pub fn key(&self) -> String {
        match self {
            Kind::Sealed => "m".to_owned(),
            Kind::Sessions => "s".to_owned(),
            Kind::Imported(id) => format!("i{id}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Kind> {
        match key {
            "m" => Some(Kind::Sealed),
            "s" => Some(Kind::Sessions),
            _ => key
                .strip_prefix('i')
                .filter(|id| !id.is_empty())
                .map(|id| Kind::Imported(id.to_owned())),
        }
    }
}

/// One series of one metric in a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    metric: String,
    series: String,
    tags: BTreeMap<String, String>,
    bucket: Bucket,
}

/// The part of a breakdown one stored chunk holds.
#[derive(Debug, Serialize, Deserialize)]
struct Part {
    entries: Vec<Entry>,
}

/// Every series of every metric in one window: `(metric, series)` → tags and bucket.
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    pub series: BTreeMap<(String, String), (BTreeMap<String, String>, Bucket)>,
}

impl Breakdown {
    /// The buckets of an aggregation (a sealed minute, an hour's sessions), with the tags it
    /// knows; a series folded into `__other__` has none.
    pub fn of<R>(aggregation: &Aggregation<R>) -> Self {
        let mut tags: BTreeMap<(&str, &str), &BTreeMap<String, String>> = BTreeMap::new();
        for (k, t) in &aggregation.series {
            tags.insert((k.metric.as_str(), k.series.as_str()), t);
        }
        let mut out = Breakdown::default();
        for (key, (bucket, _)) in &aggregation.buckets {
            let known = tags
                .get(&(key.metric.as_str(), key.series.as_str()))
                .map(|t| (*t).clone())
                .unwrap_or_default();
            out.add(&key.metric, &key.series, &known, bucket);
        }
        out
    }

    /// Merges `bucket` into the series' (tags as first seen; `__other__` keeps none). A
    /// metric's total is not a series of it and is left out (views read totals apart).
    pub fn add(
        &mut self,
        metric: &str,
        series: &str,
        tags: &BTreeMap<String, String>,
        bucket: &Bucket,
    ) {
        if series == TOTAL_SERIES {
            return;
        }
        let entry = self
            .series
            .entry((metric.to_owned(), series.to_owned()))
            .or_insert_with(|| {
                let tags = if series == OTHER_SERIES {
                    BTreeMap::new()
                } else {
                    tags.clone()
                };
                (tags, Bucket::default())
            });
        entry.1.merge(bucket);
    }

    /// Adds every series of `other`.
    pub fn merge(&mut self, other: &Breakdown) {
        for ((metric, series), (tags, bucket)) in &other.series {
            self.add(metric, series, tags, bucket);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Encoded in chunks of at most about [`crate::funnels::CHUNK_BYTES`], each decoding
    /// alone; buckets are frozen, as stored buckets are.
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let entries: Vec<(Entry, usize)> = self
            .series
            .iter()
            .map(|((metric, series), (tags, bucket))| {
                let mut bucket = bucket.clone();
                bucket.freeze();
                let entry = Entry {
                    metric: metric.clone(),
                    series: series.clone(),
                    tags: tags.clone(),
                    bucket,
                };
                let size = postcard::to_allocvec(&entry).map_or(0, |b| b.len());
                (entry, size)
            })
            .collect();
        crate::funnels::encode_chunked(
            &entries,
            |(_, size)| *size,
            |part| Part {
                entries: part.into_iter().map(|(e, _)| e).collect(),
            },
        )
    }

    /// Adds one stored chunk's series; `false` when the chunk does not decode.
    pub fn add_chunk(&mut self, chunk: &[u8]) -> bool {
        let Ok(part) = postcard::from_bytes::<Part>(chunk) else {
            return false;
        };
        for e in part.entries {
            self.add(&e.metric, &e.series, &e.tags, &e.bucket);
        }
        true
    }

    /// The series of `metric` with their tags.
    pub fn of_metric<'a>(
        &'a self,
        metric: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a BTreeMap<String, String>, &'a Bucket)> + 'a {
        self.series
            .range((metric.to_owned(), String::new())..)
            .take_while(move |((m, _), _)| m == metric)
            .map(|((_, s), (tags, bucket))| (s.as_str(), tags, bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(values: &[f64]) -> Bucket {
        let mut b = Bucket::default();
        for v in values {
            b.add(*v, None);
        }
        b
    }

    fn tags(source: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("source".to_owned(), source.to_owned())])
    }

    #[test]
    fn a_breakdown_reads_back_whole_from_its_chunks_however_many_series_it_holds() {
        // Given 20,000 series of two metrics, enough for several chunks
        let mut b = Breakdown::default();
        for i in 0..20_000 {
            let metric = if i % 2 == 0 { "page_view" } else { "order" };
            b.add(
                metric,
                &format!("s{i}"),
                &tags(&format!("src{i}")),
                &bucket(&[i as f64]),
            );
        }
        // When it is encoded and decoded chunk by chunk
        let chunks = b.encode();
        let mut back = Breakdown::default();
        for c in &chunks {
            assert!(back.add_chunk(c));
        }
        // Then every chunk fits an item and every series is back with its tags and figures
        assert!(chunks.len() > 1, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < 400_000));
        assert_eq!(back.series.len(), 20_000);
        let (t, b7) = &back.series[&("order".to_owned(), "s7".to_owned())];
        assert_eq!(t, &tags("src7"));
        assert_eq!((b7.count, b7.sum), (1, 7.0));
        assert_eq!(back.of_metric("order").count(), 10_000);
    }

    #[test]
    fn merging_breakdowns_adds_each_series_and_keeps_the_others() {
        // Given two windows' breakdowns sharing one series
        let mut a = Breakdown::default();
        a.add("page_view", "x", &tags("Google"), &bucket(&[1.0, 2.0]));
        let mut b = Breakdown::default();
        b.add("page_view", "x", &tags("Google"), &bucket(&[3.0]));
        b.add("page_view", "y", &tags("Bing"), &bucket(&[4.0]));
        // When they are merged
        a.merge(&b);
        // Then the shared series is added up and the other kept
        let x = &a.series[&("page_view".to_owned(), "x".to_owned())].1;
        assert_eq!((x.count, x.sum), (3, 6.0));
        assert_eq!(a.of_metric("page_view").count(), 2);
        assert_eq!(a.of_metric("order").count(), 0);
    }

    #[test]
    fn a_record_kind_reads_back_from_its_key() {
        for kind in [Kind::Sealed, Kind::Sessions, Kind::Imported("ab12".into())] {
            assert_eq!(Kind::from_key(&kind.key()), Some(kind));
        }
        assert_eq!(Kind::from_key("i"), None);
        assert_eq!(Kind::from_key("x"), None);
    }
}
