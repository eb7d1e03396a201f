//! The evidence `canary_core::problems` judges, read off a view: its pods and ReplicaSets
//! as plain data, and what a status keeps to judge them again ([`Judging`]). A leaf of
//! `status.rs` and `problems.rs` (which adds the reads that have no watch).

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use canary_core::problems::{
    ContainerEvidence, PodEvidence, ReplicaSetEvidence, Side, Situation, Termination,
};
use canary_core::record::Phase;

use crate::observe::{DeploymentView, pod_is_ready, template_hash_of};

/// What a status's problems and next steps are judged from, kept with the status so that
/// reads made after it was built (Events, the verdict, the clock) can be added.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judging {
    /// The evidence.
    pub situation: Situation,
    /// What the next steps depend on, when the report's next steps come from the record
    /// (not after a foreign change, not for a record that cannot be trusted).
    pub next: Option<NextBasis>,
    /// When the canary started (RFC 3339): verdicts before it are not about this canary.
    pub started_at: Option<String>,
}

/// The state the next steps depend on, besides the problems.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextBasis {
    /// The recorded phase.
    pub phase: Phase,
    /// Something is pending.
    pub pending: bool,
    /// The Deployment still has its original template.
    pub nothing_changed_yet: bool,
    /// The step an approval gate holds back, if one is awaited.
    pub gate: Option<canary_core::gate::GatedStep>,
}

/// A pod as evidence.
pub fn pod_evidence(pod: &Pod, side: Side) -> PodEvidence {
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let ready = pod_is_ready(pod);
    let not_ready_since = (!ready).then(|| {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "True")
            .and_then(|c| c.last_transition_time.as_ref())
            .or(pod.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
    });
    let unschedulable = conditions
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default());
    let termination = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| Termination {
        exit_code: t.exit_code,
        reason: t.reason.clone(),
        finished_at: t.finished_at.as_ref().map(|at| at.0.as_second()),
    };
    let containers = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            ContainerEvidence {
                name: c.name.clone(),
                restarts: c.restart_count,
                waiting_reason: waiting.and_then(|w| w.reason.clone()),
                waiting_message: waiting.and_then(|w| w.message.clone()),
                terminated: c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination),
                last_termination: c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination),
            }
        })
        .collect();
    PodEvidence {
        name: pod.name_any(),
        side,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        ready,
        not_ready_since: not_ready_since.flatten(),
        unschedulable,
        containers,
        event: None,
    }
}

/// A ReplicaSet (and its pods) as evidence.
pub fn replica_set_evidence(
    view: &DeploymentView,
    rs: &ReplicaSet,
    side: Side,
) -> ReplicaSetEvidence {
    let failure = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        });
    ReplicaSetEvidence {
        name: rs.name_any(),
        side,
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        pods: view.pods_with_hash(&template_hash_of(rs)).len() as i32,
        failure,
        failed_create: None,
    }
}

/// The pods and ReplicaSets of both sides as evidence.
pub fn situation(
    view: &DeploymentView,
    stable: Option<&ReplicaSet>,
    canary: Option<&ReplicaSet>,
) -> Situation {
    let mut situation = Situation {
        ready_deadline_secs: view
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .map_or(600, i64::from),
        ..Default::default()
    };
    for (rs, side) in [(canary, Side::Canary), (stable, Side::Stable)] {
        let Some(rs) = rs else { continue };
        situation
            .replica_sets
            .push(replica_set_evidence(view, rs, side));
        situation.pods.extend(
            view.pods_with_hash(&template_hash_of(rs))
                .into_iter()
                .map(|p| pod_evidence(p, side)),
        );
    }
    situation
}
