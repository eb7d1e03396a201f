//! The StatefulSet canary's state machine: from what was recorded at the start, what is
//! observed now and the goal, the next action: one write of the template and partition, the
//! deletion of pods the controller will not move by itself, a wait, or the goal reached.
//!
//! It rests on [`crate::rollout_math`]'s StatefulSet model: a partition of `replicas - k`
//! holds exactly the k highest ordinals; a pod below the partition is never moved by the
//! controller (so a canary pod left there, after the partition rose with a scale-up or a
//! smaller hold, is deleted to come back stable); under `OrderedReady` a canary pod that is
//! not Ready blocks the revert of the template (the abort deletes it: the "forced rollback").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::goal::Goal;
use crate::rollout_math::{
    OrdinalHealth, OrdinalPod, PodManagementPolicy, StatefulSetFacts, canary_partition,
    forced_rollback_deletions,
};

/// What a StatefulSet canary records before its first write, and decides from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetIntent {
    /// `spec.template` before the canary.
    pub original_template: Value,
    /// `spec.template` of the canary.
    pub canary_template: Value,
    /// `spec.updateStrategy.rollingUpdate.partition` before the canary (0: the plan refuses
    /// any other).
    pub original_partition: i32,
    /// The stable revision's name (`status.updateRevision` before the canary): the revert
    /// of the template brings the same ControllerRevision back.
    pub stable_revision: String,
}

/// The StatefulSet now, as the machine decides on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetObservation {
    /// Its spec's and status's facts.
    pub facts: StatefulSetFacts,
    /// `spec.podManagementPolicy`.
    pub policy: PodManagementPolicy,
    /// `spec.template` now.
    pub template: Value,
    /// Its pods by ordinal.
    pub pods: BTreeMap<i32, OrdinalPod>,
}

/// One write of the StatefulSet: the template (when it changes) and the partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetChange {
    /// The new `spec.template`, when it changes.
    pub template: Option<Value>,
    /// `spec.updateStrategy.rollingUpdate.partition`.
    pub partition: i32,
    /// What the change does, for people and dry runs.
    pub summary: String,
}

/// What the machine waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum StatefulSetWaiting {
    /// The controller has not observed the latest spec yet.
    ControllerToObserve,
    /// The controller is replacing pods: `on_target` of `wanted` pods are on the revision
    /// wanted (and Ready, for a promote or an abort).
    Replacing {
        /// Pods on the wanted revision (and Ready, for a promote or an abort).
        on_target: i32,
        /// Pods wanted on it.
        wanted: i32,
    },
}

/// Why the machine cannot go on without a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum StatefulSetStuck {
    /// The template is neither the recorded original nor the canary's.
    TemplateChangedElsewhere,
    /// A hold of more pods than the StatefulSet has, or none.
    SizeOutOfRange {
        /// Pods asked.
        pods: i32,
        /// `spec.replicas` now.
        replicas: i32,
    },
}

impl StatefulSetStuck {
    /// What is wrong and what to do, in a sentence.
    pub fn explain(&self, name: &str) -> String {
        match self {
            Self::TemplateChangedElsewhere => format!(
                "the pod template of sts/{name} was changed by someone else during the canary; abort the canary \
                 to go back to the recorded stable version, or let their version roll out"
            ),
            Self::SizeOutOfRange { pods, replicas } => format!(
                "a canary of {pods} pod(s) does not fit sts/{name}'s {replicas} replicas: a canary keeps at least \
                 one stable pod; ask for 1 to {} pod(s), or promote it whole",
                replicas - 1
            ),
        }
    }
}

/// The machine's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum StatefulSetDecision {
    /// Make this one write.
    Apply(StatefulSetChange),
    /// Delete these pods (their volumes are kept): the controller recreates each on the
    /// revision its ordinal has.
    DeletePods {
        /// The ordinals.
        ordinals: Vec<i32>,
        /// Why, for people and dry runs.
        summary: String,
    },
    /// Wait for the controller.
    Wait(StatefulSetWaiting),
    /// The goal is reached.
    Reached,
    /// A person must decide.
    Stuck(StatefulSetStuck),
}

