//! The analysis specification: which checks to run on a canary and how to judge them.
//!
//! It comes from flags for the common cases or from a YAML file for the full form; both end
//! up as an [`AnalysisSpec`]. A wrong file is reported with the line, column and field path,
//! because every value is validated while it is read (so the parser still knows where it is).
//!
//! ```yaml
//! window: 2m              # how far back logs and Prometheus range queries look
//! passScore: 95           # percentage of checks that must pass (Kayenta's default)
//! checks:
//!   - name: pods
//!     podHealth: { readyDeadline: 2m, maxRestarts: 0 }
//!   - name: logs
//!     critical: false
//!     onInconclusive: pass
//!     logs: { patterns: ['\[error\]'], maxRatio: 2 }
//!   - name: healthz
//!     http: { port: 8080, path: /healthz, requests: 20, ratePerSecond: 5 }
//!   - name: p99
//!     prometheus:
//!       url: http://127.0.0.1:9090
//!       query: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{ {{selector}} }[1m])))'
//!       range: { step: 15s }
//!       tolerance: 0.1
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::verdict::{Direction, InconclusivePolicy, JudgeConfig, Threshold};

/// At most this many HTTP requests per side in one check, so a check can never flood a pod.
pub const MAX_HTTP_REQUESTS: u32 = 1000;
/// At most this many HTTP requests per second per side.
pub const MAX_HTTP_RATE_PER_SECOND: f64 = 50.0;
/// At most this many bytes of log are read per pod, so a chatty pod cannot exhaust memory.
pub const MAX_LOG_BYTES_PER_POD: i64 = 16 * 1024 * 1024;

/// The default error pattern for log checks: common error words and bracketed log levels.
pub const DEFAULT_LOG_ERROR_PATTERN: &str = r"(?i)(\[(error|err|fatal|crit|critical|emerg|alert)\]|\b(fatal|panic|traceback)\b|(error|exception)\b)";

/// A complete analysis: the checks and how their results combine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// How far back logs and Prometheus range queries look.
    pub window: Duration,
    /// Percentage of decided checks that must pass (non-critical failures lower the score).
    pub pass_score: f64,
    /// The checks.
    pub checks: Vec<CheckSpec>,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            window: DEFAULT_WINDOW,
            pass_score: DEFAULT_PASS_SCORE,
            checks: Vec::new(),
        }
    }
}

/// The look-back window used when none is given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Kayenta's default pass score.
pub const DEFAULT_PASS_SCORE: f64 = 95.0;

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSpec {
    /// A name unique within the spec, used in verdicts and Events.
    pub name: String,
    /// Whether failing this check fails the canary whatever the other checks say.
    pub critical: bool,
    /// What to do when the check cannot decide.
    pub on_inconclusive: InconclusivePolicy,
    /// What the check measures.
    pub probe: Probe,
}

/// What a check measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Probe {
    /// Pod readiness, restarts and failure states.
    PodHealth(PodHealthSpec),
    /// Error lines in pod logs.
    Logs(LogsSpec),
    /// HTTP requests through the API server's proxy.
    Http(HttpSpec),
    /// A PromQL query run for both sides.
    Prometheus(PrometheusSpec),
}

impl Probe {
    /// The check kind of this probe.
    pub fn kind(&self) -> crate::verdict::CheckKind {
        use crate::verdict::CheckKind;
        match self {
            Probe::PodHealth(_) => CheckKind::PodHealth,
            Probe::Logs(_) => CheckKind::Logs,
            Probe::Http(_) => CheckKind::Http,
            Probe::Prometheus(_) => CheckKind::Prometheus,
        }
    }
}

/// Pod health check settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodHealthSpec {
    /// A canary pod not Ready this long after its creation fails the check.
    #[serde(default = "default_ready_deadline", with = "duration_text")]
    pub ready_deadline: Duration,
    /// Container restarts of a canary pod tolerated (beyond the stable pods' own restarts).
    #[serde(default)]
    pub max_restarts: u32,
}

fn default_ready_deadline() -> Duration {
    Duration::from_secs(120)
}

