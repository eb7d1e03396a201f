//! Argo CD's view of a Deployment: the Lua health check of `deploy/argocd/health.lua` (the one
//! docs/gitops.md gives for argocd-cm) evaluated by gopher-lua, the Lua implementation Argo CD
//! embeds, as Argo CD evaluates it (`testenv/argocd-health`, built by `scripts/testenv
//! argocd-health` when first asked for).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// A health as Argo CD shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    pub status: String,
    /// The script's message (empty when it gives none).
    pub message: String,
}

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The health check's file, the one source of the script docs/gitops.md quotes.
pub fn script() -> PathBuf {
    repo().join("deploy/argocd/health.lua")
}

/// The evaluator's path, built on first use.
fn evaluator() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let output = Command::new(repo().join("scripts/testenv"))
            .arg("argocd-health")
            .output()
            .expect("scripts/testenv runs");
        assert!(
            output.status.success(),
            "scripts/testenv argocd-health failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

/// The health Argo CD shows for each of `objects` (Deployments as the API server returns
/// them) under the project's health check. Fails the test when the script fails on one.
pub fn health(objects: &[Value]) -> Vec<Health> {
    let mut child = Command::new(evaluator())
        .arg("--script")
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the Argo CD health evaluator runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        for object in objects {
            serde_json::to_writer(&mut stdin, object).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the health check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let healths: Vec<Health> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a health as JSON");
            Health {
                status: value["status"].as_str().unwrap_or_default().to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    assert_eq!(healths.len(), objects.len(), "one health per object");
    healths
}
