//! The documented Role of the CLI (deploy/cli-rbac/role.yaml) bound to a ServiceAccount in
//! a test's namespace: the restricted identity of the permission and fault tests.

use std::time::Duration;

use canary_testkit::TestEnv;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
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

/// Replaces the Role's rules.
pub async fn set_rules(env: &TestEnv, ns: &str, mut rules: Vec<PolicyRule>) {
    // A rule left without verbs is invalid: drop it.
    rules.retain(|rule| !rule.verbs.is_empty());
    let roles: Api<Role> = Api::namespaced(env.client().await, ns);
    let mut role = roles.get("kubectl-canary").await.unwrap();
    role.rules = Some(rules);
    roles
        .replace("kubectl-canary", &PostParams::default(), &role)
        .await
        .unwrap();
    // The authorizer's cache follows the Role within moments.
    tokio::time::sleep(Duration::from_millis(500)).await;
}
