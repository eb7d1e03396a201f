//! `kubectl canary plan`: what a canary size really gives (traffic share, extra pods, their
//! requests, whether the cluster has room), for a live Deployment or without a cluster, and
//! the `--explain` teaching view. All arithmetic is `canary_core::plan`; this module reads
//! the cluster and renders.

use std::fmt::Write as _;

use canary_core::plan::{
    CanaryPlan, CapacityVerdict, ClusterCapacity, ExplainInput, Explanation, PauseLanding,
    PlanError, PlanInput, Resources, explain, format_cpu, format_memory, plan,
};
use canary_core::record::BRAKE_MIN_READY_SECONDS;
use canary_core::rollout_math::{CanaryMode, IntOrPercent, RolloutMathError, resolve_canary};
use canary_core::text::percent_text;
use canary_kube::error::CanaryError;
use canary_kube::plan_subject::{
    DEFAULT_PROGRESS_DEADLINE_SECONDS, PlanSubject, read_plan_subject,
};
use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;

use crate::cli::{OutputFormat, PlanArgs};
use crate::config::Config;
use crate::exit_code;
use crate::output::print_structured;

/// Why no plan can be made for this input; reported as a refusal (nothing is changed either
/// way, but the exit code tells scripts that the input, not the cluster, is at fault).
#[derive(Debug, thiserror::Error)]
enum PlanRefusal {
    /// The planner refused the numbers.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The canary size or the strategy does not fit the Deployment.
    #[error(transparent)]
    RolloutMath(#[from] RolloutMathError),
    /// `--explain` on a Recreate Deployment.
    #[error(
        "deploy/{0} uses strategy Recreate: its native rollout deletes every old pod before creating new ones, so no mixed state exists to pause in and there is no canary to explain"
    )]
    Recreate(String),
}

impl From<PlanRefusal> for CanaryError {
    fn from(refusal: PlanRefusal) -> Self {
        CanaryError::Refused(refusal.to_string())
    }
}

/// `plan` as JSON/YAML.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanReport<'a> {
    deployment: Option<&'a str>,
    namespace: Option<&'a str>,
    #[serde(flatten)]
    plan: &'a CanaryPlan,
}

/// `plan --explain` as JSON/YAML.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExplainReport<'a> {
    deployment: Option<&'a str>,
    namespace: Option<&'a str>,
    #[serde(flatten)]
    explanation: &'a Explanation,
}

/// Plans without a cluster (`--replicas`): needs no kubeconfig.
pub async fn run_offline(args: &PlanArgs, output: OutputFormat) -> Result<i32, CanaryError> {
    // clap requires a Deployment or --replicas; without either there is nothing to plan.
    let replicas = args.replicas.unwrap_or(0);
    let pod_requests = (args.cpu.is_some() || args.memory.is_some()).then(|| Resources {
        cpu_millis: args.cpu.unwrap_or(0),
        memory_bytes: args.memory.unwrap_or(0),
    });
    let subject = PlanSubject {
        deployment: None,
        namespace: None,
        replicas,
        recreate: false,
        max_surge: args.max_surge.unwrap_or(IntOrPercent::DEFAULT),
        max_unavailable: args.max_unavailable.unwrap_or(IntOrPercent::DEFAULT),
        min_ready_seconds: 0,
        progress_deadline_seconds: DEFAULT_PROGRESS_DEADLINE_SECONDS,
        containers: Vec::new(),
        selector: None,
        notes: Vec::new(),
        pod_requests,
        cluster: ClusterCapacity::Offline,
    };
    Ok(render(&subject, args, output)?)
}

/// Plans for a live Deployment.
pub async fn run(config: &Config, args: &PlanArgs) -> Result<i32, CanaryError> {
    let Some(target) = &args.target else {
        return run_offline(args, config.output).await;
    };
    // The capacity check lists nodes and pods cluster-wide: only the plan view needs it.
    let subject = read_plan_subject(
        &config.client,
        &config.namespace,
        &target.name,
        !args.explain,
    )
    .await?;
    Ok(render(&subject, args, config.output)?)
}

