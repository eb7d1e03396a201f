//! Every refusal: a clear message, a documented exit code, and nothing changed.

mod common;

use std::time::Duration;

use canary_testkit::reads::NamespaceVersions;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, create_settled, first_container, spec_of,
    web_deployment,
};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

// The documented exit codes (crates/kubectl-canary/src/exit_code.rs).
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const REFUSED: i32 = 4;
const LOCKED: i32 = 5;
const FORBIDDEN: i32 = 6;
const UNREACHABLE: i32 = 7;
const CANARY_UNHEALTHY: i32 = 10;

/// Runs `start` with `args`, expects `code` and a message containing `needle`, and checks
/// that the Deployment's spec is unchanged, no record was written and no object of the
/// namespace was written at all (every resourceVersion as before: the history ConfigMap,
/// Events, Services included), except by the environment's own controllers (an HPA's
/// status and Events, told apart by `managedFields`: `NamespaceVersions::changes`).
async fn refused(env: &TestEnv, ns: &str, args: &[&str], code: i32, needle: &str) {
    refused_leaving(env, ns, args, code, needle).await;
    assert!(
        !record_exists(env, ns, "web").await,
        "no record after a refusal"
    );
}

/// The same for a Deployment that may carry a canary: its record is left as it was (the
/// unchanged resourceVersions say so), whatever it is.
async fn refused_leaving(env: &TestEnv, ns: &str, args: &[&str], code: i32, needle: &str) {
    let before = spec_of(env, ns, "web").await;
    let client = env.client().await;
    let versions = NamespaceVersions::read(&client, ns).await;
    let out = canary(env, ns, args).await;
    let changes = versions.changes(&NamespaceVersions::read(&client, ns).await);
    assert!(
        changes.is_empty(),
        "`{}` was refused but wrote: {changes:?}\n{}",
        args.join(" "),
        text(&out)
    );
    assert_exit(&out, code, &args.join(" "));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "`{}`: expected '{needle}' in the message\n{}",
        args.join(" "),
        text(&out)
    );
    assert_spec_equal_except(&before, &spec_of(env, ns, "web").await, &[]);
}

/// A refusal of the table: the command's arguments, the exit code, a part of the message.
type Refusal = (&'static [&'static str], i32, &'static str);

/// Arguments malformed whatever the Deployment.
const MALFORMED: &[Refusal] = &[
    (
        &["start", "deploy/web", "nginx=Nginx:1.15"],
        USAGE,
        "is not a valid image reference",
    ),
    (
        &["start", "deploy/web", "nginx:1.15"],
        USAGE,
        "CONTAINER=IMAGE",
    ),
    (
        &["start", "cronjob/web", "nginx=nginx:1.15"],
        USAGE,
        "is not a workload kubectl-canary canaries",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "0"],
        USAGE,
        "at least 1 pod",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "-1"],
        USAGE,
        "at least 1 pod",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--canary",
            "101%",
        ],
        USAGE,
        "greater than 100%",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.15", "--mode", "blue"],
        USAGE,
        "invalid value",
    ),
    // A bare promote is never 100%: it approves an awaited step, and with none the two
    // choices are named.
    (
        &["promote", "deploy/web"],
        USAGE,
        "waits at no approval gate (no canary runs on it)",
    ),
    // Approval gates: only with --auto, and their timeouts readable.
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--approve-before",
            "full",
        ],
        USAGE,
        "--auto",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--approve-before",
            "full",
            "--approval-timeout",
            "soon",
        ],
        USAGE,
        "approval timeout \"soon\"",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--approve-before",
            "full",
            "--approval-timeout",
            "10m",
            "--on-approval-timeout",
            "promote",
        ],
        USAGE,
        "expected `abort` or `wait`",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_arguments_are_usage_errors() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "bad-args", 10).await;
    for &(args, code, needle) in MALFORMED {
        refused(&env, &ns.name, args, code, needle).await;
    }
}