/// Decides the next step towards `goal`.
///
/// ```
/// use std::collections::BTreeMap;
/// use canary_core::goal::Goal;
/// use canary_core::kind_machines::statefulset::*;
/// use canary_core::rollout_math::{PodManagementPolicy, StatefulSetFacts};
/// use serde_json::json;
///
/// let intent = StatefulSetIntent {
///     original_template: json!({"spec": {"containers": [{"name": "db", "image": "db:1"}]}}),
///     canary_template: json!({"spec": {"containers": [{"name": "db", "image": "db:2"}]}}),
///     original_partition: 0,
///     stable_revision: "db-1".into(),
/// };
/// let observed = StatefulSetObservation {
///     facts: StatefulSetFacts {
///         name: "db".into(), replicas: 5, on_delete: false, partition: 0,
///         current_revision: "db-1".into(), update_revision: "db-1".into(), caught_up: true,
///     },
///     policy: PodManagementPolicy::OrderedReady,
///     template: intent.original_template.clone(),
///     pods: BTreeMap::new(),
/// };
/// let StatefulSetDecision::Apply(change) = decide(&intent, &observed, Goal::Hold { pods: 2 }) else {
///     panic!("the first step is the write");
/// };
/// assert_eq!((change.partition, change.template.as_ref()), (3, Some(&intent.canary_template)));
/// ```
pub fn decide(
    intent: &StatefulSetIntent,
    observed: &StatefulSetObservation,
    goal: Goal,
) -> StatefulSetDecision {
    let facts = &observed.facts;
    let on_original = observed.template == intent.original_template;
    let on_canary = observed.template == intent.canary_template;
    if !on_original && !on_canary {
        return StatefulSetDecision::Stuck(StatefulSetStuck::TemplateChangedElsewhere);
    }
    let (template, partition) = match goal {
        Goal::Hold { pods } => {
            if pods < 1 || pods >= facts.replicas {
                return StatefulSetDecision::Stuck(StatefulSetStuck::SizeOutOfRange {
                    pods,
                    replicas: facts.replicas,
                });
            }
            (
                &intent.canary_template,
                canary_partition(facts.replicas, pods),
            )
        }
        Goal::PromoteFull => (&intent.canary_template, intent.original_partition),
        Goal::Abort => (&intent.original_template, intent.original_partition),
    };
    if observed.template != *template || facts.partition != partition {
        let summary = match goal {
            Goal::Hold { pods } => format!(
                "hold {pods} canary pod(s): the canary template with partition {partition} (ordinals {}..{})",
                partition,
                facts.replicas - 1
            ),
            Goal::PromoteFull => {
                format!("promote: partition back to {partition}, every pod updated")
            }
            Goal::Abort => format!("abort: the stable template and partition {partition} back"),
        };
        return StatefulSetDecision::Apply(StatefulSetChange {
            template: (observed.template != *template).then(|| template.clone()),
            partition,
            summary,
        });
    }
    if !facts.caught_up {
        return StatefulSetDecision::Wait(StatefulSetWaiting::ControllerToObserve);
    }
    let target_revision = facts.update_revision.as_str();
    let live = |p: &&OrdinalPod| p.health != OrdinalHealth::Terminating;
    match goal {
        Goal::Hold { .. } => {
            // Canary pods below the partition: the controller never moves them.
            let below: Vec<i32> = observed
                .pods
                .range(..partition)
                .filter(|(_, p)| live(p) && p.revision == target_revision)
                .map(|(o, _)| *o)
                .collect();
            if !below.is_empty() {
                return StatefulSetDecision::DeletePods {
                    summary: format!(
                        "canary pod(s) below partition {partition} (ordinals {}) deleted to come back stable",
                        join(&below)
                    ),
                    ordinals: below,
                };
            }
        }
        Goal::Abort => {
            let stuck = forced_rollback_deletions(observed.policy, &observed.pods, target_revision);
            if !stuck.is_empty() {
                return StatefulSetDecision::DeletePods {
                    summary: format!(
                        "forced rollback: canary pod(s) {} not Ready, which the controller never replaces under \
                         OrderedReady, deleted (their volumes kept)",
                        join(&stuck)
                    ),
                    ordinals: stuck,
                };
            }
        }
        Goal::PromoteFull => {}
    }
    // A hold is reached once the controller has replaced the canary's ordinals (their
    // health is the analysis's to judge); a promote or an abort once every pod is on the
    // revision wanted and Ready.
    let must_be_ready = !matches!(goal, Goal::Hold { .. });
    let wanted: Vec<i32> = (partition.max(0)..facts.replicas).collect();
    let on_target = wanted
        .iter()
        .filter(|o| {
            observed.pods.get(o).is_some_and(|p| {
                p.revision == target_revision
                    && match p.health {
                        OrdinalHealth::Ready => true,
                        OrdinalHealth::NotReady => !must_be_ready,
                        OrdinalHealth::Terminating => false,
                    }
            })
        })
        .count() as i32;
    let leftovers = observed.pods.range(facts.replicas..).count();
    if on_target == wanted.len() as i32 && leftovers == 0 {
        StatefulSetDecision::Reached
    } else {
        StatefulSetDecision::Wait(StatefulSetWaiting::Replacing {
            on_target,
            wanted: wanted.len() as i32,
        })
    }
}

