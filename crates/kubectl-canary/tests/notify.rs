//! Notifications (issue 26) of the CLI against a local receiver
//! (`canary_testkit::receiver`): every moment of a `start --auto` run to Slack, Teams and a
//! signed webhook, in order and in their shapes; an endpoint that answers 500 or never
//! answers leaves the canary's timing as it is and shows as an Event and in `status`; a bad
//! `--notify` is refused before anything is written.

mod common;

use std::time::Duration;

use canary_testkit::receiver::{Answer, Receiver, Shape, create_notify_secret, titles};
use canary_testkit::scenario::web_namespace_with_spec;
use canary_testkit::{TestEnv, spec_of};
use common::*;
use serde_json::Value;

/// The webhook's signing key, given to the CLI in its environment.
const KEY: &str = "a-test-signing-key-0123456789";

/// The CLI's usage exit code.
const USAGE: i32 = 2;

/// Creates the Secret `kubectl-canary-notify` with `endpoints_yaml` in `namespace`.
async fn notify_secret(env: &TestEnv, namespace: &str, endpoints_yaml: &str) {
    create_notify_secret(&env.client().await, namespace, endpoints_yaml).await;
}

/// The titles of the moments of a two-step `--auto` run that passes, in order.
fn passing_run(namespace: &str) -> Vec<String> {
    [
        "canary started",
        "canary held",
        "analysis passed",
        "canary growing to its next step",
        "canary held",
        "analysis passed",
        "promoted to every pod",
    ]
    .iter()
    .map(|headline| format!("deploy/web in {namespace}: {headline}"))
    .collect()
}

const AUTO: [&str; 8] = [
    "start",
    "deploy/web",
    "nginx=nginx:1.15",
    "--auto",
    "--steps",
    "1,3",
    "--interval",
    "3s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_run_tells_every_moment_to_slack_teams_and_a_signed_webhook() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, _) = web_namespace_with_spec(&env, "notify-auto", 6).await;
    let receiver = Receiver::start(Answer::Ok).await;
    notify_secret(
        &env,
        &ns.name,
        &format!(
            "reportBaseUrl: https://reports.example/canary\nendpoints:\n  - name: team-chat\n    kind: slack\n    url: {}\n  - name: team-teams\n    kind: teams\n    url: {}\n",
            receiver.url("/slack"),
            receiver.url("/teams")
        ),
    )
    .await;
    let hook = format!("webhook+{}", receiver.url("/hook"));
    let mut args = AUTO.to_vec();
    args.extend([
        "--notify",
        "team-chat",
        "--notify",
        "team-teams",
        "--notify",
        &hook,
    ]);
    let out = canary_with(&env, &ns.name, &args, &[("KUBECTL_CANARY_NOTIFY_KEY", KEY)]).await;
    assert_exit(&out, 0, "auto with notifications");
    // The CLI waited for its last notices before it exited: everything is there now.
    let received = receiver.received();
    let expected = passing_run(&ns.name);
    assert_eq!(titles(&received, "/slack", Shape::Slack), expected);
    assert_eq!(titles(&received, "/teams", Shape::Teams), expected);
    assert_eq!(
        titles(&received, "/hook", Shape::Webhook(KEY.as_bytes())),
        expected
    );
    let hooks: Vec<Value> = receiver.at("/hook").iter().map(|r| r.json()).collect();
    let moments: Vec<&str> = hooks.iter().filter_map(|h| h["moment"].as_str()).collect();
    assert_eq!(
        moments,
        [
            "started",
            "held",
            "analysisPassed",
            "stepPromoted",
            "held",
            "analysisPassed",
            "promoted"
        ]
    );
    let held = &hooks[1];
    assert_eq!(held["workload"], "deploy/web");
    assert_eq!(held["namespace"], ns.name.as_str());
    assert_eq!(held["stable"], "nginx=nginx:1.14");
    assert!(
        held["canary"]
            .as_str()
            .is_some_and(|c| c.contains("nginx:1.15")),
        "{held}"
    );
    assert_eq!(held["canaryPods"], 1);
    assert_eq!(held["replicas"], 6);
    assert!(
        (held["share"].as_f64().unwrap() - 1.0 / 7.0).abs() < 1e-9,
        "{held}"
    );
    assert_eq!(held["sender"], "kubectl-canary");
    assert_eq!(
        held["reportUrl"],
        format!("https://reports.example/canary/{}/web.html", ns.name).as_str()
    );
    assert!(
        hooks[2]["reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "a verdict's reasons: {}",
        hooks[2]
    );
    assert_eq!(hooks[6]["canaryPods"], 6);
    // The webhook URL given on the command line is not in the canary's history.
    let history = kubectl(
        &env,
        &[
            "-n",
            &ns.name,
            "get",
            "configmap",
            "web.kubectl-canary-history",
            "-o",
            "json",
        ],
    )
    .await;
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("--notify"), "{history}");
    assert!(history.contains("REDACTED"), "{history}");
    assert!(!history.contains(&receiver.url("/hook")), "{history}");
}

