//! With no check given, the analysis judges requests at the pod template's own httpGet
//! probes: a canary answering errors on a service whose readiness probe is httpGet is caught
//! (the pod simulator answers 500 at the `errors-<pct>` rate on every path, and its pods are
//! Ready regardless, as a readiness probe on a path that still answers would leave them); a
//! Deployment without such probes gets a verdict that says it did not judge requests.

mod common;

use canary_testkit::{TestEnv, TestNamespace, create_settled, first_container, web_deployment};
use common::*;
use serde_json::json;

const CANARY_UNHEALTHY: i32 = 10;

/// `web` at 3 pods of nginx:1.14 whose container has an httpGet readiness probe on the
/// named port `http`, path /healthz, and an exec liveness probe (not HTTP: left out).
async fn web_with_probes(env: &TestEnv, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::create(env, prefix).await;
    let mut deployment = web_deployment("web", 3, "nginx:1.14", None);
    let container = first_container(&mut deployment);
    container.ports = Some(vec![
        serde_json::from_value(json!({"name": "http", "containerPort": 80})).unwrap(),
    ]);
    container.readiness_probe = Some(
        serde_json::from_value(json!({"httpGet": {"port": "http", "path": "/healthz"}})).unwrap(),
    );
    container.liveness_probe =
        Some(serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap());
    create_settled(env, &ns.name, &deployment).await;
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_errors_is_caught_at_its_probe_path_with_no_check_given() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_with_probes(&env, "probe-checks").await;
    let n = ns.name.as_str();

    // A good canary: the probe's check runs and passes; the verdict judged requests (asked
    // for explicitly here, so that the default log check, which waits for a minute of the
    // new pods' logs, does not hold the verdict).
    assert_exit(
        &canary(&env, n, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let out = canary(
        &env,
        n,
        &[
            "analyze",
            "deploy/web",
            "--http-check",
            "auto",
            "--http-rate",
            "20",
        ],
    )
    .await;
    assert_exit(&out, 0, "analyze a good canary");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("http-probe-80-healthz") && !said.contains("not judged"),
        "{}",
        text(&out)
    );
    assert_exit(&canary(&env, n, &["abort", "deploy/web"]).await, 0, "abort");

    // Half its answers are 500: caught with nothing but the defaults.
    assert_exit(
        &canary(
            &env,
            n,
            &["start", "deploy/web", "nginx=nginx:1.15__errors-50"],
        )
        .await,
        0,
        "start the failing canary",
    );
    let out = canary(&env, n, &["analyze", "deploy/web"]).await;
    assert_exit(&out, CANARY_UNHEALTHY, "analyze a canary answering errors");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("verdict: FAIL") && said.contains("http-probe-80-healthz"),
        "{}",
        text(&out)
    );
    let out = canary(&env, n, &["analyze", "deploy/web", "-o", "json"]).await;
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let probe_check = verdict["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "http-probe-80-healthz")
        .cloned()
        .unwrap_or_default();
    assert_eq!(probe_check["outcome"], "fail", "{}", text(&out));
    assert!(verdict.get("notJudged").is_none(), "{verdict}");
    assert_exit(&canary(&env, n, &["abort", "deploy/web"]).await, 0, "abort");
}

/// Without httpGet probes nothing judges requests, and the verdict says so in text and JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_without_a_request_check_says_so() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "not-judged").await;
    create_settled(
        &env,
        &ns.name,
        &web_deployment("web", 3, "nginx:1.14", None),
    )
    .await;
    let n = ns.name.as_str();
    assert_exit(
        &canary(
            &env,
            n,
            &["start", "deploy/web", "nginx=nginx:1.15__errors-50"],
        )
        .await,
        0,
        "start",
    );
    let out = canary(&env, n, &["analyze", "deploy/web"]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("not judged: requests: no HTTP or Prometheus check ran"),
        "{}",
        text(&out)
    );
    let out = canary(&env, n, &["analyze", "deploy/web", "-o", "json"]).await;
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        verdict["notJudged"]
            .as_str()
            .is_some_and(|n| n.starts_with("requests")),
        "{}",
        text(&out)
    );
    assert_exit(&canary(&env, n, &["abort", "deploy/web"]).await, 0, "abort");
}
