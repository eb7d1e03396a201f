//! Pod health: readiness, restarts and failure states of the canary pods, compared with the
//! stable pods, from a watch on both sides' pods so that a crash is seen as soon as the
//! kubelet reports it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use canary_core::analysis_spec::{CheckSpec, PodHealthSpec};
use canary_core::duration::format_duration;
use canary_core::record::POD_TEMPLATE_HASH_LABEL;
use canary_core::verdict::{CheckResult, Measurement, Outcome};

use super::clock::ServerClock;
use super::{AnalysisTarget, result_of};
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

/// How often time-based conditions (the Ready deadline) are re-evaluated while watching.
const REEVALUATE_EVERY: Duration = Duration::from_millis(500);

/// How long to wait for the first list of pods before giving up as inconclusive.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// Watches both sides' pods for `observe_for` (at least until the first list) and returns
/// as soon as the canary shows a failure, else the state at the end.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &PodHealthSpec,
    clock: &ServerClock,
    observe_for: Duration,
) -> CheckResult {
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let selector = format!(
        "{POD_TEMPLATE_HASH_LABEL} in ({},{})",
        target.canary.pod_template_hash, target.stable.pod_template_hash
    );
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let started = Instant::now();
    let observe_until = started + observe_for;
    let sync_deadline = started + SYNC_TIMEOUT.max(observe_for);
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    let mut synced = false;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(REEVALUATE_EVERY);
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Init)) => listing.clear(),
                Some(Ok(Event::InitApply(pod))) => {
                    listing.insert(pod.name_any(), pod);
                }
                Some(Ok(Event::InitDone)) => {
                    pods = std::mem::take(&mut listing);
                    synced = true;
                }
                Some(Ok(Event::Apply(pod))) => {
                    pods.insert(pod.name_any(), pod);
                }
                Some(Ok(Event::Delete(pod))) => {
                    pods.remove(&pod.name_any());
                }
                Some(Err(error)) => {
                    // The backoff retries; remember why in case it never recovers.
                    last_error = Some(error.to_string());
                }
                None => break,
            },
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(sync_deadline), if !synced => {
                return result_of(
                    check,
                    Outcome::Inconclusive,
                    Vec::new(),
                    format!(
                        "could not list the pods ({selector}) within {}: {}",
                        format_duration(sync_deadline - started),
                        last_error.as_deref().unwrap_or("no answer from the API server")
                    ),
                );
            }
        }
        if !synced {
            continue;
        }
        let assessment = assess(pods.values(), target, settings, clock.now());
        if assessment.outcome == Outcome::Fail || Instant::now() >= observe_until {
            return result_of(
                check,
                assessment.outcome,
                assessment.measurements,
                assessment.reason,
            );
        }
    }
    let assessment = assess(pods.values(), target, settings, clock.now());
    result_of(
        check,
        assessment.outcome,
        assessment.measurements,
        assessment.reason,
    )
}

/// The outcome of looking at the pods once.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// Counts for canary and stable.
    pub measurements: Vec<Measurement>,
    /// Why.
    pub reason: String,
}

/// What one pod looks like to the check.
#[derive(Debug, Clone, Default)]
struct PodState {
    name: String,
    ready: bool,
    restarts: i64,
    /// Failure states, e.g. "CrashLoopBackOff (back-off 10s restarting failed container)".
    failures: Vec<String>,
    /// The scheduler's reason when the pod cannot be placed.
    unschedulable: Option<String>,
    age: Option<Duration>,
}

