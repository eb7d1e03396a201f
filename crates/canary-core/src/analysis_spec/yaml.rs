//! Reading a spec from YAML, every value validated while read so an error names its line,
//! column and field.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use super::fields::*;
use super::types::*;
use crate::duration::serde_text as duration_text;
use crate::verdict::{Direction, InconclusivePolicy, Threshold};

/// A spec that could not be read.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The YAML is invalid, a field is unknown or missing, or a value is out of range.
    #[error("{}{}: {message}", location(*line, *column), field_suffix(field))]
    Invalid {
        /// 1-based line, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// The field path, e.g. `checks[1].http.requests`.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}"),
        (Some(line), None) => format!("line {line}"),
        _ => "analysis spec".into(),
    }
}

fn field_suffix(field: &Option<String>) -> String {
    match field {
        Some(field) if !field.is_empty() && field != "." => format!(", field {field}"),
        _ => String::new(),
    }
}

/// Parses an analysis spec from YAML, validating every value.
pub fn parse_analysis_spec(yaml: &str) -> Result<AnalysisSpec, SpecError> {
    let mut failed_path: Option<String> = None;
    let raw: Result<RawSpec, serde_saphyr::Error> =
        serde_saphyr::with_deserializer_from_str(yaml, |deserializer| {
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                // Checks are read as `Spanned` to know their line, which adds a `value` level
                // to the path that is not in the file.
                let path = error.path().to_string().replace("].value", "]");
                failed_path = Some(path);
                error.into_inner()
            })
        });
    let raw = raw.map_err(|error| {
        let location = error.location();
        let mut message = error.without_snippet().to_string();
        if let Some(location) = location {
            // The location is reported separately, in front of the field.
            let suffix = format!(" at line {}, column {}", location.line(), location.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        SpecError::Invalid {
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            field: failed_path.clone(),
            message,
        }
    })?;
    raw.into_spec()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSpec {
    #[serde(default = "default_window", with = "duration_text")]
    window: Duration,
    #[serde(default = "default_pass_score", deserialize_with = "de_score")]
    pass_score: f64,
    checks: Vec<serde_saphyr::Spanned<RawCheck>>,
}

pub(super) fn default_window() -> Duration {
    DEFAULT_WINDOW
}
pub(super) fn default_pass_score() -> f64 {
    DEFAULT_PASS_SCORE
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCheck {
    name: Option<String>,
    #[serde(default = "default_critical")]
    critical: bool,
    #[serde(default, deserialize_with = "de_policy")]
    on_inconclusive: InconclusivePolicy,
    pod_health: Option<PodHealthSpec>,
    logs: Option<LogsSpec>,
    http: Option<HttpSpec>,
    prometheus: Option<RawPrometheus>,
}

pub(super) fn default_critical() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPrometheus {
    url: Option<String>,
    service: Option<ServiceRef>,
    #[serde(deserialize_with = "de_query")]
    query: String,
    range: Option<RangeSpec>,
    #[serde(default)]
    direction: Direction,
    #[serde(default = "default_confidence", deserialize_with = "de_confidence")]
    confidence: f64,
    #[serde(default = "default_tolerance", deserialize_with = "de_non_negative")]
    tolerance: f64,
    #[serde(default, deserialize_with = "de_non_negative")]
    absolute_tolerance: f64,
    max: Option<f64>,
    min: Option<f64>,
    #[serde(default = "default_query_timeout", with = "duration_text")]
    timeout: Duration,
}

pub(super) fn default_query_timeout() -> Duration {
    Duration::from_secs(10)
}

impl RawSpec {
    fn into_spec(self) -> Result<AnalysisSpec, SpecError> {
        let mut names = BTreeSet::new();
        let mut checks = Vec::with_capacity(self.checks.len());
        if self.checks.is_empty() {
            return Err(SpecError::Invalid {
                line: None,
                column: None,
                field: Some("checks".into()),
                message: "at least one check is needed".into(),
            });
        }
        for (index, spanned) in self.checks.into_iter().enumerate() {
            let line = Some(spanned.referenced.line());
            let column = Some(spanned.referenced.column());
            let invalid = |field: String, message: String| SpecError::Invalid {
                line,
                column,
                field: Some(field),
                message,
            };
            let raw = spanned.value;
            let mut probes = Vec::new();
            if let Some(spec) = raw.pod_health {
                probes.push(Probe::PodHealth(spec));
            }
            if let Some(spec) = raw.logs {
                probes.push(Probe::Logs(spec));
            }
            if let Some(spec) = raw.http {
                probes.push(Probe::Http(spec));
            }
            if let Some(spec) = raw.prometheus {
                let address = match (spec.url, spec.service) {
                    (Some(url), None) => PrometheusAddress::Url(url),
                    (None, Some(service)) => PrometheusAddress::Service(service),
                    _ => {
                        return Err(invalid(
                            format!("checks[{index}].prometheus"),
                            "give exactly one of url and service".into(),
                        ));
                    }
                };
                probes.push(Probe::Prometheus(PrometheusSpec {
                    address,
                    query: spec.query,
                    range: spec.range,
                    judge: JudgeSpec {
                        direction: spec.direction,
                        confidence: spec.confidence,
                        tolerance: spec.tolerance,
                        absolute_tolerance: spec.absolute_tolerance,
                    },
                    threshold: Threshold {
                        max: spec.max,
                        min: spec.min,
                    },
                    timeout: spec.timeout,
                }));
            }
            if probes.len() != 1 {
                return Err(invalid(
                    format!("checks[{index}]"),
                    format!(
                        "a check needs exactly one of podHealth, logs, http, prometheus (found {})",
                        probes.len()
                    ),
                ));
            }
            let probe = probes.remove(0);
            let name = raw
                .name
                .unwrap_or_else(|| probe.kind().to_string().replace(' ', "-"));
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("checks[{index}].name"),
                    format!("the name {name:?} is used by an earlier check"),
                ));
            }
            checks.push(CheckSpec {
                name,
                critical: raw.critical,
                on_inconclusive: raw.on_inconclusive,
                probe,
            });
        }
        Ok(AnalysisSpec {
            window: self.window,
            pass_score: self.pass_score,
            checks,
        })
    }
}
