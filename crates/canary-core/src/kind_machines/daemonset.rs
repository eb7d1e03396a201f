//! The DaemonSet canary's state machine: the brake is `updateStrategy: OnDelete`, written with
//! the canary template in one write; the canary is the pods of the chosen nodes, deleted so
//! that the controller recreates them from the canary template. Abort writes the stable
//! template back (still `OnDelete`, so nothing moves by itself), deletes every pod off the
//! stable revision, then puts the DaemonSet's own strategy back; promote puts the strategy
//! back with the canary template and lets the DaemonSet's own rollout finish.
//!
//! It rests on [`crate::rollout_math`]'s DaemonSet model (`OnDelete` moves nothing; a deleted
//! pod, a failed one and a joining node's come back on the template of the moment).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rollout_math::{DaemonPod, canary_deletions, rollback_deletions};

/// What a DaemonSet canary records before its first write, and decides from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetIntent {
    /// `spec.template` before the canary.
    pub original_template: Value,
    /// `spec.template` of the canary.
    pub canary_template: Value,
    /// `spec.updateStrategy` before the canary, as stored.
    pub original_strategy: Value,
    /// The stable revision's hash (the pods' `controller-revision-hash`).
    pub stable_revision: String,
}

/// The DaemonSet now, as the machine decides on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetObservation {
    /// `spec.template` now.
    pub template: Value,
    /// `spec.updateStrategy` now.
    pub strategy: Value,
    /// `status.observedGeneration >= metadata.generation`.
    pub caught_up: bool,
    /// The hash of the template now (the newest ControllerRevision's).
    pub template_revision: String,
    /// Its pods by node.
    pub nodes: BTreeMap<String, Option<DaemonPod>>,
}

/// Where the canary is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "goal", rename_all = "camelCase")]
pub enum DaemonSetGoal {
    /// The canary on exactly these nodes (recorded before their pods are deleted).
    Hold {
        /// The canary nodes.
        nodes: Vec<String>,
    },
    /// The canary template with the DaemonSet's own strategy: its own rollout finishes.
    PromoteFull,
    /// Every pod back on the stable revision, the DaemonSet's own strategy back.
    Abort,
}

/// One write of the DaemonSet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetChange {
    /// The new `spec.template`, when it changes.
    pub template: Option<Value>,
    /// `spec.updateStrategy`, every field.
    pub strategy: Value,
    /// What the change does, for people and dry runs.
    pub summary: String,
}

/// What the machine waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum DaemonSetWaiting {
    /// The controller has not observed the latest spec yet.
    ControllerToObserve,
    /// Pods are being replaced: `on_target` of `wanted` nodes run the revision wanted.
    Replacing {
        /// Nodes on the wanted revision.
        on_target: usize,
        /// Nodes wanted on it.
        wanted: usize,
    },
}

/// The machine's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum DaemonSetDecision {
    /// Make this one write.
    Apply(DaemonSetChange),
    /// Delete the pods of these nodes: the controller recreates each from the template now.
    DeletePods {
        /// The nodes.
        nodes: Vec<String>,
        /// Why, for people and dry runs.
        summary: String,
    },
    /// Wait for the controller.
    Wait(DaemonSetWaiting),
    /// The goal is reached.
    Reached,
    /// The template is neither the recorded original nor the canary's: a person must decide.
    TemplateChangedElsewhere,
}

/// The strategy that brakes a DaemonSet: no pod is replaced until deleted.
pub fn braked_strategy() -> Value {
    json!({"type": "OnDelete"})
}

