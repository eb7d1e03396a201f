//! The foreign-actions table of StatefulSets and DaemonSets
//! (docs/results/kinds-foreign-actions.md): every foreign action in every phase of a canary
//! of `sts/db` (4 replicas, OrderedReady, a volume each) and of `ds/agent` (4 simulated
//! nodes of its own), against the real controllers, with the tool's outcome, how the
//! workload ends and how long it took to be fully available again (every pod Ready, on one
//! revision, as many as asked for), as read by the harness itself. A table generator, not a
//! test: it is ignored by default and run by `bench/kinds-foreign-table`, which writes it as
//! a results file.
//!
//! A foreign action aimed at a phase is done only once the phase is seen on the API (the
//! goal recorded in the annotation, the brake as that goal writes it, a pod being replaced);
//! a phase that does not come fails the table naming what it waited for. Every command's exit
//! code is in its cell. Nothing here asserts outcomes; `tests/kinds_foreign.rs` holds the
//! assertions.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use canary_testkit::kinds::{
    REVISION_LABEL, SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset,
    is_ready, live_pods, statefulset,
};
use canary_testkit::{TestEnv, TestNamespace, wait_until};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

/// The record annotation (docs/statefulsets-and-daemonsets.md, "The record").
const RECORD: &str = "kubectl-canary.io/canary";

/// StatefulSet replicas, DaemonSet nodes.
const SIZE: usize = 4;

/// How long a cell waits for its phase (then the table fails, naming what it waited for).
const PHASE_WAIT: Duration = Duration::from_secs(60);

/// How long a cell waits for the workload to come to rest after the commands end.
const SETTLE_WAIT: Duration = Duration::from_secs(45);

/// The `--timeout` of every command.
const TIMEOUT: &str = "90s";

/// What a cell says when the workload did not come to rest; the table then fails.
const NOT_SETTLED: &str = "**NOT AT REST**";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::StatefulSet => "db",
            Kind::DaemonSet => "agent",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Kind::StatefulSet => "sts/db",
            Kind::DaemonSet => "ds/agent",
        }
    }

    fn selector(self) -> String {
        format!("app={}", self.name())
    }

    /// `NAME:VERSION` (the container is named as the workload).
    fn image(self, version: &str) -> String {
        format!("{}:{version}", self.name())
    }

    /// `CONTAINER=NAME:VERSION`.
    fn release(self, version: &str) -> String {
        format!("{}={}", self.name(), self.image(version))
    }
}

/// Phases a foreign action can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The canary held, no run active; then `status`, and the command it offers (or `abort`).
    Holding,
    /// `promote --full` waiting for the rollout (canary pods Ready 3 s after they start).
    Promoting,
    /// `abort` waiting for the stable pods (Ready 3 s after they start; a canary of 2).
    Aborting,
    /// `start --auto --steps 1,2 --interval 8s` analysing step 1.
    Auto,
}

/// Foreign actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Revert,
    OtherVersion,
    Rescale,
    DeleteRecord,
    Recreate,
    AnotherRun,
    NodeAdded,
}

impl Action {
    fn words(self, kind: Kind) -> String {
        let target = kind.target();
        let name = kind.name();
        match self {
            Action::Revert => {
                format!("stable template put back (`kubectl set image {target} {name}={name}:v1`)")
            }
            Action::OtherVersion => {
                format!("another version (`kubectl set image {target} {name}={name}:v3`)")
            }
            Action::Rescale => format!("rescaled (`kubectl scale {target} --replicas 6`, 4 → 6)"),
            Action::DeleteRecord => {
                format!("record deleted (`kubectl annotate {target} {RECORD}-`)")
            }
            Action::Recreate => format!("{target} deleted and re-created (the same manifest)"),
            Action::AnotherRun => "another run (`kubectl canary abort` by a second process)".into(),
            Action::NodeAdded => "a node added (its pod from the template of the moment)".into(),
        }
    }
}

