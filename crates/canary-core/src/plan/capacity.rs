//! Node capacity: whether the cluster has room for the canary's extra pods.

use serde::{Deserialize, Serialize};

use super::*;

/// What one schedulable node has and what its pods already request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    /// Node name.
    pub name: String,
    /// `status.allocatable` CPU and memory.
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allocatable_pods: i64,
    /// Requests of the pods bound to the node that are not finished.
    pub requested: Resources,
    /// Pods bound to the node that are not finished.
    pub pods: i64,
}

impl NodeCapacity {
    /// How many more pods requesting `per_pod` this node can take.
    fn room_for(&self, per_pod: Resources) -> i64 {
        let free_cpu = self.allocatable.cpu_millis - self.requested.cpu_millis;
        let free_memory = self.allocatable.memory_bytes - self.requested.memory_bytes;
        let by = |free: i64, each: i64| {
            if each <= 0 {
                i64::MAX
            } else {
                (free / each).max(0)
            }
        };
        by(free_cpu, per_pod.cpu_millis)
            .min(by(free_memory, per_pod.memory_bytes))
            .min((self.allocatable_pods - self.pods).max(0))
    }
}

/// What the planner knows about the cluster's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ClusterCapacity {
    /// Planning without a cluster.
    Offline,
    /// The nodes could not be read; `reason` says why (e.g. RBAC forbids listing nodes).
    Unavailable {
        /// Why the capacity is unknown.
        reason: String,
    },
    /// Schedulable nodes with their free capacity.
    Nodes {
        /// The nodes new pods could go to.
        nodes: Vec<NodeCapacity>,
    },
}

/// Whether the cluster has room for a canary's extra pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "status"
)]
pub enum CapacityVerdict {
    /// The canary adds no pods (replace mode).
    NoExtraPods,
    /// The free allocatable capacity of the nodes holds every extra pod.
    Fits {
        /// Extra pods.
        extra_pods: i32,
    },
    /// Only `fitting` of `extra_pods` fit: the cluster autoscaler would have to add nodes,
    /// or the rest stay Pending.
    DoesNotFit {
        /// Extra pods.
        extra_pods: i32,
        /// How many of them the free capacity holds.
        fitting: i32,
    },
    /// The capacity was not checked.
    NotChecked {
        /// Why not.
        reason: String,
    },
}

impl std::fmt::Display for CapacityVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoExtraPods => f.write_str("no extra pods"),
            Self::Fits { extra_pods } => {
                write!(f, "free capacity holds the {extra_pods} extra pod(s)")
            }
            Self::DoesNotFit {
                extra_pods,
                fitting,
            } => write!(
                f,
                "free capacity holds only {fitting} of {extra_pods} extra pod(s): the cluster autoscaler would have to add nodes (a cost)"
            ),
            Self::NotChecked { reason } => write!(f, "not checked: {reason}"),
        }
    }
}

/// Places `extra_pods` pods requesting `per_pod` each on the nodes' free allocatable capacity
/// (`allocatable - requests of pods already bound`), as many per node as fit. Taints,
/// affinity and topology spread are not considered, so a `Fits` is necessary, not sufficient.
pub fn check_capacity(
    cluster: &ClusterCapacity,
    per_pod: Option<Resources>,
    extra_pods: i32,
) -> CapacityVerdict {
    if extra_pods <= 0 {
        return CapacityVerdict::NoExtraPods;
    }
    let nodes = match cluster {
        ClusterCapacity::Offline => {
            return CapacityVerdict::NotChecked {
                reason: "offline plan, no cluster to look at".to_owned(),
            };
        }
        ClusterCapacity::Unavailable { reason } => {
            return CapacityVerdict::NotChecked {
                reason: reason.clone(),
            };
        }
        ClusterCapacity::Nodes { nodes } => nodes,
    };
    let per_pod = per_pod.unwrap_or_default();
    let room: i64 = nodes
        .iter()
        .map(|node| node.room_for(per_pod))
        .fold(0i64, i64::saturating_add);
    let fitting = i32::try_from(room.min(i64::from(extra_pods))).unwrap_or(extra_pods);
    if fitting >= extra_pods {
        CapacityVerdict::Fits { extra_pods }
    } else {
        CapacityVerdict::DoesNotFit {
            extra_pods,
            fitting,
        }
    }
}
