//! Analysis of StatefulSet and DaemonSet canaries through the CLI, on the testenv's real
//! controllers and Prometheus: the sides are the pods of two ControllerRevisions, told
//! apart by `controller-revision-hash` (in every check and in the Prometheus
//! `{{selector}}`), and `start --auto --steps` grows, promotes or rolls back on the
//! verdicts, leaving the workload's spec as the release asked or as it was, field by field.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

mod common;

use std::time::{Duration, Instant};

use canary_testkit::kinds::{
    SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset, live_pods,
    statefulset, workload_state,
};
use canary_testkit::{TestEnv, TestNamespace, differences};
use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::Api;
use serde_json::{Value, json};

/// `analyze`'s and `start --auto`'s exit codes (docs/exit-codes.md).
const CANARY_UNHEALTHY: i32 = 10;
const ROLLED_BACK: i32 = 11;
const INCONCLUSIVE: i32 = 12;

/// StatefulSet `db` of `image` with `replicas` pods that Prometheus scrapes.
fn scraped_statefulset(replicas: i32, image: &str) -> StatefulSet {
    let mut manifest =
        serde_json::to_value(statefulset("db", replicas, image, "OrderedReady", true))
            .expect("a StatefulSet as JSON");
    manifest["spec"]["template"]["metadata"]["annotations"] =
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "80"});
    serde_json::from_value(manifest).expect("a valid StatefulSet")
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// The pods of `selector` by their `controller-revision-hash`.
async fn revisions(client: &kube::Client, ns: &str, selector: &str) -> Vec<String> {
    let mut hashes: Vec<String> = live_pods(client, ns, selector)
        .await
        .iter()
        .filter_map(|p| {
            p.metadata
                .labels
                .as_ref()?
                .get("controller-revision-hash")
                .cloned()
        })
        .collect();
    hashes.sort();
    hashes
}

/// Two passing steps of a StatefulSet canary: grown from 1 pod to 50%, then promoted; the
/// verdicts compared the canary's revision with the stable one (their pods counted apart),
/// and the spec differs from before by the image alone, the record gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_passes_its_steps_and_is_promoted() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-auto-sts").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 4, "db:v1", "OrderedReady", true),
    )
    .await;
    let before = workload_state(&api, "db").await;

    let out = canary(
        &env,
        ns,
        &[
            "start",
            "sts/db",
            "db=db:v2",
            "--auto",
            "--steps",
            "1,50%",
            "--interval",
            "2s",
            "-o",
            "json",
        ],
    )
    .await;
    assert_exit(&out, 0, "every step passes");
    let run = json_of(&out);
    assert_eq!(run["kind"], "AutoRun", "{run}");
    assert_eq!(run["outcome"], "promoted", "{run}");
    assert_eq!(run["steps"], json!([1, 2]), "{run}");
    let verdicts = run["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2, "{run}");
    // Each verdict counted the canary's pods apart from the stable ones: 1 against 3, then
    // 2 against 2.
    for (verdict, (canary_pods, stable_pods)) in verdicts.iter().zip([(1.0, 3.0), (2.0, 2.0)]) {
        assert_eq!(verdict["decision"], "pass", "{verdict}");
        let pods = verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["measurements"].as_array().unwrap())
            .find(|m| m["name"] == "pods")
            .unwrap_or_else(|| panic!("a pod count in {verdict}"));
        assert_eq!(
            (pods["canary"].as_f64(), pods["stable"].as_f64()),
            (Some(canary_pods), Some(stable_pods)),
            "{verdict}"
        );
    }
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        [".spec.template.spec.containers[0].image: \"db:v1\" -> \"db:v2\""]
    );
    let hashes = revisions(&client, ns, "app=db").await;
    assert_eq!(hashes.len(), 4);
    assert!(
        hashes.iter().all(|h| h == &hashes[0]),
        "every pod on one revision: {hashes:?}"
    );
}

