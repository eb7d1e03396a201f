//! `kubectl canary plan`: what a canary size really gives (traffic share, extra pods, their
//! requests, whether the cluster has room), for a live Deployment or without a cluster, and
//! the `--explain` teaching view. All arithmetic is `canary_core::plan`, the cluster reads are
//! `canary_kube::plan_subject`, the text is `output::plan`; this module wires them.

use canary_core::plan::{
    ClusterCapacity, ExplainInput, Explanation, PlanError, PlanInput, explain, plan,
};
use canary_core::record::BRAKE_MIN_READY_SECONDS;
use canary_core::rollout_math::{IntOrPercent, RolloutMathError, resolve_canary};
use canary_kube::error::CanaryError;
use canary_kube::plan_subject::{
    DEFAULT_PROGRESS_DEADLINE_SECONDS, PlanSubject, read_plan_subject,
};

use crate::config::plan::PlanConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{ExplainReport, PlanReport, explanation_text, plan_text, print_structured};

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

/// Plans without a cluster (`--replicas`): needs no kubeconfig.
pub async fn run_offline(
    plan_config: &PlanConfig,
    output: OutputFormat,
) -> Result<i32, CanaryError> {
    // clap requires a Deployment or --replicas; without either there is nothing to plan.
    let replicas = plan_config.replicas.unwrap_or(0);
    let subject = PlanSubject {
        deployment: None,
        namespace: None,
        replicas,
        recreate: false,
        max_surge: plan_config.max_surge.unwrap_or(IntOrPercent::DEFAULT),
        max_unavailable: plan_config.max_unavailable.unwrap_or(IntOrPercent::DEFAULT),
        min_ready_seconds: 0,
        progress_deadline_seconds: DEFAULT_PROGRESS_DEADLINE_SECONDS,
        containers: Vec::new(),
        selector: None,
        notes: Vec::new(),
        pod_requests: plan_config.pod_requests,
        cluster: ClusterCapacity::Offline,
    };
    Ok(render(&subject, plan_config, output)?)
}

/// Plans for a live Deployment.
pub async fn run(config: &Config, plan_config: &PlanConfig) -> Result<i32, CanaryError> {
    let Some(deployment) = &plan_config.deployment else {
        return run_offline(plan_config, config.output).await;
    };
    // The capacity check lists nodes and pods cluster-wide: only the plan view needs it.
    let subject = read_plan_subject(
        &config.client,
        &config.namespace,
        deployment,
        !plan_config.explain,
    )
    .await?;
    Ok(render(&subject, plan_config, config.output)?)
}

fn render(
    subject: &PlanSubject,
    plan_config: &PlanConfig,
    output: OutputFormat,
) -> Result<i32, PlanRefusal> {
    let name = subject.deployment.as_deref();
    let namespace = subject.namespace.as_deref();
    if plan_config.explain {
        let mut explanation = explanation_of(subject, plan_config)?;
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
        target: plan_config.canary,
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

fn explanation_of(
    subject: &PlanSubject,
    plan_config: &PlanConfig,
) -> Result<Explanation, PlanRefusal> {
    let deployment = subject.deployment.clone();
    if subject.recreate {
        return Err(PlanRefusal::Recreate(deployment.unwrap_or_default()));
    }
    let canary = resolve_canary(plan_config.canary, subject.replicas, plan_config.mode)?;
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
