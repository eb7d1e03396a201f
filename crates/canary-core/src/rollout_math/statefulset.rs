//! The StatefulSet controller's update arithmetic, and the canary it allows: `partition =
//! replicas - k` updates exactly the k highest ordinals.
//!
//! Modelled on kubernetes/kubernetes v1.36 `pkg/controller/statefulset/stateful_set_control.go`
//! (`updateStatefulSet`, `processReplica`, `completeRollingUpdate`) and
//! `stateful_set_utils.go` (`newVersionedStatefulSetPod`, `isUnavailable`), with the
//! `MaxUnavailableStatefulSet` gate off (its default in v1.36, beta): at most one pod is
//! replaced at a time. `crates/canary-kube/tests/kinds_model.rs` checks [`StatefulSetModel`]
//! against the real controller; docs/ARCHITECTURE.md ("StatefulSet and DaemonSet controllers:
//! measured") has the facts it rests on.
//!
//! What the model says, and the canary relies on:
//! - with `partition = replicas - k` a new template reaches exactly the ordinals
//!   `replicas-k .. replicas`, highest first, and no other pod ever;
//! - a pod below the partition is (re)created on the current revision, a pod at or above it on
//!   the update revision (so a deleted stable pod comes back stable, a deleted canary pod comes
//!   back canary, and a scale-up adds canary pods unless the partition grows with it);
//! - the controller never moves a pod *below* the partition, whatever its revision: a
//!   partition raised over a canary pod leaves it a canary until it is deleted;
//! - under `OrderedReady` a pod that is not Running and Ready blocks everything after it, the
//!   rollback of that very pod included (the "forced rollback" of the Kubernetes docs):
//!   [`forced_rollback_deletions`] names the pods an abort must delete.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CanaryMode, CanarySize, RolloutMathError, resolve_canary};

/// `spec.podManagementPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodManagementPolicy {
    /// One pod at a time, each waiting for its predecessors to be Running and Ready (the
    /// default).
    OrderedReady,
    /// Pods created and deleted without waiting for one another.
    Parallel,
}

impl PodManagementPolicy {
    /// The policy as the API spells it (`None`: the default, `OrderedReady`).
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Parallel") => Self::Parallel,
            _ => Self::OrderedReady,
        }
    }
}

/// The health of a StatefulSet pod, as the controller distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrdinalHealth {
    /// Running and Ready (and Available: the canary sets no minReadySeconds of its own).
    Ready,
    /// Created but not Running and Ready (Pending, crash-looping, failing its probe).
    NotReady,
    /// Being deleted.
    Terminating,
}

/// One pod of a StatefulSet: its revision (the `controller-revision-hash` label) and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdinalPod {
    /// The ControllerRevision name the pod was created from.
    pub revision: String,
    /// Its health.
    pub health: OrdinalHealth,
}

/// A write of the StatefulSet controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatefulSetWrite {
    /// Created the pod of `ordinal` from `revision`.
    Create {
        /// The pod's ordinal.
        ordinal: i32,
        /// The revision it was created from.
        revision: String,
    },
    /// Deleted the pod of `ordinal` (to replace it, or because it failed or was condemned).
    Delete {
        /// The pod's ordinal.
        ordinal: i32,
    },
}

/// A StatefulSet as its controller sees it, able to run the controller's syncs one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatefulSetModel {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.updateStrategy.rollingUpdate.partition` (0 when unset).
    pub partition: i32,
    /// `spec.updateStrategy.type == OnDelete`.
    pub on_delete: bool,
    /// `spec.podManagementPolicy`.
    pub policy: PodManagementPolicy,
    /// `status.currentRevision`: the revision pods below the partition are created from.
    pub current_revision: String,
    /// `status.updateRevision`: the revision of the template now.
    pub update_revision: String,
    /// The pods there are, by ordinal.
    pub pods: BTreeMap<i32, OrdinalPod>,
}

impl StatefulSetModel {
    /// A settled StatefulSet of `replicas` Ready pods, all on `revision`, with `partition`.
    pub fn settled(
        replicas: i32,
        partition: i32,
        policy: PodManagementPolicy,
        revision: &str,
    ) -> Self {
        Self {
            replicas,
            partition,
            on_delete: false,
            policy,
            current_revision: revision.to_owned(),
            update_revision: revision.to_owned(),
            pods: (0..replicas)
                .map(|ordinal| {
                    (
                        ordinal,
                        OrdinalPod {
                            revision: revision.to_owned(),
                            health: OrdinalHealth::Ready,
                        },
                    )
                })
                .collect(),
        }
    }

