//! Faults around a running command: the API server restarted or frozen for 10 s, the
//! controller-manager restarted, connections reset mid-request (a proxy between the CLI and
//! the API server, canary_testkit::proxy), and a verb of the documented Role taken away
//! while the command runs under it; during `start`, `promote --full`, `abort` and
//! `start --auto` (its analysis, its final promote and its rollback). Whatever the
//! command's outcome, nothing is left inconsistent: a remaining record is one `status`
//! explains without "stuck" and `abort` restores the original spec field by field; without
//! a record the spec is, field by field, the original or the original with the new image
//! (only where a promotion was asked for).
//!
//! These tests stop the API server, so they are `#[ignore]`d and refuse to run in the shared
//! environment: run them in a private one,
//!   KC_TESTENV_DIR=/tmp/kctest-faults KC_TESTENV_DETACH=1 scripts/testenv up
//!   KC_TESTENV_DIR=/tmp/kctest-faults KC_TESTENV_REQUIRED=1 cargo test -p kubectl-canary \
//!     --features test-hooks --test faults -- --ignored --test-threads=1 --nocapture
//! Each fault is aimed by the observed phase: a watch on the record fires it the moment the
//! record shows the phase the cell names (no fixed delay), and the test then confirms it hit:
//! the component's own stop (or freeze) time, as the supervisor reports it over the control
//! socket, falls inside the command's run while the record still showed that phase. A fault
//! that did not is a "missed" cell and fails the test.
//!
//! Each prints a `FAULT-MATRIX|fault|phase|outcome|seconds|controller seconds|outage|hit`
//! line; `scripts/fault-matrix` turns them into docs/results/fault-matrix.md. The controller
//! seconds are measured from the controller-manager's log: how long its ReplicaSet controller
//! refused to act on this namespace because its own pod cache was older than its last write
//! (after an API server restart its informers reconnect with backoff, and each refused sync
//! is retried with a per-item exponential backoff), time the command spends waiting for the
//! controller, not for itself. The outage is the component's: from its stop (SIGTERM) or
//! freeze to the supervisor's answer that it serves (or is thawed) again.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_testkit::proxy::ResetProxy;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, assert_spec_equal_except, differences, spec_of, wait_settled};
use common::rbac::{documented_role, operator, set_rules};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::runtime::watcher::Event;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const IMAGE: &str = "nginx:1.15__ready-after-3s";
const BAD_IMAGE: &str = "nginx:1.15__crashloop";
const IMAGE_PATH: &str = ".template.spec.containers[0].image";
const SEAL_ANNOTATION: &str = "kubectl-canary.io/seal";

fn assert_private_environment() {
    let dir = std::env::var("KC_TESTENV_DIR").unwrap_or_default();
    assert!(
        !dir.is_empty() && dir != "/tmp/kubectl-canary-testenv",
        "fault tests stop the API server: run them with KC_TESTENV_DIR set to a private environment"
    );
}

/// A fault command carried out by the supervisor, with the moments its component went down
/// (or froze) and served (or thawed) again, by the supervisor's own answers.
#[derive(Debug)]
struct Outage {
    /// When the component stopped serving: its SIGTERM (the "stopped ... in N s" answer,
    /// less those N s) or its SIGSTOP (the "frozen" answer).
    down: Instant,
    /// When the supervisor answered that it serves again (or was thawed).
    up: Instant,
    /// The supervisor's answers.
    answers: Vec<String>,
}

