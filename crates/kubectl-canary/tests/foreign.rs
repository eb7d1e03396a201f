//! Foreign changes during a canary, against the real controllers of the test environment:
//! for each, the outcome (exit code and message), the Deployment's spec, its `Available`
//! condition sampled by a watch over the whole test, the pods on each side and the record.
//! Principle under test: whatever anyone else does, kubectl-canary never leaves a Deployment
//! less available than it found it, never fights another actor, and says what happened.

mod common;

/// The documented exit codes these tests expect (src/exit_code.rs, docs/usage.md).
mod exit_code {
    pub const REFUSED: i32 = 4;
    pub const STUCK: i32 = 9;
    pub const CANARY_UNHEALTHY: i32 = 10;
    pub const REVERTED_BY_OTHERS: i32 = 13;
    pub const REPLACED_BY_OTHERS: i32 = 14;
    pub const RECREATED: i32 = 16;
    pub const RECORD_LOST: i32 = 17;
    pub const SUPERSEDED: i32 = 18;
}

use std::time::{Duration, Instant};

use canary_core::rollout_math::{CanaryMode, CanarySize, resolve_canary};
use canary_testkit::actors::{AvailabilitySampler, GitOpsLoop};
use canary_testkit::foreign::ForeignAction;
use canary_testkit::reads;
use canary_testkit::scenario::{web_manifest, web_namespace_with_spec};
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, spec_of, wait_for, wait_settled,
};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const IMAGE_PATH: &str = ".template.spec.containers[0].image";

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `status -o json`, parsed, after asserting exit 0.
async fn status_json(env: &TestEnv, namespace: &str) -> Value {
    let out = canary(env, namespace, &["status", "deploy/web", "-o", "json"]).await;
    assert_exit(&out, 0, "status");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status json: {e}"))
}

/// Waits until status classifies the foreign change as `change`.
async fn wait_status_foreign(env: &TestEnv, namespace: &str, change: &str) -> Value {
    wait_for(
        env,
        &format!("status to report {change}"),
        Duration::from_secs(30),
        || async {
            let status = status_json(env, namespace).await;
            (status["foreign"]["change"] == change).then_some(status)
        },
    )
    .await
}

async fn kubectl_ok(env: &TestEnv, args: &[&str]) {
    let out = kubectl(env, args).await;
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
}

/// Pods (not terminating) of `web` by image.
async fn pods_by_image(env: &TestEnv, namespace: &str) -> Vec<(String, usize)> {
    let counts = reads::pods_by_image(&env.client().await, namespace, "app=web").await;
    counts.into_iter().collect()
}

/// Someone puts the stable template back while the canary is held (a GitOps self-heal of
/// the old manifest): the Deployment stays Available (no brake while held), the canary is
/// scaled away by the controller, status names what happened and proposes no canary, and
/// the next mutating command closes the canary with the Deployment's own settings back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_template_put_back_while_held() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-revert-held", 4).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    let gitops = GitOpsLoop::start(
        &env,
        &ns.name,
        &web_manifest(4, "nginx:1.14"),
        Duration::from_secs(2),
        3,
    );
    let status = wait_status_foreign(&env, &ns.name, "revertedToStable").await;
    let steps = status["nextSteps"].to_string();
    assert!(steps.contains("abort"), "{steps}");
    assert!(
        !steps.contains("--canary") && !steps.contains("promote"),
        "{steps}"
    );
    // Paused, with the stable side saturated, the controller scales the canary away by itself.
    wait_for(
        &env,
        "the canary scaled away",
        Duration::from_secs(30),
        || async {
            (pods_by_image(&env, &ns.name).await == vec![("nginx:1.14".to_string(), 4)])
                .then_some(())
        },
    )
    .await;
    assert!(gitops.stop() >= 1, "the GitOps stand-in applied");
    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--full"]).await;
    assert_exit(
        &out,
        exit_code::REVERTED_BY_OTHERS,
        "promote --full after a revert",
    );
    let said = output_text(&out);
    assert!(said.contains("put the stable pod template back"), "{said}");
    assert!(said.contains("stepped aside"), "{said}");
    assert!(!record_exists(&env, &ns.name, "web").await, "record closed");
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    sampler.assert_never_unavailable("revert while held").await;
}

