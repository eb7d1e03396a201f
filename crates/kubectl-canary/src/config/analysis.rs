//! Turns the analysis flags (and the YAML file they may name) into one [`AnalysisSpec`].
//!
//! The file gives the full form; flags add checks to it and override its window, pass score
//! and inconclusive policy only when they are given. Without a file and without check flags
//! the analysis is pod health plus error lines in the logs, which need no configuration.

use std::path::PathBuf;

use canary_core::analysis_spec::{
    self, AnalysisSpec, AutoMetricsSpec, CheckSpec, HttpSpec, JudgeSpec, LogsSpec, PodHealthSpec,
    PrometheusAddress, PrometheusSpec, RangeSpec, ServiceRef, SpecError, parse_analysis_spec,
    query_template_problem,
};
use canary_core::verdict::Threshold;
use regex::Regex;
use thiserror::Error;

use crate::cli::AnalysisFlags;

/// Why the analysis flags or file cannot be used.
#[derive(Debug, Error)]
pub enum AnalysisConfigError {
    /// The file could not be read.
    #[error("cannot read the analysis file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid analysis spec.
    #[error("invalid analysis file {path}: {source}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: SpecError,
    },
    /// A flag's value is invalid.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, e.g. `--http-check`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn flag_error(flag: &'static str, message: impl Into<String>) -> AnalysisConfigError {
    AnalysisConfigError::Flag {
        flag,
        message: message.into(),
    }
}