impl Default for PodHealthSpec {
    fn default() -> Self {
        PodHealthSpec {
            ready_deadline: default_ready_deadline(),
            max_restarts: 0,
        }
    }
}

/// Log check settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsSpec {
    /// Regular expressions; a line matching any of them is an error line.
    #[serde(
        default = "default_log_patterns",
        deserialize_with = "de_patterns",
        serialize_with = "ser_patterns"
    )]
    pub patterns: Vec<Regex>,
    /// The container whose log is read; the pod's only (or default) container when absent.
    #[serde(default)]
    pub container: Option<String>,
    /// The canary fails when its error rate is more than this many times the stable rate...
    #[serde(default = "default_max_ratio", deserialize_with = "de_non_negative")]
    pub max_ratio: f64,
    /// ...and at least this many error lines per pod per minute above it (so 1 line against
    /// 0 is not "infinitely worse").
    #[serde(default = "default_min_increase", deserialize_with = "de_non_negative")]
    pub min_increase_per_minute: f64,
}

fn default_log_patterns() -> Vec<Regex> {
    vec![Regex::new(DEFAULT_LOG_ERROR_PATTERN).expect("the default pattern is a valid regex")]
}
fn default_max_ratio() -> f64 {
    2.0
}
fn default_min_increase() -> f64 {
    1.0
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            patterns: default_log_patterns(),
            container: None,
            max_ratio: default_max_ratio(),
            min_increase_per_minute: default_min_increase(),
        }
    }
}

impl PartialEq for LogsSpec {
    fn eq(&self, other: &Self) -> bool {
        // Regex has no equality; two specs are the same if their patterns' sources are.
        self.patterns
            .iter()
            .map(Regex::as_str)
            .eq(other.patterns.iter().map(Regex::as_str))
            && self.container == other.container
            && self.max_ratio == other.max_ratio
            && self.min_increase_per_minute == other.min_increase_per_minute
    }
}

/// HTTP check settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSpec {
    /// The pods' port (or the Service's port when `service` is set).
    pub port: u16,
    /// The path requested, starting with `/`.
    #[serde(default = "default_path", deserialize_with = "de_path")]
    pub path: String,
    /// Status codes counted as success; empty means any status below 400.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Requests per side (canary and stable).
    #[serde(default = "default_requests", deserialize_with = "de_requests")]
    pub requests: u32,
    /// Requests per second per side.
    #[serde(default = "default_rate", deserialize_with = "de_rate")]
    pub rate_per_second: f64,
    /// Timeout of one request.
    #[serde(default = "default_http_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// The canary fails when its error rate exceeds the stable rate by more than this (0.05 = 5 points).
    #[serde(
        default = "default_max_error_rate_increase",
        deserialize_with = "de_fraction"
    )]
    pub max_error_rate_increase: f64,
    /// How latencies are compared (Mann-Whitney, higher is worse by default).
    #[serde(default = "default_latency_judge")]
    pub latency: JudgeSpec,
    /// Request through this Service instead, as users reach it; only the error rate is judged
    /// then, against `max_error_rate_increase` as an absolute rate.
    #[serde(default)]
    pub service: Option<String>,
}

fn default_path() -> String {
    "/".into()
}
fn default_requests() -> u32 {
    20
}
fn default_rate() -> f64 {
    5.0
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_error_rate_increase() -> f64 {
    0.05
}
fn default_latency_judge() -> JudgeSpec {
    JudgeSpec {
        direction: Direction::Increase,
        confidence: 0.98,
        tolerance: 0.2,
        // A few milliseconds of jitter through the API server proxy is not a regression.
        absolute_tolerance: 0.005,
    }
}

impl HttpSpec {
    /// The settings for `port` and `path` with every other value at its default.
    pub fn new(port: u16, path: impl Into<String>) -> Self {
        HttpSpec {
            port,
            path: path.into(),
            expect_status: Vec::new(),
            requests: default_requests(),
            rate_per_second: default_rate(),
            timeout: default_http_timeout(),
            max_error_rate_increase: default_max_error_rate_increase(),
            latency: default_latency_judge(),
            service: None,
        }
    }

    /// Whether a response status counts as a success.
    pub fn is_success(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            status < 400
        } else {
            self.expect_status.contains(&status)
        }
    }
}

