//! The canary lifecycle against the real controllers of the test environment: exact sizes
//! at rest in both modes and several replica counts, promotion, abort, and the original
//! spec restored field by field.

mod common;

use std::time::Duration;

use canary_testkit::scenario::web_namespace;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, create_settled, spec_of, wait_settled,
    web_deployment,
};
use common::*;
use serde_json::json;

const IMAGE_PATH: &str = ".template.spec.containers[0].image";

/// Expected (image, pods) pairs at rest, sorted like `replica_sets_by_image`.
fn sides(stable: i32, canary: i32) -> Vec<(String, i32)> {
    let mut v = vec![
        ("nginx:1.14".to_string(), stable),
        ("nginx:1.15".to_string(), canary),
    ];
    v.retain(|(_, n)| *n > 0);
    v
}

/// One scenario: start at `first`, grow to `second` (if any), then promote fully or abort,
/// checking the exact sizes at each rest and the spec at the end.
async fn scenario(
    env: &TestEnv,
    replicas: i32,
    mode: &str,
    first: &str,
    first_pods: i32,
    second: Option<(&str, i32)>,
    finish_with_abort: bool,
) {
    let ns = web_namespace(env, &format!("life-{mode}-{replicas}"), replicas).await;
    let before = spec_of(env, &ns.name, "web").await;
    let stable_while = |pods: i32| {
        if mode == "surge" {
            replicas
        } else {
            replicas - pods
        }
    };
    let context = format!("{replicas} replicas, {mode}, canary {first}");

    let out = canary(
        env,
        &ns.name,
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--canary",
            first,
            "--mode",
            mode,
        ],
    )
    .await;
    assert_exit(&out, 0, &format!("start ({context})"));
    assert_eq!(
        replica_sets_by_image(env, &ns.name).await,
        sides(stable_while(first_pods), first_pods),
        "held sizes ({context})"
    );
    assert!(
        is_paused(env, &ns.name, "web").await,
        "paused after start ({context})"
    );
    // At rest: the brake and the pause keep the sizes exact while time passes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        replica_sets_by_image(env, &ns.name).await,
        sides(stable_while(first_pods), first_pods),
        "sizes at rest ({context})"
    );

    let mut held = first_pods;
    if let Some((size, pods)) = second {
        let out = canary(env, &ns.name, &["promote", "deploy/web", "--canary", size]).await;
        assert_exit(&out, 0, &format!("promote --canary {size} ({context})"));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            replica_sets_by_image(env, &ns.name).await,
            sides(stable_while(pods), pods),
            "sizes after promote to {size} ({context})"
        );
        held = pods;
    }
    let _ = held;

    if finish_with_abort {
        let out = canary(env, &ns.name, &["abort", "deploy/web"]).await;
        assert_exit(&out, 0, &format!("abort ({context})"));
        assert_eq!(
            replica_sets_by_image(env, &ns.name).await,
            sides(replicas, 0),
            "after abort ({context})"
        );
        wait_settled(env, &ns.name, "web", Duration::from_secs(60)).await;
        assert_spec_equal_except(&before, &spec_of(env, &ns.name, "web").await, &[]);
    } else {
        let out = canary(env, &ns.name, &["promote", "deploy/web", "--full"]).await;
        assert_exit(&out, 0, &format!("promote --full ({context})"));
        wait_settled(env, &ns.name, "web", Duration::from_secs(60)).await;
        assert_eq!(
            replica_sets_by_image(env, &ns.name).await,
            vec![("nginx:1.15".to_string(), replicas)],
            "after promote --full ({context})"
        );
        let after = spec_of(env, &ns.name, "web").await;
        assert_eq!(
            after.pointer("/template/spec/containers/0/image"),
            Some(&json!("nginx:1.15"))
        );
        assert_spec_equal_except(&before, &after, &[IMAGE_PATH]);
    }
    assert!(
        !record_exists(env, &ns.name, "web").await,
        "the record is gone ({context})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_mode_holds_exact_sizes_for_several_replica_counts() {
    let Some(env) = TestEnv::get() else { return };
    futures::join!(
        scenario(&env, 1, "surge", "1", 1, None, true),
        scenario(&env, 2, "surge", "1", 1, None, false),
        scenario(&env, 3, "surge", "1", 1, Some(("2", 2)), true),
        scenario(&env, 10, "surge", "1", 1, Some(("30%", 4)), false),
        scenario(&env, 20, "surge", "5%", 1, Some(("3", 3)), true),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_mode_holds_exact_sizes_without_extra_pods() {
    let Some(env) = TestEnv::get() else { return };
    futures::join!(
        scenario(&env, 2, "replace", "1", 1, None, true),
        scenario(&env, 3, "replace", "1", 1, Some(("2", 2)), false),
        scenario(&env, 10, "replace", "10%", 1, Some(("50%", 5)), true),
        scenario(&env, 20, "replace", "2", 2, None, false),
    );
}

/// A Deployment with settings of its own gets every one of them back, and a canary that
/// ran meanwhile leaves no trace in the spec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_promote_restore_non_default_settings_exactly() {
    let Some(env) = TestEnv::get() else { return };
    for abort in [true, false] {
        let ns = TestNamespace::create(&env, "restore").await;
        let mut deployment = web_deployment(
            "web",
            4,
            "nginx:1.14",
            Some(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}}),
            ),
        );
        let spec = deployment.spec.as_mut().unwrap();
        spec.min_ready_seconds = Some(1);
        spec.progress_deadline_seconds = Some(120);
        spec.revision_history_limit = Some(5);
        create_settled(&env, &ns.name, &deployment).await;
        let before = spec_of(&env, &ns.name, "web").await;
        start_canary(&env, &ns.name, "nginx:1.15", "2", &[], "start").await;
        let during = spec_of(&env, &ns.name, "web").await;
        // Held at rest: paused, and the brake is off again (docs/brake-during-hold.md).
        assert_eq!(during["paused"], json!(true), "paused while held");
        assert_eq!(
            during["minReadySeconds"],
            json!(1),
            "the Deployment's own minReadySeconds while held"
        );
        assert_eq!(during["progressDeadlineSeconds"], json!(120));
        let command = if abort {
            vec!["abort", "deploy/web"]
        } else {
            vec!["promote", "deploy/web", "--full"]
        };
        assert_exit(&canary(&env, &ns.name, &command).await, 0, "finish");
        wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
        let after = spec_of(&env, &ns.name, "web").await;
        assert_spec_equal_except(&before, &after, if abort { &[] } else { &[IMAGE_PATH] });
    }
}

