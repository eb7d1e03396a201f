//! The StatefulSet and DaemonSet canaries driven end to end on the testenv's real
//! controllers by `canary_kube::kinds_drive` (the machines of `canary_core::kind_machines`,
//! the one writer's guarded writes and deletions, waits on watches): exact k at every pod
//! event, the spec back field by field after an abort and after a promote (but for the
//! template), the forced rollback of a never-ready StatefulSet canary with no pod deleted by
//! hand and its volumes kept, a DaemonSet canary on the nodes chosen.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

use std::time::Duration;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::record::WORKLOAD_RECORD_ANNOTATION;
use canary_core::record::Owner;
use canary_core::rollout_math::{CanarySize, OrdinalHealth};
use canary_kube::error::CanaryError;
use canary_kube::kinds::{DaemonSetView, StatefulSetView};
use canary_kube::kinds_drive::{
    KindDrive, daemonset_canary_nodes, drive_daemonset, drive_statefulset, start_daemonset,
    start_statefulset,
};
use canary_kube::write::CLI;
use canary_testkit::kinds::{
    PodEvents, SimNodes, claim_uids, create_settled_daemonset, create_settled_statefulset,
    daemonset, statefulset, workload_state,
};
use canary_testkit::{TestEnv, TestNamespace, differences, wait_until};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn with_image(template: &Value, image: &str) -> Value {
    let mut canary = template.clone();
    canary["spec"]["containers"][0]["image"] = Value::String(image.to_owned());
    canary
}

fn owner() -> Owner {
    Owner {
        user: "test".into(),
        host: "test".into(),
        pid: std::process::id(),
        tool_version: "test".into(),
    }
}

fn now() -> String {
    "2026-12-05T00:00:00Z".into()
}

/// A drive whose progress goes to `said`.
fn drive<'a>(
    client: &'a Client,
    ns: &'a str,
    timeout: Duration,
    progress: &'a mut (dyn FnMut(&str) + Send),
) -> KindDrive<'a> {
    KindDrive {
        client,
        writer: CLI,
        namespace: ns,
        timeout,
        progress,
    }
}

