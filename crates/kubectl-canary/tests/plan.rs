//! `kubectl canary plan`: offline (no cluster, no kubeconfig needed) and against the testenv.

mod common;

use assert_cmd::Command;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, TestNamespace, create_settled, web_deployment};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use predicates::str::contains;
use serde_json::{Value, json};

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const REFUSED: i32 = 4;

/// The CLI with no usable kubeconfig: an offline plan must not need one.
fn offline() -> Command {
    let mut command = Command::new(BIN);
    command.env("KUBECONFIG", "/nonexistent/kubeconfig");
    command
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(output)))
}

#[test]
fn offline_table_shows_both_modes_and_the_exact_replica_counts() {
    offline()
        .args([
            "plan",
            "--replicas",
            "10",
            "--canary",
            "5%",
            "--cpu",
            "100m",
            "--memory",
            "128Mi",
        ])
        .assert()
        .success()
        .stdout(contains("surge *    1       10      11    1      9.09%"))
        .stdout(contains("replace *  1       9       10    0      10%"))
        .stdout(contains("5% is not achievable with 10 replicas"))
        .stdout(contains("5% is exact with 19+1"))
        .stdout(contains("or 20 (replace"))
        .stdout(contains("100m CPU, 128Mi"))
        .stdout(contains(
            "blue/green (start --blue-green): 10 new pod(s) beside the 10 old, 10 extra pod(s) (1 CPU, 1280Mi extra requests)",
        ));
}

#[test]
fn offline_json_has_every_option() {
    let output = offline()
        .args(["plan", "--replicas", "10", "--canary", "5%", "-o", "json"])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan = json_of(&output.stdout);
    assert_eq!(plan["replicas"], 10);
    assert_eq!(plan["target"], "5%");
    assert_eq!(plan["deployment"], Value::Null);
    let surge = &plan["modes"][0];
    assert_eq!(surge["mode"], "surge");
    assert_eq!(surge["options"][0]["canaryPods"], 1);
    assert_eq!(surge["options"][0]["chosen"], true);
    assert_eq!(surge["options"][0]["extraPods"], 1);
    assert_eq!(surge["options"][0]["capacity"]["status"], "notChecked");
    assert_eq!(
        surge["exact"],
        json!({"replicas": 19, "stablePods": 19, "canaryPods": 1})
    );
    let replace = &plan["modes"][1];
    assert_eq!(replace["options"][0]["trafficSharePercent"], 10.0);
    assert_eq!(
        replace["exact"],
        json!({"replicas": 20, "stablePods": 19, "canaryPods": 1})
    );
}

