//! The CLI may die at any instant. A test hook (feature `test-hooks`) kills the process
//! right after its Nth change to the cluster; for every N of every command, `status` must
//! explain the state and both `abort` and `promote --full` must finish from it, leaving the
//! Deployment's spec equal to the original field by field (apart from the image after a
//! promotion). Ctrl-C during `start` must leave nothing changed or a recorded, paused canary.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use canary_core::seal::SEAL_ANNOTATION;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of, wait_settled};
use common::*;

const IMAGE_PATH: &str = ".template.spec.containers[0].image";
/// More than any command's number of mutation points, so the last run completes.
const MAX_POINTS: usize = 6;

/// Sets up a Deployment (with a held canary when `held`), runs `command` crashing after
/// mutation `n`, checks status, then recovers with `recovery`. Returns whether it crashed.
async fn crash_and_recover(
    env: &TestEnv,
    command: &[&str],
    held: bool,
    n: usize,
    recovery: &str,
) -> bool {
    let ns = web_namespace(env, "crash", 3).await;
    let original = spec_of(env, &ns.name, "web").await;
    let original_annotations = annotations_of(env, &ns.name, "web").await;
    if held {
        assert_exit(
            &canary(env, &ns.name, &["start", "deploy/web", "nginx=nginx:1.15"]).await,
            0,
            "setup start",
        );
    }
    let context = format!(
        "`{}` crashing after mutation {n}, recovered by {recovery}",
        command.join(" ")
    );
    let out = canary_with(
        env,
        &ns.name,
        command,
        &[("KUBECTL_CANARY_CRASH_AFTER", &n.to_string())],
    )
    .await;
    let crashed = out.status.signal() == Some(6);
    if !crashed {
        assert_exit(&out, 0, &format!("{context}: ran to the end"));
    }

    let status = canary(env, &ns.name, &["status", "deploy/web"]).await;
    assert_exit(&status, 0, &format!("{context}: status explains the state"));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("phase:"),
        "{}",
        text(&status)
    );

    let has_record = record_exists(env, &ns.name, "web").await;
    let has_seal = annotations_of(env, &ns.name, "web")
        .await
        .contains_key(SEAL_ANNOTATION);
    let recovery_args: Vec<&str> = match recovery {
        "abort" => vec!["abort", "deploy/web"],
        _ => vec!["promote", "deploy/web", "--full"],
    };
    // A record without the seal is one no update of the Deployment confirms (start died
    // right after creating it): promote refuses it without writing, abort discards it.
    let unconfirmed = has_record && !has_seal;
    if unconfirmed && recovery == "promote" {
        let before = deployment_json(env, &ns.name, "web").await;
        let out = canary(env, &ns.name, &recovery_args).await;
        assert_exit(
            &out,
            20,
            &format!("{context}: an unconfirmed record is not promoted"),
        );
        assert_eq!(
            before,
            deployment_json(env, &ns.name, "web").await,
            "{context}: nothing written"
        );
        let out = canary(env, &ns.name, &["abort", "deploy/web"]).await;
        assert_exit(&out, 0, &format!("{context}: abort discards it"));
    } else if has_record {
        let out = canary(env, &ns.name, &recovery_args).await;
        assert_exit(&out, 0, &format!("{context}: recovery"));
    } else if has_seal {
        // The crashed command had deleted the record but not yet taken its seal off: the
        // next command finishes that.
        let out = canary(env, &ns.name, &recovery_args).await;
        assert_exit(&out, 0, &format!("{context}: finishes the cleanup"));
    } else {
        // The crashed command had already finished its work (the seal was its last
        // change): there is nothing left to recover, and the next command says so.
        let out = canary(env, &ns.name, &recovery_args).await;
        assert_exit(&out, 3, &format!("{context}: nothing to recover"));
    }
    wait_settled(env, &ns.name, "web", Duration::from_secs(60)).await;
    assert!(
        !record_exists(env, &ns.name, "web").await,
        "{context}: record left behind"
    );
    let after = spec_of(env, &ns.name, "web").await;
    let image = after
        .pointer("/template/spec/containers/0/image")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let sizes = replica_sets_by_image(env, &ns.name).await;
    assert_eq!(
        sizes,
        vec![(image.clone(), 3)],
        "{context}: one version on every pod"
    );
    if image == "nginx:1.14" {
        assert_spec_equal_except(&original, &after, &[]);
    } else {
        assert_eq!(image, "nginx:1.15", "{context}");
        assert_spec_equal_except(&original, &after, &[IMAGE_PATH]);
    }
    if recovery == "abort" && has_record {
        assert_eq!(
            image, "nginx:1.14",
            "{context}: abort ends on the stable version"
        );
    }
    assert_eq!(
        without_revision(original_annotations),
        without_revision(annotations_of(env, &ns.name, "web").await),
        "{context}: the Deployment's annotations are as before"
    );
    if recovery == "promote" && has_record && !unconfirmed {
        assert_eq!(
            image, "nginx:1.15",
            "{context}: promote ends on the new version"
        );
    }
    crashed
}

