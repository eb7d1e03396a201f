//! What `status` shows: both sides of the canary, the real traffic share, the phase and
//! the next step, built from one read of the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde::Serialize;

use canary_core::foreign::{ForeignChange, KnownRecord, SeenRecord, classify};
use canary_core::machine::{Decision, TemplateState, Waiting, decide, template_state};
use canary_core::problems::Side;
use canary_core::record::{Phase, images_of};
use canary_core::release::FieldChange;
use canary_core::rollout_math::CanaryMode;
use canary_core::text::waiting_text;

use crate::evidence::{Judging, NextBasis};
use crate::observe::{DeploymentView, pod_is_ready, revision_of, template_hash_of, template_json};
use crate::store::StoredRecord;
use crate::trust::CanaryState;
use canary_core::seal::{SealedGoal, describe_goal};

/// One side (stable or canary) as it is now.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SideStatus {
    /// ReplicaSet name.
    pub replica_set: String,
    /// Its revision.
    pub revision: i64,
    /// Its `pod-template-hash`.
    pub pod_template_hash: String,
    /// Images, by container.
    pub images: BTreeMap<String, String>,
    /// `spec.replicas` of the ReplicaSet.
    pub desired: i32,
    /// Pods that exist (terminating ones included).
    pub pods: i32,
    /// Ready pods: the ones a Service sends traffic to.
    pub ready: i32,
    /// Available pods.
    pub available: i32,
    /// Container restarts summed over the pods.
    pub restarts: i32,
    /// Pod problems, one line each (CrashLoopBackOff, Unschedulable: reason, ...).
    pub problems: Vec<String>,
}

/// The phase of a canary as `status` reports it: a stable value for scripts (the human
/// sentence is [`StatusReport::phase_description`]).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StatusPhase {
    /// No canary.
    None,
    /// `start` is bringing the canary to its size.
    Starting,
    /// The canary is held, paused.
    Holding,
    /// `promote --canary` is growing the canary.
    Promoting,
    /// `promote --full` is rolling the new version out to every pod.
    PromotingFull,
    /// `abort` is rolling back.
    Aborting,
    /// Held by kubectl-canary, but its record was changed outside kubectl-canary.
    RecordChanged,
    /// A record no update of the Deployment confirms.
    Unconfirmed,
    /// Held by kubectl-canary, but its record is lost.
    RecordLost,
}

impl StatusPhase {
    /// The value of a recorded phase.
    pub fn of(phase: Phase) -> Self {
        match phase {
            Phase::Starting { .. } => StatusPhase::Starting,
            Phase::Holding { .. } => StatusPhase::Holding,
            Phase::Promoting { .. } => StatusPhase::Promoting,
            Phase::PromotingFull => StatusPhase::PromotingFull,
            Phase::Aborting => StatusPhase::Aborting,
        }
    }
}

/// A notice that could not be sent, as its `NotificationFailed` Event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationFailure {
    /// When it last happened (RFC 3339).
    pub at: String,
    /// Which endpoint (by name, never its URL), which notice, and why.
    pub message: String,
    /// How often it happened.
    pub count: i32,
}

