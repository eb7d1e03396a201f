//! HTTP checks derived from the pod template's own `httpGet` readiness and liveness probes
//! (`--http-check auto`, and the default when no request-level check is given): the paths
//! the application already answers for the kubelet are requests a canary answering errors
//! fails on, where pod health and log lines see nothing.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{CheckSpec, HttpSpec, Probe};

/// The probes read, in this order, from every container of the template.
const PROBES: [&str; 2] = ["readinessProbe", "livenessProbe"];

/// `checks` with every [`Probe::HttpFromProbes`] replaced by the HTTP checks it stands for in
/// `template` (a pod template as JSON): one per distinct port and path of the containers'
/// `httpGet` readiness and liveness probes, each with the settings of the check it replaces.
/// Left out: HTTPS probes and probes with a `host` (the requests go through the API server's
/// pod proxy over HTTP), and named ports the container does not declare. Without a template,
/// or without such probes, the check is dropped: a verdict without a request-level check
/// says so itself (`Verdict::not_judged`).
pub fn expand_probe_checks(checks: &[CheckSpec], template: Option<&Value>) -> Vec<CheckSpec> {
    let mut expanded = Vec::with_capacity(checks.len());
    for check in checks {
        let Probe::HttpFromProbes(base) = &check.probe else {
            expanded.push(check.clone());
            continue;
        };
        for (port, path) in template.map(probe_endpoints).unwrap_or_default() {
            let name = format!("{}-{port}{}", check.name, path_suffix(&path));
            if checks.iter().chain(&expanded).any(|c| c.name == name) {
                continue;
            }
            expanded.push(CheckSpec {
                name,
                critical: check.critical,
                on_inconclusive: check.on_inconclusive,
                probe: Probe::Http(HttpSpec {
                    port,
                    path,
                    ..base.clone()
                }),
            });
        }
    }
    expanded
}

/// The distinct (port, path) of the template's plain-HTTP `httpGet` probes, in container
/// order, readiness before liveness.
pub fn probe_endpoints(template: &Value) -> Vec<(u16, String)> {
    let mut seen = BTreeSet::new();
    let mut endpoints = Vec::new();
    let containers = template["spec"]["containers"].as_array();
    for container in containers.into_iter().flatten() {
        for probe in PROBES {
            let get = &container[probe]["httpGet"];
            if get.is_null()
                || get["host"].as_str().is_some_and(|h| !h.is_empty())
                || get["scheme"]
                    .as_str()
                    .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
            {
                continue;
            }
            let Some(port) = port_of(container, &get["port"]) else {
                continue;
            };
            let path = match get["path"].as_str() {
                Some(path) if path.starts_with('/') => path.to_string(),
                Some(path) => format!("/{path}"),
                None => "/".to_string(),
            };
            if seen.insert((port, path.clone())) {
                endpoints.push((port, path));
            }
        }
    }
    endpoints
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port_of(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(text) => match text.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"].as_str() == Some(text))?["containerPort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok()),
        },
        _ => None,
    }
}

/// The part of a check's name that says its path: `/healthz/ready` -> `-healthz-ready`,
/// `/` -> nothing.
pub fn path_suffix(path: &str) -> String {
    let cleaned: String = path
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if cleaned.is_empty() {
        String::new()
    } else {
        format!("-{cleaned}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verdict::InconclusivePolicy;

    fn probes_check() -> CheckSpec {
        CheckSpec {
            name: "http-probe".into(),
            critical: true,
            on_inconclusive: InconclusivePolicy::default(),
            probe: Probe::HttpFromProbes(HttpSpec::new(0, "/")),
        }
    }

    /// Each distinct plain-HTTP httpGet probe becomes one HTTP check; named ports resolve
    /// against the container's ports; HTTPS, a host, exec and tcp probes and unknown port
    /// names are left out.
    #[test]
    fn http_get_probes_become_http_checks() {
        let template = json!({"spec": {"containers": [
            {"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
             "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
             "livenessProbe": {"httpGet": {"port": 8080, "path": "/ready"}}},
            {"name": "side",
             "readinessProbe": {"httpGet": {"port": 9000, "path": "healthz", "scheme": "HTTP"}},
             "livenessProbe": {"httpGet": {"port": 9443, "scheme": "HTTPS"}}},
            {"name": "other",
             "readinessProbe": {"httpGet": {"port": "missing"}},
             "livenessProbe": {"httpGet": {"port": 80, "host": "example.com"}}},
            {"name": "tcp", "readinessProbe": {"tcpSocket": {"port": 80}},
             "livenessProbe": {"exec": {"command": ["true"]}}}
        ]}});
        assert_eq!(
            probe_endpoints(&template),
            vec![(8080, "/ready".to_string()), (9000, "/healthz".to_string())]
        );
        let checks = expand_probe_checks(&[probes_check()], Some(&template));
        let named: Vec<(&str, u16, &str)> = checks
            .iter()
            .map(|c| match &c.probe {
                Probe::Http(http) => (c.name.as_str(), http.port, http.path.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            named,
            vec![
                ("http-probe-8080-ready", 8080, "/ready"),
                ("http-probe-9000-healthz", 9000, "/healthz")
            ]
        );
    }

    /// No httpGet probe (or no template): nothing stands in, the other checks stay.
    #[test]
    fn without_http_get_probes_the_check_is_dropped() {
        let pods = CheckSpec {
            name: "pod-health".into(),
            probe: Probe::PodHealth(Default::default()),
            ..probes_check()
        };
        let template = json!({"spec": {"containers": [{"name": "app"}]}});
        for template in [Some(&template), None] {
            let checks = expand_probe_checks(&[pods.clone(), probes_check()], template);
            assert_eq!(checks, vec![pods.clone()]);
        }
    }

    #[test]
    fn path_suffixes() {
        assert_eq!(path_suffix("/"), "");
        assert_eq!(path_suffix("/healthz/ready"), "-healthz-ready");
    }
}