async fn every_point_of(env: &TestEnv, command: &[&str], held: bool) {
    for recovery in ["abort", "promote"] {
        let runs = futures::future::join_all(
            (1..=MAX_POINTS).map(|n| crash_and_recover(env, command, held, n, recovery)),
        )
        .await;
        assert!(
            runs[0],
            "`{}` did not crash after its first change: build with --features test-hooks",
            command.join(" ")
        );
        let points = runs.iter().take_while(|c| **c).count();
        assert!(
            runs[points..].iter().all(|c| !c),
            "crash points are contiguous: {runs:?}"
        );
        assert!(
            points < MAX_POINTS,
            "`{}` has more mutation points than the test covers",
            command.join(" ")
        );
        eprintln!(
            "`{}`: {points} mutation points, each recovered by {recovery}",
            command.join(" ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_recovers_from_a_crash_at_every_mutation_point() {
    let Some(env) = TestEnv::get() else { return };
    every_point_of(
        &env,
        &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_recovers_from_a_crash_at_every_mutation_point() {
    let Some(env) = TestEnv::get() else { return };
    every_point_of(&env, &["promote", "deploy/web", "--canary", "2"], true).await;
    every_point_of(&env, &["promote", "deploy/web", "--full"], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_recovers_from_a_crash_at_every_mutation_point() {
    let Some(env) = TestEnv::get() else { return };
    every_point_of(&env, &["abort", "deploy/web"], true).await;
}

/// Ctrl-C at various moments of `start`: either nothing changed, or a recorded, paused
/// canary of exactly the asked size; the output says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_start_leaves_nothing_or_a_recorded_paused_canary() {
    let Some(env) = TestEnv::get() else { return };
    let delays = [0u64, 80, 160, 250, 400, 700, 1200];
    let outcomes = futures::future::join_all(delays.iter().map(|delay| {
        let env = env.clone();
        async move {
            let ns = web_namespace(&env, "sigint", 4).await;
            let original = spec_of(&env, &ns.name, "web").await;
            let child = tokio::process::Command::new(BIN)
                .args([
                    "-n",
                    &ns.name,
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15__ready-after-3s",
                    "--canary",
                    "2",
                ])
                .env("KUBECONFIG", &env.kubeconfig)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn start");
            tokio::time::sleep(Duration::from_millis(*delay)).await;
            let pid = child.id().expect("pid").to_string();
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status();
            let out = child.wait_with_output().await.expect("start output");
            // What a signal left is said on stderr, in every output mode.
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            let context = format!("Ctrl-C after {delay} ms\n{}", text(&out));
            let recorded = record_exists(&env, &ns.name, "web").await;
            if recorded {
                assert!(
                    is_paused(&env, &ns.name, "web").await,
                    "{context}: a recorded canary is paused"
                );
                let sizes = replica_sets_by_image(&env, &ns.name).await;
                assert_eq!(
                    sizes,
                    vec![
                        ("nginx:1.14".to_string(), 4),
                        ("nginx:1.15__ready-after-3s".to_string(), 2)
                    ],
                    "{context}: exactly the asked canary"
                );
                assert!(
                    stderr.contains("paused canary")
                        || stderr.contains("stays held and recorded")
                        || out.status.code() == Some(0),
                    "{context}: says what it left"
                );
                assert_exit(
                    &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
                    0,
                    "abort after Ctrl-C",
                );
                wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
                "canary"
            } else {
                assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
                assert!(
                    out.status.signal() == Some(2)
                        || stderr.contains("nothing was changed")
                        || stderr.contains("nothing is changed"),
                    "{context}: says nothing changed (or died by the signal before any change)"
                );
                "nothing"
            }
        }
    }))
    .await;
    eprintln!("Ctrl-C outcomes by delay {delays:?}: {outcomes:?}");
}