/// How the judge compares two samples (see [`JudgeConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JudgeSpec {
    /// Which change is bad.
    #[serde(default)]
    pub direction: Direction,
    /// Confidence for the Mann-Whitney test, between 0.5 and 1 (exclusive).
    #[serde(default = "default_confidence", deserialize_with = "de_confidence")]
    pub confidence: f64,
    /// Relative change tolerated.
    #[serde(default = "default_tolerance", deserialize_with = "de_non_negative")]
    pub tolerance: f64,
    /// Absolute change tolerated.
    #[serde(default, deserialize_with = "de_non_negative")]
    pub absolute_tolerance: f64,
}

fn default_confidence() -> f64 {
    0.98
}
fn default_tolerance() -> f64 {
    0.1
}

impl Default for JudgeSpec {
    fn default() -> Self {
        JudgeSpec {
            direction: Direction::Increase,
            confidence: default_confidence(),
            tolerance: default_tolerance(),
            absolute_tolerance: 0.0,
        }
    }
}

impl From<JudgeSpec> for JudgeConfig {
    fn from(spec: JudgeSpec) -> Self {
        JudgeConfig {
            direction: spec.direction,
            confidence: spec.confidence,
            tolerance: spec.tolerance,
            absolute_tolerance: spec.absolute_tolerance,
        }
    }
}

/// Where Prometheus is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PrometheusAddress {
    /// Reached directly, e.g. `http://127.0.0.1:9090`.
    Url(String),
    /// Reached through the API server's service proxy (no port-forward, works wherever
    /// the kubeconfig works).
    Service(ServiceRef),
}

impl fmt::Display for PrometheusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrometheusAddress::Url(url) => f.write_str(url),
            PrometheusAddress::Service(service) => write!(
                f,
                "service {}/{}:{} ({})",
                service.namespace, service.name, service.port, service.scheme
            ),
        }
    }
}

/// A Service reached through the API server's proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's port (number or name).
    pub port: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_scheme() -> String {
    "http".into()
}

impl ServiceRef {
    /// Parses `namespace/name:port`, with an optional `https://` prefix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (scheme.to_string(), rest),
            Some((other, _)) => return Err(format!("scheme {other:?} is neither http nor https")),
            None => ("http".to_string(), text),
        };
        let (namespace, name_port) = rest
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not namespace/name:port"))?;
        let (name, port) = name_port
            .split_once(':')
            .ok_or_else(|| format!("{text:?} has no :port"))?;
        if namespace.is_empty() || name.is_empty() || port.is_empty() {
            return Err(format!("{text:?} is not namespace/name:port"));
        }
        Ok(ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
            port: port.into(),
            scheme,
        })
    }
}

/// A Prometheus range query's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeSpec {
    /// Seconds between points.
    #[serde(with = "duration_text")]
    pub step: Duration,
}

/// Prometheus check settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// Where Prometheus is.
    pub address: PrometheusAddress,
    /// The PromQL template, run once for the canary and once for the stable pods; see
    /// [`render_query`] for its placeholders.
    pub query: String,
    /// Range query over the window with this step; an instant query when absent.
    pub range: Option<RangeSpec>,
    /// How the canary is compared with the stable pods.
    pub judge: JudgeSpec,
    /// Absolute bounds for the canary's value (its median for range queries).
    pub threshold: Threshold,
    /// Timeout of one query.
    pub timeout: Duration,
}

/// The placeholders a query template may use.
pub const QUERY_PLACEHOLDERS: &[&str] = &[
    "{{selector}}",
    "{{namespace}}",
    "{{hash}}",
    "{{replicaset}}",
    "{{deployment}}",
    "{{window}}",
];

/// The values a query template is rendered with, for one side of the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The Deployment's name.
    pub deployment: &'a str,
    /// The side's ReplicaSet.
    pub replica_set: &'a str,
    /// The side's pod-template-hash.
    pub pod_template_hash: &'a str,
    /// The analysis window.
    pub window: Duration,
}

