//! Streaming anomaly detection: one detector per series, fed one point at a time; a point's
//! score uses only the points up to it. The whole state is about 5.4 KB and serializes with
//! postcard, so it is stored between invocations.
//!
//! The detector learns what the series does as *contexts*: the last 1, 2, 3, 5 and 8 values,
//! each quantized into levels whose width is an eighth of the range seen while it learns (levels
//! beyond that range are new levels, not a rescaling, so what was learnt stays valid). A point's
//! score is the weighted share of its contexts never seen before: a value at a level never
//! visited scores 1, a familiar level in an unfamiliar sequence scores less. This is the idea
//! behind the contextual detectors near the top of the Numenta Anomaly Benchmark (CAD OSE;
//! ARTime's categories), made causal: the range is learnt online instead of given. Levels
//! are remembered exactly (a new level must never read as seen); longer contexts in a hashed
//! 4 KB set, which a collision can make answer "seen" for a context never seen — so a context
//! whose shorter prefix is new counts as new without asking it (every context is remembered
//! with all its prefixes, so such a context cannot have been seen).
//!
//! A series that keeps producing new contexts (a noisy one, or one that drifts) makes novelty
//! less surprising: the detector tracks, for each context length, how often a context of that
//! length has been new lately (about [`RATE`]⁻¹ points of memory), and a point scores the
//! part of its novelty above those rates, over the most it could score above them. A new
//! level still scores 1 (every context is new); in a noisy series where eight-value contexts
//! are always new, one more new eight-value context says nothing and scores nothing.
//!
//! The levels exist at [`SCALES`] scales, each four times as wide as the one before, and every
//! point is remembered at all of them; a point is scored at the finest scale across which the
//! *recent* range (extremes fading towards the expected value) spans at most [`SCALE_LEVELS`]
//! levels. A spike widens the recent range, so for a while the values between the usual ones
//! and the spike are judged in wider levels, already learnt; as the range fades the fine scale
//! returns. Every scale is learnt from the start, so changing scale loses nothing: this is the
//! causal stand-in for knowing a file's value range in advance, which ARTime and CAD OSE were
//! given on NAB.
//!
//! A new level *inside* the range the series has already spanned (a gap between the values of
//! a spiky, heavy-tailed series: after one spike to 50, the first value at 20) is less
//! surprising than one beyond it: it scores between half and all of its novelty, by how far it
//! is from the expected value ([`INTERIOR`]). Values beyond the spanned range, and new
//! patterns, score as before.
//!
//! A series whose rows' spacing gives it days ([`Detector::with_days`]) is also followed by the
//! shape of its days ([`shape`]): a third of a day unlike the same third of the last two weeks,
//! and farther from it than any before, scores [`SHAPE_SCORE`] — a holiday, a missing daily
//! peak or a night at daytime levels, which have no value and no short sequence the series
//! lacks.
//!
//! After an alarm (a score at or above [`ALARM`]) the detector rests for [`REST`] points: an
//! incident is reported once, at its start, rather than on every point while it lasts; a point
//! during the rest that would have been an alarm extends it. Only a
//! point more novel than the alarm that started the rest, or more than four times as far from
//! the expected value, is scored during it (a second, larger incident right after a first is not
//! hidden).

pub mod shape;

use serde::{Deserialize, Serialize};
use shape::DayShape;
use std::collections::VecDeque;

