//! The controller's single steps: new and old ReplicaSet targets, proportional scaling,
//! the writes it makes, the brake's sequence.

use serde::{Deserialize, Serialize};

use super::*;

/// A Deployment in the middle of a rolling update, as the controller's arithmetic sees it:
/// all old ReplicaSets summed into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSnapshot {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The new ReplicaSet's `spec.replicas`.
    pub new_rs: i32,
    /// The new ReplicaSet's `status.availableReplicas`.
    pub new_available: i32,
    /// The old ReplicaSets' `spec.replicas`, summed.
    pub old_rs: i32,
    /// The old ReplicaSets' `status.availableReplicas`, summed.
    pub old_available: i32,
}

impl RolloutSnapshot {
    /// Pods of all ReplicaSets (`GetReplicaCountForReplicaSets` over all of them).
    pub fn total_pods(&self) -> i32 {
        self.new_rs + self.old_rs
    }

    /// Available pods of all ReplicaSets.
    pub fn available(&self) -> i32 {
        self.new_available + self.old_available
    }
}

/// `reconcileNewReplicaSet`: the size the controller gives the new ReplicaSet in its next
/// sync. Down to `replicas` if above; otherwise `NewRSNewReplicas`:
/// `new + min(N + maxSurge - total, N - new)`, unchanged when the total is already at
/// `N + maxSurge`.
pub fn new_rs_target(snapshot: &RolloutSnapshot, fenceposts: Fenceposts) -> i32 {
    let replicas = snapshot.replicas;
    if snapshot.new_rs >= replicas {
        return replicas;
    }
    new_rs_new_replicas(
        replicas,
        fenceposts.max_surge,
        snapshot.total_pods(),
        snapshot.new_rs,
    )
}

/// `NewRSNewReplicas` for the RollingUpdate strategy.
pub(super) fn new_rs_new_replicas(
    replicas: i32,
    max_surge: i32,
    total_pods: i32,
    new_rs: i32,
) -> i32 {
    let max_total_pods = replicas + max_surge;
    if total_pods >= max_total_pods {
        return new_rs;
    }
    let scale_up = (max_total_pods - total_pods).min(replicas - new_rs);
    new_rs + scale_up
}

/// `reconcileOldReplicaSets`: how many pods the old ReplicaSets lose in the controller's next
/// sync, when the new ReplicaSet is already at its target.
///
/// Nothing unless `total - (N - maxUnavailable) - (new - newAvailable) > 0`, i.e. old pods
/// only go as new pods become Available. Then unhealthy old pods go first (up to that
/// bound), then available ones down to `N - maxUnavailable` available pods (this second part
/// is not bounded by the first: it is the Go code's behaviour).
pub fn old_rs_max_scale_down(snapshot: &RolloutSnapshot, fenceposts: Fenceposts) -> i32 {
    let plan = old_scale_down_plan(snapshot, fenceposts);
    plan.cleanup + plan.scale_down
}

/// The two parts of an old-ReplicaSet scale-down, summed over old ReplicaSets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OldScaleDown {
    /// Unhealthy (not available) old pods removed (`cleanupUnhealthyReplicas`).
    pub(super) cleanup: i32,
    /// Available old pods removed (`scaleDownOldReplicaSetsForRollingUpdate`).
    pub(super) scale_down: i32,
}

pub(super) fn old_scale_down_plan(
    snapshot: &RolloutSnapshot,
    fenceposts: Fenceposts,
) -> OldScaleDown {
    let none = OldScaleDown {
        cleanup: 0,
        scale_down: 0,
    };
    if snapshot.old_rs == 0 {
        return none;
    }
    let min_available = fenceposts.min_available(snapshot.replicas);
    let new_unavailable = snapshot.new_rs - snapshot.new_available;
    let max_scaled_down = snapshot.total_pods() - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return none;
    }
    let unhealthy_old = (snapshot.old_rs - snapshot.old_available).max(0);
    let cleanup = max_scaled_down.min(unhealthy_old);
    // The scale-down reads availability from the same (pre-cleanup) statuses.
    let available = snapshot.available();
    let scale_down = if available <= min_available {
        0
    } else {
        (available - min_available).min(snapshot.old_rs - cleanup)
    };
    OldScaleDown {
        cleanup,
        scale_down,
    }
}

/// One ReplicaSet owned by the Deployment, with what the controller reads from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetModel {
    /// A name, for reporting only.
    pub name: String,
    /// Creation order: larger is newer (`ReplicaSetsByCreationTimestamp`).
    pub created: u64,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// The `deployment.kubernetes.io/desired-replicas` annotation.
    pub desired_replicas: Option<i32>,
    /// The `deployment.kubernetes.io/max-replicas` annotation.
    pub max_replicas: Option<i32>,
}

