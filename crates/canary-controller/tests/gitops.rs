//! The GitOps controller against testenv's real API server and controllers: a GitOps
//! stand-in re-applies a manifest every 2 s while the controller (a process with its
//! ServiceAccount's token and the RBAC of deploy/) runs the canary the policy of deploy/
//! braked.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use canary_testkit::wait_for;
use kube::ResourceExt;
use serde_json::Value;

use common::*;

const V1: &str = "nginx:1.14";
const V2: &str = "nginx:1.15";
const V3: &str = "nginx:1.16";
const BAD: &str = "nginx:1.15__crashloop";

fn policy<'a>(steps: &'a str, interval: &'a str) -> BTreeMap<&'a str, &'a str> {
    let mut annotations = BTreeMap::from([
        ("kubectl-canary.io/canary-pods", "1"),
        ("kubectl-canary.io/interval", interval),
        ("kubectl-canary.io/analysis", "web-analysis"),
    ]);
    if !steps.is_empty() {
        annotations.insert("kubectl-canary.io/steps", steps);
    }
    annotations
}

/// The rollout fields of the Deployment's spec as JSON.
async fn rollout_fields(client: &kube::Client, namespace: &str) -> Value {
    let spec = serde_json::to_value(deployment(client, namespace).await.spec.unwrap()).unwrap();
    serde_json::json!({
        "strategy": spec["strategy"],
        "minReadySeconds": spec.get("minReadySeconds").cloned().unwrap_or(Value::Null),
        "progressDeadlineSeconds": spec["progressDeadlineSeconds"],
        "paused": spec.get("paused").cloned().unwrap_or(Value::Null),
    })
}

fn kubectl_canary_annotations(d: &k8s_openapi::api::apps::v1::Deployment) -> Vec<String> {
    d.annotations()
        .keys()
        .filter(|k| {
            k.starts_with("kubectl-canary.io/")
                && !["canary-pods", "steps", "interval", "analysis", "mode"]
                    .iter()
                    .any(|p| k.ends_with(p))
        })
        .cloned()
        .collect()
}

async fn settled_on(setup: &Setup, image: &str, replicas: usize) {
    let (client, ns) = (&setup.client, setup.namespace.name.clone());
    wait_for(
        &setup.env,
        &format!("all {replicas} pods on {image}"),
        Duration::from_secs(90),
        || {
            let (client, ns) = (client.clone(), ns.clone());
            let image = image.to_string();
            async move {
                let pods = pods_by_image(&client, &ns).await;
                let d = deployment(&client, &ns).await;
                let status = d.status.clone().unwrap_or_default();
                (pods.get(&image) == Some(&replicas)
                    && pods.len() == 1
                    && status.available_replicas == Some(replicas as i32)
                    && status.updated_replicas == Some(replicas as i32))
                .then_some(())
            }
        },
    )
    .await;
}

async fn record_gone(setup: &Setup) {
    let (client, ns) = (&setup.client, setup.namespace.name.clone());
    wait_for(
        &setup.env,
        "the canary record to be closed",
        Duration::from_secs(120),
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move { record(&client, &ns).await.is_none().then_some(()) }
        },
    )
    .await;
}

async fn phase_is(setup: &Setup, phase: &str, extra: impl Fn(&Value) -> bool) -> Value {
    let (client, ns) = (&setup.client, setup.namespace.name.clone());
    let extra = &extra;
    wait_for(
        &setup.env,
        &format!("the record in phase {phase}"),
        Duration::from_secs(120),
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let record = record(&client, &ns).await?;
                (record["phase"]["name"] == phase && extra(&record)).then_some(record)
            }
        },
    )
    .await
}

fn default_rollout() -> Value {
    serde_json::json!({
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "minReadySeconds": Value::Null,
        "progressDeadlineSeconds": 600,
        "paused": Value::Null,
    })
}