/// Points the detector learns from before it scores (scored 0).
pub const WARMUP: u64 = 150;
/// The score at which a point is an alarm.
pub const ALARM: f64 = 0.55;
/// Points after an alarm that are not scored again (scored 0).
pub const REST: u64 = 70;
/// How many times farther from the expected value than the alarm a point must be to break
/// the rest.
const REST_BREAK: f64 = 4.0;
/// Levels across the range seen while learning.
const LEVELS: f64 = 8.0;
/// The context lengths, most recent value first; shorter contexts weigh more.
const LENGTHS: [usize; 5] = [1, 2, 3, 5, 8];
/// Bits of the seen-context set (a 4 KB bitmap).
const SEEN_BITS: usize = 1 << 15;
/// Levels looked up exactly: this many below the learnt range, and up to [`LEVEL_SET_BITS`]
/// in all (a series a hundred times its learnt range is still exact).
const LEVEL_SET_BELOW: i64 = 256;
const LEVEL_SET_BITS: usize = 1 << 10;
/// Smoothing of the expected value and its deviation (about 1/α points of memory).
const ALPHA: f64 = 0.01;
/// Smoothing of each context length's rate of novelty, which is taken off a point's novelty.
const RATE: f64 = 0.001;
/// What a new level inside the range the series has already spanned scores, at least, as a
/// share of its novelty: all of it from [`INTERIOR_FAR`] deviations away from the expected
/// value, half of it at the expected value.
const INTERIOR: f64 = 0.5;
/// Deviations from the expected value at which a new level inside the spanned range scores in
/// full.
const INTERIOR_FAR: f64 = 4.0;
/// Scales of levels: widths of 1, 4, 16, … 4^7 = 16,384 times the learnt level width (a
/// series that spikes to ten thousand times its learnt range still has a scale where the
/// spikes are a few levels; twice as wide per scale reached only 128 times), each learnt from
/// every point.
const SCALES: usize = 8;
/// Each scale's width over the one before, as a power of two (widths stay exact in floating
/// point).
const SCALE_STEP_BITS: u32 = 2;
/// The scale a point is scored at is the finest across which the recent range spans at most
/// this many levels.
const SCALE_LEVELS: f64 = 16.0;
/// How fast the recent range's extremes fade towards the expected value (about 1/`FADE`
/// points of memory).
const FADE: f64 = 0.003;

/// What a part of the day unlike the same part of the last days scores ([`shape`]): above
/// every new pattern, below a new level.
pub const SHAPE_SCORE: f64 = 0.8;

/// The first bytes of a stored state: its format's version. Version 1 (no prefix) had no
/// novelty rates, version 2 one scale, version 3 scales twice as wide each, version 4 no day
/// shape.
const STATE_VERSION: [u8; 2] = *b"D5";

/// A point's score and what explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// In [0, 1]; higher is more anomalous.
    pub score: f64,
    /// What the explanation is about: the point's value, or for [`Feature::DayShape`] the mean
    /// of the part of the day it ends.
    pub observed: f64,
    /// The value expected from the recent level (for a day shape, the part's usual mean).
    pub expected: f64,
    /// The usual band around it (± three mean absolute deviations; for a day shape, ±
    /// [`shape::SHAPE_Z`] usual differences).
    pub low: f64,
    pub high: f64,
    /// What fired.
    pub feature: Feature,
}

/// What made a point anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feature {
    /// Nothing unusual (or the detector is still learning, or resting after an alarm).
    None,
    /// A value at a level the series has never been at.
    NewLevel,
    /// Familiar values in a sequence never seen.
    NewPattern,
    /// A part of the day unlike the same part of the last days ([`shape`]); the point is the
    /// part's last, and its expected value and band are the part's mean's.
    DayShape,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::None => "none",
            Feature::NewLevel => "new_level",
            Feature::NewPattern => "new_pattern",
            Feature::DayShape => "day_shape",
        }
    }
}

/// The detector of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    n: u64,
    min: f64,
    max: f64,
    /// Level width and origin, fixed when learning ends.
    width: f64,
    origin: f64,
    mean: f64,
    deviation: f64,
    window: VecDeque<f64>,
    seen: Vec<u64>,
    /// The levels visited, exactly, from [`LEVEL_SET_BELOW`] levels below the learnt range.
    levels_seen: Vec<Vec<u64>>,
    rest_until: u64,
    /// The recent range: extremes that fade towards the expected value; it picks the scale.
    recent_low: f64,
    recent_high: f64,
    /// The novelty of the alarm that started the rest, and its distance from the expected
    /// value: only a more novel point, or one [`REST_BREAK`] times as far, ends the rest.
    rest_novelty: f64,
    rest_distance: f64,
    /// How often each context length has been new at each scale since the levels were fixed.
    rates: [[f64; LENGTHS.len()]; SCALES],
    /// The values seen while learning the levels, replayed into the seen contexts once the
    /// levels are fixed (then emptied): without them the first scored points would all be
    /// novel, their contexts never recorded.
    learning: Vec<f64>,
    /// The shape of the series' days, when it has them ([`Detector::with_days`]).
    shape: DayShape,
}

