//! HTTP: requests to the canary and to the stable pods through the API server's pod proxy,
//! with the error rates and latencies compared ([`canary_core::verdict::http::judge`]). A
//! check through a Service also sends requests as users reach the Service, and judges each
//! side through the pod proxies of the Service's own endpoints at the canary's traffic share
//! ([`canary_core::verdict::http::judge_through_service`]).

mod endpoints;
mod send;

use kube::ResourceExt;

use canary_core::analysis_spec::{CheckSpec, HttpSpec};
use canary_core::verdict::http::{ServiceSample, judge, judge_through_service};
use canary_core::verdict::{CheckResult, Outcome};

pub use canary_core::verdict::http::{ERROR_RATE_CONFIDENCE, Response};
pub use send::{pod_proxy_path, proxy_get, send_paced, service_proxy_path};

use super::{AnalysisTarget, Side, list_side_pods, result_of};
use crate::observe::pod_is_ready as is_ready;

/// Runs the HTTP check.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &HttpSpec,
) -> CheckResult {
    if let Some(service) = &settings.service {
        return run_through_service(client, target, check, settings, service).await;
    }
    let (canary, stable) = futures::join!(
        side_paths(client, target, settings, Side::Canary),
        side_paths(client, target, settings, Side::Stable)
    );
    let (canary_paths, stable_paths) = match (canary, stable) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(problem), _) | (_, Err(problem)) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), problem);
        }
    };
    let (canary_responses, stable_responses) = futures::join!(
        send_paced(client, &canary_paths, settings),
        send_paced(client, &stable_paths, settings)
    );
    let (outcome, measurements, reason) = judge(&canary_responses, &stable_responses, settings);
    result_of(check, outcome, measurements, reason)
}

async fn run_through_service(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &HttpSpec,
    service: &str,
) -> CheckResult {
    let endpoints = match endpoints::of_service(client, target, service, settings).await {
        Ok(endpoints) => endpoints,
        Err(problem) => return result_of(check, Outcome::Inconclusive, Vec::new(), problem),
    };
    let through_path = service_proxy_path(
        &target.namespace,
        service,
        &settings.port.to_string(),
        &settings.path,
    );
    let through_paths = [through_path];
    let (through, canary, stable) = futures::join!(
        send_paced(client, &through_paths, settings),
        send_paced(client, &endpoints.canary_paths, settings),
        send_paced(client, &endpoints.stable_paths, settings)
    );
    let sample = ServiceSample {
        service,
        responses: &through,
        canary_endpoints: endpoints.canary_paths.len(),
        endpoints: endpoints.ready,
    };
    let (outcome, measurements, reason) =
        judge_through_service(&sample, &canary, &stable, settings);
    result_of(check, outcome, measurements, reason)
}

async fn side_paths(
    client: &kube::Client,
    target: &AnalysisTarget,
    settings: &HttpSpec,
    side: Side,
) -> Result<Vec<String>, String> {
    let pods = list_side_pods(client, target, side).await?;
    Ok(pods
        .iter()
        .filter(|pod| is_ready(pod))
        .map(|pod| {
            pod_proxy_path(
                &target.namespace,
                &pod.name_any(),
                settings.port,
                &settings.path,
            )
        })
        .collect())
}
