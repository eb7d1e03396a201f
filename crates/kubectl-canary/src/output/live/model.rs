//! Pods as the live view lists them.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::PodLine;

/// A pod's line: its state in `kubectl get pods`' words (Terminating, a waiting or
/// terminated container's reason, else the pod's phase), readiness and restarts.
pub fn pod_line(pod: &Pod) -> PodLine {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.clone().unwrap_or_default();
    let container_reason = containers.iter().find_map(|c| {
        let state = c.state.as_ref()?;
        state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
    });
    let state = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        container_reason
            .or(status.phase.clone())
            .unwrap_or_else(|| "Unknown".into())
    };
    PodLine {
        name: pod.name_any(),
        state,
        ready: canary_kube::observe::pod_is_ready(pod),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
    }
}