    /// One sync of the controller (`updateStatefulSet`): deletes failed pods, creates the
    /// missing ones (under `OrderedReady` one, then returns), waits for pods that are not
    /// Ready under `OrderedReady`, deletes condemned pods (ordinals at or above `replicas`,
    /// highest first), then, for a rolling update, deletes the highest pod at or above the
    /// partition that is not on the update revision, or waits for the highest one that is
    /// not Ready. Returns the writes, applied to the model (a created pod is `NotReady`, a
    /// deleted one `Terminating`); empty when the controller waits.
    pub fn sync(&mut self) -> Vec<StatefulSetWrite> {
        let monotonic = self.policy == PodManagementPolicy::OrderedReady;
        let mut writes = Vec::new();
        for ordinal in 0..self.replicas {
            match self.pods.get(&ordinal).map(|p| p.health) {
                None => {
                    let revision = if !self.on_delete && ordinal < self.partition {
                        self.current_revision.clone()
                    } else {
                        self.update_revision.clone()
                    };
                    self.pods.insert(
                        ordinal,
                        OrdinalPod {
                            revision: revision.clone(),
                            health: OrdinalHealth::NotReady,
                        },
                    );
                    writes.push(StatefulSetWrite::Create { ordinal, revision });
                    if monotonic {
                        return writes;
                    }
                }
                Some(OrdinalHealth::Ready) => {}
                Some(_) if monotonic => return writes,
                Some(_) => {}
            }
        }
        let condemned: Vec<i32> = self
            .pods
            .range(self.replicas..)
            .rev()
            .map(|(ordinal, _)| *ordinal)
            .collect();
        for ordinal in condemned {
            let pod = self.pods.get_mut(&ordinal).expect("listed");
            if pod.health == OrdinalHealth::Terminating {
                if monotonic {
                    return writes;
                }
                continue;
            }
            pod.health = OrdinalHealth::Terminating;
            writes.push(StatefulSetWrite::Delete { ordinal });
            if monotonic {
                return writes;
            }
        }
        // Under `Parallel` creations and deletions do not end the sync: the rolling update
        // below runs in the same pass (a pod just created counts as not Ready there).
        if self.on_delete {
            return writes;
        }
        for ordinal in (self.partition.max(0)..self.replicas).rev() {
            let Some(pod) = self.pods.get_mut(&ordinal) else {
                return writes;
            };
            if pod.revision != self.update_revision && pod.health != OrdinalHealth::Terminating {
                pod.health = OrdinalHealth::Terminating;
                writes.push(StatefulSetWrite::Delete { ordinal });
                return writes;
            }
            if pod.health != OrdinalHealth::Ready {
                return writes;
            }
        }
        self.complete_rolling_update();
        writes
    }

    /// `completeRollingUpdate`: once every pod is on the update revision and Ready, the
    /// update revision becomes the current one.
    fn complete_rolling_update(&mut self) {
        let all_updated = (0..self.replicas).all(|ordinal| {
            self.pods.get(&ordinal).is_some_and(|p| {
                p.revision == self.update_revision && p.health == OrdinalHealth::Ready
            })
        });
        if !self.on_delete && all_updated && self.pods.len() as i32 == self.replicas {
            self.current_revision = self.update_revision.clone();
        }
    }

    /// Runs syncs until the controller waits with nothing left to do: after each sync the
    /// deleted pods are gone and the created ones become Ready when `becomes_ready` says
    /// their revision does (a broken canary never does). Returns every write in order.
    pub fn settle(&mut self, becomes_ready: impl Fn(&str) -> bool) -> Vec<StatefulSetWrite> {
        let mut all = Vec::new();
        // Bounded: every pass either writes or ends; a pass deletes or creates one pod per
        // ordinal at most, so a few passes per ordinal always suffice.
        for _ in 0..(4 * (self.replicas.max(self.pods.len() as i32) + 2)) {
            let writes = self.sync();
            if writes.is_empty() {
                break;
            }
            self.pods
                .retain(|_, p| p.health != OrdinalHealth::Terminating);
            for pod in self.pods.values_mut() {
                if pod.health == OrdinalHealth::NotReady && becomes_ready(&pod.revision) {
                    pod.health = OrdinalHealth::Ready;
                }
            }
            all.extend(writes);
        }
        all
    }

    /// The ordinals whose pod is on `revision`, lowest first.
    pub fn ordinals_on(&self, revision: &str) -> Vec<i32> {
        self.pods
            .iter()
            .filter(|(_, p)| p.revision == revision && p.health != OrdinalHealth::Terminating)
            .map(|(ordinal, _)| *ordinal)
            .collect()
    }
}