impl Default for Detector {
    fn default() -> Self {
        Self {
            n: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            width: 0.0,
            origin: 0.0,
            mean: 0.0,
            deviation: 0.0,
            window: VecDeque::with_capacity(LENGTHS[LENGTHS.len() - 1]),
            seen: vec![0; SEEN_BITS / 64],
            levels_seen: vec![vec![0; LEVEL_SET_BITS / 64]; SCALES],
            rest_until: 0,
            recent_low: 0.0,
            recent_high: 0.0,
            rest_novelty: 0.0,
            rest_distance: 0.0,
            rates: [[0.0; LENGTHS.len()]; SCALES],
            learning: Vec::new(),
            shape: DayShape::default(),
        }
    }
}

impl Detector {
    /// A detector of a series with `rows_per_day` rows a day, which also follows the shape of
    /// its days ([`shape`]); [`Detector::default`] does not (its spacing is unknown).
    pub fn with_days(rows_per_day: usize) -> Self {
        Self {
            shape: DayShape::new(rows_per_day),
            ..Self::default()
        }
    }

    /// Scores the next value and learns from it.
    pub fn score(&mut self, x: f64) -> Score {
        self.n += 1;
        if self.n == 1 {
            self.mean = x;
        }
        let expected = self.mean;
        let band = 3.0 * self.deviation;
        let error = x - self.mean;
        // Whether x falls inside the range spanned so far, and how far from the expected value.
        let interior = self.n > 1 && x >= self.min && x <= self.max;
        let far = if self.deviation > 0.0 {
            (error.abs() / (INTERIOR_FAR * self.deviation)).min(1.0)
        } else {
            1.0
        };
        let scale = self.scale();
        self.mean += ALPHA * error;
        self.deviation += ALPHA * (error.abs() - self.deviation);
        self.min = self.min.min(x);
        if self.n == 1 {
            (self.recent_low, self.recent_high) = (x, x);
        }
        self.recent_low = x.min(self.recent_low + FADE * (self.mean - self.recent_low));
        self.recent_high = x.max(self.recent_high - FADE * (self.recent_high - self.mean));
        self.max = self.max.max(x);
        self.window.push_front(x);
        self.window.truncate(LENGTHS[LENGTHS.len() - 1]);
        if self.width <= 0.0 && self.n < WARMUP {
            self.learning.push(x);
        }
        let (mut novelty, mut feature) = self.novelty(scale);
        if feature == Feature::NewLevel && interior {
            novelty *= INTERIOR + (1.0 - INTERIOR) * far;
        }
        let (mut observed, mut expected, mut band) = (x, expected, band);
        if let Some(part) = self.shape.push(x).filter(|p| p.unusual)
            && novelty < SHAPE_SCORE
        {
            (novelty, feature) = (SHAPE_SCORE, Feature::DayShape);
            (observed, expected, band) = (part.mean, part.expected, shape::SHAPE_Z * part.usual);
        }
        let resting = self.n < self.rest_until
            && novelty <= self.rest_novelty
            && error.abs() <= REST_BREAK * self.rest_distance;
        if resting && novelty >= ALARM {
            // Still as novel as an alarm: the same incident goes on, and so does the rest.
            self.rest_until = self.n + REST;
        }
        let (score, feature) = if self.n <= WARMUP || resting {
            (0.0, Feature::None)
        } else {
            if novelty >= ALARM {
                self.rest_until = self.n + REST;
                self.rest_novelty = novelty;
                self.rest_distance = error.abs();
            }
            (
                novelty,
                if novelty > 0.0 {
                    feature
                } else {
                    Feature::None
                },
            )
        };
        Score {
            score,
            observed,
            expected,
            low: expected - band,
            high: expected + band,
            feature,
        }
    }

    /// The scale to score the next point at (from the range before it): the finest whose
    /// levels cut the recent range into at most [`SCALE_LEVELS`].
    fn scale(&self) -> usize {
        let span = self.recent_high - self.recent_low;
        if self.width <= 0.0 || span.is_nan() || span <= self.width * SCALE_LEVELS {
            return 0;
        }
        let ratio = span / (self.width * SCALE_LEVELS);
        ((ratio.log2() / f64::from(SCALE_STEP_BITS)).ceil() as usize).min(SCALES - 1)
    }