/// `status` explains the state, in tables and JSON, and Events record what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_both_sides_and_events_are_recorded() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "status", 10).await;
    let out = canary(&env, &ns.name, &["status", "deploy/web"]).await;
    assert_exit(&out, 0, "status without a canary");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("phase: none"),
        "{}",
        text(&out)
    );

    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let out = canary(&env, &ns.name, &["status", "deploy/web", "-o", "json"]).await;
    assert_exit(&out, 0, "status -o json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(report["stable"]["desired"], json!(10));
    assert_eq!(report["canary"]["desired"], json!(1));
    assert_eq!(report["canary"]["ready"], json!(1));
    let share = report["canaryTrafficShare"].as_f64().unwrap();
    assert!((share - 1.0 / 11.0).abs() < 1e-9, "share {share}");
    assert!(
        report["startedBy"].as_str().unwrap().starts_with("admin"),
        "{report}"
    );

    let out = canary(&env, &ns.name, &["status", "deploy/web", "-o", "wide"]).await;
    let wide = String::from_utf8_lossy(&out.stdout);
    assert!(
        wide.contains("holding a canary of 1 pod(s)")
            && wide.contains("REPLICASET")
            && wide.contains("history:"),
        "{wide}"
    );

    let events = kubectl(&env, &["-n", &ns.name, "get", "events", "-o", "json"]).await;
    let events: serde_json::Value = serde_json::from_slice(&events.stdout).expect("events JSON");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"CanaryStarting") && reasons.contains(&"CanaryHeld"),
        "{reasons:?}"
    );
}

