//! `start --auto`: analyse at each step, promote a good release to 100%, roll a bad one
//! back, stay held when the analysis cannot decide; the original spec restored.

mod common;

use std::time::Duration;

use canary_testkit::scenario::web_namespace_with_spec;
use canary_testkit::{TestEnv, TestNamespace, assert_spec_equal_except, spec_of, wait_settled};
use common::*;

const ROLLED_BACK: i32 = 11;
const INCONCLUSIVE: i32 = 12;

/// A namespace with `web` at 6 pods of nginx:1.14, and its spec.
async fn setup(env: &TestEnv, prefix: &str) -> (TestNamespace, serde_json::Value) {
    web_namespace_with_spec(env, prefix, 6).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_is_promoted_step_by_step_to_every_pod() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = setup(&env, "auto-good").await;
    let out = start_release(
        &env,
        &ns.name,
        &[
            "--auto",
            "--steps",
            "1,3",
            "--interval",
            "3s",
            "--http-check",
            ":80/",
            "--http-requests",
            "20",
            "--http-rate",
            "20",
            "-o",
            "json",
        ],
    )
    .await;
    assert_exit(&out, 0, "auto with a good release");
    let outcome: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the outcome as JSON");
    assert_eq!(outcome["outcome"], "promoted");
    assert_eq!(outcome["steps"], serde_json::json!([1, 3]));
    assert_eq!(outcome["verdicts"].as_array().map(Vec::len), Some(2));
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.15".to_string(), 6)]
    );
    assert_spec_equal_except(
        &before,
        &spec_of(&env, &ns.name, "web").await,
        &[".template.spec.containers[0].image"],
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    let events = kubectl(
        &env,
        &[
            "-n",
            &ns.name,
            "get",
            "events",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    )
    .await;
    let reasons = String::from_utf8_lossy(&events.stdout).to_string();
    for reason in ["CanaryStep", "AnalysisPassed", "CanaryPromoted"] {
        assert!(reasons.contains(reason), "event {reason} in {reasons}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_is_rolled_back_and_the_spec_restored() {
    let Some(env) = TestEnv::get() else { return };
    let crashing = async {
        let (ns, before) = setup(&env, "auto-crash").await;
        let out = canary(
            &env,
            &ns.name,
            &[
                "start",
                "deploy/web",
                "nginx=nginx:1.15__crashloop",
                "--auto",
                "--interval",
                "20s",
            ],
        )
        .await;
        assert_exit(&out, ROLLED_BACK, "auto with a crash-looping release");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("critical check failed: pod-health")
                && (stdout.contains("CrashLoopBackOff") || stdout.contains("exited with code 1")),
            "{}",
            text(&out)
        );
        wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
        assert_eq!(
            replica_sets_by_image(&env, &ns.name).await,
            vec![("nginx:1.14".to_string(), 6)]
        );
        assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
        assert!(!record_exists(&env, &ns.name, "web").await);
    };
    let erroring = async {
        let (ns, before) = setup(&env, "auto-500").await;
        let out = canary(
            &env,
            &ns.name,
            &[
                "start",
                "deploy/web",
                "nginx=nginx:1.15__errors-60",
                "--auto",
                "--interval",
                "2s",
                "--http-check",
                ":80/",
                "--http-requests",
                "30",
                "--http-rate",
                "30",
            ],
        )
        .await;
        assert_exit(&out, ROLLED_BACK, "auto with a release answering 500s");
        wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
        assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    };
    futures::join!(crashing, erroring);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecidable_analysis_leaves_the_canary_held() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _) = setup(&env, "auto-undecided").await;
    // Prometheus at an address where nothing listens: inconclusive, never a pass.
    let out = start_release(
        &env,
        &ns.name,
        &[
            "--auto",
            "--interval",
            "1s",
            "--no-pod-health",
            "--prometheus",
            "http://127.0.0.1:9",
            "--query",
            "sum(rate(http_requests_total{ {{selector}} }[1m]))",
            "--on-inconclusive",
            "wait:3s",
        ],
    )
    .await;
    assert_exit(&out, INCONCLUSIVE, "auto with Prometheus unreachable");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stays held and recorded"),
        "{}",
        text(&out)
    );
    assert!(record_exists(&env, &ns.name, "web").await);
    assert!(is_paused(&env, &ns.name, "web").await);
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 6), ("nginx:1.15".to_string(), 1)]
    );
}
