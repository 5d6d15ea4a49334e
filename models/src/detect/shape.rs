//! Day shape: a part of the day unlike the same part of the days before it. A holiday, a
//! missing daily peak or a night of work at daytime levels has no value and no short sequence
//! the series has not shown, so the contexts miss it; the day's shape shows it.
//!
//! A day (its rows, from the series' spacing) is cut into [`PARTS`] parts. When a part ends,
//! its mean is compared with the median of the same part over the last [`DAYS`] days; the
//! difference is measured in the usual size of such differences (the median of the last
//! [`RING`] of them). A part is unusual when it is at least [`SHAPE_Z`] of those away *and*
//! farther than any part before it (after the first [`MIN_DAYS`] days): every series has
//! irregular days, and only a record says more than that the series is irregular.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Parts a day is cut into.
pub const PARTS: usize = 3;
/// Days of the same part a part is compared with (their median).
const DAYS: usize = 14;
/// Days of a part seen before it is judged, and before its distance can set the record.
const MIN_DAYS: usize = 4;
/// Recent differences whose median is the usual size of one.
const RING: usize = 128;
/// Fewest differences seen before a part is judged.
const MIN_DIFFS: usize = 20;
/// Usual differences away at which a part that sets the record is unusual.
pub const SHAPE_Z: f64 = 6.0;
/// Fewest and most rows a day may have for its shape to be followed.
const MIN_ROWS: usize = 2 * PARTS;
const MAX_ROWS: usize = 100_000;

/// What a part of the day was, judged when it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    /// The part's mean, and the median of the same part over the last days.
    pub mean: f64,
    pub expected: f64,
    /// The usual size of a part's difference from its expected mean.
    pub usual: f64,
    /// Whether it is unusual (far, and the farthest yet).
    pub unusual: bool,
}

/// The day-shape state of one series (about 1.5 KB).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DayShape {
    /// Rows per part; 0 when the series' days are not followed.
    rows: u32,
    sum: f64,
    filled: u32,
    /// Parts ended so far.
    parts: u64,
    /// For each part of the day, its means over the last [`DAYS`] days.
    same: Vec<VecDeque<f64>>,
    /// The last [`RING`] differences from the expected mean.
    differences: VecDeque<f64>,
    /// The farthest part so far, in usual differences.
    farthest: f64,
}

impl DayShape {
    /// Follows days of `rows_per_day` rows (off below two rows a part, or above 100,000).
    pub fn new(rows_per_day: usize) -> Self {
        if !(MIN_ROWS..=MAX_ROWS).contains(&rows_per_day) {
            return Self::default();
        }
        Self {
            rows: u32::try_from(rows_per_day / PARTS).unwrap_or(0),
            same: vec![VecDeque::with_capacity(DAYS); PARTS],
            differences: VecDeque::with_capacity(RING),
            ..Self::default()
        }
    }

    /// Adds the next value; when it ends a part, the part judged (before it is learnt from).
    pub fn push(&mut self, x: f64) -> Option<Part> {
        if self.rows == 0 {
            return None;
        }
        self.sum += x;
        self.filled += 1;
        if self.filled < self.rows {
            return None;
        }
        let mean = self.sum / f64::from(self.rows);
        (self.sum, self.filled) = (0.0, 0);
        if !mean.is_finite() {
            // Values near f64's limits overflow a part's sum: such a part teaches nothing.
            return None;
        }
        let phase = usize::try_from(self.parts % PARTS as u64).unwrap_or(0);
        self.parts += 1;
        let same = &mut self.same[phase];
        let judged = if same.len() >= MIN_DAYS {
            let expected = median(same.iter().copied());
            let difference = mean - expected;
            let part = (self.differences.len() >= MIN_DIFFS).then(|| {
                let usual = median(self.differences.iter().map(|v| v.abs()));
                let z = if usual > 0.0 {
                    difference.abs() / usual
                } else if difference == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                };
                let record = z > self.farthest;
                if self.parts > (MIN_DAYS * PARTS) as u64 {
                    self.farthest = self.farthest.max(z);
                }
                Part {
                    mean,
                    expected,
                    usual,
                    unusual: record && z >= SHAPE_Z,
                }
            });
            if self.differences.len() == RING {
                self.differences.pop_front();
            }
            self.differences.push_back(difference);
            part
        } else {
            None
        };
        if same.len() == DAYS {
            same.pop_front();
        }
        same.push_back(mean);
        judged
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
