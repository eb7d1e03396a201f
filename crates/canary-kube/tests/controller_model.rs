//! `canary_core::rollout_math` against the real Deployment controller.
//!
//! For a grid of replica counts and strategies, a settled Deployment gets a new pod template
//! and the real kube-controller-manager of the testenv rolls it out while this test makes new
//! pods Ready **one at a time**, each only once the controller has stopped moving. Every
//! (old, new) ReplicaSet size the controller writes is recorded from a watch and compared with
//! `native_rollout_sequence`, and so are the states where the controller rested. A second
//! test records the sizes the brake update produces (`brake_sequence`), then changes replicas
//! or maxSurge of the paused, braked canary and compares the controller's proportional
//! scaling with `DeploymentModel::scale`.
//!
//! Readiness is controlled with a pod readiness gate: the pod simulator keeps a gated pod
//! not Ready until the gate condition is True (as a kubelet does), and this test sets that
//! condition through the pod's status subresource, as Kubernetes' own
//! test/integration/deployment marks pods ready.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_core::rollout_math::{
    CanaryMode, DeploymentModel, Fenceposts, IntOrPercent, ReplicaSetModel, RolloutMathError,
    RolloutState, brake_sequence, brake_strategy, native_rollout_sequence, validate_rolling_update,
};
use canary_testkit::{TestEnv, TestNamespace};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;

/// The readiness gate this test opens by hand.
const GATE: &str = "test.kubectl-canary.io/ready";
/// The controller counts as done with a change when no ReplicaSet event arrived for this long.
const QUIET: Duration = Duration::from_millis(400);
/// How long a caught-up state the model does not rest in must stay without a ReplicaSet
/// event before it counts as a rest: under load the controller-manager may take longer than
/// [`QUIET`] between two writes of one step (its work queue, its rate limiter, a retried
/// conflict), and a state sampled in between is not a rest. A real divergence still shows:
/// the controller then stays there, and the state is recorded and compared.
const CONFIRM: Duration = Duration::from_secs(20);
/// Longest wait for any one step of the controller (generous: the controller-manager's
/// client is rate-limited and the cluster is shared with other tests).
const STEP_TIMEOUT: Duration = Duration::from_secs(150);
/// Cases running at once. The testenv's controller-manager client allows 200 requests/s, so
/// the limit is the 2 cores the API server, controllers and tests share.
const PARALLEL_CASES: usize = 6;

fn int_or_string(value: IntOrPercent) -> serde_json::Value {
    serde_json::to_value(value).expect("IntOrPercent serializes")
}

fn deployment(replicas: i32, max_surge: IntOrPercent, max_unavailable: IntOrPercent) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": int_or_string(max_surge),
                "maxUnavailable": int_or_string(max_unavailable),
            }},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "readinessGates": [{"conditionType": GATE}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": "nginx:1.14"}],
                },
            },
        },
    }))
    .expect("valid Deployment")
}

/// ReplicaSet sizes as the watch reports them.
#[derive(Default)]
struct ReplicaSets {
    /// name -> (spec.replicas, status.availableReplicas)
    by_name: BTreeMap<String, (i32, i32)>,
    /// Names of ReplicaSets whose controller has not yet caught up with their spec (pods not
    /// yet created or deleted, or the spec's generation not yet observed).
    behind: BTreeSet<String>,
}

impl ReplicaSets {
    fn apply(&mut self, rs: &ReplicaSet) {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let available = rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        let status = rs.status.clone().unwrap_or_default();
        let caught_up =
            status.observed_generation >= rs.metadata.generation && status.replicas == spec;
        if caught_up {
            self.behind.remove(&name);
        } else {
            self.behind.insert(name.clone());
        }
        self.by_name.insert(name, (spec, available));
    }

    /// (old, new) sizes: `old` is the ReplicaSet of the original template, the new one any other.
    fn sizes(&self, old_name: &str) -> (i32, i32) {
        let old = self.by_name.get(old_name).map_or(0, |s| s.0);
        let new = self
            .by_name
            .iter()
            .filter(|(name, _)| name.as_str() != old_name)
            .map(|(_, s)| s.0)
            .sum();
        (old, new)
    }

    fn available(&self) -> i32 {
        self.by_name.values().map(|s| s.1).sum()
    }

