//! Someone else's pod template on a StatefulSet or DaemonSet during its canary, through the
//! CLI on the testenv's real controllers: the next command answers it without fighting
//! (docs/statefulsets-and-daemonsets.md, "Other actors"). The stable template put back: the
//! canary is aborted the tool's way (a never-ready canary's forced rollback included) and
//! closed, exit 13, the spec and annotations as before the canary, field by field. Another
//! version: the brake is released with their template kept, so it rolls out by the
//! workload's own strategy, exit 14. An abort left unfinished refuses a promote.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

mod common;

use std::time::Duration;

use canary_testkit::kinds::{
    SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset, is_ready, live_pods,
    statefulset, workload_state,
};
use canary_testkit::{TestEnv, TestNamespace, differences, wait_until};
use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::{Api, Client};

const REVERTED_BY_OTHERS: i32 = 13;
const REPLACED_BY_OTHERS: i32 = 14;

/// Waits until every pod of `selector` runs `image` and is Ready, `count` of them.
async fn all_on(
    env: &TestEnv,
    client: &Client,
    ns: &str,
    selector: &str,
    image: &str,
    count: usize,
) {
    let what = format!("{count} Ready pod(s) of {selector} on {image}");
    wait_until(env, &what, Duration::from_secs(120), || async {
        let pods = live_pods(client, ns, selector).await;
        pods.len() == count
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image)
                    && is_ready(p)
            })
    })
    .await;
}

/// One StatefulSet case: a canary, someone else's image, the next command and how it ends.
struct Case {
    /// The canary's image.
    canary: &'static str,
    /// The image someone else sets during the hold.
    theirs: &'static str,
    /// The next command.
    command: &'static [&'static str],
    /// Its exit code.
    code: i32,
    /// The image every pod ends on.
    ends_on: &'static str,
    /// Whether the spec ends as before the canary (else it differs by their image).
    as_before: bool,
}

