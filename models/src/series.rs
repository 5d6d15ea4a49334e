//! A series as the CLI reads it: CSV `timestamp,value` rows (other columns ignored), checked row
//! by row so that a bad file is refused with the line that is wrong, never half-read.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::io::Read;

/// One input row, with its text kept so that output can echo it unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The timestamp as written.
    pub timestamp: String,
    /// Epoch seconds (UTC).
    pub at: i64,
    /// The value as written.
    pub text: String,
    pub value: f64,
}

/// Why an input cannot be used. Lines count from 1, the header being line 1.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the input is empty: expected a header `timestamp,value` and rows under it")]
    Empty,
    #[error("the input has a header but no rows")]
    NoRows,
    #[error("the header has no `{0}` column (expected `timestamp,value`)")]
    MissingColumn(&'static str),
    #[error(
        "line {line}: `{text}` is not a timestamp (expected ISO-8601 such as 2024-01-31T00:00:00Z)"
    )]
    BadTimestamp { line: u64, text: String },
    #[error("line {line}: value `{text}` is not a number")]
    NotANumber { line: u64, text: String },
    #[error("line {line}: value `{text}` is not a finite number")]
    NotFinite { line: u64, text: String },
    #[error(
        "line {line}: timestamp {text} is before the previous row's; rows must be in time order"
    )]
    Unsorted { line: u64, text: String },
    #[error("line {line}: timestamp {text} repeats the previous row's")]
    Duplicate { line: u64, text: String },
    #[error("line {line}: {source}")]
    Csv { line: u64, source: csv::Error },
    #[error("too short a history: {rows} rows, at least {needed} needed")]
    TooShort { rows: usize, needed: usize },
    #[error(
        "the rows are too sparse for their spacing: {rows} rows span {periods} periods of {step} s (at most {MAX_FILL}× the rows, up to {MAX_PERIODS} periods)"
    )]
    TooSparse {
        rows: usize,
        periods: usize,
        step: i64,
    },
    #[error("cannot read the input: {0}")]
    Io(#[from] std::io::Error),
}

/// How strictly rows must follow each other in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Strictly increasing timestamps (forecasts and backtests place rows on a time grid).
    Strict,
    /// Rows taken as a sequence in input order: repeated or backward timestamps, as clock
    /// changes leave in real logs, are kept (streaming detection).
    Sequence,
}

/// Reads every row of a CSV with `timestamp` and `value` columns.
pub fn read(input: impl Read, order: Order) -> Result<Vec<Row>, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = match reader.headers() {
        Ok(h) if h.iter().any(|c| !c.is_empty()) => h.clone(),
        Ok(_) => return Err(InputError::Empty),
        Err(source) => return Err(InputError::Csv { line: 1, source }),
    };
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
            .ok_or(InputError::MissingColumn(name))
    };
    let (ts_col, value_col) = (column("timestamp")?, column("value")?);
    let mut rows: Vec<Row> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| InputError::Csv {
            line: source.position().map_or(0, |p| p.line()),
            source,
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let timestamp = record.get(ts_col).unwrap_or_default().to_owned();
        let text = record.get(value_col).unwrap_or_default().to_owned();
        let at = parse_time(&timestamp).ok_or_else(|| InputError::BadTimestamp {
            line,
            text: timestamp.clone(),
        })?;
        let value: f64 = text.parse().map_err(|_| InputError::NotANumber {
            line,
            text: text.clone(),
        })?;
        if !value.is_finite() {
            return Err(InputError::NotFinite { line, text });
        }
        if order == Order::Strict
            && let Some(previous) = rows.last()
        {
            if at == previous.at {
                return Err(InputError::Duplicate {
                    line,
                    text: timestamp,
                });
            }
            if at < previous.at {
                return Err(InputError::Unsorted {
                    line,
                    text: timestamp,
                });
            }
        }
        rows.push(Row {
            timestamp,
            at,
            text,
            value,
        });
    }
    if rows.is_empty() {
        return Err(InputError::NoRows);
    }
    Ok(rows)
}

/// Epoch seconds of an ISO-8601 timestamp: with an offset (`2024-01-31T00:00:00Z`), without
/// one (taken as UTC, with `T` or a space), or a bare date.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

