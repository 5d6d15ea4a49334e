//! Time in Pulse: the bucket resolutions (1m → 5m → 1h → 1d), their windows, and how long
//! each is kept.

use serde::Serialize;
use std::fmt;

/// A bucket resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    FiveMinutes,
    Hour,
    Day,
}

impl Resolution {
    /// Finest first.
    pub const ALL: [Resolution; 4] = [
        Resolution::Minute,
        Resolution::FiveMinutes,
        Resolution::Hour,
        Resolution::Day,
    ];

    /// The window length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::FiveMinutes => 300,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// The name used in keys and in the API: `1m`, `5m`, `1h`, `1d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The resolution this one rolls up into.
    pub fn coarser(self) -> Option<Self> {
        match self {
            Resolution::Minute => Some(Resolution::FiveMinutes),
            Resolution::FiveMinutes => Some(Resolution::Hour),
            Resolution::Hour => Some(Resolution::Day),
            Resolution::Day => None,
        }
    }

    /// The resolution this one is rolled up from.
    pub fn finer(self) -> Option<Self> {
        match self {
            Resolution::Minute => None,
            Resolution::FiveMinutes => Some(Resolution::Minute),
            Resolution::Hour => Some(Resolution::FiveMinutes),
            Resolution::Day => Some(Resolution::Hour),
        }
    }

    /// The start (epoch s) of the window holding `epoch_secs`. Days are UTC days.
    pub fn window_start(self, epoch_secs: i64) -> i64 {
        epoch_secs - epoch_secs.rem_euclid(self.secs())
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each resolution is kept, in days (template parameters `MinuteRetentionDays`,
/// `FiveMinuteRetentionDays`, `HourRetentionDays`, `DayRetentionDays`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minute_days: i64,
    pub five_minute_days: i64,
    pub hour_days: i64,
    pub day_days: i64,
}

impl Default for Retention {
    /// 1m 7 d, 5m 30 d, 1h 1 y, 1d 5 y.
    fn default() -> Self {
        Self {
            minute_days: 7,
            five_minute_days: 30,
            hour_days: 365,
            day_days: 5 * 365,
        }
    }
}

impl Retention {
    pub fn days(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Minute => self.minute_days,
            Resolution::FiveMinutes => self.five_minute_days,
            Resolution::Hour => self.hour_days,
            Resolution::Day => self.day_days,
        }
    }

    /// The TTL (epoch s) of a `resolution` bucket starting at `start`, written at `now`
    /// (epoch s): its window's end plus the retention. History imported past that is kept a
    /// day from the write ([`IMPORT_GRACE_SECS`]), so the rollup that reads it finds it before
    /// DynamoDB's TTL deletes it.
    pub fn expires_at(&self, resolution: Resolution, start: i64, now: i64) -> i64 {
        let keep = self.days(resolution).saturating_mul(86_400);
        (start + resolution.secs() + keep).max(now + IMPORT_GRACE_SECS)
    }

    /// Whether a `resolution` bucket starting at `start` is still kept at `now` (epoch s): an
    /// import writes no bucket that its retention has already dropped.
    pub fn keeps(&self, resolution: Resolution, start: i64, now: i64) -> bool {
        start + resolution.secs() + self.days(resolution).saturating_mul(86_400) > now
    }
}

/// How long a bucket of imported history outlives its write at least.
pub const IMPORT_GRACE_SECS: i64 = 86_400;

/// One window of one tenant at one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub resolution: Resolution,
    /// Epoch s, aligned to the resolution.
    pub start: i64,
}

impl Window {
    /// The window of `resolution` holding `epoch_secs`.
    pub fn at(resolution: Resolution, epoch_secs: i64) -> Self {
        Self {
            resolution,
            start: resolution.window_start(epoch_secs),
        }
    }

    pub fn end(&self) -> i64 {
        self.start + self.resolution.secs()
    }

    /// Whether the window is over at `now` (epoch s), allowing `grace_secs` for events in
    /// flight (the stream's batching window, clock skew).
    pub fn is_closed(&self, now: i64, grace_secs: i64) -> bool {
        self.end() + grace_secs <= now
    }

    /// The coarser window this one rolls into.
    pub fn parent(&self) -> Option<Window> {
        self.resolution.coarser().map(|r| Window::at(r, self.start))
    }
}

impl Serialize for Resolution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A relative length such as `90m`, `24h`, `7d`, `2w`, in seconds: the one parser of query
/// ranges, view ranges and funnel windows.
/// Any text is safe here: the unit is the last *character*, so a multi-byte one is refused,
/// never split.
pub fn relative(text: &str) -> Option<i64> {
    let unit = text.chars().next_back()?;
    let n = &text[..text.len() - unit.len_utf8()];
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}