/// Sends one fault command over the supervisor's control socket (testenv/README.md,
/// *Faults*) and reads its answers as they come, each timed on arrival.
async fn control(env: &TestEnv, command: &[&str]) -> Outage {
    let socket = env
        .vars
        .get("KC_TESTENV_CONTROL")
        .expect("KC_TESTENV_CONTROL in the env file");
    let sent = Instant::now();
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("the supervisor's control socket");
    stream
        .write_all(format!("{}\n", command.join(" ")).as_bytes())
        .await
        .expect("send the fault command");
    let mut lines = BufReader::new(stream).lines();
    let mut down = None;
    let mut answers = vec![];
    while let Some(line) = lines
        .next_line()
        .await
        .expect("read the supervisor's answer")
    {
        let at = Instant::now();
        if line.starts_with("error") || line.starts_with("usage") {
            panic!("fault {command:?}: {line}");
        }
        if line.contains(" frozen (pid") {
            down = Some(at);
        } else if let Some(secs) = line
            .split_once(" stopped (pid ")
            .and_then(|(_, rest)| rest.split_once(") in "))
            .and_then(|(_, secs)| secs.trim_end_matches('s').parse::<f64>().ok())
        {
            // The SIGTERM went out that long before the process was gone.
            down = Some(
                at.checked_sub(Duration::from_secs_f64(secs))
                    .unwrap_or(sent)
                    .max(sent),
            );
        }
        let last = line.starts_with("ok ");
        answers.push(line);
        if last {
            return Outage {
                down: down.unwrap_or(sent),
                up: at,
                answers,
            };
        }
    }
    panic!("fault {command:?}: the supervisor closed without a final answer: {answers:?}");
}

/// What goes wrong.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A fault command of the supervisor (restart, freeze).
    Testenv(&'static [&'static str]),
    /// Every open connection of the CLI reset, and its next 3 requests reset after the API
    /// server received them (their answers lost).
    ConnectionReset,
    /// The CLI runs under exactly the documented Role, and `update` on deployments is taken
    /// away from it while the command runs.
    VerbMissing,
}

/// Where it hits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Start,
    Promote,
    Abort,
    /// `start --auto` of a good release, during the analysis of its step.
    AutoAnalysis,
    /// `start --auto` of a good release, during its final promote.
    AutoPromote,
    /// `start --auto` of a crash-looping release, during its rollback.
    AutoRollback,
}

impl Phase {
    fn is_auto(self) -> bool {
        matches!(
            self,
            Phase::AutoAnalysis | Phase::AutoPromote | Phase::AutoRollback
        )
    }

    /// The command's arguments (after any run made before it).
    fn args(self) -> Vec<String> {
        let auto =
            |image: &str| format!("start deploy/web nginx={image} --auto --steps 1 --interval 6s");
        let line = match self {
            Phase::Start => format!("start deploy/web nginx={IMAGE} --canary 1"),
            Phase::Promote => "promote deploy/web --full".into(),
            Phase::Abort => "abort deploy/web".into(),
            Phase::AutoAnalysis | Phase::AutoPromote => auto(IMAGE),
            Phase::AutoRollback => auto(BAD_IMAGE),
        };
        line.split_whitespace().map(String::from).collect()
    }

    /// The record phase whose appearance fires the fault, and in which it must hit: `start`
    /// has recorded "starting" before its first change of the Deployment; `start --auto`
    /// analyses its step while the record says "holding".
    fn trigger(self) -> &'static str {
        match self {
            Phase::Start => "starting",
            Phase::AutoAnalysis => "holding",
            Phase::Promote | Phase::AutoPromote => "promotingFull",
            Phase::Abort | Phase::AutoRollback => "aborting",
        }
    }

    /// Whether the command asks for the new version on every pod.
    fn promotes(self) -> bool {
        matches!(
            self,
            Phase::Promote | Phase::AutoAnalysis | Phase::AutoPromote
        )
    }
}

/// The phase name in a record ConfigMap.
fn phase_of(map: &ConfigMap) -> Option<String> {
    let record: serde_json::Value =
        serde_json::from_str(map.data.as_ref()?.get("record.json")?).ok()?;
    record
        .pointer("/phase/name")
        .and_then(|n| n.as_str())
        .map(String::from)
}

/// The record's phase name, if there is a record.
async fn record_phase(env: &TestEnv, namespace: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(env.client().await, namespace);
    phase_of(&api.get_opt("web.kubectl-canary").await.ok()??)
}

/// Every phase the record showed, each timed when its watch event arrived (`None`: no
/// record), kept over the whole test.
type PhaseLog = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

