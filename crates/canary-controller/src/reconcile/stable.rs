//! A failed canary under GitOps: Git's template stays (reverting it would fight Git, which
//! would apply it again and start the canary over, in a loop); the Deployment is paused with
//! the brake on and its canary ReplicaSet is scaled to 0, so only the stable pods serve.
//! This is a resting state: a paused Deployment creates no ReplicaSet and does not scale a
//! ReplicaSet at 0 back up; the admission policy keeps `paused` and the brake through every
//! re-apply. The next commit (a fix, or a revert) ends it.

use std::time::Duration;

use canary_core::notify::Moment;
use kube::runtime::controller::Action;

use canary_core::gitops::situation::{HoldOnStable, hold_on_stable as next_step};
use canary_core::machine::SpecChange;
use canary_core::record::CanaryRecord;
use canary_kube::gitops::writes::{Written, scale_replica_set_to_zero};
use canary_kube::observe::settings_of;

use super::{Outcome, Reconciling, SOON, now};

/// How the controller's failure note begins (the CLI's abort writes another).
pub(super) const FAILED_NOTE: &str = "analysis failed";

/// How the note of a gate whose approval did not come in time begins (its policy: abort).
pub(super) const APPROVAL_TIMED_OUT_NOTE: &str = "approval timed out";

/// The history line that marks the resting state, written once.
const RESTING_NOTE: &str = "release failed: resting on the stable pods until the next commit";

/// Whether the abort is the controller's own (a failed analysis or an approval that did not
/// come in time, possibly already resting).
pub(super) fn aborted_here(record: &CanaryRecord) -> bool {
    record.history.last().is_some_and(|entry| {
        entry.event.starts_with(FAILED_NOTE)
            || entry.event.starts_with(APPROVAL_TIMED_OUT_NOTE)
            || entry.event == RESTING_NOTE
    })
}

/// One step towards resting on the stable pods.
pub(super) async fn hold_on_stable(release: &Reconciling<'_>, record: &CanaryRecord) -> Outcome {
    let settings = settings_of(release.deployment());
    let canary_rs = release
        .view
        .replica_set_with_template(&record.target_template());
    let observation = release.view.observation(record);
    let (desired, pods) = observation
        .canary
        .as_ref()
        .map_or((0, 0), |rs| (rs.desired, rs.pods));
    match next_step(&settings, desired, pods) {
        HoldOnStable::Pause => {
            let change = SpecChange {
                template: None,
                settings: settings.with_paused(true),
                summary: "pause with the brake on".into(),
            };
            release.update_deployment(&change, false).await?;
            Ok(Action::requeue(SOON))
        }
        HoldOnStable::ScaleCanaryToZero => {
            if let Some(canary_rs) = canary_rs
                && let Written::Stored(_) =
                    scale_replica_set_to_zero(&release.apis.replica_sets, canary_rs).await?
            {
                tracing::info!(deployment = %release.key, "canary ReplicaSet scaled to 0");
            }
            Ok(Action::requeue(SOON))
        }
        HoldOnStable::CanaryPodsTerminating(_) => Ok(Action::requeue(SOON)),
        HoldOnStable::Resting => {
            if record.history.last().map(|h| h.event.as_str()) != Some(RESTING_NOTE) {
                let mut next = record.clone();
                next.note(&now(), RESTING_NOTE);
                release.save(next).await?;
                release.finished_metric("failed");
                release.phase_metric(Some(record.phase));
                release
                    .normal_moment(
                        "CanaryRolledBack",
                        format!(
                            "kubectl-canary-controller: only stable pods serve ({}); the Deployment stays paused on \
                             Git's template {} until the next commit",
                            record.stable.replica_set,
                            record.change_summary()
                        ),
                        Moment::RolledBack,
                        record,
                    )
                    .await;
            }
            Ok(Action::requeue(Duration::from_secs(300)))
        }
    }
}
