//! Exactly-once live aggregation: which stream records a bucket has already applied.
//!
//! A stream record is identified by the Events partition its item lives in (`{tenant}#{minute}#
//! {shard}`) and its sequence number. DynamoDB Streams delivers the records of one partition
//! key in order, each shard is processed in order and a parent shard before its children, so
//! for one partition the applied records of a bucket are always a prefix: a bucket needs only
//! the highest applied sequence per partition (its [`Watermarks`]). A minute bucket's events
//! come from at most 16 partitions (the minute's shards), so the map stays tiny.
//!
//! A retried or bisected batch, or a redelivery after a partial failure, carries records some
//! buckets have applied: [`Watermarks::check`] tells the writer to apply all, none, or only the
//! records past the marks, and the new marks are written in the same conditional write as the
//! bucket, so a record is added once by construction.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A stream sequence number: a decimal string of up to 40 digits, compared as a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sequence(String);

impl Sequence {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn digits(&self) -> &str {
        self.0.trim_start_matches('0')
    }
}

impl Ord for Sequence {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.digits(), other.digits());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for Sequence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a record sits: its Events partition and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub partition: String,
    pub sequence: Sequence,
}

/// The highest applied sequence number per Events partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks(pub BTreeMap<String, Sequence>);

/// What a writer does with a contribution, given the bucket's marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No record of the contribution was applied: apply it whole.
    New,
    /// Every record was applied before: write nothing.
    Applied,
    /// Some were: apply only the records past the marks.
    Partly,
}

impl Watermarks {
    /// Whether the record at `p` was applied.
    pub fn covers(&self, p: &Position) -> bool {
        self.0.get(&p.partition).is_some_and(|m| p.sequence <= *m)
    }

    /// Raises the marks to include `p`.
    pub fn advance(&mut self, p: &Position) {
        match self.0.get_mut(&p.partition) {
            Some(m) if *m >= p.sequence => {}
            Some(m) => *m = p.sequence.clone(),
            None => {
                self.0.insert(p.partition.clone(), p.sequence.clone());
            }
        }
    }

    /// Raises the marks to include every mark of `other`.
    pub fn join(&mut self, other: &Watermarks) {
        for (partition, sequence) in &other.0 {
            self.advance(&Position {
                partition: partition.clone(),
                sequence: sequence.clone(),
            });
        }
    }

    /// What to do with a contribution spanning `span` (its lowest and highest record per
    /// partition), given these marks.
    pub fn check(&self, span: &Span) -> Check {
        let (mut any_new, mut any_applied) = (false, false);
        for (partition, (low, high)) in &span.0 {
            match self.0.get(partition) {
                None => any_new = true,
                Some(m) if high <= m => any_applied = true,
                Some(m) if low > m => any_new = true,
                Some(_) => return Check::Partly,
            }
        }
        match (any_new, any_applied) {
            (_, false) => Check::New,
            (false, true) => Check::Applied,
            (true, true) => Check::Partly,
        }
    }
}

/// The lowest and highest record a contribution holds, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Span(pub BTreeMap<String, (Sequence, Sequence)>);

impl Span {
    /// The span of `positions`.
    pub fn of<'a>(positions: impl IntoIterator<Item = &'a Position>) -> Self {
        let mut out: BTreeMap<String, (Sequence, Sequence)> = BTreeMap::new();
        for p in positions {
            match out.get_mut(&p.partition) {
                Some((low, high)) => {
                    if p.sequence < *low {
                        *low = p.sequence.clone();
                    }
                    if p.sequence > *high {
                        *high = p.sequence.clone();
                    }
                }
                None => {
                    out.insert(
                        p.partition.clone(),
                        (p.sequence.clone(), p.sequence.clone()),
                    );
                }
            }
        }
        Self(out)
    }

    /// The marks after applying this span on top of `before`.
    pub fn applied_over(&self, before: &Watermarks) -> Watermarks {
        let mut after = before.clone();
        for (partition, (_, high)) in &self.0 {
            after.advance(&Position {
                partition: partition.clone(),
                sequence: high.clone(),
            });
        }
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: &str, seq: &str) -> Position {
        Position {
            partition: partition.into(),
            sequence: Sequence::new(seq),
        }
    }

    #[test]
    fn sequences_compare_as_numbers_of_any_length() {
        assert!(Sequence::new("9") < Sequence::new("10"));
        assert!(Sequence::new("000123") == Sequence::new("123").max(Sequence::new("000123")));
        assert!(
            Sequence::new("4421584500000000017450439091")
                < Sequence::new("4421584500000000017450439092")
        );
        assert!(Sequence::new("100000000000000000000000000000000000000") > Sequence::new("99"));
    }

    #[test]
    fn a_contribution_is_new_applied_or_partly_applied() {
        let mut marks = Watermarks::default();
        let first = Span::of(&[at("p1", "10"), at("p1", "12"), at("p2", "5")]);
        assert_eq!(marks.check(&first), Check::New);
        marks = first.applied_over(&marks);
        // The same records again (a retried batch): nothing to apply
        assert_eq!(marks.check(&first), Check::Applied);
        assert_eq!(
            marks.check(&Span::of(&[at("p1", "11")])),
            Check::Applied,
            "an earlier record of a partition is covered"
        );
        // A redelivery that extends past the marks: only the rest
        assert_eq!(
            marks.check(&Span::of(&[at("p1", "12"), at("p1", "13")])),
            Check::Partly
        );
        assert_eq!(
            marks.check(&Span::of(&[at("p1", "12"), at("p3", "1")])),
            Check::Partly
        );
        // Later records only: new
        assert_eq!(
            marks.check(&Span::of(&[at("p1", "13"), at("p3", "1")])),
            Check::New
        );
        assert!(marks.covers(&at("p2", "5")) && !marks.covers(&at("p2", "6")));
    }
}