/// ISO-8601 UTC, as forecasts print their timestamps.
pub fn format_time(at: i64) -> String {
    DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// Most periods a grid may have.
pub const MAX_PERIODS: usize = 1_000_000;
/// A grid may have at most this many periods per row.
pub const MAX_FILL: usize = 10;

/// Rows placed on a regular grid: the step is the commonest spacing of the rows; a missing
/// period is filled (from one season back when there is one, else between its neighbours),
/// rows between grid points are moved to the nearest one, and two rows on one point are
/// averaged.
#[derive(Debug, Clone, PartialEq)]
pub struct Regular {
    pub start: i64,
    pub step: i64,
    pub values: Vec<f64>,
    /// How many periods were filled.
    pub filled: usize,
}

impl Regular {
    /// Places strictly ordered rows on their grid; `period` guides how gaps are filled. Rows
    /// so sparse that the grid would be mostly filled-in values (or huge) are refused.
    pub fn of(rows: &[Row], period_of: impl Fn(i64) -> usize) -> Result<Self, InputError> {
        let step = step_of(rows);
        let start = rows.first().map_or(0, |r| r.at);
        let last = rows.last().map_or(0, |r| r.at);
        let periods =
            usize::try_from((last.saturating_sub(start) + step / 2) / step).unwrap_or(usize::MAX);
        if periods >= MAX_PERIODS || periods / MAX_FILL >= rows.len() {
            return Err(InputError::TooSparse {
                rows: rows.len(),
                periods,
                step,
            });
        }
        let n = periods + 1;
        let mut sums = vec![(0.0, 0u32); n];
        for r in rows {
            let i = usize::try_from((r.at - start + step / 2) / step)
                .unwrap_or(0)
                .min(n - 1);
            sums[i].0 += r.value;
            sums[i].1 += 1;
        }
        let mut values: Vec<f64> = sums
            .iter()
            .map(|&(s, c)| if c > 0 { s / f64::from(c) } else { f64::NAN })
            .collect();
        let filled = values.iter().filter(|v| v.is_nan()).count();
        let period = period_of(step);
        for i in 0..n {
            if values[i].is_nan() {
                values[i] = if period > 1 && i >= period && values[i - period].is_finite() {
                    values[i - period]
                } else {
                    let before = values[..i].iter().rev().find(|v| v.is_finite()).copied();
                    let after_at = (i + 1..n).find(|&j| values[j].is_finite());
                    match (before, after_at) {
                        (Some(b), Some(j)) => {
                            let back = (0..i).rev().find(|&k| values[k].is_finite()).unwrap_or(0);
                            b + (values[j] - b) * (i - back) as f64 / (j - back) as f64
                        }
                        (Some(b), None) => b,
                        (None, Some(j)) => values[j],
                        (None, None) => 0.0,
                    }
                };
            }
        }
        Ok(Self {
            start,
            step,
            values,
            filled,
        })
    }

    /// When the period after the last value starts (epoch s).
    pub fn next(&self, ahead: usize) -> i64 {
        self.start + self.step * (self.values.len() + ahead) as i64
    }
}

/// The commonest spacing between consecutive rows (the median), at least one second.
fn step_of(rows: &[Row]) -> i64 {
    let mut gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|g| *g > 0)
        .collect();
    if gaps.is_empty() {
        return 86_400;
    }
    gaps.sort_unstable();
    gaps[gaps.len() / 2].max(1)
}

/// The seasonal period of a grid step: a week of days, a day of hours, else none.
pub fn period_of(step: i64) -> usize {
    match step {
        86_400 => 7,
        3_600 => 24,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, order: Order) -> Result<Vec<Row>, InputError> {
        read(text.as_bytes(), order)
    }

    #[test]
    fn iso_and_nab_style_timestamps_are_read_as_utc() {
        assert_eq!(parse_time("2024-01-31T00:00:00Z"), Some(1_706_659_200));
        assert_eq!(parse_time("2024-01-31 00:00:00"), Some(1_706_659_200));
        assert_eq!(parse_time("2024-01-31"), Some(1_706_659_200));
        assert_eq!(parse_time("2024-01-31T01:00:00+01:00"), Some(1_706_659_200));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn each_bad_input_names_its_line() {
        let cases = [
            ("", "empty"),
            ("timestamp,value\n", "no rows"),
            ("time,value\n2024-01-01,1\n", "no `timestamp` column"),
            ("timestamp,count\n2024-01-01,1\n", "no `value` column"),
            (
                "timestamp,value\n2024-01-01,1\n2024-01-02,abc\n",
                "line 3: value `abc` is not a number",
            ),
            (
                "timestamp,value\n2024-01-01,NaN\n",
                "line 2: value `NaN` is not a finite",
            ),
            (
                "timestamp,value\n2024-01-02,1\n2024-01-01,2\n",
                "line 3: timestamp 2024-01-01 is before",
            ),
            (
                "timestamp,value\n2024-01-01,1\n2024-01-01,2\n",
                "line 3: timestamp 2024-01-01 repeats",
            ),
            (
                "timestamp,value\nsoon,1\n",
                "line 2: `soon` is not a timestamp",
            ),
        ];
        for (input, expected) in cases {
            let e = rows(input, Order::Strict).expect_err(input).to_string();
            assert!(e.contains(expected), "{input:?}: {e}");
        }
    }

    #[test]
    fn a_sequence_keeps_repeated_and_backward_timestamps_in_input_order() {
        let r = rows("timestamp,value\n2014-03-09 03:00:00,1\n2014-03-09 03:00:00,2\n2014-03-09 02:00:00,3\n", Order::Sequence)
            .expect("a sequence");
        assert_eq!(
            r.iter().map(|r| r.value).collect::<Vec<_>>(),
            [1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn rows_too_sparse_for_their_spacing_are_refused_not_expanded() {
        let r = rows(
            "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,1\n2024-01-01T00:00:02Z,1\n2034-01-01T00:00:00Z,1\n",
            Order::Strict,
        )
        .expect("rows");
        let e = Regular::of(&r, period_of).expect_err("ten years of seconds");
        assert!(e.to_string().contains("too sparse"), "{e}");
    }

    #[test]
    fn a_missing_day_is_filled_from_the_week_before() {
        let mut text = String::from("timestamp,value\n");
        for d in 1..=20 {
            if d != 15 {
                text.push_str(&format!("2024-01-{d:02}T00:00:00Z,{}\n", d % 7));
            }
        }
        let r = rows(&text, Order::Strict).expect("rows");
        let g = Regular::of(&r, period_of).expect("a grid");
        assert_eq!((g.step, g.values.len(), g.filled), (86_400, 20, 1));
        assert_eq!(g.values[14], g.values[7]);
        assert_eq!(format_time(g.next(0)), "2024-01-21T00:00:00Z");
    }
}