#[tokio::test]
async fn a_git_change_is_held_at_exactly_k_then_analysed_and_promoted() {
    let Some(setup) = setup("gitops-promote").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("3", "6s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 6, V1, &annotations));
    settled_on(&setup, V1, 6).await;
    let before = rollout_fields(&client, &ns).await;
    let controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 6, V2, &annotations));
    settled_on(&setup, V2, 6).await;
    record_gone(&setup).await;
    git.stop().await;
    let most = observer.most_before_first_promote();
    assert_eq!(
        most, 1,
        "new-version pods seen at once before the first promote"
    );
    assert!(
        observer.first_promote_rv.lock().unwrap().is_some(),
        "no promote seen: {:?}",
        observer.phases()
    );
    assert_eq!(
        observer.phases(),
        [
            "starting",
            "holding",
            "promoting",
            "holding",
            "promotingFull"
        ],
        "log: {}",
        controller.log_text()
    );
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(
        rollout_fields(&client, &ns).await,
        before,
        "the Deployment's own settings are back"
    );
    assert_eq!(before, default_rollout());
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryPromoted")
            .await
            .len(),
        1
    );
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryAnalysisPassed")
            .await
            .len(),
        2
    );
    let (status, metrics) = controller.get("/metrics").await.expect("metrics served");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("kubectl_canary_controller_verdicts_total{decision=\"pass\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "kubectl_canary_controller_canary_duration_seconds_count{outcome=\"promoted\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(controller.get("/readyz").await.map(|r| r.0), Some(200));
}

#[tokio::test]
async fn a_bad_canary_rests_on_the_stable_pods_while_git_keeps_applying_it() {
    let Some(setup) = setup("gitops-bad").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "5s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 5, V1, &annotations));
    settled_on(&setup, V1, 5).await;
    let before = rollout_fields(&client, &ns).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, BAD).await;
    git.commit(&setup.env, &manifest(&ns, 5, BAD, &annotations));
    phase_is(&setup, "aborting", |r| {
        r["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["event"].as_str().unwrap().starts_with("release failed"))
    })
    .await;
    // The stand-in keeps applying the bad manifest: nothing moves.
    let applies_then = *git.applies.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        *git.applies.lock().unwrap() >= applies_then + 3,
        "the stand-in kept applying"
    );
    let d = deployment(&client, &ns).await;
    let spec = d.spec.clone().unwrap();
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some(BAD),
        "Git's template stays"
    );
    assert_eq!(spec.paused, Some(true));
    assert_eq!(
        pods_by_image(&client, &ns).await,
        BTreeMap::from([(V1.to_string(), 5)]),
        "only stable pods"
    );
    assert_eq!(d.status.unwrap().available_replicas, Some(5));
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryFailed").await.len(),
        1
    );
    // A revert commit ends it: the brake comes off in the same write, the record closes.
    git.commit(&setup.env, &manifest(&ns, 5, V1, &annotations));
    let right_after = rollout_fields(&client, &ns).await;
    assert_eq!(
        right_after, before,
        "the revert write itself put the Deployment's settings back"
    );
    record_gone(&setup).await;
    settled_on(&setup, V1, 5).await;
    git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_second_commit_mid_canary_replaces_it_at_exactly_k() {
    let Some(setup) = setup("gitops-second").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "60s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 5, V1, &annotations));
    settled_on(&setup, V1, 5).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer_v3 = Observer::start(&client, &ns, V3).await;
    git.commit(&setup.env, &manifest(&ns, 5, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    git.commit(&setup.env, &manifest(&ns, 5, V3, &annotations));
    let record = phase_is(&setup, "holding", |r| r["targetImages"]["nginx"] == V3).await;
    assert_eq!(
        record["originalImages"]["nginx"], V1,
        "the stable side stays"
    );
    let (c, ns2) = (client.clone(), ns.clone());
    wait_for(
        &setup.env,
        "the first canary's pods gone",
        Duration::from_secs(60),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                let pods = pods_by_image(&c, &ns2).await;
                (pods == BTreeMap::from([(V1.to_string(), 5), (V3.to_string(), 1)])).then_some(())
            }
        },
    )
    .await;
    assert_eq!(observer_v3.most_before_first_promote(), 1);
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryReplaced")
            .await
            .len(),
        1
    );
    git.stop().await;
    assert_eq!(observer_v3.unavailable(), Vec::<String>::new());
}

