//! SIGINT and SIGTERM are handled the same way in every command and phase: the first one
//! settles into a safe state (a recorded, paused canary, or nothing changed) and says which;
//! a second one ends the process at once, saying what this run changed and how to continue.
//! After each, `abort` puts the Deployment's spec back field by field.

mod common;

use std::time::Duration;

use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of, wait_settled};
use common::*;

const INTERRUPTED: i32 = 130;

fn spawn(env: &TestEnv, ns: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["-n", ns])
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the CLI")
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits until the record exists, so the signal lands after the first write.
async fn wait_for_record(env: &TestEnv, ns: &str) {
    for _ in 0..200 {
        if record_exists(env, ns, "web").await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("start never created its record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_start_waits_leaves_a_recorded_paused_canary() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "sigterm", 4).await;
    let original = spec_of(&env, &ns.name, "web").await;
    // Canary pods that take long to become Ready keep `start` waiting for them.
    let child = spawn(
        &env,
        &ns.name,
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15__ready-after-60s",
            "--canary",
            "1",
        ],
    );
    wait_for_record(&env, &ns.name).await;
    // Let it reach the wait for the canary's pods.
    for _ in 0..200 {
        if is_paused(&env, &ns.name, "web").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("SIGTERM ends start within a minute")
        .expect("output");
    assert_exit(&out, INTERRUPTED, "start after SIGTERM");
    // Signal messages go to stderr in every output mode (stdout holds only results).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stays held and recorded") || stderr.contains("paused canary"),
        "{}",
        text(&out)
    );
    assert!(record_exists(&env, &ns.name, "web").await);
    assert!(is_paused(&env, &ns.name, "web").await, "held: paused");
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![
            ("nginx:1.14".to_string(), 4),
            ("nginx:1.15__ready-after-60s".to_string(), 1)
        ],
        "exactly the asked canary"
    );
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort after SIGTERM",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_leaves_at_once_saying_what_was_changed() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "sigint2", 4).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let child = spawn(
        &env,
        &ns.name,
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15__ready-after-60s",
            "--canary",
            "1",
        ],
    );
    wait_for_record(&env, &ns.name).await;
    signal(&child, "INT");
    signal(&child, "INT");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("a second signal ends start at once")
        .expect("output");
    assert_exit(&out, INTERRUPTED, "start after two SIGINTs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        (stderr.contains("leaving at once")
            && stderr.contains("created configmaps/web.kubectl-canary"))
            || stderr.contains("paused canary")
            || stderr.contains("removed the record"),
        "says what it left: {}",
        text(&out)
    );
    // Whatever it left, abort (or nothing, if the record is gone) restores the spec exactly.
    if record_exists(&env, &ns.name, "web").await {
        let abort = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
        assert_exit(&abort, 0, "abort after two SIGINTs");
        wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    }
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_where_nothing_settles_ends_at_once_and_says_nothing_changed() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "sigwatch", 2).await;
    start_canary(&env, &ns.name, "nginx:1.15", "1", &[], "start").await;
    let child = spawn(&env, &ns.name, &["status", "deploy/web", "--watch"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("SIGTERM ends status --watch at once")
        .expect("output");
    assert_exit(&out, INTERRUPTED, "status --watch after SIGTERM");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
        "{}",
        text(&out)
    );
}
