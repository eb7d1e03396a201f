//! The StatefulSet and DaemonSet canaries driven end to end on the testenv's real
//! controllers by `canary_kube::kinds_drive` (the machines of `canary_core::kind_machines`,
//! the one writer's guarded writes and deletions, waits on watches): exact k at every pod
//! event, the spec back field by field after an abort and after a promote (but for the
//! template), the forced rollback of a never-ready StatefulSet canary with no pod deleted by
//! hand and its volumes kept, a DaemonSet canary on the nodes chosen.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

use std::collections::BTreeSet;
use std::time::Duration;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::{DaemonSetGoal, DaemonSetIntent};
use canary_core::kind_machines::statefulset::StatefulSetIntent;
use canary_core::rollout_math::{
    CanarySize, OrdinalHealth, plan_daemonset_canary, plan_statefulset_canary,
};
use canary_kube::error::CanaryError;
use canary_kube::kinds::{DaemonSetView, StatefulSetView};
use canary_kube::kinds_drive::{drive_daemonset, drive_statefulset};
use canary_kube::write::CLI;
use canary_testkit::kinds::{PodEvents, SimNodes, daemonset, statefulset};
use canary_testkit::{TestEnv, TestNamespace, differences, wait_until};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn with_image(template: &Value, image: &str) -> Value {
    let mut canary = template.clone();
    canary["spec"]["containers"][0]["image"] = Value::String(image.to_owned());
    canary
}

/// A workload's spec as JSON, for a field-by-field comparison.
async fn spec_json<K>(api: &Api<K>, name: &str) -> Value
where
    K: kube::Resource + serde::Serialize + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let object = serde_json::to_value(api.get(name).await.expect("read")).unwrap();
    object["spec"].clone()
}

async fn claim_uids(client: &Client, ns: &str) -> BTreeSet<String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|c| c.uid())
        .collect()
}

