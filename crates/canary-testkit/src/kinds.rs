//! StatefulSets and DaemonSets in the test environment: their manifests, simulated nodes of a
//! test's own (so that a DaemonSet of a test runs on nodes no other test uses), and a pod
//! watch that keeps every event, so that "never more than k pods of the new revision" is
//! checked at every event, not at a few polls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::{TestEnv, wait_until};

/// The label both controllers put on their pods: the revision a pod was created from (a
/// StatefulSet writes the ControllerRevision's name, a DaemonSet the bare hash).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// A StatefulSet `name` of `replicas` pods of `image` (container `db`, label `app=name`),
/// with `podManagementPolicy` `policy`; with `claim`, a 1 Mi volume from
/// `volumeClaimTemplates` (bound by the real PersistentVolume controller).
pub fn statefulset(
    name: &str,
    replicas: i32,
    image: &str,
    policy: &str,
    claim: bool,
) -> StatefulSet {
    let mut spec = json!({
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "db", "image": image}]}
        }
    });
    if claim {
        spec["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        spec["volumeClaimTemplates"] = json!([{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}
        }]);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": spec
    }))
    .expect("a valid StatefulSet")
}

/// A DaemonSet `name` of `image` (container `agent`, label `app=name`) that runs only on the
/// nodes of `pool` ([`SimNodes`]).
pub fn daemonset(name: &str, pool: &str, image: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {SimNodes::POOL_LABEL: pool},
                    "tolerations": [{"key": SimNodes::POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}],
                    "containers": [{"name": "agent", "image": image}]
                }
            }
        }
    }))
    .expect("a valid DaemonSet")
}

/// Creates `statefulset` in `namespace` and waits until it is settled: its spec observed,
/// every replica Ready, one revision.
pub async fn create_settled_statefulset(
    env: &TestEnv,
    client: &Client,
    namespace: &str,
    statefulset: &StatefulSet,
) {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), statefulset)
        .await
        .expect("create the StatefulSet");
    let name = statefulset.name_any();
    let replicas = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    wait_until(
        env,
        "the StatefulSet settled",
        Duration::from_secs(120),
        || async {
            let Ok(sts) = api.get(&name).await else {
                return false;
            };
            let status = sts.status.unwrap_or_default();
            status.observed_generation >= sts.metadata.generation
                && status.ready_replicas == Some(replicas)
                && status.current_revision.is_some()
                && status.current_revision == status.update_revision
        },
    )
    .await;
}

/// Creates `daemonset` in `namespace` and waits until its spec is observed and `nodes` nodes
/// each run one Ready pod of it.
pub async fn create_settled_daemonset(
    env: &TestEnv,
    client: &Client,
    namespace: &str,
    daemonset: &DaemonSet,
    nodes: usize,
) {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), daemonset)
        .await
        .expect("create the DaemonSet");
    let name = daemonset.name_any();
    let selector = format!("app={name}");
    wait_until(
        env,
        "one Ready pod per node",
        Duration::from_secs(120),
        || async {
            let Ok(ds) = api.get(&name).await else {
                return false;
            };
            let observed = ds.status.and_then(|s| s.observed_generation) >= ds.metadata.generation;
            let pods = live_pods(client, namespace, &selector).await;
            let running: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let on: BTreeSet<&str> = running
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
                .collect();
            observed
                && running.len() == nodes
                && on.len() == nodes
                && running.iter().all(|p| is_ready(p))
        },
    )
    .await;
}

/// The spec and the annotations of a workload as JSON: what a canary must put back, field by
/// field. The API server's own `deprecated.daemonset.template.generation` (the DaemonSet's
/// generation, which every template change raises) is left out.
pub async fn workload_state<K>(api: &Api<K>, name: &str) -> Value
where
    K: kube::Resource + Serialize + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut object = serde_json::to_value(api.get(name).await.expect("read the workload"))
        .expect("a workload serializes");
    if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
        annotations.remove("deprecated.daemonset.template.generation");
    }
    json!({"spec": object["spec"], "annotations": object["metadata"]["annotations"]})
}

/// The UIDs of the PersistentVolumeClaims of `namespace`: a volume kept keeps its UID.
pub async fn claim_uids(client: &Client, namespace: &str) -> BTreeSet<String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    claims
        .list(&ListParams::default())
        .await
        .expect("list the PersistentVolumeClaims")
        .items
        .iter()
        .filter_map(|c| c.uid())
        .collect()
}

/// Whether `pod`'s Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Simulated nodes of one test (the pod simulator adopts Nodes labelled
/// `sim.kubectl-canary.io/node=true`), labelled and tainted with the test's pool so that no
/// other workload lands on them. [`SimNodes::remove`] deletes them; a test that fails leaves
/// them (their names carry the namespace), tainted, to no one's harm.
pub struct SimNodes {
    /// The pool: the test's namespace.
    pub pool: String,
    /// The nodes' names, in order of creation.
    pub names: Vec<String>,
}

impl SimNodes {
    /// The label and taint key of a pool.
    pub const POOL_LABEL: &'static str = "sim.kubectl-canary.io/pool";

    /// No nodes yet, in `pool`.
    pub fn new(pool: &str) -> Self {
        Self {
            pool: pool.to_owned(),
            names: Vec::new(),
        }
    }