/// `status --watch` follows changes from the watch stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_follows_a_promotion() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "watch", 3).await;
    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let mut watch = tokio::process::Command::new(BIN)
        .args([
            "-n",
            &ns.name,
            "status",
            "deploy/web",
            "--watch",
            "-o",
            "json",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn status --watch");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_exit(
        &canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "2"]).await,
        0,
        "promote",
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    watch.start_kill().ok();
    let output = watch.wait_with_output().await.expect("watch output");
    let text = String::from_utf8_lossy(&output.stdout);
    // One JSON document per line, one line per change.
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line one JSON document");
    }
    assert!(
        text.contains("\"phaseDescription\":\"holding a canary of 1 pod(s)\""),
        "{text}"
    );
    assert!(
        text.contains("\"phaseDescription\":\"holding a canary of 2 pod(s)\""),
        "{text}"
    );
    assert!(
        text.contains("promoting the canary from 1 to 2"),
        "the watch saw the promotion in progress:\n{text}"
    );
}

/// Dry runs print the changes and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_change_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "dry", 10).await;
    let before = spec_of(&env, &ns.name, "web").await;
    let out = start_canary(
        &env,
        &ns.name,
        "nginx:1.15",
        "2",
        &["--dry-run"],
        "start --dry-run",
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("maxSurge=2, maxUnavailable=0") && stdout.contains("nothing changed"),
        "{stdout}"
    );
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
    assert!(!record_exists(&env, &ns.name, "web").await);

    assert_exit(
        &canary(&env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
        0,
        "start",
    );
    let held = spec_of(&env, &ns.name, "web").await;
    for args in [
        vec!["abort", "deploy/web", "--dry-run"],
        vec!["promote", "deploy/web", "--full", "--dry-run"],
        vec![
            "promote",
            "deploy/web",
            "--canary",
            "3",
            "--dry-run",
            "-o",
            "json",
        ],
    ] {
        let out = canary(&env, &ns.name, &args).await;
        assert_exit(&out, 0, &args.join(" "));
        assert_spec_equal_except(&held, &spec_of(&env, &ns.name, "web").await, &[]);
    }
    assert_eq!(replica_sets_by_image(&env, &ns.name).await, sides(10, 1));
}

/// `--no-wait` returns once the update is made; the controller finishes on its own and the
/// spec ends exactly as with waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_returns_after_the_update_and_the_controller_finishes() {
    let Some(env) = TestEnv::get() else { return };
    for (finish, image) in [("abort", "nginx:1.14"), ("promote", "nginx:1.15")] {
        let ns = web_namespace(&env, "nowait", 10).await;
        let before = spec_of(&env, &ns.name, "web").await;
        assert_exit(
            &start_release(&env, &ns.name, &["--no-wait"]).await,
            0,
            "start --no-wait",
        );
        let args: Vec<&str> = if finish == "abort" {
            vec!["abort", "deploy/web", "--no-wait"]
        } else {
            vec!["promote", "deploy/web", "--full", "--no-wait"]
        };
        assert_exit(&canary(&env, &ns.name, &args).await, 0, &args.join(" "));
        assert!(
            !record_exists(&env, &ns.name, "web").await,
            "{finish}: the record is released at once"
        );
        wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
        assert_eq!(
            replica_sets_by_image(&env, &ns.name).await,
            vec![(image.to_string(), 10)]
        );
        let allowed: &[&str] = if finish == "abort" {
            &[]
        } else {
            &[IMAGE_PATH]
        };
        assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, allowed);
    }
}
