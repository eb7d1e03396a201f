//! The GitOps controller against testenv's real API server and controllers: a GitOps
//! stand-in re-applies a manifest every 2 s while the controller (a process with its
//! ServiceAccount's token and the RBAC of deploy/) runs the canary the policy of deploy/
//! braked.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use canary_testkit::reads::{edit_record, privileged_original_template};
use canary_testkit::wait_for;
use kube::ResourceExt;
use serde_json::Value;

use common::*;

/// A scenario with the strict pod-health analysis: `web` at `replicas` pods of V1 under
/// `annotations`.
async fn analysed(
    prefix: &str,
    replicas: i32,
    annotations: BTreeMap<String, String>,
) -> Option<Scenario> {
    Scenario::settled(prefix, replicas, annotations, Some(POD_HEALTH)).await
}

#[tokio::test]
async fn a_git_change_is_held_at_exactly_k_then_analysed_and_promoted() {
    let Some(s) = analysed("gitops-promote", 6, policy("3", "6s")).await else {
        return;
    };
    scenarios::held_at_exactly_k_then_promoted(&s).await;
}

#[tokio::test]
async fn a_bad_canary_rests_on_the_stable_pods_while_git_keeps_applying_it() {
    let Some(s) = analysed("gitops-bad", 5, policy("", "5s")).await else {
        return;
    };
    scenarios::bad_canary_rests_on_the_stable_pods(&s).await;
}

#[tokio::test]
async fn a_second_commit_mid_canary_replaces_it_at_exactly_k() {
    let Some(s) = analysed("gitops-second", 5, policy("", "60s")).await else {
        return;
    };
    scenarios::second_commit_replaces_the_canary(&s).await;
}

#[tokio::test]
async fn a_revert_commit_mid_canary_releases_the_brake_in_the_same_write() {
    let Some(s) = analysed("gitops-revert", 5, policy("", "60s")).await else {
        return;
    };
    scenarios::revert_commit_releases_the_brake(&s).await;
}