/// The canary's brake released under someone else's template (another version:
/// [`crate::kind_machines::foreign`]): the recorded partition back with their template kept,
/// then, once the controller has seen it, the pods it would wait on for ever under
/// `OrderedReady` (not Ready, not on their revision: a broken canary pod) deleted, their
/// volumes kept. Reached then: their version rolls out as the StatefulSet's own strategy
/// says; the tool does not wait for it.
///
/// ```
/// use std::collections::BTreeMap;
/// use canary_core::kind_machines::statefulset::*;
/// use canary_core::rollout_math::{PodManagementPolicy, StatefulSetFacts};
/// use serde_json::json;
///
/// let intent = StatefulSetIntent {
///     original_template: json!({"image": "1"}), canary_template: json!({"image": "2"}),
///     original_partition: 0, stable_revision: "db-1".into(),
/// };
/// let observed = StatefulSetObservation {
///     facts: StatefulSetFacts {
///         name: "db".into(), replicas: 3, on_delete: false, partition: 2,
///         current_revision: "db-1".into(), update_revision: "db-3".into(), caught_up: true,
///     },
///     policy: PodManagementPolicy::OrderedReady,
///     template: json!({"image": "3"}),
///     pods: BTreeMap::new(),
/// };
/// let StatefulSetDecision::Apply(change) = hand_over(&intent, &observed) else { panic!() };
/// assert_eq!((change.template, change.partition), (None, 0));
/// ```
pub fn hand_over(
    intent: &StatefulSetIntent,
    observed: &StatefulSetObservation,
) -> StatefulSetDecision {
    let facts = &observed.facts;
    if facts.partition != intent.original_partition {
        return StatefulSetDecision::Apply(StatefulSetChange {
            template: None,
            partition: intent.original_partition,
            summary: format!(
                "someone else's template kept; the partition back to {}: their version rolls out as the \
                 StatefulSet's own strategy says",
                intent.original_partition
            ),
        });
    }
    if !facts.caught_up {
        return StatefulSetDecision::Wait(StatefulSetWaiting::ControllerToObserve);
    }
    let stuck = forced_rollback_deletions(observed.policy, &observed.pods, &facts.update_revision);
    if !stuck.is_empty() {
        return StatefulSetDecision::DeletePods {
            summary: format!(
                "pod(s) {} not Ready and not on the new revision, which the controller would wait on for ever \
                 under OrderedReady, deleted (their volumes kept)",
                join(&stuck)
            ),
            ordinals: stuck,
        };
    }
    StatefulSetDecision::Reached
}