/// The same revert, then `abort`: the stable version is what an abort wants, so it just
/// finishes (exit 0) with the Deployment's own settings back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_the_stable_template_came_back_finishes_normally() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-revert-abort", 3).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    kubectl_ok(
        &env,
        &[
            "-n",
            &ns.name,
            "set",
            "image",
            "deploy/web",
            "nginx=nginx:1.14",
        ],
    )
    .await;
    wait_status_foreign(&env, &ns.name, "revertedToStable").await;
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "abort after a revert");
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    sampler.assert_never_unavailable("revert, then abort").await;
}

/// The GitOps stand-in puts the stable template back while `start` waits for its canary
/// pods to become Ready: start notices within about a second, takes its brake off, closes
/// the canary and exits 13; the Deployment never stops being Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_self_heal_during_start() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-revert-start", 4).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    // Canary pods Ready only after 30 s: start is still waiting when Git is re-applied.
    let started = Instant::now();
    let start = {
        let env = env.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            canary(
                &env,
                &ns,
                &[
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15__ready-after-30s",
                    "--canary",
                    "1",
                    "--timeout",
                    "60s",
                ],
            )
            .await
        })
    };
    wait_for(&env, "the canary pod", Duration::from_secs(30), || async {
        pods_by_image(&env, &ns.name)
            .await
            .iter()
            .any(|(image, _)| image.starts_with("nginx:1.15"))
            .then_some(())
    })
    .await;
    let gitops = GitOpsLoop::start(
        &env,
        &ns.name,
        &web_manifest(4, "nginx:1.14"),
        Duration::from_secs(2),
        3,
    );
    let out = start.await.expect("start runs");
    let took = started.elapsed();
    gitops.stop();
    assert_exit(
        &out,
        exit_code::REVERTED_BY_OTHERS,
        "start under a GitOps self-heal",
    );
    assert!(took < Duration::from_secs(25), "noticed in {took:?}");
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_eq!(
        pods_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 4)]
    );
    sampler
        .assert_never_unavailable("self-heal during start")
        .await;
}

/// Someone sets a third version while the canary is held: status names it; abort leaves
/// their template, puts the Deployment's own settings back (so their version rolls out
/// normally), closes the canary and exits 14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_version_set_while_held() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-replaced", 4).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    ForeignAction::OtherVersion
        .apply(&env, &ns.name, "nginx:1.14", 4)
        .await;
    let status = wait_status_foreign(&env, &ns.name, "replacedByOtherVersion").await;
    assert!(
        status["pending"]
            .as_str()
            .unwrap_or_default()
            .contains("nginx=nginx:1.16"),
        "{status}"
    );
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(
        &out,
        exit_code::REPLACED_BY_OTHERS,
        "abort over another version",
    );
    assert!(output_text(&out).contains("nginx=nginx:1.16"));
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(
        &before,
        &spec_of(&env, &ns.name, "web").await,
        &[IMAGE_PATH],
    );
    assert_eq!(
        pods_by_image(&env, &ns.name).await,
        vec![("nginx:1.16".to_string(), 4)]
    );
    sampler.assert_never_unavailable("another version").await;
}