/// The ordinals a canary of `pods` pods runs on: the `pods` highest of `replicas`.
pub fn canary_ordinals(replicas: i32, pods: i32) -> Vec<i32> {
    ((replicas - pods).max(0)..replicas).collect()
}

/// The partition that holds a canary of `pods` pods: `replicas - pods`.
pub fn canary_partition(replicas: i32, pods: i32) -> i32 {
    replicas - pods
}

/// The pods an abort deletes once the StatefulSet's template and partition are back and the
/// controller has seen them (`updateRevision` = the stable revision): under `OrderedReady`
/// the pods on another revision that are not Ready, which the controller waits for forever
/// instead of replacing (Kubernetes' "forced rollback"). Under `Parallel` the controller
/// replaces them itself: none. Lowest ordinal first; deleting a pod never touches its
/// PersistentVolumeClaims.
pub fn forced_rollback_deletions(
    policy: PodManagementPolicy,
    pods: &BTreeMap<i32, OrdinalPod>,
    stable_revision: &str,
) -> Vec<i32> {
    if policy == PodManagementPolicy::Parallel {
        return Vec::new();
    }
    pods.iter()
        .filter(|(_, p)| p.revision != stable_revision && p.health == OrdinalHealth::NotReady)
        .map(|(ordinal, _)| *ordinal)
        .collect()
}

/// What of a StatefulSet a canary depends on, read from its spec and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatefulSetFacts {
    /// The StatefulSet's name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.updateStrategy.type == OnDelete`.
    pub on_delete: bool,
    /// `spec.updateStrategy.rollingUpdate.partition` (0 when unset).
    pub partition: i32,
    /// `status.currentRevision`.
    pub current_revision: String,
    /// `status.updateRevision`.
    pub update_revision: String,
    /// `status.observedGeneration >= metadata.generation`.
    pub caught_up: bool,
}

/// Why a StatefulSet cannot take a canary now, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatefulSetRefusal {
    /// `updateStrategy: OnDelete`: the controller replaces no pod, so no partition holds.
    #[error(
        "sts/{name} has updateStrategy OnDelete: its controller updates no pod by itself, so a partition cannot \
         hold a canary; switch it to RollingUpdate (kubectl patch sts/{name} -p '{{\"spec\":{{\"updateStrategy\":{{\"type\":\"RollingUpdate\"}}}}}}') and start again"
    )]
    OnDelete {
        /// The StatefulSet.
        name: String,
    },
    /// A partition someone else set: a staged update of theirs, or a canary by hand.
    #[error(
        "sts/{name} already has partition {partition}: someone is staging an update by hand; finish it (set the \
         partition back to 0 and let the rollout end) and start again"
    )]
    PartitionSet {
        /// The StatefulSet.
        name: String,
        /// The partition found.
        partition: i32,
    },
    /// A rollout still in progress (`currentRevision` differs from `updateRevision`).
    #[error(
        "sts/{name} is still rolling out (currentRevision {current} is not updateRevision {update}): wait for \
         `kubectl rollout status sts/{name}` to finish and start again"
    )]
    RollingOut {
        /// The StatefulSet.
        name: String,
        /// `status.currentRevision`.
        current: String,
        /// `status.updateRevision`.
        update: String,
    },
    /// The controller has not seen the latest spec yet.
    #[error(
        "sts/{name}'s controller has not yet seen its latest change (observedGeneration behind generation): \
         wait a moment and start again"
    )]
    NotObserved {
        /// The StatefulSet.
        name: String,
    },
    /// A size that leaves no stable pod, or no pod at all.
    #[error("sts/{name}: {source}")]
    Size {
        /// The StatefulSet.
        name: String,
        /// What the sizing said.
        source: RolloutMathError,
    },
}

/// A StatefulSet canary's size and its brake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatefulSetCanary {
    /// Canary pods.
    pub pods: i32,
    /// The partition that holds them.
    pub partition: i32,
    /// Their ordinals, lowest first.
    pub ordinals: Vec<i32>,
}

impl fmt::Display for StatefulSetCanary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pod(s) (ordinals {}) by partition {}",
            self.pods,
            self.ordinals
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.partition
        )
    }
}