fn exit_words(code: Option<i32>) -> String {
    match code {
        Some(0) => "0 done".into(),
        Some(1) => "1 error".into(),
        Some(3) => "3 not found".into(),
        Some(4) => "4 refused".into(),
        Some(5) => "5 locked".into(),
        Some(8) => "8 timed out".into(),
        Some(9) => "9 stuck".into(),
        Some(10) => "10 unhealthy".into(),
        Some(11) => "11 rolled back".into(),
        Some(12) => "12 inconclusive".into(),
        Some(13) => "13 reverted by others".into(),
        Some(14) => "14 replaced by others".into(),
        Some(15) => "15 rescaled".into(),
        Some(16) => "16 re-created".into(),
        Some(17) => "17 record lost".into(),
        Some(18) => "18 superseded".into(),
        Some(n) => format!("{n}"),
        None => "killed".into(),
    }
}

/// Why a command ended so, in a few words, when its output says one of the known whys.
fn why(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stderr.contains("changed by another run (or removed)") {
        " (the record changed under it)".into()
    } else if stderr.contains("was left unfinished") {
        " (an abort left unfinished)".into()
    } else if stderr.contains("no canary is running") {
        " (no canary)".into()
    } else if stderr.contains("not found in namespace") {
        " (the workload gone)".into()
    } else if let Some(waited) = stdout
        .split_once("still inconclusive after waiting ")
        .and_then(|(_, rest)| rest.split_once("ms"))
        .and_then(|(ms, _)| ms.parse::<u64>().ok())
        .filter(|_| stdout.contains("no canary pods"))
    {
        format!(
            " (its analysis of step 1 found no canary pods and waited {} s)",
            waited / 1000
        )
    } else if out.status.code() == Some(1) {
        // An error no row expects: its message, as it said it.
        let said = stderr
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or("no message");
        format!(" (\"{}\")", said.replace('|', "\\|"))
    } else {
        String::new()
    }
}

/// The command's exit in words, and its message to the log.
fn outcome_of(what: &str, cell: &str, out: &std::process::Output) -> String {
    eprintln!("[{cell}] {what}: {}", text(out));
    format!("{what}: {}{}", exit_words(out.status.code()), why(out))
}

/// The workload and its pods as the harness reads them.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// The workload exists.
    exists: bool,
    /// Pods asked for: a StatefulSet's replicas, a DaemonSet's pool nodes.
    desired: usize,
    /// The controller has seen the spec (its generation).
    observed: bool,
    /// The controller has seen the spec and says it is done with it (a StatefulSet's ordinals
    /// at or above the partition updated; a DaemonSet's pods updated, or its strategy
    /// OnDelete).
    controller_done: bool,
    /// The template's image.
    template_image: String,
    /// A StatefulSet's partition; a DaemonSet's strategy type.
    brake: String,
    /// The recorded goal, if a record is on the workload.
    goal: Option<Value>,
    /// Live pods: (image, revision, ready, terminating).
    pods: Vec<(String, String, bool, bool)>,
}

impl Snapshot {
    /// Every pod asked for is there, Ready, none terminating, all on one revision.
    fn fully_available(&self) -> bool {
        self.exists
            && self.pods.len() == self.desired
            && self.pods.iter().all(|(_, _, ready, gone)| *ready && !gone)
            && self
                .pods
                .iter()
                .map(|(_, rev, _, _)| rev)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == 1
    }

    /// Every pod asked for there and Ready (possibly on two revisions, a canary held).
    fn all_ready(&self) -> bool {
        self.exists
            && self.pods.len() == self.desired
            && self.pods.iter().all(|(_, _, ready, gone)| *ready && !gone)
    }