#[tokio::test]
async fn a_revert_commit_mid_canary_releases_the_brake_in_the_same_write() {
    let Some(setup) = setup("gitops-revert").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "60s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 5, V1, &annotations));
    settled_on(&setup, V1, 5).await;
    let before = rollout_fields(&client, &ns).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 5, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    assert_eq!(rollout_fields(&client, &ns).await["paused"], true);
    git.commit(&setup.env, &manifest(&ns, 5, V1, &annotations));
    assert_eq!(
        rollout_fields(&client, &ns).await,
        before,
        "released by the revert write itself"
    );
    record_gone(&setup).await;
    settled_on(&setup, V1, 5).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(rollout_fields(&client, &ns).await, before);
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryReverted")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_standby_continues_when_the_leader_is_killed_mid_canary() {
    let Some(setup) = setup("gitops-leader").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("3", "8s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 6, V1, &annotations));
    settled_on(&setup, V1, 6).await;
    let before = rollout_fields(&client, &ns).await;
    let lease = format!("lease-{ns}");
    let mut first = ControllerProcess::start(&setup.kubeconfig, &ns, &lease, "first", &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = ControllerProcess::start(&setup.kubeconfig, &ns, &lease, "second", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 6, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "kubectl-canary-system");
    let holder = leases
        .get(&lease)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_eq!(holder, "first", "the first replica leads");
    first.child.kill().unwrap(); // SIGKILL: no release, the Lease must expire.
    first.child.wait().unwrap();
    settled_on(&setup, V2, 6).await;
    record_gone(&setup).await;
    git.stop().await;
    let holder = leases
        .get(&lease)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_eq!(holder, "second");
    assert!(
        second.log_text().contains("CanaryPromoted"),
        "{}",
        second.log_text()
    );
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(rollout_fields(&client, &ns).await, before);
}

#[tokio::test]
async fn malformed_policy_and_foreign_prometheus_are_reported_and_change_nothing() {
    let Some(setup) = setup("gitops-bad-input").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    // A spec pointing at a Prometheus of its writer's choice.
    create_analysis(
        &client,
        &ns,
        "checks:\n  - name: p\n    prometheus: { url: 'http://127.0.0.2:9', query: 'up{ {{selector}} }' }\n",
    )
    .await;
    let malformed = BTreeMap::from([("kubectl-canary.io/canary-pods", "lots")]);
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &malformed));
    settled_on(&setup, V1, 4).await;
    let _controller = ControllerProcess::start(
        &setup.kubeconfig,
        &ns,
        &format!("lease-{ns}"),
        "a",
        &["--prometheus-url", "http://127.0.0.1:9090"],
    );
    let (c, ns2) = (client.clone(), ns.clone());
    let note = wait_for(
        &setup.env,
        "an InvalidCanaryPolicy Event",
        Duration::from_secs(30),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                events_with_reason(&c, &ns2, "InvalidCanaryPolicy")
                    .await
                    .pop()
            }
        },
    )
    .await;
    assert!(
        note.contains("kubectl-canary.io/canary-pods") && note.contains("lots"),
        "{note}"
    );
    // Not braked: the change rolls out as without kubectl-canary, and no record is written.
    git.commit(&setup.env, &manifest(&ns, 4, V2, &malformed));
    settled_on(&setup, V2, 4).await;
    assert!(record(&client, &ns).await.is_none());
    // Fixed policy, spec naming another Prometheus: braked, held, never analysed.
    let fixed = policy("", "5s");
    git.commit(&setup.env, &manifest(&ns, 4, V2, &fixed));
    git.commit(&setup.env, &manifest(&ns, 4, V3, &fixed));
    phase_is(&setup, "holding", |_| true).await;
    let (c, ns2) = (client.clone(), ns.clone());
    let note = wait_for(
        &setup.env,
        "an InvalidAnalysisSpec Event",
        Duration::from_secs(30),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                events_with_reason(&c, &ns2, "InvalidAnalysisSpec")
                    .await
                    .pop()
            }
        },
    )
    .await;
    assert!(
        note.contains("127.0.0.2") && note.contains("http://127.0.0.1:9090"),
        "{note}"
    );
    let record = record(&client, &ns).await.unwrap();
    assert_eq!(record["phase"]["name"], "holding", "held, not promoted");
    git.stop().await;
}

