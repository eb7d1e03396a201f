//! The Deployment model: a whole native rollout step by step, as the controller runs it.

use serde::{Deserialize, Serialize};

use super::*;

/// A Deployment and its ReplicaSets as the controller sees them, able to run the controller's
/// syncs one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentModel {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Resolved maxSurge/maxUnavailable for `replicas`.
    pub fenceposts: Fenceposts,
    /// `status.replicas` (the fallback of proportional scaling).
    pub status_replicas: i32,
    /// Old ReplicaSets, in any order (their `created` fields order them).
    pub old: Vec<ReplicaSetModel>,
    /// The ReplicaSet whose template equals the Deployment's, if it exists yet.
    pub new: Option<ReplicaSetModel>,
}

impl DeploymentModel {
    /// A settled Deployment of `replicas` pods, all available, whose template was just
    /// changed: one old ReplicaSet with everything, no new one yet.
    pub fn settled(replicas: i32, fenceposts: Fenceposts) -> Self {
        Self {
            replicas,
            fenceposts,
            status_replicas: replicas,
            old: vec![ReplicaSetModel {
                name: "old".to_owned(),
                created: 0,
                replicas,
                available: replicas,
                desired_replicas: Some(replicas),
                max_replicas: Some(replicas + fenceposts.max_surge),
            }],
            new: None,
        }
    }

    /// The model summed into one old and one new ReplicaSet.
    pub fn snapshot(&self) -> RolloutSnapshot {
        let new = self.new.as_ref();
        RolloutSnapshot {
            replicas: self.replicas,
            new_rs: new.map_or(0, |rs| rs.replicas),
            new_available: new.map_or(0, |rs| rs.available),
            old_rs: self.old.iter().map(|rs| rs.replicas).sum(),
            old_available: self.old.iter().map(|rs| rs.available).sum(),
        }
    }

    /// One sync of an unpaused RollingUpdate Deployment without a scaling event
    /// (`rolloutRolling`): creates the new ReplicaSet if missing, then scales the new
    /// ReplicaSet up and returns, or else scales old ReplicaSets down. Returns the writes in
    /// order, already applied to the model; empty when the controller has nothing to do
    /// until a pod becomes available.
    ///
    /// After each write the model assumes the ReplicaSet controller has deleted the removed
    /// pods (available pods of a shrunk ReplicaSet are at most its size) before the next
    /// sync. The controller does not wait for that, but its guard
    /// `total - minAvailable - newUnavailable` stops it from acting on a stale status.
    pub fn rolling_sync(&mut self) -> Vec<ControllerWrite> {
        let mut writes = Vec::new();
        let replicas = self.replicas;
        let max_surge = self.fenceposts.max_surge;
        let max_replicas_annotation = replicas + max_surge;
        if self.new.is_none() {
            let old_total: i32 = self.old.iter().map(|rs| rs.replicas).sum();
            let initial = new_rs_new_replicas(replicas, max_surge, old_total, 0);
            let newest_old = self.old.iter().map(|rs| rs.created).max().unwrap_or(0);
            self.new = Some(ReplicaSetModel {
                name: "new".to_owned(),
                created: newest_old + 1,
                replicas: initial,
                available: 0,
                desired_replicas: Some(replicas),
                max_replicas: Some(max_replicas_annotation),
            });
            writes.push(ControllerWrite::CreateNew { replicas: initial });
        }

        let snapshot = self.snapshot();
        if let Some(new) = self.new.as_mut() {
            let target = new_rs_target(&snapshot, self.fenceposts);
            if target != new.replicas {
                writes.push(ControllerWrite::ScaleNew {
                    from: new.replicas,
                    to: target,
                });
                new.replicas = target;
                new.available = new.available.min(target);
                new.desired_replicas = Some(replicas);
                new.max_replicas = Some(max_replicas_annotation);
                return writes;
            }
        }

        let plan = old_scale_down_plan(&snapshot, self.fenceposts);
        let mut order: Vec<usize> = (0..self.old.len())
            .filter(|&i| self.old[i].replicas > 0)
            .collect();
        order.sort_by_key(|&i| self.old[i].created);
        let mut cleanup_left = plan.cleanup;
        let mut scale_down_left = plan.scale_down;
        // Cleanup first, oldest first, each old ReplicaSet only by its unhealthy pods.
        for &index in &order {
            let rs = &mut self.old[index];
            let unhealthy = rs.replicas - rs.available;
            let count = cleanup_left.min(unhealthy.max(0));
            if count > 0 {
                writes.push(ControllerWrite::ScaleOld {
                    index,
                    from: rs.replicas,
                    to: rs.replicas - count,
                });
                rs.replicas -= count;
                rs.desired_replicas = Some(replicas);
                rs.max_replicas = Some(max_replicas_annotation);
                cleanup_left -= count;
            }
        }
        // Then available pods, oldest ReplicaSet first.
        for &index in &order {
            let rs = &mut self.old[index];
            let count = scale_down_left.min(rs.replicas);
            if count > 0 {
                writes.push(ControllerWrite::ScaleOld {
                    index,
                    from: rs.replicas,
                    to: rs.replicas - count,
                });
                rs.replicas -= count;
                rs.available = rs.available.min(rs.replicas);
                rs.desired_replicas = Some(replicas);
                rs.max_replicas = Some(max_replicas_annotation);
                scale_down_left -= count;
            }
        }
        writes
    }

