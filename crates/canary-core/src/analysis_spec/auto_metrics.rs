//! Analysis with no query written: the well-known request-metric families services export,
//! how a side's family is recognised from the series Prometheus has of its pods, and the
//! error-ratio, latency and traffic queries built for it (templates with `{{selector}}`,
//! rendered per side by [`render_query`](super::render_query)).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::types::{HttpSpec, JudgeSpec, PrometheusAddress};
use crate::duration::serde_text as duration_text;
use crate::verdict::Direction;

/// The fewest requests a side must have served in the window for its metrics to be judged.
pub const DEFAULT_MIN_REQUESTS: u32 = 50;

/// An analysis that finds the pods' request metrics itself (`--prometheus` without
/// `--query`, or the controller's `analysis: auto`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoMetricsSpec {
    /// Where Prometheus is; `None`: found in the cluster (the Prometheus Operator's
    /// `prometheus-operated` Service, or a Service labelled as Prometheus).
    pub address: Option<PrometheusAddress>,
    /// The fewest requests per side in the window to judge by the metrics.
    pub min_requests: u32,
    /// How error ratios are compared.
    pub errors: JudgeSpec,
    /// How mean latencies are compared.
    pub latency: JudgeSpec,
    /// Step of the range queries over the window.
    #[serde(with = "duration_text")]
    pub step: Duration,
    /// Timeout of one query.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// The HTTP check run when no family is found or traffic is too little; `None`: on the
    /// canary pods' first declared TCP port, path `/`, default settings.
    pub fallback: Option<HttpSpec>,
}

impl AutoMetricsSpec {
    /// Defaults for a Prometheus at `address` and a window (about 30 points per window).
    pub fn new(address: Option<PrometheusAddress>, window: Duration) -> Self {
        AutoMetricsSpec {
            address,
            min_requests: DEFAULT_MIN_REQUESTS,
            errors: JudgeSpec {
                direction: Direction::Increase,
                confidence: 0.98,
                tolerance: 0.2,
                // Two points of error ratio: the HTTP check's scale, not a rounding error.
                absolute_tolerance: 0.02,
            },
            latency: JudgeSpec {
                direction: Direction::Increase,
                confidence: 0.98,
                tolerance: 0.2,
                absolute_tolerance: 0.005,
            },
            step: (window / 30).max(Duration::from_secs(1)),
            timeout: Duration::from_secs(10),
            fallback: None,
        }
    }
}

/// The analysis of the controller's `kubectl-canary.io/analysis: auto`: pod health and the
/// pods' own request metrics, on the controller's Prometheus (the address is filled in by
/// [`crate::gitops::spec_bounds::bound_for_controller`], never taken from a namespace).
pub fn auto_analysis_spec() -> super::AnalysisSpec {
    let spec = super::AnalysisSpec::default();
    let check = |name: &str, probe| super::CheckSpec {
        name: name.into(),
        critical: true,
        on_inconclusive: crate::verdict::InconclusivePolicy::default(),
        probe,
    };
    let checks = vec![
        check(
            "pod-health",
            super::Probe::PodHealth(super::PodHealthSpec::default()),
        ),
        check(
            "auto-metrics",
            super::Probe::AutoMetrics(AutoMetricsSpec::new(None, spec.window)),
        ),
    ];
    super::AnalysisSpec { checks, ..spec }
}

/// A well-known family of request metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricFamily {
    /// The Prometheus client libraries' convention: a counter `http_requests_total` (or a
    /// histogram `http_request_duration_seconds` alone) with the status in `code` or `status`.
    PrometheusHttp {
        /// The counter of requests.
        counter: &'static str,
        /// The label holding the HTTP status.
        status_label: &'static str,
        /// Whether `http_request_duration_seconds` is there for latency.
        latency: bool,
    },
    /// OpenTelemetry's semantic conventions: `http_server_request_duration_seconds` with
    /// `http_response_status_code`.
    OpenTelemetry,
    /// Micrometer (Spring Boot): `http_server_requests_seconds` with `status`.
    Micrometer,
    /// gRPC servers (go-grpc-prometheus and its kin): `grpc_server_handled_total` with
    /// `grpc_code`, latency from `grpc_server_handling_seconds` when enabled.
    Grpc {
        /// Whether `grpc_server_handling_seconds` is there for latency.
        latency: bool,
    },
}

