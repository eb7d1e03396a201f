//! Serde helpers that validate single fields while they are read (policies, patterns,
//! ranges, query templates), shared by the types and the YAML reader.

use regex::Regex;
use serde::{Deserialize, Deserializer};

use super::query::query_template_problem;
use crate::duration::parse_duration;
use crate::verdict::InconclusivePolicy;

/// At most this many HTTP requests per side in one check, so a check can never flood a pod.
pub const MAX_HTTP_REQUESTS: u32 = 1000;
/// At most this many HTTP requests per second per side.
pub const MAX_HTTP_RATE_PER_SECOND: f64 = 50.0;
/// At most this many bytes of log are read per pod, so a chatty pod cannot exhaust memory.
pub const MAX_LOG_BYTES_PER_POD: i64 = 16 * 1024 * 1024;

/// Parses an inconclusive policy: `fail`, `pass`, `wait` (for the default limit) or
/// `wait:5m`.
pub fn parse_inconclusive_policy(text: &str) -> Result<InconclusivePolicy, String> {
    match text.trim() {
        "fail" => Ok(InconclusivePolicy::Fail),
        "pass" => Ok(InconclusivePolicy::Pass),
        "wait" => Ok(InconclusivePolicy::default()),
        other => match other.strip_prefix("wait:") {
            Some(limit) => parse_duration(limit)
                .map(|limit| InconclusivePolicy::Wait { limit })
                .map_err(|e| e.to_string()),
            None => Err(format!(
                "{other:?} is not one of fail, pass, wait, wait:<duration>"
            )),
        },
    }
}

pub(super) fn de_policy<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<InconclusivePolicy, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_inconclusive_policy(&text).map_err(serde::de::Error::custom)
}

pub(super) fn de_patterns<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Regex>, D::Error> {
    let sources = Vec::<String>::deserialize(deserializer)?;
    if sources.is_empty() {
        return Err(serde::de::Error::custom("at least one pattern is needed"));
    }
    sources
        .iter()
        .map(|source| {
            Regex::new(source)
                .map_err(|e| serde::de::Error::custom(format!("invalid pattern {source:?}: {e}")))
        })
        .collect()
}

pub(super) fn ser_patterns<S: serde::Serializer>(
    patterns: &[Regex],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(patterns.iter().map(Regex::as_str))
}

pub(super) fn de_non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be a number >= 0"
        )))
    }
}

/// The fewest bytes of log per pod a check may be limited to.
pub const MIN_LOG_BYTES_PER_POD: i64 = 1024;

pub(super) fn de_log_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = i64::deserialize(deserializer)?;
    if (MIN_LOG_BYTES_PER_POD..=MAX_LOG_BYTES_PER_POD).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} bytes: must be between {MIN_LOG_BYTES_PER_POD} and {MAX_LOG_BYTES_PER_POD}"
        )))
    }
}

pub(super) fn de_fraction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be between 0 and 1"
        )))
    }
}

pub(super) fn de_score<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be between 0 and 100"
        )))
    }
}

pub(super) fn de_confidence<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value > 0.5 && value < 1.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be above 0.5 and below 1 (e.g. 0.98)"
        )))
    }
}

pub(super) fn de_requests<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = u32::deserialize(deserializer)?;
    validate_requests(value).map_err(serde::de::Error::custom)
}

pub(super) fn de_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    validate_rate(value).map_err(serde::de::Error::custom)
}

/// Checks an HTTP request count against [`MAX_HTTP_REQUESTS`].
pub fn validate_requests(value: u32) -> Result<u32, String> {
    if (1..=MAX_HTTP_REQUESTS).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} requests: must be between 1 and {MAX_HTTP_REQUESTS}"
        ))
    }
}

/// Checks an HTTP request rate against [`MAX_HTTP_RATE_PER_SECOND`].
pub fn validate_rate(value: f64) -> Result<f64, String> {
    if value > 0.0 && value <= MAX_HTTP_RATE_PER_SECOND {
        Ok(value)
    } else {
        Err(format!(
            "{value} requests per second: must be above 0 and at most {MAX_HTTP_RATE_PER_SECOND}"
        ))
    }
}

pub(super) fn de_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let path = String::deserialize(deserializer)?;
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(serde::de::Error::custom(format!(
            "{path:?} must start with /"
        )))
    }
}

pub(super) fn de_query<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let query = String::deserialize(deserializer)?;
    match query_template_problem(&query) {
        None => Ok(query),
        Some(problem) => Err(serde::de::Error::custom(problem)),
    }
}