#[test]
fn offline_explain_walks_the_native_rollout() {
    offline()
        .args([
            "plan",
            "--replicas",
            "3",
            "--canary",
            "1",
            "--explain",
            "--max-surge",
            "1",
            "--max-unavailable",
            "0",
        ])
        .assert()
        .success()
        .stdout(contains(
            "maxSurge 1 (= 1 pods), maxUnavailable 0 (= 0 pods)",
        ))
        .stdout(contains("<- the canary wanted"))
        .stdout(contains("kubectl rollout pause deployment/DEPLOYMENT"))
        .stdout(contains(r#""maxSurge":1,"maxUnavailable":0"#));
    let output = offline()
        .args([
            "plan",
            "--replicas",
            "10",
            "--canary",
            "1",
            "--explain",
            "-o",
            "json",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let view = json_of(&output.stdout);
    assert_eq!(
        view["fenceposts"],
        json!({"maxSurge": 3, "maxUnavailable": 2})
    );
    assert_eq!(view["nativeRestsAtCanary"], false);
    let native = view["native"].as_array().expect("native states");
    assert_eq!(
        (native[3]["oldPods"].clone(), native[3]["newPods"].clone()),
        (json!(8), json!(5))
    );
    assert_eq!(native[3]["pause"], "rests");
    assert_eq!(view["steps"][1]["states"], json!([[10, 0], [10, 1]]));
}

#[test]
fn offline_refusals_are_clear() {
    // A canary size of 0 is a usage error.
    offline()
        .args(["plan", "--replicas", "10", "--canary", "0"])
        .assert()
        .code(USAGE)
        .stderr(contains("at least 1 pod"));
    // maxSurge 0 with maxUnavailable 0 is what the API server refuses.
    offline()
        .args([
            "plan",
            "--replicas",
            "3",
            "--explain",
            "--max-surge",
            "0",
            "--max-unavailable",
            "0",
        ])
        .assert()
        .code(REFUSED)
        .stderr(contains("may not be 0 when `maxSurge` is 0"));
    // Replace mode with one replica leaves no stable pod; the plan says so for that mode.
    offline()
        .args(["plan", "--replicas", "1", "--canary", "1"])
        .assert()
        .success()
        .stdout(contains("at least one stable pod"));
    offline()
        .args(["plan", "--replicas", "1", "--explain", "--mode", "replace"])
        .assert()
        .code(REFUSED)
        .stderr(contains("at least one stable pod"));
    // Neither a Deployment nor --replicas.
    offline().args(["plan"]).assert().code(USAGE);
}

fn with_requests(mut deployment: Deployment, cpu: &str, memory: &str) -> Deployment {
    let spec = deployment.spec.as_mut().expect("spec");
    let pod = spec.template.spec.as_mut().expect("pod spec");
    pod.containers[0].resources = Some(
        serde_json::from_value(json!({"requests": {"cpu": cpu, "memory": memory}}))
            .expect("requirements"),
    );
    deployment
}

#[tokio::test]
async fn live_plan_reads_requests_and_checks_capacity() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "plan").await;
    let small = with_requests(web_deployment("web", 2, "nginx:1.14", None), "10m", "16Mi");
    create_settled(&env, &ns.name, &small).await;
    let out = canary(
        &env,
        &ns.name,
        &["plan", "deploy/web", "--canary", "1", "-o", "json"],
    )
    .await;
    assert_exit(&out, 0, "plan deploy/web");
    let plan = json_of(&out.stdout);
    assert_eq!(plan["deployment"], "web");
    assert_eq!(plan["namespace"], ns.name.as_str());
    assert_eq!(plan["replicas"], 2);
    assert_eq!(
        plan["podRequests"],
        json!({"cpuMillis": 10, "memoryBytes": 16 << 20})
    );
    let surge = &plan["modes"][0]["options"][0];
    assert_eq!(surge["canaryPods"], 1);
    assert_eq!(
        surge["capacity"],
        json!({"status": "fits", "extraPods": 1}),
        "{}",
        text(&out)
    );
    assert_eq!(
        plan["modes"][1]["options"][0]["capacity"]["status"],
        "noExtraPods"
    );

    // Pods asking for more CPU than any node has: surge pods cannot fit anywhere. Its pods
    // stay Pending, which does not matter: the plan reads the template.
    let huge = with_requests(web_deployment("huge", 2, "nginx:1.14", None), "64", "1Gi");
    let deployments: Api<Deployment> = Api::namespaced(env.client().await, &ns.name);
    deployments
        .create(&PostParams::default(), &huge)
        .await
        .expect("create deploy/huge");
    let out = canary(&env, &ns.name, &["plan", "deploy/huge", "--canary", "1"]).await;
    assert_exit(&out, 0, "plan deploy/huge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 of 1 fit: autoscaler must add nodes"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("the cluster autoscaler would have to add nodes (a cost)"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("Replace mode needs no extra pods"),
        "{}",
        text(&out)
    );

    // The Deployment's own strategy drives --explain.
    let out = canary(
        &env,
        &ns.name,
        &["plan", "deploy/web", "--explain", "-o", "json"],
    )
    .await;
    assert_exit(&out, 0, "plan --explain");
    let view = json_of(&out.stdout);
    assert_eq!(view["maxSurge"], "25%");
    assert_eq!(
        view["fenceposts"],
        json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    let patch = view["steps"][1]["kubectl"][1].as_str().expect("a command");
    assert!(
        patch.contains(r#"{"name":"nginx","image":"NEW_IMAGE"}"#),
        "{patch}"
    );
    assert!(
        view["steps"][2]["kubectl"][0]
            .as_str()
            .expect("a command")
            .contains("-l app=web")
    );

    let out = canary(&env, &ns.name, &["plan", "deploy/missing", "--canary", "1"]).await;
    assert_exit(&out, NOT_FOUND, "plan deploy/missing");
}

#[tokio::test]
async fn live_plan_without_node_access_says_the_capacity_check_was_skipped() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "plan-view", 3).await;
    let restricted = env.restricted_kubeconfig.clone();
    let namespace = ns.name.clone();
    let out = tokio::task::spawn_blocking(move || {
        env.run_as(
            &restricted,
            BIN,
            &[
                "-n",
                &namespace,
                "plan",
                "deploy/web",
                "--canary",
                "1",
                "-o",
                "json",
            ],
            &[],
        )
    })
    .await
    .expect("the CLI runs");
    assert_exit(&out, 0, "plan as a view-only user");
    let plan = json_of(&out.stdout);
    let capacity = &plan["modes"][0]["options"][0]["capacity"];
    assert_eq!(capacity["status"], "notChecked", "{}", text(&out));
    assert!(
        capacity["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("forbidden"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn live_plan_during_a_canary_uses_the_recorded_strategy() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "plan-running", 4).await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &["--no-wait"], "start").await;
    // The live strategy is now the brake (maxSurge 1, maxUnavailable 0); the plan must use
    // the Deployment's own 25%/25% from the record.
    let out = canary(
        &env,
        &ns.name,
        &["plan", "deploy/web", "--explain", "-o", "json"],
    )
    .await;
    assert_exit(&out, 0, "plan --explain during a canary");
    let view = json_of(&out.stdout);
    assert_eq!(view["maxSurge"], "25%", "{}", text(&out));
    assert_eq!(view["maxUnavailable"], "25%", "{}", text(&out));
    assert!(
        view["summary"][0]
            .as_str()
            .unwrap_or_default()
            .contains("A canary is running on deploy/web"),
        "{}",
        text(&out)
    );
    let promote = view["steps"][4]["kubectl"][0].as_str().unwrap_or_default();
    assert!(promote.contains(r#""minReadySeconds":0"#), "{promote}");
}
