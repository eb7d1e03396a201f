//! The canary state machine: from the record and an observation of the Deployment, the
//! next single change to make, or what to wait for.
//!
//! The engine calls [`decide`] in a loop: observe, decide, apply one update with a
//! resourceVersion precondition, observe again. Because the decision depends only on the
//! record and the cluster, a run that died at any point is continued by the next one.

use serde::Serialize;
use serde_json::Value;

pub use crate::goal::Goal;
use crate::record::{
    BRAKE_MIN_READY_SECONDS, BRAKE_PROGRESS_DEADLINE_SECONDS, CanaryRecord, RolloutSettings,
};
use crate::rollout_math::{CanaryMode, stable_pods_beside_canary};

/// One ReplicaSet as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetObservation {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Pods that still exist with its pod-template-hash, terminating ones included.
    pub pods: i32,
    /// Of those, pods being deleted (a finalizer can keep one for ever).
    pub terminating: i32,
}

/// The Deployment and its ReplicaSets as observed, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.template`.
    pub template: Value,
    /// The rollout settings now.
    pub settings: RolloutSettings,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// The ReplicaSet with the canary's template, if it exists.
    pub canary: Option<ReplicaSetObservation>,
    /// The ReplicaSet with the original template, if it exists.
    pub stable: Option<ReplicaSetObservation>,
    /// Pods of any other ReplicaSet of the Deployment.
    pub other_pods: i32,
}

impl Observation {
    /// Whether the controller has seen the latest spec.
    pub fn caught_up(&self) -> bool {
        self.observed_generation >= self.generation
    }

    /// Whether the rollout to the current template is complete, as `kubectl rollout status`
    /// judges it.
    pub fn rollout_complete(&self) -> bool {
        self.caught_up()
            && self.updated_replicas == self.replicas
            && self.status_replicas == self.replicas
            && self.available_replicas >= self.replicas
    }

    /// The canary ReplicaSet's `spec.replicas` (0 without one): the canary size running
    /// as the controller left it, which a rescale while held spreads over both sides.
    pub fn canary_desired(&self) -> i32 {
        self.canary.as_ref().map_or(0, |rs| rs.desired)
    }

    fn stable_desired(&self) -> i32 {
        self.stable.as_ref().map_or(0, |rs| rs.desired)
    }

    /// Canary pods an abort still waits for: the ReplicaSet's size, or its pods that are
    /// not being deleted. Terminating pods do not hold an abort (a finalizer may keep them).
    fn canary_pods_left(&self) -> i32 {
        self.canary
            .as_ref()
            .map_or(0, |rs| rs.desired.max(rs.pods - rs.terminating))
    }

    fn canary_available(&self) -> i32 {
        self.canary.as_ref().map_or(0, |rs| rs.available)
    }
}

/// Which template the Deployment has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TemplateState {
    /// The template recorded before the canary.
    Original,
    /// The original with the canary images.
    Canary,
    /// Something else: someone changed the template since.
    Foreign,
}

/// Classifies the Deployment's current template against the record.
pub fn template_state(record: &CanaryRecord, template: &Value) -> TemplateState {
    if *template == record.original_template {
        TemplateState::Original
    } else if *template == record.target_template() || *template == record.sent_target_template() {
        TemplateState::Canary
    } else {
        TemplateState::Foreign
    }
}

/// One update of the Deployment: the template (if it changes) and the full rollout settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecChange {
    /// The new `spec.template`, when it changes.
    pub template: Option<Value>,
    /// The rollout settings to set, every field.
    pub settings: RolloutSettings,
    /// What the change does, for people and dry runs.
    pub summary: String,
}

/// A direct change of one ReplicaSet's size, for what the controller does not do by itself
/// during a rolling update: grow the stable side, or shrink the canary (after a change of
/// `spec.replicas` was spread over both sides). Made only while the Deployment rolls braked
/// at the wanted size, where the controller keeps such sizes (it scales old ReplicaSets
/// only down, as canary pods become Available, which the brake prevents, and the canary
/// only up to the surge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resize {
    /// The ReplicaSet.
    pub replica_set: String,
    /// Its `spec.replicas` now.
    pub from: i32,
    /// Wanted.
    pub to: i32,
    /// What the change does, for people and dry runs.
    pub summary: String,
}

