//! Before a Prometheus check judges, which pods of each side Prometheus has live series of
//! ([`canary_core::analysis_spec::live_series_query`]), against the side's running pods.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use canary_core::analysis_spec::live_series_query;
use canary_core::verdict::live_series_coverage;

use super::super::{AnalysisTarget, Side, list_side_pods};
use super::client::PrometheusClient;

/// [`check_side`] for the canary and the stable side at once, in that order.
pub(super) async fn check_both_sides(
    client: &kube::Client,
    prometheus: &PrometheusClient,
    target: &AnalysisTarget,
    window: Duration,
    time: f64,
    timeout: Duration,
) -> [Result<Option<String>, String>; 2] {
    let (canary, stable) = futures::join!(
        check_side(
            client,
            prometheus,
            target,
            Side::Canary,
            window,
            time,
            timeout
        ),
        check_side(
            client,
            prometheus,
            target,
            Side::Stable,
            window,
            time,
            timeout
        )
    );
    [canary, stable]
}

/// `Ok` with a note about pods without series (if any), or why the side cannot be judged.
pub(super) async fn check_side(
    client: &kube::Client,
    prometheus: &PrometheusClient,
    target: &AnalysisTarget,
    side: Side,
    window: Duration,
    time: f64,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let pods = list_side_pods(client, target, side).await?;
    let running: Vec<String> = pods
        .iter()
        .filter(|p| is_running(p))
        .map(|p| p.name_any())
        .collect();
    let query = live_series_query(&target.query_context(side, window));
    let series = prometheus
        .instant(&query, time, timeout)
        .await
        .map_err(|e| format!("cannot tell which {side} pods Prometheus has series of: {e}"))?;
    let live: BTreeSet<String> = series
        .iter()
        .filter_map(|s| s.labels.get("pod").cloned())
        .collect();
    live_series_coverage(&side.to_string(), &running, &live)
}

/// A pod whose containers run (a pending or failed pod has nothing to scrape).
fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}
