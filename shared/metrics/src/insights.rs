//! What Pulse keeps of its forecasting models, per tenant and metric: the last fit (its
//! forecast, model, accuracy and version), the history of its measured accuracy, and retrain
//! jobs. Data only: fitting is `pulse-insights`' (it needs the models), storing is
//! `pulse-store`'s.
//!
//! A fit forecasts a horizon of days from the day it was made (the retrain job fits
//! [`DEFAULT_HORIZON`]; a prediction asking for more is fitted for its own horizon), and it
//! answers predictions of that horizon until the next retrain or the next day.

use crate::aggregate::Bucket;
use pulse_core::identity::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Days a fit forecasts unless asked for more.
pub const DEFAULT_HORIZON: usize = 7;
/// The most days a prediction may ask for.
pub const MAX_HORIZON: usize = 30;
/// Fewest complete days of history a fit needs (four weeks: the weekly pattern seen four
/// times).
pub const MIN_DAYS: usize = 28;
/// Days of history a fit reads (a year, and the calibration's margin).
pub const HISTORY_DAYS: i64 = 400;
const DAY: i64 = 86_400;

/// Which daily figure of a metric is forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    Count,
    Sum,
}

impl Aggregation {
    /// `count` or `sum`.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "count" => Some(Self::Count),
            "sum" => Some(Self::Sum),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
        }
    }

    /// This figure of a bucket.
    pub fn of(self, b: &Bucket) -> f64 {
        match self {
            Self::Count => b.count as f64,
            Self::Sum => b.sum,
        }
    }
}

/// Most tags a series selector names.
pub const MAX_SELECTOR_TAGS: usize = 8;
/// Longest series selector, in bytes: a fit's sort key holds it beside a metric name of up to
/// 256 bytes, under DynamoDB's 1,024-byte limit on a sort key.
pub const MAX_SELECTOR_LEN: usize = 700;

/// One series of a metric, chosen by tags: `tag=value` pairs joined by commas
/// (`source=Twitter,device=mobile`), as a prediction's `series` parameter names it. It selects
/// every series of the metric whose tags hold all of them, so naming fewer tags than a series
/// has forecasts their sum (`source=Twitter` is Twitter's traffic on every device). `=`
/// separates because tag keys may hold `:`; a value is everything after the first `=`, so it
/// may hold `=` but not `,`. The folded series of tag sets past a metric's cap reads
/// `__other__` for every tag, as a query's filter does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesSelector(BTreeMap<String, String>);

impl SeriesSelector {
    /// The selector `text` names, or why it names none.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(format!("longer than {MAX_SELECTOR_LEN} bytes"));
        }
        let mut tags = BTreeMap::new();
        for pair in text.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!("`{pair}` is not tag=value"));
            };
            let (k, v) = (k.trim(), v.trim());
            if !pulse_ingest::events::valid_tag_key(k) {
                return Err(format!(
                    "`{k}` is not a tag key (letters, digits, '_', '.', ':' and '-')"
                ));
            }
            if v.is_empty() || v.chars().any(char::is_control) {
                return Err(format!(
                    "the value of `{k}` is empty or holds control characters"
                ));
            }
            if tags.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(format!("`{k}` is named twice"));
            }
        }
        if tags.len() > MAX_SELECTOR_TAGS {
            return Err(format!("{} tags; at most {MAX_SELECTOR_TAGS}", tags.len()));
        }
        Ok(Self(tags))
    }

    /// Whether a series with `tags` is one of those selected.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| crate::query::tag(tags, k) == v)
    }
}

/// The canonical form: pairs in tag order, so one selection has one name (and one stored fit).
impl std::fmt::Display for SeriesSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Rolling-origin accuracy of a fit on its metric's own last weeks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub mase: Option<f64>,
    /// 1 − MAPE over the days whose actual value was not zero.
    pub accuracy: Option<f64>,
    pub coverage80: Option<f64>,
    pub coverage95: Option<f64>,
    /// Weekly origins it was measured over (up to 8).
    pub cuts: usize,
}