/// Requests that do not fit deploy/web at 10 replicas of nginx:1.14 with no canary.
const UNFIT: &[Refusal] = &[
    (
        &["start", "deploy/web", "app=nginx:1.15"],
        REFUSED,
        "container 'app' is not in the pod template",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.14"],
        REFUSED,
        "already runs nginx=nginx:1.14",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "11"],
        REFUSED,
        "11",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--canary",
            "10",
            "--mode",
            "replace",
        ],
        REFUSED,
        "replace",
    ),
    (
        &["promote", "deploy/web", "--full"],
        NOT_FOUND,
        "no canary is running",
    ),
    (&["abort", "deploy/web"], NOT_FOUND, "no canary is running"),
    // --auto's steps are checked before anything changes.
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--steps",
            "3,2",
        ],
        REFUSED,
        "--steps must grow",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--analysis-file",
            "/nonexistent/analysis.yaml",
        ],
        USAGE,
        "analysis.yaml",
    ),
    // An approval gate names a step of the run, checked before anything changes.
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--steps",
            "1,3",
            "--approve-before",
            "4",
        ],
        USAGE,
        "not one of the steps after the first (3)",
    ),
    (
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--auto",
            "--approve-before",
            "later",
        ],
        USAGE,
        "expected `full`, `every` or one of the step sizes",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_do_not_fit_the_deployment_are_refused() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "bad-state", 10).await;
    let n = ns.name.as_str();
    refused(
        &env,
        n,
        &["start", "deploy/nope", "nginx=nginx:1.15"],
        NOT_FOUND,
        "not found in namespace",
    )
    .await;
    let unique = format!("only-here-{}", std::process::id());
    create_settled(&env, n, &web_deployment(&unique, 1, "nginx:1.14", None)).await;
    let out = canary(
        &env,
        "default",
        &["start", &format!("deploy/{unique}"), "nginx=nginx:1.15"],
    )
    .await;
    assert_exit(&out, NOT_FOUND, "start in the wrong namespace");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("add -n {n}")),
        "{}",
        text(&out)
    );
    for &(args, code, needle) in UNFIT {
        refused(&env, n, args, code, needle).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_in_unsuitable_states_are_refused() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;

    // 1 replica in replace mode: no stable pod would be left.
    let ns1 = web_namespace(&env, "one", 1).await;
    refused(
        &env,
        &ns1.name,
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--mode",
            "replace",
        ],
        REFUSED,
        "replace",
    )
    .await;

    // 0 replicas.
    let ns0 = web_namespace(&env, "zero", 0).await;
    refused(
        &env,
        &ns0.name,
        &["start", "deploy/web", "nginx=nginx:1.15"],
        REFUSED,
        "0 replicas",
    )
    .await;

    // Strategy Recreate.
    let nsr = TestNamespace::create(&env, "recreate").await;
    create_settled(
        &env,
        &nsr.name,
        &web_deployment("web", 3, "nginx:1.14", Some(json!({"type": "Recreate"}))),
    )
    .await;
    refused(
        &env,
        &nsr.name,
        &["start", "deploy/web", "nginx=nginx:1.15"],
        REFUSED,
        "Recreate",
    )
    .await;

    // Paused by someone else.
    let nsp = web_namespace(&env, "paused", 3).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &nsp.name);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    refused(
        &env,
        &nsp.name,
        &["start", "deploy/web", "nginx=nginx:1.15"],
        REFUSED,
        "paused by someone else",
    )
    .await;

    // A rollout in progress: the new version never becomes ready.
    let nsi = web_namespace(&env, "rolling", 3).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &nsi.name);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.15__never-ready"}]}}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    refused(
        &env,
        &nsi.name,
        &["start", "deploy/web", "nginx=nginx:1.16"],
        REFUSED,
        "in the middle of a rollout",
    )
    .await;

    // An HPA targets the Deployment: refused with an explanation, accepted with --allow-hpa.
    let nsh = web_namespace(&env, "hpa", 3).await;
    let hpa: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), &nsh.name);
    hpa.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 6,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    refused(
        &env,
        &nsh.name,
        &["start", "deploy/web", "nginx=nginx:1.15"],
        REFUSED,
        "rescales the stable and canary ReplicaSets proportionally",
    )
    .await;
    let out = canary(
        &env,
        &nsh.name,
        &["start", "deploy/web", "nginx=nginx:1.15", "--allow-hpa"],
    )
    .await;
    assert_exit(&out, 0, "start --allow-hpa");
}

/// Requests that do not fit a held canary of 2 pods beside 4 (6 replicas), with a Service
/// in front: refused, and nothing written (the record, its history, Events, the Service).
const UNFIT_WHILE_HELD: &[Refusal] = &[
    (
        &["promote", "deploy/web", "--canary", "1"],
        REFUSED,
        "a canary only grows",
    ),
    (
        &["promote", "deploy/web", "--canary", "2"],
        REFUSED,
        "already runs 2",
    ),
    (
        &["promote", "deploy/web", "--canary", "6"],
        REFUSED,
        "--full",
    ),
    (
        &["promote", "deploy/web", "--canary", "100%"],
        REFUSED,
        "--full",
    ),
    (
        &["promote", "deploy/web"],
        USAGE,
        "waits at no approval gate, which",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.16"],
        LOCKED,
        "already running",
    ),
    (
        &["start", "deploy/web", "nginx=nginx:1.16", "--canary", "0"],
        USAGE,
        "at least 1 pod",
    ),
];