    /// `scale()` from `sync.go`: what the controller does while the Deployment is paused (and
    /// on a scaling event). One active ReplicaSet is scaled to `replicas`; a saturated new
    /// ReplicaSet makes old ones go to 0; otherwise [`proportional_scale`]. Returns the size
    /// changes, already applied.
    pub fn scale(&mut self) -> Vec<ControllerWrite> {
        let replicas = self.replicas;
        let max_replicas_annotation = replicas + self.fenceposts.max_surge;
        let mut writes = Vec::new();
        let active_old: Vec<usize> = (0..self.old.len())
            .filter(|&i| self.old[i].replicas > 0)
            .collect();
        let new_active = self.new.as_ref().is_some_and(|rs| rs.replicas > 0);
        let active_count = active_old.len() + usize::from(new_active);

        // FindActiveOrLatest: a single active ReplicaSet (or, with none, the newest) takes all.
        let active_or_latest = match active_count {
            0 if self.new.is_some() => Some(None),
            0 => (0..self.old.len())
                .max_by_key(|&i| self.old[i].created)
                .map(Some),
            1 if new_active => Some(None),
            1 => Some(Some(active_old[0])),
            _ => None,
        };
        if let Some(which) = active_or_latest {
            let rs = match which {
                None => self.new.as_mut(),
                Some(index) => self.old.get_mut(index),
            };
            if let Some(rs) = rs
                && rs.replicas != replicas
            {
                writes.push(match which {
                    None => ControllerWrite::ScaleNew {
                        from: rs.replicas,
                        to: replicas,
                    },
                    Some(index) => ControllerWrite::ScaleOld {
                        index,
                        from: rs.replicas,
                        to: replicas,
                    },
                });
                rs.replicas = replicas;
                rs.available = rs.available.min(replicas);
                rs.desired_replicas = Some(replicas);
                rs.max_replicas = Some(max_replicas_annotation);
            }
            return writes;
        }

        if let Some(new) = &self.new
            && is_saturated(replicas, new)
        {
            for index in active_old {
                let rs = &mut self.old[index];
                writes.push(ControllerWrite::ScaleOld {
                    index,
                    from: rs.replicas,
                    to: 0,
                });
                rs.replicas = 0;
                rs.available = 0;
                rs.desired_replicas = Some(replicas);
                rs.max_replicas = Some(max_replicas_annotation);
            }
            return writes;
        }

        let mut members: Vec<ReplicaSetModel> =
            active_old.iter().map(|&i| self.old[i].clone()).collect();
        if let Some(new) = self.new.as_ref().filter(|rs| rs.replicas > 0) {
            members.push(new.clone());
        }
        let scaled = proportional_scale(
            replicas,
            self.fenceposts.max_surge,
            self.status_replicas,
            &members,
        );
        for (position, &size) in scaled.sizes.iter().enumerate() {
            let (rs, write) = if position < active_old.len() {
                let index = active_old[position];
                let rs = &mut self.old[index];
                let write = ControllerWrite::ScaleOld {
                    index,
                    from: rs.replicas,
                    to: size,
                };
                (rs, write)
            } else {
                let Some(rs) = self.new.as_mut() else { break };
                let write = ControllerWrite::ScaleNew {
                    from: rs.replicas,
                    to: size,
                };
                (rs, write)
            };
            // scaleReplicaSet is forced here: annotations are refreshed even at equal size.
            rs.desired_replicas = Some(replicas);
            rs.max_replicas = Some(max_replicas_annotation);
            if rs.replicas != size {
                rs.replicas = size;
                rs.available = rs.available.min(size);
                writes.push(write);
            }
        }
        writes
    }

