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

mod auto_metrics;
mod fields;
mod probes;
mod query;
mod types;
mod yaml;

pub use crate::duration::{DurationError, format_duration, parse_duration};
pub use auto_metrics::{
    AutoMetricsSpec, DEFAULT_MIN_REQUESTS, FAMILY_METRICS, FamilyQueries, MetricFamily,
    auto_analysis_spec, common_family, detect_families, family_detection_query, rate_window,
};
pub use fields::{parse_inconclusive_policy, validate_rate, validate_requests};
pub use probes::{expand_probe_checks, path_suffix, probe_endpoints};
pub use query::{
    QUERY_PLACEHOLDERS, QueryContext, live_series_query, query_template_problem, render_query,
};
pub use types::*;
pub use yaml::{SpecError, parse_analysis_spec};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use regex::Regex;

    use super::*;
    use crate::verdict::InconclusivePolicy;

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
        let doc = include_str!("../../../../docs/analysis.md");
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
            workload: "web",
            revision: "web-abc",
            revision_label: "pod_template_hash",
            hash: "abc",
            window: Duration::from_secs(90),
        };
        assert_eq!(
            render_query(
                "rate(x{ {{selector}} }[{{window}}]) + y{rs=\"{{replicaset}}\",d=\"{{deployment}}\"}",
                &context
            ),
            "rate(x{ namespace=\"ns\",pod_template_hash=\"abc\" }[90s]) + y{rs=\"web-abc\",d=\"web\"}"
        );
        // A StatefulSet's or DaemonSet's sides: the ControllerRevision and its hash.
        let revision = QueryContext {
            namespace: "ns",
            workload: "db",
            revision: "db-5c8f",
            revision_label: "controller_revision_hash",
            hash: "db-5c8f",
            window: Duration::from_secs(60),
        };
        assert_eq!(
            render_query(
                "x{ {{selector}} } + y{r=\"{{revision}}\",w=\"{{workload}}\"}",
                &revision
            ),
            "x{ namespace=\"ns\",controller_revision_hash=\"db-5c8f\" } + y{r=\"db-5c8f\",w=\"db\"}"
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