/// A canary whose pods never become Ready, so `promote --full` keeps waiting.
async fn waiting_promotion(
    env: &TestEnv,
    prefix: &str,
) -> (
    TestNamespace,
    Value,
    tokio::task::JoinHandle<(std::process::Output, Duration)>,
) {
    let (ns, before) = web_namespace_with_spec(env, prefix, 3).await;
    start_canary(
        env,
        &ns.name,
        "nginx:1.15__never-ready",
        "1",
        &["--no-wait"],
        "start",
    )
    .await;
    let promote = {
        let env = env.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let out = canary(
                &env,
                &ns,
                &["promote", "deploy/web", "--full", "--timeout", "90s"],
            )
            .await;
            (out, started.elapsed())
        })
    };
    // The promotion is under way once the record says so.
    wait_for(
        env,
        "promote --full to record its phase",
        Duration::from_secs(30),
        || async {
            let api: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
            let cm = api.get_opt("web.kubectl-canary").await.ok()??;
            cm.data?
                .get("record.json")?
                .contains("promotingFull")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (ns, before, promote)
}

/// A second run (`abort`) takes over while `promote --full` waits: the promotion stops at
/// once with exit 18, touching nothing more, and the abort finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_supersedes_a_waiting_promotion() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before, promote) = waiting_promotion(&env, "fx-superseded").await;
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "abort");
    let (promoted, took) = promote.await.expect("promote runs");
    assert_exit(&promoted, exit_code::SUPERSEDED, "the superseded promote");
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    assert!(
        output_text(&promoted).contains("another kubectl-canary run took over"),
        "{}",
        text(&promoted)
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// The GitOps stand-in puts the stable template back while `promote --full` waits (the
/// Deployment's own settings already back): the promotion does not apply the canary again
/// over it; it closes the canary and exits 13, and the stable version stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_template_put_back_while_a_promotion_waits() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before, promote) = waiting_promotion(&env, "fx-revert-promote").await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    let gitops = GitOpsLoop::start(
        &env,
        &ns.name,
        &web_manifest(3, "nginx:1.14"),
        Duration::from_secs(2),
        2,
    );
    let (out, took) = promote.await.expect("promote runs");
    gitops.stop();
    assert_exit(
        &out,
        exit_code::REVERTED_BY_OTHERS,
        "promote --full under a revert",
    );
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_eq!(
        pods_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 3)]
    );
    sampler
        .assert_never_unavailable("revert during promote --full")
        .await;
}

/// The record is deleted while `promote --full` waits: the run stops with exit 17 and
/// changes nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_deleted_while_a_promotion_waits() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before, promote) = waiting_promotion(&env, "fx-record-lost").await;
    let during = spec_of(&env, &ns.name, "web").await;
    ForeignAction::DeleteRecord
        .apply(&env, &ns.name, "nginx:1.14", 3)
        .await;
    let (out, took) = promote.await.expect("promote runs");
    assert_exit(&out, exit_code::RECORD_LOST, "promote without its record");
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    assert!(output_text(&out).contains("record"), "{}", text(&out));
    assert_spec_equal_except(&during, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// The Deployment is deleted and created again while `promote --full` waits: the run
/// stops with exit 16 and never touches the new Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_recreated_while_a_promotion_waits() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before, promote) = waiting_promotion(&env, "fx-recreated").await;
    ForeignAction::Recreate
        .apply(&env, &ns.name, "nginx:1.14", 3)
        .await;
    let (out, took) = promote.await.expect("promote runs");
    assert_exit(
        &out,
        exit_code::RECREATED,
        "promote of a re-created Deployment",
    );
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    let now = wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    let spec = now.spec.expect("spec");
    assert_eq!(spec.paused, None, "the new Deployment is untouched");
    assert_eq!(spec.min_ready_seconds, None);
    assert_eq!(
        pods_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 3)]
    );
}

/// The canary's record, parsed.
async fn record_json(env: &TestEnv, namespace: &str) -> Value {
    let record = reads::record_json(&env.client().await, namespace, "web").await;
    record.expect("the record")
}

/// `kubectl scale` while held: the controller spreads it over both sides (paused); status
/// names it; the next command follows it: an absolute canary of 1 stays 1 while the record
/// takes the new replica count, and the promotion then holds exactly what it asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaled_while_held_is_followed_by_the_next_command() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-rescaled", 4).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    ForeignAction::Rescale(10)
        .apply(&env, &ns.name, "nginx:1.14", 4)
        .await;
    wait_status_foreign(&env, &ns.name, "rescaled").await;
    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "2"]).await;
    assert_exit(&out, 0, "promote --canary 2 after a rescale");
    assert!(
        output_text(&out).contains("spec.replicas") || output_text(&out).contains("holding"),
        "{}",
        text(&out)
    );
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![
            ("nginx:1.14".to_string(), 10),
            ("nginx:1.15".to_string(), 2)
        ],
        "exactly 10 stable and 2 canary pods"
    );
    let record = record_json(&env, &ns.name).await;
    assert_eq!(record["replicas"], 10, "{record}");
    assert_eq!(record["phase"], json!({"name": "holding", "pods": 2}));
    assert!(
        record["history"]
            .to_string()
            .contains("spec.replicas changed from 4 to 10"),
        "{record}"
    );
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort after a rescale",
    );
    // The scale-up itself is Available=False until the new pods are Ready (the canary's
    // maxUnavailable=0); the brake is off while held, so nothing keeps it False.
    sampler
        .assert_unavailable_at_most("rescale while held", Duration::from_secs(10))
        .await;
}

