//! `start` checked and worked out, changing nothing: the permissions, the refusals, the
//! canary's size, the release's template, the record to write first and the updates.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use canary_core::machine::{Decision, Goal, SpecChange, decide, pause_when_held};
use canary_core::record::{
    CanaryRecord, Phase, RECORD_SCHEMA, StableRevision, changed_images, images_of,
};
use canary_core::release::{FieldChange, ReleaseInput, check_changes, summarize};
use canary_core::rollout_math::{CanaryMode, CanarySize, ResolvedCanary, resolve_canary};
use canary_core::text::share_text;
use canary_core::validate::{AutoscalerFacts, check_start};

use crate::error::{CanaryError, Result, is_status};
use crate::observe::{DeploymentView, revision_of, template_hash_of};
use crate::preflight;

use super::{Engine, now};

/// What `start` was asked for.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// The release: new images, a manifest, patches, environment variables.
    pub release: ReleaseInput,
    /// Wanted canary size.
    pub size: CanarySize,
    /// Surge or replace.
    pub mode: CanaryMode,
    /// Proceed although an HPA targets the Deployment.
    pub allow_autoscaler: bool,
}

/// What `start` will do or did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPlan {
    /// The resolved canary.
    pub canary: ResolvedCanary,
    /// The stable ReplicaSet.
    pub stable: StableRevision,
    /// The updates, in order.
    pub changes: Vec<SpecChange>,
    /// What the release changes in the pod template, field by field.
    pub template_changes: Vec<FieldChange>,
    /// The record that is written first.
    pub record: CanaryRecord,
    /// The HorizontalPodAutoscaler that scales the Deployment (`--allow-hpa`), if any.
    #[serde(skip)]
    pub autoscaler: Option<canary_core::validate::AutoscalerFacts>,
}

impl Engine {
    /// Checks everything `start` needs (the permissions to change things too, unless
    /// `dry_run`) and works out what it would do, changing nothing.
    pub async fn plan_start(
        &self,
        request: &StartRequest,
        dry_run: bool,
    ) -> Result<(StartPlan, DeploymentView)> {
        let permissions: &[&[preflight::Permission]] = if dry_run {
            &[preflight::READ]
        } else {
            &[preflight::READ, preflight::CHANGE, preflight::START]
        };
        preflight::require(
            &self.client,
            self.namespace(),
            "kubectl canary start",
            permissions,
        )
        .await?;
        if !dry_run {
            // One view for the whole start (its permissions checked above): the plan and
            // every step after it read the same watches.
            self.live().await?;
        }
        // A canary, a record of any kind, or a Deployment held without its record: refused
        // with what it is. A seal left by a finished canary is replaced by the first update.
        let (state, view) = self.canary_state().await?;
        if !matches!(state, crate::trust::CanaryState::None { .. }) {
            return Err(state.error(&self.name, &self.store.name()));
        }
        let autoscaler = self.autoscaler_of(&view).await?;
        // Images alone are checked as always (known containers, not the images running);
        // any other release by what it makes of the template, below.
        let no_images = std::collections::BTreeMap::new();
        check_start(
            &view.facts(),
            if request.release.images_only() {
                &request.release.images
            } else {
                &no_images
            },
            autoscaler.as_ref(),
            request.allow_autoscaler,
        )
        .map_err(|refusal| CanaryError::Refused(refusal.to_string()))?;
        let canary = resolve_canary(request.size, view.replicas(), request.mode)
            .map_err(|e| CanaryError::Refused(e.to_string()))?;
        let template = view.template();
        let target =
            crate::release::target_template(&self.apis, &view.deployment, &request.release).await?;
        let template_changes = check_changes(
            &format!("deploy/{}", self.name),
            &template,
            &target,
            &request.release.describe(),
        )?;
        let stable_rs = view.replica_set_with_template(&template).ok_or_else(|| {
            CanaryError::Refused(format!(
                "deploy/{} has no ReplicaSet for its current template yet; wait for the controller and retry",
                self.name
            ))
        })?;
        let stable = StableRevision {
            replica_set: stable_rs.name_any(),
            uid: stable_rs.uid().unwrap_or_default(),
            revision: revision_of(stable_rs).to_string(),
            pod_template_hash: template_hash_of(stable_rs),
        };
        let owner = preflight::owner(&self.client).await;
        let now = now();
        let mut record = CanaryRecord {
            schema: RECORD_SCHEMA,
            deployment: self.name.clone(),
            deployment_uid: view.uid(),
            replicas: view.replicas(),
            original_images: images_of(&template),
            target_images: changed_images(&template, &target),
            original_template: template,
            target_template: Some(target),
            original_settings: crate::observe::settings_of(&view.deployment),
            stable: stable.clone(),
            mode: request.mode,
            phase: Phase::Starting { pods: canary.pods },
            started_by: owner,
            started_at: now.clone(),
            history: vec![],
            admitted_target_template: None,
            requested_size: Some(request.size),
            brake_while_held: false,
            traffic: None,
            gate: None,
        };
        record.note(
            &now,
            format!(
                "start: canary of {} pod(s) ({} of traffic) in {} mode, stable {}",
                canary.pods,
                share_text(canary.traffic_share()),
                canary.mode,
                stable.replica_set
            ),
        );
        record.note(
            &now,
            format!(
                "release ({}): {}",
                request.release.describe(),
                summarize(&template_changes)
            ),
        );
        let goal = Goal::Hold { pods: canary.pods };
        let mut changes = Vec::new();
        if let Decision::Apply(first) = decide(&record, goal, &view.observation(&record)) {
            changes.push(first);
            // Then, once the controller has scaled the canary, the pause.
            changes.push(pause_when_held(&record, canary.pods));
        }
        Ok((
            StartPlan {
                canary,
                stable,
                changes,
                template_changes,
                record,
                autoscaler,
            },
            view,
        ))
    }

    async fn autoscaler_of(&self, view: &DeploymentView) -> Result<Option<AutoscalerFacts>> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), self.namespace());
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            // A cluster without the autoscaling API has no HPA. A 403 is not skipped: an
            // HPA we cannot see would fight the canary over spec.replicas (the error names
            // the verb; preflight asks for it before any change).
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(CanaryError::api("listing HorizontalPodAutoscalers", e)),
        };
        Ok(list.items.into_iter().find_map(|hpa| {
            let spec = hpa.spec;
            let target = spec.scale_target_ref;
            (target.kind == "Deployment" && target.name == view.name()).then(|| AutoscalerFacts {
                name: hpa.metadata.name.unwrap_or_default(),
                min_replicas: spec.min_replicas.unwrap_or(1),
                max_replicas: spec.max_replicas,
            })
        }))
    }
}
