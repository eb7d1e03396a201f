//! A change the admission policy braked and nothing recorded yet: record the canary (the
//! lock), or release the change when it cannot be a canary.

use std::time::Duration;

use canary_core::notify::Moment;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use canary_core::gitops::brake::images_signature;
use canary_core::gitops::situation::{NewCanary, begin_record, stable_of_braked_change};
use canary_core::record::StableRevision;
use canary_kube::error::CanaryError;
use canary_kube::gitops::writes::Written;
use canary_kube::observe::{revision_of, template_hash_of, template_json};

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
    // The stable images and no other ReplicaSet with pods: the template is the stable one,
    // the annotations are left over (nothing to make a canary of). With another
    // ReplicaSet's pods beside it, a change of something else than images was braked.
    let current_rs = release
        .view
        .replica_set_with_template(&template)
        .map(|rs| rs.uid());
    let others_with_pods = release
        .view
        .replica_sets
        .iter()
        .filter(|rs| Some(rs.uid()) != current_rs)
        .any(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0);
    if images_signature(&template) == brake.stable_images && !others_with_pods {
        return release_unbraked(
            release,
            "CanaryBrakeLeftOver",
            format!("deploy/{name} runs its stable images but still had the brake's annotations: released"),
        )
        .await;
    }
    // Any change of the pod template is a canary: the stable side is the ReplicaSet the
    // braked write left behind, checked against the images the policy annotated.
    let templates: Vec<(i64, serde_json::Value)> = release
        .view
        .replica_sets
        .iter()
        .map(|rs| {
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .map(template_json)
                .unwrap_or_default();
            (revision_of(rs), template)
        })
        .collect();
    let candidates: Vec<(i64, &serde_json::Value)> =
        templates.iter().map(|(r, t)| (*r, t)).collect();
    let Some((index, stable_template)) =
        stable_of_braked_change(&candidates, &template, &brake.stable_images)
    else {
        return release_unbraked(
            release,
            "CanaryNotPossible",
            format!(
                "the stable ReplicaSet of deploy/{name} (the one the change replaced, with images {}) \
                 is gone, so there is no stable side to compare a canary with: the change rolls out \
                 with the Deployment's own strategy",
                brake.stable_images
            ),
        )
        .await;
    };
    let stable_rs = &release.view.replica_sets[index];
    let record = begin_record(NewCanary {
        deployment: (&name, &release.view.uid()),
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
                .normal_moment(
                    "CanaryStarted",
                    format!(
                        "kubectl-canary-controller: {} braked at {} canary pod(s) beside {}; analysis every {}s",
                        record.change_summary(),
                        policy.first_pods,
                        record.stable.replica_set,
                        policy.interval.as_secs()
                    ),
                    Moment::Started,
                    &stored.record,
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
    match release.release_brake("release the brake").await? {
        Written::Stored(_) => {
            release.warn_once(reason, note).await;
            Ok(Action::requeue(SOON))
        }
        Written::Conflict => Ok(Action::requeue(SOON)),
    }
}