/// Resolves the flags and the file into a spec.
pub fn resolve(flags: &AnalysisFlags) -> Result<AnalysisSpec, AnalysisConfigError> {
    let mut spec = match &flags.analysis_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| AnalysisConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
            parse_analysis_spec(&text).map_err(|source| AnalysisConfigError::Spec {
                path: path.clone(),
                source,
            })?
        }
        None => AnalysisSpec::default(),
    };
    if let Some(window) = flags.window {
        if window.is_zero() {
            return Err(flag_error("--window", "the window must be longer than 0s"));
        }
        spec.window = window;
    }
    if let Some(score) = flags.pass_score {
        if !(0.0..=100.0).contains(&score) {
            return Err(flag_error(
                "--pass-score",
                format!("{score} is not between 0 and 100"),
            ));
        }
        spec.pass_score = score;
    }
    let policy = flags.on_inconclusive.unwrap_or_default();
    let critical = !flags.non_critical;
    let mut added: Vec<CheckSpec> = Vec::new();
    let mut add = |name: String, probe: analysis_spec::Probe| {
        added.push(CheckSpec {
            name,
            critical,
            on_inconclusive: policy,
            probe,
        });
    };

    let file_has_pod_health = spec
        .checks
        .iter()
        .any(|c| matches!(c.probe, analysis_spec::Probe::PodHealth(_)));
    if !flags.no_pod_health && !file_has_pod_health {
        let mut settings = PodHealthSpec::default();
        if let Some(deadline) = flags.ready_deadline {
            settings.ready_deadline = deadline;
        }
        add(
            "pod-health".into(),
            analysis_spec::Probe::PodHealth(settings),
        );
    }
    let no_check_flags = flags.analysis_file.is_none()
        && flags.http_check.iter().all(|t| t == HTTP_CHECK_NONE)
        && flags.http_service_check.is_empty()
        && flags.query.is_empty()
        && !flags.auto_metrics
        && flags.prometheus.is_none()
        && flags.prometheus_service.is_none();
    if flags.log_errors.is_some() || no_check_flags {
        let mut settings = LogsSpec::default();
        let patterns: Vec<&String> = flags
            .log_errors
            .iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .collect();
        if !patterns.is_empty() {
            settings.patterns = patterns
                .iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| {
                        flag_error("--log-errors", format!("invalid regex {p:?}: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        settings.container = flags.log_container.clone();
        add("log-errors".into(), analysis_spec::Probe::Logs(settings));
    }
    // `--http-check auto`: the pod template's own httpGet probes; `none`: not even by
    // default. By default (no request-level check given, no analysis file) the probes are
    // used where the canary's template has them.
    let probes_asked = flags.http_check.iter().any(|t| t == HTTP_CHECK_AUTO);
    let probes_refused = flags.http_check.iter().any(|t| t == HTTP_CHECK_NONE);
    if probes_asked && probes_refused {
        return Err(flag_error(
            "--http-check",
            "auto and none exclude each other",
        ));
    }
    let request_check_given = flags.http_check.iter().any(|t| t != HTTP_CHECK_NONE)
        || !flags.http_service_check.is_empty()
        || !flags.query.is_empty()
        || flags.auto_metrics
        || flags.prometheus.is_some()
        || flags.prometheus_service.is_some();
    if probes_asked || (!probes_refused && !request_check_given && flags.analysis_file.is_none()) {
        let settings = http_settings(flags, HttpSpec::new(0, "/"))?;
        add(
            "http-probe".into(),
            analysis_spec::Probe::HttpFromProbes(settings),
        );
    }
    for text in flags
        .http_check
        .iter()
        .filter(|t| *t != HTTP_CHECK_AUTO && *t != HTTP_CHECK_NONE)
    {
        let (port, path) = parse_pod_http_check(text).map_err(|m| flag_error("--http-check", m))?;
        let settings = http_settings(flags, HttpSpec::new(port, path.clone()))?;
        add(
            format!("http-{port}{}", name_suffix(&path)),
            analysis_spec::Probe::Http(settings),
        );
    }
    for text in &flags.http_service_check {
        let (service, port, path) =
            parse_service_http_check(text).map_err(|m| flag_error("--http-service-check", m))?;
        let mut settings = http_settings(flags, HttpSpec::new(port, path.clone()))?;
        settings.service = Some(service.clone());
        add(
            format!("http-service-{service}-{port}{}", name_suffix(&path)),
            analysis_spec::Probe::Http(settings),
        );
    }
    let given_address = match (&flags.prometheus, &flags.prometheus_service) {
        (Some(url), _) => Some(PrometheusAddress::Url(url.clone())),
        (None, Some(service)) => Some(PrometheusAddress::Service(
            ServiceRef::parse(service).map_err(|m| flag_error("--prometheus-service", m))?,
        )),
        (None, None) => None,
    };
    if flags.query.is_empty() && (flags.auto_metrics || given_address.is_some()) {
        add(
            "auto-metrics".into(),
            analysis_spec::Probe::AutoMetrics(AutoMetricsSpec::new(
                given_address.clone(),
                spec.window,
            )),
        );
    }
    if !flags.query.is_empty() {
        let address = match given_address {
            Some(address) => address,
            None => {
                return Err(flag_error(
                    "--query",
                    "needs --prometheus URL or --prometheus-service NAMESPACE/SERVICE:PORT",
                ));
            }
        };
        let mut judge = JudgeSpec::default();
        if let Some(direction) = flags.query_direction {
            judge.direction = direction.into();
        }
        if let Some(tolerance) = flags.query_tolerance {
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                return Err(flag_error(
                    "--query-tolerance",
                    format!("{tolerance} must be a number >= 0"),
                ));
            }
            judge.tolerance = tolerance;
        }
        let step = flags
            .query_step
            // About 30 points per window by default: enough for the Mann-Whitney test to
            // reach 98% confidence, few enough to keep the query cheap.
            .unwrap_or_else(|| (spec.window / 30).max(std::time::Duration::from_secs(1)));
        for (index, query) in flags.query.iter().enumerate() {
            if let Some(problem) = query_template_problem(query) {
                return Err(flag_error("--query", format!("{problem}: {query}")));
            }
            add(
                format!("prometheus-{}", index + 1),
                analysis_spec::Probe::Prometheus(PrometheusSpec {
                    address: address.clone(),
                    query: query.clone(),
                    range: (!step.is_zero()).then_some(RangeSpec { step }),
                    judge,
                    threshold: Threshold {
                        max: flags.query_max,
                        min: None,
                    },
                    timeout: std::time::Duration::from_secs(10),
                }),
            );
        }
    }

    for check in added {
        if spec.checks.iter().any(|c| c.name == check.name) {
            return Err(flag_error(
                "analysis flags",
                format!(
                    "the check name {:?} is also used in the analysis file",
                    check.name
                ),
            ));
        }
        spec.checks.push(check);
    }
    Ok(spec)
}

/// `--http-check auto`: HTTP checks at the pod template's own httpGet probes.
const HTTP_CHECK_AUTO: &str = "auto";
/// `--http-check none`: no HTTP check, not even the probes' by default.
const HTTP_CHECK_NONE: &str = "none";

fn name_suffix(path: &str) -> String {
    analysis_spec::path_suffix(path)
}

fn http_settings(
    flags: &AnalysisFlags,
    mut settings: HttpSpec,
) -> Result<HttpSpec, AnalysisConfigError> {
    if let Some(requests) = flags.http_requests {
        settings.requests = analysis_spec::validate_requests(requests)
            .map_err(|m| flag_error("--http-requests", m))?;
    }
    if let Some(rate) = flags.http_rate {
        settings.rate_per_second =
            analysis_spec::validate_rate(rate).map_err(|m| flag_error("--http-rate", m))?;
    }
    settings.expect_status = flags.http_expect_status.clone();
    Ok(settings)
}

/// Parses `[:]PORT[/PATH]`.
fn parse_pod_http_check(text: &str) -> Result<(u16, String), String> {
    let rest = text.strip_prefix(':').unwrap_or(text);
    let (port, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], rest[slash..].to_string()),
        None => (rest, "/".to_string()),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?} is not [:]PORT[/PATH], e.g. :8080/healthz"))?;
    if port == 0 {
        return Err(format!("{text:?}: port 0 is not a port"));
    }
    Ok((port, path))
}