    /// Runs [`Self::rolling_sync`] until the controller has nothing left to do, returning
    /// every write in order.
    pub fn rolling_until_quiescent(&mut self) -> Vec<ControllerWrite> {
        let mut writes = Vec::new();
        // Each sync with writes moves pods monotonically; this bound is never reached by a
        // correct model and only guards against looping forever on a bug.
        let bound =
            4 * (self.replicas.max(0) as usize + self.fenceposts.max_surge.max(0) as usize) + 8;
        for _ in 0..bound {
            let step = self.rolling_sync();
            if step.is_empty() {
                break;
            }
            writes.extend(step);
        }
        writes
    }

    /// Marks one more pod of the new ReplicaSet available; false if all already are.
    pub fn make_one_new_pod_available(&mut self) -> bool {
        match self.new.as_mut() {
            Some(rs) if rs.available < rs.replicas => {
                rs.available += 1;
                true
            }
            _ => false,
        }
    }
}

/// `IsSaturated`: the new ReplicaSet owns all replicas, believes so, and all are available.
pub(super) fn is_saturated(replicas: i32, rs: &ReplicaSetModel) -> bool {
    rs.replicas == replicas && rs.desired_replicas == Some(replicas) && rs.available == replicas
}

/// One state of a rollout: ReplicaSet sizes right after a controller write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// Old ReplicaSets' `spec.replicas`, summed.
    pub old_rs: i32,
    /// The new ReplicaSet's `spec.replicas` (0 before it exists).
    pub new_rs: i32,
    /// New pods available when the state was reached.
    pub new_available: i32,
    /// The controller stops here until another new pod becomes available: a rollout rests
    /// in this state for as long as pods take to become Ready (plus minReadySeconds). States
    /// that are not resting last only between two API writes of the controller.
    pub resting: bool,
}

impl RolloutState {
    /// `(old, new)` ReplicaSet sizes.
    pub fn sizes(&self) -> (i32, i32) {
        (self.old_rs, self.new_rs)
    }
}

/// The states a native rolling update walks through.
///
/// Precisely: start from a settled Deployment (one ReplicaSet with `replicas` pods, all
/// available) whose pod template has just changed. Let the controller sync until it has
/// nothing to do, then make **one** new pod available, and repeat until the new ReplicaSet
/// has all `replicas` pods available. The result lists the (old, new) `spec.replicas` sizes
/// after every controller write that changes a size, starting with the initial `(N, 0)`;
/// consecutive equal sizes are listed once. The last state is `(0, N)`. Each state says
/// whether the controller rests there ([`RolloutState::resting`]).
pub fn native_rollout_sequence(
    replicas: i32,
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
) -> Result<Vec<RolloutState>, RolloutMathError> {
    let fenceposts = resolve_fenceposts(max_surge, max_unavailable, replicas)?;
    let mut model = DeploymentModel::settled(replicas, fenceposts);
    let mut states = vec![RolloutState {
        old_rs: replicas,
        new_rs: 0,
        new_available: 0,
        resting: false,
    }];
    // Every availability step moves one pod; more steps than pods means no progress.
    for _ in 0..=replicas.max(0) + 1 {
        loop {
            let before = model.snapshot();
            let step = model.rolling_sync();
            if step.is_empty() {
                break;
            }
            // Replay the sync's writes one by one: a pause can land between any two of them.
            let mut current = (before.old_rs, before.new_rs);
            for write in step {
                current = write.apply_to(current);
                let (old_rs, new_rs) = current;
                let state = RolloutState {
                    old_rs,
                    new_rs,
                    new_available: before.new_available,
                    resting: false,
                };
                if states.last().map(RolloutState::sizes) != Some(state.sizes()) {
                    states.push(state);
                }
            }
        }
        if let Some(last) = states.last_mut() {
            last.resting = true;
        }
        let snapshot = model.snapshot();
        if snapshot.old_rs == 0 && snapshot.new_rs == replicas && snapshot.new_available == replicas
        {
            if let Some(last) = states.last_mut() {
                // The end is not a pause point of the rollout: nothing is left to do.
                last.resting = false;
            }
            return Ok(states);
        }
        if !model.make_one_new_pod_available() {
            break;
        }
    }
    let snapshot = model.snapshot();
    Err(RolloutMathError::ModelStuck {
        replicas,
        old_rs: snapshot.old_rs,
        new_rs: snapshot.new_rs,
        new_available: snapshot.new_available,
    })
}