    fn new_available(&self, old_name: &str) -> i32 {
        self.by_name
            .iter()
            .filter(|(name, _)| name.as_str() != old_name)
            .map(|(_, s)| s.1)
            .sum()
    }
}

/// What the real controller did in one case.
struct Observed {
    /// Every (old, new) size in order, starting with (N, 0).
    states: Vec<(i32, i32)>,
    /// The sizes at which the controller rested before each pod was made Ready, and at the end.
    rests: Vec<(i32, i32)>,
}

/// Opens the readiness gate of `pod`.
async fn open_gate(pods: &Api<Pod>, pod: &str) {
    pods.patch_status(
        pod,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [{"type": GATE, "status": "True"}]}})),
    )
    .await
    .unwrap_or_else(|e| panic!("open the readiness gate of {pod}: {e}"));
}

fn is_gate_open(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == GATE && c.status == "True")
        })
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < STEP_TIMEOUT,
            "timed out after {STEP_TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Merge-patches deploy/web and waits until the controller has observed the change.
async fn patch_observed(deployments: &Api<Deployment>, patch: serde_json::Value, what: &str) {
    let changed = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let generation = changed.metadata.generation;
    wait_until(&format!("{what} observed"), || async {
        deployments
            .get("web")
            .await
            .expect("get")
            .status
            .and_then(|s| s.observed_generation)
            >= generation
    })
    .await;
}

/// Creates the Deployment, makes all its pods Ready, and returns its one ReplicaSet's name.
async fn settle_initial(client: &Client, namespace: &str, deploy: &Deployment) -> String {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    deployments
        .create(&PostParams::default(), deploy)
        .await
        .unwrap_or_else(|e| panic!("create Deployment in {namespace}: {e}"));
    let replicas = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    wait_until(&format!("{namespace}: initial pods Ready"), || async {
        let list = pods.list(&ListParams::default()).await.expect("list pods");
        for pod in list.items.iter().filter(|p| !is_gate_open(p)) {
            if let Some(name) = &pod.metadata.name {
                open_gate(&pods, name).await;
            }
        }
        let d = deployments.get("web").await.expect("get Deployment");
        let status = d.status.unwrap_or_default();
        status.available_replicas == Some(replicas)
            && status.updated_replicas == Some(replicas)
            && status.replicas == Some(replicas)
            && status.observed_generation == d.metadata.generation
    })
    .await;
    let list = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list ReplicaSets");
    assert_eq!(
        list.items.len(),
        1,
        "{namespace}: one ReplicaSet before the change"
    );
    list.items[0]
        .metadata
        .name
        .clone()
        .expect("ReplicaSet name")
}