fn pod_state(pod: &Pod, now: Timestamp) -> PodState {
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

/// Judges the pods as they are at `now`.
pub fn assess<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    target: &AnalysisTarget,
    settings: &PodHealthSpec,
    now: Timestamp,
) -> Assessment {
    let mut canary = Vec::new();
    let mut stable = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            // A pod being deleted (scaled down, evicted) says nothing about its release.
            continue;
        }
        let hash = pod
            .labels()
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        if hash == target.canary.pod_template_hash {
            canary.push(pod_state(pod, now));
        } else if hash == target.stable.pod_template_hash {
            stable.push(pod_state(pod, now));
        }
    }
    let count = |states: &[PodState], f: &dyn Fn(&PodState) -> bool| {
        states.iter().filter(|s| f(s)).count() as f64
    };
    let restarts = |states: &[PodState]| states.iter().map(|s| s.restarts).sum::<i64>() as f64;
    let measurements = vec![
        Measurement::new("pods", Some(canary.len() as f64), Some(stable.len() as f64)),
        Measurement::new(
            "pods Ready",
            Some(count(&canary, &|s| s.ready)),
            Some(count(&stable, &|s| s.ready)),
        ),
        Measurement::new(
            "container restarts",
            Some(restarts(&canary)),
            Some(restarts(&stable)),
        ),
        Measurement::new(
            "pods in a failure state",
            Some(count(&canary, &|s| !s.failures.is_empty())),
            Some(count(&stable, &|s| !s.failures.is_empty())),
        ),
    ];
    let stable_summary = format!(
        "stable: {} of {} Ready, {} restarts, {} failing",
        count(&stable, &|s| s.ready),
        stable.len(),
        restarts(&stable),
        count(&stable, &|s| !s.failures.is_empty()),
    );
    let verdict = |outcome: Outcome, reason: String| Assessment {
        outcome,
        measurements: measurements.clone(),
        reason: format!("{reason}; {stable_summary}"),
    };

    if canary.is_empty() {
        return verdict(
            Outcome::Inconclusive,
            format!(
                "no canary pods ({POD_TEMPLATE_HASH_LABEL}={}) exist yet",
                target.canary.pod_template_hash
            ),
        );
    }
    let failing: Vec<String> = canary
        .iter()
        .filter(|s| !s.failures.is_empty())
        .map(|s| format!("{}: {}", s.name, s.failures.join(", ")))
        .collect();
    if !failing.is_empty() {
        return verdict(
            Outcome::Fail,
            format!(
                "{} of {} canary pods failing: {}",
                failing.len(),
                canary.len(),
                failing.join("; ")
            ),
        );
    }
    let stable_restarts_per_pod = if stable.is_empty() {
        0.0
    } else {
        restarts(&stable) / stable.len() as f64
    };
    let restarting: Vec<String> = canary
        .iter()
        .filter(|s| {
            s.restarts > i64::from(settings.max_restarts)
                && s.restarts as f64 > stable_restarts_per_pod
        })
        .map(|s| format!("{} restarted {} times", s.name, s.restarts))
        .collect();
    if !restarting.is_empty() {
        return verdict(
            Outcome::Fail,
            format!(
                "canary containers restart (allowed {}, stable pods average {:.1}): {}",
                settings.max_restarts,
                stable_restarts_per_pod,
                restarting.join("; ")
            ),
        );
    }
    let deadline = settings.ready_deadline;
    let past_deadline = |s: &PodState| s.age.is_some_and(|age| age >= deadline);
    let unschedulable: Vec<&PodState> = canary
        .iter()
        .filter(|s| s.unschedulable.is_some())
        .collect();
    let describe_unschedulable = |states: &[&PodState]| -> String {
        states
            .iter()
            .map(|s| format!("{}: {}", s.name, s.unschedulable.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if unschedulable.iter().any(|s| past_deadline(s)) {
        return verdict(
            Outcome::Fail,
            format!(
                "canary pods Pending for {} or more, the scheduler cannot place them (FailedScheduling; the cluster lacks capacity for the canary): {}",
                format_duration(deadline),
                describe_unschedulable(&unschedulable)
            ),
        );
    }
    let not_ready: Vec<&PodState> = canary.iter().filter(|s| !s.ready).collect();
    if let Some(late) = not_ready.iter().find(|s| past_deadline(s)) {
        return verdict(
            Outcome::Fail,
            format!(
                "{} of {} canary pods not Ready {} after creation (e.g. {}, {} old)",
                not_ready.len(),
                canary.len(),
                format_duration(deadline),
                late.name,
                late.age.map(format_duration).unwrap_or_default()
            ),
        );
    }
    if !not_ready.is_empty() {
        let youngest_left = not_ready
            .iter()
            .filter_map(|s| s.age.map(|age| deadline.saturating_sub(age)))
            .max()
            .unwrap_or(deadline);
        let scheduling = if unschedulable.is_empty() {
            String::new()
        } else {
            format!(
                " (not schedulable yet: {})",
                describe_unschedulable(&unschedulable)
            )
        };
        return verdict(
            Outcome::Inconclusive,
            format!(
                "{} of {} canary pods not Ready yet, the Ready deadline ends in up to {}{scheduling}",
                not_ready.len(),
                canary.len(),
                format_duration(youngest_left)
            ),
        );
    }
    let total_restarts = restarts(&canary);
    verdict(
        Outcome::Pass,
        format!(
            "all {} canary pods Ready, {} restarts, none failing",
            canary.len(),
            total_restarts
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::PodGroup;
    use super::*;
    use serde_json::json;

    fn target() -> AnalysisTarget {
        AnalysisTarget {
            namespace: "ns".into(),
            deployment: "web".into(),
            canary: PodGroup {
                replica_set: "web-new".into(),
                pod_template_hash: "new".into(),
            },
            stable: PodGroup {
                replica_set: "web-old".into(),
                pod_template_hash: "old".into(),
            },
        }
    }

    const NOW: &str = "2026-11-26T04:00:00Z";

    fn pod(name: &str, hash: &str, age_seconds: i64, status: serde_json::Value) -> Pod {
        let created = NOW.parse::<Timestamp>().unwrap().as_second() - age_seconds;
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"pod-template-hash": hash},
                "creationTimestamp": Timestamp::from_second(created).unwrap().to_string(),
            },
            "status": status,
        }))
        .unwrap()
    }

    fn ready(restarts: i32) -> serde_json::Value {
        json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": true,
                "restartCount": restarts, "state": {"running": {}}}],
        })
    }

    fn assess_pods(pods: &[Pod]) -> Assessment {
        assess(
            pods,
            &target(),
            &PodHealthSpec::default(),
            NOW.parse().unwrap(),
        )
    }

    #[test]
    fn ready_canary_passes() {
        let result = assess_pods(&[
            pod("c1", "new", 30, ready(0)),
            pod("s1", "old", 3000, ready(2)),
        ]);
        assert_eq!(result.outcome, Outcome::Pass, "{}", result.reason);
        assert_eq!(
            result.measurements[2],
            Measurement::new("container restarts", Some(0.0), Some(2.0))
        );
    }

    #[test]
    fn crash_loop_fails_with_the_kubelet_message() {
        let crashing = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}}],
        });
        let result = assess_pods(&[
            pod("c1", "new", 20, crashing),
            pod("s1", "old", 3000, ready(0)),
        ]);
        assert_eq!(result.outcome, Outcome::Fail);
        assert!(
            result
                .reason
                .contains("c1: container web: CrashLoopBackOff (back-off 10s"),
            "{}",
            result.reason
        );
        assert!(
            result.reason.contains("stable: 1 of 1 Ready"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn oom_and_pull_failures_fail() {
        let oom = json!({
            "phase": "Running",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}],
        });
        let result = assess_pods(&[pod("c1", "new", 20, oom)]);
        assert_eq!(result.outcome, Outcome::Fail);
        assert!(result.reason.contains("OOMKilled"), "{}", result.reason);
        let pull = json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
        });
        let result = assess_pods(&[pod("c1", "new", 5, pull)]);
        assert_eq!(result.outcome, Outcome::Fail);
        assert!(
            result.reason.contains("ImagePullBackOff"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn restarts_beyond_the_stable_pods_fail() {
        let result = assess_pods(&[
            pod("c1", "new", 60, ready(3)),
            pod("s1", "old", 3000, ready(0)),
        ]);
        assert_eq!(result.outcome, Outcome::Fail);
        assert!(
            result.reason.contains("c1 restarted 3 times"),
            "{}",
            result.reason
        );
        // The same restarts as the stable pods are the environment, not the release.
        let result = assess_pods(&[
            pod("c1", "new", 60, ready(3)),
            pod("s1", "old", 3000, ready(5)),
        ]);
        assert_eq!(result.outcome, Outcome::Pass, "{}", result.reason);
    }

    #[test]
    fn unready_pods_wait_until_the_deadline_then_fail() {
        let starting =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]});
        let young = assess_pods(&[pod("c1", "new", 30, starting.clone())]);
        assert_eq!(young.outcome, Outcome::Inconclusive);
        assert!(
            young.reason.contains("ends in up to 1m30s"),
            "{}",
            young.reason
        );
        let old = assess_pods(&[pod("c1", "new", 121, starting)]);
        assert_eq!(old.outcome, Outcome::Fail);
        assert!(
            old.reason.contains("not Ready 2m after creation"),
            "{}",
            old.reason
        );
    }

    #[test]
    fn unschedulable_pods_report_the_scheduler_reason() {
        let pending = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]});
        let young = assess_pods(&[pod("c1", "new", 10, pending.clone())]);
        assert_eq!(young.outcome, Outcome::Inconclusive);
        assert!(
            young.reason.contains("Insufficient cpu"),
            "{}",
            young.reason
        );
        let old = assess_pods(&[pod("c1", "new", 600, pending)]);
        assert_eq!(old.outcome, Outcome::Fail);
        assert!(old.reason.contains("lacks capacity"), "{}", old.reason);
    }

    #[test]
    fn no_canary_pods_is_inconclusive() {
        let result = assess_pods(&[pod("s1", "old", 3000, ready(0))]);
        assert_eq!(result.outcome, Outcome::Inconclusive);
        assert!(
            result.reason.contains("no canary pods"),
            "{}",
            result.reason
        );
    }
}
