//! The one writer of workloads (Deployments, StatefulSets, DaemonSets), ReplicaSets and the
//! pods a canary deletes, for the CLI's engine and the GitOps controller alike.
//!
//! Every write is guarded by the resourceVersion of the object as it was read, so it lands
//! only on that object, unchanged since (a recreated namesake has another UID and another
//! resourceVersion). What the API server answers is read once, here:
//! - 409 (someone wrote first) and, for a resize, 404 (the ReplicaSet is gone) are not
//!   errors: [`Written::Conflict`], the caller reads again and decides again;
//! - 422 (the update is invalid, or admission refused it) is a refusal naming the object;
//! - anything else is an API error saying what was being written.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use canary_core::machine::SpecChange;

use crate::error::{CanaryError, Result, is_status};

/// The field manager of the GitOps controller's writes.
pub const CONTROLLER_FIELD_MANAGER: &str = "kubectl-canary-controller";

/// What became of a guarded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written<T = String> {
    /// Stored; for a Deployment, as the API server stored it (admission may have changed
    /// it), for the controller's writes its resourceVersion.
    Stored(T),
    /// Someone wrote first (or the object is gone); decide again on the newer object.
    Conflict,
}

/// How a ReplicaSet's `spec.replicas` is written: each writer has the verb its RBAC grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeVia {
    /// An update of the whole ReplicaSet as read (the CLI's Role: `replicasets` update).
    Update,
    /// A merge patch of the scale subresource carrying the resourceVersion as read (the
    /// controller's ClusterRole: `replicasets/scale` patch, nothing broader).
    ScaleSubresource,
}

/// Who writes: the field manager named on each write, and how ReplicaSets are resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    /// The field manager, or the client's default.
    pub field_manager: Option<&'static str>,
    /// How a ReplicaSet is resized.
    pub resize: ResizeVia,
}

/// The CLI's writes (`kubectl canary ...`).
pub const CLI: Writer = Writer {
    field_manager: None,
    resize: ResizeVia::Update,
};

/// The GitOps controller's writes.
pub const CONTROLLER: Writer = Writer {
    field_manager: Some(CONTROLLER_FIELD_MANAGER),
    resize: ResizeVia::ScaleSubresource,
};

impl Writer {
    /// Replaces the Deployment with `updated` (read, then changed: it carries the
    /// resourceVersion it was read with). Returns the Deployment as stored.
    pub async fn replace_deployment(
        &self,
        api: &Api<Deployment>,
        updated: &Deployment,
    ) -> Result<Written<Deployment>> {
        self.replace_workload(api, updated, "deploy").await
    }

