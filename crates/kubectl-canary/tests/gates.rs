//! Approval gates of `start --auto --approve-before`: after a passing analysis the run holds
//! the canary until `kubectl canary promote` approves the step (or its timeout aborts it);
//! `status` shows the gate; nothing of the gate is left on the Deployment afterwards.

mod common;

use std::time::Duration;

use canary_testkit::reads::record_json;
use canary_testkit::receiver::{Answer, Receiver};
use canary_testkit::scenario::web_namespace_with_spec;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of, wait_for, wait_settled};
use common::*;

const REFUSED: i32 = 4;

/// The webhook's signing key, given to the CLI in its environment.
const KEY: &str = "a-gate-test-signing-key-0123456789";
const ROLLED_BACK: i32 = 11;

/// The gate the record of deploy/web waits at, once it waits at one.
async fn awaited_gate(env: &TestEnv, ns: &str) -> serde_json::Value {
    let client = env.client().await;
    wait_for(
        env,
        "the run to wait at the approval gate",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            async move {
                record_json(&client, ns, "web")
                    .await
                    .and_then(|record| record.get("gate").cloned())
            }
        },
    )
    .await
}

fn events_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_step_waits_until_promote_approves_it() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "gate-approve", 6).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let hook = format!("webhook+{}", receiver.url("/hook"));
    let args = [
        "start",
        "deploy/web",
        "nginx=nginx:1.15",
        "--auto",
        "--steps",
        "1,3",
        "--interval",
        "2s",
        "--approve-before",
        "full",
        "--notify",
        &hook,
        "-o",
        "json",
    ];
    let run = canary_with(&env, &ns.name, &args, &[("KUBECTL_CANARY_NOTIFY_KEY", KEY)]);
    let approve = async {
        let gate = awaited_gate(&env, &ns.name).await;
        assert_eq!(gate["before"], "full", "{gate}");
        let token = gate["token"].as_str().expect("a token").to_string();
        // The notice says what is awaited, from whom, and how to give it.
        let notice = receiver
            .notice_of("awaitingApproval", Duration::from_secs(20))
            .await;
        let next = notice["nextStep"].as_str().unwrap_or_default();
        assert!(
            next.contains(
                "promoting to 100% waits for an approval by someone allowed to update deploy/web"
            ) && next.contains("`kubectl canary promote deploy/web`")
                && next.contains(&token),
            "{notice}"
        );
        // Held at the last step, not promoted, while it waits.
        assert_eq!(
            replica_sets_by_image(&env, &ns.name).await,
            vec![("nginx:1.14".to_string(), 6), ("nginx:1.15".to_string(), 3)]
        );
        let status = canary(&env, &ns.name, &["status", "deploy/web", "-o", "json"]).await;
        let status: serde_json::Value =
            serde_json::from_slice(&status.stdout).expect("status as JSON");
        assert_eq!(status["approval"]["state"], "waiting", "{status}");
        assert_eq!(status["approval"]["before"], "promoting to 100%");
        let first = status["nextSteps"][0].as_str().unwrap_or_default();
        assert!(
            first.starts_with("kubectl canary promote deploy/web   # approve"),
            "{status}"
        );
        // A size other than the awaited step is refused, and writes nothing.
        let written = deployment_json(&env, &ns.name, "web").await;
        let other = canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "4"]).await;
        assert_exit(
            &other,
            REFUSED,
            "promote --canary 4 at the gate before full",
        );
        assert!(
            text(&other).contains("waits for an approval before promoting to 100%"),
            "{}",
            text(&other)
        );
        assert_eq!(deployment_json(&env, &ns.name, "web").await, written);
        // Still waiting: the refusal approved nothing.
        assert_eq!(
            record_json(&env.client().await, &ns.name, "web")
                .await
                .map(|r| r["gate"]["token"].clone()),
            Some(serde_json::Value::String(token.clone()))
        );
        let approved = canary(&env, &ns.name, &["promote", "deploy/web"]).await;
        assert_exit(&approved, 0, "a bare promote at the gate");
        assert!(
            text(&approved).contains("approved promoting to 100% of deploy/web"),
            "{}",
            text(&approved)
        );
    };
    let (out, ()) = futures::join!(run, approve);
    assert_exit(&out, 0, "the gated run, approved");
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the outcome");
    assert_eq!(outcome["outcome"], "promoted");
    assert_eq!(outcome["steps"], serde_json::json!([1, 3]));
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
    // The approval and the seal are the tool's: both gone.
    let annotations = annotations_of(&env, &ns.name, "web").await;
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("kubectl-canary.io/")),
        "{annotations:?}"
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    let reasons = kubectl(
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
    let reasons = events_of(&reasons);
    for reason in ["CanaryAwaitingApproval", "CanaryApproved", "CanaryPromoted"] {
        assert!(reasons.contains(reason), "event {reason} in {reasons}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_does_not_come_in_time_rolls_the_canary_back() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "gate-timeout", 6).await;
    let out = start_release(
        &env,
        &ns.name,
        &[
            "--auto",
            "--interval",
            "2s",
            "--approve-before",
            "full",
            "--approval-timeout",
            "4s",
        ],
    )
    .await;
    assert_exit(&out, ROLLED_BACK, "a gate nobody approved");
    assert!(
        text(&out).contains("nobody approved promoting to 100% in time: rolling back"),
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
    let reasons = kubectl(
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
    assert!(
        events_of(&reasons).contains("CanaryApprovalTimedOut"),
        "{}",
        events_of(&reasons)
    );
}