    /// The weighted share of the current contexts not seen before at `scale` (and remembers
    /// the contexts at every scale).
    fn novelty(&mut self, scale: usize) -> (f64, Feature) {
        if self.width <= 0.0 {
            let range = self.max - self.min;
            if self.n < WARMUP || range <= 0.0 {
                return (0.0, Feature::None);
            }
            self.width = range / LEVELS;
            self.origin = self.min;
            let learnt = std::mem::take(&mut self.learning);
            for end in 1..=learnt.len() {
                for scale in 0..SCALES {
                    let recent: Vec<i64> = learnt
                        [end.saturating_sub(LENGTHS[LENGTHS.len() - 1])..end]
                        .iter()
                        .rev()
                        .map(|v| self.level(*v, scale))
                        .collect();
                    for &len in &LENGTHS {
                        if len <= recent.len() {
                            self.remember(scale, &recent[..len]);
                        }
                    }
                }
            }
        }
        let mut scored = (0.0, Feature::None);
        for at in 0..SCALES {
            let mut buffer = [0i64; LENGTHS[LENGTHS.len() - 1]];
            for (level, v) in buffer.iter_mut().zip(&self.window) {
                *level = self.level(*v, at);
            }
            let levels = &buffer[..self.window.len()];
            let (mut novel, mut possible) = (0.0, 0.0);
            let mut feature = Feature::None;
            for (i, &len) in LENGTHS.iter().enumerate() {
                if len > levels.len() {
                    break;
                }
                let weight = 1.0 / (1.0 + i as f64);
                // A context whose shorter prefix was never seen cannot have been seen either:
                // the hashed set's collisions must not say otherwise.
                let new = if self.remember(at, &levels[..len]) || feature != Feature::None {
                    1.0
                } else {
                    0.0
                };
                if new > 0.0 && feature == Feature::None {
                    feature = if len == 1 {
                        Feature::NewLevel
                    } else {
                        Feature::NewPattern
                    };
                }
                let rate = self.rates[at][i];
                novel += weight * (new - rate).max(0.0);
                possible += weight * (1.0 - rate);
                self.rates[at][i] += RATE * (new - rate);
            }
            if at == scale && possible > 0.0 {
                scored = (novel / possible, feature);
            }
        }
        scored
    }

    /// The level of `v` at `scale` (levels `4^scale` times the learnt width).
    fn level(&self, v: f64, scale: usize) -> i64 {
        let widths = 1u64 << (SCALE_STEP_BITS as usize * scale);
        ((v - self.origin) / (self.width * widths as f64)).floor() as i64
    }

    /// Remembers a context (its levels, most recent first); whether it is new. A single level
    /// near the learnt range is looked up exactly (whether a value is at a level never visited
    /// must not depend on a hash), longer contexts and far levels in the hashed set.
    fn remember(&mut self, scale: usize, context: &[i64]) -> bool {
        let exact = match context {
            [level] => level
                .checked_add(LEVEL_SET_BELOW)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < LEVEL_SET_BITS),
            _ => None,
        };
        let (words, bit) = match exact {
            Some(i) => (&mut self.levels_seen[scale], i),
            None => (&mut self.seen, context_bit(scale, context)),
        };
        let new = words[bit / 64] & (1u64 << (bit % 64)) == 0;
        words[bit / 64] |= 1u64 << (bit % 64);
        new
    }

    /// The state as bytes: [`STATE_VERSION`], then postcard (whose format is stable across its
    /// 1.x versions).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = STATE_VERSION.to_vec();
        bytes.extend(postcard::to_allocvec(self).unwrap_or_default());
        bytes
    }

    /// A detector from [`Detector::to_bytes`]; `None` for bytes that are not one of this
    /// version (a stored state of an older detector starts learning again).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes.strip_prefix(&STATE_VERSION)?).ok()
    }
}

/// The bit of a context (its levels, most recent first) in the seen-context set.
fn context_bit(scale: usize, levels: &[i64]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (levels.len() as u64) ^ ((scale as u64) << 8);
    for level in levels {
        h ^= *level as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly, and the set keeps only low bits: a finalizer spreads every
    // bit of the hash into them (without it, a level never seen could read as seen).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % SEEN_BITS as u64) as usize
}

#[cfg(test)]
mod tests;
