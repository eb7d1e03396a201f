//! The foreign-actions table (docs/results/foreign-actions.md): every foreign action in every phase where it
//! can happen, against the real controllers, with the tool's outcome and how long the
//! Deployment took to be fully available again. A table generator, not a test: it is
//! ignored by default and run by `bench/foreign-table`, which writes it as a results file.
//! Every command's exit code is in its cell (`status`'s too, with the foreign change it
//! names); a wait for a phase that does not come fails the table naming it, and so does a
//! Deployment that does not settle after the action.
//!
//! Nothing here asserts timings; `tests/foreign.rs` holds the assertions.

mod common;

use std::time::{Duration, Instant};

use canary_testkit::actors::{AvailabilitySample, AvailabilitySampler};
use canary_testkit::foreign::ForeignAction;
use canary_testkit::reads;
use canary_testkit::{TestEnv, TestNamespace, create_settled, wait_until, web_deployment};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const REPLICAS: i32 = 4;

/// How long a cell waits for its phase (then the table fails, naming what it waited for).
const PHASE_WAIT: Duration = Duration::from_secs(30);

/// How long a cell waits for the Deployment to settle after the action.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// What a cell says when the Deployment did not settle; the table then fails.
const NOT_SETTLED: &str =
    "**NOT SETTLED** (the Deployment controller not done: see `at_rest`) after";

/// Phases a foreign action can meet.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// `start` waiting for its canary pods to become Ready.
    Starting,
    /// The canary held, no run active; the next command is `abort`.
    Holding,
    /// `promote --full` waiting for the rollout.
    Promoting,
    /// `abort` waiting for the stable pods (the canary was promoted half-way).
    Aborting,
    /// `start --auto` analysing its first step (8 s), before growing to the second.
    Auto,
}

/// Foreign actions.
#[derive(Debug, Clone, Copy)]
enum Action {
    Revert,
    OtherVersion,
    Rescale,
    DeleteRecord,
    Recreate,
    AnotherRun,
}

impl Action {
    fn words(self) -> &'static str {
        match self {
            Action::Revert => "stable template put back (GitOps apply of the old manifest)",
            Action::OtherVersion => "another version (`kubectl set image`)",
            Action::Rescale => "rescaled (`kubectl scale` 4 → 6)",
            Action::DeleteRecord => "record deleted",
            Action::Recreate => "Deployment deleted and re-created",
            Action::AnotherRun => "another run (`kubectl canary abort`)",
        }
    }
}