fn render(
    subject: &PlanSubject,
    args: &PlanArgs,
    output: OutputFormat,
) -> Result<i32, PlanRefusal> {
    let name = subject.deployment.as_deref();
    let namespace = subject.namespace.as_deref();
    if args.explain {
        let mut explanation = explanation_of(subject, args)?;
        explanation
            .summary
            .splice(0..0, subject.notes.iter().cloned());
        let report = ExplainReport {
            deployment: name,
            namespace,
            explanation: &explanation,
        };
        if !print_structured(output, &report) {
            print!("{}", explanation_text(subject, &explanation));
        }
        return Ok(exit_code::OK);
    }
    let mut canary_plan = plan(&PlanInput {
        replicas: subject.replicas,
        target: args.canary,
        pod_requests: subject.pod_requests,
        cluster: subject.cluster.clone(),
    })?;
    canary_plan
        .advice
        .splice(0..0, subject.notes.iter().cloned());
    if subject.recreate {
        canary_plan.advice.insert(
            0,
            format!(
                "deploy/{} uses strategy Recreate, which never runs old and new pods side by side: set strategy RollingUpdate before `kubectl canary start`.",
                name.unwrap_or_default()
            ),
        );
    }
    let report = PlanReport {
        deployment: name,
        namespace,
        plan: &canary_plan,
    };
    if !print_structured(output, &report) {
        print!(
            "{}",
            plan_text(subject, &canary_plan, output == OutputFormat::Wide)
        );
    }
    Ok(exit_code::OK)
}

fn explanation_of(subject: &PlanSubject, args: &PlanArgs) -> Result<Explanation, PlanRefusal> {
    let deployment = subject.deployment.clone();
    if subject.recreate {
        return Err(PlanRefusal::Recreate(deployment.unwrap_or_default()));
    }
    let mode = CanaryMode::from(args.mode);
    let canary = resolve_canary(args.canary, subject.replicas, mode)?;
    Ok(explain(&ExplainInput {
        deployment,
        replicas: subject.replicas,
        max_surge: subject.max_surge,
        max_unavailable: subject.max_unavailable,
        min_ready_seconds: subject.min_ready_seconds,
        progress_deadline_seconds: subject.progress_deadline_seconds,
        containers: subject.containers.clone(),
        selector: subject.selector.clone(),
        canary,
        brake_seconds: BRAKE_MIN_READY_SECONDS,
    })?)
}

fn subject_line(subject: &PlanSubject) -> String {
    match (&subject.deployment, &subject.namespace) {
        (Some(name), Some(namespace)) => format!(
            "deploy/{name} in namespace {namespace}: {} replicas",
            subject.replicas
        ),
        _ => format!(
            "a Deployment of {} replicas (offline plan)",
            subject.replicas
        ),
    }
}

fn capacity_cell(verdict: &CapacityVerdict) -> String {
    match verdict {
        CapacityVerdict::NoExtraPods => "no extra pods".to_owned(),
        CapacityVerdict::Fits { .. } => "fits".to_owned(),
        CapacityVerdict::DoesNotFit {
            extra_pods,
            fitting,
        } => format!("{fitting} of {extra_pods} fit: autoscaler must add nodes"),
        CapacityVerdict::NotChecked { .. } => "not checked".to_owned(),
    }
}

fn requests_cell(requests: Option<Resources>, extra_pods: i32) -> String {
    match requests {
        _ if extra_pods == 0 => "-".to_owned(),
        None => "unknown".to_owned(),
        Some(r) if r.is_zero() => "none requested".to_owned(),
        Some(r) => format!(
            "{} CPU, {}",
            format_cpu(r.cpu_millis),
            format_memory(r.memory_bytes)
        ),
    }
}

