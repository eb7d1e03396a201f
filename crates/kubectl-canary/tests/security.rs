//! The record is untrusted input. Someone who may only write ConfigMaps in the namespace
//! (the testenv's `restricted` user, given exactly that by a RoleBinding here) edits,
//! replaces, deletes or invents the record; every command run afterwards by someone who
//! may write the Deployment must notice, and none may write to the Deployment anything that
//! came from the record. A Deployment whose record is lost is rolled back from the
//! Deployment and its ReplicaSets alone.
//!
//! With `KC_SECURITY_REPORT=<file>`, every attempt and its outcome is appended to the file
//! as a Markdown table row (scripts/security-report makes docs/results/security.md from them).

mod common;

use std::io::Write;
use std::time::Duration;

use canary_core::seal::SEAL_ANNOTATION;
use canary_testkit::reads::privileged_original_template;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, create_settled, spec_of, wait_settled,
    web_deployment,
};
use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const TAMPERED: i32 = 20;
const LOST: i32 = 21;
const RECORD: &str = "web.kubectl-canary";

/// Gives the restricted user exactly the ConfigMap rights in the namespace.
async fn grant_configmap_rights(env: &TestEnv, namespace: &str) {
    let client = env.client().await;
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("configmap-writer".into()),
                    ..Default::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    verbs: [
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ]
                    .map(String::from)
                    .to_vec(),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create the Role");
    let bindings: Api<RoleBinding> = Api::namespaced(client, namespace);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("configmap-writer".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "configmap-writer".into(),
                },
                subjects: Some(vec![Subject {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "User".into(),
                    name: "restricted".into(),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create the RoleBinding");
}

/// The restricted user's ConfigMap API, checked to be unable to write the Deployment.
async fn attacker(env: &TestEnv, namespace: &str) -> Api<ConfigMap> {
    let out = env.run_as(
        &env.restricted_kubeconfig,
        "kubectl",
        &["auth", "can-i", "update", "deployments", "-n", namespace],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no",
        "the attacker may not write Deployments"
    );
    Api::namespaced(env.restricted_client().await, namespace)
}

/// The record's JSON, read by the attacker.
async fn read_record(api: &Api<ConfigMap>) -> Value {
    let cm = api.get(RECORD).await.expect("read the record");
    serde_json::from_str(&cm.data.unwrap()["record.json"]).expect("the record parses")
}

/// Replaces the record's JSON, as the attacker.
async fn write_record(api: &Api<ConfigMap>, record: &Value) {
    let mut cm = api.get(RECORD).await.expect("read the record");
    cm.data
        .as_mut()
        .unwrap()
        .insert("record.json".into(), record.to_string());
    api.replace(RECORD, &PostParams::default(), &cm)
        .await
        .expect("the attacker replaces the record");
}

/// Creates the record with `record` as its JSON, as the attacker (no owner, no seal).
async fn create_record(api: &Api<ConfigMap>, record: &Value) {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(RECORD.into()),
            ..Default::default()
        },
        data: Some([("record.json".to_string(), record.to_string())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm)
        .await
        .expect("the attacker creates the record");
}

/// How a command dealt with an attempt, for the report.
#[derive(Clone, Copy)]
enum Outcome {
    /// Refused (or only reported), nothing written to the Deployment.
    Stopped,
    /// Recovered the Deployment from what only its writers and its controller own.
    Recovered,
    /// Carried out the user's own command; the attempt had no effect on it.
    Ignored,
    /// Not stopped: the test fails.
    Through,
}

impl Outcome {
    fn stopped_if(condition: bool) -> Self {
        if condition {
            Outcome::Stopped
        } else {
            Outcome::Through
        }
    }
}

/// Appends a row to the security report, if one is asked for.
fn report(attempt: &str, command: &str, exit: Option<i32>, outcome: Outcome) {
    if let Ok(path) = std::env::var("KC_SECURITY_REPORT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the report");
        writeln!(
            file,
            "| {attempt} | `{command}` | {} | {} |",
            exit.map_or("signal".into(), |c| c.to_string()),
            match outcome {
                Outcome::Stopped => "stopped",
                Outcome::Recovered => "recovered",
                Outcome::Ignored => "ignored",
                Outcome::Through => "NOT STOPPED",
            }
        )
        .expect("write the report");
    }
}

/// Runs every command against the current (attacked) record and asserts each stops with
/// `expected` naming the attack, and that nothing was written to the Deployment.
async fn every_command_stops(env: &TestEnv, ns: &str, attempt: &str, expected: &[(&str, i32)]) {
    let before = deployment_json(env, ns, "web").await;
    for (command, code) in expected {
        let args: Vec<&str> = command.split(' ').collect();
        let out = canary(env, ns, &args).await;
        let all = text(&out);
        // Stopped with the code and a message naming the record, and nothing of the forged
        // content shown as if it were real (status must not call a forged image stable).
        let stopped = out.status.code() == Some(*code)
            && (all.contains("changed outside kubectl-canary")
                || all.contains("confirms")
                || all.contains("lost"))
            && !all.contains("evil:1");
        report(
            attempt,
            command,
            out.status.code(),
            Outcome::stopped_if(stopped),
        );
        assert!(
            stopped,
            "{attempt}: `{command}` should stop with {code} naming the record\n{all}"
        );
        assert_eq!(
            before,
            deployment_json(env, ns, "web").await,
            "{attempt}: `{command}` wrote to the Deployment"
        );
    }
}

const SEALED_COMMANDS: &[(&str, i32)] = &[
    ("status deploy/web", TAMPERED),
    ("promote deploy/web --canary 2", TAMPERED),
    ("promote deploy/web --full", TAMPERED),
    ("abort deploy/web", TAMPERED),
    ("start deploy/web nginx=nginx:1.16", TAMPERED),
    ("analyze deploy/web", TAMPERED),
];

/// Every edit of a held canary's record, one after the other on the same canary (the
/// record put back in between), is stopped by every command; then the canary is still
/// abortable and the spec comes back field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_of_the_record_is_detected_by_every_command_and_nothing_is_written() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sec-edit").await;
    grant_configmap_rights(&env, &ns.name).await;
    create_settled(
        &env,
        &ns.name,
        &web_deployment("web", 3, "nginx:1.14", None),
    )
    .await;
    let original = spec_of(&env, &ns.name, "web").await;
    let original_annotations = annotations_of(&env, &ns.name, "web").await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let api = attacker(&env, &ns.name).await;
    let genuine = read_record(&api).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client().await, &ns.name);
    let canary_rs = rs_api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|rs| rs.name_any() != genuine["stable"]["replicaSet"])
        .expect("the canary ReplicaSet");

    type Edit = Box<dyn Fn(&mut Value)>;
    let canary_rs_name = canary_rs.name_any();
    let canary_rs_uid = canary_rs.uid().unwrap();
    let edits: Vec<(&str, Edit)> = vec![
        (
            "original template: another image, privileged",
            Box::new(privileged_original_template),
        ),
        (
            "original images",
            Box::new(|r| r["originalImages"]["nginx"] = json!("evil:1")),
        ),
        (
            "target images",
            Box::new(|r| r["targetImages"]["nginx"] = json!("evil:1")),
        ),
        (
            "target template: another image, privileged",
            Box::new(|r| {
                r["targetTemplate"]["spec"]["containers"][0]["image"] = json!("evil:1");
                r["targetTemplate"]["spec"]["containers"][0]["securityContext"] =
                    json!({"privileged": true});
            }),
        ),
        (
            "target template removed (read as a version 1 record)",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("targetTemplate");
                r["schema"] = json!(1);
            }),
        ),
        (
            "original settings: minReadySeconds",
            Box::new(|r| r["originalSettings"]["minReadySeconds"] = json!(3)),
        ),
        (
            "original settings: paused",
            Box::new(|r| r["originalSettings"]["paused"] = json!(true)),
        ),
        (
            "original settings: strategy",
            Box::new(|r| r["originalSettings"]["strategy"] = json!({"type": "Recreate"})),
        ),
        (
            "original settings: progressDeadlineSeconds",
            Box::new(|r| r["originalSettings"]["progressDeadlineSeconds"] = json!(5)),
        ),
        (
            "phase: a held size never held",
            Box::new(|r| r["phase"] = json!({"name": "holding", "pods": 2})),
        ),
        (
            "owner",
            Box::new(|r| r["startedBy"]["user"] = json!("mallory")),
        ),
        (
            "stable ReplicaSet: the canary's",
            Box::new(move |r| {
                r["stable"]["replicaSet"] = json!(canary_rs_name);
                r["stable"]["uid"] = json!(canary_rs_uid);
            }),
        ),
        (
            "Deployment UID",
            Box::new(|r| r["deploymentUid"] = json!("00000000-0000-0000-0000-000000000000")),
        ),
        ("mode", Box::new(|r| r["mode"] = json!("replace"))),
    ];
    for (attempt, edit) in &edits {
        let mut forged = genuine.clone();
        edit(&mut forged);
        write_record(&api, &forged).await;
        every_command_stops(&env, &ns.name, attempt, SEALED_COMMANDS).await;
        write_record(&api, &genuine).await;
    }

    // Replaced: deleted and created again by the attacker, with another original template.
    let mut forged = genuine.clone();
    forged["originalTemplate"]["spec"]["containers"][0]["image"] = json!("evil:1");
    api.delete(RECORD, &DeleteParams::default()).await.unwrap();
    create_record(&api, &forged).await;
    every_command_stops(
        &env,
        &ns.name,
        "record replaced (deleted, created)",
        SEALED_COMMANDS,
    )
    .await;
    write_record(&api, &genuine).await;

    // The genuine record verifies again: abort rolls back, field by field.
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort with the genuine record",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_eq!(
        without_revision(original_annotations),
        without_revision(annotations_of(&env, &ns.name, "web").await),
        "annotations restored"
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
}