/// Runs one case on the real controller.
async fn observe_rollout(
    client: &Client,
    namespace: &str,
    replicas: i32,
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    model_rests: &[(i32, i32)],
) -> Observed {
    let deploy = deployment(replicas, max_surge, max_unavailable);
    let old_name = settle_initial(client, namespace, &deploy).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);

    let list = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list ReplicaSets");
    let mut sets = ReplicaSets::default();
    for rs in &list.items {
        sets.apply(rs);
    }
    let version = list.metadata.resource_version.clone().unwrap_or_default();
    // A raw watch, not a reflector: every write arrives, in order, nothing is coalesced.
    let mut events = replica_sets
        .watch(&WatchParams::default().timeout(290), &version)
        .await
        .expect("watch ReplicaSets")
        .boxed();
    let mut states = vec![sets.sizes(&old_name)];
    let mut rests = Vec::new();

    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.15"}
            ]}}}})),
        )
        .await
        .expect("change the pod template");
    let generation = patched.metadata.generation.unwrap_or(0);

    let mut opened: BTreeSet<String> = BTreeSet::new();
    let case = format!(
        "{namespace} (replicas {replicas}, maxSurge {max_surge}, maxUnavailable {max_unavailable})"
    );
    for _ in 0..=replicas + 1 {
        // Wait until the controller has seen the last change (the template, or the last pod
        // made Ready) and then until it stops writing.
        let start = Instant::now();
        let mut last_event = Instant::now();
        loop {
            match tokio::time::timeout(QUIET, events.try_next()).await {
                Ok(Ok(Some(WatchEvent::Added(rs) | WatchEvent::Modified(rs)))) => {
                    last_event = Instant::now();
                    sets.apply(&rs);
                    let sizes = sets.sizes(&old_name);
                    if states.last() != Some(&sizes) {
                        states.push(sizes);
                    }
                    continue;
                }
                Ok(Ok(Some(WatchEvent::Deleted(rs)))) => {
                    panic!(
                        "{case}: ReplicaSet {:?} deleted during the rollout",
                        rs.metadata.name
                    )
                }
                Ok(Ok(Some(WatchEvent::Error(e)))) => panic!("{case}: watch error {e:?}"),
                Ok(Ok(Some(WatchEvent::Bookmark(_)))) => continue,
                Ok(Ok(None)) => panic!("{case}: the ReplicaSet watch ended"),
                Ok(Err(e)) => panic!("{case}: watch failed: {e}"),
                Err(_quiet) => {}
            }
            let d = deployments.get("web").await.expect("get Deployment");
            let status = d.status.unwrap_or_default();
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "{case}: the controller did not settle; states so far {states:?}; ReplicaSets behind {:?}, (spec, available) {:?}, Deployment status {status:?}",
                sets.behind,
                sets.by_name
            );
            let caught_up = sets.behind.is_empty()
                && status.observed_generation >= Some(generation)
                && status.available_replicas.unwrap_or(0) == sets.available()
                && sets.new_available(&old_name) == opened.len() as i32;
            if caught_up {
                // A rest the model expects next (or the one just recorded: the controller
                // may rest several times in one state) is taken at once; any other state
                // only once it has stayed for CONFIRM.
                let sizes = sets.sizes(&old_name);
                let mut distinct = rests.clone();
                distinct.dedup();
                let expected =
                    rests.last() == Some(&sizes) || model_rests.get(distinct.len()) == Some(&sizes);
                if expected || last_event.elapsed() >= CONFIRM {
                    break;
                }
            }
        }
        let sizes = sets.sizes(&old_name);
        rests.push(sizes);
        if sizes == (0, replicas) && sets.new_available(&old_name) == replicas {
            return Observed { states, rests };
        }
        // Make one more new pod Ready: any pod not of the old ReplicaSet whose gate is shut.
        let old_hash = old_name.trim_start_matches("web-").to_owned();
        let candidates = pods.list(&ListParams::default()).await.expect("list pods");
        let next = candidates.items.iter().find(|pod| {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                .cloned()
                .unwrap_or_default();
            hash != old_hash
                && pod.metadata.deletion_timestamp.is_none()
                && !is_gate_open(pod)
                && !opened.contains(pod.metadata.name.as_deref().unwrap_or_default())
        });
        let Some(pod) = next.and_then(|p| p.metadata.name.clone()) else {
            let seen: Vec<String> = candidates
                .items
                .iter()
                .map(|p| {
                    format!(
                        "{} gate {}{}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        if is_gate_open(p) { "open" } else { "shut" },
                        if p.metadata.deletion_timestamp.is_some() {
                            " terminating"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            panic!(
                "{case}: the controller stopped at {sizes:?} with every new pod Ready; states {states:?}; pods {seen:?}"
            );
        };
        open_gate(&pods, &pod).await;
        opened.insert(pod);
    }
    panic!("{case}: more steps than pods; states {states:?}")
}

fn iop(text: &str) -> IntOrPercent {
    text.parse().expect("valid IntOrPercent")
}

/// The states the model rests in (waiting for a pod to become Ready), then the end.
fn model_rests(model: &[RolloutState], replicas: i32) -> Vec<(i32, i32)> {
    let mut rests: Vec<(i32, i32)> = model
        .iter()
        .filter(|s| s.resting)
        .map(RolloutState::sizes)
        .collect();
    rests.push((0, replicas));
    rests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_rollout_sequence_matches_the_real_controller() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let strategies = [
        ("25%", "25%"),
        ("1", "0"),
        ("0", "1"),
        ("2", "1"),
        // Rounds to 0/0 below 10 replicas, where the controller makes maxUnavailable 1.
        ("0", "10%"),
        ("30%", "0"),
        ("50%", "50%"),
    ];
    let replica_counts = [1, 2, 3, 5, 10, 20];
    let gate = Arc::new(Semaphore::new(PARALLEL_CASES));
    let mut tasks = Vec::new();
    // Largest cases first so that they do not run last alone.
    for &replicas in replica_counts.iter().rev() {
        for &(surge, unavailable) in &strategies {
            let (env, client, gate) = (env.clone(), client.clone(), gate.clone());
            let (max_surge, max_unavailable) = (iop(surge), iop(unavailable));
            tasks.push(tokio::spawn(async move {
                let _slot = gate.acquire().await.expect("semaphore");
                let namespace = TestNamespace::create(&env, "ctrl-model").await;
                let model = native_rollout_sequence(replicas, max_surge, max_unavailable)
                    .expect("a valid strategy");
                let observed = observe_rollout(
                    &client,
                    &namespace.name,
                    replicas,
                    max_surge,
                    max_unavailable,
                    &model_rests(&model, replicas),
                )
                .await;
                (replicas, max_surge, max_unavailable, observed, model)
            }));
        }
    }
    let mut mismatches = Vec::new();
    let cases = tasks.len();
    for task in tasks {
        let (replicas, max_surge, max_unavailable, observed, model) = match task.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let model_states: Vec<(i32, i32)> = model.iter().map(RolloutState::sizes).collect();
        let model_rests = model_rests(&model, replicas);
        // The controller may rest several times in one state (one pod Ready is not always
        // enough to move): compare the distinct resting states in order.
        let mut real_rests = observed.rests.clone();
        real_rests.dedup();
        if observed.states != model_states || real_rests != model_rests {
            mismatches.push(format!(
                "replicas {replicas}, maxSurge {max_surge}, maxUnavailable {max_unavailable}:\n  controller {:?}\n  model      {model_states:?}\n  controller rests {real_rests:?}\n  model rests      {model_rests:?}",
                observed.states
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "the model differs from the real controller in {} of {cases} cases:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_refuses_what_the_model_refuses() {
    let Some(env) = TestEnv::get() else { return };
    let namespace = TestNamespace::create(&env, "ctrl-model-invalid").await;
    let deployments: Api<Deployment> = Api::namespaced(env.client().await, &namespace.name);
    for (surge, unavailable) in [
        ("0", "0"),
        ("0%", "0%"),
        ("0", "0%"),
        ("1", "101%"),
        ("-1", "1"),
    ] {
        let (max_surge, max_unavailable) = (iop(surge), iop(unavailable));
        let Err(RolloutMathError::InvalidStrategy { violations }) =
            validate_rolling_update(max_surge, max_unavailable)
        else {
            panic!("the model accepts maxSurge {surge} maxUnavailable {unavailable}");
        };
        let refused = deployments
            .create(
                &PostParams::default(),
                &deployment(3, max_surge, max_unavailable),
            )
            .await
            .expect_err("the API server must refuse the strategy");
        let kube::Error::Api(status) = &refused else {
            panic!("unexpected error {refused}");
        };
        assert_eq!(status.code, 422, "{status:?}");
        for violation in &violations {
            assert!(
                status.message.contains(&violation.to_string()),
                "the API server's message {:?} lacks the model's {violation}",
                status.message
            );
        }
    }
    // And what the model accepts, the API server accepts.
    for (index, (surge, unavailable)) in [("0", "1"), ("200%", "0"), ("0", "100%")]
        .into_iter()
        .enumerate()
    {
        let mut deploy = deployment(1, iop(surge), iop(unavailable));
        deploy.metadata.name = Some(format!("valid-{index}"));
        assert!(validate_rolling_update(iop(surge), iop(unavailable)).is_ok());
        deployments
            .create(&PostParams::default(), &deploy)
            .await
            .unwrap_or_else(|e| panic!("maxSurge {surge} maxUnavailable {unavailable}: {e}"));
    }
}

/// A change made to a paused, braked canary.
#[derive(Debug, Clone, Copy)]
enum PausedChange {
    /// `kubectl scale` (or an HPA) sets `spec.replicas`.
    Replicas(i32),
    /// The brake's maxSurge is raised (surge mode).
    MaxSurge(i32),
}

/// The controller's view of the Deployment's ReplicaSets, for `DeploymentModel`.
fn model_of(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    fenceposts: Fenceposts,
) -> (DeploymentModel, Vec<String>, Option<String>) {
    let template = deployment.spec.as_ref().map(|s| s.template.clone());
    // ReplicaSetsByCreationTimestamp: by creation time, then by name.
    let mut ordered: Vec<&ReplicaSet> = replica_sets.iter().collect();
    ordered.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            rs.metadata.name.clone(),
        )
    });
    let annotation = |rs: &ReplicaSet, key: &str| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(|v| v.parse::<i32>().ok())
    };
    let mut old = Vec::new();
    let mut old_names = Vec::new();
    let mut new = None;
    let mut new_name = None;
    for (rank, rs) in ordered.into_iter().enumerate() {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let model = ReplicaSetModel {
            name: name.clone(),
            created: rank as u64,
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            available: rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0),
            desired_replicas: annotation(rs, "deployment.kubernetes.io/desired-replicas"),
            max_replicas: annotation(rs, "deployment.kubernetes.io/max-replicas"),
        };
        // The new ReplicaSet is the one whose template (without the hash label) is the
        // Deployment's; the only other is the stable one.
        let mut rs_template = rs.spec.as_ref().and_then(|s| s.template.clone());
        if let Some(labels) = rs_template
            .as_mut()
            .and_then(|t| t.metadata.as_mut())
            .and_then(|m| m.labels.as_mut())
        {
            labels.remove("pod-template-hash");
        }
        if rs_template == template {
            new = Some(model);
            new_name = Some(name);
        } else {
            old.push(model);
            old_names.push(name);
        }
    }
    let model = DeploymentModel {
        replicas: deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1),
        fenceposts,
        status_replicas: deployment
            .status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0),
        old,
        new,
    };
    (model, old_names, new_name)
}