    /// The pods by image: `4 db:v1` or `3 db:v1 + 1 db:v2`.
    fn pods_text(&self) -> String {
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for (image, _, _, _) in &self.pods {
            *by.entry(image.as_str()).or_default() += 1;
        }
        if by.is_empty() {
            return "no pods".into();
        }
        by.iter()
            .map(|(image, n)| format!("{n} {image}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn goal_text(&self) -> Option<String> {
        let goal = self.goal.as_ref()?;
        Some(match goal["goal"].as_str() {
            Some("hold") if goal["pods"].is_number() => format!("hold {}", goal["pods"]),
            Some("hold") => format!("hold {}", goal["nodes"].as_array().map_or(0, |n| n.len())),
            Some(other) => other.to_string(),
            None => goal.to_string(),
        })
    }

    /// How the workload ends: its pods, the template when the pods are not all on it, the
    /// brake when it is not the workload's own, the record when one is left.
    fn end_text(&self, kind: Kind) -> String {
        if !self.exists {
            return "the workload is gone".into();
        }
        let mut words = vec![format!("ends with {}", self.pods_text())];
        if self
            .pods
            .iter()
            .any(|(image, ..)| *image != self.template_image)
        {
            words.push(format!("template {}", self.template_image));
        }
        let own = match kind {
            Kind::StatefulSet => "partition 0",
            Kind::DaemonSet => "RollingUpdate",
        };
        if self.brake != own {
            words.push(format!("**{} left**", self.brake));
        }
        if let Some(goal) = self.goal_text() {
            words.push(format!("**record left ({goal})**"));
        }
        words.join(", ")
    }
}

/// Reads the workload of `kind` in `ns` and its pods.
async fn snapshot(client: &Client, ns: &str, kind: Kind) -> Snapshot {
    let pods = live_pods(client, ns, &kind.selector()).await;
    let pods: Vec<(String, String, bool, bool)> = pods
        .iter()
        .map(|p| {
            (
                p.spec
                    .as_ref()
                    .and_then(|s| s.containers[0].image.clone())
                    .unwrap_or_default(),
                p.labels().get(REVISION_LABEL).cloned().unwrap_or_default(),
                is_ready(p),
                p.metadata.deletion_timestamp.is_some(),
            )
        })
        .collect();
    let goal_of = |annotations: &std::collections::BTreeMap<String, String>| {
        annotations
            .get(RECORD)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .map(|record| record["goal"].clone())
    };
    match kind {
        Kind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let Ok(Some(sts)) = api.get_opt(kind.name()).await else {
                return Snapshot {
                    pods,
                    ..Snapshot::default()
                };
            };
            let spec = sts.spec.clone().unwrap_or_default();
            let replicas = spec.replicas.unwrap_or(1);
            let partition = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0);
            let status = sts.status.clone().unwrap_or_default();
            let observed = status.observed_generation.is_some()
                && status.observed_generation >= sts.metadata.generation;
            let controller_done = observed
                && status.replicas == replicas
                && status.ready_replicas == Some(replicas)
                && (status.current_revision == status.update_revision
                    || status.updated_replicas.unwrap_or(0) >= replicas - partition);
            Snapshot {
                exists: true,
                observed,
                desired: replicas as usize,
                controller_done,
                template_image: spec.template.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap_or_default(),
                brake: format!("partition {partition}"),
                goal: goal_of(sts.annotations()),
                pods,
            }
        }
        Kind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
            let nodes: Api<Node> = Api::all(client.clone());
            let pool = nodes
                .list(&ListParams::default().labels(&format!("{}={ns}", SimNodes::POOL_LABEL)))
                .await
                .map_or(0, |l| l.items.len());
            let Ok(Some(ds)) = api.get_opt(kind.name()).await else {
                return Snapshot {
                    desired: pool,
                    pods,
                    ..Snapshot::default()
                };
            };
            let spec = ds.spec.clone().unwrap_or_default();
            let strategy = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.type_.clone())
                .unwrap_or_else(|| "RollingUpdate".into());
            let status = ds.status.clone().unwrap_or_default();
            let desired = status.desired_number_scheduled;
            let observed = status.observed_generation.is_some()
                && status.observed_generation >= ds.metadata.generation;
            let controller_done = observed
                && desired as usize == pool
                && status.number_ready == desired
                && status.number_unavailable.unwrap_or(0) == 0
                && (strategy == "OnDelete" || status.updated_number_scheduled == Some(desired));
            Snapshot {
                exists: true,
                observed,
                desired: pool,
                controller_done,
                template_image: spec.template.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap_or_default(),
                brake: strategy,
                goal: goal_of(ds.annotations()),
                pods,
            }
        }
    }
}

/// One read of the sampler: when, fully available or not, and how many of the pods asked
/// for were missing or not Ready.
type Sample = (Duration, bool, usize);

/// Samples whether the workload is fully available, from the harness's own reads, until
/// stopped.
struct Sampler {
    task: tokio::task::JoinHandle<Vec<Sample>>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start(client: Client, ns: String, kind: Kind, started: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            // One more read once stopped: the last sample is of the workload at rest.
            loop {
                let stopping = flag.load(Ordering::SeqCst);
                let s = snapshot(&client, &ns, kind).await;
                let ready = s
                    .pods
                    .iter()
                    .filter(|(_, _, ready, gone)| *ready && !gone)
                    .count();
                samples.push((
                    started.elapsed(),
                    s.fully_available(),
                    s.desired.saturating_sub(ready),
                ));
                if stopping {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        });
        Self { task, stop }
    }