/// A record the attacker creates before any canary: no command uses it; abort discards it
/// without touching the Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_created_before_any_canary_is_never_used() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sec-invent").await;
    grant_configmap_rights(&env, &ns.name).await;
    create_settled(
        &env,
        &ns.name,
        &web_deployment("web", 3, "nginx:1.14", None),
    )
    .await;
    // A record shaped like a genuine one, from another Deployment's canary.
    let other = web_namespace(&env, "sec-source", 3).await;
    assert_exit(
        &canary(
            &env,
            &other.name,
            &["start", "deploy/web", "nginx=nginx:1.15"],
        )
        .await,
        0,
        "start elsewhere",
    );
    let mut forged = read_record(&Api::namespaced(env.client().await, &other.name)).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(env.client().await, &ns.name);
    forged["deploymentUid"] = json!(deployments.get("web").await.unwrap().uid().unwrap());
    forged["targetImages"]["nginx"] = json!("evil:1");
    let api = attacker(&env, &ns.name).await;
    create_record(&api, &forged).await;
    let original = deployment_json(&env, &ns.name, "web").await;
    every_command_stops(
        &env,
        &ns.name,
        "record created before any canary",
        &[
            ("status deploy/web", 0),
            ("promote deploy/web --canary 2", TAMPERED),
            ("promote deploy/web --full", TAMPERED),
            ("start deploy/web nginx=nginx:1.16", TAMPERED),
            ("analyze deploy/web", TAMPERED),
        ],
    )
    .await;
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "abort discards it");
    let stopped = text(&out).contains("nothing was written");
    report(
        "record created before any canary",
        "abort deploy/web",
        out.status.code(),
        Outcome::stopped_if(stopped),
    );
    assert!(stopped, "{}", text(&out));
    assert_eq!(original, deployment_json(&env, &ns.name, "web").await);
    assert!(!record_exists(&env, &ns.name, "web").await);
}

