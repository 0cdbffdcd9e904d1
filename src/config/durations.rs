//! Durations as written in the file (`"90s"`, `"5m"`, a number of
//! seconds), and the ranges the keys accept.

use std::time::Duration;

use serde::Deserialize;

/// A duration written as `"90s"`, `"5m"`, `"1h"` or a number of seconds.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum DurationValue {
    Seconds(u64),
    Text(String),
}

pub(crate) fn parse_duration(key: &str, v: &DurationValue) -> Result<Duration, String> {
    let text = match v {
        DurationValue::Seconds(s) if Duration::from_secs(*s) <= MAX_DURATION => {
            return Ok(Duration::from_secs(*s));
        }
        DurationValue::Seconds(s) => {
            return Err(format!(
                "`{key}` = {s} is too large; durations go up to \"7d\" (604800 seconds)"
            ));
        }
        DurationValue::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("`{key}` = {text:?} is not a duration; write e.g. \"30s\", \"5m\" or \"1h\"")
    })?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(format!(
                "`{key}` = {text:?}: unknown unit {other:?}; use ms, s, m, h or d"
            ));
        }
    };
    // A value no setting can use (and that `Duration` cannot hold) is
    // refused here; each key then checks its own range.
    let secs = n * mult;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "`{key}` = {text:?} is too large; durations go up to \"7d\" (604800 seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `sync.timeout`: long enough for a round trip, short enough that a dead
/// connection is noticed (the watchdog grace is a few timeouts).
pub(super) const TIMEOUT_RANGE: ((Duration, &str), (Duration, &str)) = (
    (Duration::from_millis(100), "100ms"),
    (Duration::from_secs(3600), "1h"),
);
/// `sync.poll_interval` and `accounts[].poll_interval`: a poller that never
/// pauses would hammer the server; one that waits a week is not polling.
pub(super) const POLL_RANGE: ((Duration, &str), (Duration, &str)) = (
    (Duration::from_millis(100), "100ms"),
    (Duration::from_secs(24 * 3600), "24h"),
);

/// The longest duration any key accepts.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks that a duration key lies in `min..=max`; the message names the
/// key, the range and the default.
pub(super) fn check_range(
    key: &str,
    value: Duration,
    (min, min_text): (Duration, &str),
    (max, max_text): (Duration, &str),
    default: &str,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "`{key}` = {value:?} is out of range; use {min_text:?} to {max_text:?} (default {default})"
        ));
    }
    Ok(())
}