/// Decides the next step towards `goal`.
///
/// ```
/// use std::collections::BTreeMap;
/// use canary_core::kind_machines::daemonset::*;
/// use serde_json::json;
///
/// let intent = DaemonSetIntent {
///     original_template: json!({"spec": {"containers": [{"name": "a", "image": "a:1"}]}}),
///     canary_template: json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
///     original_strategy: json!({"type": "RollingUpdate"}),
///     stable_revision: "h1".into(),
/// };
/// let observed = DaemonSetObservation {
///     template: intent.original_template.clone(),
///     strategy: intent.original_strategy.clone(),
///     caught_up: true,
///     template_revision: "h1".into(),
///     nodes: BTreeMap::new(),
/// };
/// let goal = DaemonSetGoal::Hold { nodes: vec!["n1".into()] };
/// let DaemonSetDecision::Apply(change) = decide(&intent, &observed, &goal) else { panic!() };
/// assert_eq!(change.strategy, braked_strategy());
/// ```
pub fn decide(
    intent: &DaemonSetIntent,
    observed: &DaemonSetObservation,
    goal: &DaemonSetGoal,
) -> DaemonSetDecision {
    let on_original = observed.template == intent.original_template;
    let on_canary = observed.template == intent.canary_template;
    if !on_original && !on_canary {
        return DaemonSetDecision::TemplateChangedElsewhere;
    }
    let braked = braked_strategy();
    let apply = |template: &Value, strategy: &Value, summary: &str| {
        DaemonSetDecision::Apply(DaemonSetChange {
            template: (observed.template != *template).then(|| template.clone()),
            strategy: strategy.clone(),
            summary: summary.to_owned(),
        })
    };
    let wait_observed = || DaemonSetDecision::Wait(DaemonSetWaiting::ControllerToObserve);
    match goal {
        DaemonSetGoal::Hold { nodes } => {
            if !on_canary || observed.strategy != braked {
                return apply(
                    &intent.canary_template,
                    &braked,
                    "the canary template with updateStrategy OnDelete: no pod moves until deleted",
                );
            }
            if !observed.caught_up {
                return wait_observed();
            }
            let revision = &observed.template_revision;
            let deletions = canary_deletions(&observed.nodes, nodes, revision);
            if !deletions.is_empty() {
                return DaemonSetDecision::DeletePods {
                    summary: format!(
                        "the pod(s) of canary node(s) {} deleted: they come back from the canary template",
                        deletions.join(", ")
                    ),
                    nodes: deletions,
                };
            }
            replacing(observed, nodes.iter(), revision, false)
        }
        DaemonSetGoal::PromoteFull => {
            if !on_canary || observed.strategy != intent.original_strategy {
                return apply(
                    &intent.canary_template,
                    &intent.original_strategy,
                    "promote: the DaemonSet's own updateStrategy back with the canary template",
                );
            }
            if !observed.caught_up {
                return wait_observed();
            }
            if is_on_delete(&intent.original_strategy) {
                // The DaemonSet's own OnDelete: its pods update when someone deletes them.
                return DaemonSetDecision::Reached;
            }
            replacing(
                observed,
                observed.nodes.keys(),
                &observed.template_revision,
                true,
            )
        }
        DaemonSetGoal::Abort => {
            if !on_original {
                return apply(
                    &intent.original_template,
                    &braked,
                    "abort: the stable template back, still OnDelete so that the tool replaces the canary pods",
                );
            }
            if !observed.caught_up {
                return wait_observed();
            }
            let stable = &intent.stable_revision;
            let deletions = rollback_deletions(&observed.nodes, stable);
            if !deletions.is_empty() {
                if !is_on_delete(&observed.strategy) {
                    // The DaemonSet's own rolling update replaces them.
                    return replacing(observed, observed.nodes.keys(), stable, true);
                }
                return DaemonSetDecision::DeletePods {
                    summary: format!(
                        "abort: the canary pod(s) of node(s) {} deleted: they come back stable",
                        deletions.join(", ")
                    ),
                    nodes: deletions,
                };
            }
            if observed.strategy != intent.original_strategy {
                return apply(
                    &intent.original_template,
                    &intent.original_strategy,
                    "abort: every pod stable; the DaemonSet's own updateStrategy back",
                );
            }
            replacing(observed, observed.nodes.keys(), stable, true)
        }
    }
}

fn is_on_delete(strategy: &Value) -> bool {
    strategy["type"] == "OnDelete"
}

