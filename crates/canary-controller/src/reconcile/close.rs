//! The canary ends because Git moved: a revert commit, a new commit, or a change the
//! policy no longer brakes.

use canary_core::notify::Moment;
use kube::runtime::controller::Action;

use canary_core::gitops::situation::{parse_images_signature, supersede};
use canary_core::record::images_of;

use super::begin::release_unbraked;
use super::{Outcome, Reconciling, SOON, now};

/// The template is the stable one again. The policy normally put the Deployment's own
/// settings back in the same write (an image revert); otherwise (a CLI abort that kept
/// other fields, a revert the policy could not recognise) the controller does at once, so
/// the brake never stays on the stable ReplicaSet. Then the record is closed.
pub(super) async fn reverted(release: &Reconciling<'_>) -> Outcome {
    let stored = release.stored.as_ref().expect("a record");
    let mut record = stored.record.clone();
    if let Some(brake) = &release.brake {
        record.original_settings = brake.original.clone();
        // Always one write while the annotations are there: with them the policy would keep
        // these settings for every later writer, and brake no later commit.
        release
            .release_brake("the stable template is back: release the brake")
            .await?;
        return Ok(Action::requeue(SOON));
    }
    let observation = release.view.observation(&record);
    let canary_left = observation.canary.as_ref().map_or(0, |rs| rs.pods);
    if observation.settings.is_braked() {
        // Without the brake's annotations the settings cannot be put back from a trusted source.
        release
            .warn_once(
                "CanaryBrakeAnnotationsMissing",
                "the stable template is back but the brake is still on and its annotations are gone: set \
                 minReadySeconds, progressDeadlineSeconds and the strategy of the Deployment by hand"
                    .into(),
            )
            .await;
        return Ok(Action::requeue(SOON));
    }
    if !(observation.rollout_complete() && canary_left == 0) {
        return Ok(Action::requeue(SOON));
    }
    release.store.delete(stored).await?;
    release.finished_metric("reverted");
    release
        .normal_moment(
            "CanaryReverted",
            format!(
                "kubectl-canary-controller: the stable version {} is back on every pod (a revert); the canary ({}) is closed",
                canary_core::text::images_text(&record.original_images),
                record.change_summary()
            ),
            Moment::ForeignChange,
            &record,
        )
        .await;
    Ok(Action::await_change())
}

/// Another braked template while a canary is recorded: a new commit replaces the canary,
/// with the same stable side, from the first step.
pub(super) async fn superseded(release: &Reconciling<'_>) -> Outcome {
    let stored = release.stored.as_ref().expect("a record");
    let record = &stored.record;
    let template = release.view.template();
    let brake = release.brake.as_ref().expect("superseded needs the brake");
    let stable_images_agree =
        parse_images_signature(&brake.stable_images).as_ref() == Some(&record.original_images);
    if !stable_images_agree {
        // The policy braked this change as a new release: the recorded one had already
        // released the brake (its promotion to 100% was under way). Close the old record;
        // the next reconcile begins the new canary from the brake's annotations.
        release.store.delete(stored).await?;
        release.finished_metric("superseded");
        release
            .normal_moment(
                "CanaryReplaced",
                format!(
                    "kubectl-canary-controller: a new commit ({}) arrived while {} was being promoted; \
                     its canary begins now",
                    canary_core::text::images_text(&images_of(&template)),
                    record.change_summary()
                ),
                Moment::ForeignChange,
                record,
            )
            .await;
        return Ok(Action::requeue(SOON));
    }
    let refusal = match &release.policy {
        Err(error) => Some((
            "InvalidCanaryPolicy",
            format!("{error}; the new commit rolls out without a canary"),
        )),
        Ok(_) => None,
    };
    if let Some((reason, note)) = refusal {
        let outcome = release_unbraked(release, reason, note).await?;
        release.store.delete(stored).await?;
        release.finished_metric("superseded");
        return Ok(outcome);
    }
    let policy = release.policy.as_ref().expect("checked above");
    let next = supersede(record, &template, policy.first_pods, &now());
    release.save(next.clone()).await?;
    release
        .normal_moment(
            "CanaryReplaced",
            format!(
                "kubectl-canary-controller: a new commit ({}) replaced the canary of {}; starting again at {} pod(s)",
                next.change_summary(),
                record.change_summary(),
                policy.first_pods
            ),
            Moment::ForeignChange,
            &next,
        )
        .await;
    Ok(Action::requeue(SOON))
}

/// The template changed without the brake (the opt-in label or the policy annotations were
/// removed): the record no longer describes the Deployment; it is closed, nothing else.
pub(super) async fn abandoned(release: &Reconciling<'_>) -> Outcome {
    let stored = release.stored.as_ref().expect("a record");
    release.store.delete(stored).await?;
    release.finished_metric("abandoned");
    release
        .warn_once_moment(
            "CanaryAbandoned",
            "the pod template changed without the brake (opt-in label or policy annotations removed?); \
             the canary record is closed and the Deployment left as it is"
                .into(),
            Moment::ForeignChange,
            &stored.record,
        )
        .await;
    Ok(Action::await_change())
}