/// Renders a query template for one side: `{{selector}}` becomes
/// `namespace="…",pod_template_hash="…"` (the labels Prometheus' Kubernetes discovery gives
/// pod series), `{{hash}}`, `{{namespace}}`, `{{replicaset}}` and `{{deployment}}` their
/// values, and `{{window}}` the window in seconds, e.g. `60s`.
///
/// ```
/// use std::time::Duration;
/// use canary_core::analysis_spec::{render_query, QueryContext};
/// let context = QueryContext { namespace: "shop", deployment: "web", replica_set: "web-7d9f",
///     pod_template_hash: "7d9f", window: Duration::from_secs(120) };
/// assert_eq!(
///     render_query("sum(rate(http_requests_total{ {{selector}} }[{{window}}]))", &context),
///     r#"sum(rate(http_requests_total{ namespace="shop",pod_template_hash="7d9f" }[120s]))"#,
/// );
/// ```
pub fn render_query(template: &str, context: &QueryContext<'_>) -> String {
    let selector = format!(
        "namespace=\"{}\",pod_template_hash=\"{}\"",
        context.namespace, context.pod_template_hash
    );
    template
        .replace("{{selector}}", &selector)
        .replace("{{namespace}}", context.namespace)
        .replace("{{hash}}", context.pod_template_hash)
        .replace("{{replicaset}}", context.replica_set)
        .replace("{{deployment}}", context.deployment)
        .replace(
            "{{window}}",
            &format!("{}s", context.window.as_secs().max(1)),
        )
}

/// Why a query template cannot tell the canary from the stable pods, if it cannot.
pub fn query_template_problem(template: &str) -> Option<String> {
    if template.trim().is_empty() {
        return Some("the query is empty".into());
    }
    let distinguishes = ["{{selector}}", "{{hash}}", "{{replicaset}}"]
        .iter()
        .any(|p| template.contains(p));
    if !distinguishes {
        return Some(
            "the query must contain {{selector}}, {{hash}} or {{replicaset}}, otherwise canary and stable get the same answer"
                .into(),
        );
    }
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return Some("unclosed {{ in the query".into());
        };
        let placeholder = &rest[start..start + end + 2];
        if !QUERY_PLACEHOLDERS.contains(&placeholder) {
            return Some(format!(
                "unknown placeholder {placeholder}; known: {}",
                QUERY_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[start + end + 2..];
    }
    None
}

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

fn default_window() -> Duration {
    DEFAULT_WINDOW
}
fn default_pass_score() -> f64 {
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

fn default_critical() -> bool {
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

fn default_query_timeout() -> Duration {
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

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

fn de_policy<'de, D: Deserializer<'de>>(deserializer: D) -> Result<InconclusivePolicy, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_inconclusive_policy(&text).map_err(serde::de::Error::custom)
}

fn de_patterns<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Regex>, D::Error> {
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

fn ser_patterns<S: serde::Serializer>(
    patterns: &[Regex],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(patterns.iter().map(Regex::as_str))
}

fn de_non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be a number >= 0"
        )))
    }
}

fn de_fraction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be between 0 and 1"
        )))
    }
}

fn de_score<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be between 0 and 100"
        )))
    }
}

fn de_confidence<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value > 0.5 && value < 1.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} must be above 0.5 and below 1 (e.g. 0.98)"
        )))
    }
}

fn de_requests<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = u32::deserialize(deserializer)?;
    validate_requests(value).map_err(serde::de::Error::custom)
}

fn de_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
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

fn de_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let path = String::deserialize(deserializer)?;
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(serde::de::Error::custom(format!(
            "{path:?} must start with /"
        )))
    }
}

fn de_query<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let query = String::deserialize(deserializer)?;
    match query_template_problem(&query) {
        None => Ok(query),
        Some(problem) => Err(serde::de::Error::custom(problem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
window: 2m
passScore: 90
checks:
  - name: pods
    podHealth: { readyDeadline: 90s, maxRestarts: 1 }
  - name: logs
    critical: false
    onInconclusive: pass
    logs:
      patterns: ['\[error\]']
      maxRatio: 3
  - name: healthz
    onInconclusive: wait:2m
    http:
      port: 8080
      path: /healthz
      expectStatus: [200]
      requests: 30
      ratePerSecond: 10
      timeout: 2s
  - name: p99
    onInconclusive: fail
    prometheus:
      service: { namespace: monitoring, name: prometheus, port: "9090" }
      query: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{ {{selector}} }[1m])))'
      range: { step: 15s }
      tolerance: 0.2
      max: 0.5
