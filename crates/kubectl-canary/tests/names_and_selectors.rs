//! Deployments the tool once mishandled: a name longer than a label value (63 characters)
//! and a selector of `matchExpressions` only. Both are canaried and restored exactly.

mod common;

use std::time::Duration;

use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, create_settled, spec_of, wait_settled,
    web_deployment,
};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

fn with_short_labels(mut deployment: Deployment, selector: serde_json::Value) -> Deployment {
    let mut value = serde_json::to_value(&deployment).unwrap();
    value["metadata"]["labels"] = serde_json::json!({"app": "long"});
    value["spec"]["selector"] = selector;
    value["spec"]["template"]["metadata"]["labels"] =
        serde_json::json!({"app": "long", "track": "x"});
    deployment = serde_json::from_value(value).unwrap();
    deployment
}

async fn canary_and_abort(env: &TestEnv, ns: &str, name: &str, image: &str) {
    let original = spec_of(env, ns, name).await;
    let target = format!("deploy/{name}");
    let start = canary(
        env,
        ns,
        &["start", &target, &format!("nginx={image}"), "--canary", "1"],
    )
    .await;
    assert_exit(&start, 0, "start");
    assert_eq!(
        replica_sets_by_image(env, ns).await,
        vec![("nginx:1.14".to_string(), 3), (image.to_string(), 1)],
        "exactly one canary pod beside three stable"
    );
    assert_exit(&canary(env, ns, &["status", &target]).await, 0, "status");
    let abort = canary(env, ns, &["abort", &target]).await;
    assert_exit(&abort, 0, "abort");
    wait_settled(env, ns, name, Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(env, ns, name).await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_name_over_63_characters_is_canaried_with_a_valid_record_label() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "longname").await;
    let name = format!("web-{}", "long".repeat(17));
    assert!(name.len() > 63);
    let deployment = with_short_labels(
        web_deployment(&name, 3, "nginx:1.14", None),
        serde_json::json!({"matchLabels": {"app": "long"}}),
    );
    create_settled(&env, &ns.name, &deployment).await;
    let original = spec_of(&env, &ns.name, &name).await;
    let target = format!("deploy/{name}");
    assert_exit(
        &canary(
            &env,
            &ns.name,
            &["start", &target, "nginx=nginx:1.15", "--canary", "1"],
        )
        .await,
        0,
        "start on a long name",
    );
    let records: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    let record = records
        .get(&format!("{name}.kubectl-canary"))
        .await
        .expect("the record");
    let label = record.metadata.labels.unwrap_or_default()["kubectl-canary.io/deployment"].clone();
    assert!(
        label.len() <= 63 && name.starts_with(&label[..54]),
        "{label}"
    );
    assert_exit(
        &canary(&env, &ns.name, &["abort", &target]).await,
        0,
        "abort",
    );
    wait_settled(&env, &ns.name, &name, Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, &name).await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_of_match_expressions_only_is_canaried() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "exprsel").await;
    let deployment = with_short_labels(
        web_deployment("web", 3, "nginx:1.14", None),
        serde_json::json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["long"]},
            {"key": "track", "operator": "Exists"}
        ]}),
    );
    create_settled(&env, &ns.name, &deployment).await;
    canary_and_abort(&env, &ns.name, "web", "nginx:1.15").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_sidecar_is_canaried_and_restored() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sidecar").await;
    let mut value = serde_json::to_value(web_deployment("web", 3, "nginx:1.14", None)).unwrap();
    value["spec"]["template"]["spec"]["initContainers"] = serde_json::json!([
        {"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always"}
    ]);
    let deployment: Deployment = serde_json::from_value(value).unwrap();
    create_settled(&env, &ns.name, &deployment).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let start = canary(
        &env,
        &ns.name,
        &["start", "deploy/web", "proxy=envoy:1.31", "--canary", "1"],
    )
    .await;
    assert_exit(&start, 0, "start on a native sidecar");
    let held = spec_of(&env, &ns.name, "web").await;
    assert_eq!(
        held.pointer("/template/spec/initContainers/0/image")
            .and_then(|v| v.as_str()),
        Some("envoy:1.31"),
        "the sidecar's image is the canary's"
    );
    let unknown = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&unknown, 0, "abort");
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
    // A name that is in neither list is refused with both lists' names.
    let out = canary(
        &env,
        &ns.name,
        &["start", "deploy/web", "nope=x:1", "--canary", "1"],
    )
    .await;
    assert_exit(&out, 4, "unknown container");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nginx") && stderr.contains("proxy"),
        "{}",
        text(&out)
    );
}
