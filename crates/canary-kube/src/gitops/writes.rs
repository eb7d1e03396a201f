//! The controller's writes. Each is one update guarded by the resourceVersion it decided
//! on; a conflict is not an error, the next reconcile decides again.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use canary_core::gitops::brake::STATE_ANNOTATIONS;
use canary_core::machine::SpecChange;

use crate::engine::apply_change;
use crate::error::{CanaryError, Result, is_status};

/// The field manager of the controller's writes.
pub const FIELD_MANAGER: &str = "kubectl-canary-controller";

/// What became of a guarded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored, with this resourceVersion.
    Stored(String),
    /// Someone wrote first; decide again on the newer object.
    Conflict,
}

/// Updates `deployment` (as read) with `change`, and when `release` also removes the
/// brake's annotations in the same write, so the admission policy stops holding the
/// settings exactly when they are put back.
pub async fn update_deployment(
    api: &Api<Deployment>,
    deployment: &Deployment,
    change: &SpecChange,
    release: bool,
) -> Result<Written> {
    let mut updated = deployment.clone();
    apply_change(&mut updated, change)?;
    if release {
        let annotations = updated.annotations_mut();
        for key in STATE_ANNOTATIONS {
            annotations.remove(key);
        }
    }
    let name = deployment.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.replace(&name, &params, &updated).await {
        Ok(stored) => Ok(Written::Stored(
            stored.resource_version().unwrap_or_default(),
        )),
        Err(e) if is_status(&e, 409) => Ok(Written::Conflict),
        Err(e) if is_status(&e, 422) => Err(CanaryError::Refused(format!(
            "the API server refused the update of deploy/{name}: {e}"
        ))),
        Err(e) => Err(CanaryError::api(format!("updating deploy/{name}"), e)),
    }
}

/// Scales a ReplicaSet to 0 through its scale subresource, if it still has the UID it was
/// read with (a recreated namesake is left alone).
pub async fn scale_replica_set_to_zero(
    api: &Api<ReplicaSet>,
    replica_set: &ReplicaSet,
) -> Result<Written> {
    let name = replica_set.name_any();
    let patch = json!({
        "spec": {"replicas": 0},
    });
    // The scale subresource has no UID precondition; the resourceVersion of the ReplicaSet
    // as read makes the write apply only to that object, unchanged since.
    let mut patch = patch;
    patch["metadata"] = json!({"resourceVersion": replica_set.resource_version()});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch_scale(&name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(Written::Stored(String::new())),
        Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(Written::Conflict),
        Err(e) => Err(CanaryError::api(
            format!("scaling replicaset/{name} to 0"),
            e,
        )),
    }
}