#[tokio::test]
async fn the_controller_refuses_to_start_without_the_brake_policy() {
    let Some(setup) = setup("gitops-no-policy").await else {
        return;
    };
    let mut controller = ControllerProcess::start(
        &setup.kubeconfig,
        &setup.namespace.name,
        &format!("lease-{}", setup.namespace.name),
        "a",
        &["--policy-name", "no-such-policy"],
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = controller.child.wait().unwrap();
        (status, controller)
    })
    .await
    .unwrap();
    assert_eq!(
        status.0.code(),
        Some(i32::from(canary_controller::exit_code::STARTUP_REFUSED))
    );
    let log = status.1.log_text();
    assert!(
        log.contains("no-such-policy") && log.contains("Kubernetes 1.36"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_finishes_cleanly_and_releases_the_lease_to_the_standby() {
    let Some(setup) = setup("gitops-sigterm").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    let lease = format!("lease-{ns}");
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "kubectl-canary-system");
    let first = ControllerProcess::start(
        &setup.kubeconfig,
        &ns,
        &lease,
        "first",
        &["--lease-seconds", "10"],
    );
    let holder = |leases: kube::Api<k8s_openapi::api::coordination::v1::Lease>, lease: String| async move {
        leases
            .get_opt(&lease)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    let (l, n) = (leases.clone(), lease.clone());
    wait_for(
        &setup.env,
        "the first replica to lead",
        Duration::from_secs(30),
        || {
            let (l, n) = (l.clone(), n.clone());
            async move { (holder(l, n).await.as_deref() == Some("first")).then_some(()) }
        },
    )
    .await;
    assert_eq!(first.get("/readyz").await.map(|r| r.0), Some(200));
    let second = ControllerProcess::start(
        &setup.kubeconfig,
        &ns,
        &lease,
        "second",
        &["--lease-seconds", "10"],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut first = first;
    let exit = tokio::task::spawn_blocking(move || first.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        exit.code(),
        Some(i32::from(canary_controller::exit_code::STOPPED)),
        "a clean exit on SIGTERM"
    );
    // Released at once (no holder), not left to expire.
    assert_eq!(
        holder(leases.clone(), lease.clone()).await,
        None,
        "the Lease was released"
    );
    // kube-lease-manager's standby looks again when the Lease it saw would have expired.
    let (l, n) = (leases.clone(), lease.clone());
    wait_for(
        &setup.env,
        "the standby to lead",
        Duration::from_secs(20),
        || {
            let (l, n) = (l.clone(), n.clone());
            async move { (holder(l, n).await.as_deref() == Some("second")).then_some(()) }
        },
    )
    .await;
    let second = &second;
    wait_for(
        &setup.env,
        "the standby to log that it leads",
        Duration::from_secs(10),
        || async move {
            second
                .log_text()
                .contains(r#""message":"leading""#)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn replace_mode_holds_k_canary_pods_in_place_of_stable_ones() {
    let Some(setup) = setup("gitops-replace").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let mut annotations = policy("", "8s");
    annotations.insert("kubectl-canary.io/mode", "replace");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 5, V1, &annotations));
    settled_on(&setup, V1, 5).await;
    let before = rollout_fields(&client, &ns).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 5, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    let (c, ns2) = (client.clone(), ns.clone());
    wait_for(
        &setup.env,
        "4 stable pods and 1 canary pod",
        Duration::from_secs(30),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                (pods_by_image(&c, &ns2).await
                    == BTreeMap::from([(V1.to_string(), 4), (V2.to_string(), 1)]))
                .then_some(())
            }
        },
    )
    .await;
    let held = rollout_fields(&client, &ns).await;
    assert_eq!(
        held["strategy"]["rollingUpdate"],
        serde_json::json!({"maxSurge": 0, "maxUnavailable": 1})
    );
    settled_on(&setup, V2, 5).await;
    record_gone(&setup).await;
    git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(rollout_fields(&client, &ns).await, before);
}

/// The CLI binary, built beside the controller's (`cargo test --workspace` builds it for the
/// CLI's own tests; `cargo build -p kubectl-canary` otherwise).
fn cli() -> String {
    let controller = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-canary-controller"));
    let cli = controller.with_file_name("kubectl-canary");
    assert!(
        cli.exists(),
        "{} is missing: run `cargo build -p kubectl-canary` (or cargo test --workspace)",
        cli.display()
    );
    cli.to_string_lossy().to_string()
}

#[tokio::test]
async fn the_cli_shows_and_promotes_a_controller_run_canary() {
    let Some(setup) = setup("gitops-cli").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "10m");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let before = rollout_fields(&client, &ns).await;
    let controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    git.commit(&setup.env, &manifest(&ns, 4, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    let status = setup
        .env
        .run(&cli(), &["status", "deploy/web", "-n", &ns, "-o", "json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let text = status.to_string();
    assert!(
        text.contains("holding") && text.contains("kubectl-canary-controller/"),
        "{text}"
    );
    // The CLI records the promotion; the controller (whose writes the policy lets through)
    // carries it out, and the CLI sees it done. The controller is stopped for the first
    // 3 s of the command (shorter than its Lease): the CLI, whose settings writes the policy
    // holds, must wait for it rather than report them rewritten.
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &controller.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {name}");
    };
    signal("-STOP");
    let (env, ns2) = (setup.env.clone(), ns.clone());
    let promote = tokio::task::spawn_blocking(move || {
        env.run(
            &cli(),
            &[
                "promote",
                "deploy/web",
                "-n",
                &ns2,
                "--full",
                "--timeout",
                "90s",
            ],
        )
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal("-CONT");
    let promote = promote.await.unwrap();
    assert!(
        promote.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&promote.stdout),
        String::from_utf8_lossy(&promote.stderr)
    );
    settled_on(&setup, V2, 4).await;
    record_gone(&setup).await;
    git.stop().await;
    assert_eq!(rollout_fields(&client, &ns).await, before);
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
}

/// Pods whose container `nginx` has `MODE=value`, counted from a fresh list.
async fn pods_with_mode(client: &kube::Client, namespace: &str, value: &str) -> usize {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), namespace);
    pods.list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers[0]
                    .env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "MODE" && e.value.as_deref() == Some(value))
            })
        })
        .count()
}