/// Creates StatefulSet `name` (`replicas` pods, OrderedReady, a volume each) and waits
/// until it is settled; returns its view.
async fn settled_statefulset(
    env: &TestEnv,
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> StatefulSetView {
    let manifest = statefulset(name, replicas, "db:v1", "OrderedReady", true);
    create_settled_statefulset(env, client, ns, &manifest).await;
    StatefulSetView::read(client, ns, name).await.unwrap()
}

fn canary_ordinals(view: &StatefulSetView, stable: &str) -> Vec<i32> {
    view.pods_by_ordinal()
        .into_iter()
        .filter(|(_, p)| p.revision != stable && p.health != OrdinalHealth::Terminating)
        .map(|(o, _)| o)
        .collect()
}

fn recorded_goal<K: kube::Resource>(object: &K) -> Option<Value> {
    let text = object.annotations().get(WORKLOAD_RECORD_ANNOTATION)?;
    let record: Value = serde_json::from_str(text).ok()?;
    Some(record["goal"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_holds_exactly_grows_and_promotes() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-sts").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let view = settled_statefulset(&env, &client, ns, "db", 5).await;
    let before = workload_state(&api, "db").await;
    let stable = view.facts().update_revision;
    let claims = claim_uids(&client, ns).await;
    let events = PodEvents::start(&client, ns, "app=db").await;
    let mut said = Vec::new();
    let mut progress = |s: &str| said.push(s.to_owned());
    let mut d = drive(&client, ns, TIMEOUT, &mut progress);
    let canary = with_image(&view.observation().template, "db:v2");
    let held = start_statefulset(&mut d, &view, canary, CanarySize::Pods(2), owner(), now())
        .await
        .expect("held");
    assert_eq!(canary_ordinals(&held, &stable), [3, 4]);
    assert_eq!(
        recorded_goal(&held.statefulset),
        Some(serde_json::json!({"goal": "hold", "pods": 2}))
    );
    let grown = drive_statefulset(&mut d, "db", Goal::Hold { pods: 3 })
        .await
        .expect("grown");
    assert_eq!(canary_ordinals(&grown, &stable), [2, 3, 4]);
    let new = grown.facts().update_revision;
    assert!(events.most_at_once(&new) <= 3, "never more than asked");
    let promoted = drive_statefulset(&mut d, "db", Goal::PromoteFull)
        .await
        .expect("promoted");
    assert_eq!(canary_ordinals(&promoted, &stable), [0, 1, 2, 3, 4]);
    assert_eq!(
        recorded_goal(&promoted.statefulset),
        None,
        "the record removed"
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        [".spec.template.spec.containers[0].image: \"db:v1\" -> \"db:v2\""],
        "every other field as it was"
    );
    assert_eq!(claim_uids(&client, ns).await, claims, "volumes kept");
    assert_eq!(
        said.len(),
        4,
        "one write per goal and the record's removal: {said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_statefulset_canary_is_aborted_with_no_pod_deleted_by_hand() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-forced").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let view = settled_statefulset(&env, &client, ns, "db", 4).await;
    let before = workload_state(&api, "db").await;
    let stable = view.facts().update_revision;
    let claims = claim_uids(&client, ns).await;
    let mut quiet = |_: &str| {};
    // The controller stops at the first broken canary pod: the hold never completes.
    let canary = with_image(&view.observation().template, "db:v2__never-ready");
    let mut d = drive(&client, ns, Duration::from_secs(8), &mut quiet);
    let held = start_statefulset(&mut d, &view, canary, CanarySize::Pods(2), owner(), now()).await;
    let Err(CanaryError::TimedOut { last, .. }) = held else {
        panic!("a hold of a broken canary must not complete: {held:?}");
    };
    assert!(!last.contains("\"onTarget\":2"), "{last}");
    // The first canary pod (the highest ordinal) exists, never Ready; no other was made.
    wait_until(&env, "the broken canary pod db-3", TIMEOUT, || async {
        let view = StatefulSetView::read(&client, ns, "db").await.unwrap();
        let pods = view.pods_by_ordinal();
        canary_ordinals(&view, &stable) == [3] && pods[&3].health == OrdinalHealth::NotReady
    })
    .await;
    let mut said = Vec::new();
    let mut progress = |s: &str| said.push(s.to_owned());
    let mut d = drive(&client, ns, TIMEOUT, &mut progress);
    let aborted = drive_statefulset(&mut d, "db", Goal::Abort)
        .await
        .expect("aborted");
    assert!(
        aborted
            .pods_by_ordinal()
            .values()
            .all(|p| p.revision == stable && p.health == OrdinalHealth::Ready)
    );
    assert!(
        said.iter().any(|s| s.contains("forced rollback")),
        "{said:?}"
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        Vec::<String>::new()
    );
    assert_eq!(claim_uids(&client, ns).await, claims, "volumes kept");
}

/// Every refusal of a StatefulSet start: the message says what to do, and the spec and
/// annotations show nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_start_that_cannot_hold_exactly_is_refused_and_writes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-refused").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let view = settled_statefulset(&env, &client, ns, "db", 3).await;
    let template = view.observation().template;
    let client = &client;
    let refuse = async |view: StatefulSetView, canary: Value, size: CanarySize, says: &str| {
        let mut quiet = |_: &str| {};
        let mut d = drive(client, ns, TIMEOUT, &mut quiet);
        // What the tool writes is the spec and the annotations (the controller keeps writing
        // the status, so the resourceVersion is no measure of "nothing written").
        let before = workload_state(&api, "db").await;
        let error = start_statefulset(&mut d, &view, canary, size, owner(), now())
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains(says) && error.contains("nothing was changed"),
            "{error}"
        );
        assert_eq!(
            differences(&before, &workload_state(&api, "db").await),
            Vec::<String>::new(),
            "{says}"
        );
    };
    let v2 = with_image(&template, "db:v2");
    refuse(
        view.clone(),
        template.clone(),
        CanarySize::Pods(1),
        "leaves the pod template",
    )
    .await;
    refuse(
        view.clone(),
        v2.clone(),
        CanarySize::Pods(3),
        "keeps at least one stable pod",
    )
    .await;
    let mut on_delete = view.clone();
    on_delete.statefulset.spec.as_mut().unwrap().update_strategy =
        serde_json::from_value(serde_json::json!({"type": "OnDelete"})).unwrap();
    refuse(
        on_delete,
        v2.clone(),
        CanarySize::Pods(1),
        "updateStrategy OnDelete",
    )
    .await;
    let mut partitioned = view.clone();
    partitioned
        .statefulset
        .spec
        .as_mut()
        .unwrap()
        .update_strategy = serde_json::from_value(
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}),
    )
    .unwrap();
    refuse(
        partitioned,
        v2.clone(),
        CanarySize::Pods(1),
        "already has partition 1",
    )
    .await;
    let mut quiet = |_: &str| {};
    let mut d = drive(client, ns, TIMEOUT, &mut quiet);
    start_statefulset(
        &mut d,
        &view,
        v2.clone(),
        CanarySize::Pods(1),
        owner(),
        now(),
    )
    .await
    .expect("a canary");
    let running = StatefulSetView::read(client, ns, "db").await.unwrap();
    refuse(running, v2, CanarySize::Pods(1), "already running").await;
}