    /// Adds `n` nodes and waits until each is Ready without the not-ready taint. Returns
    /// the new names.
    pub async fn add(&mut self, env: &TestEnv, n: usize) -> Vec<String> {
        let nodes: Api<Node> = Api::all(env.client().await);
        let mut added = Vec::new();
        for _ in 0..n {
            let name = format!("{}-n{}", self.pool, self.names.len());
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "sim.kubectl-canary.io/node": "true",
                    Self::POOL_LABEL: self.pool,
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux"
                }},
                "spec": {"taints": [{"key": Self::POOL_LABEL, "value": self.pool, "effect": "NoSchedule"}]}
            }))
            .expect("a valid Node");
            nodes
                .create(&PostParams::default(), &node)
                .await
                .unwrap_or_else(|e| panic!("create node {name}: {e}"));
            self.names.push(name.clone());
            added.push(name);
        }
        let waiting = added.clone();
        wait_until(env, "the new nodes Ready", Duration::from_secs(30), || {
            let nodes = nodes.clone();
            let waiting = waiting.clone();
            async move {
                for name in &waiting {
                    let Ok(node) = nodes.get(name).await else {
                        return false;
                    };
                    let ready = node
                        .status
                        .and_then(|s| s.conditions)
                        .into_iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    let not_ready_taint = node
                        .spec
                        .and_then(|s| s.taints)
                        .into_iter()
                        .flatten()
                        .any(|t| t.key == "node.kubernetes.io/not-ready");
                    if !ready || not_ready_taint {
                        return false;
                    }
                }
                true
            }
        })
        .await;
        added
    }

    /// Deletes DaemonSet `daemonset` of namespace `pool`, waits until its pods are gone, then
    /// deletes the nodes.
    pub async fn remove_with(&self, env: &TestEnv, client: &Client, daemonset: &str) {
        let sets: Api<DaemonSet> = Api::namespaced(client.clone(), &self.pool);
        sets.delete(daemonset, &DeleteParams::foreground())
            .await
            .expect("delete the DaemonSet");
        let selector = format!("app={daemonset}");
        wait_until(
            env,
            "the DaemonSet's pods gone",
            Duration::from_secs(120),
            || async { live_pods(client, &self.pool, &selector).await.is_empty() },
        )
        .await;
        self.remove(client).await;
    }

    /// Deletes the nodes (after the test's DaemonSets and pods are gone).
    pub async fn remove(&self, client: &Client) {
        let nodes: Api<Node> = Api::all(client.clone());
        for name in &self.names {
            let _ = nodes.delete(name, &DeleteParams::default()).await;
        }
    }
}

/// One pod as a [`PodEvents`] event saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSeen {
    /// `Applied` or `Deleted`.
    pub deleted: bool,
    /// The pod's name.
    pub name: String,
    /// Its [`REVISION_LABEL`].
    pub revision: String,
    /// Its node.
    pub node: String,
}

/// Every pod event of one label selector in a namespace, from a real watch, in order.
pub struct PodEvents {
    events: Arc<Mutex<Vec<PodSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodEvents {
    /// Starts watching the pods of `selector` in `namespace`; returns once the watch has
    /// listed (later events are all kept).
    pub async fn start(client: &Client, namespace: &str, selector: &str) -> Self {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let kept = events.clone();
        let config = watcher::Config::default().labels(selector);
        let task = tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut stream = watcher::watcher(pods, config).boxed();
            while let Some(event) = stream.next().await {
                let (pod, deleted) = match event {
                    Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => (pod, false),
                    Ok(Event::Delete(pod)) => (pod, true),
                    Ok(Event::InitDone) => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(Event::Init) | Err(_) => continue,
                };
                kept.lock().unwrap().push(PodSeen {
                    deleted,
                    name: pod.name_any(),
                    revision: pod
                        .labels()
                        .get(REVISION_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    node: pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                });
            }
        });
        let _ = listed_rx.await;
        Self { events, task }
    }

    /// The events so far.
    pub fn seen(&self) -> Vec<PodSeen> {
        self.events.lock().unwrap().clone()
    }

    /// The most pods of `revision` that existed at once, at any event (terminating ones
    /// count: they exist until deleted).
    pub fn most_at_once(&self, revision: &str) -> usize {
        let mut live: BTreeMap<String, String> = BTreeMap::new();
        let mut most = 0;
        for seen in self.seen() {
            if seen.deleted {
                live.remove(&seen.name);
            } else {
                live.insert(seen.name.clone(), seen.revision.clone());
            }
            most = most.max(live.values().filter(|r| *r == revision).count());
        }
        most
    }

    /// Names of the pods deleted, in order, that were on `revision` when deleted.
    pub fn deleted_on(&self, revision: &str) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.deleted && s.revision == revision)
            .map(|s| s.name)
            .collect()
    }

    /// Waits until no event arrives for `quiet` (a negative fact needs a window: the
    /// controller does nothing more), at most `timeout`.
    pub async fn quiet_for(&self, quiet: Duration, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut count = self.events.lock().unwrap().len();
        let mut since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.events.lock().unwrap().len();
            if now != count {
                count = now;
                since = tokio::time::Instant::now();
            } else if since.elapsed() >= quiet {
                return true;
            }
        }
        false
    }
}

impl Drop for PodEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pods of `selector` in `namespace` (terminating ones included).
pub async fn live_pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}