/// One forecast day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// The day (ISO-8601 date, UTC).
    pub date: String,
    pub forecast: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// A metric's fitted forecaster, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub metric: String,
    /// The series forecast ([`SeriesSelector`]'s canonical form), or none for the metric's
    /// total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    pub aggregation: Aggregation,
    /// What made the forecast (an ensemble's members, or a fallback for a short history).
    pub model: String,
    /// When it was fitted (ISO-8601 UTC).
    pub trained_at: String,
    /// The first forecast day (the day it was fitted, UTC midnight, epoch s).
    pub from_day: i64,
    /// Complete days of history it learnt from.
    pub history_days: usize,
    pub accuracy: Accuracy,
    /// Its horizon: days from `from_day`.
    pub points: Vec<ForecastPoint>,
    /// Counts the fits of this metric and aggregation (set by the store on write).
    #[serde(default)]
    pub version: u64,
}

impl Fit {
    /// Whether this fit still answers a prediction made at `now` (epoch s): it was made today.
    pub fn is_current(&self, now: i64) -> bool {
        self.from_day == now.div_euclid(DAY) * DAY
    }
}

/// One day's measured accuracy of a metric's fit: the accuracy history shows drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRecord {
    pub metric: String,
    /// As [`Fit::series`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    pub aggregation: Aggregation,
    /// The day it was measured (ISO-8601 date).
    pub date: String,
    pub model: String,
    pub version: u64,
    pub accuracy: Accuracy,
}

/// Where a retrain job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

/// A retrain requested through the API (`POST /api/v1/predictions/retrain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainJob {
    pub id: String,
    pub tenant: TenantId,
    pub status: JobStatus,
    /// ISO-8601 UTC.
    pub requested_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `metric/aggregation` of each fit made.
    #[serde(default)]
    pub fitted: Vec<String>,
    /// Metrics passed over, with why (too little history, no data).
    #[serde(default)]
    pub skipped: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A metric's streaming detector as stored between runs: the start of the last minute it
/// scored (epoch s) and its state (`pulse_models::detect::Detector`'s bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorState {
    pub metric: String,
    pub last_minute: i64,
    pub state: Vec<u8>,
}

/// An anomalous minute found as minutes seal, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedAnomaly {
    pub metric: String,
    /// The minute's start (epoch s).
    pub minute: i64,
    pub value: f64,
    pub score: f64,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    /// What fired (`new_level`, `new_pattern`).
    pub feature: String,
    /// When it was found (epoch s): within two minutes of the minute's end.
    pub detected_at: i64,
}

/// What a rollup run sealed of a tenant: what the detectors may score up to (exclusive), and
/// from where a metric they have not met yet may have data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedThrough {
    pub tenant: TenantId,
    /// Epoch s: the oldest minute the run sealed.
    pub from: i64,
    /// Epoch s: every minute before it is sealed, or had no event.
    pub through: i64,
}

/// A metric's complete daily figures before `today` (UTC midnight, epoch s) from its first
/// day with data, a day without a bucket zero (nothing happened, not a gap); `(metric, day
/// start, bucket)` as `Totals` reads them.
pub fn daily_values(
    totals: &[(String, i64, Bucket)],
    metric: &str,
    aggregation: Aggregation,
    today: i64,
) -> Vec<f64> {
    let days: Vec<(i64, f64)> = totals
        .iter()
        .filter(|(m, start, _)| m == metric && *start < today)
        .map(|(_, start, b)| (start.div_euclid(DAY) * DAY, aggregation.of(b)))
        .collect();
    let Some(first) = days.iter().map(|(s, _)| *s).min() else {
        return Vec::new();
    };
    let n = usize::try_from((today - first) / DAY).unwrap_or(0);
    let mut values = vec![0.0; n];
    for (start, v) in days {
        if let Ok(i) = usize::try_from((start - first) / DAY)
            && i < n
        {
            values[i] += v;
        }
    }
    values
}

