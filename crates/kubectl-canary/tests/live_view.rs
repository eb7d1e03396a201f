//! `status --watch` under a real terminal (tmux): the full-screen view shows both sides,
//! the share and the keys; `a` asks before aborting, any other key cancels, `y` aborts
//! through abort's own code path (the Deployment back as it was, field by field). Without
//! a terminal, one document per change: a JSON document per line, YAML documents opened
//! by `---`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use canary_testkit::scenario::web_namespace;
use canary_testkit::terminal::LiveTerminal;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of};
use common::{BIN, assert_exit, canary, record_exists};

const OK: i32 = 0;

#[tokio::test]
async fn the_live_view_under_tmux_shows_the_canary_and_aborts_after_confirmation() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "live-view", 3).await;
    let before = spec_of(&env, &ns.name, "web").await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"];
    assert_exit(&canary(&env, &ns.name, &start).await, OK, "start");

    let tmux = LiveTerminal::watch_status(&env, BIN, &ns.name, "web", "kc-live");

    let screen = tmux.wait_for(
        &[
            "deploy/web in",
            "stable",
            "canary",
            "25.0% of requests",
            "nginx=nginx:1.15",
            "q: quit",
        ],
        "the live view",
    );
    assert!(screen.contains("holding"), "{screen}");
    // Its pods, by name, on both sides.
    assert!(screen.matches("Running").count() >= 4, "{screen}");

    // `a` asks; `n` cancels and changes nothing.
    tmux.send("a");
    tmux.wait_for(&["Abort: roll deploy/web back"], "the abort question");
    tmux.send("n");
    tmux.wait_for(&["q: quit"], "the question cancelled");
    assert!(
        record_exists(&env, &ns.name, "web").await,
        "nothing changed"
    );

    // `a`, `y`: abort runs, as `kubectl canary abort` would.
    tmux.send("a");
    tmux.wait_for(&["Abort: roll deploy/web back"], "the abort question");
    tmux.send("y");
    let exit = tmux.wait_exit(Duration::from_secs(120), "abort never ended");
    assert_eq!(exit, "EXIT=0", "{}", tmux.screen());
    let screen = tmux.screen();
    assert!(
        screen.contains("abort deploy/web (confirmed in the live view)"),
        "{screen}"
    );
    assert!(
        !record_exists(&env, &ns.name, "web").await,
        "abort deleted the record"
    );
    assert_spec_equal_except(&before, &spec_of(&env, &ns.name, "web").await, &[]);
}

#[tokio::test]
async fn without_a_terminal_each_change_is_one_document() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "watch-docs", 2).await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"];
    assert_exit(&canary(&env, &ns.name, &start).await, OK, "start");

    let spawn = |format: &str| {
        Command::new(BIN)
            .args([
                "--kubeconfig",
                env.kubeconfig.to_str().unwrap(),
                "-n",
                &ns.name,
            ])
            .args(["status", "deploy/web", "--watch", "-o", format])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the CLI runs")
    };
    // JSON: a change (the abort) gives more documents, each a line of its own.
    let mut json = spawn("json");
    let mut lines = BufReader::new(json.stdout.take().unwrap()).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().unwrap().unwrap()).expect("one JSON document per line");
    assert_eq!(first["deployment"], "web");
    assert!(first["canary"].is_object(), "{first}");
    let abort = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&abort, OK, "abort");
    let second: serde_json::Value =
        serde_json::from_str(&lines.next().unwrap().unwrap()).expect("the next document, one line");
    assert_ne!(first, second, "a change printed");
    json.kill().ok();
    json.wait().ok();

    // YAML: documents opened by `---`.
    let mut yaml = spawn("yaml");
    let mut out = yaml.stdout.take().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    yaml.kill().ok();
    yaml.wait().ok();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("---\n"), "{text}");
    assert!(text.contains("deployment: web"), "{text}");
}
