//! Canaries of StatefulSets (`sts/NAME`) and DaemonSets (`ds/NAME`) through the CLI, on the
//! testenv's real controllers: start, status, promote and abort with their exit codes; the
//! workload's spec and annotations back field by field; every refusal changing nothing (the
//! spec and annotations unchanged); the process killed right after each of its changes
//! (the `test-hooks` crash point) and the canary finished by the next command.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use canary_testkit::kinds::{
    SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset, statefulset,
    workload_state,
};
use canary_testkit::{TestEnv, TestNamespace, differences, wait_until};
use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Creates StatefulSet `db` (`replicas` pods of `db:v1`, OrderedReady, a volume each) and
/// waits until it is settled.
async fn settled_statefulset(env: &TestEnv, client: &Client, ns: &str, replicas: i32) {
    let manifest = statefulset("db", replicas, "db:v1", "OrderedReady", true);
    create_settled_statefulset(env, client, ns, &manifest).await;
}

/// `status -o json` of `workload`.
async fn status_json(env: &TestEnv, ns: &str, workload: &str) -> Value {
    let out = canary(env, ns, &["status", workload, "-o", "json"]).await;
    assert_exit(&out, 0, "status");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The pods of one side in a status document.
fn side(status: &Value, side: &str) -> Vec<String> {
    status["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["side"] == side && p["terminating"] == false)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_is_started_grown_and_promoted_from_the_command_line() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-sts").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 4).await;
    let before = workload_state(&api, "db").await;

    let out = canary(&env, ns, &["start", "sts/db", "db=db:v2", "--canary", "1"]).await;
    assert_exit(&out, 0, "start");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("canary of 1 pod(s)"),
        "{}",
        text(&out)
    );
    let status = status_json(&env, ns, "sts/db").await;
    assert_eq!(status["kind"], "WorkloadStatus");
    assert_eq!(side(&status, "canary"), ["db-3"]);
    assert_eq!(
        status["canary"]["goal"],
        serde_json::json!({"goal": "hold", "pods": 1})
    );

    assert_exit(
        &canary(&env, ns, &["promote", "sts/db", "--canary", "50%"]).await,
        0,
        "grow",
    );
    assert_eq!(
        side(&status_json(&env, ns, "sts/db").await, "canary"),
        ["db-2", "db-3"]
    );
    let shrink = canary(&env, ns, &["promote", "sts/db", "--canary", "1"]).await;
    assert_exit(&shrink, 4, "a canary only grows");
    assert!(
        text(&shrink).contains("a canary only grows"),
        "{}",
        text(&shrink)
    );
    let again = canary(&env, ns, &["start", "sts/db", "db=db:v3"]).await;
    assert_exit(&again, 5, "a second canary is locked out");

    assert_exit(
        &canary(&env, ns, &["promote", "sts/db", "--full"]).await,
        0,
        "promote",
    );
    let status = status_json(&env, ns, "sts/db").await;
    assert!(status["canary"].is_null(), "{status}");
    assert_eq!(
        side(&status, "stable").len(),
        4,
        "every pod on the promoted revision: {status}"
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        [".spec.template.spec.containers[0].image: \"db:v1\" -> \"db:v2\""]
    );
    let none = canary(&env, ns, &["abort", "sts/db"]).await;
    assert_exit(&none, 3, "no canary to abort");
}

/// A never-ready canary: the hold never completes (the controller waits on the broken pod),
/// `status` leads with it, and `abort` ends with every pod stable and no pod deleted by
/// hand, the volumes kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_statefulset_canary_is_aborted_from_the_command_line() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-sts-broken").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 3).await;
    let before = workload_state(&api, "db").await;
    let out = canary(
        &env,
        ns,
        &[
            "start",
            "sts/db",
            "db=db:v2__never-ready",
            "--canary",
            "2",
            "--timeout",
            "8s",
        ],
    )
    .await;
    assert_exit(&out, 8, "the hold of a broken canary times out");
    wait_until(&env, "the broken canary pod reported", TIMEOUT, || async {
        let status = status_json(&env, ns, "sts/db").await;
        status["problems"].as_array().unwrap().iter().any(|p| {
            p.as_str()
                .unwrap()
                .starts_with("canary pod db-2 is not Ready")
        })
    })
    .await;
    let abort = canary(&env, ns, &["abort", "sts/db"]).await;
    assert_exit(&abort, 0, "abort");
    assert!(text(&abort).contains("forced rollback"), "{}", text(&abort));
    let status = status_json(&env, ns, "sts/db").await;
    assert_eq!(side(&status, "stable").len(), 3, "{status}");
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        Vec::<String>::new()
    );
}

