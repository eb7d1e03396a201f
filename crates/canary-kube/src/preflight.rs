//! RBAC checks made before the first change, so a missing permission is reported with the
//! verb and resource it concerns and nothing is left half done.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::error::{CanaryError, Result};

/// One permission a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The verb.
    pub verb: &'static str,
    /// The API group ("" for core).
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
}

const fn permission(verb: &'static str, group: &'static str, resource: &'static str) -> Permission {
    Permission {
        verb,
        group,
        resource,
    }
}

/// What reading a canary needs (status, and every mutating command).
pub const READ: &[Permission] = &[
    permission("get", "apps", "deployments"),
    permission("list", "apps", "replicasets"),
    permission("watch", "apps", "replicasets"),
    permission("list", "", "pods"),
    permission("watch", "", "pods"),
    permission("get", "", "configmaps"),
];

/// What changing a canary needs, besides [`READ`].
pub const CHANGE: &[Permission] = &[
    permission("update", "apps", "deployments"),
    permission("create", "", "configmaps"),
    permission("update", "", "configmaps"),
    permission("delete", "", "configmaps"),
];

/// The user the API server authenticates us as (`unknown` if it will not say).
pub async fn whoami(client: &kube::Client) -> String {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_else(|| "unknown".into()),
        Err(_) => "unknown".into(),
    }
}

/// Checks each permission with a SelfSubjectAccessReview; the first denied one is an error
/// naming the verb, the resource and the command.
pub async fn require(
    client: &kube::Client,
    namespace: &str,
    command: &str,
    permissions: &[&[Permission]],
) -> Result<()> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let checks = permissions.iter().flat_map(|p| p.iter()).map(|p| {
        let api = api.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_string()),
                        verb: Some(p.verb.to_string()),
                        group: Some(p.group.to_string()),
                        resource: Some(p.resource.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| CanaryError::api("asking the API server for our permissions", e))?;
            Ok::<_, CanaryError>((p, answer.status.is_some_and(|s| s.allowed)))
        }
    });
    let answers = futures::future::try_join_all(checks).await?;
    if let Some((denied, _)) = answers.into_iter().find(|(_, allowed)| !allowed) {
        return Err(CanaryError::Forbidden {
            who: format!("user '{}'", whoami(client).await),
            verb: denied.verb.to_string(),
            resource: if denied.group.is_empty() {
                denied.resource.to_string()
            } else {
                format!("{}.{}", denied.resource, denied.group)
            },
            namespace: namespace.to_string(),
            command: format!("`{command}` needs"),
        });
    }
    Ok(())
}