/// A tampered record is rolled back past with `abort --recover`: from the seal and the
/// stable ReplicaSet, the record deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_recover_rolls_back_ignoring_a_tampered_record() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sec-recover").await;
    grant_configmap_rights(&env, &ns.name).await;
    let custom =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}});
    create_settled(
        &env,
        &ns.name,
        &web_deployment("web", 4, "nginx:1.14", Some(custom)),
    )
    .await;
    let original = spec_of(&env, &ns.name, "web").await;
    let original_annotations = annotations_of(&env, &ns.name, "web").await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let api = attacker(&env, &ns.name).await;
    let mut forged = read_record(&api).await;
    forged["originalTemplate"]["spec"]["containers"][0]["image"] = json!("evil:1");
    forged["originalSettings"]["strategy"] = json!({"type": "Recreate"});
    write_record(&api, &forged).await;
    let attempt = "original template and strategy edited, then `abort --recover`";
    let before = deployment_json(&env, &ns.name, "web").await;
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, TAMPERED, "plain abort");
    assert_eq!(before, deployment_json(&env, &ns.name, "web").await);
    report(
        attempt,
        "abort deploy/web",
        out.status.code(),
        Outcome::Stopped,
    );
    let out = canary(&env, &ns.name, &["abort", "deploy/web", "--recover"]).await;
    assert_exit(&out, 0, "abort --recover");
    report(
        attempt,
        "abort deploy/web --recover",
        out.status.code(),
        Outcome::Recovered,
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_eq!(
        without_revision(original_annotations),
        without_revision(annotations_of(&env, &ns.name, "web").await)
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 4)]
    );
}

