//! `canary_core::rollout_math`'s StatefulSet and DaemonSet models against the real
//! controllers of the testenv.
//!
//! Each case brakes a settled workload the way a canary does (a StatefulSet's partition, a
//! DaemonSet's `OnDelete`, in the same write as the new template), lets the real controller
//! act, and compares what it did with the model: which pods moved to the new revision and in
//! which order, that no event ever showed more than k pods of the new revision, and, after an
//! abort (the template and the brake put back), which pods the controller leaves for the tool
//! to delete (the StatefulSet's forced rollback; the DaemonSet's `OnDelete` pods), until every
//! pod is back on the stable revision with its volume kept. A pod watch keeps every event; a
//! negative fact (the controller does nothing more) is held over a quiet window.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_core::rollout_math::{
    CanarySize, DaemonPod, DaemonSetModel, OrdinalPod, PodManagementPolicy, StatefulSetModel,
    canary_deletions, forced_rollback_deletions, plan_daemonset_canary, plan_statefulset_canary,
    rollback_deletions,
};
use canary_kube::kinds::{DaemonSetView, StatefulSetView};
use canary_testkit::kinds::{
    PodEvents, SimNodes, claim_uids, create_settled_statefulset, daemonset, live_pods, statefulset,
};
use canary_testkit::{TestEnv, TestNamespace, wait_for, wait_until};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The controller counts as done when no pod event arrived for this long.
const QUIET: Duration = Duration::from_secs(3);
/// Longest wait for any one state.
const TIMEOUT: Duration = Duration::from_secs(120);

// --- StatefulSet ---

/// The real StatefulSet's pods as the model holds them, read through the view.
async fn ordinal_pods(client: &Client, ns: &str, name: &str) -> BTreeMap<i32, OrdinalPod> {
    StatefulSetView::read(client, ns, name)
        .await
        .expect("read the StatefulSet")
        .pods_by_ordinal()
}

/// Waits until the StatefulSet's controller has seen its spec; returns it.
async fn observed(env: &TestEnv, api: &Api<StatefulSet>, name: &str) -> StatefulSet {
    wait_for(env, "the StatefulSet observed", TIMEOUT, || async {
        let sts = api.get(name).await.ok()?;
        let status = sts.status.as_ref()?;
        (status.observed_generation? >= sts.metadata.generation?).then_some(sts.clone())
    })
    .await
}

/// Waits until the real pods are the model's, then holds a quiet window and compares again:
/// the controller rests where the model rests.
async fn rests_as_modelled(
    env: &TestEnv,
    client: &Client,
    ns: &str,
    name: &str,
    model: &StatefulSetModel,
    events: &PodEvents,
) {
    let expected: BTreeMap<i32, OrdinalPod> = model.pods.clone();
    wait_until(env, "the pods the model predicts", TIMEOUT, || async {
        ordinal_pods(client, ns, name).await == expected
    })
    .await;
    assert!(
        events.quiet_for(QUIET, TIMEOUT).await,
        "the controller never rested"
    );
    assert_eq!(
        ordinal_pods(client, ns, name).await,
        expected,
        "rests as modelled"
    );
}

struct StatefulSetCase {
    what: &'static str,
    replicas: i32,
    k: i32,
    policy: PodManagementPolicy,
    /// The canary's image (a `__never-ready` one is broken).
    image: &'static str,
    claim: bool,
}