const STATEFULSET_CASES: [Case; 4] = [
    Case {
        canary: "db:v2",
        theirs: "db:v1",
        command: &["promote", "sts/db", "--canary", "2"],
        code: REVERTED_BY_OTHERS,
        ends_on: "db:v1",
        as_before: true,
    },
    // A never-ready canary pod blocks the controller's own revert under OrderedReady: the
    // answer is the abort's forced rollback.
    Case {
        canary: "db:v2__never-ready",
        theirs: "db:v1",
        command: &["promote", "sts/db", "--full"],
        code: REVERTED_BY_OTHERS,
        ends_on: "db:v1",
        as_before: true,
    },
    Case {
        canary: "db:v2",
        theirs: "db:v3",
        command: &["promote", "sts/db", "--canary", "2"],
        code: REPLACED_BY_OTHERS,
        ends_on: "db:v3",
        as_before: false,
    },
    // Even an abort does not write over their version; a broken canary pod that would block
    // it is deleted.
    Case {
        canary: "db:v2__never-ready",
        theirs: "db:v3",
        command: &["abort", "sts/db"],
        code: REPLACED_BY_OTHERS,
        ends_on: "db:v3",
        as_before: false,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_template_on_a_statefulset_canary_is_answered_not_fought() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    for (n, case) in STATEFULSET_CASES.into_iter().enumerate() {
        let Case {
            canary: canary_image,
            theirs,
            command,
            code,
            ends_on,
            as_before,
        } = case;
        let namespace = TestNamespace::create(&env, &format!("kinds-foreign-sts{n}")).await;
        let ns = namespace.name.as_str();
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        create_settled_statefulset(
            &env,
            &client,
            ns,
            &statefulset("db", 3, "db:v1", "OrderedReady", true),
        )
        .await;
        let before = workload_state(&api, "db").await;
        let image = format!("db={canary_image}");
        assert_exit(
            &canary(&env, ns, &["start", "sts/db", &image]).await,
            0,
            "start",
        );
        kubectl(
            &env,
            &["-n", ns, "set", "image", "sts/db", &format!("db={theirs}")],
        )
        .await;

        let out = canary(&env, ns, command).await;
        let case = format!("{canary_image} then {theirs}, {}", command.join(" "));
        assert_exit(&out, code, &case);
        assert!(
            text(&out).contains("someone else"),
            "{case}: {}",
            text(&out)
        );
        let after = workload_state(&api, "db").await;
        if as_before {
            assert_eq!(differences(&before, &after), Vec::<String>::new(), "{case}");
        } else {
            // Their template, the StatefulSet's own partition, no record.
            assert_eq!(
                differences(&before, &after),
                [format!(
                    ".spec.template.spec.containers[0].image: \"db:v1\" -> \"{theirs}\""
                )],
                "{case}"
            );
        }
        all_on(&env, &client, ns, "app=db", ends_on, 3).await;
        let status = canary(&env, ns, &["status", "sts/db"]).await;
        assert!(
            text(&status).contains("no canary"),
            "{case}: {}",
            text(&status)
        );
    }
}

/// The DaemonSet: their version rolls out by the DaemonSet's own RollingUpdate once the brake
/// (OnDelete) is released; the stable template put back is an abort that puts back the
/// canary node's pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_template_on_a_daemonset_canary_is_answered_not_fought() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-foreign-ds").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 3).await;
    let before = workload_state(&api, "agent").await;
    let cases: [(&str, &[&str], i32, &str); 2] = [
        (
            "agent:v1",
            &["promote", "ds/agent", "--canary", "2"],
            REVERTED_BY_OTHERS,
            "agent:v1",
        ),
        (
            "agent:v3",
            &["promote", "ds/agent", "--full"],
            REPLACED_BY_OTHERS,
            "agent:v3",
        ),
    ];
    for (theirs, command, code, ends_on) in cases {
        assert_exit(
            &canary(&env, ns, &["start", "ds/agent", "agent=agent:v2"]).await,
            0,
            "start",
        );
        kubectl(
            &env,
            &[
                "-n",
                ns,
                "set",
                "image",
                "ds/agent",
                &format!("agent={theirs}"),
            ],
        )
        .await;
        let out = canary(&env, ns, command).await;
        assert_exit(&out, code, theirs);
        assert!(
            text(&out).contains("someone else"),
            "{theirs}: {}",
            text(&out)
        );
        let after = workload_state(&api, "agent").await;
        let expected: Vec<String> = match theirs {
            "agent:v1" => Vec::new(),
            _ => vec![format!(
                ".spec.template.spec.containers[0].image: \"agent:v1\" -> \"{theirs}\""
            )],
        };
        assert_eq!(differences(&before, &after), expected, "{theirs}");
        all_on(&env, &client, ns, "app=agent", ends_on, 3).await;
    }
    nodes.remove_with(&env, &client, "agent").await;
}

/// An abort killed right after it recorded its goal: a promote then is refused (it would
/// write the canary over the abort), exit 4, nothing written; the abort run again finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_abort_refuses_a_promote() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-unfinished").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", false),
    )
    .await;
    let before = workload_state(&api, "db").await;
    assert_exit(
        &canary(&env, ns, &["start", "sts/db", "db=db:v2"]).await,
        0,
        "start",
    );
    // The abort's first change is the template and partition back with its goal recorded.
    let out = canary_with(
        &env,
        ns,
        &["abort", "sts/db"],
        &[("KUBECTL_CANARY_CRASH_AFTER", "1")],
    )
    .await;
    assert!(!out.status.success(), "killed: {}", text(&out));
    let left = workload_state(&api, "db").await;
    let promote = canary(&env, ns, &["promote", "sts/db", "--canary", "2"]).await;
    assert_exit(&promote, 4, "a promote over an unfinished abort");
    assert!(
        text(&promote).contains("an abort of the canary of sts/db was left unfinished"),
        "{}",
        text(&promote)
    );
    assert_eq!(
        differences(&left, &workload_state(&api, "db").await),
        Vec::<String>::new()
    );
    assert_exit(
        &canary(&env, ns, &["abort", "sts/db"]).await,
        0,
        "abort again",
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        Vec::<String>::new()
    );
}

