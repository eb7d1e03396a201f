//! RBAC checks made before the first change, so a missing permission is reported with the
//! verb and resource it concerns and nothing is left half done.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use canary_core::rollout_math::CanarySize;
use canary_core::target::{WorkloadKind, WorkloadRef};

use crate::error::{CanaryError, Result};
use crate::kinds_drive::KindDrive;

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

/// What `status` of a StatefulSet reads: the StatefulSet (by name), its ControllerRevisions
/// and its pods, each read once. docs/permissions.md documents the kinds' verbs too.
pub const STATEFULSET_READ: &[Permission] = &[
    permission("get", "apps", "statefulsets"),
    permission("list", "apps", "controllerrevisions"),
    permission("list", "", "pods"),
];

/// What changing a StatefulSet canary needs besides [`STATEFULSET_READ`]: the drive watches
/// the StatefulSet (by name: list and watch) and its pods while the controller works, and
/// updates the StatefulSet (the canary's record is an annotation written in the same update).
pub const STATEFULSET_CHANGE: &[Permission] = &[
    permission("list", "apps", "statefulsets"),
    permission("watch", "apps", "statefulsets"),
    permission("update", "apps", "statefulsets"),
    permission("watch", "", "pods"),
];

/// What `status` of a DaemonSet reads, as [`STATEFULSET_READ`].
pub const DAEMONSET_READ: &[Permission] = &[
    permission("get", "apps", "daemonsets"),
    permission("list", "apps", "controllerrevisions"),
    permission("list", "", "pods"),
];

/// What changing a DaemonSet canary needs besides [`DAEMONSET_READ`], as
/// [`STATEFULSET_CHANGE`].
pub const DAEMONSET_CHANGE: &[Permission] = &[
    permission("list", "apps", "daemonsets"),
    permission("watch", "apps", "daemonsets"),
    permission("update", "apps", "daemonsets"),
    permission("watch", "", "pods"),
];

/// Deleting pods (guarded by their UID and resourceVersion; never their volumes): a
/// DaemonSet canary under `OnDelete` moves a node's pod only by deleting it (start, a
/// promote that grows, abort), and a StatefulSet's abort deletes the canary pods the
/// controller never replaces (the forced rollback), a hold the canary pods it finds below
/// its partition. A promote `--full` deletes none: the controller's own update finishes it.
pub const DELETE_PODS: &[Permission] = &[permission("delete", "", "pods")];

/// The one cluster-wide permission of the kinds: `start ds/NAME --nodes SELECTOR` lists the
/// nodes the selector selects.
pub const LIST_NODES: Permission = permission("list", "", "nodes");

/// A command on a StatefulSet or DaemonSet canary, as far as its permissions differ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KindCommand<'a> {
    /// `status`: reads only.
    Status,
    /// `start`, with `--nodes SELECTOR` (`Some`, DaemonSets) or not.
    Start(Option<&'a str>),
    /// `promote --canary SIZE` (`Some`, a hold that may delete pods) or `--full` (`None`).
    Promote(Option<CanarySize>),
    /// `abort`.
    Abort,
    /// `analyze`: reads only (each check's own reads, such as `pods/log`, are its to report).
    Analyze,
    /// `plan`: reads only.
    Plan,
    /// `--dry-run` of `start` (with `--nodes SELECTOR`: `Some`), `promote` or `abort`:
    /// reads only.
    DryRun(Option<&'a str>),
}

impl KindCommand<'_> {
    /// The permissions in the workload's namespace this command needs on a workload of
    /// `kind` (a Deployment's are [`READ`], [`START`] and [`CHANGE`], not these).
    pub fn permissions(self, kind: WorkloadKind) -> Vec<&'static [Permission]> {
        let (read, change) = match kind {
            WorkloadKind::StatefulSet => (STATEFULSET_READ, STATEFULSET_CHANGE),
            // A Deployment never comes here; the kinds' operations take every kind but a
            // StatefulSet for a DaemonSet, and so does this.
            WorkloadKind::DaemonSet | WorkloadKind::Deployment => {
                (DAEMONSET_READ, DAEMONSET_CHANGE)
            }
        };
        match self {
            Self::Status | Self::Analyze | Self::Plan | Self::DryRun(_) => vec![read],
            Self::Promote(None) => vec![read, change],
            Self::Start(_) | Self::Promote(Some(_)) | Self::Abort => {
                vec![read, change, DELETE_PODS]
            }
        }
    }

    /// The command line, for messages.
    fn line(self, target: &WorkloadRef) -> String {
        match self {
            Self::Status => format!("kubectl canary status {target}"),
            Self::Start(None) => format!("kubectl canary start {target}"),
            Self::Start(Some(nodes)) => format!("kubectl canary start {target} --nodes {nodes}"),
            Self::Promote(Some(size)) => format!("kubectl canary promote {target} --canary {size}"),
            Self::Promote(None) => format!("kubectl canary promote {target} --full"),
            Self::Abort => format!("kubectl canary abort {target}"),
            Self::Analyze => format!("kubectl canary analyze {target}"),
            Self::Plan => format!("kubectl canary plan {target}"),
            Self::DryRun(None) => format!("kubectl canary ... {target} --dry-run"),
            Self::DryRun(Some(nodes)) => {
                format!("kubectl canary start {target} --nodes {nodes} --dry-run")
            }
        }
    }
}