/// The holder of the test's Lease, if any.
async fn lease_holder(s: &Setup, lease: &str) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(s.client.clone(), "kubectl-canary-system");
    leases
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn the_standby_continues_when_the_leader_is_killed_mid_canary() {
    let Some(s) = analysed("gitops-leader", 6, policy("3", "8s")).await else {
        return;
    };
    let mut first = s.controller("first", &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = s.controller("second", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    assert_eq!(
        lease_holder(&s.setup, &s.lease()).await.unwrap(),
        "first",
        "the first replica leads"
    );
    first.child.kill().unwrap(); // SIGKILL: no release, the Lease must expire.
    first.child.wait().unwrap();
    s.settled_on(V2, 6).await;
    s.record_gone().await;
    s.git.stop().await;
    assert_eq!(lease_holder(&s.setup, &s.lease()).await.unwrap(), "second");
    assert!(
        second.log_text().contains("CanaryPromoted"),
        "{}",
        second.log_text()
    );
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(s.rollout_fields().await, s.before);
}

#[tokio::test]
async fn malformed_policy_and_foreign_prometheus_are_reported_and_change_nothing() {
    // A spec pointing at a Prometheus of its writer's choice.
    let spec = "checks:\n  - name: p\n    prometheus: { url: 'http://127.0.0.2:9', query: 'up{ {{selector}} }' }\n";
    let malformed = BTreeMap::from([("kubectl-canary.io/canary-pods".into(), "lots".into())]);
    let Some(s) = Scenario::settled("gitops-bad-input", 4, malformed, Some(spec)).await else {
        return;
    };
    let _controller = s.controller("a", &["--prometheus-url", "http://127.0.0.1:9090"]);
    let note = s.event("InvalidCanaryPolicy").await;
    assert!(
        note.contains("kubectl-canary.io/canary-pods") && note.contains("lots"),
        "{note}"
    );
    // Not braked: the change rolls out as without kubectl-canary, and no record is written.
    s.commit(V2).await;
    s.settled_on(V2, 4).await;
    assert!(record(&s.client, &s.ns).await.is_none());
    // Fixed policy, spec naming another Prometheus: braked, held, never analysed.
    let fixed = policy("", "5s");
    s.commit_manifest(&manifest(&s.ns, 4, V2, &fixed)).await;
    s.commit_manifest(&manifest(&s.ns, 4, V3, &fixed)).await;
    s.phase_is("holding", |_| true).await;
    let note = s.event("InvalidAnalysisSpec").await;
    assert!(
        note.contains("127.0.0.2") && note.contains("http://127.0.0.1:9090"),
        "{note}"
    );
    let record = record(&s.client, &s.ns).await.unwrap();
    assert_eq!(record["phase"]["name"], "holding", "held, not promoted");
    s.git.stop().await;
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
    let ns = setup.namespace.name.clone();
    let lease = format!("lease-{ns}");
    let (setup, lease) = (&setup, lease.as_str());
    let first = ControllerProcess::start(
        &setup.kubeconfig,
        &ns,
        lease,
        "first",
        &["--lease-seconds", "10"],
    );
    canary_testkit::wait_until(
        &setup.env,
        "the first replica to lead",
        Duration::from_secs(30),
        || async move { lease_holder(setup, lease).await.as_deref() == Some("first") },
    )
    .await;
    // Ready once its watches have listed (a leader is not ready while it cannot watch).
    let first_ref = &first;
    canary_testkit::wait_until(
        &setup.env,
        "the leader to be ready",
        Duration::from_secs(10),
        || async move { first_ref.get("/readyz").await.map(|r| r.0) == Some(200) },
    )
    .await;
    let second = ControllerProcess::start(
        &setup.kubeconfig,
        &ns,
        lease,
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
        lease_holder(setup, lease).await,
        None,
        "the Lease was released"
    );
    // kube-lease-manager's standby looks again when the Lease it saw would have expired.
    canary_testkit::wait_until(
        &setup.env,
        "the standby to lead",
        Duration::from_secs(20),
        || async move { lease_holder(setup, lease).await.as_deref() == Some("second") },
    )
    .await;
    let second = &second;
    canary_testkit::wait_until(
        &setup.env,
        "the standby to log that it leads",
        Duration::from_secs(10),
        || async move { second.log_text().contains(r#""message":"leading""#) },
    )
    .await;
}

#[tokio::test]
async fn replace_mode_holds_k_canary_pods_in_place_of_stable_ones() {
    let mut annotations = policy("", "8s");
    annotations.insert("kubectl-canary.io/mode".into(), "replace".into());
    let Some(s) = analysed("gitops-replace", 5, annotations).await else {
        return;
    };
    let _controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    s.pods_are(
        "4 stable pods and 1 canary pod",
        &[(V1, 4), (V2, 1)],
        Duration::from_secs(30),
    )
    .await;
    let held = s.rollout_fields().await;
    assert_eq!(
        held["strategy"]["rollingUpdate"],
        serde_json::json!({"maxSurge": 0, "maxUnavailable": 1})
    );
    s.settled_on(V2, 5).await;
    s.record_gone().await;
    s.git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(s.rollout_fields().await, s.before);
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
    let Some(s) = analysed("gitops-cli", 4, policy("", "10m")).await else {
        return;
    };
    let ns = s.ns.clone();
    let controller = s.controller("a", &[]);
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    let status = s
        .setup
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
    let (env, ns2) = (s.setup.env.clone(), ns.clone());
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
    s.settled_on(V2, 4).await;
    s.record_gone().await;
    s.git.stop().await;
    s.assert_own_settings_back().await;
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
    let Some(s) = analysed("gitops-env", 4, policy("", "8s")).await else {
        return;
    };
    let (client, ns) = (&s.client, s.ns.as_str());
    let controller = s.controller("a", &[]);
    let mut commit = s.manifest(4, V1);
    commit["spec"]["template"]["spec"]["containers"][0]["env"] =
        serde_json::json!([{"name": "MODE", "value": "new"}]);
    s.commit_manifest(&commit).await;
    let held = s.phase_is("holding", |_| true).await;
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
        let record = record(client, ns).await.unwrap_or_default();
        if record["phase"]["name"] != "holding" {
            break;
        }
        most = most.max(pods_with_mode(client, ns, "new").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        most,
        1,
        "new-template pods while held; log: {}",
        controller.log_text()
    );
    let started = events_with_reason(client, ns, "CanaryStarted").await;
    assert!(
        started
            .iter()
            .any(|n| n.contains("spec.containers[nginx].env")),
        "the Event names what changed: {started:?}"
    );
    s.record_gone().await;
    canary_testkit::wait_until(
        &s.setup.env,
        "every pod on the new template",
        Duration::from_secs(90),
        || async move { pods_with_mode(client, ns, "new").await == 4 },
    )
    .await;
    s.git.stop().await;
    assert_eq!(s.events("CanaryNotPossible").await, 0);
    assert_eq!(s.said("CanaryPromoted").await, 1);
    s.assert_own_settings_back().await;
}

/// After a record was made unusable: 8 s later the Deployment is still at `generation`.
async fn nothing_written_for_8s(
    s: &Scenario,
    generation: Option<i64>,
) -> k8s_openapi::api::apps::v1::Deployment {
    tokio::time::sleep(Duration::from_secs(8)).await;
    let d = s.deployment().await;
    assert_eq!(
        d.metadata.generation, generation,
        "nothing written to the Deployment since"
    );
    d
}

#[tokio::test]
async fn a_record_changed_by_a_configmap_writer_stops_the_controller_for_that_deployment() {
    let Some(s) = analysed("gitops-tamper", 4, policy("", "5s")).await else {
        return;
    };
    let _controller = s.controller("a", &[]);
    s.commit(V2).await;
    // Begun: starting, or already holding (a quick controller passes starting between two
    // polls).
    s.record_begun().await;
    // Someone who may edit ConfigMaps swaps the stable template for a privileged one.
    edit_record(&s.client, &s.ns, "web", privileged_original_template).await;
    let note = s.event("CanaryRecordChanged").await;
    assert!(note.contains("changes nothing"), "{note}");
    let generation = s.deployment().await.metadata.generation;
    let d = nothing_written_for_8s(&s, generation).await;
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
    assert!(!pods_by_image(&s.client, &s.ns).await.contains_key("evil:1"));
    s.git.stop().await;
}

#[tokio::test]
async fn a_deleted_record_is_recreated_from_the_deployment_and_the_canary_goes_on() {
    let Some(s) = analysed("gitops-lost-record", 4, policy("", "10s")).await else {
        return;
    };
    let _controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    let first = s.phase_is("holding", |_| true).await;
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(s.client.clone(), &s.ns);
    records
        .delete("web.kubectl-canary", &Default::default())
        .await
        .unwrap();
    // Recreated from the brake's annotations and the stable ReplicaSet, not from memory.
    let again = s
        .phase_is("holding", |r| r["startedAt"] != first["startedAt"])
        .await;
    assert_eq!(again["stable"], first["stable"]);
    assert_eq!(again["originalTemplate"], first["originalTemplate"]);
    assert_eq!(again["originalSettings"], first["originalSettings"]);
    s.settled_on(V2, 4).await;
    s.record_gone().await;
    s.git.stop().await;
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(s.rollout_fields().await, s.before);
}

#[tokio::test]
async fn the_cli_abort_of_a_controller_run_canary_is_a_revert_that_never_leaves_the_brake() {
    let Some(s) = analysed("gitops-cli-abort", 4, policy("", "10m")).await else {
        return;
    };
    let _controller = s.controller("a", &[]);
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    // Git would apply V2 again and start a new canary: that is what docs/gitops.md says.
    s.git.stop().await;
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    let abort = s.setup.env.run(
        &cli(),
        &["abort", "deploy/web", "-n", &s.ns, "--timeout", "90s"],
    );
    assert!(
        abort.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&abort.stdout),
        String::from_utf8_lossy(&abort.stderr)
    );
    s.settled_on(V1, 4).await;
    s.record_gone().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    s.assert_own_settings_back().await;
}

#[tokio::test]
async fn an_unreadable_record_is_reported_once_and_nothing_is_changed() {
    let Some(s) = analysed("gitops-garbage", 4, policy("", "5s")).await else {
        return;
    };
    let _controller = s.controller("a", &[]);
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    edit_record(&s.client, &s.ns, "web", |r| {
        *r = Value::String("{not json".into())
    })
    .await;
    let generation = s.deployment().await.metadata.generation;
    s.event("CanaryRecordUnreadable").await;
    // Past the 5 s interval: no analysis, no promotion.
    nothing_written_for_8s(&s, generation).await;
    assert_eq!(s.said("CanaryRecordUnreadable").await, 1);
    s.git.stop().await;
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
    let git = GitOpsRepo::start(&setup.env, &ns, &named(V1));
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
    let Some(s) = analysed("gitops-rescale", 6, policy("25%", "15s")).await else {
        return;
    };
    scenarios::replicas_change_is_followed(&s).await;
}

/// GitOps mode keeps a held count exact through a change of `spec.replicas` that the
/// Deployment's controller spreads over the canary too (Git scales 3 -> 6 while 1 canary pod
/// is held: the proportional `scale()` gives the canary a second pod). The controller
/// follows (the record takes 6 replicas, the canary 1 pod) and, from then on, the pod watch
/// sees at most 1 canary pod until the promotion (docs/holding.md).
#[tokio::test]
async fn a_rescale_spread_over_a_held_count_is_put_back_by_the_controller() {
    let Some(s) = analysed("gitops-spread", 3, policy("", "30s")).await else {
        return;
    };
    let (client, ns) = (&s.client, s.ns.as_str());
    let controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(client, ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |r| r["phase"]["pods"] == 1).await;
    s.commit_manifest(&s.manifest(6, V2)).await;
    s.phase_is("holding", |r| r["replicas"] == 6 && r["phase"]["pods"] == 1)
        .await;
    // Where the controller had followed: the list that found 1 canary pod. The pod watch
    // may deliver the spread's events after that list; their resourceVersions place them.
    let followed = s
        .pods_are(
            "1 canary and 6 stable pods",
            &[(V2, 1), (V1, 6)],
            Duration::from_secs(60),
        )
        .await;
    let spread = observer
        .pod_counts
        .lock()
        .unwrap()
        .iter()
        .filter(|(rv, _)| *rv <= followed)
        .map(|(_, pods)| *pods)
        .max()
        .unwrap_or(0);
    eprintln!("canary pods seen at most between the rescale and the controller's follow: {spread}");
    s.settled_on(V2, 6).await;
    s.record_gone().await;
    s.git.stop().await;
    let cut = observer.first_promote_rv.lock().unwrap().expect("promoted");
    let after_follow: Vec<_> = observer
        .pod_counts
        .lock()
        .unwrap()
        .iter()
        .filter(|(rv, _)| *rv > followed && *rv < cut)
        .copied()
        .collect();
    assert!(
        after_follow.iter().all(|(_, pods)| *pods <= 1),
        "the canary exceeded 1 pod after the controller followed: {after_follow:?}; log: {}",
        controller.log_text()
    );
    assert_eq!(s.said("CanaryFollowedReplicas").await, 1);
    s.assert_own_settings_back().await;
}

/// The policy of `policy(steps, interval)` with its last step gated, and `extra` gate
/// annotations.
fn gated(steps: &str, interval: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut annotations = policy(steps, interval);
    annotations.insert("kubectl-canary.io/approve-before".into(), "full".into());
    for (key, value) in extra {
        annotations.insert(format!("kubectl-canary.io/{key}"), value.to_string());
    }
    annotations
}

#[tokio::test]
async fn a_gated_step_waits_for_its_approval_by_the_cli() {
    let receiver =
        canary_testkit::receiver::Receiver::start(canary_testkit::receiver::Answer::Ok).await;
    let mut annotations = gated("", "5s", &[]);
    annotations.insert(
        canary_core::gitops::policy::NOTIFY_ANNOTATION.to_string(),
        "audit".into(),
    );
    let Some(s) = analysed("gitops-gate", 4, annotations).await else {
        return;
    };
    let ns = s.ns.clone();
    canary_testkit::receiver::create_notify_secret(
        &s.client,
        &ns,
        &format!(
            "endpoints:\n  - name: audit\n    kind: webhook\n    url: {}\n    signingKey: a-gate-test-key-0123456789\n",
            receiver.url("/hook")
        ),
    )
    .await;
    let controller = s.controller("a", &[]);
    s.commit(V2).await;
    let record = s.phase_is("holding", |r| r.get("gate").is_some()).await;
    assert_eq!(record["gate"]["before"], "full", "{record}");
    // The Event follows the record's write: `said` waits for it, then counts.
    assert_eq!(s.said("CanaryAwaitingApproval").await, 1);
    // Held: one canary pod beside the stable ones, while Git keeps applying.
    assert_eq!(
        pods_by_image(&s.client, &ns).await,
        BTreeMap::from([(V1.to_string(), 4), (V2.to_string(), 1)])
    );
    let status = s
        .setup
        .env
        .run(&cli(), &["status", "deploy/web", "-n", &ns, "-o", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status as JSON");
    assert_eq!(status["approval"]["state"], "waiting", "{status}");
    // The notice says what is awaited, from whom, and how to give it.
    let notice = receiver
        .notice_of("awaitingApproval", Duration::from_secs(30))
        .await;
    let next = notice["nextStep"].as_str().unwrap_or_default();
    assert!(
        next.contains(
            "promoting to 100% waits for an approval by someone allowed to update deploy/web"
        ) && next.contains("`kubectl canary promote deploy/web`"),
        "{notice}"
    );
    let approve = s
        .setup
        .env
        .run(&cli(), &["promote", "deploy/web", "-n", &ns]);
    assert!(
        approve.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&approve.stdout),
        String::from_utf8_lossy(&approve.stderr),
        controller.log_text()
    );
    s.settled_on(V2, 4).await;
    s.record_gone().await;
    s.git.stop().await;
    // Said once. The Event follows the record's write, which the promotion follows: wait
    // for it, then count (the notes and the log say what else came).
    s.event("CanaryApproved").await;
    let approved = events_with_reason(&s.client, &ns, "CanaryApproved").await;
    assert_eq!(approved.len(), 1, "{approved:?}\n{}", controller.log_text());
    // The approval went with the brake's annotations.
    s.assert_own_settings_back().await;
}

#[tokio::test]
async fn a_gate_nobody_approves_in_time_rests_on_the_stable_pods() {
    let Some(s) = analysed(
        "gitops-gate-timeout",
        4,
        gated("", "5s", &[("approval-timeout", "5s")]),
    )
    .await
    else {
        return;
    };
    let _controller = s.controller("a", &[]);
    s.commit(V2).await;
    s.phase_is("aborting", |r| {
        r["history"].as_array().unwrap().iter().any(|h| {
            h["event"]
                .as_str()
                .unwrap()
                .starts_with("release failed: resting")
        }) && r.get("gate").is_none()
    })
    .await;
    assert_eq!(s.said("CanaryApprovalTimedOut").await, 1);
    assert_eq!(
        pods_by_image(&s.client, &s.ns).await,
        BTreeMap::from([(V1.to_string(), 4)]),
        "only stable pods"
    );
    // A revert commit ends it, as after a failed analysis.
    s.commit(V1).await;
    s.record_gone().await;
    s.settled_on(V1, 4).await;
    s.git.stop().await;
    s.assert_own_settings_back().await;
}
