//! `start` (with `--auto`), `status`, `promote`, `abort` and `analyze` of a StatefulSet
//! (`sts/NAME`) or a DaemonSet (`ds/NAME`): parse (done in `config::kinds`), call
//! `canary_kube::ops::kinds`, render.

use canary_core::release::ReleaseInput;
use canary_core::step_policy::NextStep;
use canary_core::target::WorkloadRef;
use canary_kube::analysis::RunOptions;
use canary_kube::error::CanaryError;
use canary_kube::kinds_drive::KindDrive;
use canary_kube::kinds_status::KindStatus;
use canary_kube::ops::kinds::{self, KindStart, KindSteps, StepNews};

use crate::config::kinds::{KindAction, KindAnalyze, KindAuto, KindConfig};
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{AutoOutcome, AutoResult, notice, print_structured, verdict_text};

/// Runs the command; returns the exit code.
pub async fn run(config: &Config, kind: &KindConfig) -> Result<i32, CanaryError> {
    let target = &kind.target;
    let release = kind.release_in(&config.namespace)?.unwrap_or_default();
    let mut progress = |summary: &str| notice(&format!("  ✓ {summary}"));
    let mut drive = KindDrive {
        client: &config.client,
        writer: canary_kube::write::CLI,
        namespace: &config.namespace,
        timeout: config.timeout,
        progress: &mut progress,
    };
    if kind.dry_run {
        return dry_run(config, kind, &release).await;
    }
    let status = match &kind.action {
        KindAction::Status(true) => return watch_status(config, target).await,
        KindAction::Status(false) => {
            kinds::status(&config.client, &config.namespace, target).await?
        }
        KindAction::Analyze(analyze) => return run_analyze(config, kind, analyze).await,
        KindAction::Plan(size) => {
            let plan = kinds::plan(&config.client, &config.namespace, target, *size).await?;
            if !print_structured(config.output, &plan) {
                print!("{}", crate::output::kinds::plan_text(&plan));
            }
            return Ok(exit_code::OK);
        }
        KindAction::Start { auto, .. } => {
            let started = kinds::start(&mut drive, target, start_ask(kind, &release)).await?;
            match auto {
                Some(auto) => return run_auto(config, kind, &mut drive, started, auto).await,
                None => started.status,
            }
        }
        KindAction::Promote(size) => kinds::promote(&mut drive, target, *size).await?,
        KindAction::Abort => kinds::abort(&mut drive, target).await?,
    };
    if !print_structured(config.output, &status) {
        print!("{}", crate::output::kinds::status_text(&status));
    }
    Ok(exit_code::OK)
}

/// `--dry-run` of `start`, `promote` or `abort`: what it would do first, nothing written.
async fn dry_run(
    config: &Config,
    kind: &KindConfig,
    release: &ReleaseInput,
) -> Result<i32, CanaryError> {
    let (client, namespace, target) = (&config.client, &config.namespace, &kind.target);
    let (command, preview) = match &kind.action {
        KindAction::Start { .. } => (
            "start",
            kinds::dry_run_start(client, namespace, target, start_ask(kind, release)).await?,
        ),
        KindAction::Promote(size) => (
            "promote",
            kinds::dry_run_promote(client, namespace, target, *size).await?,
        ),
        KindAction::Abort => (
            "abort",
            kinds::dry_run_abort(client, namespace, target).await?,
        ),
        KindAction::Status(_) | KindAction::Analyze(_) | KindAction::Plan(_) => {
            unreachable!("--dry-run is a flag of start, promote and abort only")
        }
    };
    if !print_structured(config.output, &preview) {
        print!("{}", crate::output::kinds::preview_text(command, &preview));
    }
    Ok(exit_code::OK)
}