/// The sizes [`proportional_scale`] gives the active ReplicaSets, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProportionalScale {
    /// The new `spec.replicas` of each ReplicaSet given, in the same order.
    pub sizes: Vec<i32>,
}

/// `scale()`'s proportional branch (`sync.go`): when `spec.replicas` or maxSurge changes while
/// more than one ReplicaSet has pods (a paused Deployment, or a scaling event mid-rollout),
/// the difference between `N + maxSurge` and the current total is spread over the active
/// ReplicaSets in proportion to their size, using each one's max-replicas annotation
/// (`GetReplicaSetProportion`, rounding half away from zero); the leftover goes to the
/// largest (on a tie, the newest when growing, the oldest when shrinking).
///
/// `replica_sets` are the active ones (replicas > 0); `status_replicas` is the Deployment's
/// `status.replicas`, the fallback for a missing annotation.
pub fn proportional_scale(
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    replica_sets: &[ReplicaSetModel],
) -> ProportionalScale {
    let current: i32 = replica_sets.iter().map(|rs| rs.replicas).sum();
    let allowed_size = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let to_add = allowed_size - current;
    let mut sizes: Vec<i32> = replica_sets.iter().map(|rs| rs.replicas).collect();
    if to_add == 0 || replica_sets.is_empty() {
        return ProportionalScale { sizes };
    }
    let mut order: Vec<usize> = (0..replica_sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&replica_sets[a], &replica_sets[b]);
        rb.replicas.cmp(&ra.replicas).then_with(|| {
            if to_add > 0 {
                // ReplicaSetsBySizeNewer: newer first on a tie.
                rb.created.cmp(&ra.created)
            } else {
                // ReplicaSetsBySizeOlder: older first on a tie.
                ra.created.cmp(&rb.created)
            }
        })
    });
    let mut added = 0;
    for &index in &order {
        let proportion = replica_set_proportion(
            &replica_sets[index],
            replicas,
            max_surge,
            status_replicas,
            to_add,
            added,
        );
        sizes[index] = replica_sets[index].replicas + proportion;
        added += proportion;
    }
    let largest = order[0];
    sizes[largest] = (sizes[largest] + to_add - added).max(0);
    ProportionalScale { sizes }
}

/// `GetReplicaSetProportion` with `getReplicaSetFraction`.
pub(super) fn replica_set_proportion(
    rs: &ReplicaSetModel,
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas == 0 {
        -rs.replicas
    } else {
        let max_replicas = i64::from(replicas + max_surge);
        let before = match rs.max_replicas {
            Some(value) if value != 0 => i64::from(value),
            _ => i64::from(status_replicas),
        };
        if before == 0 {
            0
        } else {
            // math.Round(a / b) for a >= 0, b > 0: half away from zero.
            let scaled = i64::from(rs.replicas) * max_replicas;
            saturate_i32((2 * scaled + before).div_euclid(2 * before)) - rs.replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// One write the Deployment controller makes to a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ControllerWrite {
    /// The new ReplicaSet is created with `replicas`.
    CreateNew {
        /// Its initial `spec.replicas`.
        replicas: i32,
    },
    /// The new ReplicaSet is scaled.
    ScaleNew {
        /// Size before.
        from: i32,
        /// Size after.
        to: i32,
    },
    /// An old ReplicaSet (index into [`DeploymentModel::old`]) is scaled.
    ScaleOld {
        /// Index into the model's old ReplicaSets.
        index: usize,
        /// Size before.
        from: i32,
        /// Size after.
        to: i32,
    },
}

impl ControllerWrite {
    /// The (old, new) sizes after this write, from the sizes before it (old ReplicaSets
    /// summed).
    pub fn apply_to(&self, (old_rs, new_rs): (i32, i32)) -> (i32, i32) {
        match *self {
            Self::CreateNew { replicas } => (old_rs, replicas),
            Self::ScaleNew { to, .. } => (old_rs, to),
            Self::ScaleOld { from, to, .. } => (old_rs + to - from, new_rs),
        }
    }
}

/// The (old, new) sizes the controller writes when the brake update for a canary of
/// `canary_pods` in `mode` meets a settled Deployment of `replicas`, starting with `(N, 0)`:
/// surge `(N,0) (N,k)`, replace `(N,0) (N-k,0) (N-k,k)`. No canary pod becomes available, so
/// this is where the rollout stops.
pub fn brake_sequence(replicas: i32, mode: CanaryMode, canary_pods: i32) -> Vec<(i32, i32)> {
    let mut model = DeploymentModel::settled(replicas, brake_strategy(mode, canary_pods));
    let mut sizes = vec![(replicas, 0)];
    let mut current = (replicas, 0);
    for write in model.rolling_until_quiescent() {
        current = write.apply_to(current);
        if sizes.last() != Some(&current) {
            sizes.push(current);
        }
    }
    sizes
}
