//! Analysis with no query written: find Prometheus (given, or in the cluster), find which
//! request-metric family both sides' pods export, check they served enough requests, and
//! judge the error ratio and mean latency built for that family
//! ([`canary_core::analysis_spec::MetricFamily::queries`]). When there is no family or too
//! little traffic, say why and fall back to the HTTP check, which makes its own traffic
//! through the pod proxy: never a silent pass.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use canary_core::analysis_spec::{
    AutoMetricsSpec, CheckSpec, HttpSpec, JudgeSpec, PrometheusAddress, PrometheusSpec, RangeSpec,
    ServiceRef, common_family, detect_families, family_detection_query, rate_window, render_query,
};
use canary_core::verdict::auto_metrics::{judge_auto_metrics, traffic_problem};
use canary_core::verdict::{CheckResult, Outcome, Threshold};

use super::super::clock::ServerClock;
use super::super::{AnalysisTarget, Side, http, list_side_pods, result_of};
use super::client::PrometheusClient;
use super::{Series, liveness};

/// The Prometheus Operator's Service in front of every Prometheus it runs.
pub const OPERATED_SERVICE: &str = "prometheus-operated";

/// Labels that mark a Service as Prometheus, tried in order after the Operator's Service.
pub const PROMETHEUS_SERVICE_LABELS: &[&str] =
    &["app.kubernetes.io/name=prometheus", "app=prometheus"];

/// Runs the check.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &AutoMetricsSpec,
    clock: &ServerClock,
    window: Duration,
) -> CheckResult {
    let address = match &settings.address {
        Some(address) => address.clone(),
        None => match find_prometheus(client).await {
            Ok(address) => address,
            Err(why) => return fall_back(client, target, check, settings, why).await,
        },
    };
    match judge_metrics(client, target, settings, &address, clock, window).await {
        Ok((outcome, measurements, reason)) => result_of(
            check,
            outcome,
            measurements,
            format!("Prometheus at {address}: {reason}"),
        ),
        Err(why) => {
            fall_back(
                client,
                target,
                check,
                settings,
                format!("Prometheus at {address}: {why}"),
            )
            .await
        }
    }
}

/// The Prometheus Operator's `prometheus-operated` Service in any namespace, else a Service
/// labelled as Prometheus; its port named `web` or `http`, else 9090, else its first.
pub async fn find_prometheus(client: &kube::Client) -> Result<PrometheusAddress, String> {
    let services: Api<Service> = Api::all(client.clone());
    let mut searches = vec![(
        format!("the {OPERATED_SERVICE} Service"),
        ListParams::default().fields(&format!("metadata.name={OPERATED_SERVICE}")),
    )];
    for label in PROMETHEUS_SERVICE_LABELS {
        searches.push((
            format!("a Service labelled {label}"),
            ListParams::default().labels(label),
        ));
    }
    let mut looked = Vec::new();
    for (what, params) in searches {
        let found = services.list(&params).await.map_err(|e| {
            format!("no --prometheus given, and cannot look for Prometheus in the cluster: {e}")
        })?;
        let mut items = found.items;
        items.sort_by_key(|s| (s.namespace().unwrap_or_default(), s.name_any()));
        if let Some(address) = items.iter().find_map(service_address) {
            return Ok(address);
        }
        looked.push(what);
    }
    Err(format!(
        "no --prometheus given, and none found in the cluster (looked for {})",
        looked.join(", ")
    ))
}

fn service_address(service: &Service) -> Option<PrometheusAddress> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    let port = ports
        .iter()
        .find(|p| matches!(p.name.as_deref(), Some("web" | "http")))
        .or_else(|| ports.iter().find(|p| p.port == 9090))
        .or_else(|| ports.first())?;
    let https = port.name.as_deref() == Some("https") || port.port == 443;
    Some(PrometheusAddress::Service(ServiceRef {
        namespace: service.namespace()?,
        name: service.name_any(),
        port: port.port.to_string(),
        scheme: if https { "https" } else { "http" }.into(),
    }))
}