/// What the controller is doing that the engine waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "camelCase")]
pub enum Waiting {
    /// The controller has not observed the latest generation yet.
    ControllerToObserve,
    /// The brake is back on; the canary ReplicaSet must count its pods unavailable before
    /// the controller may roll, or it would shrink the stable side by that many.
    BrakeTakingHold {
        /// Canary pods still counted Available.
        available: i32,
    },
    /// The canary ReplicaSet is being scaled to its size.
    CanaryScaling {
        /// Canary pods desired now.
        canary: i32,
        /// Stable pods desired now.
        stable: i32,
        /// Canary pods wanted.
        wanted_canary: i32,
        /// Stable pods wanted.
        wanted_stable: i32,
    },
    /// The rollout towards the current template is under way.
    RollingOut {
        /// `status.updatedReplicas`.
        updated: i32,
        /// `status.availableReplicas`.
        available: i32,
        /// `spec.replicas`.
        replicas: i32,
        /// Canary pods left (for an abort).
        canary_pods_left: i32,
    },
}

/// Why the machine cannot continue without a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Stuck {
    /// The pod template is neither the original nor the canary.
    TemplateChangedElsewhere,
    /// `spec.replicas` changed since the start (an HPA or `kubectl scale`).
    ReplicasChanged {
        /// At the start.
        recorded: i32,
        /// Now.
        now: i32,
    },
    /// The canary is larger than wanted: the goal would shrink it.
    CanaryLargerThanWanted {
        /// Canary pods desired now.
        canary: i32,
        /// Wanted.
        wanted: i32,
    },
}

impl Stuck {
    /// What is wrong and what to do, in a sentence or two.
    pub fn explain(&self, deployment: &str) -> String {
        match self {
            Stuck::TemplateChangedElsewhere => format!(
                "the pod template of deploy/{deployment} was changed by someone else during the canary; \
                 run `kubectl canary abort deploy/{deployment}` to go back to the recorded stable version"
            ),
            Stuck::ReplicasChanged { recorded, now } => format!(
                "spec.replicas of deploy/{deployment} changed from {recorded} to {now} during the canary \
                 (an HPA or `kubectl scale`), so the controller rescaled both sides proportionally; \
                 run `kubectl canary abort deploy/{deployment}` or `kubectl canary promote deploy/{deployment} --full`"
            ),
            Stuck::CanaryLargerThanWanted { canary, wanted } => format!(
                "the canary already has {canary} pod(s), more than the {wanted} wanted; a canary only grows: \
                 promote to a larger size or abort"
            ),
        }
    }
}

/// The machine's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum Decision {
    /// Make this one update.
    Apply(SpecChange),
    /// Scale this one ReplicaSet.
    Resize(Resize),
    /// Wait for the controller.
    Wait(Waiting),
    /// The goal is reached.
    Reached,
    /// A person must decide.
    Stuck(Stuck),
}

/// The settings of a canary held at rest: paused with the brake's strategy, but with the
/// Deployment's own minReadySeconds and progressDeadlineSeconds. Paused alone stops the
/// controller; a brake left on while no run watches would make the stable ReplicaSet
/// unavailable the moment anyone puts the stable template back (docs/brake-during-hold.md).
///
/// One exception: a surge canary as large as the Deployment keeps the brake. Even paused,
/// the controller takes a new ReplicaSet with `spec.replicas == replicas` whose pods are all
/// Available as saturated and scales the stable side to 0.
pub fn held_settings(record: &CanaryRecord, pods: i32) -> RolloutSettings {
    if record.brake_while_held || (record.mode == CanaryMode::Surge && pods >= record.replicas) {
        return RolloutSettings::braked(record.mode, pods, true);
    }
    RolloutSettings {
        min_ready_seconds: record.original_settings.min_ready_seconds,
        progress_deadline_seconds: record.original_settings.progress_deadline_seconds,
        ..RolloutSettings::braked(record.mode, pods, true)
    }
}

/// `settings` with the brake on and paused, the strategy untouched (changing maxSurge
/// while paused would rescale both sides).
fn braked_in_place(settings: &RolloutSettings) -> RolloutSettings {
    RolloutSettings {
        strategy: settings.strategy.clone(),
        min_ready_seconds: Some(BRAKE_MIN_READY_SECONDS),
        progress_deadline_seconds: Some(BRAKE_PROGRESS_DEADLINE_SECONDS),
        paused: Some(true),
    }
}