/// A crash-looping DaemonSet canary on one node fails its first step's pod-health check and
/// is rolled back: exit 11, every pod on the stable revision again, the spec and
/// annotations as before, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_daemonset_canary_fails_its_step_and_is_rolled_back() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-auto-ds").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 3).await;
    let before = workload_state(&api, "agent").await;
    let stable = revisions(&client, ns, "app=agent").await;

    let out = canary(
        &env,
        ns,
        &[
            "start",
            "ds/agent",
            "agent=agent:v2__crashloop",
            "--auto",
            "--interval",
            "30s",
            "-o",
            "json",
        ],
    )
    .await;
    assert_exit(&out, ROLLED_BACK, "a crash-looping canary");
    let run = json_of(&out);
    assert_eq!(run["outcome"], "rolledBack", "{run}");
    assert_eq!(run["verdicts"][0]["decision"], "fail", "{run}");
    let health = run["verdicts"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pod-health")
        .unwrap_or_else(|| panic!("a pod-health check in {run}"));
    assert_eq!(health["outcome"], "fail", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("1 of 1 canary pods failing"),
        "the one canary pod named failing: {health}"
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "agent").await),
        Vec::<String>::new()
    );
    canary_testkit::wait_until(
        &env,
        "every pod on the stable revision",
        Duration::from_secs(60),
        || {
            let (client, stable) = (client.clone(), stable.clone());
            async move { revisions(&client, ns, "app=agent").await == stable }
        },
    )
    .await;
    nodes.remove_with(&env, &client, "agent").await;
}

/// A Prometheus check written with `{{selector}}` compares the StatefulSet's two revisions
/// by `controller_revision_hash`: a canary 200 ms slower is found significantly slower
/// (asked until the series are long enough to decide; an inconclusive answer asks again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_check_tells_a_statefulsets_revisions_apart() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-prom").await;
    let ns = namespace.name.as_str();
    create_settled_statefulset(&env, &client, ns, &scraped_statefulset(3, "db:v1")).await;
    assert_exit(
        &canary(
            &env,
            ns,
            &[
                "start",
                "sts/db",
                "db=db:v1__latency-200ms",
                "--canary",
                "1",
            ],
        )
        .await,
        0,
        "start",
    );
    let spec = format!(
        "window: 30s\n\
         checks:\n\
         \x20 - name: p50-latency\n\
         \x20   prometheus:\n\
         \x20     url: {url}\n\
         \x20     query: 'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{ {{{{selector}}}} }}[10s])))'\n\
         \x20     range: {{ step: 1s }}\n\
         \x20     tolerance: 0.2\n",
        url = env.prometheus_url
    );
    let file = std::env::temp_dir().join(format!("kinds-prom-{}.yaml", std::process::id()));
    std::fs::write(&file, spec).unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    let out = loop {
        let out = canary(
            &env,
            ns,
            &[
                "analyze",
                "sts/db",
                "--analysis-file",
                file.to_str().unwrap(),
                "--no-pod-health",
            ],
        )
        .await;
        if out.status.code() != Some(INCONCLUSIVE) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    std::fs::remove_file(&file).ok();
    assert_exit(&out, CANARY_UNHEALTHY, "a slower canary revision");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("canary significantly higher"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("controller-revision-hash=db-"),
        "the sides named by revision: {}",
        text(&out)
    );
    assert_exit(&canary(&env, ns, &["abort", "sts/db"]).await, 0, "abort");
}

/// `analyze` of a StatefulSet without a canary says so, exit 3 (not found), and names the
/// workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_without_a_canary_revision_is_not_found() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-analyze-none").await;
    let ns = namespace.name.as_str();
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 2, "db:v1", "OrderedReady", false),
    )
    .await;
    let out = canary(&env, ns, &["analyze", "sts/db"]).await;
    assert_exit(&out, 3, "nothing to analyse");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sts/db has no older revision with pods"),
        "{}",
        text(&out)
    );
}