/// `kubectl scale` while `start` waits for its canary pods: a share stays a share. A 25%
/// traffic share is 1 canary pod beside 4; at 8 replicas start holds the share's pods at 8
/// (resolved as start resolves it), with 8 stable, and the record follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaled_while_starting_keeps_the_share() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-rescaled-start", 4).await;
    let start = {
        let env = env.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            canary(
                &env,
                &ns,
                &[
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15__ready-after-15s",
                    "--canary",
                    "25%",
                    "--timeout",
                    "90s",
                ],
            )
            .await
        })
    };
    wait_for(&env, "the canary pod", Duration::from_secs(30), || async {
        pods_by_image(&env, &ns.name)
            .await
            .iter()
            .any(|(image, _)| image.starts_with("nginx:1.15"))
            .then_some(())
    })
    .await;
    ForeignAction::Rescale(8)
        .apply(&env, &ns.name, "nginx:1.14", 4)
        .await;
    let out = start.await.expect("start runs");
    assert_exit(&out, 0, "start under a rescale");
    let share = resolve_canary(CanarySize::Percent(25.0), 8, CanaryMode::Surge)
        .expect("25% of 8")
        .pods;
    assert_eq!(share, 3, "k/(8+k) nearest 25%");
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![
            ("nginx:1.14".to_string(), 8),
            ("nginx:1.15__ready-after-15s".to_string(), share)
        ],
        "25% at 8 replicas: exactly 8 stable and {share} canary pods\n{}",
        text(&out)
    );
    let record = record_json(&env, &ns.name).await;
    assert_eq!(record["replicas"], 8, "{record}");
    assert_eq!(record["requestedSize"], "25%", "{record}");
    assert_eq!(record["phase"], json!({"name": "holding", "pods": share}));
}

/// A ResourceQuota leaves no room for the surge pod: start reports the ReplicaSet's
/// FailedCreate with the API server's message within seconds (exit 10), not at its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_blocks_the_canary_pod() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-quota", 3).await;
    kubectl_ok(
        &env,
        &["-n", &ns.name, "create", "quota", "pods", "--hard=pods=3"],
    )
    .await;
    let started = Instant::now();
    let out = start_release(&env, &ns.name, &["--canary", "1", "--timeout", "120s"]).await;
    let took = started.elapsed();
    assert_exit(
        &out,
        exit_code::CANARY_UNHEALTHY,
        "start under a full quota",
    );
    let said = output_text(&out);
    assert!(said.contains("FailedCreate"), "{said}");
    assert!(said.contains("exceeded quota"), "{said}");
    assert!(took < Duration::from_secs(30), "reported after {took:?}");
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
}