/// A commit that changes only an environment variable (no image) is a canary like any
/// other: held at exactly k while analysed, then promoted with the Deployment's own
/// settings back. The record describes it by its template, and names the change.
#[tokio::test]
async fn a_commit_changing_only_an_env_var_is_held_at_exactly_k_and_promoted() {
    let Some(setup) = setup("gitops-env").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "8s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let before = rollout_fields(&client, &ns).await;
    let controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let mut commit = manifest(&ns, 4, V1, &annotations);
    commit["spec"]["template"]["spec"]["containers"][0]["env"] =
        serde_json::json!([{"name": "MODE", "value": "new"}]);
    git.commit(&setup.env, &commit);
    let held = phase_is(&setup, "holding", |_| true).await;
    assert!(
        held["targetTemplate"].is_object(),
        "the record carries the canary's template: {held}"
    );
    assert_eq!(
        held["targetImages"],
        serde_json::json!({}),
        "no image changed"
    );
    // Held: exactly 1 pod of the new template beside the 4 stable, while it is analysed.
    let mut most = 0;
    for _ in 0..20 {
        let record = record(&client, &ns).await.unwrap_or_default();
        if record["phase"]["name"] != "holding" {
            break;
        }
        most = most.max(pods_with_mode(&client, &ns, "new").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        most,
        1,
        "new-template pods while held; log: {}",
        controller.log_text()
    );
    let started = events_with_reason(&client, &ns, "CanaryStarted").await;
    assert!(
        started
            .iter()
            .any(|n| n.contains("spec.containers[nginx].env")),
        "the Event names what changed: {started:?}"
    );
    record_gone(&setup).await;
    let (c, ns2) = (client.clone(), ns.clone());
    wait_for(
        &setup.env,
        "every pod on the new template",
        Duration::from_secs(90),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move { (pods_with_mode(&c, &ns2, "new").await == 4).then_some(()) }
        },
    )
    .await;
    git.stop().await;
    assert!(
        events_with_reason(&client, &ns, "CanaryNotPossible")
            .await
            .is_empty()
    );
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryPromoted")
            .await
            .len(),
        1
    );
    assert_eq!(rollout_fields(&client, &ns).await, before);
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_record_changed_by_a_configmap_writer_stops_the_controller_for_that_deployment() {
    let Some(setup) = setup("gitops-tamper").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "5s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    git.commit(&setup.env, &manifest(&ns, 4, V2, &annotations));
    phase_is(&setup, "starting", |_| true).await;
    // Someone who may edit ConfigMaps swaps the stable template for a privileged one.
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &ns);
    let mut cm = records.get("web.kubectl-canary").await.unwrap();
    let mut tampered: Value =
        serde_json::from_str(&cm.data.as_ref().unwrap()["record.json"]).unwrap();
    tampered["originalTemplate"]["spec"]["containers"][0]["image"] = serde_json::json!("evil:1");
    tampered["originalTemplate"]["spec"]["containers"][0]["securityContext"] =
        serde_json::json!({"privileged": true});
    cm.data
        .as_mut()
        .unwrap()
        .insert("record.json".into(), tampered.to_string());
    records
        .replace("web.kubectl-canary", &Default::default(), &cm)
        .await
        .unwrap();
    let (c, ns2) = (client.clone(), ns.clone());
    let note = wait_for(
        &setup.env,
        "a CanaryRecordChanged Event",
        Duration::from_secs(30),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                events_with_reason(&c, &ns2, "CanaryRecordChanged")
                    .await
                    .pop()
            }
        },
    )
    .await;
    assert!(note.contains("changes nothing"), "{note}");
    let generation = deployment(&client, &ns).await.metadata.generation;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let d = deployment(&client, &ns).await;
    assert_eq!(
        d.metadata.generation, generation,
        "nothing written to the Deployment since"
    );
    let images: Vec<String> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .filter_map(|c| c.image)
        .collect();
    assert_eq!(images, [V2], "Git's template, never the record's");
    assert!(!pods_by_image(&client, &ns).await.contains_key("evil:1"));
    git.stop().await;
}