/// A run stopped right after any of its changes (the drive dropped, as a killed process
/// leaves it) is continued by the next command, for a start and for an abort of a
/// never-ready canary: exact k, then every pod stable, the spec and annotations back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_after_any_change_is_continued_by_the_next_command() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-drive-stop").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let view = settled_statefulset(&env, &client, ns, "db", 4).await;
    let before = workload_state(&api, "db").await;
    let stable = view.facts().update_revision;
    let template = view.observation().template;
    let mut stops = Vec::new();
    for n in 1.. {
        // A start stopped after its nth change, then continued.
        let view = StatefulSetView::read(&client, ns, "db").await.unwrap();
        let canary = with_image(&template, "db:v2__never-ready");
        let start_stopped = stopped_after(n, &client, ns, async |d| {
            start_statefulset(d, &view, canary, CanarySize::Pods(1), owner(), now())
                .await
                .map(drop)
        })
        .await;
        let mut quiet = |_: &str| {};
        let mut d = drive(&client, ns, TIMEOUT, &mut quiet);
        let held = drive_statefulset(&mut d, "db", Goal::Hold { pods: 1 })
            .await
            .expect("continued");
        assert_eq!(canary_ordinals(&held, &stable), [3], "stopped after {n}");
        // An abort stopped after its nth change, then continued.
        let abort_stopped = stopped_after(n, &client, ns, async |d| {
            drive_statefulset(d, "db", Goal::Abort).await.map(drop)
        })
        .await;
        let aborted = drive_statefulset(&mut d, "db", Goal::Abort).await;
        // An abort stopped after its last change (the record's removal), or not stopped,
        // leaves no record: "no canary" is the next command's answer.
        match aborted {
            Ok(_) => {}
            Err(e) if e.to_string().contains("no canary is running") => {
                assert_eq!(recorded_goal(&api.get("db").await.unwrap()), None);
            }
            Err(e) => panic!("stopped after {n}: {e}"),
        }
        assert!(
            canary_ordinals(
                &StatefulSetView::read(&client, ns, "db").await.unwrap(),
                &stable
            )
            .is_empty()
        );
        assert_eq!(
            differences(&before, &workload_state(&api, "db").await),
            Vec::<String>::new(),
            "stopped after {n}"
        );
        stops.push((start_stopped, abort_stopped));
        if !start_stopped && !abort_stopped {
            break;
        }
    }
    // The start makes one change (its write); the abort three (its write, the forced
    // rollback's deletion of the never-ready pod, the record's removal): each was a stop.
    assert_eq!(
        stops,
        [(true, true), (false, true), (false, true), (false, false)],
        "every change of a start and an abort reached"
    );
}

/// Runs `run` with a drive that is dropped right after its `n`th change; whether it was.
async fn stopped_after(
    n: usize,
    client: &Client,
    ns: &str,
    run: impl AsyncFnOnce(&mut KindDrive<'_>) -> canary_kube::error::Result<()>,
) -> bool {
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut changes = 0;
    let signal = stop.clone();
    let mut progress = move |_: &str| {
        changes += 1;
        if changes == n {
            signal.notify_one();
        }
    };
    let mut d = drive(client, ns, TIMEOUT, &mut progress);
    tokio::select! {
        finished = run(&mut d) => {
            finished.expect("an unstopped run succeeds");
            false
        }
        () = stop.notified() => true,
    }
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
    create_settled_daemonset(&env, &client, &ns, &daemonset("agent", &ns, "agent:v1"), 4).await;
    let view = DaemonSetView::read(&client, &ns, "agent").await.unwrap();
    let before = workload_state(&sets, "agent").await;
    let stable = view.template_revision();
    let canary_template = with_image(&view.observation().template, "agent:v2");
    let chosen = daemonset_canary_nodes(&view, CanarySize::Pods(2), None).expect("a plan");
    let events = PodEvents::start(&client, &ns, "app=agent").await;
    let mut quiet = |_: &str| {};
    let mut d = drive(&client, &ns, TIMEOUT, &mut quiet);
    let held = start_daemonset(
        &mut d,
        &view,
        canary_template.clone(),
        chosen.clone(),
        owner(),
        now(),
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
    assert_eq!(on(&held, &canary), chosen);
    let aborted = drive_daemonset(&mut d, "agent", DaemonSetGoal::Abort)
        .await
        .expect("aborted");
    assert_eq!(on(&aborted, &stable), nodes.names);
    assert_eq!(events.most_at_once(&canary), 2, "exactly the chosen nodes");
    assert_eq!(
        differences(&before, &workload_state(&sets, "agent").await),
        Vec::<String>::new()
    );

    // Again, then promoted: the DaemonSet's own rolling update finishes.
    let view = DaemonSetView::read(&client, &ns, "agent").await.unwrap();
    let one = vec![nodes.names[3].clone()];
    start_daemonset(&mut d, &view, canary_template, one, owner(), now())
        .await
        .expect("held again");
    let promoted = drive_daemonset(&mut d, "agent", DaemonSetGoal::PromoteFull)
        .await
        .expect("promoted");
    assert_eq!(on(&promoted, &canary), nodes.names);
    assert_eq!(
        differences(&before, &workload_state(&sets, "agent").await),
        [".spec.template.spec.containers[0].image: \"agent:v1\" -> \"agent:v2\""]
    );
    nodes.remove_with(&env, &client, "agent").await;
}