fn exit_words(code: Option<i32>) -> String {
    match code {
        Some(0) => "0 done".into(),
        Some(9) => "9 stuck".into(),
        Some(10) => "10 unhealthy".into(),
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

/// The longest stretch (from the action on) in which the Deployment was not fully
/// available (`Available=True` and every replica available), and whether that stretch was
/// still open at the end.
fn unavailable(samples: &[AvailabilitySample], action_at: Duration) -> (Duration, bool) {
    let mut since: Option<Duration> = None;
    let mut worst = Duration::ZERO;
    for s in samples.iter().filter(|s| s.at >= action_at) {
        let full = s.available == "True" && s.available_replicas >= s.replicas;
        match (full, since) {
            (false, None) => since = Some(s.at),
            (true, Some(start)) => {
                worst = worst.max(s.at - start);
                since = None;
            }
            _ => {}
        }
    }
    match since {
        Some(start) => (
            worst.max(samples.last().map_or(start, |s| s.at) - start),
            true,
        ),
        None => (worst, false),
    }
}

async fn act(
    env: &TestEnv,
    ns: &str,
    stable: &str,
    action: Action,
) -> Option<std::process::Output> {
    let foreign = match action {
        Action::Revert => ForeignAction::Revert,
        Action::OtherVersion => ForeignAction::OtherVersion,
        Action::Rescale => ForeignAction::Rescale(6),
        Action::DeleteRecord => ForeignAction::DeleteRecord,
        Action::Recreate => ForeignAction::Recreate,
        Action::AnotherRun => {
            return Some(canary(env, ns, &["abort", "deploy/web", "--timeout", "60s"]).await);
        }
    };
    foreign.apply(env, ns, stable, REPLICAS).await;
    None
}

/// Whether the Deployment controller is done with `d`: it has seen the latest spec, every
/// pod it has is Ready, every replica asked for is available, and either the rollout is
/// complete or the Deployment is paused (a canary held, or left held without its record,
/// rests there with both sides).
fn at_rest(d: &Deployment) -> bool {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let pods = status.replicas.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= generation
        && status.available_replicas.unwrap_or(0) >= replicas
        && status.ready_replicas.unwrap_or(0) >= pods
        && (paused || (status.updated_replicas.unwrap_or(0) >= replicas && pods == replicas))
}

/// Whether the record's phase is `name`.
async fn record_says(env: &TestEnv, namespace: &str, name: &str) -> bool {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(env.client().await, namespace);
    api.get_opt("web.kubectl-canary")
        .await
        .ok()
        .flatten()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("record.json").cloned())
        .is_some_and(|text| text.contains(&format!("\"name\": \"{name}\"")))
}

/// Runs one cell; returns its text.
async fn cell(env: &TestEnv, phase: Phase, action: Action) -> String {
    let ns = TestNamespace::create(env, "fx-table").await;
    // An abort waits only while stable pods come back: make them take a while to be Ready.
    let stable = match phase {
        Phase::Aborting => "nginx:1.14__ready-after-8s",
        _ => "nginx:1.14",
    };
    create_settled(
        env,
        &ns.name,
        &web_deployment("web", REPLICAS, stable, None),
    )
    .await;
    let sampler = AvailabilitySampler::start(env, &ns.name, "web").await;
    let started = Instant::now();
    // The command that is running when the action comes, if any.
    let (image, waiting_args): (&str, Option<Vec<&str>>) = match phase {
        Phase::Starting => (
            "nginx=nginx:1.15__ready-after-30s",
            Some(vec![
                "start",
                "deploy/web",
                "nginx=nginx:1.15__ready-after-30s",
                "--canary",
                "2",
                "--timeout",
                "60s",
            ]),
        ),
        Phase::Holding => ("nginx=nginx:1.15", None),
        // Canary pods Ready only after 10 s: the promotion waits that long.
        Phase::Promoting => (
            "nginx=nginx:1.15__ready-after-10s",
            Some(vec!["promote", "deploy/web", "--full", "--timeout", "60s"]),
        ),
        Phase::Aborting => (
            "nginx=nginx:1.15",
            Some(vec!["abort", "deploy/web", "--timeout", "60s"]),
        ),
        Phase::Auto => (
            "nginx=nginx:1.15",
            Some(vec![
                "start",
                "deploy/web",
                "nginx=nginx:1.15",
                "--auto",
                "--steps",
                "1,2",
                "--interval",
                "8s",
                "--http-check",
                ":80/",
                "--http-requests",
                "20",
                "--http-rate",
                "5",
                "--timeout",
                "60s",
            ]),
        ),
    };
    if !matches!(phase, Phase::Starting | Phase::Auto) {
        // Aborting: a replace canary, so the abort has stable pods to bring back.
        let mode = if matches!(phase, Phase::Aborting) {
            "replace"
        } else {
            "surge"
        };
        let out = canary(
            env,
            &ns.name,
            &[
                "start",
                "deploy/web",
                image,
                "--canary",
                "2",
                "--mode",
                mode,
                "--no-wait",
            ],
        )
        .await;
        if out.status.code() != Some(0) {
            return format!("setup failed: {}", exit_words(out.status.code()));
        }
    }
    let waiting = waiting_args.map(|args| {
        let env = env.clone();
        let ns = ns.name.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            canary(&env, &ns, &args).await
        })
    });
    // Act once the waiting command is in its wait.
    match phase {
        Phase::Starting => {
            let client = env.client().await;
            wait_until(env, "a canary pod", PHASE_WAIT, || async {
                reads::pods_by_image(&client, &ns.name, "app=web")
                    .await
                    .keys()
                    .any(|image| image.starts_with("nginx:1.15"))
            })
            .await
        }
        Phase::Holding => {}
        Phase::Promoting => {
            wait_until(env, "the record in phase promotingFull", PHASE_WAIT, || {
                record_says(env, &ns.name, "promotingFull")
            })
            .await
        }
        Phase::Aborting => {
            wait_until(env, "the record in phase aborting", PHASE_WAIT, || {
                record_says(env, &ns.name, "aborting")
            })
            .await
        }
        Phase::Auto => {
            wait_until(env, "the record in phase holding", PHASE_WAIT, || {
                record_says(env, &ns.name, "holding")
            })
            .await
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let action_at = started.elapsed();
    let acted = act(env, &ns.name, stable, action).await;
    let mut outcome = Vec::new();
    if let Some(task) = waiting {
        let out = task.await.expect("the command runs");
        let what = match phase {
            Phase::Starting => "start",
            Phase::Promoting => "promote --full",
            Phase::Aborting => "abort",
            Phase::Auto => "start --auto",
            Phase::Holding => "",
        };
        outcome.push(format!("{what}: {}", exit_words(out.status.code())));
    }
    if let Some(out) = acted {
        outcome.push(format!("their abort: {}", exit_words(out.status.code())));
    }
    if matches!(phase, Phase::Holding) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let out = canary(env, &ns.name, &["status", "deploy/web", "-o", "json"]).await;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        // Its exit code always; the foreign change it names, where it names one.
        let seen = match status["foreign"]["change"].as_str() {
            Some(change) => format!(" ({change})"),
            None => String::new(),
        };
        outcome.push(format!("status: {}{seen}", exit_words(out.status.code())));
        // A size the controller spread a rescale over: status shows both and offers the
        // command that restores the size asked (docs/holding.md), which is run first.
        if let Some(restore) = status["canarySize"]["restore"].as_str() {
            outcome.push(format!(
                "canary asked {}, running {}",
                status["canarySize"]["askedPods"], status["canarySize"]["running"]
            ));
            let words: Vec<&str> = restore
                .trim_start_matches("kubectl canary ")
                .split_whitespace()
                .collect();
            let out = canary(env, &ns.name, &words).await;
            let after = replica_sets_by_image(env, &ns.name).await;
            let pods = |image: &str| {
                after
                    .iter()
                    .find(|(i, _)| i == image)
                    .map_or(0, |(_, n)| *n)
            };
            outcome.push(format!(
                "next {}: {}, then {} canary beside {} stable",
                words.join(" ").replace(" deploy/web", ""),
                exit_words(out.status.code()),
                pods("nginx:1.15"),
                pods("nginx:1.14")
            ));
        }
        let out = canary(env, &ns.name, &["abort", "deploy/web", "--timeout", "60s"]).await;
        outcome.push(format!("next abort: {}", exit_words(out.status.code())));
    }
    // Wait for the controller to settle (every replica updated and available), then read
    // the availability record; a cell that does not settle says so and fails the table.
    let api: Api<Deployment> = Api::namespaced(env.client().await, &ns.name);
    let mut settled = false;
    let settling = Instant::now();
    while settling.elapsed() < SETTLE_WAIT {
        if let Ok(Some(d)) = api.get_opt("web").await
            && at_rest(&d)
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let samples = sampler.stop().await;
    let (longest, open) = unavailable(&samples, action_at);
    let went_false = samples
        .iter()
        .any(|s| s.at >= action_at && s.available == "False");
    let availability = if open {
        format!(
            "**not fully available after {:.0} s**",
            longest.as_secs_f64()
        )
    } else if longest.is_zero() {
        "never less available".to_string()
    } else {
        format!(
            "fully available again after {:.1} s{}",
            longest.as_secs_f64(),
            if went_false {
                " (Available=False meanwhile)"
            } else {
                ""
            }
        )
    };
    let settle = if settled {
        String::new()
    } else {
        format!("; {NOT_SETTLED} {} s", SETTLE_WAIT.as_secs())
    };
    format!("{}; {availability}{settle}", outcome.join(", "))
}

/// Prints the table (run with `--ignored --nocapture`, or by `bench/foreign-table`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a table generator, run by bench/foreign-table"]
async fn foreign_actions_table() {
    let env = TestEnv::get().expect("a running test environment (scripts/testenv up)");
    let phases = [
        Phase::Starting,
        Phase::Holding,
        Phase::Promoting,
        Phase::Aborting,
        Phase::Auto,
    ];
    let actions = [
        Action::Revert,
        Action::OtherVersion,
        Action::Rescale,
        Action::DeleteRecord,
        Action::Recreate,
        Action::AnotherRun,
    ];
    let started = Instant::now();
    let cells: Vec<(usize, usize, String)> =
        futures::stream::iter(actions.iter().enumerate().flat_map(|(a, action)| {
            phases
                .iter()
                .enumerate()
                .map(move |(p, phase)| (a, p, *action, *phase))
        }))
        .map(|(a, p, action, phase)| {
            let env = env.clone();
            async move { (a, p, cell(&env, phase, action).await) }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    println!(
        "| foreign action | starting (`start` waiting for Ready) | holding (no run; then `status`, the restoring command it offers, `abort`) | promoting (`promote --full` waiting) | aborting (`abort` waiting) | `--auto` between steps (analysing step 1) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (a, action) in actions.iter().enumerate() {
        let mut row = vec![action.words().to_string()];
        for p in 0..phases.len() {
            row.push(
                cells
                    .iter()
                    .find(|(ca, cp, _)| *ca == a && *cp == p)
                    .map(|(_, _, text)| text.clone())
                    .unwrap_or_default(),
            );
        }
        println!("| {} |", row.join(" | "));
    }
    let unsettled = cells
        .iter()
        .filter(|(_, _, text)| text.contains(NOT_SETTLED))
        .count();
    println!(
        "\n{} cells in {:.0} s; {REPLICAS} replicas, canary of 2 pods in surge mode (aborting column: replace \
         mode, stable pods Ready 8 s after they start; --auto: steps of 1 then 2 pods)",
        actions.len() * phases.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        unsettled, 0,
        "{unsettled} cells did not settle (marked in the table)"
    );
}