/// The metric names (of counters, `_count` series) discovery asks Prometheus about.
pub const FAMILY_METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds_count",
    "http_server_request_duration_seconds_count",
    "http_server_requests_seconds_count",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_count",
];

/// The labels that tell which status label a family uses.
const STATUS_LABELS: &[&str] = &["code", "status", "http_response_status_code", "grpc_code"];

/// The gRPC codes that are the server's failures (not the client's: `NotFound`,
/// `InvalidArgument`, ... are answers).
const GRPC_SERVER_ERRORS: &str =
    "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss";

/// The query template that lists, for a side, which family metrics its pods have and which
/// status labels they carry: one series per (name, status label values).
///
/// ```
/// use canary_core::analysis_spec::family_detection_query;
/// assert!(family_detection_query().starts_with(
///     "group by (__name__, code, status, http_response_status_code, grpc_code) ({ {{selector}},__name__=~\"http_requests_total|"));
/// ```
pub fn family_detection_query() -> String {
    format!(
        "group by (__name__, {}) ({{ {{{{selector}}}},__name__=~\"{}\" }})",
        STATUS_LABELS.join(", "),
        FAMILY_METRICS.join("|")
    )
}

/// The families a side exports, best first, from the label sets of
/// [`family_detection_query`]'s answer.
pub fn detect_families(series: &[BTreeMap<String, String>]) -> Vec<MetricFamily> {
    let has = |name: &str| {
        series
            .iter()
            .any(|s| s.get("__name__").map(String::as_str) == Some(name))
    };
    let has_label = |name: &str, label: &str| {
        series.iter().any(|s| {
            s.get("__name__").map(String::as_str) == Some(name)
                && s.get(label).is_some_and(|v| !v.is_empty())
        })
    };
    let mut found = Vec::new();
    for counter in ["http_requests_total", "http_request_duration_seconds_count"] {
        if let Some(label) = ["code", "status"]
            .into_iter()
            .find(|l| has_label(counter, l))
        {
            found.push(MetricFamily::PrometheusHttp {
                counter: if counter == "http_requests_total" {
                    "http_requests_total"
                } else {
                    "http_request_duration_seconds_count"
                },
                status_label: label,
                latency: has("http_request_duration_seconds_count"),
            });
            break;
        }
    }
    if has_label(
        "http_server_request_duration_seconds_count",
        "http_response_status_code",
    ) {
        found.push(MetricFamily::OpenTelemetry);
    }
    if has_label("http_server_requests_seconds_count", "status") {
        found.push(MetricFamily::Micrometer);
    }
    if has_label("grpc_server_handled_total", "grpc_code") {
        found.push(MetricFamily::Grpc {
            latency: has("grpc_server_handling_seconds_count"),
        });
    }
    found
}

/// The queries built for a family (templates with `{{selector}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyQueries {
    /// Requests served in the window (an instant query).
    pub requests: String,
    /// The share of requests that failed on the server (5xx, or gRPC server codes).
    pub error_ratio: String,
    /// The mean latency in seconds, when the family has durations.
    pub latency: Option<String>,
}

