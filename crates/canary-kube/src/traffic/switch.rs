//! Blue/Green's switch: every Service pinned by a Deployment pointed at one set in one
//! update each, and the wait until their endpoints list only that set.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;

use super::*;
use crate::engine::mutation_point;
use crate::error::{CanaryError, Result};

/// Blue/Green: points every Service pinned by this Deployment at the pods whose
/// `pod-template-hash` is `hash`, one update each (the switch to the new set, or back to
/// the old one). A Service someone else changed since is not written over: the command
/// stops, naming it. Returns the Services switched.
pub async fn switch_to(
    client: &kube::Client,
    namespace: &str,
    deployment_uid: &str,
    hash: &str,
) -> Result<Vec<String>> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let items = services_or_forbidden(client, namespace, "a Blue/Green switch needs").await?;
    let mut switched = Vec::new();
    for service in &items {
        if !matches!(pin_of(service), Some(Ok(p)) if p.deployment_uid == deployment_uid) {
            continue;
        }
        let name = service.metadata.name.clone().unwrap_or_default();
        let wrote = write_with_retry(&api, &name, |svc| {
            let Some(Ok(pin)) = pin_of(svc) else {
                return Ok(None);
            };
            let now = traffic_of(svc);
            let wanted = pin.pointed_at(hash);
            if now.equivalent(&wanted.applied) && pin == wanted {
                return Ok(None);
            }
            if !now.equivalent(&pin.applied) && !now.equivalent(&wanted.applied) {
                return Err(CanaryError::Refused(format!(
                    "service/{name} was changed by someone else during the canary (its selector or affinity \
                     is not what kubectl-canary wrote); not switching it: look at it, then run the command again"
                )));
            }
            Ok(Some((wanted.applied.clone(), Some(wanted))))
        })
        .await?;
        if wrote {
            mutation_point(&format!("service/{name} switched"));
        }
        switched.push(name);
    }
    Ok(switched)
}

/// How long a switch waits, after the EndpointSlices show only the new set, before the old
/// set may go: kube-proxy on every node programs its rules from the EndpointSlices, at most
/// every `--iptables-min-sync-period` (1 s by default), so an old pod removed sooner could
/// still get a connection.
pub const SWITCH_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until the EndpointSlices of every Service in `services` list only Ready pods
/// carrying `pod-template-hash` `hash` (at least one), then [`SWITCH_SETTLE`]; at once when
/// no pod carries that hash.
pub async fn wait_switched(
    client: &kube::Client,
    namespace: &str,
    services: &[String],
    hash: &str,
    timeout: std::time::Duration,
) -> Result<()> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    for service in services {
        loop {
            let wanted: BTreeSet<String> = pods
                .list(&ListParams::default().labels(&format!(
                    "{}={hash}",
                    canary_core::record::POD_TEMPLATE_HASH_LABEL
                )))
                .await
                .map_err(|e| CanaryError::api("listing pods", e))?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            let list = slices
                .list(
                    &ListParams::default().labels(&format!("kubernetes.io/service-name={service}")),
                )
                .await
                .map_err(|e| CanaryError::api("listing EndpointSlices", e))?;
            let endpoints: Vec<(String, bool)> = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .map(|e| {
                    (
                        e.target_ref
                            .as_ref()
                            .and_then(|r| r.name.clone())
                            .unwrap_or_default(),
                        e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                    )
                })
                .collect();
            let done = endpoints.iter().any(|(_, ready)| *ready)
                && endpoints.iter().all(|(pod, _)| wanted.contains(pod));
            // No pod of that set at all (an abort after a promotion that had already
            // removed the old pods, interrupted): nothing to wait for; the rollback brings
            // them back and the Service follows.
            if done || wanted.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(CanaryError::TimedOut {
                    what: format!(
                        "the EndpointSlices of service/{service} to list only the pods of pod-template-hash {hash}"
                    ),
                    seconds: timeout.as_secs(),
                    last: format!("endpoints {endpoints:?}"),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(SWITCH_SETTLE).await;
    Ok(())
}
