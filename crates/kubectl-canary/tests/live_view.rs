//! `status --watch` under a real terminal (tmux): the full-screen view shows both sides,
//! the share and the keys; `a` asks before aborting, any other key cancels, `y` aborts
//! through abort's own code path (the Deployment back as it was, field by field). Without
//! a terminal, one document per change: a JSON document per line, YAML documents opened
//! by `---`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of};
use common::{BIN, assert_exit, canary, record_exists};

const OK: i32 = 0;

/// A tmux server of this test's own (its socket name), ended when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs (scripts/ensure-test-tools installs it)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "view"])
    }

    /// Waits until the screen shows every one of `texts`; returns it.
    fn wait_for(&self, texts: &[&str], what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

#[tokio::test]
async fn the_live_view_under_tmux_shows_the_canary_and_aborts_after_confirmation() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "live-view", 3).await;
    let before = spec_of(&env, &ns.name, "web").await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"];
    assert_exit(&canary(&env, &ns.name, &start).await, OK, "start");

    let dir = std::env::temp_dir().join(format!("kc-live-{}-{}", std::process::id(), ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let exit_file = dir.join("exit");
    let command = format!(
        "{BIN} --kubeconfig {} -n {} status deploy/web --watch; echo EXIT=$? > {}; sleep 120",
        env.kubeconfig.display(),
        ns.name,
        exit_file.display()
    );
    let tmux = Tmux {
        socket: format!("kc-live-{}-{}", std::process::id(), ns.name),
    };
    tmux.tmux(&[
        "new-session",
        "-d",
        "-s",
        "view",
        "-x",
        "140",
        "-y",
        "45",
        &command,
    ]);

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
    tmux.tmux(&["send-keys", "-t", "view", "a"]);
    tmux.wait_for(&["Abort: roll deploy/web back"], "the abort question");
    tmux.tmux(&["send-keys", "-t", "view", "n"]);
    tmux.wait_for(&["q: quit"], "the question cancelled");
    assert!(
        record_exists(&env, &ns.name, "web").await,
        "nothing changed"
    );

    // `a`, `y`: abort runs, as `kubectl canary abort` would.
    tmux.tmux(&["send-keys", "-t", "view", "a"]);
    tmux.wait_for(&["Abort: roll deploy/web back"], "the abort question");
    tmux.tmux(&["send-keys", "-t", "view", "y"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Ok(text) = std::fs::read_to_string(&exit_file) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "abort never ended:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(exit.trim(), "EXIT=0", "{}", tmux.screen());
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