/// The same for a Blue/Green release (its Services pinned to the old set): promoted whole.
const UNFIT_WHILE_BLUE_GREEN: &[Refusal] = &[
    (
        &["promote", "deploy/web", "--canary", "2"],
        REFUSED,
        "Blue/Green release",
    ),
    (&["promote", "deploy/web"], USAGE, "--full"),
    (
        &["start", "deploy/web", "nginx=nginx:1.16"],
        LOCKED,
        "already running",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_on_a_held_canary_write_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let held: [(&str, &[&str], &[Refusal]); 3] = [
        ("held-refusals", &["--canary", "2"], UNFIT_WHILE_HELD),
        ("held-dark", &["--canary", "2", "--dark"], UNFIT_WHILE_HELD),
        ("held-bg", &["--blue-green"], UNFIT_WHILE_BLUE_GREEN),
    ];
    for (prefix, start, refusals) in held {
        let ns = web_namespace(&env, prefix, 6).await;
        canary_testkit::reads::create_service(&env.client().await, &ns.name, "web", json!({}))
            .await;
        let mut args = vec!["start", "deploy/web", "nginx=nginx:1.15"];
        args.extend(start);
        assert_exit(&canary(&env, &ns.name, &args).await, 0, &args.join(" "));
        for &(args, code, needle) in refusals {
            refused_leaving(&env, &ns.name, args, code, needle).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_is_locked_out_with_the_holder_named() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "lock", 3).await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "first start",
    );
    let held = spec_of(&env, &ns.name, "web").await;
    let out = canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.16"]).await;
    assert_exit(&out, LOCKED, "second start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already running") && stderr.contains("started by admin"),
        "{}",
        text(&out)
    );
    assert_spec_equal_except(&held, &spec_of(&env, &ns.name, "web").await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_and_missing_permissions_change_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "perm", 3).await;
    let before = spec_of(&env, &ns.name, "web").await;

    // The restricted user may read (view) but not update Deployments.
    let out = tokio::task::spawn_blocking({
        let env = env.clone();
        let ns = ns.name.clone();
        move || {
            env.run_as(
                &env.restricted_kubeconfig,
                BIN,
                &["-n", &ns, "start", "deploy/web", "nginx=nginx:1.15"],
                &[],
            )
        }
    })
    .await
    .unwrap();
    assert_exit(&out, FORBIDDEN, "start as the restricted user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("may not update deployments.apps")
            || stderr.contains("may not create configmaps"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("restricted"),
        "names the user: {}",
        text(&out)
    );

    // A kubeconfig pointing at nothing.
    let dir = std::env::temp_dir().join(format!("kc-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n",
    )
    .unwrap();
    let out = env.run_as(
        &kubeconfig,
        BIN,
        &["-n", &ns.name, "start", "deploy/web", "nginx=nginx:1.15"],
        &[],
    );
    assert_exit(&out, UNREACHABLE, "start against an unreachable server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Kubernetes API server"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("nothing was changed: this run wrote nothing"),
        "says nothing changed, because nothing did: {}",
        text(&out)
    );

    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert!(!record_exists(&env, &ns.name, "web").await);
}

/// Canary pods that cannot be scheduled are reported with the scheduler's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_canary_pods_are_reported_with_the_schedulers_reason() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sched").await;
    let mut deployment = web_deployment("web", 3, "nginx:1.14", None);
    // Each simulated node has 4 CPUs: three pods of 3 CPUs fill one node each, and a
    // fourth (the surge canary) fits nowhere.
    first_container(&mut deployment).resources =
        Some(serde_json::from_value(json!({"requests": {"cpu": "3"}})).unwrap());
    create_settled(&env, &ns.name, &deployment).await;
    let out = start_release(&env, &ns.name, &["--timeout", "60s"]).await;
    assert_exit(&out, CANARY_UNHEALTHY, "start with an unschedulable canary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot be scheduled") && stdout.contains("Insufficient cpu"),
        "{}",
        text(&out)
    );
    // It is held and recorded, and abort takes it back.
    assert!(record_exists(&env, &ns.name, "web").await);
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
}