    async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the sampler")
    }
}

/// After `action_at`: when the workload was fully available again (for good), or that it was
/// not at the end; and the most pods asked for that were missing or not Ready at once.
fn availability(samples: &[Sample], action_at: Duration) -> String {
    let after: Vec<&Sample> = samples.iter().filter(|(at, ..)| *at >= action_at).collect();
    let worst = after.iter().map(|(_, _, short)| *short).max().unwrap_or(0);
    let dip = match worst {
        0 => "every pod Ready throughout".to_string(),
        n => format!("at worst {n} not Ready"),
    };
    if after.iter().all(|(_, full, _)| *full) {
        return format!("fully available throughout ({dip})");
    }
    match after.iter().rposition(|(_, full, _)| !*full) {
        Some(last) if last + 1 < after.len() => format!(
            "fully available again {:.1} s after the action ({dip})",
            (after[last + 1].0 - action_at).as_secs_f64()
        ),
        _ => format!(
            "**not fully available {:.0} s after the action** ({dip})",
            (after.last().map_or(action_at, |s| s.0) - action_at).as_secs_f64()
        ),
    }
}

/// One cell's workload: its namespace, nodes (a DaemonSet's) and stable image.
struct Cell {
    env: TestEnv,
    client: Client,
    kind: Kind,
    namespace: TestNamespace,
    nodes: SimNodes,
    stable: String,
    label: String,
}

impl Cell {
    fn ns(&self) -> &str {
        &self.namespace.name
    }

    /// Creates the workload of the stable manifest.
    async fn create(&self) {
        match self.kind {
            Kind::StatefulSet => {
                create_settled_statefulset(
                    &self.env,
                    &self.client,
                    self.ns(),
                    &statefulset("db", SIZE as i32, &self.stable, "OrderedReady", true),
                )
                .await
            }
            Kind::DaemonSet => {
                create_settled_daemonset(
                    &self.env,
                    &self.client,
                    self.ns(),
                    &daemonset("agent", self.ns(), &self.stable),
                    SIZE,
                )
                .await
            }
        }
    }

    async fn canary(&self, args: &[&str]) -> std::process::Output {
        canary(&self.env, self.ns(), args).await
    }

    async fn kubectl(&self, args: &[&str]) {
        let mut full = vec!["-n", self.ns()];
        full.extend_from_slice(args);
        let out = kubectl(&self.env, &full).await;
        assert!(
            out.status.success(),
            "[{}] kubectl {args:?}: {}",
            self.label,
            text(&out)
        );
    }

    /// Waits until `check` holds of the workload; fails the table naming `what`.
    async fn wait_phase(&self, what: &str, check: impl Fn(&Snapshot) -> bool) {
        let what = format!("[{}] {what}", self.label);
        wait_until(&self.env, &what, PHASE_WAIT, || async {
            check(&snapshot(&self.client, self.ns(), self.kind).await)
        })
        .await
    }

    /// Does `action`; returns their abort's outcome (another run).
    async fn act(&mut self, action: Action) -> Option<String> {
        let target = self.kind.target();
        let name = self.kind.name();
        match action {
            Action::Revert => {
                let image = format!("{name}={}", self.stable);
                self.kubectl(&["set", "image", target, &image]).await
            }
            Action::OtherVersion => {
                let image = self.kind.release("v3");
                self.kubectl(&["set", "image", target, &image]).await
            }
            Action::Rescale => {
                self.kubectl(&["scale", target, "--replicas", "6"]).await;
            }
            Action::DeleteRecord => {
                self.kubectl(&["annotate", target, &format!("{RECORD}-")])
                    .await
            }
            Action::Recreate => {
                self.kubectl(&["delete", target, "--cascade=foreground", "--wait=true"])
                    .await;
                let (client, ns, kind) = (self.client.clone(), self.ns().to_owned(), self.kind);
                wait_until(&self.env, "the workload gone", PHASE_WAIT, || async {
                    !snapshot(&client, &ns, kind).await.exists
                })
                .await;
                match self.kind {
                    Kind::StatefulSet => {
                        let api: Api<StatefulSet> = Api::namespaced(client, self.ns());
                        let manifest =
                            statefulset("db", SIZE as i32, &self.stable, "OrderedReady", true);
                        api.create(&PostParams::default(), &manifest)
                            .await
                            .expect("create the StatefulSet again");
                    }
                    Kind::DaemonSet => {
                        let api: Api<DaemonSet> = Api::namespaced(client, self.ns());
                        let manifest = daemonset("agent", self.ns(), &self.stable);
                        api.create(&PostParams::default(), &manifest)
                            .await
                            .expect("create the DaemonSet again");
                    }
                }
            }
            Action::AnotherRun => {
                let out = self.canary(&["abort", target, "--timeout", TIMEOUT]).await;
                return Some(outcome_of("their abort", &self.label, &out));
            }
            Action::NodeAdded => {
                self.nodes.add(&self.env, 1).await;
            }
        }
        None
    }