impl MetricFamily {
    /// A short name: `prometheus`, `opentelemetry`, `micrometer`, `grpc`.
    pub fn name(&self) -> &'static str {
        match self {
            MetricFamily::PrometheusHttp { .. } => "prometheus",
            MetricFamily::OpenTelemetry => "opentelemetry",
            MetricFamily::Micrometer => "micrometer",
            MetricFamily::Grpc { .. } => "grpc",
        }
    }

    /// The counter of requests and the selector of its failures.
    fn counter_and_errors(&self) -> (&'static str, String) {
        match self {
            MetricFamily::PrometheusHttp {
                counter,
                status_label,
                ..
            } => (counter, format!("{status_label}=~\"5..\"")),
            MetricFamily::OpenTelemetry => (
                "http_server_request_duration_seconds_count",
                "http_response_status_code=~\"5..\"".into(),
            ),
            MetricFamily::Micrometer => (
                "http_server_requests_seconds_count",
                "status=~\"5..\"".into(),
            ),
            MetricFamily::Grpc { .. } => (
                "grpc_server_handled_total",
                format!("grpc_code=~\"{GRPC_SERVER_ERRORS}\""),
            ),
        }
    }

    /// The duration series (without `_sum`/`_count`), if the family has them.
    fn duration(&self) -> Option<&'static str> {
        match self {
            MetricFamily::PrometheusHttp { latency: true, .. } => {
                Some("http_request_duration_seconds")
            }
            MetricFamily::OpenTelemetry => Some("http_server_request_duration_seconds"),
            MetricFamily::Micrometer => Some("http_server_requests_seconds"),
            MetricFamily::Grpc { latency: true } => Some("grpc_server_handling_seconds"),
            _ => None,
        }
    }

    /// The queries for this family; rates over `rate_window` (at least two scrapes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use canary_core::analysis_spec::MetricFamily;
    /// let family = MetricFamily::PrometheusHttp {
    ///     counter: "http_requests_total", status_label: "code", latency: true };
    /// let queries = family.queries(Duration::from_secs(60), Duration::from_secs(30));
    /// assert_eq!(queries.error_ratio,
    ///     r#"(sum(rate(http_requests_total{ {{selector}},code=~"5.." }[30s])) or vector(0)) / sum(rate(http_requests_total{ {{selector}} }[30s]))"#);
    /// assert_eq!(queries.requests, r#"sum(increase(http_requests_total{ {{selector}} }[60s]))"#);
    /// ```
    pub fn queries(&self, window: Duration, rate_window: Duration) -> FamilyQueries {
        let (counter, errors) = self.counter_and_errors();
        let w = format!("{}s", rate_window.as_secs().max(1));
        FamilyQueries {
            requests: format!(
                "sum(increase({counter}{{ {{{{selector}}}} }}[{}s]))",
                window.as_secs().max(1)
            ),
            // No failing series yet means no failures: safe, as discovery has shown the
            // side's counter is there.
            error_ratio: format!(
                "(sum(rate({counter}{{ {{{{selector}}}},{errors} }}[{w}])) or vector(0)) / sum(rate({counter}{{ {{{{selector}}}} }}[{w}]))"
            ),
            latency: self.duration().map(|d| {
                format!(
                    "sum(rate({d}_sum{{ {{{{selector}}}} }}[{w}])) / sum(rate({d}_count{{ {{{{selector}}}} }}[{w}]))"
                )
            }),
        }
    }
}

impl fmt::Display for MetricFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricFamily::PrometheusHttp {
                counter,
                status_label,
                latency,
            } => write!(
                f,
                "Prometheus client {counter} by {status_label}{}",
                if *latency {
                    ", latency from http_request_duration_seconds"
                } else {
                    ", no durations"
                }
            ),
            MetricFamily::OpenTelemetry => f.write_str(
                "OpenTelemetry http_server_request_duration_seconds by http_response_status_code",
            ),
            MetricFamily::Micrometer => {
                f.write_str("Micrometer http_server_requests_seconds by status")
            }
            MetricFamily::Grpc { latency } => write!(
                f,
                "gRPC grpc_server_handled_total by grpc_code{}",
                if *latency {
                    ", latency from grpc_server_handling_seconds"
                } else {
                    ", no durations"
                }
            ),
        }
    }
}

/// The rate window for a range query over `window` at `step`: a quarter of the window, at
/// least 4 steps and 30 s (two scrapes at the common 15 s interval).
pub fn rate_window(window: Duration, step: Duration) -> Duration {
    (window / 4).max(step * 4).max(Duration::from_secs(30))
}