/// Brings a Deployment into `phase` (a crash of the tool after its Nth change where needed),
/// deletes (or breaks) the record as the attacker, checks that every command recognises a
/// Deployment held without its record, then that abort puts the spec back field by field.
async fn lose_the_record_and_recover(env: &TestEnv, phase: &str, break_it: bool) {
    let ns = TestNamespace::create(env, "sec-lost").await;
    grant_configmap_rights(env, &ns.name).await;
    create_settled(env, &ns.name, &web_deployment("web", 3, "nginx:1.14", None)).await;
    let original = spec_of(env, &ns.name, "web").await;
    let original_annotations = annotations_of(env, &ns.name, "web").await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15"];
    let crash = |n: &'static str| [("KUBECTL_CANARY_CRASH_AFTER", n)];
    match phase {
        "starting" => {
            // Record created (1), brake and canary template (2): dies before pausing.
            canary_with(env, &ns.name, &start, &crash("2")).await;
        }
        "holding" => assert_exit(&canary(env, &ns.name, &start).await, 0, "start"),
        "promoting" => {
            assert_exit(&canary(env, &ns.name, &start).await, 0, "start");
            canary_with(
                env,
                &ns.name,
                &["promote", "deploy/web", "--canary", "2"],
                &crash("2"),
            )
            .await;
        }
        "promoting to 100%" => {
            assert_exit(&canary(env, &ns.name, &start).await, 0, "start");
            canary_with(
                env,
                &ns.name,
                &["promote", "deploy/web", "--full"],
                &crash("1"),
            )
            .await;
        }
        "aborting" => {
            assert_exit(&canary(env, &ns.name, &start).await, 0, "start");
            canary_with(env, &ns.name, &["abort", "deploy/web"], &crash("1")).await;
        }
        other => panic!("unknown phase {other}"),
    }
    let api = attacker(env, &ns.name).await;
    let recorded = read_record(&api).await;
    assert!(
        annotations_of(env, &ns.name, "web")
            .await
            .contains_key(SEAL_ANNOTATION),
        "{phase}: the Deployment is sealed"
    );
    let how = if break_it {
        let mut cm = api.get(RECORD).await.unwrap();
        cm.data
            .as_mut()
            .unwrap()
            .insert("record.json".into(), "{\"schema\": 1, \"deploy".into());
        api.replace(RECORD, &PostParams::default(), &cm)
            .await
            .unwrap();
        "made unreadable"
    } else {
        api.delete(RECORD, &DeleteParams::default()).await.unwrap();
        "deleted"
    };
    assert_eq!(
        recorded["phase"]["name"],
        match phase {
            "promoting to 100%" => "promotingFull",
            other => other,
        },
        "the phase to lose the record in"
    );
    let attempt = format!("record {how} while {phase}");
    every_command_stops(
        env,
        &ns.name,
        &attempt,
        &[
            ("status deploy/web", LOST),
            ("promote deploy/web --full", LOST),
            ("promote deploy/web --canary 2", LOST),
            ("start deploy/web nginx=nginx:1.16", LOST),
        ],
    )
    .await;
    let start_out = canary(env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.16"]).await;
    assert!(
        !text(&start_out).contains("rollout resume"),
        "{attempt}: start must not advise resuming\n{}",
        text(&start_out)
    );
    let out = canary(env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, &format!("{attempt}: abort recovers"));
    wait_settled(env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(env, &ns.name, "web").await, &[]);
    assert_eq!(
        without_revision(original_annotations),
        without_revision(annotations_of(env, &ns.name, "web").await),
        "{attempt}: annotations restored"
    );
    assert!(
        !record_exists(env, &ns.name, "web").await,
        "{attempt}: the unreadable record is deleted"
    );
    assert_eq!(
        replica_sets_by_image(env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 3)],
        "{attempt}: every pod stable"
    );
    report(
        &attempt,
        "abort deploy/web",
        out.status.code(),
        Outcome::Recovered,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_lost_in_any_phase_is_recognised_and_abort_recovers() {
    let Some(env) = TestEnv::get() else { return };
    let phases = [
        "starting",
        "holding",
        "promoting",
        "promoting to 100%",
        "aborting",
    ];
    futures::future::join_all(
        phases
            .iter()
            .map(|phase| lose_the_record_and_recover(&env, phase, false)),
    )
    .await;
    lose_the_record_and_recover(&env, "holding", true).await;
}

/// The Deployment controller copies the Deployment's annotations onto its new ReplicaSet
/// and never removes them there, so the seal stays on the canary's and the stable
/// ReplicaSet after the canary; `kubectl rollout undo` copies a ReplicaSet's annotations
/// back onto the Deployment. Such a stale seal is harmless: status says so, it is never
/// used to write anything (the Deployment is not braked), start replaces it and abort
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seal_copied_back_by_rollout_undo_is_harmless() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "sec-undo", 2).await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15"];
    assert_exit(&canary(&env, &ns.name, &start).await, 0, "start");
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert!(
        !annotations_of(&env, &ns.name, "web")
            .await
            .contains_key(SEAL_ANNOTATION),
        "the seal is off the Deployment"
    );
    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client().await, &ns.name);
    let sealed_replica_sets = rs_api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|rs| rs.annotations().contains_key(SEAL_ANNOTATION))
        .count();
    assert_eq!(
        sealed_replica_sets, 2,
        "the controller copied the seal onto both ReplicaSets (what docs/SECURITY.md says)"
    );
    let out = kubectl(&env, &["-n", &ns.name, "rollout", "undo", "deploy/web"]).await;
    assert!(out.status.success(), "{}", text(&out));
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert!(
        annotations_of(&env, &ns.name, "web")
            .await
            .contains_key(SEAL_ANNOTATION),
        "undo copied the seal back"
    );
    let status = canary(&env, &ns.name, &["status", "deploy/web"]).await;
    assert_exit(&status, 0, "status");
    assert!(
        text(&status).contains("left by a finished canary"),
        "{}",
        text(&status)
    );
    let before = spec_of(&env, &ns.name, "web").await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.16"]).await,
        0,
        "start over a stale seal",
    );
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert!(
        !annotations_of(&env, &ns.name, "web")
            .await
            .contains_key(SEAL_ANNOTATION),
        "abort took the seal off"
    );
    for command in ["status deploy/web", "start deploy/web", "abort deploy/web"] {
        report(
            "(a Deployment writer) a stale seal copied back by `kubectl rollout undo`",
            command,
            Some(0),
            Outcome::Ignored,
        );
    }
}