/// A finalizer keeps a canary pod terminating: abort still releases the Deployment once
/// the stable template and settings are back and the canary ReplicaSet is at 0, and warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_pod_held_by_a_finalizer_does_not_hold_abort() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-finalizer", 3).await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    let pods: Api<Pod> = Api::namespaced(env.client().await, &ns.name);
    let canary_pod = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .find(|p| {
            p.spec.as_ref().and_then(|s| s.containers[0].image.clone()) == Some("nginx:1.15".into())
        })
        .expect("a canary pod")
        .name_any();
    pods.patch(
        &canary_pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["kubectl-canary.test/hold"]}})),
    )
    .await
    .expect("add a finalizer");
    let out = canary(&env, &ns.name, &["abort", "deploy/web", "--timeout", "60s"]).await;
    let release = pods
        .patch(
            &canary_pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    assert_exit(&out, 0, "abort with a canary pod held by a finalizer");
    release.expect("remove the finalizer");
    let said = output_text(&out);
    assert!(said.contains("still terminating"), "{said}");
    assert!(said.contains("kubectl-canary.test/hold"), "{said}");
    assert!(!record_exists(&env, &ns.name, "web").await);
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// A MutatingAdmissionPolicy bound to the test's namespace only.
async fn admission_policy(env: &TestEnv, namespace: &str, condition: &str, mutation: &str) {
    let name = format!("fx-{namespace}");
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["deployments"]
            }]},
            "matchConditions": [{"name": "when", "expression": condition}],
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": mutation}}]
        }
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        }
    });
    for object in [policy, binding] {
        let path =
            std::env::temp_dir().join(format!("{name}-{}.json", object["kind"].as_str().unwrap()));
        std::fs::write(&path, object.to_string()).expect("write");
        kubectl_ok(env, &["apply", "-f", path.to_str().unwrap()]).await;
        let _ = std::fs::remove_file(path);
    }
    // Policies take effect once the API server has loaded them: probe with a dry run.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn delete_admission_policy(env: &TestEnv, namespace: &str) {
    let name = format!("fx-{namespace}");
    let _ = kubectl(
        env,
        &[
            "delete",
            "mutatingadmissionpolicybinding",
            &name,
            "--ignore-not-found",
        ],
    )
    .await;
    let _ = kubectl(
        env,
        &[
            "delete",
            "mutatingadmissionpolicy",
            &name,
            "--ignore-not-found",
        ],
    )
    .await;
}

/// A policy that pins an annotation into the pod template whenever the image changes: the
/// canary's template is what the API server stored, recorded as such; nothing is taken for
/// someone else's change, and the promotion finishes with the admitted template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_that_changes_the_canary_template() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-admitted", 3).await;
    admission_policy(
        &env,
        &ns.name,
        "object.spec.template.spec.containers[0].image != oldObject.spec.template.spec.containers[0].image",
        "Object{spec: Object.spec{template: Object.spec.template{metadata: Object.spec.template.metadata{annotations: {\"admission.example/pinned\": \"yes\"}}}}}",
    )
    .await;
    let out = start_release(&env, &ns.name, &["--canary", "1"]).await;
    let promoted = async {
        assert_exit(&out, 0, "start under a mutating policy");
        let record = record_json(&env, &ns.name).await;
        assert_eq!(
            record["admittedTargetTemplate"]["metadata"]["annotations"]["admission.example/pinned"],
            "yes",
            "{record}"
        );
        let status = status_json(&env, &ns.name).await;
        assert!(status["foreign"].is_null(), "{status}");
        let out = canary(&env, &ns.name, &["promote", "deploy/web", "--full"]).await;
        assert_exit(&out, 0, "promote --full");
        let spec = spec_of(&env, &ns.name, "web").await;
        assert_eq!(
            spec["template"]["metadata"]["annotations"]["admission.example/pinned"],
            "yes"
        );
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["image"],
            "nginx:1.15"
        );
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(promoted)).await;
    delete_admission_policy(&env, &ns.name).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A policy that rewrites minReadySeconds on every update: the brake does not stick, the
/// write is sent once more, then start stops with exit 9 and a message naming what was
/// sent and stored; no update loop runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_that_rewrites_the_brake() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-nostick", 3).await;
    admission_policy(
        &env,
        &ns.name,
        "true",
        "Object{spec: Object.spec{minReadySeconds: 5}}",
    )
    .await;
    let started = Instant::now();
    let out = start_release(&env, &ns.name, &["--canary", "1", "--timeout", "60s"]).await;
    let took = started.elapsed();
    delete_admission_policy(&env, &ns.name).await;
    // The API server drops a deleted policy a moment later: wait until a dry run keeps
    // minReadySeconds as sent.
    wait_for(
        &env,
        "the policy to stop applying",
        Duration::from_secs(30),
        || async {
            let out = kubectl(
                &env,
                &[
                    "-n",
                    &ns.name,
                    "patch",
                    "deploy/web",
                    "--dry-run=server",
                    "-p",
                    r#"{"spec":{"minReadySeconds":7}}"#,
                    "-o",
                    "jsonpath={.spec.minReadySeconds}",
                ],
            )
            .await;
            (String::from_utf8_lossy(&out.stdout) == "7").then_some(())
        },
    )
    .await;
    assert_exit(
        &out,
        exit_code::STUCK,
        "start when the brake does not stick",
    );
    let said = output_text(&out);
    assert!(said.contains("did not keep the rollout settings"), "{said}");
    assert!(said.contains("\"minReadySeconds\":5"), "{said}");
    assert!(took < Duration::from_secs(30), "stopped after {took:?}");
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
}

