//! Analysis specs read by the controller come from ConfigMaps that anyone allowed to edit
//! ConfigMaps in the namespace can write. Before use they are bounded, and every endpoint
//! the analysis calls comes from the controller's own configuration: a spec cannot make the
//! controller send requests where its writer wants.

use std::time::Duration;

use crate::analysis_spec::{AnalysisSpec, Probe, PrometheusAddress};

/// Largest spec text read from a ConfigMap.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;
/// Most checks in one spec.
pub const MAX_CHECKS: usize = 16;
/// Longest look-back window.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Longest PromQL query template.
pub const MAX_QUERY_CHARS: usize = 4096;
/// Longest timeout of one Prometheus query or HTTP request.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Most HTTP requests per side in one check, in controller mode.
pub const MAX_HTTP_REQUESTS: u32 = 200;

/// Checks a parsed spec against the controller's bounds and sets every Prometheus check's
/// address to the controller's own `prometheus` (a spec naming another address is refused,
/// so its writer learns that it is not used). Returns what is wrong, for an Event.
pub fn bound_for_controller(
    spec: &mut AnalysisSpec,
    prometheus: Option<&PrometheusAddress>,
) -> Result<(), String> {
    if spec.checks.len() > MAX_CHECKS {
        return Err(format!(
            "{} checks; the controller runs at most {MAX_CHECKS}",
            spec.checks.len()
        ));
    }
    if spec.window > MAX_WINDOW {
        return Err(format!(
            "window {}s is longer than the controller's limit of {}s",
            spec.window.as_secs(),
            MAX_WINDOW.as_secs()
        ));
    }
    for check in &mut spec.checks {
        let name = check.name.clone();
        match &mut check.probe {
            Probe::Prometheus(prometheus_check) => {
                let Some(configured) = prometheus else {
                    return Err(format!(
                        "check {name} queries Prometheus, but the controller has no --prometheus-url"
                    ));
                };
                if &prometheus_check.address != configured {
                    return Err(format!(
                        "check {name} names Prometheus at {}; in controller mode Prometheus is the \
                         controller's own ({configured}): give that address or remove the check",
                        prometheus_check.address
                    ));
                }
                if prometheus_check.query.chars().count() > MAX_QUERY_CHARS {
                    return Err(format!(
                        "check {name}: the query is longer than {MAX_QUERY_CHARS} characters"
                    ));
                }
                if prometheus_check.timeout > MAX_TIMEOUT {
                    return Err(format!(
                        "check {name}: timeout longer than {}s",
                        MAX_TIMEOUT.as_secs()
                    ));
                }
                prometheus_check.address = configured.clone();
            }
            Probe::Http(http) | Probe::HttpFromProbes(http) => {
                if http.requests > MAX_HTTP_REQUESTS {
                    return Err(format!(
                        "check {name}: {} requests per side; the controller sends at most {MAX_HTTP_REQUESTS}",
                        http.requests
                    ));
                }
                if http.timeout > MAX_TIMEOUT {
                    return Err(format!(
                        "check {name}: timeout longer than {}s",
                        MAX_TIMEOUT.as_secs()
                    ));
                }
            }
            Probe::AutoMetrics(auto) => {
                // Always the controller's own Prometheus, never one named by a namespace
                // (nor one found in the cluster).
                let Some(configured) = prometheus else {
                    return Err(format!(
                        "check {name} reads the pods' request metrics, but the controller has no --prometheus-url"
                    ));
                };
                auto.address = Some(configured.clone());
                if let Some(http) = &auto.fallback
                    && (http.requests > MAX_HTTP_REQUESTS || http.timeout > MAX_TIMEOUT)
                {
                    return Err(format!(
                        "check {name}: the fallback HTTP check exceeds the controller's bounds"
                    ));
                }
            }
            Probe::PodHealth(_) | Probe::Logs(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_spec::parse_analysis_spec;

    const OURS: &str = "http://127.0.0.1:9090";

    fn spec(yaml: &str) -> AnalysisSpec {
        parse_analysis_spec(yaml).unwrap()
    }

    fn ours() -> PrometheusAddress {
        PrometheusAddress::Url(OURS.into())
    }

    #[test]
    fn the_controllers_prometheus_is_accepted() {
        let mut spec = spec(&format!(
            "checks:\n  - name: p\n    prometheus: {{ url: '{OURS}', query: 'sum(up{{ {{{{selector}}}} }})' }}\n"
        ));
        assert_eq!(bound_for_controller(&mut spec, Some(&ours())), Ok(()));
    }

    #[test]
    fn another_prometheus_or_none_configured_is_refused() {
        let yaml = "checks:\n  - name: p\n    prometheus: { url: 'http://evil.example:9090', query: 'up{ {{selector}} }' }\n";
        let error = bound_for_controller(&mut spec(yaml), Some(&ours())).unwrap_err();
        assert!(
            error.contains("evil.example") && error.contains(OURS),
            "{error}"
        );
        let error = bound_for_controller(&mut spec(yaml), None).unwrap_err();
        assert!(error.contains("--prometheus-url"), "{error}");
    }

    #[test]
    fn extreme_bounds_are_refused() {
        let long_query = format!(
            "checks:\n  - name: p\n    prometheus: {{ url: '{OURS}', query: 'up{{ {{{{selector}}}} }}{}' }}\n",
            " ".repeat(MAX_QUERY_CHARS)
        );
        let many_requests = "checks:\n  - name: h\n    http: { port: 80, requests: 1000 }\n";
        let long_window = "window: 2h\nchecks:\n  - name: pods\n    podHealth: {}\n";
        for yaml in [long_query.as_str(), many_requests, long_window] {
            assert!(
                bound_for_controller(&mut spec(yaml), Some(&ours())).is_err(),
                "{yaml} must be refused"
            );
        }
        let fine = "checks:\n  - name: pods\n    podHealth: {}\n";
        assert_eq!(bound_for_controller(&mut spec(fine), Some(&ours())), Ok(()));
    }
}