fn join(ordinals: &[i32]) -> String {
    ordinals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rollout_math::StatefulSetModel;

    const OLD: &str = "db-old";
    const NEW: &str = "db-new";

    fn template(image: &str) -> Value {
        json!({"spec": {"containers": [{"name": "db", "image": image}]}})
    }

    /// The machine driven against the controller's model: each write applied and observed,
    /// each deletion made, the model settled, until the machine reaches the goal, is stuck,
    /// or waits on a controller that has nothing left to do.
    struct Cluster {
        model: StatefulSetModel,
        template: Value,
        broken: bool,
    }

    impl Cluster {
        fn new(replicas: i32, policy: PodManagementPolicy, broken: bool) -> Self {
            Self {
                model: StatefulSetModel::settled(replicas, 0, policy, OLD),
                template: template("db:1"),
                broken,
            }
        }

        fn intent(&self) -> StatefulSetIntent {
            StatefulSetIntent {
                original_template: template("db:1"),
                canary_template: template("db:2"),
                original_partition: 0,
                stable_revision: OLD.into(),
            }
        }

        fn observe(&self) -> StatefulSetObservation {
            StatefulSetObservation {
                facts: StatefulSetFacts {
                    name: "db".into(),
                    replicas: self.model.replicas,
                    on_delete: false,
                    partition: self.model.partition,
                    current_revision: self.model.current_revision.clone(),
                    update_revision: self.model.update_revision.clone(),
                    caught_up: true,
                },
                policy: self.model.policy,
                template: self.template.clone(),
                pods: self.model.pods.clone(),
            }
        }

        fn settle(&mut self) {
            let broken = self.broken;
            self.model.settle(|r| !(broken && r == NEW));
        }

        /// Drives towards `goal`; returns the decisions taken and the last one.
        fn drive(&mut self, goal: Goal) -> Vec<StatefulSetDecision> {
            let intent = self.intent();
            let mut taken = Vec::new();
            for _ in 0..20 {
                self.settle();
                let decision = decide(&intent, &self.observe(), goal);
                taken.push(decision.clone());
                match decision {
                    StatefulSetDecision::Apply(change) => {
                        if let Some(t) = change.template {
                            self.template = t;
                            self.model.update_revision =
                                if self.template == intent.original_template {
                                    OLD
                                } else {
                                    NEW
                                }
                                .into();
                        }
                        self.model.partition = change.partition;
                    }
                    StatefulSetDecision::DeletePods { ordinals, .. } => {
                        for o in ordinals {
                            self.model.pods.remove(&o);
                        }
                    }
                    StatefulSetDecision::Wait(_) => {
                        // Settled before deciding: the controller has nothing left to do.
                        return taken;
                    }
                    StatefulSetDecision::Reached | StatefulSetDecision::Stuck(_) => return taken,
                }
            }
            panic!("no end: {taken:?}");
        }
    }

    fn deletions(taken: &[StatefulSetDecision]) -> Vec<Vec<i32>> {
        taken
            .iter()
            .filter_map(|d| match d {
                StatefulSetDecision::DeletePods { ordinals, .. } => Some(ordinals.clone()),
                _ => None,
            })
            .collect()
    }

    /// Hold 2 of 5, grow to 3, promote: exactly the highest ordinals, then every pod.
    #[test]
    fn a_canary_holds_grows_and_promotes_by_the_partition() {
        for policy in [
            PodManagementPolicy::OrderedReady,
            PodManagementPolicy::Parallel,
        ] {
            let mut cluster = Cluster::new(5, policy, false);
            let taken = cluster.drive(Goal::Hold { pods: 2 });
            assert_eq!(taken.last(), Some(&StatefulSetDecision::Reached));
            assert_eq!(cluster.model.ordinals_on(NEW), [3, 4]);
            assert_eq!(cluster.model.partition, 3);
            assert_eq!(
                cluster.drive(Goal::Hold { pods: 3 }).last(),
                Some(&StatefulSetDecision::Reached)
            );
            assert_eq!(cluster.model.ordinals_on(NEW), [2, 3, 4]);
            assert_eq!(
                cluster.drive(Goal::PromoteFull).last(),
                Some(&StatefulSetDecision::Reached)
            );
            assert_eq!(cluster.model.ordinals_on(NEW), [0, 1, 2, 3, 4]);
            assert_eq!(
                (
                    cluster.model.partition,
                    cluster.model.current_revision.as_str()
                ),
                (0, NEW)
            );
        }
    }

    /// A never-ready canary: the hold waits at the first broken pod (either policy); under
    /// OrderedReady the abort deletes it (the forced rollback) and ends with every pod
    /// stable; under Parallel the controller replaces it and the abort deletes nothing.
    #[test]
    fn an_abort_of_a_broken_canary_ends_stable_with_the_forced_rollback() {
        for (policy, forced) in [
            (PodManagementPolicy::OrderedReady, vec![vec![3]]),
            (PodManagementPolicy::Parallel, vec![]),
        ] {
            let mut cluster = Cluster::new(4, policy, true);
            // Either policy replaces one pod at a time and waits for it: the first broken
            // canary pod is the last one made.
            let held = cluster.drive(Goal::Hold { pods: 2 });
            assert_eq!(
                held.last(),
                Some(&StatefulSetDecision::Wait(StatefulSetWaiting::Replacing {
                    on_target: 1,
                    wanted: 2
                })),
                "{policy:?}"
            );
            assert_eq!(cluster.model.ordinals_on(NEW), [3]);
            let taken = cluster.drive(Goal::Abort);
            assert_eq!(
                taken.last(),
                Some(&StatefulSetDecision::Reached),
                "{taken:?}"
            );
            assert_eq!(deletions(&taken), forced, "{policy:?}");
            assert_eq!(cluster.model.ordinals_on(OLD), [0, 1, 2, 3]);
            assert_eq!(
                (cluster.model.partition, &cluster.template),
                (0, &template("db:1"))
            );
        }
    }

    /// A scale-up during the hold (an HPA) adds canary pods under the old partition; holding
    /// the size asked raises the partition and deletes the canary pods left below it.
    #[test]
    fn a_scale_up_is_followed_by_the_partition_and_the_pods_left_below_it() {
        let mut cluster = Cluster::new(5, PodManagementPolicy::OrderedReady, false);
        cluster.drive(Goal::Hold { pods: 2 });
        cluster.model.replicas = 7;
        cluster.settle();
        assert_eq!(
            cluster.model.ordinals_on(NEW),
            [3, 4, 5, 6],
            "the controller's doing"
        );
        let taken = cluster.drive(Goal::Hold { pods: 2 });
        assert_eq!(taken.last(), Some(&StatefulSetDecision::Reached));
        assert_eq!(deletions(&taken), [vec![3, 4]]);
        assert_eq!(cluster.model.ordinals_on(NEW), [5, 6]);
    }

    /// What the machine refuses to decide on.
    #[test]
    fn a_foreign_template_or_an_impossible_size_is_stuck() {
        let mut cluster = Cluster::new(3, PodManagementPolicy::OrderedReady, false);
        let intent = cluster.intent();
        for pods in [0, 3] {
            assert!(matches!(
                decide(&intent, &cluster.observe(), Goal::Hold { pods }),
                StatefulSetDecision::Stuck(StatefulSetStuck::SizeOutOfRange { .. })
            ));
        }
        cluster.template = template("db:3");
        assert_eq!(
            decide(&intent, &cluster.observe(), Goal::Abort),
            StatefulSetDecision::Stuck(StatefulSetStuck::TemplateChangedElsewhere)
        );
        let mut unobserved = Cluster::new(3, PodManagementPolicy::OrderedReady, false).observe();
        unobserved.template = intent.canary_template.clone();
        unobserved.facts.partition = 2;
        unobserved.facts.caught_up = false;
        assert_eq!(
            decide(&intent, &unobserved, Goal::Hold { pods: 1 }),
            StatefulSetDecision::Wait(StatefulSetWaiting::ControllerToObserve)
        );
    }
}