/// Plans the canary of `size` on a StatefulSet: refused when the controller would not hold
/// it exactly (OnDelete, a partition already set by someone, a rollout in progress, a spec
/// not yet observed) or when the size leaves no stable pod. A StatefulSet replaces pods in
/// place, so a share is a share of its pods (`CanaryMode::Replace`'s arithmetic).
///
/// ```
/// use canary_core::rollout_math::{CanarySize, StatefulSetFacts, plan_statefulset_canary};
///
/// let facts = StatefulSetFacts {
///     name: "db".into(), replicas: 5, on_delete: false, partition: 0,
///     current_revision: "db-1".into(), update_revision: "db-1".into(), caught_up: true,
/// };
/// let canary = plan_statefulset_canary(&facts, CanarySize::Pods(2)).unwrap();
/// assert_eq!((canary.partition, canary.ordinals), (3, vec![3, 4]));
/// assert!(plan_statefulset_canary(&facts, CanarySize::Pods(5)).is_err());
/// ```
pub fn plan_statefulset_canary(
    facts: &StatefulSetFacts,
    size: CanarySize,
) -> Result<StatefulSetCanary, StatefulSetRefusal> {
    let name = facts.name.clone();
    if facts.on_delete {
        return Err(StatefulSetRefusal::OnDelete { name });
    }
    if facts.partition != 0 {
        return Err(StatefulSetRefusal::PartitionSet {
            name,
            partition: facts.partition,
        });
    }
    if !facts.caught_up {
        return Err(StatefulSetRefusal::NotObserved { name });
    }
    if facts.current_revision != facts.update_revision {
        return Err(StatefulSetRefusal::RollingOut {
            name,
            current: facts.current_revision.clone(),
            update: facts.update_revision.clone(),
        });
    }
    let canary = resolve_canary(size, facts.replicas, CanaryMode::Replace)
        .map_err(|source| StatefulSetRefusal::Size { name, source })?;
    Ok(StatefulSetCanary {
        pods: canary.pods,
        partition: canary_partition(facts.replicas, canary.pods),
        ordinals: canary_ordinals(facts.replicas, canary.pods),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "db-old";
    const NEW: &str = "db-new";

    fn ready(_: &str) -> bool {
        true
    }

    fn broken(revision: &str) -> bool {
        revision != NEW
    }

    /// A settled StatefulSet given a new template under `partition`.
    fn updated(replicas: i32, partition: i32, policy: PodManagementPolicy) -> StatefulSetModel {
        let mut model = StatefulSetModel::settled(replicas, partition, policy, OLD);
        model.update_revision = NEW.to_owned();
        model
    }

    fn deletions(writes: &[StatefulSetWrite]) -> Vec<i32> {
        writes
            .iter()
            .filter_map(|w| match w {
                StatefulSetWrite::Delete { ordinal } => Some(*ordinal),
                StatefulSetWrite::Create { .. } => None,
            })
            .collect()
    }

    /// partition = replicas - k updates exactly the k highest ordinals, highest first, with
    /// either policy, and the controller then stops by itself.
    #[test]
    fn a_partition_updates_exactly_the_highest_ordinals_highest_first() {
        for policy in [
            PodManagementPolicy::OrderedReady,
            PodManagementPolicy::Parallel,
        ] {
            for (replicas, k) in [(2, 1), (3, 1), (5, 2), (10, 3), (4, 3)] {
                let mut model = updated(replicas, canary_partition(replicas, k), policy);
                let writes = model.settle(ready);
                let expected: Vec<i32> = canary_ordinals(replicas, k).into_iter().rev().collect();
                assert_eq!(deletions(&writes), expected, "{policy:?} {replicas}/{k}");
                assert_eq!(model.ordinals_on(NEW), canary_ordinals(replicas, k));
                assert_eq!(model.current_revision, OLD, "held: not complete");
                assert!(model.sync().is_empty(), "at rest");
            }
        }
    }

    /// The cases where pods are (re)created: by the partition, not by who deleted them.
    #[test]
    fn a_pod_comes_back_on_the_revision_its_ordinal_has_under_the_partition() {
        struct Case {
            what: &'static str,
            delete: Vec<i32>,
            replicas: i32,
            canary_after: Vec<i32>,
        }
        let cases = [
            Case {
                what: "a stable pod deleted comes back stable",
                delete: vec![1],
                replicas: 5,
                canary_after: vec![3, 4],
            },
            Case {
                what: "a canary pod deleted comes back canary",
                delete: vec![4],
                replicas: 5,
                canary_after: vec![3, 4],
            },
            Case {
                what: "a scale-up under the same partition adds canary pods",
                delete: vec![],
                replicas: 7,
                canary_after: vec![3, 4, 5, 6],
            },
            Case {
                what: "a scale-down condemns the canary's ordinals first",
                delete: vec![],
                replicas: 4,
                canary_after: vec![3],
            },
        ];
        for case in cases {
            let mut model = updated(5, 3, PodManagementPolicy::OrderedReady);
            model.settle(ready);
            for ordinal in &case.delete {
                model.pods.remove(ordinal);
            }
            model.replicas = case.replicas;
            model.settle(ready);
            assert_eq!(model.ordinals_on(NEW), case.canary_after, "{}", case.what);
        }
    }

    /// A partition raised over a canary pod leaves it: the controller never moves a pod
    /// below the partition.
    #[test]
    fn a_raised_partition_leaves_the_canary_pods_below_it() {
        let mut model = updated(5, 3, PodManagementPolicy::OrderedReady);
        model.settle(ready);
        model.partition = 4;
        assert!(model.settle(ready).is_empty());
        assert_eq!(model.ordinals_on(NEW), [3, 4]);
    }

    /// The forced-rollback trap and its way out: under OrderedReady a reverted template
    /// leaves a broken canary pod for ever; deleting the pods `forced_rollback_deletions`
    /// names gets every pod back. Under Parallel the controller does it alone.
    #[test]
    fn an_abort_gets_every_pod_back_only_with_the_forced_rollback_deletions() {
        for policy in [
            PodManagementPolicy::OrderedReady,
            PodManagementPolicy::Parallel,
        ] {
            for (replicas, k) in [(3, 1), (5, 2), (4, 3)] {
                let mut model = updated(replicas, canary_partition(replicas, k), policy);
                model.settle(broken);
                let canary = model.ordinals_on(NEW);
                assert!(!canary.is_empty() && canary.len() <= k as usize);
                // Abort: template and partition back in one write.
                model.update_revision = OLD.to_owned();
                model.partition = 0;
                model.settle(broken);
                let left = model.ordinals_on(NEW);
                let deletions = forced_rollback_deletions(policy, &model.pods, OLD);
                match policy {
                    PodManagementPolicy::OrderedReady => {
                        assert!(!left.is_empty(), "OrderedReady never replaces it");
                        assert_eq!(deletions, left, "{replicas}/{k}");
                    }
                    PodManagementPolicy::Parallel => {
                        assert!(left.is_empty(), "Parallel replaces it");
                        assert!(deletions.is_empty());
                    }
                }
                for ordinal in deletions {
                    model.pods.remove(&ordinal);
                }
                model.settle(broken);
                assert_eq!(
                    model.ordinals_on(OLD),
                    (0..replicas).collect::<Vec<_>>(),
                    "{policy:?} {replicas}/{k}"
                );
            }
        }
    }

    fn facts() -> StatefulSetFacts {
        StatefulSetFacts {
            name: "db".into(),
            replicas: 5,
            on_delete: false,
            partition: 0,
            current_revision: OLD.into(),
            update_revision: OLD.into(),
            caught_up: true,
        }
    }

    /// Every refusal, and the plan of a share.
    #[test]
    fn a_statefulset_canary_is_planned_or_refused_with_what_to_do() {
        let plan = |f: StatefulSetFacts, size| plan_statefulset_canary(&f, size);
        let share = plan(facts(), CanarySize::Percent(40.0)).unwrap();
        assert_eq!(share.to_string(), "2 pod(s) (ordinals 3, 4) by partition 3");
        let refusals: [(StatefulSetFacts, CanarySize, &str); 6] = [
            (
                StatefulSetFacts {
                    on_delete: true,
                    ..facts()
                },
                CanarySize::Pods(1),
                "updateStrategy OnDelete",
            ),
            (
                StatefulSetFacts {
                    partition: 2,
                    ..facts()
                },
                CanarySize::Pods(1),
                "already has partition 2",
            ),
            (
                StatefulSetFacts {
                    update_revision: NEW.into(),
                    ..facts()
                },
                CanarySize::Pods(1),
                "still rolling out",
            ),
            (
                StatefulSetFacts {
                    caught_up: false,
                    ..facts()
                },
                CanarySize::Pods(1),
                "has not yet seen",
            ),
            (
                facts(),
                CanarySize::Pods(5),
                "keeps at least one stable pod",
            ),
            (
                StatefulSetFacts {
                    replicas: 0,
                    ..facts()
                },
                CanarySize::Pods(1),
                "0 replicas",
            ),
        ];
        for (f, size, says) in refusals {
            let error = plan(f, size).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
            assert!(error.starts_with("sts/db"), "{error}");
        }
    }
}