/// The human plan view.
fn plan_text(subject: &PlanSubject, canary_plan: &CanaryPlan, wide: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}; canary {}",
        subject_line(subject),
        match canary_plan.target {
            canary_core::rollout_math::CanarySize::Pods(k) => format!("of {k} pod(s)"),
            canary_core::rollout_math::CanarySize::Percent(p) =>
                format!("of {} of traffic", percent_text(p)),
        }
    );
    if let Some(requests) = canary_plan.pod_requests {
        let _ = writeln!(out, "one pod requests {requests}");
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    let mut header = vec![
        "MODE",
        "CANARY",
        "STABLE",
        "PODS",
        "EXTRA",
        "TRAFFIC",
        "EXTRA REQUESTS",
        "CAPACITY",
    ];
    if wide {
        header.push("OFF TARGET");
    }
    table.set_header(header);
    for mode in &canary_plan.modes {
        if let Some(refused) = &mode.refused {
            table.add_row(vec![mode.mode.to_string(), format!("refused: {refused}")]);
            continue;
        }
        for option in &mode.options {
            let mut row = vec![
                format!("{}{}", mode.mode, if option.chosen { " *" } else { "" }),
                option.canary_pods.to_string(),
                option.stable_pods.to_string(),
                option.total_pods.to_string(),
                option.extra_pods.to_string(),
                percent_text(option.traffic_share_percent),
                requests_cell(option.extra_requests, option.extra_pods),
                capacity_cell(&option.capacity),
            ];
            if wide {
                row.push(
                    option
                        .off_target_points
                        .map_or_else(|| "-".to_owned(), |d| format!("{d:.2} points")),
                );
            }
            table.add_row(row);
        }
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "* the size `kubectl canary start --canary {} --mode MODE` would use; traffic = the canary's share of Ready pods behind a Service",
        canary_plan.target
    );
    for line in &canary_plan.advice {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn landing_cell(landing: PauseLanding) -> &'static str {
    match landing {
        PauseLanding::Rests => "lands here while new pods start",
        PauseLanding::Race => "only by winning a race",
        PauseLanding::Complete => "(rollout complete)",
    }
}

/// The human teaching view.
fn explanation_text(subject: &PlanSubject, explanation: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}, maxSurge {} (= {} pods), maxUnavailable {} (= {} pods)",
        subject_line(subject),
        explanation.max_surge,
        explanation.fenceposts.max_surge,
        explanation.max_unavailable,
        explanation.fenceposts.max_unavailable
    );
    let _ = writeln!(
        out,
        "\nThe native rolling update, as new pods become available one at a time:"
    );
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(vec![
        "STEP",
        "OLD",
        "NEW",
        "NEW AVAILABLE",
        "PODS",
        "NEW SHARE",
        "HAND-TYPED PAUSE",
        "",
    ]);
    for (index, step) in explanation.native.iter().enumerate() {
        table.add_row(vec![
            index.to_string(),
            step.old_pods.to_string(),
            step.new_pods.to_string(),
            step.new_available.to_string(),
            step.total_pods.to_string(),
            percent_text(step.new_share_percent),
            landing_cell(step.pause).to_owned(),
            if step.is_wanted_canary {
                "<- the canary wanted".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    let _ = writeln!(out, "{table}");
    for line in &explanation.summary {
        let _ = writeln!(out, "{line}");
    }
    let canary = explanation.canary;
    let _ = writeln!(
        out,
        "\nWhat kubectl-canary does instead ({} mode, {} canary pod(s) beside {} stable, {} of traffic):",
        canary.mode,
        canary.pods,
        canary.stable_pods,
        percent_text(canary.traffic_share() * 100.0)
    );
    for (index, step) in explanation.steps.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", index + 1, step.title);
        let _ = writeln!(out, "   {}", step.why);
        for command in &step.kubectl {
            let _ = writeln!(out, "   $ {command}");
        }
        if !step.states.is_empty() {
            let states: Vec<String> = step
                .states
                .iter()
                .map(|(old, new)| format!("({old}, {new})"))
                .collect();
            let _ = writeln!(
                out,
                "   controller writes (old, new): {}",
                states.join(" -> ")
            );
        }
    }
    out
}