/// The judgement by the metrics, or why the metrics cannot judge (then the HTTP check does).
async fn judge_metrics(
    client: &kube::Client,
    target: &AnalysisTarget,
    settings: &AutoMetricsSpec,
    address: &PrometheusAddress,
    clock: &ServerClock,
    window: Duration,
) -> Result<canary_core::verdict::auto_metrics::Judged, String> {
    let prometheus = PrometheusClient::new(client, address).map_err(|e| e.to_string())?;
    let end = clock.now().as_millisecond() as f64 / 1000.0;
    let timeout = settings.timeout;
    // Both sides scraped at all, or nothing about them can be read.
    let [canary_live, stable_live] =
        liveness::check_both_sides(client, &prometheus, target, window, end, timeout).await;
    canary_live?;
    stable_live?;
    let render =
        |template: &str, side: Side| render_query(template, &target.query_context(side, window));
    let instant = |template: String, side: Side| {
        let prometheus = prometheus.clone();
        let query = render(&template, side);
        async move {
            prometheus
                .instant(&query, end, timeout)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let detection = family_detection_query();
    let (canary, stable) = futures::join!(
        instant(detection.clone(), Side::Canary),
        instant(detection, Side::Stable)
    );
    let labels = |series: Vec<Series>| -> Vec<BTreeMap<String, String>> {
        series.into_iter().map(|s| s.labels).collect()
    };
    let family = common_family(
        &detect_families(&labels(canary?)),
        &detect_families(&labels(stable?)),
    )?;
    let queries = family.queries(window, rate_window(window, settings.step));
    let (canary_requests, stable_requests) = futures::join!(
        instant(queries.requests.clone(), Side::Canary),
        instant(queries.requests.clone(), Side::Stable)
    );
    let count = |series: Vec<Series>| -> Option<f64> {
        series
            .first()
            .and_then(|s| s.points.first())
            .map(|(_, v)| *v)
    };
    let (canary_requests, stable_requests) = (count(canary_requests?), count(stable_requests?));
    if let Some(problem) = traffic_problem(
        canary_requests,
        stable_requests,
        settings.min_requests,
        window,
    ) {
        return Err(format!("{family}: {problem}"));
    }
    let step = settings.step;
    let judge = |template: String, judge: JudgeSpec| {
        let prometheus = prometheus.clone();
        let spec = PrometheusSpec {
            address: address.clone(),
            query: template.clone(),
            range: Some(RangeSpec {
                step: settings.step,
            }),
            judge,
            threshold: Threshold::default(),
            timeout,
        };
        let (canary_query, stable_query) = (
            render(&template, Side::Canary),
            render(&template, Side::Stable),
        );
        async move {
            let start = end - window.as_secs_f64();
            let (canary, stable) = futures::join!(
                prometheus.range(&canary_query, start, end, step, timeout),
                prometheus.range(&stable_query, start, end, step, timeout)
            );
            let (outcome, measurements, reason) =
                super::judge(canary, stable, &spec, &canary_query);
            (
                outcome,
                measurements,
                format!("{reason} (query: {canary_query})"),
            )
        }
    };
    let errors = judge(queries.error_ratio.clone(), settings.errors);
    let latency = async {
        match queries.latency.clone() {
            Some(template) => Some(judge(template, settings.latency).await),
            None => None,
        }
    };
    let (errors, latency) = futures::join!(errors, latency);
    Ok(judge_auto_metrics(
        &family,
        (
            canary_requests.unwrap_or(0.0),
            stable_requests.unwrap_or(0.0),
        ),
        errors,
        latency,
    ))
}

/// The HTTP check in place of the metrics, with why; or, without a port to send requests to,
/// inconclusive with why.
async fn fall_back(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &AutoMetricsSpec,
    why: String,
) -> CheckResult {
    let http_settings = match &settings.fallback {
        Some(http) => http.clone(),
        None => match declared_port(client, target).await {
            Ok(port) => HttpSpec::new(port, "/"),
            Err(problem) => {
                return result_of(
                    check,
                    Outcome::Inconclusive,
                    Vec::new(),
                    format!("{why}; no HTTP check to fall back on: {problem}"),
                );
            }
        },
    };
    let result = http::run(client, target, check, &http_settings).await;
    let reason = format!(
        "{why}; fell back to the HTTP check on port {}{} through the pod proxy: {}",
        http_settings.port, http_settings.path, result.reason
    );
    CheckResult { reason, ..result }
}

/// The canary pods' first declared TCP container port.
async fn declared_port(client: &kube::Client, target: &AnalysisTarget) -> Result<u16, String> {
    let pods = list_side_pods(client, target, Side::Canary).await?;
    pods.iter().find_map(first_tcp_port).ok_or_else(|| {
        "the canary pods declare no TCP container port (give --http-check PORT)".into()
    })
}

fn first_tcp_port(pod: &Pod) -> Option<u16> {
    pod.spec.as_ref()?.containers.iter().find_map(|c| {
        c.ports.as_ref()?.iter().find_map(|p| {
            (p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .then(|| u16::try_from(p.container_port).ok())
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_prometheus_service_is_reached_on_its_web_port() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "prometheus-operated", "namespace": "monitoring"},
            "spec": {"ports": [{"name": "grpc", "port": 10901}, {"name": "web", "port": 9090}]}
        }))
        .unwrap();
        assert_eq!(
            service_address(&service).unwrap().to_string(),
            "service monitoring/prometheus-operated:9090 (http)"
        );
        let plain: Service = serde_json::from_value(json!({
            "metadata": {"name": "prom", "namespace": "obs"},
            "spec": {"ports": [{"port": 8080}]}
        }))
        .unwrap();
        assert_eq!(
            service_address(&plain).unwrap().to_string(),
            "service obs/prom:8080 (http)"
        );
    }

    #[test]
    fn the_fallback_port_is_the_first_declared_tcp_port() {
        let pod: Pod = serde_json::from_value(json!({
            "spec": {"containers": [
                {"name": "dns", "image": "x", "ports": [{"containerPort": 53, "protocol": "UDP"}]},
                {"name": "web", "image": "y", "ports": [{"containerPort": 8080}]}
            ]}
        }))
        .unwrap();
        assert_eq!(first_tcp_port(&pod), Some(8080));
        let bare: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}))
                .unwrap();
        assert_eq!(first_tcp_port(&bare), None);
    }
}
