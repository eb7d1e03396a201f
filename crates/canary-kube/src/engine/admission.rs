//! Writes that admission may change: a mutating admission policy or webhook can rewrite the
//! template or the settings the engine sends. The canary's template is what the API server
//! stored; a setting that does not stick is retried once, then reported.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use canary_core::gitops::situation::is_controller_record;
use canary_core::machine::{Goal, SpecChange};
use canary_core::seal::Seal;

use super::{Engine, Progress};
use crate::error::{CanaryError, Result};
use crate::observe::{DeploymentView, settings_of, template_json};
use crate::store::StoredRecord;

impl Engine {
    /// [`Engine::apply`], then a look at what the API server stored: a canary template
    /// changed by admission becomes the recorded canary template; settings changed by
    /// admission are sent once more, and if they do not stick again the run stops with an
    /// error naming the fields. Returns the stored resourceVersion (`None`: a conflict).
    pub(super) async fn apply_checked(
        &self,
        view: &DeploymentView,
        change: &SpecChange,
        stored: &mut StoredRecord,
        goal: Goal,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Option<String>> {
        let seal = Seal::for_record(&stored.record, goal);
        let Some(mut updated) = self.apply(view, change, &seal, progress).await? else {
            return Ok(None);
        };
        if !settings_of(&updated).equivalent(&change.settings)
            && is_controller_record(&stored.record)
        {
            // A canary of the GitOps controller: its admission policy keeps the brake's
            // settings for every writer but the controller, which carries out what the
            // record (written first) says. Not a rewrite to report: wait for the controller.
            tracing::info!(
                "the GitOps policy keeps the brake's settings for its controller to change; waiting for it"
            );
            return Ok(None);
        }
        if !settings_of(&updated).equivalent(&change.settings) {
            tracing::info!(
                "the API server stored other rollout settings than sent; sending them once more"
            );
            let again = DeploymentView {
                deployment: updated.clone(),
                ..view.clone()
            };
            match self.apply(&again, change, &seal, progress).await? {
                None => return Ok(None),
                Some(retried) if settings_of(&retried).equivalent(&change.settings) => {
                    updated = retried;
                }
                Some(retried) => {
                    return Err(CanaryError::WriteDidNotStick {
                        deployment: self.name.clone(),
                        detail: format!(
                            "sent {}, stored {}",
                            serde_json::to_string(&change.settings).unwrap_or_default(),
                            serde_json::to_string(&settings_of(&retried)).unwrap_or_default()
                        ),
                    });
                }
            }
        }
        self.record_admitted_template(change, &updated, stored)
            .await?;
        Ok(updated.resource_version())
    }

    /// When the canary template was sent and the API server stored another one, records
    /// the stored one as the canary's template (so the next decision does not take the
    /// tool's own write for someone else's).
    async fn record_admitted_template(
        &self,
        change: &SpecChange,
        updated: &Deployment,
        stored: &mut StoredRecord,
    ) -> Result<()> {
        let Some(sent) = &change.template else {
            return Ok(());
        };
        if *sent != stored.record.sent_target_template() {
            return Ok(());
        }
        let admitted = updated
            .spec
            .as_ref()
            .map(|s| template_json(&s.template))
            .unwrap_or_default();
        if admitted == *sent || Some(&admitted) == stored.record.admitted_target_template.as_ref() {
            return Ok(());
        }
        let mut record = stored.record.clone();
        record.admitted_target_template = Some(admitted);
        record.note(
            &super::now(),
            "admission changed the canary's pod template; the stored one is the canary's",
        );
        *stored = self.store.update(stored, &record).await?;
        super::mutation_point("record: admitted canary template");
        Ok(())
    }

    /// The error for an update loop that reached its deadline before an update.
    pub(super) fn update_timed_out(
        &self,
        goal: Goal,
        timeout: Duration,
        change: &SpecChange,
    ) -> CanaryError {
        CanaryError::TimedOut {
            what: format!("deploy/{} to reach {goal:?}", self.name),
            seconds: timeout.as_secs(),
            last: format!("an update still to make: {}", change.summary),
        }
    }
}
