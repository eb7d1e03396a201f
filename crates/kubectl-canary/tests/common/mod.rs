//! Shared helpers of the CLI's integration tests.
#![allow(dead_code, missing_docs)]

use std::process::Output;

use canary_testkit::TestEnv;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

pub mod rbac;

/// The CLI under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-canary");

/// Runs `kubectl canary -n NS ARGS...` with the admin kubeconfig, off the async runtime.
pub async fn canary(env: &TestEnv, namespace: &str, args: &[&str]) -> Output {
    canary_with(env, namespace, args, &[]).await
}

/// `kubectl canary start deploy/web nginx=nginx:1.15` followed by `args`, in `namespace`:
/// the release most scenarios start.
pub async fn start_release(env: &TestEnv, namespace: &str, args: &[&str]) -> Output {
    let mut full = vec!["start", "deploy/web", "nginx=nginx:1.15"];
    full.extend_from_slice(args);
    canary(env, namespace, &full).await
}

/// Same, with extra environment variables (the crash hook).
pub async fn canary_with(
    env: &TestEnv,
    namespace: &str,
    args: &[&str],
    vars: &[(&str, &str)],
) -> Output {
    let env = env.clone();
    let mut full = vec!["-n".to_string(), namespace.to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.run_as(&env.kubeconfig, BIN, &args, &vars)
    })
    .await
    .expect("the CLI runs")
}

/// Runs kubectl with the admin kubeconfig.
pub async fn kubectl(env: &TestEnv, args: &[&str]) -> Output {
    let env = env.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run("kubectl", &args)
    })
    .await
    .expect("kubectl runs")
}

/// Stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the exit code.
pub fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: unexpected exit\n{}",
        text(output)
    );
}

/// Desired replicas of the Deployment's ReplicaSets, by image of container `nginx`.
pub async fn replica_sets_by_image(env: &TestEnv, namespace: &str) -> Vec<(String, i32)> {
    let api: Api<ReplicaSet> = Api::namespaced(env.client().await, namespace);
    let mut sizes: Vec<(String, i32)> = api
        .list(&ListParams::default())
        .await
        .expect("list ReplicaSets")
        .items
        .into_iter()
        .map(|rs| {
            let spec = rs.spec.unwrap_or_default();
            let image = spec
                .template
                .and_then(|t| t.spec)
                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                .unwrap_or_default();
            (image, spec.replicas.unwrap_or(0))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    sizes.sort();
    sizes
}

/// Whether the canary record exists.
pub async fn record_exists(env: &TestEnv, namespace: &str, deployment: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(env.client().await, namespace);
    api.get_opt(&format!("{deployment}.kubectl-canary"))
        .await
        .expect("read record")
        .is_some()
}

/// `spec.paused` of the Deployment.
pub async fn is_paused(env: &TestEnv, namespace: &str, name: &str) -> bool {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    api.get(name)
        .await
        .expect("read deployment")
        .spec
        .and_then(|s| s.paused)
        .unwrap_or(false)
}

/// The Deployment's annotations.
pub async fn annotations_of(
    env: &TestEnv,
    namespace: &str,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    api.get(name)
        .await
        .expect("read deployment")
        .metadata
        .annotations
        .unwrap_or_default()
}

/// Annotations without the controller's revision number, which every rollout changes.
pub fn without_revision(
    mut annotations: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    annotations.remove("deployment.kubernetes.io/revision");
    annotations
}

/// Every part of the Deployment a write of its main resource changes (generation, labels,
/// annotations, spec, and the managedFields entries of writers other than the status
/// subresource), to show that nothing was written. The controller's status updates, which
/// change the resourceVersion on their own, are left out.
pub async fn deployment_json(env: &TestEnv, namespace: &str, name: &str) -> serde_json::Value {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    let deployment = serde_json::to_value(api.get(name).await.expect("read deployment"))
        .expect("a Deployment serializes");
    let managed: Vec<serde_json::Value> = deployment
        .pointer("/metadata/managedFields")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter(|entry| entry.get("subresource").and_then(|s| s.as_str()) != Some("status"))
        .cloned()
        .collect();
    serde_json::json!({
        "generation": deployment.pointer("/metadata/generation"),
        "labels": deployment.pointer("/metadata/labels"),
        "annotations": deployment.pointer("/metadata/annotations"),
        "managedFields": managed,
        "spec": deployment.get("spec"),
    })
}

/// Runs `start deploy/web nginx=IMAGE --canary PODS EXTRA...`, which must exit 0 (`what`
/// names it in the failure); returns its output.
pub async fn start_canary(
    env: &TestEnv,
    namespace: &str,
    image: &str,
    pods: &str,
    extra: &[&str],
    what: &str,
) -> Output {
    let image = format!("nginx={image}");
    let mut args = vec!["start", "deploy/web", image.as_str(), "--canary", pods];
    args.extend_from_slice(extra);
    let out = canary(env, namespace, &args).await;
    assert_exit(&out, 0, what);
    out
}