#[tokio::test]
async fn a_deleted_record_is_recreated_from_the_deployment_and_the_canary_goes_on() {
    let Some(setup) = setup("gitops-lost-record").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "10s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let before = rollout_fields(&client, &ns).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 4, V2, &annotations));
    let first = phase_is(&setup, "holding", |_| true).await;
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &ns);
    records
        .delete("web.kubectl-canary", &Default::default())
        .await
        .unwrap();
    // Recreated from the brake's annotations and the stable ReplicaSet, not from memory.
    let again = phase_is(&setup, "holding", |r| r["startedAt"] != first["startedAt"]).await;
    assert_eq!(again["stable"], first["stable"]);
    assert_eq!(again["originalTemplate"], first["originalTemplate"]);
    assert_eq!(again["originalSettings"], first["originalSettings"]);
    settled_on(&setup, V2, 4).await;
    record_gone(&setup).await;
    git.stop().await;
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(rollout_fields(&client, &ns).await, before);
}

#[tokio::test]
async fn the_cli_abort_of_a_controller_run_canary_is_a_revert_that_never_leaves_the_brake() {
    let Some(setup) = setup("gitops-cli-abort").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "10m");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let before = rollout_fields(&client, &ns).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    git.commit(&setup.env, &manifest(&ns, 4, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    git.stop().await; // Git would apply V2 again and start a new canary: that is what docs/gitops.md says.
    let observer = Observer::start(&client, &ns, V2).await;
    let abort = setup.env.run(
        &cli(),
        &["abort", "deploy/web", "-n", &ns, "--timeout", "90s"],
    );
    assert!(
        abort.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&abort.stdout),
        String::from_utf8_lossy(&abort.stderr)
    );
    settled_on(&setup, V1, 4).await;
    record_gone(&setup).await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(rollout_fields(&client, &ns).await, before);
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_unreadable_record_is_reported_once_and_nothing_is_changed() {
    let Some(setup) = setup("gitops-garbage").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("", "5s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 4, V1, &annotations));
    settled_on(&setup, V1, 4).await;
    let _controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    git.commit(&setup.env, &manifest(&ns, 4, V2, &annotations));
    phase_is(&setup, "holding", |_| true).await;
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &ns);
    let mut cm = records.get("web.kubectl-canary").await.unwrap();
    cm.data
        .as_mut()
        .unwrap()
        .insert("record.json".into(), "{not json".into());
    records
        .replace("web.kubectl-canary", &Default::default(), &cm)
        .await
        .unwrap();
    let generation = deployment(&client, &ns).await.metadata.generation;
    let (c, ns2) = (client.clone(), ns.clone());
    wait_for(
        &setup.env,
        "a CanaryRecordUnreadable Event",
        Duration::from_secs(30),
        || {
            let (c, ns2) = (c.clone(), ns2.clone());
            async move {
                events_with_reason(&c, &ns2, "CanaryRecordUnreadable")
                    .await
                    .pop()
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await; // past the 5 s interval: no analysis, no promotion
    assert_eq!(
        deployment(&client, &ns).await.metadata.generation,
        generation,
        "nothing written"
    );
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryRecordUnreadable")
            .await
            .len(),
        1
    );
    git.stop().await;
}

/// A Deployment named past a label value's 63 characters: its record's label is hashed, so
/// the record's changes must lead the controller to the Deployment another way (owner
/// reference). With an interval of an hour nothing but the record's deletion can wake the
/// controller: the record must still come back at once.
#[tokio::test]
async fn a_deployment_named_past_63_characters_is_found_from_its_record() {
    let Some(setup) = setup("gitops-long-name").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    let name = format!("web-{}", "long".repeat(17));
    assert!(name.len() > 63, "{}", name.len());
    let annotations = BTreeMap::from([
        ("kubectl-canary.io/canary-pods", "1"),
        ("kubectl-canary.io/interval", "1h"),
    ]);
    let named = |image: &str| {
        let mut m = manifest(&ns, 3, image, &annotations);
        m["metadata"]["name"] = Value::from(name.clone());
        m
    };
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), &ns);
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &ns);
    let record_name = format!("{name}.kubectl-canary");
    let git = GitOps::start(&setup.env, &ns, &named(V1));
    wait_for(
        &setup.env,
        "the Deployment available",
        Duration::from_secs(90),
        || {
            let (deployments, name) = (deployments.clone(), name.clone());
            async move {
                let d = deployments.get_opt(&name).await.ok()??;
                (d.status?.available_replicas == Some(3)).then_some(())
            }
        },
    )
    .await;
    let controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    git.commit(&setup.env, &named(V2));
    let holding = |records: kube::Api<k8s_openapi::api::core::v1::ConfigMap>,
                   record_name: String| async move {
        let cm = records.get_opt(&record_name).await.ok()??;
        let record: Value = serde_json::from_str(cm.data.as_ref()?.get("record.json")?).ok()?;
        (record["phase"]["name"] == "holding").then_some((cm, record))
    };
    let (cm, first) = wait_for(
        &setup.env,
        "the record in phase holding",
        Duration::from_secs(120),
        || holding(records.clone(), record_name.clone()),
    )
    .await;
    let label = cm.labels()["kubectl-canary.io/deployment"].clone();
    assert_ne!(label, name, "the scenario: the label is not the name");
    // Past the controller's last requeue after holding (2 s): from now on it sleeps for
    // the interval.
    tokio::time::sleep(Duration::from_secs(6)).await;
    records
        .delete(&record_name, &Default::default())
        .await
        .unwrap();
    let again = wait_for(
        &setup.env,
        "the record recreated (nothing but its deletion wakes the controller)",
        Duration::from_secs(30),
        || {
            let (records, record_name) = (records.clone(), record_name.clone());
            let started = first["startedAt"].clone();
            async move {
                let (_, record) = holding(records, record_name).await?;
                (record["startedAt"] != started).then_some(record)
            }
        },
    )
    .await;
    assert_eq!(
        again["stable"],
        first["stable"],
        "{}",
        controller.log_text()
    );
    assert_eq!(again["deployment"], Value::from(name.clone()));
    git.stop().await;
}

