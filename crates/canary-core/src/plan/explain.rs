//! The teaching view (`plan --explain`): where a hand-typed pause can land in the native
//! rollout, against the steps kubectl-canary takes.

use serde::{Deserialize, Serialize};

use super::*;
use crate::rollout_math::{
    Fenceposts, IntOrPercent, ResolvedCanary, brake_sequence, brake_strategy,
    native_rollout_sequence, resolve_fenceposts,
};
use crate::text::percent_text;

/// Where a hand-typed `kubectl rollout pause` can stop a native rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseLanding {
    /// The controller rests here while new pods start: a pause typed now lands here.
    Rests,
    /// The state lasts only between two API writes of the controller: a pause lands here
    /// only by winning a race of milliseconds.
    Race,
    /// The rollout is complete; there is nothing left to pause.
    Complete,
}

/// One state of the native rolling update, for the teaching view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeStep {
    /// Old ReplicaSets' pods.
    pub old_pods: i32,
    /// New ReplicaSet's pods.
    pub new_pods: i32,
    /// New pods available when this state is reached.
    pub new_available: i32,
    /// All pods.
    pub total_pods: i32,
    /// Share of the new version once its pods are Ready, in percent.
    pub new_share_percent: f64,
    /// Whether a hand-typed pause can land here.
    pub pause: PauseLanding,
    /// Whether this state holds exactly the wanted canary (new pods = k, stable pods as
    /// the mode keeps them).
    pub is_wanted_canary: bool,
}

/// One step kubectl-canary takes, with the commands a person would type for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStep {
    /// What the step does.
    pub title: String,
    /// Why it is done this way.
    pub why: String,
    /// The kubectl commands that do the same by hand.
    pub kubectl: Vec<String>,
    /// (old, new) ReplicaSet sizes the controller writes during this step.
    pub states: Vec<(i32, i32)>,
}

/// The Deployment as the teaching view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainInput {
    /// Deployment name, when planning against a cluster.
    pub deployment: Option<String>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The Deployment's own maxSurge.
    pub max_surge: IntOrPercent,
    /// The Deployment's own maxUnavailable.
    pub max_unavailable: IntOrPercent,
    /// The Deployment's own minReadySeconds.
    pub min_ready_seconds: i32,
    /// The Deployment's own progressDeadlineSeconds.
    pub progress_deadline_seconds: i32,
    /// Container names of the pod template (the image is set per container).
    pub containers: Vec<String>,
    /// The Deployment's label selector (`app=web`), when known.
    pub selector: Option<String>,
    /// The canary wanted.
    pub canary: ResolvedCanary,
    /// The brake's minReadySeconds.
    pub brake_seconds: i32,
}

/// The teaching view: the native rollout against kubectl-canary's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `spec.replicas`.
    pub replicas: i32,
    /// The Deployment's own maxSurge.
    pub max_surge: IntOrPercent,
    /// The Deployment's own maxUnavailable.
    pub max_unavailable: IntOrPercent,
    /// What they resolve to for `replicas`.
    pub fenceposts: Fenceposts,
    /// The native rollout, state by state, when pods become available one at a time.
    pub native: Vec<NativeStep>,
    /// The canary wanted.
    pub canary: ResolvedCanary,
    /// Whether the native rollout ever rests at the wanted canary.
    pub native_rests_at_canary: bool,
    /// What kubectl-canary does instead.
    pub steps: Vec<ToolStep>,
    /// Conclusions in plain words.
    pub summary: Vec<String>,
}

