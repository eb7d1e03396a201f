//! What one pod looks like to the pod health check: Ready, restarts, failure states, the
//! scheduler's reason, its age on the API server's clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::observe::pod_is_ready as is_ready;

/// Waiting reasons that mean the container cannot run as it is.
const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What one pod looks like to the check.
#[derive(Debug, Clone, Default)]
pub(super) struct PodState {
    pub(super) name: String,
    pub(super) ready: bool,
    pub(super) restarts: i64,
    /// Failure states, e.g. "CrashLoopBackOff (back-off 10s restarting failed container)".
    pub(super) failures: Vec<String>,
    /// The scheduler's reason when the pod cannot be placed.
    pub(super) unschedulable: Option<String>,
    pub(super) age: Option<Duration>,
}

pub(super) fn pod_state(pod: &Pod, now: Timestamp) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let containers: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    let mut failures = Vec::new();
    for container in &containers {
        let name = &container.name;
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = waiting.reason.as_deref()
            && FATAL_WAITING_REASONS.contains(&reason)
        {
            failures.push(with_message(
                &format!("container {name}: {reason}"),
                waiting.message.as_deref(),
            ));
        }
        if let Some(terminated) = container.state.as_ref().and_then(|s| s.terminated.as_ref())
            && terminated.exit_code != 0
        {
            failures.push(format!(
                "container {name}: exited with code {} ({})",
                terminated.exit_code,
                terminated.reason.as_deref().unwrap_or("no reason")
            ));
        }
        let oom_now = container
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
        let oom_before = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
        if oom_before && !oom_now {
            failures.push(format!("container {name}: last terminated OOMKilled"));
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        failures.push(with_message(
            &format!(
                "pod Failed ({})",
                status.reason.as_deref().unwrap_or("no reason")
            ),
            status.message.as_deref(),
        ));
    }
    let unschedulable = status.conditions.iter().flatten().find_map(|c| {
        (c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable"))
        .then(|| c.message.clone().unwrap_or_else(|| "Unschedulable".into()))
    });
    let age = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|created| {
            let seconds = now.as_second() - created.0.as_second();
            u64::try_from(seconds).ok().map(Duration::from_secs)
        });
    PodState {
        name: pod.name_any(),
        ready: is_ready(pod),
        restarts: containers.iter().map(|c| i64::from(c.restart_count)).sum(),
        failures,
        unschedulable,
        age,
    }
}

fn with_message(text: &str, message: Option<&str>) -> String {
    match message {
        Some(message) if !message.is_empty() => format!("{text} ({message})"),
        _ => text.to_string(),
    }
}