/// Sizes by ReplicaSet name.
fn sizes_by_name(replica_sets: &[ReplicaSet]) -> BTreeMap<String, i32> {
    replica_sets
        .iter()
        .map(|rs| {
            (
                rs.metadata.name.clone().unwrap_or_default(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            )
        })
        .collect()
}

/// What [`paused_change`] saw.
struct PausedOutcome {
    /// (old, new) sizes from the brake update until the canary was held.
    brake_states: Vec<(i32, i32)>,
    /// Sizes by ReplicaSet that `DeploymentModel::scale` predicts after the change.
    predicted: BTreeMap<String, i32>,
    /// Sizes by ReplicaSet after the controller acted on the change.
    observed: BTreeMap<String, i32>,
}

/// Holds a braked canary of `canary_pods` on `replicas` (recording the sizes on the way),
/// pauses, applies `change`, and compares what the controller does with the model.
async fn paused_change(
    client: &Client,
    namespace: &str,
    replicas: i32,
    mode: CanaryMode,
    canary_pods: i32,
    change: PausedChange,
) -> PausedOutcome {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let mut deploy = deployment(replicas, IntOrPercent::DEFAULT, IntOrPercent::DEFAULT);
    // No readiness gate here: the simulator makes pods Ready at once, and the brake keeps the
    // canary pods from becoming Available.
    if let Some(pod) = deploy.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.readiness_gates = None;
    }
    deployments
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap_or_else(|e| panic!("create Deployment in {namespace}: {e}"));
    let settled = |d: &Deployment, replicas: i32| {
        let status = d.status.clone().unwrap_or_default();
        status.observed_generation >= d.metadata.generation
            && status.available_replicas == Some(replicas)
            && status.updated_replicas == Some(replicas)
    };
    wait_until(&format!("{namespace}: settled"), || async {
        settled(&deployments.get("web").await.expect("get"), replicas)
    })
    .await;
    // Record every ReplicaSet size from the brake update on: brake_sequence predicts them.
    let before_brake = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(before_brake.items.len(), 1, "{namespace}: one ReplicaSet");
    let old_name = before_brake.items[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    let mut sets = ReplicaSets::default();
    sets.apply(&before_brake.items[0]);
    let version = before_brake
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut events = replica_sets
        .watch(&WatchParams::default().timeout(290), &version)
        .await
        .expect("watch ReplicaSets")
        .boxed();
    let mut brake_states = vec![sets.sizes(&old_name)];
    let brake = brake_strategy(mode, canary_pods);
    let braked = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {
                "minReadySeconds": 1_000_000_000,
                "progressDeadlineSeconds": 1_000_000_001,
                "strategy": {"rollingUpdate": {"maxSurge": brake.max_surge, "maxUnavailable": brake.max_unavailable}},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.15"}]}},
            }})),
        )
        .await
        .expect("brake");
    let generation = braked.metadata.generation;
    let held = (replicas - brake.max_unavailable, canary_pods);
    let start = Instant::now();
    loop {
        match tokio::time::timeout(QUIET, events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(rs) | WatchEvent::Modified(rs)))) => {
                sets.apply(&rs);
                let sizes = sets.sizes(&old_name);
                if brake_states.last() != Some(&sizes) {
                    brake_states.push(sizes);
                }
                continue;
            }
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => continue,
            Ok(other) => panic!("{namespace}: ReplicaSet watch: {other:?}"),
            Err(_quiet) => {}
        }
        let d = deployments.get("web").await.expect("get");
        assert!(
            start.elapsed() < STEP_TIMEOUT,
            "{namespace}: the canary was not held at {held:?}; states {brake_states:?}"
        );
        if d.status.and_then(|s| s.observed_generation) >= generation
            && sets.behind.is_empty()
            && sets.sizes(&old_name) == held
        {
            break;
        }
    }
    patch_observed(
        &deployments,
        json!({"spec": {"paused": true}}),
        &format!("{namespace}: pause"),
    )
    .await;

    let before = deployments.get("web").await.expect("get");
    let list = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list");
    let (new_replicas, new_fenceposts, patch) = match change {
        PausedChange::Replicas(to) => (to, brake, json!({"spec": {"replicas": to}})),
        PausedChange::MaxSurge(to) => (
            replicas,
            Fenceposts {
                max_surge: to,
                max_unavailable: 0,
            },
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": to}}}}),
        ),
    };
    let sizes_before = sizes_by_name(&list.items);
    let (mut model, old_names, new_name) = model_of(&before, &list.items, brake);
    model.replicas = new_replicas;
    model.fenceposts = new_fenceposts;
    model.scale();
    let mut predicted = BTreeMap::new();
    for (name, rs) in old_names.iter().zip(&model.old) {
        predicted.insert(name.clone(), rs.replicas);
    }
    if let (Some(name), Some(rs)) = (new_name, &model.new) {
        predicted.insert(name, rs.replicas);
    }

    // sync() scales every ReplicaSet before it writes observedGeneration.
    patch_observed(
        &deployments,
        patch,
        &format!("{namespace}: change while paused"),
    )
    .await;
    let after = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list");
    let observed = sizes_by_name(&after.items);
    // Every case is chosen so that the controller must rescale: a comparison of two
    // unchanged size lists would prove nothing.
    assert_ne!(
        observed, sizes_before,
        "{namespace}: the controller did not rescale"
    );
    PausedOutcome {
        brake_states,
        predicted,
        observed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brake_and_paused_scaling_match_the_model() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let cases = [
        (10, CanaryMode::Surge, 2, PausedChange::Replicas(20)),
        (10, CanaryMode::Surge, 2, PausedChange::Replicas(5)),
        (10, CanaryMode::Surge, 2, PausedChange::Replicas(11)),
        (4, CanaryMode::Surge, 1, PausedChange::Replicas(9)),
        (10, CanaryMode::Replace, 2, PausedChange::Replicas(20)),
        (10, CanaryMode::Replace, 3, PausedChange::Replicas(3)),
        (10, CanaryMode::Surge, 2, PausedChange::MaxSurge(3)),
        (5, CanaryMode::Surge, 1, PausedChange::MaxSurge(4)),
    ];
    let gate = Arc::new(Semaphore::new(PARALLEL_CASES));
    let mut tasks = Vec::new();
    for (replicas, mode, canary_pods, change) in cases {
        let (env, client, gate) = (env.clone(), client.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.expect("semaphore");
            let namespace = TestNamespace::create(&env, "ctrl-paused").await;
            let outcome = paused_change(
                &client,
                &namespace.name,
                replicas,
                mode,
                canary_pods,
                change,
            )
            .await;
            let brake_model = brake_sequence(replicas, mode, canary_pods);
            (
                format!("{replicas} replicas, {mode} canary of {canary_pods}, then {change:?}"),
                brake_model,
                outcome,
            )
        }));
    }
    let mut mismatches = Vec::new();
    for task in tasks {
        let (case, brake_model, outcome) = match task.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if outcome.brake_states != brake_model {
            mismatches.push(format!(
                "{case}: the brake\n  controller {:?}\n  model      {brake_model:?}",
                outcome.brake_states
            ));
        }
        if outcome.predicted != outcome.observed {
            mismatches.push(format!(
                "{case}: proportional scaling\n  controller {:?}\n  model      {:?}",
                outcome.observed, outcome.predicted
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "the model differs from the real controller:\n{}",
        mismatches.join("\n")
    );
}