/// Builds the teaching view for `input`.
pub fn explain(input: &ExplainInput) -> Result<Explanation, PlanError> {
    let replicas = input.replicas;
    let fenceposts = resolve_fenceposts(input.max_surge, input.max_unavailable, replicas)?;
    let canary = input.canary;
    let wanted = (canary.stable_pods, canary.pods);
    let sequence = native_rollout_sequence(replicas, input.max_surge, input.max_unavailable)?;
    let last = sequence.len().saturating_sub(1);
    let native: Vec<NativeStep> = sequence
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let total = state.old_rs + state.new_rs;
            NativeStep {
                old_pods: state.old_rs,
                new_pods: state.new_rs,
                new_available: state.new_available,
                total_pods: total,
                new_share_percent: if total == 0 {
                    0.0
                } else {
                    f64::from(state.new_rs) * 100.0 / f64::from(total)
                },
                pause: if index == last {
                    PauseLanding::Complete
                } else if state.resting {
                    PauseLanding::Rests
                } else {
                    PauseLanding::Race
                },
                is_wanted_canary: state.sizes() == wanted,
            }
        })
        .collect();
    let native_rests_at_canary = native
        .iter()
        .any(|s| s.is_wanted_canary && s.pause == PauseLanding::Rests);
    let steps = tool_steps(input);
    let summary = explain_summary(input, fenceposts, &native, native_rests_at_canary);
    Ok(Explanation {
        replicas,
        max_surge: input.max_surge,
        max_unavailable: input.max_unavailable,
        fenceposts,
        native,
        canary,
        native_rests_at_canary,
        steps,
        summary,
    })
}

pub(super) fn explain_summary(
    input: &ExplainInput,
    fenceposts: Fenceposts,
    native: &[NativeStep],
    rests_at_canary: bool,
) -> Vec<String> {
    let canary = input.canary;
    let mut summary = vec![format!(
        "maxSurge {} and maxUnavailable {} of {} replicas resolve to {} surge pod(s) (rounded up) and {} unavailable (rounded down).",
        input.max_surge,
        input.max_unavailable,
        input.replicas,
        fenceposts.max_surge,
        fenceposts.max_unavailable
    )];
    let resting: Vec<String> = native
        .iter()
        .filter(|s| s.pause == PauseLanding::Rests)
        .map(|s| format!("({}, {})", s.old_pods, s.new_pods))
        .collect();
    summary.push(format!(
        "A hand-typed `kubectl rollout pause` lands, while new pods start, in one of the (old, new) states {}; any other state only by winning a race against the controller.",
        resting.join(", ")
    ));
    let wanted = format!(
        "{} stable + {} canary ({} mode, {} of traffic)",
        canary.stable_pods,
        canary.pods,
        canary.mode,
        percent_text(canary.traffic_share() * 100.0)
    );
    if rests_at_canary {
        summary.push(format!(
            "The native rollout does rest at {wanted}, but pausing there is still a race with pods becoming Ready: type the pause too late and it has moved on."
        ));
    } else {
        summary.push(format!(
            "The native rollout never rests at {wanted}: no hand-typed pause can hold that canary."
        ));
    }
    summary.push(format!(
        "kubectl-canary sets maxSurge={} maxUnavailable={} and minReadySeconds={} in the same update as the new image: canary pods never become Available, so the controller cannot go past {} canary pod(s), and the pause that follows is not a race.",
        brake_strategy(canary.mode, canary.pods).max_surge,
        brake_strategy(canary.mode, canary.pods).max_unavailable,
        input.brake_seconds,
        canary.pods
    ));
    summary
}