/// Watches the record (re-watching after an outage, with backoff): its phases go into the
/// log and, as they come, into the returned channel, which aims the fault.
async fn watch_record(
    env: &TestEnv,
    namespace: &str,
) -> (
    PhaseLog,
    tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) {
    let api: Api<ConfigMap> = Api::namespaced(env.client().await, namespace);
    let log: PhaseLog = Default::default();
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    let kept = log.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().fields("metadata.name=web.kubectl-canary");
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let phase = match event {
                Ok(Event::Apply(map) | Event::InitApply(map)) => phase_of(&map),
                Ok(Event::Delete(_)) => None,
                _ => continue,
            };
            kept.lock().unwrap().push((Instant::now(), phase.clone()));
            if send.send(phase).is_err() {
                // Nobody aims any more; the log goes on for the hit check.
            }
        }
    });
    (log, receive)
}

/// The record's phase as last seen at `at`.
fn phase_at(log: &PhaseLog, at: Instant) -> Option<String> {
    log.lock()
        .unwrap()
        .iter()
        .take_while(|(seen, _)| *seen <= at)
        .last()
        .and_then(|(_, phase)| phase.clone())
}

/// The longest time the controller-manager's ReplicaSet controller refused to act in
/// `namespace` because its pod or ReplicaSet cache was older than its own last write
/// ("read version: X is not as new as written version: Y"): per ReplicaSet and written
/// version, the seconds from the first refused sync to the last (a lower bound: the next
/// retry, the one that succeeded, comes after a per-item backoff that doubles each time).
fn controller_stale_seconds(env: &TestEnv, namespace: &str) -> f64 {
    let log =
        std::fs::read_to_string(env.logs.join("kube-controller-manager.log")).unwrap_or_default();
    let mut episodes: std::collections::BTreeMap<(String, String), (f64, f64)> = Default::default();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once(&format!("sync \\\"{namespace}/")) else {
            continue;
        };
        let Some((_, written)) = rest.split_once("is not as new as written version: ") else {
            continue;
        };
        let key = rest.split('\\').next().unwrap_or_default().to_string();
        let written = written
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        // klog: "E1130 22:37:07.845193 ..."
        let Some(clock) = line.split_whitespace().nth(1) else {
            continue;
        };
        let seconds: Option<f64> = clock
            .split(':')
            .map(|part| part.parse::<f64>().ok())
            .try_fold(0.0, |total, part| Some(total * 60.0 + part?));
        let Some(at) = seconds else { continue };
        let episode = episodes.entry((key, written)).or_insert((at, at));
        episode.1 = at;
    }
    episodes
        .values()
        .map(|(first, last)| (last - first).max(0.0))
        .fold(0.0, f64::max)
}

/// Whether a fault that began at `down` hit the command that ran from `began` to `ended`
/// in the record phase `wanted` (`seen`: the phase the record's watch last showed then);
/// else why it missed.
fn judge_hit(
    began: Instant,
    ended: Instant,
    down: Instant,
    seen: Option<&str>,
    wanted: &str,
) -> Result<(), String> {
    if down <= began || down >= ended {
        return Err(format!(
            "missed: the fault began {:.2} s after the command's start, which ran {:.2} s",
            down.saturating_duration_since(began).as_secs_f64(),
            ended.duration_since(began).as_secs_f64()
        ));
    }
    if seen != Some(wanted) {
        return Err(format!(
            "missed: the record showed {seen:?}, not {wanted}, when the fault began"
        ));
    }
    Ok(())
}

/// The hit check itself: a fault before the command, after it, or in another phase is
/// missed; only one inside the run in the named phase hits.
#[test]
fn a_fault_outside_the_run_or_the_phase_is_missed() {
    let began = Instant::now();
    let at = |ms: u64| began + Duration::from_millis(ms);
    let ended = at(1000);
    assert_eq!(
        judge_hit(began, ended, at(500), Some("aborting"), "aborting"),
        Ok(())
    );
    for (down, seen) in [
        (began, Some("aborting")),
        (at(1000), Some("aborting")),
        (at(1500), Some("aborting")),
        (at(500), Some("holding")),
        (at(500), None),
    ] {
        let judged = judge_hit(began, ended, down, seen, "aborting");
        assert!(
            judged
                .as_ref()
                .is_err_and(|why| why.starts_with("missed: ")),
            "{down:?} {seen:?}: {judged:?}"
        );
    }
}