/// `status --watch`: the status now and after every change, one document each (text
/// separated by `---`, a JSON document a line, YAML documents each opened by `---`), a status
/// that did not change not printed again; until Ctrl-C.
async fn watch_status(config: &Config, target: &WorkloadRef) -> Result<i32, CanaryError> {
    use std::io::Write;
    let mut last: Option<String> = None;
    let format = config.output;
    let mut print = |status: &KindStatus| {
        let document = match format {
            OutputFormat::Json => {
                serde_json::to_string(status).expect("output always serializes") + "\n"
            }
            OutputFormat::Yaml => format!(
                "---\n{}",
                serde_saphyr::to_string(status).expect("output always serializes")
            ),
            OutputFormat::Table | OutputFormat::Wide => crate::output::kinds::status_text(status),
        };
        if last.as_ref() == Some(&document) {
            return;
        }
        if last.is_some() && matches!(format, OutputFormat::Table | OutputFormat::Wide) {
            println!("---");
        }
        print!("{document}");
        let _ = std::io::stdout().flush();
        last = Some(document);
    };
    kinds::watch_status(&config.client, &config.namespace, target, &mut print).await?;
    Ok(exit_code::OK)
}

/// `analyze`: the verdict, its exit code.
async fn run_analyze(
    config: &Config,
    kind: &KindConfig,
    analyze: &KindAnalyze,
) -> Result<i32, CanaryError> {
    let options = RunOptions {
        observe_for: analyze.observe,
        keep_waiting: analyze.wait,
        ..RunOptions::default()
    };
    let (client, namespace) = (&config.client, &config.namespace);
    let sides = kinds::analysis_target(client, namespace, &kind.target).await?;
    if human(config) {
        eprintln!(
            "analysing {}: canary {} vs stable {}",
            kind.target,
            sides.canary.selector(),
            sides.stable.selector()
        );
    }
    let verdict =
        canary_kube::analysis::run_analysis(client, &sides, &analyze.analysis, options).await?;
    kinds::publish_verdict(client, namespace, &kind.target, &verdict).await?;
    if !print_structured(config.output, &verdict) {
        print!("{}", verdict_text(&verdict));
    }
    Ok(exit_code::for_verdict(verdict.decision))
}

/// The steps of `start --auto` after `start` held the first.
async fn run_auto(
    config: &Config,
    kind: &KindConfig,
    drive: &mut KindDrive<'_>,
    started: kinds::KindStarted,
    auto: &KindAuto,
) -> Result<i32, CanaryError> {
    let steps = KindSteps {
        sizes: &started.sizes,
        allowed_nodes: started.allowed_nodes.as_ref(),
        spec: &auto.analysis,
        interval: auto.interval,
    };
    let show = human(config);
    let interval = auto.interval.as_secs();
    let mut news = |news: StepNews<'_>| match news {
        StepNews::Step { number, of, pods } => notice(&format!(
            "step {number}/{of}: {pods} canary pod(s); watching pod health for {interval}s, then analysing"
        )),
        StepNews::Verdict(verdict) if show => print!("{}", verdict_text(verdict)),
        StepNews::Verdict(_) => {}
    };
    let run = kinds::run_steps(drive, &kind.target, steps, &mut news).await?;
    let (outcome, code) = match run.ending {
        NextStep::PromoteFull => {
            notice("every step passed: promoted to every pod");
            (AutoResult::Promoted, exit_code::OK)
        }
        NextStep::RollBack => {
            notice("the canary failed its analysis: rolled back to the stable revision");
            (AutoResult::RolledBack, exit_code::ROLLED_BACK)
        }
        _ => {
            notice(&format!(
                "the analysis stayed inconclusive: the canary stays held and recorded; decide with \
                 `kubectl canary promote {0} --full` or `kubectl canary abort {0}`",
                kind.target
            ));
            (AutoResult::Inconclusive, exit_code::INCONCLUSIVE)
        }
    };
    let document = AutoOutcome {
        outcome,
        steps: run.steps,
        verdicts: run.verdicts,
    };
    if !print_structured(config.output, &document) {
        print!("{}", crate::output::kinds::status_text(&run.status));
    }
    Ok(code)
}

/// What `start` asks, from its resolved flags and `release`.
fn start_ask<'a>(kind: &'a KindConfig, release: &'a ReleaseInput) -> KindStart<'a> {
    let KindAction::Start {
        size, nodes, auto, ..
    } = &kind.action
    else {
        unreachable!("only a start has a start's flags")
    };
    KindStart {
        release,
        size: *size,
        nodes: nodes.as_deref(),
        steps: auto.as_ref().map(|a| a.steps.as_slice()).unwrap_or(&[]),
    }
}

fn human(config: &Config) -> bool {
    matches!(config.output, OutputFormat::Table | OutputFormat::Wide)
}
