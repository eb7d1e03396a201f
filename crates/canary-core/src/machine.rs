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
mod tests {
    use serde_json::json;

    use super::*;

    fn record(mode: CanaryMode) -> CanaryRecord {
        CanaryRecord {
            mode,
            ..crate::record::sample_record()
        }
    }

    fn rs(desired: i32, pods: i32) -> Option<ReplicaSetObservation> {
        Some(ReplicaSetObservation {
            name: "rs".into(),
            desired,
            ready: pods,
            available: 0,
            pods,
            terminating: 0,
        })
    }

    fn settled(record: &CanaryRecord) -> Observation {
        Observation {
            generation: 1,
            observed_generation: 1,
            replicas: 10,
            template: record.original_template.clone(),
            settings: record.original_settings.clone(),
            updated_replicas: 10,
            status_replicas: 10,
            available_replicas: 10,
            canary: None,
            stable: rs(10, 10),
            other_pods: 0,
        }
    }

    /// Plays the controller's part by hand through a whole start, checking each decision.
    #[test]
    fn start_sets_brake_then_pauses_at_exact_size() {
        let record = record(CanaryMode::Surge);
        let goal = Goal::Hold { pods: 1 };
        let mut obs = settled(&record);
        let Decision::Apply(change) = decide(&record, goal, &obs) else {
            panic!("expected an update")
        };
        assert_eq!(change.template, Some(record.target_template()));
        assert!(change.settings.is_braked() && !change.settings.is_paused());
        obs.template = change.template.unwrap();
        obs.settings = change.settings;
        obs.generation = 2;
        assert_eq!(
            decide(&record, goal, &obs),
            Decision::Wait(Waiting::ControllerToObserve)
        );
        obs.observed_generation = 2;
        obs.canary = rs(0, 0);
        assert!(matches!(
            decide(&record, goal, &obs),
            Decision::Wait(Waiting::CanaryScaling { .. })
        ));
        obs.canary = rs(1, 1);
        let Decision::Apply(pause) = decide(&record, goal, &obs) else {
            panic!("expected the pause")
        };
        assert!(pause.template.is_none() && pause.settings.is_paused());
        assert!(
            !pause.settings.is_braked(),
            "held at rest without the brake: the Deployment's own minReadySeconds"
        );
        assert_eq!(
            pause.settings.min_ready_seconds,
            record.original_settings.min_ready_seconds
        );
        obs.settings = pause.settings;
        obs.generation = 3;
        obs.observed_generation = 3;
        assert_eq!(decide(&record, goal, &obs), Decision::Reached);
    }

    #[test]
    fn replace_mode_waits_for_the_stable_side_to_shrink() {
        let record = record(CanaryMode::Replace);
        let goal = Goal::Hold { pods: 2 };
        let mut obs = settled(&record);
        obs.template = record.target_template();
        obs.settings = RolloutSettings::braked(CanaryMode::Replace, 2, false);
        obs.canary = rs(2, 2);
        obs.stable = rs(10, 10);
        assert!(matches!(
            decide(&record, goal, &obs),
            Decision::Wait(Waiting::CanaryScaling {
                wanted_stable: 8,
                ..
            })
        ));
        obs.stable = rs(8, 8);
        assert!(
            matches!(decide(&record, goal, &obs), Decision::Apply(c) if c.settings.is_paused())
        );
    }

    #[test]
    fn step_promote_resumes_braked_at_the_new_size() {
        let record = record(CanaryMode::Surge);
        let mut obs = settled(&record);
        obs.template = record.target_template();
        obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
        obs.canary = rs(1, 1);
        let Decision::Apply(change) = decide(&record, Goal::Hold { pods: 3 }, &obs) else {
            panic!("expected an update")
        };
        assert_eq!(
            change.settings,
            RolloutSettings::braked(CanaryMode::Surge, 3, false)
        );
        assert_eq!(
            decide(&record, Goal::Hold { pods: 0 }, &obs),
            Decision::Stuck(Stuck::CanaryLargerThanWanted {
                canary: 1,
                wanted: 0
            })
        );
    }