async fn fault_during(phase: Phase, fault: Fault, label: &str) {
    assert_private_environment();
    let env = TestEnv::get().expect("a private test environment (KC_TESTENV_DIR)");
    let ns = web_namespace(&env, "fault", 4).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let original_annotations = without_revision(annotations_of(&env, &ns.name, "web").await);
    if matches!(phase, Phase::Promote | Phase::Abort) {
        let mut start = Phase::Start.args();
        if phase == Phase::Abort {
            // A replace canary: its abort brings a stable pod back and waits for it, long
            // enough for a fault aimed at the record's "aborting" to land in it.
            start.extend(["--mode".to_string(), "replace".to_string()]);
        }
        let start: Vec<&str> = start.iter().map(String::as_str).collect();
        assert_exit(
            &canary(&env, &ns.name, &start).await,
            0,
            "start before the fault",
        );
    }
    // The identity and the path the command runs with.
    let mut kubeconfig = env.kubeconfig.clone();
    let mut identity: Vec<String> = vec![];
    let mut proxy = None;
    let role = documented_role();
    match fault {
        Fault::ConnectionReset => {
            let (url, address) = env.apiserver();
            let started = ResetProxy::start(address).await;
            let dir = std::env::temp_dir().join(&ns.name);
            std::fs::create_dir_all(&dir).unwrap();
            kubeconfig = started.kubeconfig(&env.kubeconfig, &url, &dir);
            proxy = Some(started);
        }
        Fault::VerbMissing => {
            let token = operator(&env, &ns.name, &role).await;
            identity = vec!["--token".into(), token];
        }
        Fault::Testenv(_) => {}
    }
    let (phases, mut changes) = watch_record(&env, &ns.name).await;
    let mut child = tokio::process::Command::new(BIN);
    child
        .args(["-n", &ns.name, "--timeout", "3m"])
        .args(&identity)
        .args(phase.args())
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let command_began = Instant::now();
    let child = child.spawn().expect("spawn the CLI");
    let mut output = tokio::spawn(async move {
        let out = child.wait_with_output().await;
        (out, Instant::now())
    });
    // Aim: the moment the record's watch shows the phase.
    let wanted = phase.trigger();
    let mut ended_first = None;
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(seen) if seen.as_deref() == Some(wanted) => break,
                Some(_) => {}
                None => break, // the watch ended: fired now, the hit check will say
            },
            ended = &mut output, if ended_first.is_none() => {
                ended_first = Some(ended.expect("the command's task"));
            }
            _ = &mut deadline => break,
        }
    }
    // Fire: the fault's own account of when it began (and, for a component, ended).
    let (began, outage) = match fault {
        Fault::Testenv(command) => {
            let env = env.clone();
            let outage = tokio::spawn(async move { control(&env, command).await });
            (Instant::now(), Some(outage))
        }
        Fault::ConnectionReset => {
            let proxy = proxy.as_ref().unwrap();
            let began = Instant::now();
            proxy.reset_all();
            proxy.reset_requests(3);
            (began, None)
        }
        Fault::VerbMissing => {
            let mut rules = role.rules.clone().unwrap();
            for rule in &mut rules {
                if rule.resources.iter().flatten().any(|r| r == "deployments") {
                    rule.verbs.retain(|v| v != "update");
                }
            }
            let began = Instant::now();
            set_rules(&env, &ns.name, rules).await;
            (began, None)
        }
    };
    let (out, command_ended) = match ended_first {
        Some(ended) => ended,
        None => tokio::time::timeout(Duration::from_secs(240), output)
            .await
            .expect("the command ends")
            .expect("the command's task"),
    };
    let out = out.expect("output");
    let outage = match outage {
        Some(outage) => Some(outage.await.expect("the fault command")),
        None => None,
    };
    let (down, up) = outage
        .as_ref()
        .map_or((began, None), |o| (o.down, Some(o.up)));
    let seconds = command_ended.saturating_duration_since(down).as_secs_f64();
    // Confirm the hit: the fault began inside the command's run, while the record showed the
    // phase the cell names.
    let hit = match judge_hit(
        command_began,
        command_ended,
        down,
        phase_at(&phases, down).as_deref(),
        wanted,
    ) {
        Ok(()) => "hit".to_string(),
        Err(missed) => missed,
    };
    let outage_text = match (&outage, up) {
        (Some(o), Some(up)) => {
            let length = up.duration_since(o.down).as_secs_f64();
            if up > command_ended {
                format!("{length:.1} s, the command ended during it")
            } else {
                format!("{length:.1} s")
            }
        }
        _ => "-".to_string(),
    };
    if hit != "hit" {
        println!("FAULT-MATRIX|{label}|{phase:?}|missed|{seconds:.1}|0|{outage_text}|{hit}");
        panic!(
            "{label} during {phase:?}: {hit} (answers {:?})\n{}",
            outage.map(|o| o.answers),
            text(&out)
        );
    }
    let context = format!("{label} during {phase:?}\n{}", text(&out));
    if let Some(proxy) = &proxy {
        assert!(
            proxy.resets() >= 1,
            "{context}: the proxy reset no connection (the fault did not happen)"
        );
    }
    let code = out.status.code();
    let allowed: &[i32] = match (fault, phase.is_auto()) {
        (Fault::VerbMissing, false) => &[0, 6],
        (Fault::VerbMissing, true) => &[0, 6, 11],
        (_, false) => &[0, 7, 8, 10],
        (_, true) => &[0, 7, 8, 11, 12],
    };
    assert!(
        code.is_some_and(|c| allowed.contains(&c)),
        "{context}: expected one of {allowed:?} (completed, refused, unreachable, timed out, \
         rolled back or inconclusive), never stuck or unexpected"
    );
    if !matches!(code, Some(0 | 11)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stderr.contains("kubectl canary status")
                || stderr.contains("nothing was changed")
                || stdout.contains("kubectl canary status")
                || stdout.contains("deploy/web --full` or `kubectl canary abort"),
            "{context}: an honest error says what was changed and where to look"
        );
    }
    if phase != Phase::AutoRollback {
        assert_ne!(
            code,
            Some(11),
            "{context}: a fault is not a failing verdict: a good release is never rolled back for it"
        );
    }
    // Consistency: what remains is what the record says.
    let outcome = if record_exists(&env, &ns.name, "web").await {
        let status = canary(&env, &ns.name, &["status", "deploy/web"]).await;
        assert!(
            matches!(status.status.code(), Some(0 | 10)),
            "{context}: status explains the recorded state\n{}",
            text(&status)
        );
        let outcome = if phase == Phase::Start && code == Some(0) {
            assert!(
                is_paused(&env, &ns.name, "web").await,
                "{context}: held means paused"
            );
            assert_eq!(
                replica_sets_by_image(&env, &ns.name).await,
                vec![("nginx:1.14".to_string(), 4), (IMAGE.to_string(), 1)],
                "{context}: exactly the recorded canary"
            );
            "completed (held)"
        } else {
            "held safely"
        };
        // Whatever the phase, the record leads back to the original exactly.
        assert_exit(
            &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
            0,
            &context,
        );
        wait_settled(&env, &ns.name, "web", Duration::from_secs(90)).await;
        assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
        outcome
    } else {
        // A command stopped after the record's deletion leaves the seal on the Deployment
        // (its last write); the next command takes it off.
        let sealed = annotations_of(&env, &ns.name, "web")
            .await
            .contains_key(SEAL_ANNOTATION);
        if sealed {
            assert_ne!(
                code,
                Some(0),
                "{context}: a command that ended well leaves no seal"
            );
            assert_exit(
                &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
                0,
                &format!("{context}: the next command removes the seal left"),
            );
        }
        wait_settled(&env, &ns.name, "web", Duration::from_secs(90)).await;
        let after = spec_of(&env, &ns.name, "web").await;
        let changed = differences(&original, &after);
        if changed.is_empty() {
            match (phase, code) {
                (Phase::Abort, Some(0)) | (Phase::AutoRollback, Some(11)) => {
                    "completed (rolled back)"
                }
                _ => "rolled back",
            }
        } else {
            assert!(
                phase.promotes(),
                "{context}: without a record the spec is the original: {changed:?}"
            );
            assert_spec_equal_except(&original, &after, &[IMAGE_PATH]);
            assert_eq!(
                after.pointer("/template/spec/containers/0/image"),
                Some(&serde_json::json!(IMAGE)),
                "{context}: promoted to the asked image"
            );
            match (code, sealed) {
                (Some(0), _) => "completed (promoted)",
                (_, true) => "promoted (its seal left, taken off by the next command)",
                _ => "promoted",
            }
        }
    };
    // Nothing lost around the spec either: the Deployment's annotations are the original's
    // (the controller's revision number aside).
    assert_eq!(
        without_revision(annotations_of(&env, &ns.name, "web").await),
        original_annotations,
        "{context}: the Deployment's annotations as before"
    );
    let stale = controller_stale_seconds(&env, &ns.name);
    // The command's own account (with KUBECTL_CANARY_LOG set, its timeline), for the log.
    println!("{label} during {phase:?}, {seconds:.1} s:\n{}", text(&out));
    println!(
        "FAULT-MATRIX|{label}|{phase:?}|{outcome}|{seconds:.1}|{stale:.1}|{outage_text}|{hit}"
    );
}

