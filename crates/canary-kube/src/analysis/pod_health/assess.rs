//! Judging the pods as they are at one moment: a failing canary pod fails at once, a canary
//! not Ready `readyDeadline` after its creation fails, a younger one is inconclusive.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use canary_core::analysis_spec::PodHealthSpec;
use canary_core::duration::format_duration;
use canary_core::verdict::{Measurement, Outcome};

use super::super::AnalysisTarget;
use super::state::{PodState, pod_state};

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
        if target.canary.has(pod) {
            canary.push(pod_state(pod, now));
        } else if target.stable.has(pod) {
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
            format!("no canary pods ({}) exist yet", target.canary.selector()),
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
    use super::super::super::PodGroup;
    use super::*;
    use serde_json::json;

    fn target() -> AnalysisTarget {
        AnalysisTarget {
            namespace: "ns".into(),
            workload: canary_core::target::WorkloadRef::deployment("web"),
            canary: PodGroup::replica_set("web-new", "new"),
            stable: PodGroup::replica_set("web-old", "old"),
            canary_template: None,
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
