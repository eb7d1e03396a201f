//! RBAC checks made before the first change, so a missing permission is reported with the
//! verb and resource it concerns and nothing is left half done.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
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

/// What reading a canary needs (status, and every mutating command): the live view
/// watches the Deployment (by name) and the record (by name), which takes list and watch
/// as well as get. docs/permissions.md documents the same list; keep them together.
pub const READ: &[Permission] = &[
    permission("get", "apps", "deployments"),
    permission("list", "apps", "deployments"),
    permission("watch", "apps", "deployments"),
    permission("list", "apps", "replicasets"),
    permission("watch", "apps", "replicasets"),
    permission("list", "", "pods"),
    permission("watch", "", "pods"),
    permission("get", "", "configmaps"),
    permission("list", "", "configmaps"),
    permission("watch", "", "configmaps"),
];

/// What `start` needs besides [`READ`] and [`CHANGE`]: it refuses a Deployment an HPA
/// scales, so it must be able to tell.
pub const START: &[Permission] = &[permission(
    "list",
    "autoscaling",
    "horizontalpodautoscalers",
)];

/// What changing a canary needs, besides [`READ`].
pub const CHANGE: &[Permission] = &[
    permission("update", "apps", "deployments"),
    permission("create", "", "configmaps"),
    permission("update", "", "configmaps"),
    permission("delete", "", "configmaps"),
    // Growing the stable side or shrinking the canary after a change of spec.replicas.
    permission("update", "apps", "replicasets"),
];

/// Who runs this command: the user the API server authenticates, this host, this process,
/// this tool's version (what a record's `startedBy` says).
pub async fn owner(client: &kube::Client) -> canary_core::record::Owner {
    canary_core::record::Owner {
        user: whoami(client).await,
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into()),
        pid: std::process::id(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

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

/// Checks the permissions a command needs before it changes anything: one
/// SelfSubjectRulesReview for the namespace, evaluated here; where the API server says its
/// answer is incomplete (e.g. a webhook authorizer), each permission the rules do not grant
/// is confirmed with a SelfSubjectAccessReview. The first denied permission is an error
/// naming the verb, the resource and the command.
pub async fn require(
    client: &kube::Client,
    namespace: &str,
    command: &str,
    permissions: &[&[Permission]],
) -> Result<()> {
    let rules_api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    let status = rules_api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| CanaryError::api("asking the API server for our permissions", e))?
        .status
        .unwrap_or_default();
    for permission in permissions.iter().flat_map(|p| p.iter()) {
        let granted = status
            .resource_rules
            .iter()
            .any(|rule| rule_grants(rule, permission));
        if granted || (status.incomplete && access_review(client, namespace, permission).await?) {
            continue;
        }
        return Err(CanaryError::Forbidden {
            who: format!("user '{}'", whoami(client).await),
            verb: permission.verb.to_string(),
            resource: if permission.group.is_empty() {
                permission.resource.to_string()
            } else {
                format!("{}.{}", permission.resource, permission.group)
            },
            namespace: namespace.to_string(),
            command: format!("`{command}` needs"),
        });
    }
    Ok(())
}

/// Whether an RBAC rule grants a permission on every object of the resource (a rule
/// limited to named objects does not: the tool lists and creates).
fn rule_grants(rule: &ResourceRule, permission: &Permission) -> bool {
    let has = |values: &Option<Vec<String>>, wanted: &str| {
        values.iter().flatten().any(|v| v == "*" || v == wanted)
    };
    (rule.verbs.iter().any(|v| v == "*" || v == permission.verb))
        && has(&rule.api_groups, permission.group)
        && has(&rule.resources, permission.resource)
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

/// One SelfSubjectAccessReview.
async fn access_review(
    client: &kube::Client,
    namespace: &str,
    permission: &Permission,
) -> Result<bool> {
    may(client, namespace, permission, None).await
}

/// Whether this user may do `permission` in `namespace` (on the object `name`, when
/// given), as one SelfSubjectAccessReview answers.
pub(crate) async fn may(
    client: &kube::Client,
    namespace: &str,
    permission: &Permission,
    name: Option<&str>,
) -> Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(permission.verb.to_string()),
                group: Some(permission.group.to_string()),
                resource: Some(permission.resource.to_string()),
                name: name.map(str::to_string),
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
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> ResourceRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        ResourceRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: strings(groups),
            resources: strings(resources),
            resource_names: if names.is_empty() {
                None
            } else {
                strings(names)
            },
        }
    }

    #[test]
    fn rules_grant_by_verb_group_and_resource_with_wildcards() {
        let update = permission("update", "apps", "deployments");
        assert!(rule_grants(&rule(&["*"], &["*"], &["*"], &[]), &update));
        assert!(rule_grants(
            &rule(&["get", "update"], &["apps"], &["deployments"], &[]),
            &update
        ));
        assert!(!rule_grants(
            &rule(&["get", "list", "watch"], &["apps"], &["deployments"], &[]),
            &update
        ));
        assert!(
            !rule_grants(&rule(&["update"], &[""], &["deployments"], &[]), &update),
            "core group is not apps"
        );
        assert!(
            !rule_grants(
                &rule(&["update"], &["apps"], &["deployments"], &["web"]),
                &update
            ),
            "named objects only"
        );
        assert!(rule_grants(
            &rule(&["create"], &[""], &["configmaps"], &[]),
            &permission("create", "", "configmaps")
        ));
    }
}