macro_rules! fault_tests {
    ($($name:ident: $phase:expr, $fault:expr, $label:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "stops the API server or controller-manager: run in a private testenv (see the module doc)"]
        async fn $name() {
            fault_during($phase, $fault, $label).await;
        }
    )*};
}

const RESTART: Fault = Fault::Testenv(&["apiserver-restart"]);
const FREEZE: Fault = Fault::Testenv(&["apiserver-freeze", "10"]);
const CM_RESTART: Fault = Fault::Testenv(&["controller-manager-restart"]);
const RESET: Fault = Fault::ConnectionReset;
const VERB: Fault = Fault::VerbMissing;

fault_tests! {
    apiserver_restarted_during_start: Phase::Start, RESTART, "API server restarted";
    apiserver_restarted_during_promote: Phase::Promote, RESTART, "API server restarted";
    apiserver_restarted_during_abort: Phase::Abort, RESTART, "API server restarted";
    apiserver_restarted_during_auto_analysis: Phase::AutoAnalysis, RESTART, "API server restarted";
    apiserver_restarted_during_auto_promote: Phase::AutoPromote, RESTART, "API server restarted";
    apiserver_restarted_during_auto_rollback: Phase::AutoRollback, RESTART, "API server restarted";
    apiserver_frozen_during_start: Phase::Start, FREEZE, "API server frozen 10 s";
    apiserver_frozen_during_promote: Phase::Promote, FREEZE, "API server frozen 10 s";
    apiserver_frozen_during_abort: Phase::Abort, FREEZE, "API server frozen 10 s";
    apiserver_frozen_during_auto_analysis: Phase::AutoAnalysis, FREEZE, "API server frozen 10 s";
    apiserver_frozen_during_auto_promote: Phase::AutoPromote, FREEZE, "API server frozen 10 s";
    apiserver_frozen_during_auto_rollback: Phase::AutoRollback, FREEZE, "API server frozen 10 s";
    controller_manager_restarted_during_start: Phase::Start, CM_RESTART, "controller-manager restarted";
    controller_manager_restarted_during_promote: Phase::Promote, CM_RESTART, "controller-manager restarted";
    controller_manager_restarted_during_abort: Phase::Abort, CM_RESTART, "controller-manager restarted";
    controller_manager_restarted_during_auto_analysis: Phase::AutoAnalysis, CM_RESTART, "controller-manager restarted";
    controller_manager_restarted_during_auto_promote: Phase::AutoPromote, CM_RESTART, "controller-manager restarted";
    controller_manager_restarted_during_auto_rollback: Phase::AutoRollback, CM_RESTART, "controller-manager restarted";
    connection_reset_during_start: Phase::Start, RESET, "connection reset mid-request";
    connection_reset_during_promote: Phase::Promote, RESET, "connection reset mid-request";
    connection_reset_during_abort: Phase::Abort, RESET, "connection reset mid-request";
    connection_reset_during_auto_analysis: Phase::AutoAnalysis, RESET, "connection reset mid-request";
    connection_reset_during_auto_promote: Phase::AutoPromote, RESET, "connection reset mid-request";
    connection_reset_during_auto_rollback: Phase::AutoRollback, RESET, "connection reset mid-request";
    verb_missing_during_start: Phase::Start, VERB, "a verb missing (update deployments)";
    verb_missing_during_promote: Phase::Promote, VERB, "a verb missing (update deployments)";
    verb_missing_during_abort: Phase::Abort, VERB, "a verb missing (update deployments)";
    verb_missing_during_auto_analysis: Phase::AutoAnalysis, VERB, "a verb missing (update deployments)";
    verb_missing_during_auto_promote: Phase::AutoPromote, VERB, "a verb missing (update deployments)";
    verb_missing_during_auto_rollback: Phase::AutoRollback, VERB, "a verb missing (update deployments)";
}