async fn statefulset_case(env: &TestEnv, case: StatefulSetCase) {
    let client = env.client().await;
    let namespace = TestNamespace::create(env, "kinds-sts").await;
    let ns = namespace.name.as_str();
    let policy = format!("{:?}", case.policy);
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let manifest = statefulset("db", case.replicas, "db:v1", &policy, case.claim);
    create_settled_statefulset(env, &client, ns, &manifest).await;
    let settled = observed(env, &api, "db").await;
    let status = settled.status.clone().unwrap();
    let stable = status.update_revision.clone().unwrap();
    let claims_before = claim_uids(&client, ns).await;
    assert_eq!(
        claims_before.len(),
        if case.claim {
            case.replicas as usize
        } else {
            0
        }
    );

    // The canary's one write: the new template and the partition.
    let view = StatefulSetView::read(&client, ns, "db")
        .await
        .expect("read");
    let facts = view.facts();
    assert_eq!(
        (
            facts.replicas,
            facts.on_delete,
            facts.partition,
            facts.caught_up
        ),
        (case.replicas, false, 0, true)
    );
    assert_eq!(
        (&facts.current_revision, &facts.update_revision),
        (&stable, &stable)
    );
    assert_eq!(view.policy(), case.policy);
    assert_eq!(view.revision_list()[0].name, stable);
    let canary = plan_statefulset_canary(&facts, CanarySize::Pods(case.k)).expect("a plan");
    let events = PodEvents::start(&client, ns, "app=db").await;
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": canary.partition}},
            "template": {"spec": {"containers": [{"name": "db", "image": case.image}]}}
        }})),
    )
    .await
    .expect("brake and new template");
    let braked = observed(env, &api, "db").await;
    let new = braked.status.unwrap().update_revision.unwrap();
    assert_ne!(new, stable);
    let broken = case.image.contains("never-ready");
    let becomes_ready = |r: &str| !(broken && r == new);
    let mut model =
        StatefulSetModel::settled(case.replicas, canary.partition, case.policy, &stable);
    model.update_revision = new.clone();
    let writes = model.settle(becomes_ready);
    rests_as_modelled(env, &client, ns, "db", &model, &events).await;
    let deleted: Vec<String> = events.deleted_on(&stable);
    let modelled: Vec<String> = writes
        .iter()
        .filter_map(|w| match w {
            canary_core::rollout_math::StatefulSetWrite::Delete { ordinal } => {
                Some(format!("db-{ordinal}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(deleted, modelled, "{}: the order of replacement", case.what);
    assert!(
        events.most_at_once(&new) <= case.k as usize,
        "{}: more than k pods of the new revision at one event",
        case.what
    );

    // Abort: the template and the partition back in one write; then the forced rollback.
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"spec": {"containers": [{"name": "db", "image": "db:v1"}]}}
        }})),
    )
    .await
    .expect("revert");
    let reverted = observed(env, &api, "db").await;
    assert_eq!(
        reverted.status.unwrap().update_revision.unwrap(),
        stable,
        "{}: the stable revision is reused",
        case.what
    );
    model.update_revision = stable.clone();
    model.partition = 0;
    model.settle(becomes_ready);
    rests_as_modelled(env, &client, ns, "db", &model, &events).await;
    let real = ordinal_pods(&client, ns, "db").await;
    let deletions = forced_rollback_deletions(case.policy, &real, &stable);
    assert_eq!(
        deletions,
        forced_rollback_deletions(case.policy, &model.pods, &stable),
        "{}",
        case.what
    );
    assert_eq!(
        !deletions.is_empty(),
        broken && case.policy == PodManagementPolicy::OrderedReady,
        "{}: only OrderedReady leaves a broken pod",
        case.what
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for ordinal in &deletions {
        pods.delete(&format!("db-{ordinal}"), &DeleteParams::default())
            .await
            .expect("delete a broken canary pod");
        model.pods.remove(ordinal);
    }
    model.settle(becomes_ready);
    assert_eq!(
        model.ordinals_on(&stable),
        (0..case.replicas).collect::<Vec<_>>()
    );
    rests_as_modelled(env, &client, ns, "db", &model, &events).await;
    let claims_after = claim_uids(&client, ns).await;
    assert_eq!(claims_after, claims_before, "{}: volumes kept", case.what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_partition_and_forced_rollback_match_the_real_controller() {
    let Some(env) = TestEnv::get() else { return };
    let cases = [
        StatefulSetCase {
            what: "OrderedReady, 2 of 5, with volumes",
            replicas: 5,
            k: 2,
            policy: PodManagementPolicy::OrderedReady,
            image: "db:v2",
            claim: true,
        },
        StatefulSetCase {
            what: "OrderedReady, a never-ready canary of 2 of 4 (blocks at the first)",
            replicas: 4,
            k: 2,
            policy: PodManagementPolicy::OrderedReady,
            image: "db:v2__never-ready",
            claim: true,
        },
        StatefulSetCase {
            what: "Parallel, a never-ready canary of 2 of 4 (blocks at the first too)",
            replicas: 4,
            k: 2,
            policy: PodManagementPolicy::Parallel,
            image: "db:v2__never-ready",
            claim: false,
        },
    ];
    // One at a time: the cases are each a few seconds, and the API server's two cores are
    // shared with the other tests.
    for case in cases {
        statefulset_case(&env, case).await;
    }
}

// --- DaemonSet ---

/// The DaemonSet's pods as the model holds them, read through the view: node -> pod.
async fn node_pods(client: &Client, ns: &str) -> BTreeMap<String, Option<DaemonPod>> {
    DaemonSetView::read(client, ns, "agent")
        .await
        .expect("read the DaemonSet")
        .pods_by_node()
}

/// The hash of DaemonSet `agent`'s template, once its controller has seen its spec.
async fn newest_hash(env: &TestEnv, client: &Client, ns: &str) -> String {
    wait_for(env, "the DaemonSet observed", TIMEOUT, || async {
        let view = DaemonSetView::read(client, ns, "agent").await.ok()?;
        let hash = view.template_revision();
        (view.facts().caught_up && !hash.is_empty()).then_some(hash)
    })
    .await
}

async fn daemon_rests_as_modelled(
    env: &TestEnv,
    client: &Client,
    ns: &str,
    model: &DaemonSetModel,
    events: &PodEvents,
) {
    wait_until(env, "the pods the model predicts", TIMEOUT, || async {
        node_pods(client, ns).await == model.nodes
    })
    .await;
    assert!(
        events.quiet_for(QUIET, TIMEOUT).await,
        "the controller never rested"
    );
    assert_eq!(
        node_pods(client, ns).await,
        model.nodes,
        "rests as modelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_on_delete_canary_matches_the_real_controller() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-ds").await;
    let ns = namespace.name.clone();
    let mut nodes = SimNodes::new(&ns);
    nodes.add(&env, 4).await;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    sets.create(&PostParams::default(), &daemonset("agent", &ns, "agent:v1"))
        .await
        .expect("create the DaemonSet");
    let stable = newest_hash(&env, &client, &ns).await;
    let all_ready = DaemonSetModel {
        update_revision: stable.clone(),
        nodes: nodes
            .names
            .iter()
            .map(|n| {
                let pod = DaemonPod {
                    revision: stable.clone(),
                    ready: true,
                    finished: false,
                };
                (n.clone(), Some(pod))
            })
            .collect(),
    };
    wait_until(&env, "one Ready pod per node", TIMEOUT, || async {
        node_pods(&client, &ns).await == all_ready.nodes
    })
    .await;

    // The canary's brake and template in one write: OnDelete moves no pod.
    let facts = DaemonSetView::read(&client, &ns, "agent")
        .await
        .expect("read")
        .facts();
    assert_eq!((&facts.stable_revision, facts.caught_up), (&stable, true));
    assert_eq!(facts.nodes, all_ready.nodes);
    let canary = plan_daemonset_canary(&facts, CanarySize::Percent(50.0), None).expect("a plan");
    assert_eq!(canary.pods, 2);
    let events = PodEvents::start(&client, &ns, "app=agent").await;
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
            "template": {"spec": {"containers": [{"name": "agent", "image": "agent:v2"}]}}
        }})),
    )
    .await
    .expect("brake and new template");
    let new = newest_hash(&env, &client, &ns).await;
    assert_ne!(new, stable);
    let mut model = DaemonSetModel {
        update_revision: new.clone(),
        ..all_ready
    };
    assert!(model.settle(|_| true).is_empty());
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;

    // The canary: the chosen nodes' pods deleted.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let delete_on = |node: String| {
        let pods = pods.clone();
        let client = client.clone();
        let ns = ns.clone();
        async move {
            for pod in live_pods(&client, &ns, "app=agent").await {
                if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()) {
                    pods.delete(&pod.name_any(), &DeleteParams::default())
                        .await
                        .expect("delete");
                }
            }
        }
    };
    for node in canary_deletions(&model.nodes, &canary.nodes, &new) {
        delete_on(node.clone()).await;
        model.nodes.insert(node, None);
    }
    model.settle(|_| true);
    assert_eq!(model.nodes_on(&new), canary.nodes.iter().cloned().collect());
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;
    assert!(
        canary_deletions(&model.nodes, &canary.nodes, &new).is_empty(),
        "repeating deletes nothing"
    );
    assert_eq!(events.most_at_once(&new), 2, "exactly the chosen nodes");

    // A node joins during the canary: it gets the canary's template.
    let joined = nodes.add(&env, 1).await;
    model.nodes.insert(joined[0].clone(), None);
    model.settle(|_| true);
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;
    assert_eq!(model.nodes_on(&new).len(), 3);

    // Abort: the template back (still OnDelete), every pod off the stable revision deleted,
    // then the recorded strategy back: nothing moves any more.
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:v1"}]}}}})),
    )
    .await
    .expect("revert");
    assert_eq!(
        newest_hash(&env, &client, &ns).await,
        stable,
        "the stable revision is reused"
    );
    model.update_revision = stable.clone();
    assert!(
        model.settle(|_| true).is_empty(),
        "OnDelete: a revert moves nothing either"
    );
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;
    let real = node_pods(&client, &ns).await;
    let back = rollback_deletions(&real, &stable);
    assert_eq!(back, rollback_deletions(&model.nodes, &stable));
    assert_eq!(back.len(), 3);
    for node in back {
        delete_on(node.clone()).await;
        model.nodes.insert(node, None);
    }
    model.settle(|_| true);
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}})),
    )
    .await
    .expect("the strategy back");
    assert_eq!(newest_hash(&env, &client, &ns).await, stable);
    daemon_rests_as_modelled(&env, &client, &ns, &model, &events).await;
    assert_eq!(model.nodes_on(&stable).len(), 5);

    // Clean up the cluster-scoped nodes once the pods are gone.
    nodes.remove_with(&env, &client, "agent").await;
}