/// Reached once every node of `wanted` runs a pod of `revision` (Ready, if `ready`).
fn replacing<'a>(
    observed: &DaemonSetObservation,
    wanted: impl Iterator<Item = &'a String>,
    revision: &str,
    ready: bool,
) -> DaemonSetDecision {
    let wanted: Vec<&String> = wanted.collect();
    let on_target = wanted
        .iter()
        .filter(|node| {
            observed
                .nodes
                .get(**node)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.revision == revision && (p.ready || !ready))
        })
        .count();
    if on_target == wanted.len() {
        DaemonSetDecision::Reached
    } else {
        DaemonSetDecision::Wait(DaemonSetWaiting::Replacing {
            on_target,
            wanted: wanted.len(),
        })
    }
}

/// The canary's brake released under someone else's template (another version:
/// [`crate::kind_machines::foreign`]): the recorded updateStrategy back with their template
/// kept, so their version rolls out as the DaemonSet's own strategy says (under its own
/// `OnDelete`, when its pods are deleted). Reached then.
///
/// ```
/// use std::collections::BTreeMap;
/// use canary_core::kind_machines::daemonset::*;
/// use serde_json::json;
///
/// let intent = DaemonSetIntent {
///     original_template: json!({"image": "1"}), canary_template: json!({"image": "2"}),
///     original_strategy: json!({"type": "RollingUpdate"}), stable_revision: "h1".into(),
/// };
/// let observed = DaemonSetObservation {
///     template: json!({"image": "3"}), strategy: braked_strategy(), caught_up: true,
///     template_revision: "h3".into(), nodes: BTreeMap::new(),
/// };
/// let DaemonSetDecision::Apply(change) = hand_over(&intent, &observed) else { panic!() };
/// assert_eq!((change.template, change.strategy), (None, intent.original_strategy));
/// ```
pub fn hand_over(intent: &DaemonSetIntent, observed: &DaemonSetObservation) -> DaemonSetDecision {
    if observed.strategy != intent.original_strategy {
        return DaemonSetDecision::Apply(DaemonSetChange {
            template: None,
            strategy: intent.original_strategy.clone(),
            summary: "someone else's template kept; the DaemonSet's own updateStrategy back: their version \
                      rolls out as it says"
                .to_owned(),
        });
    }
    DaemonSetDecision::Reached
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::rollout_math::DaemonSetModel;

    const OLD: &str = "h-old";
    const NEW: &str = "h-new";

    fn template(image: &str) -> Value {
        json!({"spec": {"containers": [{"name": "agent", "image": image}]}})
    }

    /// The machine driven against the `OnDelete` model; under the DaemonSet's own
    /// `RollingUpdate` this stand-in replaces every pod off the template at once (the real
    /// rolling update is driven in `canary-kube/tests/kinds_model.rs`).
    struct Cluster {
        model: DaemonSetModel,
        template: Value,
        strategy: Value,
        intent: DaemonSetIntent,
    }

    impl Cluster {
        fn new(nodes: usize, strategy: Value) -> Self {
            let pod = Some(DaemonPod {
                revision: OLD.into(),
                ready: true,
                finished: false,
            });
            Self {
                model: DaemonSetModel {
                    update_revision: OLD.into(),
                    nodes: (0..nodes).map(|i| (format!("n{i}"), pod.clone())).collect(),
                },
                template: template("a:1"),
                strategy: strategy.clone(),
                intent: DaemonSetIntent {
                    original_template: template("a:1"),
                    canary_template: template("a:2"),
                    original_strategy: strategy,
                    stable_revision: OLD.into(),
                },
            }
        }

        fn observe(&self) -> DaemonSetObservation {
            DaemonSetObservation {
                template: self.template.clone(),
                strategy: self.strategy.clone(),
                caught_up: true,
                template_revision: self.model.update_revision.clone(),
                nodes: self.model.nodes.clone(),
            }
        }

        fn settle(&mut self) {
            if !is_on_delete(&self.strategy) {
                let revision = self.model.update_revision.clone();
                for pod in self.model.nodes.values_mut() {
                    if pod.as_ref().is_some_and(|p| p.revision != revision) {
                        *pod = None;
                    }
                }
            }
            self.model.settle(|_| true);
        }

        fn drive(&mut self, goal: &DaemonSetGoal) -> Vec<DaemonSetDecision> {
            let mut taken = Vec::new();
            for _ in 0..20 {
                self.settle();
                let decision = decide(&self.intent, &self.observe(), goal);
                taken.push(decision.clone());
                match decision {
                    DaemonSetDecision::Apply(change) => {
                        if let Some(t) = change.template {
                            self.template = t;
                            self.model.update_revision =
                                if self.template == self.intent.original_template {
                                    OLD
                                } else {
                                    NEW
                                }
                                .into();
                        }
                        self.strategy = change.strategy;
                    }
                    DaemonSetDecision::DeletePods { nodes, .. } => {
                        for node in nodes {
                            self.model.nodes.insert(node, None);
                        }
                    }
                    _ => return taken,
                }
            }
            panic!("no end: {taken:?}");
        }
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Hold on two chosen nodes; a node joins; abort: every pod stable, the own strategy back.
    #[test]
    fn a_canary_of_chosen_nodes_holds_and_aborts_to_the_own_strategy() {
        let rolling =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
        let mut cluster = Cluster::new(5, rolling.clone());
        let hold = DaemonSetGoal::Hold {
            nodes: vec!["n1".into(), "n3".into()],
        };
        assert_eq!(
            cluster.drive(&hold).last(),
            Some(&DaemonSetDecision::Reached)
        );
        assert_eq!(cluster.model.nodes_on(NEW), nodes(&["n1", "n3"]));
        assert_eq!(cluster.strategy, braked_strategy());
        cluster.model.nodes.insert("n9".into(), None);
        assert_eq!(
            cluster.drive(&hold).last(),
            Some(&DaemonSetDecision::Reached)
        );
        assert_eq!(
            cluster.model.nodes_on(NEW),
            nodes(&["n1", "n3", "n9"]),
            "a joining node"
        );
        let taken = cluster.drive(&DaemonSetGoal::Abort);
        assert_eq!(taken.last(), Some(&DaemonSetDecision::Reached), "{taken:?}");
        assert_eq!(cluster.model.nodes_on(OLD).len(), 6);
        assert_eq!(
            (&cluster.template, &cluster.strategy),
            (&template("a:1"), &rolling)
        );
    }

    /// Promote hands the rest to the DaemonSet's own strategy; under the user's own
    /// `OnDelete` it is reached once written (their pods update when they delete them).
    #[test]
    fn promote_hands_the_rest_to_the_own_strategy() {
        for (strategy, all_new) in [
            (json!({"type": "RollingUpdate"}), true),
            (braked_strategy(), false),
        ] {
            let mut cluster = Cluster::new(4, strategy.clone());
            cluster.drive(&DaemonSetGoal::Hold {
                nodes: vec!["n0".into()],
            });
            assert_eq!(
                cluster.drive(&DaemonSetGoal::PromoteFull).last(),
                Some(&DaemonSetDecision::Reached)
            );
            assert_eq!(
                cluster.model.nodes_on(NEW).len() == 4,
                all_new,
                "{strategy}"
            );
            assert_eq!(cluster.strategy, strategy);
            // An abort under the user's own OnDelete still takes the canary pods back.
            if !all_new {
                assert_eq!(
                    cluster.drive(&DaemonSetGoal::Abort).last(),
                    Some(&DaemonSetDecision::Reached)
                );
                assert_eq!(cluster.model.nodes_on(OLD).len(), 4);
            }
        }
    }

    #[test]
    fn a_foreign_template_stops_the_machine() {
        let mut cluster = Cluster::new(2, json!({"type": "RollingUpdate"}));
        cluster.template = template("a:3");
        assert_eq!(
            decide(&cluster.intent, &cluster.observe(), &DaemonSetGoal::Abort),
            DaemonSetDecision::TemplateChangedElsewhere
        );
    }
}