/// A watch expiring with `410 Gone` during `start`'s wait: the API server restarted while
/// the canary is held and its pod not Ready yet makes every watch of the CLI come back with
/// a resourceVersion the new watch cache no longer has ("too old resource version"). The
/// watches list again and the run goes on from where it was: every step is taken once (the
/// record is written once per phase, the brake and the pause once), the command ends held
/// with exactly the recorded canary, Ready, and abort restores the spec field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the API server: run in a private testenv (see the module doc)"]
async fn a_watch_expiring_with_410_gone_is_survived_without_losing_the_runs_place() {
    assert_private_environment();
    let env = TestEnv::get().expect("a private test environment (KC_TESTENV_DIR)");
    let ns = web_namespace(&env, "fault-gone", 4).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let slow = "nginx:1.15__ready-after-15s";
    let child = tokio::process::Command::new(BIN)
        .args(["-n", &ns.name, "--timeout", "3m"])
        .args([
            "start",
            "deploy/web",
            &format!("nginx={slow}"),
            "--canary",
            "1",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        // The watchers' own account of each error, 410 included (the live view's streaming
        // watches, and kube-runtime's where the API server serves no streaming lists).
        .env(
            "KUBECTL_CANARY_LOG",
            "warn,kube_client::client::builder=off,kube_runtime::watcher=debug,canary_kube::streaming_watch=debug",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the CLI");
    let output = tokio::spawn(child.wait_with_output());
    let waiting = Instant::now();
    while record_phase(&env, &ns.name).await.as_deref() != Some("holding") {
        assert!(
            !output.is_finished(),
            "start ended before it held the canary"
        );
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "start never held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A watch expires with 410 only if the store moved on after the CLI's last view: a
    // write the CLI does not watch (a ConfigMap of another name) makes sure it has, however
    // soon after "holding" the restart comes.
    let unwatched: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    unwatched
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": { "name": "advance-the-store" }
            }))
            .unwrap(),
        )
        .await
        .expect("a write the CLI does not watch");
    control(&env, &["apiserver-restart"]).await;
    let out = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("start ends")
        .unwrap()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exit(&out, 0, "start across a 410 Gone");
    assert!(
        all.contains("code: 410"),
        "the restart made a watch expire with 410 Gone (else this test shows nothing)\n{}",
        text(&out)
    );
    for step in [
        "recorded in the cluster: starting",
        "set the canary's pod template (",
        "pause: the canary ReplicaSet has exactly 1 pod(s)",
        "recorded in the cluster: holding",
    ] {
        assert_eq!(
            all.matches(step).count(),
            1,
            "each step once, none again after the 410: {step}\n{}",
            text(&out)
        );
    }
    assert!(is_paused(&env, &ns.name, "web").await, "held means paused");
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 4), (slow.to_string(), 1)],
        "exactly the recorded canary"
    );
    assert_eq!(
        record_phase(&env, &ns.name).await.as_deref(),
        Some("holding")
    );
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        0,
        "abort after the 410",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(90)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
}
