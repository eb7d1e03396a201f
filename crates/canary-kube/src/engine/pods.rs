//! Waiting for the canary pods of a held canary, and the status report read on the way.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use canary_core::record::POD_TEMPLATE_HASH_LABEL;

use crate::error::{CanaryError, Result};
use crate::observe::{pod_is_ready, template_hash_of};
use crate::status::{StatusReport, pod_problem};
use crate::store::StoredRecord;

use super::{DriveOptions, Engine, Progress};

impl Engine {
    /// One read of the cluster (the Deployment, its ReplicaSets and pods, the record), as a
    /// status report.
    pub async fn status_report(&self) -> Result<StatusReport> {
        Ok(self.checked_status_report().await?.0)
    }

    /// Waits (at most `timeout`) on the live view until the `pods` canary pods of a held
    /// canary are Ready, or one of them shows a problem (unschedulable, crash-looping, image
    /// pull failure), whichever comes first.
    ///
    /// A foreign change ends the wait as it ends the engine's loops (a change of replicas
    /// that can be followed is: the canary is held again at its new size, and `stored` is
    /// the new record); a canary ReplicaSet that cannot create pods ends it at once.
    pub async fn wait_for_canary_pods(
        &self,
        stored: &mut StoredRecord,
        timeout: Duration,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<CanaryPods> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut live = self.live().await?;
        loop {
            if !stored.is_synthesized()
                && let Some(change) = self.foreign_in_live(&live, stored)
            {
                self.on_foreign(change, stored, progress).await?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                *stored = self
                    .hold_again(
                        stored.clone(),
                        DriveOptions {
                            timeout: left,
                            progress,
                        },
                    )
                    .await?;
                live.record_caught_up_with(&stored.resource_version, Duration::from_secs(5))
                    .await;
                continue;
            }
            let record = &stored.record;
            let pods = record.held_pods().unwrap_or(1);
            let view = live.view()?;
            if let Some(failure) = super::leftovers::create_failure(&view, record) {
                return Ok(CanaryPods::CannotCreate { failure });
            }
            let hash = view
                .replica_set_with_template(&record.target_template())
                .map(template_hash_of)
                .ok_or_else(|| {
                    CanaryError::Refused(format!(
                        "deploy/{0} is held, but its canary ReplicaSet is not to be found; see `kubectl canary status deploy/{0}`",
                        record.deployment
                    ))
                })?;
            let canary: Vec<&Pod> = view
                .pods
                .iter()
                .filter(|p| p.labels().get(POD_TEMPLATE_HASH_LABEL) == Some(&hash))
                .collect();
            if let Some(problem) = canary.iter().find_map(|p| pod_problem(p)) {
                return Ok(CanaryPods::Unhealthy { problem });
            }
            let ready = canary.iter().filter(|p| pod_is_ready(p)).count() as i32;
            if ready >= pods {
                return Ok(CanaryPods::Ready { ready });
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(CanaryPods::NotReadyInTime { ready });
            }
            live.changed(left).await;
        }
    }
}

/// How the canary pods of a held canary came out of [`Engine::wait_for_canary_pods`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryPods {
    /// At least the wanted number are Ready.
    Ready {
        /// Ready canary pods.
        ready: i32,
    },
    /// A canary pod shows a problem.
    Unhealthy {
        /// The first problem seen.
        problem: String,
    },
    /// The canary ReplicaSet cannot create pods (quota, limit range, admission refusal).
    CannotCreate {
        /// The ReplicaSet's `ReplicaFailure` condition, with the API server's message.
        failure: String,
    },
    /// Time ran out before enough were Ready.
    NotReadyInTime {
        /// Ready canary pods at the end.
        ready: i32,
    },
}
