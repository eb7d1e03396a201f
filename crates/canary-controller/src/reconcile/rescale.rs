//! `spec.replicas` changed during a held step (a Git commit, an HPA, `kubectl scale`): the
//! canary follows it as the CLI's engine does ([`canary_core::foreign::follow_size`]): a
//! share stays a share, a count stays the count. The size asked for comes from the
//! Deployment's policy annotations (which step is held), not from the record.

use std::time::Duration;

use canary_core::notify::Moment;
use kube::runtime::controller::Action;

use canary_core::foreign::{follow_size, followed};
use canary_core::record::{CanaryRecord, Phase};
use canary_core::rollout_math::CanarySize;

use super::{Outcome, Reconciling, SOON, now};

/// The pods of the step a phase holds or moves to; `None` for phases that hold no size.
fn held_pods(phase: Phase) -> Option<i32> {
    match phase {
        Phase::Starting { pods } | Phase::Holding { pods } | Phase::Promoting { to: pods, .. } => {
            Some(pods)
        }
        Phase::PromotingFull | Phase::Aborting => None,
    }
}

/// Follows a change of `spec.replicas`: the record takes the new count and the size that
/// keeps what was asked (the machine then resizes the sides). `None`: nothing to follow.
pub(super) async fn follow_replicas(
    release: &Reconciling<'_>,
    record: &CanaryRecord,
) -> Option<Outcome> {
    let replicas = release.view.replicas();
    let pods = held_pods(record.phase)?;
    if replicas == record.replicas {
        return None;
    }
    let asked = release
        .policy
        .as_ref()
        .ok()
        .and_then(|policy| policy.size_asked_at(record.replicas, pods))
        .unwrap_or(CanarySize::Pods(pods));
    let asking = CanaryRecord {
        requested_size: Some(asked),
        ..record.clone()
    };
    let Some(follow) = follow_size(&asking, replicas) else {
        release
            .warn_once_moment(
                "CanaryStuck",
                format!(
                    "spec.replicas of deploy/{} changed from {} to {replicas} during the canary, and the canary \
                     size asked for ({asked}) cannot be kept at {replicas} replicas: the canary stays as it is; \
                     change the replicas back, or revert the commit in Git",
                    release.name(),
                    record.replicas
                ),
                Moment::Stuck,
                record,
            )
            .await;
        return Some(Ok(Action::requeue(Duration::from_secs(30))));
    };
    let next = followed(&asking, replicas, follow, &now());
    Some(
        async {
            release.save(next.clone()).await?;
            release
                .normal_moment(
                    "CanaryFollowedReplicas",
                    format!(
                        "kubectl-canary-controller: spec.replicas changed from {} to {replicas}; the canary \
                         ({asked}) follows at {follow} pod(s)",
                        record.replicas
                    ),
                    Moment::ForeignChange,
                    &next,
                )
                .await;
            Ok(Action::requeue(SOON))
        }
        .await,
    )
}