/// `spec.replicas` changed by Git during a canary is followed as the CLI's engine does: at
/// the first step (a count) the canary stays at that count, at a later step given as a
/// share it grows with the Deployment; never more than k new pods before the first promote,
/// and the Deployment's own settings back at the end.
#[tokio::test]
async fn a_replicas_change_mid_canary_is_followed_a_count_stays_a_count_a_share_a_share() {
    use canary_core::rollout_math::{CanaryMode, CanarySize, resolve_canary};
    let Some(setup) = setup("gitops-rescale").await else {
        return;
    };
    let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
    let share = |replicas| {
        resolve_canary(CanarySize::Percent(25.0), replicas, CanaryMode::Surge)
            .unwrap()
            .pods
    };
    // The scenario: the 25% step differs at each size.
    assert_eq!((share(6), share(9), share(12)), (2, 3, 4));
    create_analysis(&client, &ns, POD_HEALTH).await;
    let annotations = policy("25%", "15s");
    let git = GitOps::start(&setup.env, &ns, &manifest(&ns, 6, V1, &annotations));
    settled_on(&setup, V1, 6).await;
    let before = rollout_fields(&client, &ns).await;
    let controller =
        ControllerProcess::start(&setup.kubeconfig, &ns, &format!("lease-{ns}"), "a", &[]);
    let observer = Observer::start(&client, &ns, V2).await;
    git.commit(&setup.env, &manifest(&ns, 6, V2, &annotations));
    phase_is(&setup, "holding", |r| r["phase"]["pods"] == 1).await;
    let exactly = |v2: usize, v1: usize| {
        let (client, ns) = (client.clone(), ns.clone());
        move || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let pods = pods_by_image(&client, &ns).await;
                (pods.get(V2) == Some(&v2) && pods.get(V1) == Some(&v1)).then_some(())
            }
        }
    };
    // Available=False is expected only while the pods of a scale-up start (the brake's
    // maxUnavailable=0 counts every missing pod, as it would for any Deployment with
    // maxUnavailable 0); it must never be seen otherwise.
    let stable_available = |replicas: i32| {
        let (client, ns) = (client.clone(), ns.clone());
        move || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let status = deployment(&client, &ns).await.status?;
                (status.available_replicas == Some(replicas)).then_some(())
            }
        }
    };
    let mut unavailable_outside_scaling = observer.unavailable();
    // Git scales to 9 at the first step: the count (1 pod) stays.
    let scaling = observer.unavailable().len();
    git.commit(&setup.env, &manifest(&ns, 9, V2, &annotations));
    let record = phase_is(&setup, "holding", |r| {
        r["replicas"] == 9 && r["phase"]["pods"] == 1
    })
    .await;
    assert_eq!(record["requestedSize"], "1", "{record}");
    wait_for(
        &setup.env,
        "1 canary and 9 stable pods",
        Duration::from_secs(60),
        exactly(1, 9),
    )
    .await;
    wait_for(
        &setup.env,
        "9 stable pods available",
        Duration::from_secs(60),
        stable_available(9),
    )
    .await;
    let scaled = observer.unavailable().len();
    assert!(scaled >= scaling);
    // The 25% step at 9 replicas, then Git scales to 12: the share stays 25%.
    phase_is(&setup, "holding", |r| r["phase"]["pods"] == 3).await;
    unavailable_outside_scaling.extend(observer.unavailable().into_iter().skip(scaled));
    let scaling = observer.unavailable().len();
    git.commit(&setup.env, &manifest(&ns, 12, V2, &annotations));
    phase_is(&setup, "holding", |r| {
        r["replicas"] == 12 && r["phase"]["pods"] == 4
    })
    .await;
    wait_for(
        &setup.env,
        "4 canary and 12 stable pods",
        Duration::from_secs(60),
        exactly(4, 12),
    )
    .await;
    wait_for(
        &setup.env,
        "12 stable pods available",
        Duration::from_secs(60),
        stable_available(12),
    )
    .await;
    let scaled = observer.unavailable().len();
    settled_on(&setup, V2, 12).await;
    record_gone(&setup).await;
    git.stop().await;
    assert_eq!(
        observer.most_before_first_promote(),
        1,
        "new-version pods seen at once before the first promote; log: {}",
        controller.log_text()
    );
    assert!(scaled >= scaling);
    unavailable_outside_scaling.extend(observer.unavailable().into_iter().skip(scaled));
    assert_eq!(unavailable_outside_scaling, Vec::<String>::new());
    assert_eq!(
        events_with_reason(&client, &ns, "CanaryFollowedReplicas")
            .await
            .len(),
        2
    );
    assert!(
        events_with_reason(&client, &ns, "CanaryStuck")
            .await
            .is_empty()
    );
    assert_eq!(rollout_fields(&client, &ns).await, before);
    assert_eq!(
        kubectl_canary_annotations(&deployment(&client, &ns).await),
        Vec::<String>::new()
    );
}