/// Decides the next step towards `goal`.
///
/// ```
/// use std::collections::BTreeMap;
///
/// use canary_core::machine::{Decision, Goal, Observation, decide};
/// use canary_core::record::{CanaryRecord, Owner, Phase, RECORD_SCHEMA, RolloutSettings, StableRevision, images_of};
/// use canary_core::rollout_math::CanaryMode;
/// use serde_json::json;
///
/// let template = json!({"spec": {"containers": [{"name": "web", "image": "web:1"}]}});
/// let original_settings = RolloutSettings {
///     strategy: json!({"type": "RollingUpdate"}),
///     min_ready_seconds: None,
///     progress_deadline_seconds: None,
///     paused: None,
/// };
/// let record = CanaryRecord {
///     schema: RECORD_SCHEMA,
///     deployment: "web".into(),
///     deployment_uid: "uid-1".into(),
///     replicas: 4,
///     original_images: images_of(&template),
///     original_template: template.clone(),
///     original_settings: original_settings.clone(),
///     stable: StableRevision {
///         replica_set: "web-1".into(),
///         uid: "rs-uid".into(),
///         revision: "1".into(),
///         pod_template_hash: "1".into(),
///     },
///     target_images: BTreeMap::from([("web".into(), "web:2".into())]),
///     target_template: None,
///     mode: CanaryMode::Surge,
///     phase: Phase::Starting { pods: 1 },
///     started_by: Owner { user: "me".into(), host: "h".into(), pid: 1, tool_version: "0".into() },
///     started_at: "2026-01-01T00:00:00Z".into(),
///     history: vec![],
///     admitted_target_template: None,
///     requested_size: None,
///     brake_while_held: false,
///     traffic: None,
///     gate: None,
/// };
/// // The Deployment as it is before start: the original template and settings, settled.
/// let observed = Observation {
///     generation: 1,
///     observed_generation: 1,
///     replicas: 4,
///     template,
///     settings: original_settings,
///     updated_replicas: 4,
///     status_replicas: 4,
///     available_replicas: 4,
///     canary: None,
///     stable: None,
///     other_pods: 0,
/// };
/// // The first step of holding 1 canary pod: the new image with the brake, in one update.
/// let Decision::Apply(change) = decide(&record, Goal::Hold { pods: 1 }, &observed) else {
///     panic!("start changes the Deployment first");
/// };
/// assert_eq!(change.template, Some(record.target_template()));
/// assert_eq!(change.settings, RolloutSettings::braked(CanaryMode::Surge, 1, false));
/// ```
pub fn decide(record: &CanaryRecord, goal: Goal, observed: &Observation) -> Decision {
    let template = template_state(record, &observed.template);
    match goal {
        Goal::Hold { pods } => decide_hold(record, pods, template, observed),
        Goal::PromoteFull => {
            if template == TemplateState::Foreign {
                return Decision::Stuck(Stuck::TemplateChangedElsewhere);
            }
            let restored = &record.original_settings;
            if template != TemplateState::Canary || !observed.settings.equivalent(restored) {
                return Decision::Apply(SpecChange {
                    // What the user's command sent (sealed), never the record's copy of what
                    // admission stored: that copy is only recognised, not written.
                    template: (template != TemplateState::Canary)
                        .then(|| record.sent_target_template()),
                    settings: restored.clone(),
                    summary: "roll the new version out to every pod: resume, and put back the \
                              Deployment's own strategy, minReadySeconds and progressDeadlineSeconds"
                        .to_string(),
                });
            }
            wait_for_rollout(observed, 0)
        }
        Goal::Abort => {
            let restored = &record.original_settings;
            if template != TemplateState::Original || !observed.settings.equivalent(restored) {
                return Decision::Apply(SpecChange {
                    template: (template != TemplateState::Original)
                        .then(|| record.original_template.clone()),
                    settings: restored.clone(),
                    summary: "roll back to the stable version in one update: the recorded pod \
                              template, the Deployment's own strategy, minReadySeconds, \
                              progressDeadlineSeconds and paused state"
                        .to_string(),
                });
            }
            wait_for_rollout(observed, observed.canary_pods_left())
        }
    }
}

fn wait_for_rollout(observed: &Observation, canary_pods_left: i32) -> Decision {
    if observed.rollout_complete() && canary_pods_left == 0 {
        Decision::Reached
    } else if !observed.caught_up() {
        Decision::Wait(Waiting::ControllerToObserve)
    } else {
        Decision::Wait(Waiting::RollingOut {
            updated: observed.updated_replicas,
            available: observed.available_replicas,
            replicas: observed.replicas,
            canary_pods_left,
        })
    }
}

/// The change that ends every hold: once the controller has scaled the canary ReplicaSet to
/// exactly `pods` (and the stable one to its share), pause the Deployment and take the brake off
/// [`decide`] makes it when it observes the canary at size; `start --dry-run` shows it as
/// the step after the first update.
pub fn pause_when_held(record: &CanaryRecord, pods: i32) -> SpecChange {
    let wanted_stable = stable_pods_beside_canary(record.mode, record.replicas, pods);
    SpecChange {
        template: None,
        settings: held_settings(record, pods),
        summary: format!(
            "pause: the canary ReplicaSet has exactly {pods} pod(s) and the stable one \
             {wanted_stable}; paused, the brake comes off (the Deployment's own \
             minReadySeconds and progressDeadlineSeconds back)"
        ),
    }
}

