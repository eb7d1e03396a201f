//! `status --watch` in a real terminal: a tmux server of the test's own (its socket name),
//! one session `view` of 140x45 running the command, keys sent, the screen read, and the
//! command's exit status caught in a file. Ended when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::TestEnv;

/// A tmux server running `status deploy/NAME --watch` of one namespace.
pub struct LiveTerminal {
    socket: String,
    exit_file: PathBuf,
}

impl LiveTerminal {
    /// Starts `bin status deploy/{deployment} --watch` in namespace `namespace`, in a tmux
    /// session of its own; `prefix` names the socket and the scratch folder.
    pub fn watch_status(
        env: &TestEnv,
        bin: &str,
        namespace: &str,
        deployment: &str,
        prefix: &str,
    ) -> Self {
        let tag = format!("{prefix}-{}-{namespace}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        let exit_file = dir.join("exit");
        let command = format!(
            "{bin} --kubeconfig {} -n {namespace} status deploy/{deployment} --watch; echo EXIT=$? > {}; sleep 120",
            env.kubeconfig.display(),
            exit_file.display()
        );
        let terminal = Self {
            socket: tag,
            exit_file,
        };
        terminal.tmux(&[
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
        terminal
    }

    /// Runs tmux with `args` against this server; returns what it printed.
    pub fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs (scripts/ensure-test-tools installs it)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `key` into the view.
    pub fn send(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "view", key]);
    }

    /// What the view shows now.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "view"])
    }

    /// Waits until the screen shows every one of `texts` (30 s at most); returns it.
    pub fn wait_for(&self, texts: &[&str], what: &str) -> String {
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

    /// Waits until the command has ended (within `timeout`); returns `EXIT=<status>`.
    pub fn wait_exit(&self, timeout: Duration, what: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.exit_file) {
                return text.trim().to_string();
            }
            assert!(Instant::now() < deadline, "{what}:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LiveTerminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}