/// The family both sides export, best first; or why there is none.
pub fn common_family(
    canary: &[MetricFamily],
    stable: &[MetricFamily],
) -> Result<MetricFamily, String> {
    let names = |families: &[MetricFamily]| {
        if families.is_empty() {
            "none".to_string()
        } else {
            families
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    if canary.is_empty() && stable.is_empty() {
        return Err(format!(
            "the pods export none of the known request-metric families ({})",
            FAMILY_METRICS.join(", ")
        ));
    }
    canary
        .iter()
        .find(|family| stable.iter().any(|s| s.name() == family.name()))
        .map(|family| {
            // Latency only if both sides have durations.
            let both = stable.iter().find(|s| s.name() == family.name());
            match (family, both) {
                (
                    MetricFamily::PrometheusHttp {
                        counter,
                        status_label,
                        latency,
                    },
                    Some(MetricFamily::PrometheusHttp {
                        counter: other_counter,
                        status_label: other_label,
                        latency: other_latency,
                    }),
                ) if counter == other_counter && status_label == other_label => {
                    MetricFamily::PrometheusHttp {
                        counter,
                        status_label,
                        latency: *latency && *other_latency,
                    }
                }
                (MetricFamily::Grpc { latency }, Some(MetricFamily::Grpc { latency: other })) => {
                    MetricFamily::Grpc {
                        latency: *latency && *other,
                    }
                }
                (family, _) => family.clone(),
            }
        })
        .ok_or_else(|| {
            format!(
                "canary and stable pods export no family in common (canary: {}; stable: {})",
                names(canary),
                names(stable)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Labels = Vec<BTreeMap<String, String>>;

    fn series(pairs: &[&[(&str, &str)]]) -> Labels {
        pairs
            .iter()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn families_are_recognised_by_their_names_and_status_labels() {
        let cases: Vec<(&str, Labels, Vec<&str>)> = vec![
            (
                "prometheus client with code",
                series(&[
                    &[("__name__", "http_requests_total"), ("code", "200")],
                    &[
                        ("__name__", "http_request_duration_seconds_count"),
                        ("code", "200"),
                    ],
                ]),
                vec![
                    "Prometheus client http_requests_total by code, latency from http_request_duration_seconds",
                ],
            ),
            (
                "prometheus client with status, no histogram",
                series(&[&[("__name__", "http_requests_total"), ("status", "500")]]),
                vec!["Prometheus client http_requests_total by status, no durations"],
            ),
            (
                "histogram alone",
                series(&[&[
                    ("__name__", "http_request_duration_seconds_count"),
                    ("code", "200"),
                ]]),
                vec![
                    "Prometheus client http_request_duration_seconds_count by code, latency from http_request_duration_seconds",
                ],
            ),
            (
                "opentelemetry",
                series(&[&[
                    ("__name__", "http_server_request_duration_seconds_count"),
                    ("http_response_status_code", "200"),
                ]]),
                vec![
                    "OpenTelemetry http_server_request_duration_seconds by http_response_status_code",
                ],
            ),
            (
                "micrometer",
                series(&[&[
                    ("__name__", "http_server_requests_seconds_count"),
                    ("status", "200"),
                ]]),
                vec!["Micrometer http_server_requests_seconds by status"],
            ),
            (
                "grpc with handling histogram, and otel beside it",
                series(&[
                    &[
                        ("__name__", "grpc_server_handled_total"),
                        ("grpc_code", "OK"),
                    ],
                    &[("__name__", "grpc_server_handling_seconds_count")],
                    &[
                        ("__name__", "http_server_request_duration_seconds_count"),
                        ("http_response_status_code", "200"),
                    ],
                ]),
                vec![
                    "OpenTelemetry http_server_request_duration_seconds by http_response_status_code",
                    "gRPC grpc_server_handled_total by grpc_code, latency from grpc_server_handling_seconds",
                ],
            ),
            (
                "a counter without any status label is not a family",
                series(&[&[("__name__", "http_requests_total"), ("method", "GET")]]),
                vec![],
            ),
            ("nothing", vec![], vec![]),
        ];
        for (name, answer, want) in cases {
            let found: Vec<String> = detect_families(&answer)
                .iter()
                .map(|f| f.to_string())
                .collect();
            assert_eq!(found, want, "{name}");
        }
    }

    #[test]
    fn queries_per_family_use_the_family_names_and_status_label() {
        let window = Duration::from_secs(60);
        let rate = Duration::from_secs(30);
        let otel = MetricFamily::OpenTelemetry.queries(window, rate);
        assert_eq!(
            otel.error_ratio,
            r#"(sum(rate(http_server_request_duration_seconds_count{ {{selector}},http_response_status_code=~"5.." }[30s])) or vector(0)) / sum(rate(http_server_request_duration_seconds_count{ {{selector}} }[30s]))"#
        );
        assert_eq!(
            otel.latency.as_deref(),
            Some(
                "sum(rate(http_server_request_duration_seconds_sum{ {{selector}} }[30s])) / sum(rate(http_server_request_duration_seconds_count{ {{selector}} }[30s]))"
            )
        );
        let micrometer = MetricFamily::Micrometer.queries(window, rate);
        assert!(
            micrometer
                .error_ratio
                .contains(r#"http_server_requests_seconds_count{ {{selector}},status=~"5.." }"#)
        );
        let grpc = MetricFamily::Grpc { latency: false }.queries(window, rate);
        assert!(
            grpc.error_ratio
                .contains("grpc_code=~\"Unknown|DeadlineExceeded"),
            "{}",
            grpc.error_ratio
        );
        assert_eq!(grpc.latency, None);
        assert_eq!(
            grpc.requests,
            "sum(increase(grpc_server_handled_total{ {{selector}} }[60s]))"
        );
        // Every template tells the sides apart.
        for queries in [otel, micrometer, grpc] {
            for query in [
                Some(&queries.requests),
                Some(&queries.error_ratio),
                queries.latency.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(super::super::query_template_problem(query), None, "{query}");
            }
        }
        assert_eq!(
            rate_window(Duration::from_secs(60), Duration::from_secs(2)),
            Duration::from_secs(30)
        );
        assert_eq!(
            rate_window(Duration::from_secs(600), Duration::from_secs(20)),
            Duration::from_secs(150)
        );
    }

    /// The controller's `analysis: auto` judges on the controller's own Prometheus, and is
    /// refused (with why) by a controller without one.
    #[test]
    fn the_controllers_auto_analysis_uses_its_own_prometheus() {
        use crate::gitops::spec_bounds::bound_for_controller;
        let own = PrometheusAddress::Url("http://prometheus.monitoring:9090".into());
        let mut spec = auto_analysis_spec();
        bound_for_controller(&mut spec, Some(&own)).unwrap();
        let super::super::Probe::AutoMetrics(auto) = &spec.checks[1].probe else {
            panic!("{:?}", spec.checks)
        };
        assert_eq!(auto.address.as_ref(), Some(&own));
        let refused = bound_for_controller(&mut auto_analysis_spec(), None).unwrap_err();
        assert!(refused.contains("no --prometheus-url"), "{refused}");
    }

    #[test]
    fn the_family_in_common_or_why_none() {
        let prom = |latency| MetricFamily::PrometheusHttp {
            counter: "http_requests_total",
            status_label: "code",
            latency,
        };
        assert_eq!(
            common_family(&[prom(true)], &[prom(false)]),
            Ok(prom(false))
        );
        assert_eq!(
            common_family(&[MetricFamily::Micrometer, prom(true)], &[prom(true)]),
            Ok(prom(true))
        );
        let none = common_family(&[], &[]).unwrap_err();
        assert!(
            none.contains("none of the known request-metric families"),
            "{none}"
        );
        let apart = common_family(&[MetricFamily::OpenTelemetry], &[prom(true)]).unwrap_err();
        assert!(
            apart.contains("no family in common (canary: OpenTelemetry"),
            "{apart}"
        );
    }
}