/// Each refusal says what is wrong and what to do, with its exit code, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_refusals_say_why_and_change_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-kinds-refused").await;
    let ns = namespace.name.as_str();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 2).await;
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 2).await;
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 2).await;
    let cases: [(&[&str], i32, &str); 10] = [
        (
            &["start", "sts/db", "web=web:2"],
            4,
            "no container named 'web' (its containers: db)",
        ),
        (&["start", "sts/db", "db=db:v1"], 4, "already runs db=db:v1"),
        (
            &["start", "sts/db", "db=db:v2", "--canary", "2"],
            4,
            "keeps at least one stable pod",
        ),
        (
            &["start", "sts/db", "db=db:v2", "--http-check", ":80/"],
            2,
            "does not take --http-check; it takes a release (images, -f, --patch, --env), --canary, --dry-run, --auto, and with --auto:",
        ),
        (
            &["start", "sts/db", "db=db:v2", "--auto", "--steps", "1,2"],
            4,
            "keeps at least one stable pod",
        ),
        (
            &["report", "sts/db"],
            2,
            "`report` works on Deployments only for now",
        ),
        (
            &["promote", "sts/db", "--full"],
            3,
            "no canary is running on sts/db",
        ),
        (
            &[
                "start",
                "ds/agent",
                "agent=agent:2",
                "--nodes",
                "zone=nowhere",
            ],
            4,
            "only 0 of its 2 node(s) match --nodes",
        ),
        (
            &["start", "ds/agent", "agent=agent:2", "--canary", "2"],
            4,
            "keeps at least one stable pod",
        ),
        (
            &[
                "start",
                "deploy/agent",
                "agent=agent:2",
                "--nodes",
                "zone=a",
            ],
            2,
            "--nodes chooses the nodes of a DaemonSet canary",
        ),
    ];
    for (args, code, says) in cases {
        // What the tool writes is the spec and the annotations (the controllers keep
        // writing the status, so the resourceVersion is no measure of "nothing written").
        let sts_before = workload_state(&sts, "db").await;
        let ds_before = workload_state(&ds, "agent").await;
        let out = canary(&env, ns, args).await;
        assert_exit(&out, code, &args.join(" "));
        assert!(
            text(&out).contains(says),
            "{}: {}",
            args.join(" "),
            text(&out)
        );
        assert_eq!(
            differences(&sts_before, &workload_state(&sts, "db").await),
            Vec::<String>::new(),
            "{}",
            args.join(" ")
        );
        assert_eq!(
            differences(&ds_before, &workload_state(&ds, "agent").await),
            Vec::<String>::new(),
            "{}",
            args.join(" ")
        );
    }
    // A StatefulSet whose own updateStrategy is OnDelete cannot be held by a partition.
    kubectl(
        &env,
        &[
            "-n",
            ns,
            "patch",
            "sts/db",
            "-p",
            r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
        ],
    )
    .await;
    let before = workload_state(&sts, "db").await;
    let out = canary(&env, ns, &["start", "sts/db", "db=db:v2"]).await;
    assert_exit(&out, 4, "OnDelete");
    assert!(
        text(&out).contains("updateStrategy OnDelete"),
        "{}",
        text(&out)
    );
    assert_eq!(
        differences(&before, &workload_state(&sts, "db").await),
        Vec::<String>::new()
    );
    nodes.remove_with(&env, &client, "agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_canary_runs_on_chosen_nodes_from_the_command_line() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-ds").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 4).await;
    // Two zones: nodes n1 and n3 in zone b.
    for name in [&nodes.names[1], &nodes.names[3]] {
        kubectl(&env, &["label", "node", name, "test-zone=b"]).await;
    }
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 4).await;
    let before = workload_state(&ds, "agent").await;
    let out = canary(
        &env,
        ns,
        &[
            "start",
            "ds/agent",
            "agent=agent:v2",
            "--canary",
            "1",
            "--nodes",
            "test-zone=b",
        ],
    )
    .await;
    assert_exit(&out, 0, "start");
    let status = status_json(&env, ns, "ds/agent").await;
    let canary_nodes = |status: &Value| -> Vec<String> {
        status["pods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["side"] == "canary")
            .map(|p| p["node"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(canary_nodes(&status), [nodes.names[1].clone()]);
    assert_exit(
        &canary(&env, ns, &["promote", "ds/agent", "--canary", "50%"]).await,
        0,
        "grow",
    );
    assert_eq!(
        canary_nodes(&status_json(&env, ns, "ds/agent").await),
        [nodes.names[0].clone(), nodes.names[1].clone()],
        "grown onto the next node by name"
    );
    assert_exit(&canary(&env, ns, &["abort", "ds/agent"]).await, 0, "abort");
    let status = status_json(&env, ns, "ds/agent").await;
    assert_eq!(side(&status, "stable").len(), 4, "{status}");
    assert_eq!(
        differences(&before, &workload_state(&ds, "agent").await),
        Vec::<String>::new()
    );
    nodes.remove_with(&env, &client, "agent").await;
}

/// The CLI killed right after each of its changes (`KUBECTL_CANARY_CRASH_AFTER`), for a
/// start and for the abort of a never-ready StatefulSet canary: `status` explains what was
/// left, and the same command run again finishes it, the spec and annotations back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_command_killed_after_any_change_is_finished_by_running_it_again() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-kinds-crash").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 3).await;
    let before = workload_state(&api, "db").await;
    let start = ["start", "sts/db", "db=db:v2__never-ready", "--canary", "1"];
    let abort = ["abort", "sts/db"];
    let mut crashes = Vec::new();
    for n in 1..=4 {
        let mut crashed = (false, false);
        for (i, command) in [&start[..], &abort[..]].into_iter().enumerate() {
            let out = canary_with(
                &env,
                ns,
                command,
                &[("KUBECTL_CANARY_CRASH_AFTER", &n.to_string())],
            )
            .await;
            let killed = out.status.signal() == Some(6);
            if !killed {
                assert_exit(&out, 0, &format!("{} not killed at {n}", command.join(" ")));
            }
            let status = canary(&env, ns, &["status", "sts/db"]).await;
            assert_exit(&status, 0, "status explains");
            if killed {
                let recorded = api
                    .get("db")
                    .await
                    .unwrap()
                    .annotations()
                    .contains_key("kubectl-canary.io/canary");
                let again = canary(&env, ns, command).await;
                // A start killed after its one write left the canary held as asked: start
                // again is locked out (5). An abort killed before its last change is
                // finished by abort again (0); killed after it (the record's removal), the
                // canary is over: "no canary" (3).
                let code = match (i, recorded) {
                    (0, _) => 5,
                    (_, true) => 0,
                    (_, false) => 3,
                };
                assert_exit(
                    &again,
                    code,
                    &format!("{} again after a kill at {n}", command.join(" ")),
                );
            }
            if i == 0 {
                crashed.0 = killed;
            } else {
                crashed.1 = killed;
            }
        }
        assert_eq!(
            differences(&before, &workload_state(&api, "db").await),
            Vec::<String>::new(),
            "killed at {n}"
        );
        crashes.push(crashed);
    }
    // The start writes once; the abort writes, deletes the never-ready pod, removes the record.
    assert_eq!(
        crashes,
        [(true, true), (false, true), (false, true), (false, false)]
    );
}

/// A dry run's command line, what its text says, and what its JSON's `changes` hold as
/// (path, new value).
type DryRunCase<'a> = (&'a [&'a str], &'a [&'a str], &'a [(&'a str, Value)]);

/// `--dry-run` of start, promote and abort says what the command would do first (the fields
/// of the spec it writes, the record, the pods it deletes) and writes nothing: the spec and
/// annotations unchanged, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_says_what_it_would_write_and_writes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-kinds-dry").await;
    let ns = namespace.name.as_str();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 3).await;
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 2).await;
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 2).await;

    let dry_runs: [DryRunCase; 2] = [
        (
            &["start", "sts/db", "db=db:v2", "--canary", "1", "--dry-run"],
            &[
                "dry run: `start sts/db` would first:",
                "~ spec.template.spec.containers[db].image: \"db:v1\" → \"db:v2\"",
                "spec.updateStrategy.rollingUpdate.partition",
                "kubectl-canary.io/canary",
                "nothing was changed",
            ],
            &[
                (
                    "spec.template.spec.containers[db].image",
                    Value::from("db:v2"),
                ),
                (
                    "spec.updateStrategy.rollingUpdate.partition",
                    Value::from(2),
                ),
            ],
        ),
        (
            &["start", "ds/agent", "agent=agent:v2", "--dry-run"],
            &["dry run: `start ds/agent` would first:", "OnDelete"],
            &[
                (
                    "spec.template.spec.containers[agent].image",
                    Value::from("agent:v2"),
                ),
                ("spec.updateStrategy.type", Value::from("OnDelete")),
            ],
        ),
    ];
    for (args, says, changes) in dry_runs {
        let sts_before = workload_state(&sts, "db").await;
        let ds_before = workload_state(&ds, "agent").await;
        let out = canary(&env, ns, args).await;
        assert_exit(&out, 0, &args.join(" "));
        for said in says {
            assert!(
                text(&out).contains(said),
                "{}: {said}: {}",
                args.join(" "),
                text(&out)
            );
        }
        let mut json_args = args.to_vec();
        json_args.extend(["-o", "json"]);
        let document: Value = serde_json::from_slice(&canary(&env, ns, &json_args).await.stdout)
            .expect("a JSON document");
        assert_eq!(document["kind"], "WorkloadDryRun", "{document}");
        assert_eq!(document["records"], true, "{document}");
        for (path, new) in changes {
            assert!(
                document["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["path"] == *path && c["new"] == *new),
                "{path} = {new} in {document}"
            );
        }
        assert_eq!(
            differences(&sts_before, &workload_state(&sts, "db").await),
            Vec::<String>::new()
        );
        assert_eq!(
            differences(&ds_before, &workload_state(&ds, "agent").await),
            Vec::<String>::new()
        );
    }

    // A held canary: a promote's and an abort's dry runs change nothing either.
    assert_exit(
        &canary(&env, ns, &["start", "sts/db", "db=db:v2"]).await,
        0,
        "start",
    );
    let held = workload_state(&sts, "db").await;
    let grow = canary(
        &env,
        ns,
        &["promote", "sts/db", "--canary", "2", "--dry-run"],
    )
    .await;
    assert_exit(&grow, 0, "promote --dry-run");
    assert!(
        text(&grow).contains("~ spec.updateStrategy.rollingUpdate.partition: 2 → 1"),
        "{}",
        text(&grow)
    );
    let abort = canary(&env, ns, &["abort", "sts/db", "--dry-run"]).await;
    assert_exit(&abort, 0, "abort --dry-run");
    assert!(
        text(&abort).contains("~ spec.template.spec.containers[db].image: \"db:v2\" → \"db:v1\""),
        "{}",
        text(&abort)
    );
    assert_eq!(
        differences(&held, &workload_state(&sts, "db").await),
        Vec::<String>::new()
    );
    // A dry run is refused as the command would be.
    let second = canary(&env, ns, &["start", "sts/db", "db=db:v3", "--dry-run"]).await;
    assert_exit(&second, 5, "a second canary, dry");
    assert_exit(&canary(&env, ns, &["abort", "sts/db"]).await, 0, "abort");
    nodes.remove_with(&env, &client, "agent").await;
}

/// `plan` of a StatefulSet and a DaemonSet: the sizes around the target with their share,
/// the pods (highest ordinals) or nodes (by name) each takes, and what `start` takes; it
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_which_pods_or_nodes_a_canary_takes() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-kinds-plan").await;
    let ns = namespace.name.as_str();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    settled_statefulset(&env, &client, ns, 5).await;
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 3).await;
    let before = workload_state(&sts, "db").await;

    let out = canary(&env, ns, &["plan", "sts/db", "--canary", "40%"]).await;
    assert_exit(&out, 0, "plan sts/db");
    assert!(
        text(&out).contains("sts/db: 5 pods; canary of 40%"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(" 2 *     3       40%      db-3, db-4"),
        "{}",
        text(&out)
    );
    let plan: Value = serde_json::from_slice(
        &canary(
            &env,
            ns,
            &["plan", "sts/db", "--canary", "40%", "-o", "json"],
        )
        .await
        .stdout,
    )
    .expect("a plan document");
    assert_eq!(plan["kind"], "WorkloadPlan", "{plan}");
    let chosen: Vec<&Value> = plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["chosen"] == true)
        .collect();
    assert_eq!(chosen.len(), 1, "{plan}");
    assert_eq!(chosen[0]["which"], serde_json::json!(["db-3", "db-4"]));
    assert_eq!(chosen[0]["extraPods"], 0);

    let ds = canary(
        &env,
        ns,
        &["plan", "ds/agent", "--canary", "1", "-o", "json"],
    )
    .await;
    assert_exit(&ds, 0, "plan ds/agent");
    let plan: Value = serde_json::from_slice(&ds.stdout).expect("a plan document");
    assert_eq!(
        (plan["unit"].as_str(), plan["total"].as_i64()),
        (Some("nodes"), Some(3))
    );
    let chosen = plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["chosen"] == true)
        .expect("a chosen size");
    assert_eq!(chosen["which"], serde_json::json!([nodes.names[0]]));
    // The node plan names is the one start takes.
    assert_exit(
        &canary(&env, ns, &["start", "ds/agent", "agent=agent:v2"]).await,
        0,
        "start",
    );
    let status = status_json(&env, ns, "ds/agent").await;
    let canary_nodes: Vec<&str> = status["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["side"] == "canary")
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    assert_eq!(canary_nodes, [nodes.names[0].as_str()]);
    assert_exit(&canary(&env, ns, &["abort", "ds/agent"]).await, 0, "abort");
    assert_eq!(
        differences(&before, &workload_state(&sts, "db").await),
        Vec::<String>::new()
    );
    nodes.remove_with(&env, &client, "agent").await;
}

/// `status --watch` of a StatefulSet: a JSON document per line, the status now, then one
/// for each change a canary's start makes, until the canary is held on the highest ordinal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_prints_a_document_per_change() {
    use std::io::BufRead;
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "cli-kinds-watch").await;
    let ns = namespace.name.as_str();
    settled_statefulset(&env, &client, ns, 3).await;
    let mut watch = std::process::Command::new(BIN)
        .args(["--kubeconfig", env.kubeconfig.to_str().unwrap(), "-n", ns])
        .args(["status", "sts/db", "--watch", "-o", "json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    let (documents, received) = std::sync::mpsc::channel::<Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let document =
                serde_json::from_str(&line.expect("a line")).expect("a JSON document per line");
            if documents.send(document).is_err() {
                break;
            }
        }
    });
    let first = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the status now");
    assert!(first["canary"].is_null(), "{first}");
    assert_exit(
        &canary(&env, ns, &["start", "sts/db", "db=db:v2"]).await,
        0,
        "start",
    );
    // Documents follow the start until one shows the canary held on db-2.
    let held = loop {
        let document = received
            .recv_timeout(Duration::from_secs(30))
            .expect("a document after each change");
        if side(&document, "canary") == ["db-2"] && document["canary"].is_object() {
            break document;
        }
    };
    assert_eq!(held["workload"], "sts/db");
    watch.kill().ok();
    watch.wait().ok();
    assert_exit(&canary(&env, ns, &["abort", "sts/db"]).await, 0, "abort");
}