/// An intent written into the record (here: promote to 100% on a held canary) is what a
/// crashed `promote --full` leaves too, so it cannot be refused; but no command carries
/// out an intent it was not given, and status says it is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_intent_is_shown_as_not_applied_and_never_carried_out_unasked() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "sec-intent").await;
    grant_configmap_rights(&env, &ns.name).await;
    create_settled(
        &env,
        &ns.name,
        &web_deployment("web", 3, "nginx:1.14", None),
    )
    .await;
    let original = spec_of(&env, &ns.name, "web").await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let api = attacker(&env, &ns.name).await;
    let mut forged = read_record(&api).await;
    forged["phase"] = json!({"name": "promotingFull"});
    write_record(&api, &forged).await;
    let before = deployment_json(&env, &ns.name, "web").await;
    let status = canary(&env, &ns.name, &["status", "deploy/web"]).await;
    assert_exit(&status, 0, "status");
    let shown = text(&status).contains("is not applied to the Deployment yet");
    report(
        "phase: an intent (promote to 100%) written into a held canary's record",
        "status deploy/web",
        status.status.code(),
        Outcome::stopped_if(shown),
    );
    assert!(shown, "{}", text(&status));
    let analyze = canary(&env, &ns.name, &["analyze", "deploy/web"]).await;
    assert_ne!(analyze.status.code(), Some(TAMPERED), "{}", text(&analyze));
    assert_eq!(
        before,
        deployment_json(&env, &ns.name, "web").await,
        "nothing carried out"
    );
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "the user's abort");
    report(
        "phase: an intent (promote to 100%) written into a held canary's record",
        "abort deploy/web",
        out.status.code(),
        Outcome::Ignored,
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// Without the record, the stable ReplicaSet's template is what abort writes: it is checked
/// against the digest sealed on the Deployment, so someone who may write ReplicaSets (but
/// not the Deployment) cannot choose it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_stable_replica_set_is_not_written_by_a_recovery() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "sec-rs", 3).await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let admin: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    let stable_name = read_record(&admin).await["stable"]["replicaSet"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .delete(RECORD, &DeleteParams::default())
        .await
        .unwrap();
    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client().await, &ns.name);
    let mut stable = rs_api.get(&stable_name).await.unwrap();
    let container = &mut stable
        .spec
        .as_mut()
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    container.image = Some("evil:1".into());
    container.security_context = Some(serde_json::from_value(json!({"privileged": true})).unwrap());
    rs_api
        .replace(&stable_name, &PostParams::default(), &stable)
        .await
        .expect("a ReplicaSet writer changes the stable template");
    let attempt = "(a ReplicaSet writer) stable ReplicaSet's template changed, record deleted";
    let before = deployment_json(&env, &ns.name, "web").await;
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    let stopped =
        out.status.code() == Some(4) && text(&out).contains("someone changed the ReplicaSet");
    report(
        attempt,
        "abort deploy/web",
        out.status.code(),
        Outcome::stopped_if(stopped),
    );
    assert!(stopped, "{}", text(&out));
    assert_eq!(before, deployment_json(&env, &ns.name, "web").await);
}