    /// Waits until the controller has taken in `action` (so that `status` reads its result).
    async fn action_seen(&self, action: Action) {
        let pool = self.nodes.names.len();
        let check = |s: &Snapshot| match action {
            Action::Recreate | Action::Rescale | Action::Revert | Action::OtherVersion => {
                s.exists && s.observed
            }
            Action::NodeAdded => s.pods.len() == pool,
            _ => true,
        };
        self.wait_phase(&format!("the controller to take in {action:?}"), check)
            .await
    }
}

/// Runs one cell; returns its text.
async fn cell(env: &TestEnv, kind: Kind, phase: Phase, action: Action) -> String {
    let client = env.client().await;
    let namespace = TestNamespace::create(env, &format!("kfx-{}", kind.name())).await;
    let label = format!("{} {phase:?} {action:?} {}", kind.target(), namespace.name);
    // An abort waits only while stable pods come back: make them take a while to be Ready.
    let stable = match phase {
        Phase::Aborting => kind.image("v1__ready-after-3s"),
        _ => kind.image("v1"),
    };
    let mut cell = Cell {
        env: env.clone(),
        client: client.clone(),
        kind,
        nodes: SimNodes::new(&namespace.name),
        namespace,
        stable,
        label,
    };
    if kind == Kind::DaemonSet {
        cell.nodes.add(env, SIZE).await;
    }
    cell.create().await;
    let target = kind.target();
    let started = Instant::now();
    let sampler = Sampler::start(client.clone(), cell.ns().to_owned(), kind, started);
    // The canary held (all but --auto), then the command that is running when the action
    // comes, if any.
    let canary_version = match phase {
        Phase::Promoting => "v2__ready-after-3s",
        _ => "v2",
    };
    let release = kind.release(canary_version);
    let size = if phase == Phase::Aborting { "2" } else { "1" };
    if phase != Phase::Auto {
        let out = cell
            .canary(&[
                "start",
                target,
                &release,
                "--canary",
                size,
                "--timeout",
                TIMEOUT,
            ])
            .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "[{}] the canary's start: {}",
            cell.label,
            text(&out)
        );
    }
    let waiting_args: Option<Vec<String>> = match phase {
        Phase::Holding => None,
        Phase::Promoting => Some(vec!["promote".into(), target.into(), "--full".into()]),
        Phase::Aborting => Some(vec!["abort".into(), target.into()]),
        Phase::Auto => Some(
            [
                "start",
                target,
                &release,
                "--auto",
                "--steps",
                "1,2",
                "--interval",
                "8s",
            ]
            .map(String::from)
            .to_vec(),
        ),
    };
    let waiting = waiting_args.map(|mut args| {
        args.extend(["--timeout".into(), TIMEOUT.into()]);
        let env = env.clone();
        let ns = cell.ns().to_owned();
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            canary(&env, &ns, &args).await
        })
    });
    // Act once the phase is seen on the API.
    let canary_image = kind.image(canary_version);
    let stable_image = cell.stable.clone();
    match phase {
        Phase::Holding => {}
        Phase::Promoting => {
            cell.wait_phase(
                "goal promoteFull recorded, the brake released and a pod being replaced",
                |s| {
                    s.goal.as_ref().and_then(|g| g["goal"].as_str()) == Some("promoteFull")
                        && (s.brake == "partition 0" || s.brake == "RollingUpdate")
                        && !s.all_ready()
                },
            )
            .await
        }
        Phase::Aborting => {
            cell.wait_phase(
                "goal abort recorded, the stable template back and a pod being replaced",
                |s| {
                    s.goal.as_ref().and_then(|g| g["goal"].as_str()) == Some("abort")
                        && s.template_image == stable_image
                        && !s.all_ready()
                },
            )
            .await
        }
        Phase::Auto => {
            cell.wait_phase("goal hold 1 recorded and its canary pod Ready", |s| {
                s.goal_text().as_deref() == Some("hold 1")
                    && s.pods
                        .iter()
                        .any(|(image, _, ready, _)| *image == canary_image && *ready)
            })
            .await
        }
    }
    let action_at = started.elapsed();
    let acted = cell.act(action).await;
    let mut outcome = Vec::new();
    if let Some(task) = waiting {
        let out = task.await.expect("the command runs");
        let what = match phase {
            Phase::Promoting => "promote --full",
            Phase::Aborting => "abort",
            Phase::Auto => "start --auto",
            Phase::Holding => unreachable!(),
        };
        outcome.push(outcome_of(what, &cell.label, &out));
    }
    if let Some(theirs) = acted {
        outcome.push(theirs);
    }
    if phase == Phase::Holding {
        cell.action_seen(action).await;
        let out = cell.canary(&["status", target, "-o", "json"]).await;
        eprintln!("[{}] status: {}", cell.label, text(&out));
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let record = match status["canary"]["goal"]["goal"].as_str() {
            Some(goal) => format!("record {goal}"),
            None => "no record".into(),
        };
        let mut sides: std::collections::BTreeMap<&str, usize> = Default::default();
        for pod in status["pods"].as_array().into_iter().flatten() {
            *sides
                .entry(pod["side"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        let sides: Vec<String> = sides.iter().map(|(s, n)| format!("{n} {s}")).collect();
        // The command status offers, if it offers one to run as it is; else abort.
        let offered = status["next"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|c| {
                c.starts_with("kubectl canary ")
                    && !c.contains('(')
                    && !c.split_whitespace().any(|w| {
                        w.chars()
                            .all(|ch| ch.is_ascii_uppercase() || ch == '=' || ch == ':')
                    })
            })
            .map(|c| c.trim_start_matches("kubectl canary ").to_owned());
        let problems = match status["problems"].as_array().map_or(0, Vec::len) {
            0 => "no problem named".to_string(),
            n => format!("{n} problem(s) named"),
        };
        outcome.push(format!(
            "status: {} ({record}; pods {}; {problems}; offers {})",
            exit_words(out.status.code()),
            sides.join(", "),
            offered.as_deref().unwrap_or("nothing to run as is")
        ));
        let next = offered.unwrap_or_else(|| format!("abort {target}"));
        let mut words: Vec<&str> = next.split_whitespace().collect();
        words.extend(["--timeout", TIMEOUT]);
        let out = cell.canary(&words).await;
        let shown = next.replace(&format!(" {target}"), "");
        outcome.push(outcome_of(&format!("next {shown}"), &cell.label, &out));
    }
    // Wait for the workload to come to rest (the controller done with its spec, every pod
    // Ready), then read how it ends and the availability record.
    let mut end = snapshot(&client, cell.ns(), kind).await;
    let settling = Instant::now();
    let mut settled = false;
    while settling.elapsed() < SETTLE_WAIT {
        end = snapshot(&client, cell.ns(), kind).await;
        if end.controller_done && end.all_ready() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let samples = sampler.stop().await;
    let settle = if settled {
        String::new()
    } else {
        format!("; {NOT_SETTLED} after {} s", SETTLE_WAIT.as_secs())
    };
    eprintln!("[{}] end: {end:?}", cell.label);
    let text = format!(
        "{}; {}; {}{settle}",
        outcome.join(", "),
        end.end_text(kind),
        availability(&samples, action_at)
    );
    // Clean up: a DaemonSet's nodes are the cluster's, not the namespace's.
    if kind == Kind::DaemonSet {
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), cell.ns());
        let _ = api.delete("agent", &DeleteParams::foreground()).await;
        let (c, ns) = (client.clone(), cell.ns().to_owned());
        wait_until(env, "the DaemonSet's pods gone", PHASE_WAIT, || async {
            live_pods(&c, &ns, "app=agent").await.is_empty()
        })
        .await;
        cell.nodes.remove(&client).await;
    }
    eprintln!("[{}] cell: {text}", cell.label);
    text
}

/// Prints the tables (run with `--ignored --nocapture`, or by `bench/kinds-foreign-table`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a table generator, run by bench/kinds-foreign-table"]
async fn kinds_foreign_actions_table() {
    let env = TestEnv::get().expect("a running test environment (scripts/testenv up)");
    let phases = [
        Phase::Holding,
        Phase::Promoting,
        Phase::Aborting,
        Phase::Auto,
    ];
    let only: Option<String> = std::env::var("KC_FTABLE_ONLY").ok();
    let rows: Vec<(Kind, Action)> = [
        (Kind::StatefulSet, Action::Revert),
        (Kind::StatefulSet, Action::OtherVersion),
        (Kind::StatefulSet, Action::Rescale),
        (Kind::StatefulSet, Action::DeleteRecord),
        (Kind::StatefulSet, Action::Recreate),
        (Kind::StatefulSet, Action::AnotherRun),
        (Kind::DaemonSet, Action::Revert),
        (Kind::DaemonSet, Action::OtherVersion),
        (Kind::DaemonSet, Action::DeleteRecord),
        (Kind::DaemonSet, Action::Recreate),
        (Kind::DaemonSet, Action::AnotherRun),
        (Kind::DaemonSet, Action::NodeAdded),
    ]
    .into_iter()
    .collect();
    let started = Instant::now();
    let work: Vec<(usize, usize, Kind, Action, Phase)> = rows
        .iter()
        .enumerate()
        .flat_map(|(r, (kind, action))| {
            phases
                .iter()
                .enumerate()
                .map(move |(p, phase)| (r, p, *kind, *action, *phase))
        })
        .filter(|(_, _, kind, action, phase)| {
            only.as_deref()
                .is_none_or(|o| format!("{} {phase:?} {action:?}", kind.target()).contains(o))
        })
        .collect();
    let count = work.len();
    let cells: Vec<(usize, usize, String)> = futures::stream::iter(work)
        .map(|(r, p, kind, action, phase)| {
            let env = env.clone();
            async move { (r, p, cell(&env, kind, phase, action).await) }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    println!("<!-- table -->");
    for (kind, title) in [
        (
            Kind::StatefulSet,
            "### StatefulSet `sts/db`: 4 replicas, OrderedReady, a volume each; a canary of 1 (aborting: 2)",
        ),
        (
            Kind::DaemonSet,
            "### DaemonSet `ds/agent`: 4 nodes of its own; a canary of 1 node (aborting: 2)",
        ),
    ] {
        println!("{title}\n");
        println!(
            "| foreign action | holding (no run; then `status`, the command it offers or `abort`) | promoting (`promote --full` waiting) | aborting (`abort` waiting) | `--auto` between steps (analysing step 1) |"
        );
        println!("| --- | --- | --- | --- | --- |");
        for (r, (row_kind, action)) in rows.iter().enumerate() {
            if *row_kind != kind {
                continue;
            }
            let mut row = vec![action.words(kind)];
            for p in 0..phases.len() {
                row.push(
                    cells
                        .iter()
                        .find(|(cr, cp, _)| *cr == r && *cp == p)
                        .map(|(_, _, text)| text.clone())
                        .unwrap_or_else(|| "(not run)".into()),
                );
            }
            println!("| {} |", row.join(" | "));
        }
        println!();
    }
    println!(
        "{count} cells in {:.0} s, 3 at a time, each in a namespace of its own. Stable `v1`, canary `v2`; \
         promoting: canary pods Ready 3 s after they start; aborting: stable pods Ready 3 s after they \
         start; `--auto --steps 1,2 --interval 8s`. Fully available: every pod asked for (a StatefulSet's \
         replicas, a DaemonSet's nodes) Ready, none terminating, all on one revision, read by the harness \
         every 100 ms; \"at worst N not Ready\": the most pods asked for that were missing or not Ready \
         at once after the action.",
        started.elapsed().as_secs_f64()
    );
    println!("<!-- end -->");
    let unsettled = cells
        .iter()
        .filter(|(_, _, text)| text.contains(NOT_SETTLED))
        .count();
    assert_eq!(
        unsettled, 0,
        "{unsettled} cells did not come to rest (marked in the table)"
    );
}