/// Parses `SERVICE:PORT[/PATH]`.
fn parse_service_http_check(text: &str) -> Result<(String, u16, String), String> {
    let bad = || format!("{text:?} is not SERVICE:PORT[/PATH], e.g. web:80/healthz");
    let (service, rest) = text.split_once(':').ok_or_else(bad)?;
    if service.is_empty() {
        return Err(bad());
    }
    let (port, path) = parse_pod_http_check(rest).map_err(|_| bad())?;
    Ok((service.to_string(), port, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::analysis_spec::Probe;
    use canary_core::verdict::InconclusivePolicy;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        flags: AnalysisFlags,
    }

    fn resolve_args(args: &[&str]) -> Result<AnalysisSpec, AnalysisConfigError> {
        let harness =
            Harness::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap();
        resolve(&harness.flags)
    }

    fn names(spec: &AnalysisSpec) -> Vec<&str> {
        spec.checks.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn no_flags_means_pod_health_logs_and_the_probes_http_checks() {
        let spec = resolve_args(&[]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "log-errors", "http-probe"]);
        assert!(matches!(spec.checks[2].probe, Probe::HttpFromProbes(_)));
    }

    /// `--http-check auto` asks for the probes' checks beside other checks (and takes the
    /// HTTP flags); `none` turns the default off and keeps the logs; a request-level check
    /// given replaces the default.
    #[test]
    fn http_checks_from_probes_are_asked_for_or_turned_off() {
        let spec = resolve_args(&["--http-check", "auto", "--http-requests", "40"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "http-probe"]);
        let Probe::HttpFromProbes(http) = &spec.checks[1].probe else {
            panic!("{spec:?}");
        };
        assert_eq!(http.requests, 40);
        let spec = resolve_args(&["--http-check", "auto", "--http-check", ":80/"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "http-probe", "http-80"]);
        let spec = resolve_args(&["--http-check", "none"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "log-errors"]);
        let spec = resolve_args(&["--http-check", ":80/"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "http-80"]);
        let spec = resolve_args(&["--auto-metrics"]).unwrap();
        assert!(!names(&spec).contains(&"http-probe"), "{spec:?}");
        let error = resolve_args(&["--http-check", "auto", "--http-check", "none"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("exclude each other"), "{error}");
    }

    #[test]
    fn check_flags_build_their_checks() {
        let spec = resolve_args(&[
            "--http-check",
            ":8080/healthz",
            "--http-requests",
            "40",
            "--log-errors=\\[error\\]",
            "--prometheus",
            "http://127.0.0.1:9090",
            "--query",
            "sum(rate(http_requests_total{ {{selector}} }[1m]))",
            "--query-max",
            "5",
            "--on-inconclusive",
            "fail",
            "--window",
            "2m",
        ])
        .unwrap();
        assert_eq!(
            names(&spec),
            [
                "pod-health",
                "log-errors",
                "http-8080-healthz",
                "prometheus-1"
            ]
        );
        assert_eq!(spec.window, std::time::Duration::from_secs(120));
        assert!(
            spec.checks
                .iter()
                .all(|c| c.on_inconclusive == InconclusivePolicy::Fail)
        );
        let Probe::Http(http) = &spec.checks[2].probe else {
            panic!()
        };
        assert_eq!(
            (http.port, http.path.as_str(), http.requests),
            (8080, "/healthz", 40)
        );
        let Probe::Logs(logs) = &spec.checks[1].probe else {
            panic!()
        };
        assert_eq!(logs.patterns[0].as_str(), "\\[error\\]");
        let Probe::Prometheus(prom) = &spec.checks[3].probe else {
            panic!()
        };
        assert_eq!(prom.threshold.max, Some(5.0));
        assert_eq!(
            prom.range,
            Some(RangeSpec {
                step: std::time::Duration::from_secs(4)
            })
        );
    }

    /// `--prometheus` without `--query` judges the pods' own request metrics there;
    /// `--auto-metrics` alone finds Prometheus in the cluster.
    #[test]
    fn prometheus_without_a_query_finds_the_request_metrics() {
        let spec = resolve_args(&["--prometheus", "http://127.0.0.1:9090"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "auto-metrics"]);
        let Probe::AutoMetrics(auto) = &spec.checks[1].probe else {
            panic!("{:?}", spec.checks[1].probe)
        };
        assert_eq!(
            auto.address,
            Some(PrometheusAddress::Url("http://127.0.0.1:9090".into()))
        );
        assert_eq!(auto.min_requests, analysis_spec::DEFAULT_MIN_REQUESTS);
        let spec = resolve_args(&["--auto-metrics", "--window", "30s"]).unwrap();
        assert_eq!(names(&spec), ["pod-health", "auto-metrics"]);
        let Probe::AutoMetrics(auto) = &spec.checks[1].probe else {
            panic!()
        };
        assert_eq!(auto.address, None);
        assert_eq!(auto.step, std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let error = resolve_args(&["--http-check", "eighty"])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--http-check: "), "{error}");
        let error = resolve_args(&["--http-check", ":80", "--http-requests", "100000"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("between 1 and 1000"), "{error}");
        let error = resolve_args(&["--query", "sum(up)", "--prometheus", "http://p"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("{{selector}}"), "{error}");
        let error = resolve_args(&["--query", "up{ {{selector}} }"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--prometheus"), "{error}");
    }

    #[test]
    fn file_errors_name_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("kc-analysis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("analysis.yaml");
        std::fs::write(
            &path,
            "window: 1m\nchecks:\n  - http:\n      port: 80\n      rate: 5\n",
        )
        .unwrap();
        let error = resolve_args(&["--analysis-file", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("analysis.yaml: line 5"), "{error}");
        assert!(error.contains("field checks[0].http.rate"), "{error}");
        std::fs::write(&path, "checks:\n  - name: pods\n    podHealth: {}\n").unwrap();
        let spec = resolve_args(&[
            "--analysis-file",
            path.to_str().unwrap(),
            "--http-check",
            "80",
        ])
        .unwrap();
        // The file's pod health check replaces the default one.
        assert_eq!(names(&spec), ["pods", "http-80"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn service_checks_parse() {
        assert_eq!(
            parse_service_http_check("web:80/healthz"),
            Ok(("web".into(), 80, "/healthz".into()))
        );
        assert!(parse_service_http_check(":80").is_err());
    }
}