pub(super) fn tool_steps(input: &ExplainInput) -> Vec<ToolStep> {
    let canary = input.canary;
    let name = input
        .deployment
        .clone()
        .unwrap_or_else(|| "DEPLOYMENT".to_owned());
    let brake = brake_strategy(canary.mode, canary.pods);
    let containers = if input.containers.is_empty() {
        vec!["CONTAINER".to_owned()]
    } else {
        input.containers.clone()
    };
    let container_patch = containers
        .iter()
        .map(|c| format!(r#"{{"name":"{c}","image":"NEW_IMAGE"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let selector = input
        .selector
        .clone()
        .unwrap_or_else(|| "SELECTOR".to_owned());
    let states = brake_sequence(canary.replicas, canary.mode, canary.pods);
    let original_strategy = format!(
        r#""strategy":{{"rollingUpdate":{{"maxSurge":{},"maxUnavailable":{}}}}}"#,
        json_int_or_percent(input.max_surge),
        json_int_or_percent(input.max_unavailable)
    );
    vec![
        ToolStep {
            title: "Record everything that will change".to_owned(),
            why: format!(
                "The template, strategy, minReadySeconds, progressDeadlineSeconds and paused are kept in the ConfigMap {name}.kubectl-canary, owned by the Deployment; creating it is the lock, and every later step (or a rerun after a crash) works from it."
            ),
            kubectl: vec![
                format!("kubectl get deployment {name} -o yaml > {name}.before.yaml"),
                format!(
                    "kubectl create configmap {name}.kubectl-canary --from-file=deployment={name}.before.yaml"
                ),
            ],
            states: Vec::new(),
        },
        ToolStep {
            title: format!(
                "Set the new image and the brake in one update (maxSurge={}, maxUnavailable={})",
                brake.max_surge, brake.max_unavailable
            ),
            why: format!(
                "One write with a resourceVersion precondition (NEW_IMAGE: the canary's image): the controller creates the canary ReplicaSet and stops at {} pod(s), because with minReadySeconds={} no canary pod becomes Available. Pausing first and then setting the image would create no ReplicaSet at all.",
                canary.pods, input.brake_seconds
            ),
            kubectl: vec![
                format!(
                    "kubectl get deployment {name} -o jsonpath='{{.metadata.resourceVersion}}'"
                ),
                format!(
                    r#"kubectl patch deployment {name} --type=strategic -p '{{"metadata":{{"resourceVersion":"RESOURCE_VERSION"}},"spec":{{"minReadySeconds":{},"progressDeadlineSeconds":{},"strategy":{{"rollingUpdate":{{"maxSurge":{},"maxUnavailable":{}}}}},"template":{{"spec":{{"containers":[{container_patch}]}}}}}}}}'"#,
                    input.brake_seconds,
                    i64::from(input.brake_seconds) + 1,
                    brake.max_surge,
                    brake.max_unavailable
                ),
            ],
            states,
        },
        ToolStep {
            title: format!("Wait until the canary ReplicaSet has {} replicas and the controller saw the update", canary.pods),
            why: "The pause must come after the controller acted on the update, or it freezes the Deployment before the canary exists.".to_owned(),
            kubectl: vec![
                format!("kubectl get replicasets -l {selector} -w"),
                format!(
                    "kubectl get deployment {name} -o jsonpath='{{.metadata.generation}} {{.status.observedGeneration}}'"
                ),
            ],
            states: Vec::new(),
        },
        ToolStep {
            title: "Pause".to_owned(),
            why: format!(
                "With the brake on the rollout cannot move past {} canary pod(s), so the pause is not a race; the brake stays on while the canary runs, so even a resume by hand cannot roll further.",
                canary.pods
            ),
            kubectl: vec![format!("kubectl rollout pause deployment/{name}")],
            states: Vec::new(),
        },
        ToolStep {
            title: "Promote: restore the strategy and let the rollout finish".to_owned(),
            why: "One update: resume, the original maxSurge/maxUnavailable, minReadySeconds and progressDeadlineSeconds.".to_owned(),
            kubectl: vec![format!(
                r#"kubectl patch deployment {name} --type=merge -p '{{"spec":{{"paused":false,"minReadySeconds":{},"progressDeadlineSeconds":{},{original_strategy}}}}}'"#,
                input.min_ready_seconds, input.progress_deadline_seconds
            )],
            states: Vec::new(),
        },
        ToolStep {
            title: "Or abort: put the recorded template back in one update".to_owned(),
            why: format!("`kubectl rollout undo` refuses a paused Deployment, and resume-then-undo lets the rollout roll forward in between; restoring the recorded template, strategy and settings in one update works while paused, and the stable ReplicaSet becomes the new one again. TEMPLATE is .spec.template of {name}.before.yaml, as JSON."),
            kubectl: vec![format!(
                r#"kubectl patch deployment {name} --type=merge -p '{{"metadata":{{"resourceVersion":"RESOURCE_VERSION"}},"spec":{{"paused":false,"template":TEMPLATE,"minReadySeconds":{},"progressDeadlineSeconds":{},{original_strategy}}}}}'"#,
                input.min_ready_seconds, input.progress_deadline_seconds
            )],
            states: Vec::new(),
        },
    ]
}

/// An IntOrPercent as JSON inside a patch.
pub(super) fn json_int_or_percent(value: IntOrPercent) -> String {
    match value {
        IntOrPercent::Int(v) => v.to_string(),
        IntOrPercent::Percent(_) => format!("\"{value}\""),
    }
}
