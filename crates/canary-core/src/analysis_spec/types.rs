//! The spec's types: the checks, their probes and settings, and their defaults.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::fields::*;
use crate::duration::serde_text as duration_text;
use crate::verdict::{Direction, InconclusivePolicy, JudgeConfig, Threshold};

pub use super::fields::{MAX_HTTP_RATE_PER_SECOND, MAX_HTTP_REQUESTS, MAX_LOG_BYTES_PER_POD};

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
    /// The pods' own request metrics, found on Prometheus with no query written (an HTTP
    /// check when there are none).
    AutoMetrics(super::AutoMetricsSpec),
    /// HTTP checks at the pod template's own `httpGet` readiness and liveness probes, with
    /// these settings (port and path come from each probe); expanded on the canary's
    /// template when the analysis runs ([`super::expand_probe_checks`]).
    HttpFromProbes(HttpSpec),
}

impl Probe {
    /// The check kind of this probe.
    pub fn kind(&self) -> crate::verdict::CheckKind {
        use crate::verdict::CheckKind;
        match self {
            Probe::PodHealth(_) => CheckKind::PodHealth,
            Probe::Logs(_) => CheckKind::Logs,
            Probe::Http(_) | Probe::HttpFromProbes(_) => CheckKind::Http,
            Probe::Prometheus(_) | Probe::AutoMetrics(_) => CheckKind::Prometheus,
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

pub(super) fn default_ready_deadline() -> Duration {
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
    /// At most this many bytes of each pod's log are read: the newest part of the window
    /// when the log is larger (between 1 KiB and [`MAX_LOG_BYTES_PER_POD`]).
    #[serde(default = "default_log_bytes", deserialize_with = "de_log_bytes")]
    pub max_bytes_per_pod: i64,
}

pub(super) fn default_log_patterns() -> Vec<Regex> {
    vec![Regex::new(DEFAULT_LOG_ERROR_PATTERN).expect("the default pattern is a valid regex")]
}
pub(super) fn default_max_ratio() -> f64 {
    2.0
}
pub(super) fn default_min_increase() -> f64 {
    1.0
}
pub(super) fn default_log_bytes() -> i64 {
    MAX_LOG_BYTES_PER_POD
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            patterns: default_log_patterns(),
            container: None,
            max_ratio: default_max_ratio(),
            min_increase_per_minute: default_min_increase(),
            max_bytes_per_pod: default_log_bytes(),
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
            && self.max_bytes_per_pod == other.max_bytes_per_pod
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
    /// The most requests per side (canary and stable): the bound of the sequential test, which
    /// looks at the evidence every [`crate::verdict::sequential::LOOK_EVERY`] requests and
    /// stops as soon as the error rates are decided.
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
    /// Also request through this Service, as users reach it; each side is then judged
    /// through the pod proxies of the Service's ready endpoints, and users' errors at the
    /// canary's traffic share (see `verdict::http::judge_through_service`).
    #[serde(default)]
    pub service: Option<String>,
}

pub(super) fn default_path() -> String {
    "/".into()
}
pub(super) fn default_requests() -> u32 {
    // Room for the sequential test to decide a 20% error rate against none (about 50 per
    // side) and to pass a good canary with 95% confidence (120); it stops at the first of these.
    200
}
pub(super) fn default_rate() -> f64 {
    5.0
}
pub(super) fn default_http_timeout() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_max_error_rate_increase() -> f64 {
    0.05
}
pub(super) fn default_latency_judge() -> JudgeSpec {
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

pub(super) fn default_confidence() -> f64 {
    0.98
}
pub(super) fn default_tolerance() -> f64 {
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

pub(super) fn default_scheme() -> String {
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
    /// [`render_query`](super::render_query) for its placeholders.
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