    /// Replaces a workload (a Deployment, StatefulSet or DaemonSet) with `updated` (read,
    /// then changed: it carries the resourceVersion it was read with). Returns it as stored.
    /// `short`: the kind as kubectl abbreviates it, for messages.
    pub async fn replace_workload<K>(
        &self,
        api: &Api<K>,
        updated: &K,
        short: &str,
    ) -> Result<Written<K>>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = updated.name_any();
        let params = PostParams {
            field_manager: self.field_manager.map(str::to_string),
            ..Default::default()
        };
        match api.replace(&name, &params, updated).await {
            Ok(stored) => Ok(Written::Stored(stored)),
            Err(e) if is_status(&e, 409) => {
                tracing::debug!("conflict updating {short}/{name}; reading again");
                Ok(Written::Conflict)
            }
            Err(e) if is_status(&e, 422) => Err(CanaryError::Refused(format!(
                "the API server refused the update of {short}/{name}: {e}"
            ))),
            // Gone under the guarded update: deleted (perhaps created again) by someone else.
            Err(e) if is_status(&e, 404) => Err(CanaryError::WorkloadGone {
                workload: format!("{short}/{name}"),
            }),
            Err(e) => Err(CanaryError::api(format!("updating {short}/{name}"), e)),
        }
    }

    /// Deletes `pod` (as read) if it is still that pod, unchanged since it was read (UID and
    /// resourceVersion preconditions): a pod its controller has replaced meanwhile is left
    /// alone ([`Written::Conflict`], decide again). Its PersistentVolumeClaims are never
    /// touched: a StatefulSet's pod comes back bound to the same claims.
    pub async fn delete_pod(&self, api: &Api<Pod>, pod: &Pod) -> Result<Written<()>> {
        let name = pod.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: pod.resource_version(),
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(Written::Stored(())),
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(Written::Conflict),
            Err(e) => Err(CanaryError::api(format!("deleting pod/{name}"), e)),
        }
    }

    /// Sets `replica_set`'s (as read) `spec.replicas` to `replicas`, if it is unchanged
    /// since it was read (a recreated namesake, or one someone scaled meanwhile, is left
    /// alone: [`Written::Conflict`], decide again).
    pub async fn resize_replica_set(
        &self,
        api: &Api<ReplicaSet>,
        replica_set: &ReplicaSet,
        replicas: i32,
    ) -> Result<Written<()>> {
        let name = replica_set.name_any();
        let written = match self.resize {
            ResizeVia::Update => {
                let mut resized = replica_set.clone();
                resized.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
                let params = PostParams {
                    field_manager: self.field_manager.map(str::to_string),
                    ..Default::default()
                };
                api.replace(&name, &params, &resized).await.map(drop)
            }
            ResizeVia::ScaleSubresource => {
                // The scale subresource has no UID precondition; the resourceVersion of the
                // ReplicaSet as read makes the write apply only to that object, unchanged.
                let patch = json!({
                    "metadata": {"resourceVersion": replica_set.resource_version()},
                    "spec": {"replicas": replicas},
                });
                let params = PatchParams {
                    field_manager: self.field_manager.map(str::to_string),
                    ..Default::default()
                };
                api.patch_scale(&name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        match written {
            Ok(()) => Ok(Written::Stored(())),
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(Written::Conflict),
            Err(e) => Err(CanaryError::api(
                format!("scaling replicaset/{name} to {replicas}"),
                e,
            )),
        }
    }
}

impl Writer {
    /// Sets the approval annotation ([`canary_core::gate::APPROVE_ANNOTATION`]) of
    /// `deployment` (as read) to `token`, guarded like every update (so it needs no verb
    /// beyond the writer's `update`); [`Written::Conflict`]: read again and retry.
    pub async fn approve(
        &self,
        api: &Api<Deployment>,
        deployment: &Deployment,
        token: &str,
    ) -> Result<Written<()>> {
        let mut approved = deployment.clone();
        approved.annotations_mut().insert(
            canary_core::gate::APPROVE_ANNOTATION.to_owned(),
            token.to_owned(),
        );
        Ok(match self.replace_deployment(api, &approved).await? {
            Written::Stored(_) => Written::Stored(()),
            Written::Conflict => Written::Conflict,
        })
    }
}

/// The Deployment (as read) with a [`SpecChange`] written into it: the template when the
/// change carries one, and the rollout settings.
pub fn changed(deployment: &Deployment, change: &SpecChange) -> Result<Deployment> {
    let mut updated = deployment.clone();
    apply_change(&mut updated, change)?;
    Ok(updated)
}

/// Writes a [`SpecChange`] into a Deployment object.
pub fn apply_change(deployment: &mut Deployment, change: &SpecChange) -> Result<()> {
    let spec = deployment.spec.get_or_insert_with(Default::default);
    if let Some(template) = &change.template {
        spec.template =
            serde_json::from_value::<PodTemplateSpec>(template.clone()).map_err(|e| {
                CanaryError::Refused(format!("the recorded pod template is unusable: {e}"))
            })?;
    }
    let settings = &change.settings;
    spec.strategy = if settings.strategy.is_null() {
        None
    } else {
        Some(
            serde_json::from_value::<DeploymentStrategy>(settings.strategy.clone()).map_err(
                |e| CanaryError::Refused(format!("the recorded strategy is unusable: {e}")),
            )?,
        )
    };
    spec.min_ready_seconds = settings.min_ready_seconds;
    spec.progress_deadline_seconds = settings.progress_deadline_seconds;
    spec.paused = settings.paused;
    Ok(())
}