/// Runs the passing `--auto` run with one Slack endpoint at `receiver`; how long the canary
/// took, from its `CanaryStarting` Event to its `CanaryPromoted` Event (the events.k8s.io
/// `eventTime`, in microseconds: the command's own wait for its last notices at exit is not
/// the canary's).
async fn timed_run(env: &TestEnv, namespace: &str, receiver: &Receiver) -> Duration {
    let url = format!("slack+{}", receiver.url("/x"));
    let mut args = AUTO.to_vec();
    args.extend(["--notify", &url]);
    let out = canary(env, namespace, &args).await;
    assert_exit(&out, 0, "auto run");
    let events = kubectl(
        env,
        &[
            "-n",
            namespace,
            "get",
            "events.v1.events.k8s.io",
            "-o",
            "json",
        ],
    )
    .await;
    let events: Value = serde_json::from_slice(&events.stdout).expect("Events as JSON");
    let at = |reason: &str| -> k8s_openapi::jiff::Timestamp {
        events["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["reason"] == reason))
            .and_then(|e| e["eventTime"].as_str())
            .unwrap_or_else(|| panic!("no {reason} Event with an eventTime: {events}"))
            .parse()
            .expect("an RFC 3339 time")
    };
    let (began, ended) = (at("CanaryStarting"), at("CanaryPromoted"));
    Duration::from_micros((ended.as_microsecond() - began.as_microsecond()) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_fails_or_hangs_leaves_the_canary_s_timing_and_shows_in_status() {
    let Some(env) = TestEnv::get() else { return };
    let ok = Receiver::start(Answer::Ok).await;
    let failing = Receiver::start(Answer::Status(500)).await;
    let hanging = Receiver::start(Answer::Hang).await;
    let ((ns_ok, _), (ns_500, _), (ns_hang, _)) = futures::join!(
        web_namespace_with_spec(&env, "notify-ok", 6),
        web_namespace_with_spec(&env, "notify-500", 6),
        web_namespace_with_spec(&env, "notify-hang", 6),
    );
    // The same run, at the same time, against each receiver.
    let (with_ok, with_500, with_hang) = futures::join!(
        timed_run(&env, &ns_ok.name, &ok),
        timed_run(&env, &ns_500.name, &failing),
        timed_run(&env, &ns_hang.name, &hanging),
    );
    // Were notices sent on the canary's path, each would add the retries' backoff (1 s +
    // 2 s) against the 500s and the timeouts (3 x 5 s and the backoff) against the hang.
    // Measured with the engine's Events waiting for their notices (a test of this test):
    // the 500s' canary took 5.2 s longer than the one with an endpoint that answers, the
    // hanging one 73 s; as built, the three took within 0.3 s of each other (the three runs
    // share the machine at the same time). The margin, 3 s, sits between.
    let margin = Duration::from_secs(3);
    eprintln!("canary durations: ok {with_ok:?}, 500 {with_500:?}, hanging {with_hang:?}");
    assert!(
        with_500 <= with_ok + margin,
        "500s: {with_500:?} against {with_ok:?} with an endpoint that answers"
    );
    assert!(
        with_hang <= with_ok + margin,
        "hanging: {with_hang:?} against {with_ok:?} with an endpoint that answers"
    );
    assert_eq!(
        titles(&ok.received(), "/x", Shape::Slack),
        passing_run(&ns_ok.name)
    );
    // The first notice was sent three times to the endpoint answering 500.
    assert!(
        failing.received().len() >= 3,
        "{} requests",
        failing.received().len()
    );
    for ns in [&ns_500.name, &ns_hang.name] {
        let events = kubectl(
            &env,
            &[
                "-n",
                ns,
                "get",
                "events",
                "--field-selector",
                "reason=NotificationFailed",
                "-o",
                "jsonpath={.items[*].message}",
            ],
        )
        .await;
        let notes = String::from_utf8_lossy(&events.stdout).to_string();
        assert!(notes.contains("endpoint notify-url-1"), "{ns}: {notes}");
        assert!(!notes.contains("127.0.0.1"), "the URL is a secret: {notes}");
        let status = canary(&env, ns, &["status", "deploy/web"]).await;
        assert_exit(&status, 0, "status");
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            text.contains("notification failed (") && text.contains("endpoint notify-url-1"),
            "{ns}: {text}"
        );
        let document = canary(&env, ns, &["status", "deploy/web", "-o", "json"]).await;
        let document: Value = serde_json::from_slice(&document.stdout).expect("JSON");
        let failures = document["notificationFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("{document}"));
        assert!(
            failures.iter().all(|f| f["message"]
                .as_str()
                .is_some_and(|m| m.contains("notify-url-1"))
                && f["at"].is_string()
                && f["count"].is_number()),
            "{document}"
        );
    }
    let notes_500 = kubectl(
        &env,
        &[
            "-n",
            &ns_500.name,
            "get",
            "events",
            "--field-selector",
            "reason=NotificationFailed",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&notes_500.stdout).contains("answered 500"),
        "{}",
        text(&notes_500)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_notify_value_is_refused_before_anything_is_written() {
    let Some(env) = TestEnv::get() else { return };
    let (ns, before) = web_namespace_with_spec(&env, "notify-bad", 3).await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15"];
    let with = |command: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        command.iter().chain(more).copied().collect()
    };
    // (command line, message) before the Secret exists, then with it.
    let without_secret: Vec<(Vec<&str>, &str)> = vec![
        (
            with(&start, &["--notify", "ftp://example.com/x"]),
            "not an http:// or https:// URL",
        ),
        (with(&start, &["--notify", "Team Chat"]), "neither a URL"),
        (
            with(&start, &["--notify", "irc+https://example.com/x"]),
            "unknown kind \"irc\"",
        ),
        (
            with(&start, &["--notify", "webhook+http://127.0.0.1:9/x"]),
            "set the environment variable KUBECTL_CANARY_NOTIFY_KEY",
        ),
        (
            with(&start, &["--report-url", "reports"]),
            "--report-url reports: not an http",
        ),
        (
            with(&start, &["--notify", "team-chat"]),
            "no Secret kubectl-canary-notify in namespace",
        ),
        (
            with(
                &["promote", "deploy/web", "--full"],
                &["--notify", "team-chat"],
            ),
            "no Secret kubectl-canary-notify in namespace",
        ),
        (
            with(&["abort", "deploy/web"], &["--notify", "ftp://x/y"]),
            "not an http:// or https:// URL",
        ),
    ];
    let check = |args: Vec<&str>, message: &str, out: std::process::Output| {
        assert_exit(&out, USAGE, &args.join(" "));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {}", text(&out));
        assert!(
            !stderr.contains("/x\n") && !stderr.contains("example.com/x"),
            "{}",
            text(&out)
        );
    };
    for (args, message) in without_secret {
        let out = canary(&env, &ns.name, &args).await;
        check(args, message, out);
    }
    notify_secret(
        &env,
        &ns.name,
        "endpoints:\n  - name: team-chat\n    kind: slack\n    url: http://127.0.0.1:9/slack\n",
    )
    .await;
    let args = with(&start, &["--notify", "team-chat", "--notify", "gone"]);
    let out = canary(&env, &ns.name, &args).await;
    check(
        args,
        &format!(
            "no endpoint named gone in the Secret kubectl-canary-notify of namespace {} (it lists: team-chat)",
            ns.name
        ),
        out,
    );
    assert!(!record_exists(&env, &ns.name, "web").await);
    assert_eq!(spec_of(&env, &ns.name, "web").await, before);
}
