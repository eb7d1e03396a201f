//! Which pods' logs are read, which container, and when the container instance whose log is
//! read started (and ended).

use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::ResourceExt;

/// At most this many pods' logs are read per side.
pub const MAX_LOG_PODS_PER_SIDE: usize = 20;

/// The pods whose logs are read.
pub(super) struct PodSample {
    pub(super) pods: Vec<Pod>,
    pub(super) not_sampled: usize,
}

/// At most [`MAX_LOG_PODS_PER_SIDE`] pods, spread evenly over the name order: the rate per
/// pod needs a sample, not every pod of a large Deployment.
pub(super) fn sample_pods(mut pods: Vec<Pod>) -> PodSample {
    if pods.len() <= MAX_LOG_PODS_PER_SIDE {
        return PodSample {
            pods,
            not_sampled: 0,
        };
    }
    pods.sort_by_key(|p| p.name_any());
    let total = pods.len();
    let picked: Vec<Pod> = (0..MAX_LOG_PODS_PER_SIDE)
        .map(|i| pods[i * total / MAX_LOG_PODS_PER_SIDE].clone())
        .collect();
    PodSample {
        pods: picked,
        not_sampled: total - MAX_LOG_PODS_PER_SIDE,
    }
}

/// The container `kubectl logs` would pick: the one named by the
/// `kubectl.kubernetes.io/default-container` annotation, else the first. Without a name the
/// API refuses to read the log of a pod with several containers.
pub(super) fn default_container(pod: &Pod) -> Option<String> {
    pod.annotations()
        .get("kubectl.kubernetes.io/default-container")
        .cloned()
        .or_else(|| {
            pod.spec
                .as_ref()?
                .containers
                .first()
                .map(|c| c.name.clone())
        })
}

/// When the container instance whose log the endpoint returns started and ended (Unix
/// seconds, written by the kubelet): the running instance, or the last terminated one while
/// the container waits to restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Instance {
    pub(super) started: Option<i64>,
    pub(super) finished: Option<i64>,
}

pub(super) fn instance_of(pod: &Pod, container: &str) -> Instance {
    let Some(status) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container))
    else {
        return creation_only(pod);
    };
    let of_state = |state: Option<&ContainerState>| -> Option<Instance> {
        let state = state?;
        if let Some(running) = &state.running {
            return Some(Instance {
                started: running.started_at.as_ref().map(|t| t.0.as_second()),
                finished: None,
            });
        }
        let terminated = state.terminated.as_ref()?;
        Some(Instance {
            started: terminated.started_at.as_ref().map(|t| t.0.as_second()),
            finished: terminated.finished_at.as_ref().map(|t| t.0.as_second()),
        })
    };
    of_state(status.state.as_ref())
        .or_else(|| of_state(status.last_state.as_ref()))
        .unwrap_or_else(|| creation_only(pod))
}

fn creation_only(pod: &Pod) -> Instance {
    Instance {
        started: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        finished: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_the_container_kubectl_would_pick() {
        let with = |annotations: serde_json::Value| {
            pod(serde_json::json!({
                "metadata": {"name": "p", "annotations": annotations},
                "spec": {"containers": [{"name": "sidecar"}, {"name": "web"}]},
            }))
        };
        assert_eq!(
            default_container(&with(serde_json::json!({}))).as_deref(),
            Some("sidecar")
        );
        let annotated = with(serde_json::json!({"kubectl.kubernetes.io/default-container": "web"}));
        assert_eq!(default_container(&annotated).as_deref(), Some("web"));
    }

    #[test]
    fn the_instance_is_the_running_one_or_the_last_terminated_one() {
        let restarted = pod(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-11-30T10:00:00Z"},
            "status": {"containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": true,
                "restartCount": 1,
                "state": {"running": {"startedAt": "2026-11-30T10:05:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-30T10:00:01Z", "finishedAt": "2026-11-30T10:04:50Z"}}}]}
        }));
        let instance = instance_of(&restarted, "web");
        assert_eq!(
            instance.started,
            Some(
                "2026-11-30T10:05:00Z"
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
        assert_eq!(instance.finished, None);
        let backing_off = pod(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-11-30T10:00:00Z"},
            "status": {"containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-30T10:06:00Z", "finishedAt": "2026-11-30T10:06:03Z"}}}]}
        }));
        let instance = instance_of(&backing_off, "web");
        assert_eq!(
            instance.finished.zip(instance.started).map(|(f, s)| f - s),
            Some(3)
        );
        let unknown = pod(
            serde_json::json!({"metadata": {"name": "p", "creationTimestamp": "2026-11-30T10:00:00Z"}}),
        );
        assert!(instance_of(&unknown, "web").started.is_some());
    }

    #[test]
    fn large_sides_are_sampled() {
        let pods: Vec<Pod> = (0..55)
            .map(|i| pod(serde_json::json!({"metadata": {"name": format!("p{i:02}")}})))
            .collect();
        let sample = sample_pods(pods);
        assert_eq!(
            (sample.pods.len(), sample.not_sampled),
            (MAX_LOG_PODS_PER_SIDE, 35)
        );
        assert_eq!(sample.pods[0].name_any(), "p00");
        assert_eq!(sample.pods[19].name_any(), "p52");
    }
}
