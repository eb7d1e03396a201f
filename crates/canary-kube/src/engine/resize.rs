//! Direct ReplicaSet resizes (see [`canary_core::machine::Resize`]): what the controller does
//! not do by itself after a change of `spec.replicas` was spread over both sides.

use std::time::Duration;

use canary_core::machine::{Goal, Resize};

use super::{Engine, Progress, mutation_point};
use crate::error::{CanaryError, Result};
use crate::observe::DeploymentView;
use crate::write::Written;

impl Engine {
    /// Sets one ReplicaSet's `spec.replicas`, guarded by the resourceVersion just read.
    /// Returns whether it was written (a conflict: read and decide again).
    pub(super) async fn resize(
        &self,
        view: &DeploymentView,
        resize: &Resize,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<bool> {
        match crate::ops::step::resize(crate::write::CLI, &self.apis.replica_sets, view, resize)
            .await?
        {
            Written::Stored(()) => {
                mutation_point(&resize.summary);
                progress(&Progress::Updated {
                    summary: resize.summary.clone(),
                });
                Ok(true)
            }
            Written::Conflict => Ok(false),
        }
    }

    /// The error for an update loop that reached its deadline before a resize.
    pub(super) fn resize_timed_out(
        &self,
        goal: Goal,
        timeout: Duration,
        resize: &Resize,
    ) -> CanaryError {
        CanaryError::TimedOut {
            what: format!("deploy/{} to reach {goal:?}", self.name),
            seconds: timeout.as_secs(),
            last: format!("a resize still to make: {}", resize.summary),
        }
    }
}