/// The aggregations worth a fit for a metric: its count, and its sum when values are not
/// all one (a sum of ones is the count again).
pub fn aggregations_of(totals: &[(String, i64, Bucket)], metric: &str) -> Vec<Aggregation> {
    let valued = totals
        .iter()
        .any(|(m, _, b)| m == metric && (b.sum - b.count as f64).abs() > 1e-9);
    if valued {
        vec![Aggregation::Count, Aggregation::Sum]
    } else {
        vec![Aggregation::Count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::tests::tags;

    fn bucket(count: u64, sum: f64) -> Bucket {
        Bucket {
            count,
            sum,
            ..Bucket::default()
        }
    }

    #[test]
    fn a_series_selector_has_one_name_whatever_the_order_it_was_written_in() {
        // Given one selection written in two orders, with spaces and a value holding `=`
        let a = SeriesSelector::parse("source=Twitter, device=mobile,q=a=b");
        let b = SeriesSelector::parse("q=a=b,device=mobile,source=Twitter");
        // Then both are the same selector, named in tag order
        assert_eq!(a, b);
        assert_eq!(
            a.map(|s| s.to_string()),
            Ok("device=mobile,q=a=b,source=Twitter".to_owned())
        );
    }

    #[test]
    fn a_series_selector_selects_the_series_holding_all_its_tags() {
        let Ok(twitter) = SeriesSelector::parse("source=Twitter") else {
            panic!("a valid selector was refused");
        };
        // A series with more tags than named is selected (their sum is forecast)
        assert!(twitter.matches(&tags(&[("source", "Twitter"), ("device", "mobile")])));
        assert!(!twitter.matches(&tags(&[("source", "Google"), ("device", "mobile")])));
        assert!(!twitter.matches(&tags(&[("device", "mobile")])));
        // The folded series answers `__other__` for every tag, as a query's filter
        let Ok(other) = SeriesSelector::parse("source=__other__") else {
            panic!("the folded series' selector was refused");
        };
        assert!(other.matches(&tags(&[(crate::query::FOLDED, "")])));
        assert!(!twitter.matches(&tags(&[(crate::query::FOLDED, "")])));
    }

    #[test]
    fn a_series_selector_that_names_no_series_says_why() {
        for bad in [
            "",
            "source",
            "=Twitter",
            "source=",
            "source=a,source=b",
            "bad key=x",
            "__other__=x",
            "source=line\nbreak",
            "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9",
        ] {
            let bad = bad.replace("\\n", "\n");
            assert!(
                SeriesSelector::parse(&bad).is_err(),
                "`{bad}` was taken as a selector"
            );
        }
        // Longer than a sort key can hold beside a metric name
        assert!(SeriesSelector::parse(&format!("a={}", "x".repeat(MAX_SELECTOR_LEN))).is_err());
        assert!(SeriesSelector::parse(&format!("a={}", "x".repeat(MAX_SELECTOR_LEN - 2))).is_ok());
    }

    #[test]
    fn daily_values_fill_days_without_a_bucket_with_zero_and_stop_before_today() {
        // Given buckets on days 0, 2 and today (day 4) of one metric, and another metric's
        let totals = vec![
            ("m".to_owned(), 0, bucket(3, 3.0)),
            ("m".to_owned(), 2 * DAY, bucket(5, 10.0)),
            ("m".to_owned(), 4 * DAY, bucket(9, 9.0)),
            ("other".to_owned(), DAY, bucket(7, 7.0)),
        ];
        // When its daily counts and sums before day 4 are read
        // Then day 1 and 3 are zero and today is left out
        assert_eq!(
            daily_values(&totals, "m", Aggregation::Count, 4 * DAY),
            vec![3.0, 0.0, 5.0, 0.0]
        );
        assert_eq!(
            daily_values(&totals, "m", Aggregation::Sum, 4 * DAY),
            vec![3.0, 0.0, 10.0, 0.0]
        );
        assert!(daily_values(&totals, "none", Aggregation::Count, 4 * DAY).is_empty());
    }

    #[test]
    fn a_metric_of_ones_is_fitted_by_count_and_a_valued_one_by_sum_too() {
        let totals = vec![
            ("ones".to_owned(), 0, bucket(3, 3.0)),
            ("money".to_owned(), 0, bucket(3, 42.5)),
        ];
        assert_eq!(aggregations_of(&totals, "ones"), vec![Aggregation::Count]);
        assert_eq!(
            aggregations_of(&totals, "money"),
            vec![Aggregation::Count, Aggregation::Sum]
        );
    }

    #[test]
    fn a_fit_answers_predictions_on_the_day_it_was_made_only() {
        let fit = Fit {
            metric: "m".into(),
            series: None,
            aggregation: Aggregation::Count,
            model: "x".into(),
            trained_at: String::new(),
            from_day: 10 * DAY,
            history_days: 30,
            accuracy: Accuracy {
                mase: None,
                accuracy: None,
                coverage80: None,
                coverage95: None,
                cuts: 0,
            },
            points: Vec::new(),
            version: 1,
        };
        assert!(fit.is_current(10 * DAY));
        assert!(fit.is_current(11 * DAY - 1));
        assert!(!fit.is_current(11 * DAY));
        assert!(!fit.is_current(10 * DAY - 1));
    }
}
