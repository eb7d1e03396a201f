//! The documented Role of the CLI (deploy/cli-rbac/role.yaml) bound to a ServiceAccount in
//! a test's namespace: the restricted identity of the permission and fault tests.

use std::time::Duration;

use canary_testkit::{TestEnv, wait_until};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use super::{kubectl, text};

/// The ServiceAccount bound to the Role under test.
pub const SA: &str = "canary-operator";

/// The documented Role, as shipped.
pub fn documented_role() -> Role {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/cli-rbac/role.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/cli-rbac/role.yaml");
    serde_saphyr::from_str(&text).expect("a Role")
}

/// Sets up the ServiceAccount bound to `role` in the namespace; returns its token.
pub async fn operator(env: &TestEnv, ns: &str, role: &Role) -> String {
    let client = env.client().await;
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    roles
        .create(&PostParams::default(), role)
        .await
        .expect("create the Role");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("kubectl-canary".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.metadata.name.clone().unwrap(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SA.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the Role");
    let out = kubectl(env, &["-n", ns, "create", "serviceaccount", SA]).await;
    assert!(
        out.status.success() || text(&out).contains("AlreadyExists"),
        "{}",
        text(&out)
    );
    let out = kubectl(env, &["-n", ns, "create", "token", SA]).await;
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Replaces the Role's rules, and waits until the authorizer answers as they say (it follows
/// the Role through its informer's cache, moments later): every verb they grant allowed to
/// the ServiceAccount, every verb the Role granted before and no longer does denied.
pub async fn set_rules(env: &TestEnv, ns: &str, mut rules: Vec<PolicyRule>) {
    // A rule left without verbs is invalid: drop it.
    rules.retain(|rule| !rule.verbs.is_empty());
    let client = env.client().await;
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let mut role = roles.get("kubectl-canary").await.unwrap();
    let before = grants(role.rules.as_deref().unwrap_or_default());
    let after = grants(&rules);
    role.rules = Some(rules);
    roles
        .replace("kubectl-canary", &PostParams::default(), &role)
        .await
        .unwrap();
    let removed: Vec<&Grant> = before.iter().filter(|g| !after.contains(g)).collect();
    let reviews: Api<SubjectAccessReview> = Api::all(client);
    wait_until(
        env,
        "the authorizer follows the Role's new rules",
        Duration::from_secs(30),
        || async {
            for grant in &after {
                if !allowed(&reviews, ns, grant).await {
                    return false;
                }
            }
            for grant in &removed {
                if allowed(&reviews, ns, grant).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// One verb a rule grants: (group, resource, verb, one of its resourceNames).
type Grant = (String, String, String, Option<String>);

fn grants(rules: &[PolicyRule]) -> Vec<Grant> {
    let mut grants = Vec::new();
    for rule in rules {
        let names: Vec<Option<String>> = match &rule.resource_names {
            Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        grants.push((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    grants
}

/// Whether the authorizer allows `grant` to the ServiceAccount [`SA`] of `ns`, as it
/// authenticates with its token (the user and the groups of a ServiceAccount).
async fn allowed(reviews: &Api<SubjectAccessReview>, ns: &str, grant: &Grant) -> bool {
    let (group, resource, verb, name) = grant;
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
        None => (resource.clone(), None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{SA}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_owned()),
                group: Some(group.clone()),
                resource: Some(resource),
                subresource,
                verb: Some(verb.clone()),
                name: name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// The documented ClusterRole named `name` (deploy/cli-rbac/clusterrole.yaml holds several),
/// as shipped.
pub fn documented_cluster_role(name: &str) -> ClusterRole {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/cli-rbac/clusterrole.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/cli-rbac/clusterrole.yaml");
    let roles: Vec<ClusterRole> = serde_saphyr::from_multiple(&text).expect("ClusterRoles");
    roles
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no ClusterRole {name} in clusterrole.yaml"))
}

/// Grants the ServiceAccount [`SA`] of `ns` the rules of `role` cluster-wide: a copy of it
/// named after the namespace (ClusterRoles are not namespaced; tests run side by side),
/// bound with a ClusterRoleBinding of the same name. Returns that name, for
/// [`unbind_cluster_role`].
pub async fn bind_cluster_role(env: &TestEnv, ns: &str, role: &ClusterRole) -> String {
    let client = env.client().await;
    let name = format!("{ns}-{}", role.metadata.name.as_deref().unwrap_or("role"));
    let copy = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        rules: role.rules.clone(),
        ..Default::default()
    };
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles
        .create(&PostParams::default(), &copy)
        .await
        .expect("create the ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SA.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client);
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the ClusterRole");
    name
}

/// Deletes what [`bind_cluster_role`] made.
pub async fn unbind_cluster_role(env: &TestEnv, name: &str) {
    let client = env.client().await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings
        .delete(name, &Default::default())
        .await
        .expect("delete the ClusterRoleBinding");
    let roles: Api<ClusterRole> = Api::all(client);
    roles
        .delete(name, &Default::default())
        .await
        .expect("delete the ClusterRole");
}
