//! Durations as people write them (`30s`, `1m30s`, `200ms`), read and written the same way
//! by the analysis spec, the verdicts and the messages.

use std::time::Duration;

use thiserror::Error;

/// A duration was written wrongly.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text:?} is not a duration like 30s, 1m30s, 200ms or 2h")]
pub struct DurationError {
    /// The text given.
    pub text: String,
}

/// Parses a duration written as a sequence of number-unit pairs (`ms`, `s`, `m`, `h`), the
/// way kubectl and Prometheus write them: `30s`, `1m30s`, `200ms`. A bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        text: text.to_string(),
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.is_empty() {
        return Err(error());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(error)?;
        if digits == 0 {
            return Err(error());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| error())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(error()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| error())?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it: `1m30s`, `200ms`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut seconds = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// Serde `with` module: a [`Duration`] as its text.
pub mod serde_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `value` as [`super::format_duration`] does.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*value))
    }

    /// Reads a duration as [`super::parse_duration`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
