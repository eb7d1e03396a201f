//! A change the admission policy braked and nothing recorded yet: record the canary (the
//! lock), or release the change when it cannot be a canary.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use canary_core::gitops::brake::images_signature;
use canary_core::gitops::situation::{
    NewCanary, begin_record, parse_images_signature, stable_template_of,
};
use canary_core::machine::SpecChange;
use canary_core::record::StableRevision;
use canary_kube::error::CanaryError;
use canary_kube::gitops::writes::{Written, update_deployment};
use canary_kube::observe::{revision_of, template_hash_of};

use super::{Outcome, Reconciling, SOON, now};

/// Records a new canary.
pub(super) async fn begin(release: &Reconciling<'_>) -> Outcome {
    let brake = release
        .brake
        .as_ref()
        .expect("begin is only chosen with the brake on");
    let name = release.name();
    let policy = match &release.policy {
        Ok(policy) => policy,
        Err(error) => {
            // Held braked at the policy's size: safe, and fixing the annotation continues it.
            release
                .warn_once(
                    "InvalidCanaryPolicy",
                    format!(
                        "{error}; the change stays braked at its first canary size until the annotation is \
                         fixed (or reverted in Git)"
                    ),
                )
                .await;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let template = release.view.template();
    if images_signature(&template) == brake.stable_images {
        // The template is the stable one: annotations left over (nothing to make a canary of).
        return release_unbraked(
            release,
            "CanaryBrakeLeftOver",
            format!("deploy/{name} runs its stable images but still had the brake's annotations: released"),
        )
        .await;
    }
    let stable_template = parse_images_signature(&brake.stable_images)
        .and_then(|images| stable_template_of(&template, &images));
    let stable_rs = stable_template
        .as_ref()
        .and_then(|stable| release.view.replica_set_with_template(stable));
    let (Some(stable_template), Some(stable_rs)) = (stable_template, stable_rs) else {
        return release_unbraked(
            release,
            "CanaryNotPossible",
            format!(
                "the change to deploy/{name} is more than new container images (or its stable ReplicaSet \
                 with images {} is gone): canaries are made of image changes, so it rolls out with the \
                 Deployment's own strategy",
                brake.stable_images
            ),
        )
        .await;
    };
    let record = begin_record(NewCanary {
        deployment: (&name, &release.deployment().uid().unwrap_or_default()),
        replicas: release.view.replicas(),
        stable_template,
        stable: StableRevision {
            replica_set: stable_rs.name_any(),
            uid: stable_rs.uid().unwrap_or_default(),
            revision: revision_of(stable_rs).to_string(),
            pod_template_hash: template_hash_of(stable_rs),
        },
        canary_template: &template,
        original_settings: brake.original.clone(),
        mode: policy.mode,
        pods: policy.first_pods,
        owner: release.ctx.owner.clone(),
        now: &now(),
    });
    match release.store.create(&record, release.deployment()).await {
        Ok(stored) => {
            release.phase_metric(Some(stored.record.phase));
            release
                .normal(
                    "CanaryStarted",
                    format!(
                        "kubectl-canary-controller: {} braked at {} canary pod(s) beside {}; analysis every {}s",
                        canary_core::text::images_text(&record.target_images),
                        policy.first_pods,
                        record.stable.replica_set,
                        policy.interval.as_secs()
                    ),
                )
                .await;
            Ok(Action::requeue(SOON))
        }
        // Someone recorded first (another replica during a hand-over, or the CLI): decide again.
        Err(CanaryError::Locked { .. }) => Ok(Action::requeue(SOON)),
        Err(error) => Err(error.into()),
    }
}

/// Puts the Deployment's own settings back and removes the brake's annotations in one
/// write: the change rolls out as if kubectl-canary were not there.
pub(super) async fn release_unbraked(
    release: &Reconciling<'_>,
    reason: &str,
    note: String,
) -> Outcome {
    let brake = release
        .brake
        .as_ref()
        .expect("only released with the brake on");
    let change = SpecChange {
        template: None,
        settings: brake.original.clone(),
        summary: "release the brake".into(),
    };
    match update_deployment(
        &release.apis.deployments,
        release.deployment(),
        &change,
        true,
    )
    .await?
    {
        Written::Stored(_) => {
            release.warn_once(reason, note).await;
            Ok(Action::requeue(SOON))
        }
        Written::Conflict => Ok(Action::requeue(SOON)),
    }
}