/// Checks the permissions `command` on the StatefulSet or DaemonSet `target` needs, before
/// it reads or changes anything, as [`require`] does for a Deployment's; `--nodes` is
/// checked too, with a SelfSubjectAccessReview without a namespace (nodes are
/// cluster-scoped: a namespace's rules never grant them). The first denied permission is a
/// [`CanaryError::Forbidden`] naming it.
///
/// ```no_run
/// # async fn example(client: kube::Client) -> canary_kube::error::Result<()> {
/// use canary_core::target::WorkloadRef;
/// use canary_kube::preflight::{KindCommand, require_kind};
///
/// let target = WorkloadRef::parse("ds/agent").unwrap();
/// require_kind(&client, "shop", &target, KindCommand::Start(Some("zone=eu-1b"))).await?;
/// # Ok(()) }
/// ```
pub async fn require_kind(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    command: KindCommand<'_>,
) -> Result<()> {
    let line = command.line(target);
    require(client, namespace, &line, &command.permissions(target.kind)).await?;
    if matches!(
        command,
        KindCommand::Start(Some(_)) | KindCommand::DryRun(Some(_))
    ) && !may(client, "", &LIST_NODES, None).await?
    {
        return Err(forbidden(client, "", &line, &LIST_NODES).await);
    }
    Ok(())
}

/// [`require_kind`] in the namespace of `drive`, as `start`, `promote` and `abort` call it.
pub async fn require_for(
    drive: &KindDrive<'_>,
    target: &WorkloadRef,
    command: KindCommand<'_>,
) -> Result<()> {
    require_kind(drive.client, drive.namespace, target, command).await
}

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
        return Err(forbidden(client, namespace, command, permission).await);
    }
    Ok(())
}

/// The error of a permission `command` needs and is denied, naming the user as the API
/// server authenticates it (`namespace` empty: a cluster-wide permission).
async fn forbidden(
    client: &kube::Client,
    namespace: &str,
    command: &str,
    permission: &Permission,
) -> CanaryError {
    CanaryError::Forbidden {
        who: format!("user '{}'", whoami(client).await),
        verb: permission.verb.to_string(),
        resource: if permission.group.is_empty() {
            permission.resource.to_string()
        } else {
            format!("{}.{}", permission.resource, permission.group)
        },
        namespace: namespace.to_string(),
        command: format!("`{command}` needs"),
    }
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

    /// Each command of a kind checks the reads of its kind; the changing ones the watches
    /// and the update; only those that may delete pods (a hold, an abort) `delete pods`.
    #[test]
    fn a_kind_command_needs_its_kinds_verbs_and_deletes_pods_only_where_it_may() {
        let verbs = |kind, command: KindCommand<'_>| -> Vec<String> {
            command
                .permissions(kind)
                .iter()
                .flat_map(|p| p.iter())
                .map(|p| format!("{} {}", p.verb, p.resource))
                .collect()
        };
        let sts = WorkloadKind::StatefulSet;
        assert_eq!(
            verbs(sts, KindCommand::Status),
            ["get statefulsets", "list controllerrevisions", "list pods"]
        );
        // analyze and every dry run only read.
        for reads in [
            KindCommand::Analyze,
            KindCommand::Plan,
            KindCommand::DryRun(None),
            KindCommand::DryRun(Some("zone=b")),
        ] {
            assert_eq!(verbs(sts, reads), verbs(sts, KindCommand::Status));
        }
        let full = verbs(sts, KindCommand::Promote(None));
        assert!(full.contains(&"update statefulsets".to_owned()), "{full:?}");
        assert!(!full.contains(&"delete pods".to_owned()), "{full:?}");
        for command in [
            KindCommand::Start(None),
            KindCommand::Promote(Some(CanarySize::Pods(2))),
            KindCommand::Abort,
        ] {
            let needs = verbs(WorkloadKind::DaemonSet, command);
            assert_eq!(needs.last().map(String::as_str), Some("delete pods"));
            assert!(
                needs.iter().all(|v| !v.ends_with("statefulsets")),
                "{needs:?}"
            );
        }
        let target = WorkloadRef::parse("ds/agent").unwrap();
        assert_eq!(
            KindCommand::Start(Some("zone=b")).line(&target),
            "kubectl canary start ds/agent --nodes zone=b"
        );
    }

    /// A cluster-wide permission is said to be one, with what grants it.
    #[test]
    fn a_denied_cluster_wide_permission_says_a_cluster_role_grants_it() {
        let denied = |namespace: &str| {
            CanaryError::Forbidden {
                who: "user 'dev'".into(),
                verb: "list".into(),
                resource: "nodes".into(),
                namespace: namespace.into(),
                command: "`kubectl canary start ds/agent --nodes zone=b` needs".into(),
            }
            .to_string()
        };
        assert_eq!(
            denied(""),
            "forbidden: user 'dev' may not list nodes cluster-wide, which `kubectl canary start ds/agent \
             --nodes zone=b` needs; ask for a ClusterRole (and ClusterRoleBinding) that grants it (nothing \
             was changed)"
        );
        assert!(
            denied("shop").contains("may not list nodes in namespace 'shop', which")
                && denied("shop").contains("ask for a Role that grants it"),
            "{}",
            denied("shop")
        );
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