/// `status` leads with what is wrong: someone else's template (and what the next command
/// does about it), and a StatefulSet scaled under a held canary (its new highest ordinals
/// came up canary), which the same size asked again puts back: `promote --canary 1` holds
/// one canary pod, the others back on the stable revision, their volumes kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_leads_with_a_foreign_template_and_a_scaled_canary() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-status-wrong").await;
    let ns = namespace.name.as_str();
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", true),
    )
    .await;
    assert_exit(
        &canary(&env, ns, &["start", "sts/db", "db=db:v2"]).await,
        0,
        "start",
    );
    kubectl(&env, &["-n", ns, "scale", "sts/db", "--replicas=5"]).await;
    // The partition (2) lets the new ordinals 3 and 4 come up on the canary revision.
    wait_until(
        &env,
        "5 pods, 3 of them canary",
        Duration::from_secs(120),
        || async {
            let pods = live_pods(&client, ns, "app=db").await;
            let canary = pods
                .iter()
                .filter(|p| {
                    p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("db:v2")
                })
                .count();
            pods.len() == 5 && canary == 3
        },
    )
    .await;
    let status = canary(&env, ns, &["status", "sts/db", "-o", "json"]).await;
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let first = document["problems"][0].as_str().unwrap_or_default();
    assert!(
        first.contains("the canary runs 3 pods, 1 asked")
            && first.contains("kubectl canary promote sts/db --canary 1"),
        "{document}"
    );
    let claims_before = canary_testkit::kinds::claim_uids(&client, ns).await;
    assert_exit(
        &canary(&env, ns, &["promote", "sts/db", "--canary", "1"]).await,
        0,
        "the size asked, held again",
    );
    let pods = live_pods(&client, ns, "app=db").await;
    let on_v2: Vec<String> = pods
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("db:v2"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(on_v2, ["db-4"], "one canary pod, the highest ordinal");
    assert_eq!(
        canary_testkit::kinds::claim_uids(&client, ns).await,
        claims_before,
        "volumes kept"
    );

    kubectl(&env, &["-n", ns, "set", "image", "sts/db", "db=db:v3"]).await;
    let status = canary(&env, ns, &["status", "sts/db"]).await;
    assert_exit(&status, 0, "status");
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .lines()
            .next()
            .is_some_and(
                |l| l.contains("someone else changed the pod template of sts/db (another version)")
            ),
        "{}",
        text(&status)
    );
    assert_exit(
        &canary(&env, ns, &["abort", "sts/db"]).await,
        REPLACED_BY_OTHERS,
        "abort under another version",
    );
}

/// The record annotation deleted by someone while a canary is held: the brake (a
/// StatefulSet's partition, a DaemonSet's OnDelete) no longer has a record to end it, so
/// `status` says so first and offers the commands that end it either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brake_without_its_record_is_named_with_the_way_out() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-stranded").await;
    let ns = namespace.name.as_str();
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", false),
    )
    .await;
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 2).await;
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 2).await;
    let cases = [
        (
            "sts/db",
            "db=db:v2",
            "held by a partition (2)",
            "kubectl patch sts/db",
        ),
        (
            "ds/agent",
            "agent=agent:v2",
            "updateStrategy OnDelete with its pods on 2 revisions",
            "kubectl patch ds/agent",
        ),
    ];
    for (workload, image, says, offers) in cases {
        assert_exit(
            &canary(&env, ns, &["start", workload, image]).await,
            0,
            "start",
        );
        kubectl(
            &env,
            &["-n", ns, "annotate", workload, "kubectl-canary.io/canary-"],
        )
        .await;
        let status = canary(&env, ns, &["status", workload, "-o", "json"]).await;
        assert_exit(&status, 0, "status");
        let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert!(
            document["problems"][0]
                .as_str()
                .is_some_and(|p| p.contains(says) && p.contains("no canary record")),
            "{document}"
        );
        assert!(
            document["next"][0]
                .as_str()
                .is_some_and(|n| n.starts_with(offers)),
            "{document}"
        );
    }
    nodes.remove_with(&env, &client, "agent").await;
}