/// The real horizontal-pod-autoscaler controller (testenv runs it) raises replicas from 4
/// to 6 (its minReplicas raised, no metrics needed) while a canary started with
/// `--allow-hpa` is held: the next command follows, the count stays the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaler_rescale_while_held_is_followed() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _before) = web_namespace_with_spec(&env, "fx-hpa", 4).await;
    kubectl_ok(
        &env,
        &[
            "-n",
            &ns.name,
            "autoscale",
            "deploy/web",
            "--min=4",
            "--max=4",
            "--cpu-percent=80",
        ],
    )
    .await;
    let out = start_release(&env, &ns.name, &["--canary", "1"]).await;
    assert_exit(
        &out,
        exit_code::REFUSED,
        "start beside an HPA without --allow-hpa",
    );
    start_canary(
        &env,
        &ns.name,
        "nginx:1.15",
        "1",
        &["--allow-hpa"],
        "start --allow-hpa",
    )
    .await;
    kubectl_ok(
        &env,
        &[
            "-n",
            &ns.name,
            "patch",
            "hpa",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minReplicas":6,"maxReplicas":6}}"#,
        ],
    )
    .await;
    let api: Api<Deployment> = Api::namespaced(env.client().await, &ns.name);
    wait_for(
        &env,
        "the HPA controller to scale deploy/web to 6",
        Duration::from_secs(60),
        || async {
            let d = api.get("web").await.ok()?;
            (d.spec?.replicas == Some(6)).then_some(())
        },
    )
    .await;
    wait_status_foreign(&env, &ns.name, "rescaled").await;
    assert_exit(
        &canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "2"]).await,
        0,
        "promote --canary 2 after the HPA rescaled",
    );
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 6), ("nginx:1.15".to_string(), 2)],
    );
    assert_eq!(record_json(&env, &ns.name).await["replicas"], 6);
    assert_exit(
        &canary(&env, &ns.name, &["promote", "deploy/web", "--full"]).await,
        0,
        "promote --full",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
}

/// The GitOps stand-in puts the stable template back while `start --auto` analyses its
/// first step: the run does not promote (or judge) a canary someone else removed; it closes
/// the canary and exits 13, and the Deployment never stops being Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_template_put_back_between_auto_steps() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "fx-revert-auto", 4).await;
    let sampler = AvailabilitySampler::start(&env, &ns.name, "web").await;
    let auto = {
        let env = env.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            canary(
                &env,
                &ns,
                &[
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15",
                    "--auto",
                    "--steps",
                    "1,2",
                    "--interval",
                    "8s",
                    "--http-check",
                    ":80/",
                    "--http-requests",
                    "20",
                    "--http-rate",
                    "5",
                ],
            )
            .await
        })
    };
    wait_for(
        &env,
        "the first step held",
        Duration::from_secs(30),
        || async {
            let api: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
            let cm = api.get_opt("web.kubectl-canary").await.ok()??;
            cm.data?
                .get("record.json")?
                .contains("holding")
                .then_some(())
        },
    )
    .await;
    let gitops = GitOpsLoop::start(
        &env,
        &ns.name,
        &web_manifest(4, "nginx:1.14"),
        Duration::from_secs(2),
        2,
    );
    let out = auto.await.expect("start --auto runs");
    gitops.stop();
    assert_exit(
        &out,
        exit_code::REVERTED_BY_OTHERS,
        "start --auto under a revert",
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_eq!(
        pods_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 4)]
    );
    sampler
        .assert_never_unavailable("revert between --auto steps")
        .await;
}