"#;

    #[test]
    fn the_documented_example_parses() {
        // docs/analysis.md shows the full YAML form; it must stay a valid spec.
        let doc = include_str!("../../../docs/analysis.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + doc[start..].find("```").expect("the end of the block");
        let spec = parse_analysis_spec(&doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.checks.len(), 4);
        assert_eq!(spec.window, Duration::from_secs(120));
    }

    #[test]
    fn parses_a_full_spec() {
        let spec = parse_analysis_spec(FULL).unwrap();
        assert_eq!(spec.window, Duration::from_secs(120));
        assert_eq!(spec.pass_score, 90.0);
        assert_eq!(spec.checks.len(), 4);
        assert_eq!(
            spec.checks[0].probe,
            Probe::PodHealth(PodHealthSpec {
                ready_deadline: Duration::from_secs(90),
                max_restarts: 1
            })
        );
        assert!(spec.checks[0].critical);
        assert_eq!(
            spec.checks[0].on_inconclusive,
            InconclusivePolicy::default()
        );
        let Probe::Logs(logs) = &spec.checks[1].probe else {
            panic!("not logs")
        };
        assert!(!spec.checks[1].critical);
        assert_eq!(spec.checks[1].on_inconclusive, InconclusivePolicy::Pass);
        assert!(logs.patterns[0].is_match("2026/01/01 [error] 12#12: boom"));
        assert_eq!(logs.max_ratio, 3.0);
        let Probe::Http(http) = &spec.checks[2].probe else {
            panic!("not http")
        };
        assert_eq!(
            (http.port, http.path.as_str(), http.requests),
            (8080, "/healthz", 30)
        );
        assert_eq!(http.timeout, Duration::from_secs(2));
        assert!(http.is_success(200) && !http.is_success(204));
        assert_eq!(
            spec.checks[2].on_inconclusive,
            InconclusivePolicy::Wait {
                limit: Duration::from_secs(120)
            }
        );
        let Probe::Prometheus(prom) = &spec.checks[3].probe else {
            panic!("not prometheus")
        };
        assert_eq!(
            prom.address,
            PrometheusAddress::Service(ServiceRef {
                namespace: "monitoring".into(),
                name: "prometheus".into(),
                port: "9090".into(),
                scheme: "http".into()
            })
        );
        assert_eq!(
            prom.range,
            Some(RangeSpec {
                step: Duration::from_secs(15)
            })
        );
        assert_eq!(prom.threshold.max, Some(0.5));
        assert_eq!(prom.judge.tolerance, 0.2);
    }

    fn error_of(yaml: &str) -> (Option<u64>, Option<String>, String) {
        match parse_analysis_spec(yaml).unwrap_err() {
            SpecError::Invalid {
                line,
                field,
                message,
                ..
            } => (line, field, message),
        }
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let (line, field, message) =
            error_of("checks:\n  - name: h\n    http:\n      port: 80\n      reqests: 5\n");
        assert_eq!(line, Some(5));
        assert!(message.contains("reqests"), "{message}");
        assert_eq!(
            field.as_deref(),
            Some("checks[0].http.reqests"),
            "{message}"
        );
    }

    #[test]
    fn out_of_range_value_names_line_and_field() {
        let (line, field, message) =
            error_of("checks:\n  - http:\n      port: 80\n      requests: 5000\n");
        assert_eq!(line, Some(4));
        assert_eq!(field.as_deref(), Some("checks[0].http.requests"));
        assert!(message.contains("between 1 and 1000"), "{message}");
        let text =
            parse_analysis_spec("checks:\n  - http:\n      port: 80\n      requests: 5000\n")
                .unwrap_err()
                .to_string();
        assert!(text.starts_with("line 4, column"), "{text}");
        assert!(text.contains("field checks[0].http.requests"), "{text}");
    }

    #[test]
    fn wrong_type_and_bad_duration_name_the_field() {
        let (line, field, _) = error_of("window: soon\nchecks:\n  - podHealth: {}\n");
        assert_eq!(line, Some(1));
        assert_eq!(field.as_deref(), Some("window"));
        let (line, field, message) = error_of("checks:\n  - http:\n      port: eighty\n");
        assert_eq!(line, Some(3));
        assert_eq!(field.as_deref(), Some("checks[0].http.port"), "{message}");
    }

    #[test]
    fn a_check_needs_exactly_one_probe() {
        let (line, field, message) = error_of(
            "checks:\n  - podHealth: {}\n  - name: x\n    logs: {}\n    http: { port: 80 }\n",
        );
        assert_eq!(line, Some(3));
        assert_eq!(field.as_deref(), Some("checks[1]"));
        assert!(message.contains("exactly one"), "{message}");
    }

    #[test]
    fn a_query_must_distinguish_canary_from_stable() {
        let (line, field, message) =
            error_of("checks:\n  - prometheus:\n      url: http://p:9090\n      query: sum(up)\n");
        assert_eq!(line, Some(4));
        assert_eq!(field.as_deref(), Some("checks[0].prometheus.query"));
        assert!(message.contains("{{selector}}"), "{message}");
        let (_, _, message) = error_of(
            "checks:\n  - prometheus:\n      url: http://p:9090\n      query: 'up{ {{selector}},x=\"{{selectr}}\" }'\n",
        );
        assert!(message.contains("{{selectr}}"), "{message}");
    }

    #[test]
    fn duplicate_names_and_empty_checks_are_refused() {
        let (line, field, _) = error_of("checks:\n  - podHealth: {}\n  - podHealth: {}\n");
        assert_eq!(line, Some(3));
        assert_eq!(field.as_deref(), Some("checks[1].name"));
        let (_, field, _) = error_of("checks: []\n");
        assert_eq!(field.as_deref(), Some("checks"));
    }

    #[test]
    fn durations_round_trip() {
        for (text, seconds) in [
            ("30s", 30.0),
            ("1m30s", 90.0),
            ("200ms", 0.2),
            ("2h", 7200.0),
            ("0", 0.0),
        ] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parsed.as_secs_f64(), seconds, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        for bad in ["", "5", "m", "5x", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_queries_per_side() {
        let context = QueryContext {
            namespace: "ns",
            deployment: "web",
            replica_set: "web-abc",
            pod_template_hash: "abc",
            window: Duration::from_secs(90),
        };
        assert_eq!(
            render_query(
                "rate(x{ {{selector}} }[{{window}}]) + y{rs=\"{{replicaset}}\",d=\"{{deployment}}\"}",
                &context
            ),
            "rate(x{ namespace=\"ns\",pod_template_hash=\"abc\" }[90s]) + y{rs=\"web-abc\",d=\"web\"}"
        );
    }

    #[test]
    fn default_log_pattern_matches_common_error_lines() {
        let pattern = Regex::new(DEFAULT_LOG_ERROR_PATTERN).unwrap();
        for line in [
            "2026/11/26 04:00:00 [error] 7#7: *1 upstream timed out",
            "level=error msg=\"db down\"",
            "java.lang.IllegalStateException: boom",
            "panic: runtime error: index out of range",
            "ERROR connection refused",
        ] {
            assert!(pattern.is_match(line), "{line}");
        }
        for line in [
            "GET /healthz 200",
            "level=info msg=\"errors=0\"",
            "terrorist",
        ] {
            assert!(!pattern.is_match(line), "{line}");
        }
    }

    #[test]
    fn parses_policies_and_services() {
        assert_eq!(
            parse_inconclusive_policy("wait:30s"),
            Ok(InconclusivePolicy::Wait {
                limit: Duration::from_secs(30)
            })
        );
        assert!(parse_inconclusive_policy("maybe").is_err());
        let service = ServiceRef::parse("https://monitoring/prometheus:web").unwrap();
        assert_eq!(
            (service.scheme.as_str(), service.port.as_str()),
            ("https", "web")
        );
        assert!(ServiceRef::parse("prometheus:9090").is_err());
    }
}