/// A settled StatefulSet `name`, its spec as JSON and the intent of a canary of `image`.
async fn settled_statefulset(
    env: &TestEnv,
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
) -> (Value, StatefulSetIntent) {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &statefulset(name, replicas, "db:v1", "OrderedReady", true),
    )
    .await
    .expect("create");
    wait_until(env, "the StatefulSet settled", TIMEOUT, || async {
        let view = StatefulSetView::read(client, ns, name).await.unwrap();
        let facts = view.facts();
        facts.caught_up
            && view.statefulset.status.and_then(|s| s.ready_replicas) == Some(replicas)
            && facts.current_revision == facts.update_revision
    })
    .await;
    let view = StatefulSetView::read(client, ns, name).await.unwrap();
    plan_statefulset_canary(&view.facts(), CanarySize::Pods(1)).expect("plannable");
    let original = view.observation().template;
    let intent = StatefulSetIntent {
        canary_template: with_image(&original, image),
        original_template: original,
        original_partition: 0,
        stable_revision: view.facts().update_revision,
    };
    (spec_json(&api, name).await, intent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_holds_exactly_grows_and_promotes() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-sts").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let (before, intent) = settled_statefulset(&env, &client, ns, "db", 5, "db:v2").await;
    let claims = claim_uids(&client, ns).await;
    let events = PodEvents::start(&client, ns, "app=db").await;
    let mut said = Vec::new();
    let mut progress = |s: &str| said.push(s.to_owned());
    let held = drive_statefulset(
        &client,
        CLI,
        ns,
        "db",
        &intent,
        Goal::Hold { pods: 2 },
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("held");
    let canary = held.facts().update_revision;
    let on_canary = |view: &StatefulSetView| -> Vec<i32> {
        view.pods_by_ordinal()
            .into_iter()
            .filter(|(_, p)| p.revision == canary && p.health != OrdinalHealth::Terminating)
            .map(|(o, _)| o)
            .collect()
    };
    assert_eq!(on_canary(&held), [3, 4]);
    let grown = drive_statefulset(
        &client,
        CLI,
        ns,
        "db",
        &intent,
        Goal::Hold { pods: 3 },
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("grown");
    assert_eq!(on_canary(&grown), [2, 3, 4]);
    assert!(events.most_at_once(&canary) <= 3, "never more than asked");
    let promoted = drive_statefulset(
        &client,
        CLI,
        ns,
        "db",
        &intent,
        Goal::PromoteFull,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("promoted");
    assert_eq!(on_canary(&promoted), [0, 1, 2, 3, 4]);
    let after = spec_json(&api, "db").await;
    assert_eq!(
        differences(&before, &after),
        [".template.spec.containers[0].image: \"db:v1\" -> \"db:v2\""],
        "every other field as it was"
    );
    assert_eq!(claim_uids(&client, ns).await, claims, "volumes kept");
    assert_eq!(said.len(), 3, "one write per goal: {said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_statefulset_canary_is_aborted_with_no_pod_deleted_by_hand() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-forced").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let (before, intent) =
        settled_statefulset(&env, &client, ns, "db", 4, "db:v2__never-ready").await;
    let claims = claim_uids(&client, ns).await;
    let mut progress = |_: &str| {};
    // The controller stops at the first broken canary pod: the hold never completes.
    let held = drive_statefulset(
        &client,
        CLI,
        ns,
        "db",
        &intent,
        Goal::Hold { pods: 2 },
        Duration::from_secs(8),
        &mut progress,
    )
    .await;
    let Err(CanaryError::TimedOut { last, .. }) = held else {
        panic!("a hold of a broken canary must not complete: {held:?}");
    };
    assert!(!last.contains("\"onTarget\":2"), "{last}");
    // The first canary pod (the highest ordinal) exists, never Ready; the controller made
    // no other.
    wait_until(&env, "the broken canary pod db-3", TIMEOUT, || async {
        let view = StatefulSetView::read(&client, ns, "db").await.unwrap();
        let canary = view.facts().update_revision;
        let on_canary: Vec<(i32, OrdinalHealth)> = view
            .pods_by_ordinal()
            .into_iter()
            .filter(|(_, p)| p.revision == canary && canary != intent.stable_revision)
            .map(|(o, p)| (o, p.health))
            .collect();
        on_canary == [(3, OrdinalHealth::NotReady)]
    })
    .await;
    let mut said = Vec::new();
    let mut progress = |s: &str| said.push(s.to_owned());
    let aborted = drive_statefulset(
        &client,
        CLI,
        ns,
        "db",
        &intent,
        Goal::Abort,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("aborted");
    let stable = &intent.stable_revision;
    assert!(
        aborted
            .pods_by_ordinal()
            .values()
            .all(|p| &p.revision == stable && p.health == OrdinalHealth::Ready)
    );
    assert!(
        said.iter().any(|s| s.contains("forced rollback")),
        "{said:?}"
    );
    assert_eq!(
        differences(&before, &spec_json(&api, "db").await),
        Vec::<String>::new()
    );
    assert_eq!(claim_uids(&client, ns).await, claims, "volumes kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_canary_runs_on_the_chosen_nodes_then_aborts_or_promotes() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-ds").await;
    let ns = namespace.name.clone();
    let mut nodes = SimNodes::new(&ns);
    nodes.add(&env, 4).await;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    sets.create(&PostParams::default(), &daemonset("agent", &ns, "agent:v1"))
        .await
        .expect("create");
    wait_until(&env, "one Ready pod per node", TIMEOUT, || async {
        let facts = DaemonSetView::read(&client, &ns, "agent")
            .await
            .unwrap()
            .facts();
        facts.caught_up
            && facts.nodes.len() == 4
            && facts
                .nodes
                .values()
                .all(|p| p.as_ref().is_some_and(|p| p.ready))
    })
    .await;
    let view = DaemonSetView::read(&client, &ns, "agent").await.unwrap();
    let before = spec_json(&sets, "agent").await;
    let observed = view.observation();
    let intent = DaemonSetIntent {
        canary_template: with_image(&observed.template, "agent:v2"),
        original_template: observed.template.clone(),
        original_strategy: observed.strategy.clone(),
        stable_revision: observed.template_revision.clone(),
    };
    let chosen = plan_daemonset_canary(&view.facts(), CanarySize::Pods(2), None).expect("a plan");
    let events = PodEvents::start(&client, &ns, "app=agent").await;
    let mut progress = |_: &str| {};
    let hold = DaemonSetGoal::Hold {
        nodes: chosen.nodes.clone(),
    };
    let held = drive_daemonset(
        &client,
        CLI,
        &ns,
        "agent",
        &intent,
        &hold,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("held");
    let canary = held.template_revision();
    let on = |view: &DaemonSetView, revision: &str| -> Vec<String> {
        view.pods_by_node()
            .into_iter()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.revision == revision))
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(on(&held, &canary), chosen.nodes);
    let aborted = drive_daemonset(
        &client,
        CLI,
        &ns,
        "agent",
        &intent,
        &DaemonSetGoal::Abort,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("aborted");
    assert_eq!(on(&aborted, &intent.stable_revision), nodes.names);
    assert_eq!(events.most_at_once(&canary), 2, "exactly the chosen nodes");
    assert_eq!(
        differences(&before, &spec_json(&sets, "agent").await),
        Vec::<String>::new()
    );

    // Again, then promoted: the DaemonSet's own rolling update finishes.
    let one = DaemonSetGoal::Hold {
        nodes: vec![nodes.names[3].clone()],
    };
    drive_daemonset(
        &client,
        CLI,
        &ns,
        "agent",
        &intent,
        &one,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("held again");
    let promoted = drive_daemonset(
        &client,
        CLI,
        &ns,
        "agent",
        &intent,
        &DaemonSetGoal::PromoteFull,
        TIMEOUT,
        &mut progress,
    )
    .await
    .expect("promoted");
    assert_eq!(on(&promoted, &canary), nodes.names);
    assert_eq!(
        differences(&before, &spec_json(&sets, "agent").await),
        [".template.spec.containers[0].image: \"agent:v1\" -> \"agent:v2\""]
    );

    nodes.remove_with(&env, &client, "agent").await;
}
