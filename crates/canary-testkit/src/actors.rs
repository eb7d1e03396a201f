//! Other actors on a Deployment, for the tests of foreign changes: a GitOps controller's
//! self-heal loop, and a watch that samples the Deployment's `Available` condition over a
//! whole test so a moment of `Available=False` cannot slip between two polls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use crate::TestEnv;

/// A stand-in for a GitOps controller with self-heal (Argo CD): re-applies a stored
/// manifest with `kubectl apply --server-side --force-conflicts --field-manager=argocd-controller`
/// every `every`, at most `rounds` times, until stopped.
pub struct GitOpsLoop {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
    manifest: ManifestFile,
}

/// The stored manifest, removed when the loop is dropped.
struct ManifestFile(PathBuf);

impl Drop for ManifestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl GitOpsLoop {
    /// Starts the loop; the first apply happens at once.
    pub fn start(
        env: &TestEnv,
        namespace: &str,
        manifest: &Value,
        every: Duration,
        rounds: usize,
    ) -> Self {
        let path =
            std::env::temp_dir().join(format!("kc-gitops-{namespace}-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec_pretty(manifest).expect("json"))
            .expect("write the manifest");
        let manifest = ManifestFile(path.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let env = env.clone();
        let namespace = namespace.to_string();
        let flag = stop.clone();
        let thread =
            std::thread::spawn(move || run_loop(&env, &namespace, &path, every, rounds, &flag));
        Self {
            stop,
            thread: Some(thread),
            manifest,
        }
    }

    /// Stops the loop; returns how many applies succeeded.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("the GitOps loop"))
            .unwrap_or(0)
    }

    /// The manifest file the loop applies.
    pub fn manifest(&self) -> &std::path::Path {
        &self.manifest.0
    }
}

impl Drop for GitOpsLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_loop(
    env: &TestEnv,
    namespace: &str,
    path: &Path,
    every: Duration,
    rounds: usize,
    stop: &AtomicBool,
) -> usize {
    let file = path.display().to_string();
    let mut applied = 0;
    for round in 0..rounds {
        // The first apply happens whatever: a loop stopped at once still applied once.
        if round > 0 && stop.load(Ordering::SeqCst) {
            break;
        }
        let out = env.run(
            "kubectl",
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=argocd-controller",
                "-n",
                namespace,
                "-f",
                &file,
            ],
        );
        if out.status.success() {
            applied += 1;
        } else {
            eprintln!(
                "gitops stand-in: apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    applied
}

/// One observation of a Deployment's availability.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilitySample {
    /// Time since the sampler started.
    pub at: Duration,
    /// The `Available` condition's status (`True`, `False`, `Unknown`, or `none`).
    pub available: String,
    /// Its reason.
    pub reason: String,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// `spec.replicas`.
    pub replicas: i32,
}

/// Samples a Deployment's `Available` condition on every watch event.
pub struct AvailabilitySampler {
    task: tokio::task::JoinHandle<Vec<AvailabilitySample>>,
    stop: Arc<AtomicBool>,
}

impl AvailabilitySampler {
    /// Starts watching deploy/`name`.
    pub async fn start(env: &TestEnv, namespace: &str, name: &str) -> Self {
        let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut stream = watcher(api, config)
                .applied_objects()
                .default_backoff()
                .boxed();
            loop {
                let next = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
                if flag.load(Ordering::SeqCst) {
                    return samples;
                }
                let Ok(Some(Ok(d))) = next else { continue };
                let status = d.status.clone().unwrap_or_default();
                let condition = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "Available")
                    .cloned();
                samples.push(AvailabilitySample {
                    at: started.elapsed(),
                    available: condition
                        .as_ref()
                        .map_or("none".into(), |c| c.status.clone()),
                    reason: condition.and_then(|c| c.reason).unwrap_or_default(),
                    available_replicas: status.available_replicas.unwrap_or(0),
                    replicas: d.spec.and_then(|s| s.replicas).unwrap_or(1),
                });
            }
        });
        Self { task, stop }
    }

    /// Stops and returns every sample.
    pub async fn stop(self) -> Vec<AvailabilitySample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the availability sampler")
    }

    /// Stops and fails the test if the Deployment was ever `Available=False`.
    pub async fn assert_never_unavailable(self, what: &str) -> Vec<AvailabilitySample> {
        self.assert_unavailable_at_most(what, Duration::ZERO).await
    }

    /// Stops and fails the test if the Deployment was `Available=False` for longer than
    /// `longest` at a stretch (or at all, for zero). A scale-up under `maxUnavailable=0` is
    /// False until the new pods are Ready, as for any Deployment; a brake left on a stable
    /// ReplicaSet would keep it False for good.
    pub async fn assert_unavailable_at_most(
        self,
        what: &str,
        longest: Duration,
    ) -> Vec<AvailabilitySample> {
        let samples = self.stop().await;
        assert!(!samples.is_empty(), "{what}: no availability sample at all");
        let mut since: Option<Duration> = None;
        let mut worst = Duration::ZERO;
        let mut any = false;
        for sample in &samples {
            match (sample.available == "False", since) {
                (true, None) => {
                    since = Some(sample.at);
                    any = true;
                }
                (false, Some(start)) => {
                    worst = worst.max(sample.at - start);
                    since = None;
                }
                _ => {}
            }
        }
        let still_false = since.is_some();
        assert!(
            !still_false && (longest > Duration::ZERO || !any) && worst <= longest,
            "{what}: the Deployment went Available=False (longest {worst:?}, still False at the end: \
             {still_false}, allowed {longest:?})\nall samples: {samples:?}"
        );
        samples
    }
}
