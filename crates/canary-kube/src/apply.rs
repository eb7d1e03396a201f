//! `kubectl canary apply`: objects applied as `kubectl apply --server-side --force-conflicts
//! --field-manager=kubectl-canary` would, and which Deployments of a manifest would get a
//! new pod template from it (those get a canary instead).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

use canary_core::release::{Document, template_diff};

use crate::error::{CanaryError, Result};

/// The field manager of the objects `apply` applies.
pub const FIELD_MANAGER: &str = "kubectl-canary";

/// What applying a Deployment's manifest would do to its pod template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateChange {
    /// The Deployment does not exist yet: it is created, with no canary.
    NewDeployment,
    /// The pod template stays as it is: the manifest is applied as it is.
    Unchanged,
    /// The pod template would change: a canary.
    Changed,
}

/// Whether applying `document` (a Deployment) would change its pod template, from a
/// dry-run server-side apply (the API server's defaults and merge rules, nothing stored).
pub async fn template_change(
    client: &kube::Client,
    namespace: &str,
    document: &Document,
) -> Result<TemplateChange> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let live = api
        .get_opt(document.name())
        .await
        .map_err(|e| CanaryError::api(format!("reading deploy/{}", document.name()), e))?;
    let Some(live) = live else {
        return Ok(TemplateChange::NewDeployment);
    };
    let applied = apply_object(client, namespace, document, true).await?;
    let template = |object: &Value| {
        object
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_default()
    };
    let live = serde_json::to_value(&live).unwrap_or_default();
    Ok(
        if template_diff(&template(&live), &template(&applied)).is_empty() {
            TemplateChange::Unchanged
        } else {
            TemplateChange::Changed
        },
    )
}

/// Applies one object server-side (force: the manifest's values win, as with
/// `--force-conflicts`), in its own namespace or `namespace`; returns the object as stored
/// (as it would be, with `dry_run`).
pub async fn apply_object(
    client: &kube::Client,
    namespace: &str,
    document: &Document,
    dry_run: bool,
) -> Result<Value> {
    let what = format!(
        "{}/{} ({}, line {})",
        document.kind(),
        document.name(),
        document.file,
        document.line
    );
    let api_version = document
        .object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, document.kind());
    let (resource, capabilities) = pinned_kind(client, &gvk).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 => CanaryError::Refused(format!(
            "{what}: the API server serves no {} of apiVersion {api_version}; nothing was changed",
            document.kind()
        )),
        kube::Error::Discovery(_) => CanaryError::Refused(format!(
            "{what}: the API server serves no {} of apiVersion {api_version}; nothing was changed",
            document.kind()
        )),
        other => CanaryError::api(format!("looking up the API of {what}"), other),
    })?;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            document.namespace().unwrap_or(namespace),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let applied = api
        .patch(document.name(), &params, &Patch::Apply(&document.object))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if matches!(status.code, 400 | 422) => CanaryError::Refused(
                format!("{what}: the API server refuses it: {}", status.message),
            ),
            other => CanaryError::api(format!("applying {what}"), other),
        })?;
    Ok(serde_json::to_value(applied).unwrap_or_default())
}