fn decide_hold(
    record: &CanaryRecord,
    pods: i32,
    template: TemplateState,
    observed: &Observation,
) -> Decision {
    let running = RolloutSettings::braked(record.mode, pods, false);
    match template {
        TemplateState::Foreign => Decision::Stuck(Stuck::TemplateChangedElsewhere),
        TemplateState::Original => Decision::Apply(SpecChange {
            template: Some(record.sent_target_template()),
            settings: running,
            summary: format!(
                "set the canary's pod template ({}) and brake the rollout at {pods} canary pod(s): {}, \
                 minReadySeconds so large that no canary pod becomes Available",
                record.change_summary(),
                strategy_words(record.mode, pods)
            ),
        }),
        TemplateState::Canary => {
            if observed.replicas != record.replicas {
                return Decision::Stuck(Stuck::ReplicasChanged {
                    recorded: record.replicas,
                    now: observed.replicas,
                });
            }
            let held = held_settings(record, pods);
            let wanted_stable = stable_pods_beside_canary(record.mode, record.replicas, pods);
            let canary = observed.canary_desired();
            let stable = observed.stable_desired();
            let at_size = canary == pods && stable == wanted_stable;
            let settings = &observed.settings;
            if settings.equivalent(&held) && at_size {
                if !observed.caught_up() {
                    return Decision::Wait(Waiting::ControllerToObserve);
                }
                return Decision::Reached;
            }
            if settings.equivalent(&running) {
                if !observed.caught_up() {
                    return Decision::Wait(Waiting::ControllerToObserve);
                }
                if let Some(resize) = resize_towards(observed, wanted_stable, pods) {
                    return Decision::Resize(resize);
                }
                if at_size {
                    return Decision::Apply(pause_when_held(record, pods));
                }
                return Decision::Wait(Waiting::CanaryScaling {
                    canary,
                    stable,
                    wanted_canary: pods,
                    wanted_stable,
                });
            }
            if pods < 1 {
                return Decision::Stuck(Stuck::CanaryLargerThanWanted {
                    canary,
                    wanted: pods,
                });
            }
            // The controller must move. Its canary pods may count as Available (held without
            // the brake): first the brake, while still paused, and until the canary
            // ReplicaSet counts none Available, no resume.
            if !settings.is_braked() {
                return Decision::Apply(SpecChange {
                    template: None,
                    settings: braked_in_place(settings),
                    summary: "put the brake back on, still paused, before the canary grows"
                        .to_string(),
                });
            }
            if !observed.caught_up() {
                return Decision::Wait(Waiting::ControllerToObserve);
            }
            if observed.canary_available() > 0 {
                return Decision::Wait(Waiting::BrakeTakingHold {
                    available: observed.canary_available(),
                });
            }
            // Another size's brake, or paused short of the size: let the controller move,
            // braked at the new size, so it can go no further than `pods`.
            Decision::Apply(SpecChange {
                template: None,
                settings: running,
                summary: format!(
                    "resume braked at {pods} canary pod(s): {}",
                    strategy_words(record.mode, pods)
                ),
            })
        }
    }
}

/// The direct resize a braked, rolling Deployment needs, if any: the stable side up to its
/// size first (the controller never grows an old ReplicaSet), then the canary down to its
/// size (the controller never shrinks the new one below `spec.replicas`).
fn resize_towards(observed: &Observation, wanted_stable: i32, pods: i32) -> Option<Resize> {
    if let Some(stable) = observed.stable.as_ref()
        && stable.desired < wanted_stable
    {
        return Some(Resize {
            replica_set: stable.name.clone(),
            from: stable.desired,
            to: wanted_stable,
            summary: format!(
                "scale the stable ReplicaSet {} from {} to {wanted_stable} pods (the controller only shrinks it)",
                stable.name, stable.desired
            ),
        });
    }
    if let Some(canary) = observed.canary.as_ref()
        && canary.desired > pods
    {
        return Some(Resize {
            replica_set: canary.name.clone(),
            from: canary.desired,
            to: pods,
            summary: format!(
                "scale the canary ReplicaSet {} from {} to {pods} pods (the controller only grows it)",
                canary.name, canary.desired
            ),
        });
    }
    None
}

fn strategy_words(mode: CanaryMode, pods: i32) -> String {
    match mode {
        CanaryMode::Surge => format!("maxSurge={pods}, maxUnavailable=0"),
        CanaryMode::Replace => format!("maxSurge=0, maxUnavailable={pods}"),
    }
}

#[cfg(test)]
mod tests;
