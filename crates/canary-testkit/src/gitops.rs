//! Scenario actors for the GitOps controller's tests: a GitOps repository that is synced every
//! 2 s and takes commits, and a watch that counts the pods of an image at every event (so the
//! most seen at once cannot slip between two polls) beside the record's phases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::TestEnv;

/// A GitOps repository and its sync (Argo CD's, with self-heal): re-applies its folder with
/// server-side apply every 2 s, until stopped; `commit` replaces the manifest and applies
/// it at once.
pub struct GitOpsRepo {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// How many applies ran.
    pub applies: Arc<Mutex<u32>>,
}

impl GitOpsRepo {
    /// Starts applying `manifest` from a directory of its own.
    pub fn start(env: &TestEnv, namespace: &str, manifest: &Value) -> Self {
        let dir = crate::scenario::scratch("gitops", namespace).join("git");
        std::fs::create_dir_all(&dir).unwrap();
        let gitops = Self {
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            task: Mutex::new(None),
            applies: Arc::new(Mutex::new(0)),
        };
        gitops.write(manifest);
        gitops.apply_once(env);
        let (env, dir, stop, applies) = (
            env.clone(),
            gitops.dir.clone(),
            gitops.stop.clone(),
            gitops.applies.clone(),
        );
        let task = tokio::spawn(async move {
            // Bounded: a forgotten stand-in stops by itself after 10 minutes.
            for _ in 0..300 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let env = env.clone();
                let dir = dir.clone();
                // A sync that fails (the API server restarting under a fault test) is tried
                // again at the next round, as Argo CD's sync retries.
                let _ = tokio::task::spawn_blocking(move || try_apply_dir(&env, &dir)).await;
                *applies.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        *gitops.task.lock().unwrap() = Some(task);
        gitops
    }

    fn write(&self, manifest: &Value) {
        let tmp = self.dir.join("web.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(manifest).unwrap()).unwrap();
        std::fs::rename(&tmp, self.dir.join("web.json")).unwrap();
    }

    /// A new commit: the manifest changes and is applied at once (and then every 2 s).
    pub fn commit(&self, env: &TestEnv, manifest: &Value) {
        self.write(manifest);
        self.apply_once(env);
    }

    fn apply_once(&self, env: &TestEnv) {
        if let Err(error) = try_apply_dir(env, &self.dir) {
            panic!("GitOps apply failed: {error}");
        }
    }

    /// Stops re-applying.
    pub async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for GitOpsRepo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One `kubectl apply --server-side` of `dir` as Argo CD's field manager; `Err` with
/// kubectl's message when it failed.
fn try_apply_dir(env: &TestEnv, dir: &Path) -> Result<(), String> {
    let output = env.run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "-f",
            dir.to_str().unwrap(),
        ],
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A pod-count watch: how many pods of `image` existed at each pod event, with the event's
/// resourceVersion; the resourceVersion at which the record first left its first step (the
/// first promote); the record's phases; every `Available=False` of the Deployment.
pub struct PodCountWatch {
    /// (resourceVersion, pods of the image) at each pod event.
    pub pod_counts: Arc<Mutex<Vec<(u64, usize)>>>,
    /// The resourceVersion of the record's first promote.
    pub first_promote_rv: Arc<Mutex<Option<u64>>>,
    /// The record's phases, in order.
    pub phases: Arc<Mutex<Vec<String>>>,
    /// Every `Available=False` seen.
    pub unavailable: Arc<Mutex<Vec<String>>>,
    /// Every version of the Deployment seen: (resourceVersion, the object as JSON).
    pub deployments: Arc<Mutex<Vec<(u64, Value)>>>,
    /// The record's phase at each of its events: (resourceVersion, phase), `closed` when it
    /// was deleted.
    pub record_events: Arc<Mutex<Vec<(u64, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The next event of a watcher, past its errors (an API server restarting or frozen: the
/// watcher lists again on the next poll, after a short pause), so that an observer keeps
/// observing through a fault; `None` when the stream ends.
async fn next_event<K>(
    stream: &mut (impl futures::Stream<Item = watcher::Result<Event<K>>> + Unpin),
) -> Option<Event<K>> {
    loop {
        match stream.next().await? {
            Ok(event) => return Some(event),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An object's resourceVersion as a number.
fn rv(object: &impl ResourceExt) -> u64 {
    object
        .resource_version()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl PodCountWatch {
    /// Starts watching `namespace` for pods of `image` (and the record of deploy/`deployment`); returns once every watch has its
    /// initial list, so that nothing after this call goes unseen (a watch still listing when
    /// the commit lands would miss the record's first phases, or pods over k). Each watch
    /// reports its first initial list only (a watcher lists again after a lost watch).
    pub async fn start(
        client: &kube::Client,
        namespace: &str,
        deployment: &str,
        image: &str,
    ) -> Self {
        let (listed_tx, mut listed) = tokio::sync::mpsc::channel::<()>(3);
        let pod_counts = Arc::new(Mutex::new(Vec::new()));
        let first_promote_rv = Arc::new(Mutex::new(None));
        let phases = Arc::new(Mutex::new(Vec::new()));
        let unavailable = Arc::new(Mutex::new(Vec::new()));
        let deployment_versions = Arc::new(Mutex::new(Vec::new()));
        let record_events = Arc::new(Mutex::new(Vec::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let image = image.to_string();
        let deployment = deployment.to_string();
        let deployment_name = deployment.clone();
        let counts = pod_counts.clone();
        let mut listed_pods = Some(listed_tx.clone());
        let pod_task = tokio::spawn(async move {
            let mut live: BTreeMap<String, bool> = BTreeMap::new();
            // A (re)list in progress: after an API server restart the watcher lists again,
            // and the pods deleted while it could not watch must not stay counted.
            let mut listing: BTreeMap<String, bool> = BTreeMap::new();
            let mut listing_rv = 0;
            let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
            while let Some(event) = next_event(&mut stream).await {
                let is_new = |pod: &Pod| {
                    pod.spec.as_ref().is_some_and(|s| {
                        s.containers
                            .iter()
                            .any(|c| c.image.as_deref() == Some(image.as_str()))
                    })
                };
                let (pod, gone) = match event {
                    Event::Apply(pod) => (pod, false),
                    Event::Delete(pod) => (pod, true),
                    Event::Init => {
                        listing.clear();
                        listing_rv = 0;
                        continue;
                    }
                    Event::InitApply(pod) => {
                        listing_rv = listing_rv.max(rv(&pod));
                        listing.insert(pod.uid().unwrap_or_default(), is_new(&pod));
                        continue;
                    }
                    Event::InitDone => {
                        live = std::mem::take(&mut listing);
                        let count = live.values().filter(|new| **new).count();
                        counts.lock().unwrap().push((listing_rv, count));
                        if let Some(listed) = listed_pods.take() {
                            let _ = listed.try_send(());
                        }
                        continue;
                    }
                };
                if gone {
                    live.remove(&pod.uid().unwrap_or_default());
                } else {
                    live.insert(pod.uid().unwrap_or_default(), is_new(&pod));
                }
                let count = live.values().filter(|new| **new).count();
                counts.lock().unwrap().push((rv(&pod), count));
            }
        });
        let records: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let (first, seen) = (first_promote_rv.clone(), phases.clone());
        let events = record_events.clone();
        let mut listed_records = Some(listed_tx.clone());
        let record_task = tokio::spawn(async move {
            let config = watcher::Config::default().fields(&format!(
                "metadata.name={}",
                crate::reads::record_name(&deployment)
            ));
            let mut stream = watcher::watcher(records, config).boxed();
            while let Some(event) = next_event(&mut stream).await {
                if matches!(event, Event::InitDone)
                    && let Some(listed) = listed_records.take()
                {
                    let _ = listed.try_send(());
                }
                if let Event::Delete(cm) = &event {
                    events.lock().unwrap().push((rv(cm), "closed".to_string()));
                }
                let (Event::Apply(cm) | Event::InitApply(cm)) = event else {
                    continue;
                };
                let phase = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get("record.json"))
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .and_then(|r| r["phase"]["name"].as_str().map(str::to_string))
                    .unwrap_or_default();
                events.lock().unwrap().push((rv(&cm), phase.clone()));
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&phase) {
                    seen.push(phase.clone());
                }
                if (phase == "promoting" || phase == "promotingFull")
                    && first.lock().unwrap().is_none()
                {
                    *first.lock().unwrap() = Some(rv(&cm));
                }
            }
        });
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let bad = unavailable.clone();
        let versions = deployment_versions.clone();
        let mut listed_deployments = Some(listed_tx);
        let available_task = tokio::spawn(async move {
            let mut stream = watcher::watcher(deployments, watcher::Config::default()).boxed();
            while let Some(event) = next_event(&mut stream).await {
                if matches!(event, Event::InitDone)
                    && let Some(listed) = listed_deployments.take()
                {
                    let _ = listed.try_send(());
                }
                let (Event::Apply(d) | Event::InitApply(d)) = event else {
                    continue;
                };
                if d.name_any() == deployment_name {
                    let object = serde_json::to_value(&d).unwrap_or_default();
                    versions.lock().unwrap().push((rv(&d), object));
                }
                let conditions = d.status.and_then(|s| s.conditions).unwrap_or_default();
                if let Some(c) = conditions
                    .iter()
                    .find(|c| c.type_ == "Available" && c.status == "False")
                {
                    bad.lock().unwrap().push(format!(
                        "Available=False ({}: {})",
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default()
                    ));
                }
            }
        });
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(60), listed.recv())
                .await
                .expect("the observer's watches list within 60 s")
                .expect("an observer watch ended before its initial list");
        }
        Self {
            pod_counts,
            first_promote_rv,
            phases,
            unavailable,
            deployments: deployment_versions,
            record_events,
            tasks: vec![pod_task, record_task, available_task],
        }
    }

    /// The most pods of the image seen at once before the first promote (all events when
    /// there was none).
    pub fn most_before_first_promote(&self) -> usize {
        let cut = self.first_promote_rv.lock().unwrap().unwrap_or(u64::MAX);
        self.pod_counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(rv, _)| *rv < cut)
            .map(|(_, count)| *count)
            .max()
            .unwrap_or(0)
    }

    /// Every time the Deployment was seen with `Available=False`.
    pub fn unavailable(&self) -> Vec<String> {
        self.unavailable.lock().unwrap().clone()
    }

    /// The record's phases in order.
    pub fn phases(&self) -> Vec<String> {
        self.phases.lock().unwrap().clone()
    }

    /// Every version of the Deployment seen, in order, with the record's phase when it was
    /// written (the phase of the record's last event before it in etcd's order of
    /// resourceVersions; empty before the first record, `closed` after its deletion).
    pub fn deployments_by_phase(&self) -> Vec<(String, Value)> {
        let events = self.record_events.lock().unwrap().clone();
        self.deployments
            .lock()
            .unwrap()
            .iter()
            .map(|(version, object)| {
                let phase = events
                    .iter()
                    .rev()
                    .find(|(event, _)| event < version)
                    .map(|(_, phase)| phase.clone())
                    .unwrap_or_default();
                (phase, object.clone())
            })
            .collect()
    }
}

impl Drop for PodCountWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
