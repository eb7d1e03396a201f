//! The canary's pod template for a release, from the user's own input: composed in
//! `canary_core::release`, then given the API server's defaults by a dry-run update of the
//! Deployment (so the template compared, shown and recorded is the one the API server will
//! store, and a template it would refuse is refused before anything changes).

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::Value;

use canary_core::image::ImageChange;
use canary_core::kind_machines::release::canary_template;
use canary_core::record::with_images;
use canary_core::release::{ReleaseError, ReleaseInput, desired_deployment, desired_workload};
use canary_core::target::WorkloadRef;

use crate::error::{CanaryError, Result};
use crate::observe::{NamespaceApis, template_json};

impl From<ReleaseError> for CanaryError {
    fn from(error: ReleaseError) -> Self {
        if error.is_malformed() {
            CanaryError::Usage(error.to_string())
        } else {
            CanaryError::Refused(error.to_string())
        }
    }
}

/// The pod template a release gives `deployment`: for images alone, the live template with
/// them (as always); otherwise the composed Deployment's template as the API server would
/// store it, read from a dry-run update (nothing is stored; the update permission is
/// needed, as for the canary itself).
pub async fn target_template(
    apis: &NamespaceApis,
    deployment: &Deployment,
    input: &ReleaseInput,
) -> Result<Value> {
    let name = deployment.name_any();
    let live_template = deployment
        .spec
        .as_ref()
        .map(|s| template_json(&s.template))
        .unwrap_or_default();
    if input.images_only() {
        return Ok(with_images(&live_template, &input.images));
    }
    let live = serde_json::to_value(deployment)
        .map_err(|e| CanaryError::Refused(format!("deploy/{name} cannot be read as JSON: {e}")))?;
    let desired = desired_deployment(&live, &name, input)?;
    let desired: Deployment = serde_json::from_value(desired).map_err(|e| {
        CanaryError::Usage(format!(
            "the release for deploy/{name} ({}) is not a valid Deployment: {e}",
            input.describe()
        ))
    })?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let defaulted = match apis.deployments.replace(&name, &params, &desired).await {
        Ok(defaulted) => defaulted,
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => {
            return Err(CanaryError::Refused(format!(
                "the API server refuses the pod template of the release for deploy/{name} ({}): {}; \
                 nothing was changed",
                input.describe(),
                status.message
            )));
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Err(CanaryError::Refused(format!(
                "deploy/{name} changed while the release was checked; run the command again"
            )));
        }
        Err(e) => {
            return Err(CanaryError::api(
                format!("checking the release's pod template for deploy/{name} (a dry-run update)"),
                e,
            ));
        }
    };
    Ok(defaulted
        .spec
        .as_ref()
        .map(|s| template_json(&s.template))
        .unwrap_or_default())
}

/// The pod template a release gives the StatefulSet or DaemonSet `object` (`target`): for
/// images alone, its live template with them (refused for an unknown container or images
/// that already run); otherwise the composed workload's template as the API server would
/// store it, read from a dry-run update through `api` (nothing is stored; the update
/// permission is needed, as for the canary itself).
pub async fn workload_template<K>(
    api: &kube::Api<K>,
    object: &K,
    live_template: &Value,
    target: &WorkloadRef,
    input: &ReleaseInput,
) -> Result<Value>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if input.images_only() {
        let images: Vec<ImageChange> = input
            .images
            .iter()
            .map(|(container, image)| ImageChange {
                container: container.clone(),
                image: image.clone(),
            })
            .collect();
        return canary_template(&target.to_string(), live_template, &images)
            .map_err(|e| CanaryError::Refused(e.to_string()));
    }
    let live = serde_json::to_value(object)
        .map_err(|e| CanaryError::Refused(format!("{target} cannot be read as JSON: {e}")))?;
    let desired: K =
        serde_json::from_value(desired_workload(&live, target, input)?).map_err(|e| {
            CanaryError::Usage(format!(
                "the release for {target} ({}) is not a valid {}: {e}",
                input.describe(),
                target.kind.name()
            ))
        })?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let defaulted = match api.replace(&target.name, &params, &desired).await {
        Ok(defaulted) => defaulted,
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => {
            return Err(CanaryError::Refused(format!(
                "the API server refuses the pod template of the release for {target} ({}): {}; \
                 nothing was changed",
                input.describe(),
                status.message
            )));
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Err(CanaryError::Refused(format!(
                "{target} changed while the release was checked; run the command again"
            )));
        }
        Err(e) => {
            return Err(CanaryError::api(
                format!("checking the release's pod template for {target} (a dry-run update)"),
                e,
            ));
        }
    };
    let stored = serde_json::to_value(&defaulted)
        .map_err(|e| CanaryError::Refused(format!("{target} cannot be read as JSON: {e}")))?;
    Ok(stored
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default())
}