    /// After a change of `spec.replicas` spread over both sides (stable 19, canary 2 for a
    /// canary of 1 at 20 replicas): braked and rolling, the stable side is grown and the
    /// canary shrunk directly, then the pause.
    #[test]
    fn a_rescaled_canary_is_resized_directly_while_rolling_braked() {
        let record = CanaryRecord {
            replicas: 20,
            ..record(CanaryMode::Surge)
        };
        let goal = Goal::Hold { pods: 1 };
        let mut obs = settled(&record);
        obs.replicas = 20;
        obs.template = record.target_template();
        obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, false);
        obs.stable = rs(19, 19);
        obs.canary = rs(2, 2);
        let Decision::Resize(grow) = decide(&record, goal, &obs) else {
            panic!("expected the stable side grown")
        };
        assert_eq!((grow.from, grow.to), (19, 20));
        obs.stable = rs(20, 19);
        let Decision::Resize(shrink) = decide(&record, goal, &obs) else {
            panic!("expected the canary shrunk")
        };
        assert_eq!((shrink.from, shrink.to), (2, 1));
        obs.canary = rs(1, 2);
        assert!(
            matches!(decide(&record, goal, &obs), Decision::Apply(c) if c.settings.is_paused())
        );
    }

    /// Growing from a held canary whose pods are Available: the brake first (paused, the
    /// strategy untouched), the resume only once no canary pod counts Available.
    #[test]
    fn growing_from_rest_brakes_first_and_resumes_once_no_canary_pod_is_available() {
        let record = record(CanaryMode::Surge);
        let goal = Goal::Hold { pods: 3 };
        let mut obs = settled(&record);
        obs.template = record.target_template();
        obs.settings = held_settings(&record, 1);
        obs.canary = rs(1, 1);
        obs.canary.as_mut().unwrap().available = 1;
        let Decision::Apply(brake) = decide(&record, goal, &obs) else {
            panic!("expected the brake")
        };
        assert!(brake.settings.is_braked() && brake.settings.is_paused());
        assert_eq!(brake.settings.strategy, obs.settings.strategy);
        obs.settings = brake.settings;
        assert_eq!(
            decide(&record, goal, &obs),
            Decision::Wait(Waiting::BrakeTakingHold { available: 1 })
        );
        obs.canary.as_mut().unwrap().available = 0;
        let Decision::Apply(resume) = decide(&record, goal, &obs) else {
            panic!("expected the resume")
        };
        assert_eq!(
            resume.settings,
            RolloutSettings::braked(CanaryMode::Surge, 3, false)
        );
    }

    /// Paused, the controller scales the stable side to 0 once a canary ReplicaSet as large
    /// as the Deployment has every pod Available: such a canary stays braked while held.
    #[test]
    fn a_canary_as_large_as_the_deployment_stays_braked_while_held() {
        let record = CanaryRecord {
            replicas: 1,
            ..record(CanaryMode::Surge)
        };
        assert!(held_settings(&record, 1).is_braked());
        assert!(held_settings(&record, 1).is_paused());
        let larger = CanaryRecord {
            replicas: 2,
            ..record.clone()
        };
        assert!(!held_settings(&larger, 1).is_braked());
    }

    #[test]
    fn abort_is_not_held_by_terminating_canary_pods() {
        let record = record(CanaryMode::Surge);
        let mut obs = settled(&record);
        obs.canary = rs(0, 2);
        obs.canary.as_mut().unwrap().terminating = 1;
        assert!(matches!(
            decide(&record, Goal::Abort, &obs),
            Decision::Wait(Waiting::RollingOut {
                canary_pods_left: 1,
                ..
            })
        ));
        obs.canary.as_mut().unwrap().terminating = 2;
        assert_eq!(decide(&record, Goal::Abort, &obs), Decision::Reached);
    }

    #[test]
    fn abort_restores_everything_in_one_update_then_waits_for_canary_pods_to_go() {
        let record = record(CanaryMode::Surge);
        let mut obs = settled(&record);
        obs.template = record.target_template();
        obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
        obs.canary = rs(1, 1);
        let Decision::Apply(change) = decide(&record, Goal::Abort, &obs) else {
            panic!("expected an update")
        };
        assert_eq!(change.template, Some(record.original_template.clone()));
        assert_eq!(change.settings, record.original_settings);
        obs.template = record.original_template.clone();
        obs.settings = record.original_settings.clone();
        obs.canary = rs(0, 1);
        assert!(matches!(
            decide(&record, Goal::Abort, &obs),
            Decision::Wait(Waiting::RollingOut {
                canary_pods_left: 1,
                ..
            })
        ));
        obs.canary = rs(0, 0);
        assert_eq!(decide(&record, Goal::Abort, &obs), Decision::Reached);
    }

    #[test]
    fn promote_full_restores_settings_and_waits_for_completion() {
        let record = record(CanaryMode::Surge);
        let mut obs = settled(&record);
        obs.template = record.target_template();
        obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
        let Decision::Apply(change) = decide(&record, Goal::PromoteFull, &obs) else {
            panic!("expected an update")
        };
        assert!(change.template.is_none());
        assert_eq!(change.settings, record.original_settings);
        obs.settings = record.original_settings.clone();
        obs.updated_replicas = 4;
        assert!(matches!(
            decide(&record, Goal::PromoteFull, &obs),
            Decision::Wait(Waiting::RollingOut { .. })
        ));
        obs.updated_replicas = 10;
        assert_eq!(decide(&record, Goal::PromoteFull, &obs), Decision::Reached);
    }

    #[test]
    fn foreign_template_and_rescaling_need_a_person() {
        let record = record(CanaryMode::Surge);
        let mut obs = settled(&record);
        obs.template = json!({"spec": {"containers": [{"name": "nginx", "image": "other:1"}]}});
        assert_eq!(
            decide(&record, Goal::Hold { pods: 1 }, &obs),
            Decision::Stuck(Stuck::TemplateChangedElsewhere)
        );
        assert!(matches!(
            decide(&record, Goal::Abort, &obs),
            Decision::Apply(_)
        ));
        obs.template = record.target_template();
        obs.replicas = 12;
        assert!(matches!(
            decide(&record, Goal::Hold { pods: 1 }, &obs),
            Decision::Stuck(Stuck::ReplicasChanged { .. })
        ));
    }
}
