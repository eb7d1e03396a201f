//! HTTP: requests to the canary and to the stable pods through the API server's pod proxy,
//! with the error rates and latencies compared ([`canary_core::verdict::http::judge`]). A
//! check through a Service also sends requests as users reach the Service, and judges each
//! side through the pod proxies of the Service's own endpoints at the canary's traffic share
//! ([`canary_core::verdict::http::judge_through_service`]).
//!
//! Requests go in groups, the evidence judged after each
//! ([`canary_core::verdict::sequential`]): the check stops as soon as the error rates are
//! decided, or at its bound (`requests` per side).

mod endpoints;
mod send;

use kube::ResourceExt;

use canary_core::analysis_spec::{CheckSpec, HttpSpec};
use canary_core::verdict::http::{ServiceSample, decided, judge, judge_through_service};
use canary_core::verdict::sequential::SequentialPlan;
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
    let mut sides = Sequential::new(settings);
    while let Some((first, count)) = sides.next_group() {
        let (canary, stable) = futures::join!(
            send_paced(client, &canary_paths, settings, first, count),
            send_paced(client, &stable_paths, settings, first, count)
        );
        sides.add(count, canary, stable);
    }
    let (outcome, measurements, reason) = judge(&sides.canary, &sides.stable, settings);
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
    // Users' requests go alongside each group, so both samples are of the same moments.
    let mut sides = Sequential::new(settings);
    let mut through = Vec::new();
    while let Some((first, count)) = sides.next_group() {
        let (users, canary, stable) = futures::join!(
            send_paced(client, &through_paths, settings, first, count),
            send_paced(client, &endpoints.canary_paths, settings, first, count),
            send_paced(client, &endpoints.stable_paths, settings, first, count)
        );
        through.extend(users);
        sides.add(count, canary, stable);
    }
    let Sequential { canary, stable, .. } = sides;
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

/// The answers of both sides so far, and the group to send next.
struct Sequential<'a> {
    settings: &'a HttpSpec,
    plan: SequentialPlan,
    canary: Vec<Response>,
    stable: Vec<Response>,
    sent: usize,
}

impl<'a> Sequential<'a> {
    fn new(settings: &'a HttpSpec) -> Self {
        Sequential {
            settings,
            plan: SequentialPlan::of(settings),
            canary: Vec::new(),
            stable: Vec::new(),
            sent: 0,
        }
    }

    /// The first request index and size of the next group, or `None` when decided (or at
    /// the bound).
    fn next_group(&self) -> Option<(usize, u32)> {
        if self.sent > 0 && decided(&self.canary, &self.stable, self.settings) {
            return None;
        }
        let next = self.plan.next_look(self.sent)?;
        Some((self.sent, next - self.sent as u32))
    }

    fn add(&mut self, count: u32, canary: Vec<Response>, stable: Vec<Response>) {
        self.sent += count as usize;
        self.canary.extend(canary);
        self.stable.extend(stable);
    }
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