/// The whole status.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub deployment: String,
    /// What is wrong, canary first (empty when nothing is): each with its stable code, the
    /// pod and the evidence. Judged by `canary_core::problems`.
    pub problems: Vec<canary_core::problems::Problem>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.paused`.
    pub paused: bool,
    /// The phase (`none` without a canary).
    pub phase: StatusPhase,
    /// The phase in words, e.g. "holding a canary of 1 pod(s)".
    pub phase_description: String,
    /// The canary mode, if a canary runs.
    pub mode: Option<CanaryMode>,
    /// Who started it, and when.
    pub started_by: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// The stable side.
    pub stable: Option<SideStatus>,
    /// The canary side.
    pub canary: Option<SideStatus>,
    /// Share of Ready pods on the canary side: the share of requests a Service sends it.
    pub canary_traffic_share: Option<f64>,
    /// Extra pods over `spec.replicas`, the surge cost.
    pub extra_pods: i32,
    /// What is pending, in words.
    pub pending: Option<String>,
    /// What the controller is being waited for, if anything (`pending` says it in words).
    pub waiting: Option<Waiting>,
    /// A change someone else made during the canary, if any.
    pub foreign: Option<ForeignChange>,
    /// What to do next, as commands, the advised one first.
    pub next_steps: Vec<String>,
    /// Why no promotion is among the next steps: the canary is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_withheld: Option<String>,
    /// The record's history.
    pub history: Vec<String>,
    /// Why the record cannot be used as it is (changed outside kubectl-canary, not
    /// confirmed by the Deployment, lost), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// The canary size asked for and the size running, while a canary is held or on its
    /// way to a size (not for promote --full or abort).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_size: Option<CanarySizeStatus>,
    /// The approval gate the canary waits at, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalStatus>,
    /// What the canary changes in the pod template, in one line (images, field paths).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// What the canary changes in the pod template, field by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub template_changes: Vec<FieldChange>,
    /// Notices that could not be sent (docs/notifications.md), newest first, from the
    /// `NotificationFailed` Events the API server still keeps (since the canary started,
    /// when one runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notification_failures: Vec<NotificationFailure>,
    /// What the problems and next steps were judged from (not printed).
    #[serde(skip)]
    pub judging: Judging,
}

/// An approval gate the canary waits at: what, since when, and how to approve it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    /// The step held back, in words ("promoting to 100%", "growing to 3 pod(s)").
    pub before: String,
    /// When the wait began (RFC 3339).
    pub since: String,
    /// The timeout and its policy, in words, if one is set.
    pub timeout: Option<String>,
    /// Where the wait stands: `waiting`, `approved` (the Deployment carries the approval;
    /// the run waiting takes the step), `overdue` (past the timeout, still waiting) or
    /// `timedOut` (past the timeout: the canary is rolled back).
    pub state: &'static str,
    /// The command that approves it.
    pub approve: String,
    /// The same as an annotation, for those without kubectl-canary.
    pub annotate: String,
}

impl ApprovalStatus {
    /// The status of `gate` on `deployment` (named `name`).
    pub fn of(
        name: &str,
        gate: &canary_core::gate::AwaitedGate,
        deployment: &k8s_openapi::api::apps::v1::Deployment,
    ) -> Self {
        use canary_core::gate::GateState;
        Self {
            before: gate.before.to_string(),
            since: gate.since.clone(),
            timeout: gate.timeout.map(|t| t.to_string()),
            state: match crate::gate::state(gate, deployment) {
                GateState::Approved => "approved",
                GateState::Waiting { .. } => "waiting",
                GateState::Overdue => "overdue",
                GateState::TimedOut => "timedOut",
            },
            approve: gate.approve_command(name),
            annotate: gate.annotate_command(name),
        }
    }

    /// One line for people: what waits, since when, how to approve.
    pub fn line(&self) -> String {
        let timeout = self
            .timeout
            .as_ref()
            .map(|t| format!(", timeout {t}"))
            .unwrap_or_default();
        match self.state {
            "approved" => format!(
                "approval: {} approved; the run that waited takes the step",
                self.before
            ),
            state => format!(
                "approval: {} waits for an approval since {}{timeout}{}: `{}` (or `{}`)",
                self.before,
                self.since,
                match state {
                    "overdue" => ", overdue",
                    "timedOut" => ", timed out",
                    _ => "",
                },
                self.approve,
                self.annotate
            ),
        }
    }
}

/// The canary size asked for against the size running. They differ when `spec.replicas`
/// changed while no command watched (an HPA, `kubectl scale`, Git): the paused Deployment's
/// controller spreads the change over both sides in proportion (docs/holding.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanarySizeStatus {
    /// The size as asked (`--canary 1`, `--canary 10%`).
    pub asked: String,
    /// The pods that size is at `spec.replicas` now (a share resolved again, a count the
    /// count); `None` when it cannot be kept at this count (a replace canary as large as
    /// the Deployment).
    pub asked_pods: Option<i32>,
    /// The canary ReplicaSet's `spec.replicas` now.
    pub running: i32,
    /// The command that holds the size asked again, when the two differ and it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

impl CanarySizeStatus {
    /// The size of `record`'s canary asked for and running in `observation`, if it has one.
    pub fn of(
        name: &str,
        record: &canary_core::record::CanaryRecord,
        observation: &canary_core::machine::Observation,
    ) -> Option<Self> {
        let recorded = match record.phase {
            Phase::Starting { pods }
            | Phase::Holding { pods }
            | Phase::Promoting { to: pods, .. } => pods,
            Phase::PromotingFull | Phase::Aborting => return None,
        };
        let asked = record
            .requested_size
            .unwrap_or(canary_core::rollout_math::CanarySize::Pods(recorded));
        let asked_pods = canary_core::foreign::follow_size(record, observation.replicas);
        let running = observation.canary_desired();
        let restore = asked_pods
            .filter(|pods| *pods != running && running > 0)
            .map(|_| format!("kubectl canary promote deploy/{name} --canary {asked}"));
        Some(Self {
            asked: asked.to_string(),
            asked_pods,
            running,
            restore,
        })
    }

    /// One line for people: `canary size: asked 1 pod(s) (--canary 1), running 2 pod(s) ...`.
    pub fn line(&self) -> String {
        let asked = match self.asked_pods {
            Some(pods) => format!("asked {pods} pod(s) (--canary {})", self.asked),
            None => format!(
                "asked --canary {} (not possible at this replica count)",
                self.asked
            ),
        };
        match &self.restore {
            Some(restore) => format!(
                "canary size: {asked}, running {} pod(s): spec.replicas changed while no command watched and \
                 the controller spread it over both sides; `{restore}` puts the size asked back",
                self.running
            ),
            None => format!("canary size: {asked}, running {} pod(s)", self.running),
        }
    }
}

/// A pod's problem as soon as its state shows it (no clock: the rules that need time are
/// left out), with the scheduler's reason for a pod that cannot be placed.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    canary_core::problems::pod_problem(&crate::evidence::pod_evidence(pod, Side::Canary))
        .map(|p| p.message)
}

fn side(view: &DeploymentView, rs: &ReplicaSet) -> SideStatus {
    let hash = template_hash_of(rs);
    let pods: Vec<&Pod> = view.pods_with_hash(&hash);
    let status = rs.status.clone().unwrap_or_default();
    SideStatus {
        replica_set: rs.name_any(),
        revision: revision_of(rs),
        pod_template_hash: hash,
        images: rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .map(|t| images_of(&template_json(t)))
            .unwrap_or_default(),
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        pods: pods.len() as i32,
        ready: pods.iter().filter(|p| pod_is_ready(p)).count() as i32,
        available: status.available_replicas.unwrap_or(0),
        restarts: pods
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .sum(),
        // Filled in by the judgement of the whole report (`StatusReport::judge`).
        problems: vec![],
    }
}

impl StatusReport {
    /// Builds the status from one read of the cluster and the record, if any.
    pub fn build(namespace: &str, view: &DeploymentView, stored: Option<&StoredRecord>) -> Self {
        let name = view.name();
        let replicas = view.replicas();
        let paused = view
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false);
        let Some(stored) = stored else {
            let current_rs = view.replica_set_with_template(&view.template());
            let current = current_rs.map(|rs| side(view, rs));
            let mut report = Self {
                namespace: namespace.to_string(),
                deployment: name.clone(),
                problems: vec![],
                replicas,
                paused,
                phase: StatusPhase::None,
                phase_description: "none".into(),
                mode: None,
                started_by: None,
                started_at: None,
                extra_pods: 0,
                stable: current,
                canary: None,
                canary_traffic_share: None,
                pending: None,
                waiting: None,
                foreign: None,
                next_steps: vec![format!(
                    "kubectl canary start deploy/{name} CONTAINER=IMAGE --canary 1"
                )],
                history: vec![],
                promote_withheld: None,
                integrity: None,
                release: None,
                canary_size: None,
                approval: None,
                template_changes: vec![],
                notification_failures: vec![],
                judging: Judging {
                    situation: crate::evidence::situation(view, current_rs, None),
                    next: None,
                    started_at: None,
                },
            };
            report.judge(None);
            return report;
        };
        let record = &stored.record;
        let stable_rs = view.replica_set_with_template(&record.original_template);
        let canary_rs = view.replica_set_with_template(&record.target_template());
        let stable = stable_rs.map(|rs| side(view, rs));
        let canary = canary_rs.map(|rs| side(view, rs));
        let ready_stable = stable.as_ref().map_or(0, |s| s.ready);
        let ready_canary = canary.as_ref().map_or(0, |s| s.ready);
        let share = (ready_stable + ready_canary > 0)
            .then(|| f64::from(ready_canary) / f64::from(ready_stable + ready_canary));
        let observation = view.observation(record);
        let decision = decide(record, record.phase.goal(), &observation);
        // Read-only: the record was read with the view, so only the Deployment is compared.
        let foreign = classify(
            KnownRecord {
                record,
                resource_version: &stored.resource_version,
                canary_seen: false,
            },
            SeenRecord::Unchecked,
            view.deployment.uid().as_deref(),
            Some(&observation),
        );
        let pending = match (&foreign, &decision) {
            (Some(change), _) => Some(change.what_happened(&name)),
            (None, decision) => match decision {
                Decision::Reached => None,
                Decision::Apply(change) => Some(format!("next update: {}", change.summary)),
                Decision::Resize(resize) => Some(format!("next: {}", resize.summary)),
                Decision::Wait(waiting) => Some(waiting_text(waiting)),
                Decision::Stuck(stuck) => Some(stuck.explain(&name)),
            },
        };
        let total_pods =
            stable.as_ref().map_or(0, |s| s.desired) + canary.as_ref().map_or(0, |s| s.desired);
        let mut situation = crate::evidence::situation(view, stable_rs, canary_rs);
        // While braked, the live deadline is the brake's; the Deployment's own is recorded.
        situation.ready_deadline_secs = record
            .original_settings
            .progress_deadline_seconds
            .map_or(600, i64::from);
        situation.foreign = foreign.as_ref().map(|change| change.what_happened(&name));
        situation.held = match (record.phase, &decision) {
            (Phase::Holding { pods }, Decision::Reached) => {
                Some((pods, canary.as_ref().map_or(0, |c| c.desired)))
            }
            _ => None,
        };
        let next_basis = foreign.is_none().then(|| NextBasis {
            phase: record.phase,
            pending: pending.is_some(),
            nothing_changed_yet: template_state(record, &observation.template)
                == TemplateState::Original,
            gate: record.gate.as_ref().map(|gate| gate.before),
        });
        let mut report = Self {
            namespace: namespace.to_string(),
            deployment: name.clone(),
            problems: vec![],
            replicas,
            paused,
            phase: StatusPhase::of(record.phase),
            phase_description: record.phase.describe(),
            mode: Some(record.mode),
            started_by: Some(format!(
                "{} on {} (pid {}, kubectl-canary {})",
                record.started_by.user,
                record.started_by.host,
                record.started_by.pid,
                record.started_by.tool_version
            )),
            started_at: Some(record.started_at.clone()),
            extra_pods: (total_pods - replicas).max(0),
            stable,
            canary,
            canary_traffic_share: share,
            pending: pending.clone(),
            waiting: match (&foreign, &decision) {
                (None, Decision::Wait(waiting)) => Some(waiting.clone()),
                _ => None,
            },
            // Judged below with the problems, unless someone else changed the Deployment.
            next_steps: match &foreign {
                Some(change) => foreign_next_steps(change, &name, record),
                None => vec![],
            },
            promote_withheld: None,
            foreign,
            history: record
                .history
                .iter()
                .map(|h| format!("{} {}", h.at, h.event))
                .collect(),
            integrity: None,
            canary_size: CanarySizeStatus::of(&name, record, &observation),
            approval: record
                .gate
                .as_ref()
                .map(|gate| ApprovalStatus::of(&name, gate, &view.deployment)),
            release: Some(record.change_summary()),
            template_changes: record.template_changes(),
            notification_failures: vec![],
            judging: Judging {
                situation,
                next: next_basis,
                started_at: Some(record.started_at.clone()),
            },
        };
        report.judge(None);
        report
    }

    /// The status of a classified canary: a verified record as [`StatusReport::build`]
    /// shows it; a record that cannot be trusted as read, with why and no step taken from
    /// it; a Deployment held without its record with the sides the seal names.
    pub fn for_state(
        namespace: &str,
        view: &DeploymentView,
        state: &CanaryState,
        record_name: &str,
    ) -> Self {
        let name = view.name();
        // Only a verified record names the sides; otherwise the seal does (never the record).
        let mut report = match state {
            CanaryState::Verified { stored, .. } => Self::build(namespace, view, Some(stored)),
            _ => Self::build(namespace, view, None),
        };
        report.integrity = state.warning(&name, record_name);
        let abort = format!("kubectl canary abort deploy/{name}");
        match state {
            CanaryState::Verified { stored, seal }
                if SealedGoal::from(stored.record.phase.goal()) != seal.goal =>
            {
                // A command records its intent before writing the Deployment; anyone who may
                // write ConfigMaps can record one too. Say it is not applied yet.
                report.integrity = Some(format!(
                    "the recorded intent ({}) is not applied to the Deployment yet (kubectl-canary's last \
                     update of it was towards {}); it is carried out only by a command that asks for it",
                    stored.record.phase.describe(),
                    describe_goal(seal.goal)
                ));
            }
            CanaryState::Tampered { seal, .. } => {
                report.phase = StatusPhase::RecordChanged;
                report.phase_description =
                    "held by kubectl-canary; its record was changed outside kubectl-canary".into();
                report.seal_sides(view, seal);
                report.next_steps = vec![format!(
                    "{abort} --recover   # roll back from the Deployment's seal and stable ReplicaSet, ignoring the record"
                )];
            }
            CanaryState::Unconfirmed { stored, braked } => {
                report.phase = StatusPhase::Unconfirmed;
                report.phase_description = format!(
                    "recorded but not confirmed by the Deployment: {}",
                    stored.record.phase.describe()
                );
                report.next_steps = if *braked {
                    vec![format!(
                        "kubectl edit deploy/{name}   # put the original settings back by hand, then {abort}"
                    )]
                } else {
                    vec![format!(
                        "{abort}   # discard the record; nothing is written to the Deployment"
                    )]
                };
            }
            CanaryState::RecordLost { seal, .. } => {
                report.phase = StatusPhase::RecordLost;
                report.phase_description = "held by kubectl-canary, but its record is lost".into();
                report.seal_sides(view, seal);
                report.next_steps = vec![format!(
                    "{abort}   # roll back to the stable ReplicaSet {} with the settings kept on the Deployment",
                    seal.stable.replica_set
                )];
            }
            _ => {}
        }
        report
    }

    /// The sides as the seal names them: stable is the ReplicaSet with the sealed UID, the
    /// canary the one with the Deployment's current template.
    fn seal_sides(&mut self, view: &DeploymentView, seal: &canary_core::seal::Seal) {
        let stable_uid = Some(seal.stable.uid.as_str());
        self.mode = Some(seal.mode);
        let stable = view
            .replica_sets
            .iter()
            .find(|rs| rs.uid().as_deref() == stable_uid);
        let canary = view
            .replica_set_with_template(&view.template())
            .filter(|rs| rs.uid().as_deref() != stable_uid);
        self.stable = stable.map(|rs| side(view, rs));
        self.canary = canary.map(|rs| side(view, rs));
        self.canary_traffic_share = None;
        // The next steps of a record that cannot be used are fixed; the problems are the sides'.
        self.judging = Judging {
            situation: crate::evidence::situation(view, stable, canary),
            next: None,
            started_at: None,
        };
        self.judge(None);
    }
}

impl StatusReport {
    /// The status with the Services pinned for its Deployment (`crate::traffic::pins`):
    /// while a dark pin holds, the Services select only the stable pods, so the canary's
    /// share of requests is 0 whatever its share of pods.
    pub fn with_pins(
        &mut self,
        pins: &[(
            String,
            canary_core::traffic::ServicePin,
            canary_core::traffic::ServiceTraffic,
        )],
    ) {
        self.with_dark_pin(pins.iter().any(|(_, pin, _)| pin.is_dark()));
    }

    /// The status of a canary whose Services a dark pin holds (`dark`), as `start --dark`
    /// knows without reading them again: its share of requests is 0.
    pub fn with_dark_pin(&mut self, dark: bool) {
        if dark && self.canary_traffic_share.is_some() {
            self.canary_traffic_share = Some(0.0);
        }
    }
}

/// The next steps after a foreign change: never the canary again over the other actor's
/// change.
fn foreign_next_steps(
    change: &ForeignChange,
    name: &str,
    record: &canary_core::record::CanaryRecord,
) -> Vec<String> {
    let abort = format!("kubectl canary abort deploy/{name}");
    match change {
        ForeignChange::RevertedToStable => vec![format!(
            "{abort}   # the stable version is back already: puts back the Deployment's own settings and closes the canary"
        )],
        ForeignChange::ReplacedByOtherVersion { .. } => vec![format!(
            "{abort}   # leaves the other actor's template, puts back the Deployment's own settings (it rolls out) and closes the canary"
        )],
        ForeignChange::Rescaled { now, .. } => {
            let mut steps = vec![];
            if let Some(pods) = canary_core::foreign::follow_size(record, *now) {
                let asked = record
                    .requested_size
                    .unwrap_or(canary_core::rollout_math::CanarySize::Pods(pods));
                steps.push(format!(
                    "kubectl canary promote deploy/{name} --canary {asked}   # the size asked again: {pods} canary pod(s) at {now} replicas"
                ));
            }
            steps.push(format!("{abort}   # the stable version on every pod"));
            steps.push(format!(
                "kubectl canary promote deploy/{name} --full   # the new version on every pod"
            ));
            steps
        }
        ForeignChange::Recreated { .. } => vec![format!(
            "kubectl delete configmap {name}.kubectl-canary   # the record of the deleted Deployment"
        )],
        ForeignChange::RecordLost | ForeignChange::SupersededByAnotherRun { .. } => {
            vec![format!("kubectl canary status deploy/{name}")]
        }
    }
}
