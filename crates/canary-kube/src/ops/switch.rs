//! Blue/Green's switch: every pinned Service to one set in one update each (the new set on
//! promote, the old one on abort), then a wait until their EndpointSlices list only that
//! set and the dataplane has had time to follow (`crate::traffic::SWITCH_SETTLE`).

use std::time::Duration;

use canary_core::machine::Goal;
use canary_core::record::{CanaryRecord, POD_TEMPLATE_HASH_LABEL};

use crate::engine::Engine;
use crate::error::{CanaryError, Result};
use crate::traffic;

/// The Services switched and the set they now select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// The Services, by name.
    pub services: Vec<String>,
    /// The `pod-template-hash` of the set they select.
    pub hash: String,
}

/// Switches every Service pinned for `record`'s Deployment to the set `goal` ends on. The
/// hashes come from the ReplicaSets: the stable one recorded (checked against the seal),
/// the new one found by its template.
pub async fn switch_sets(
    engine: &Engine,
    record: &CanaryRecord,
    goal: Goal,
    timeout: Duration,
) -> Result<Switched> {
    let hash = if goal == Goal::Abort {
        record.stable.pod_template_hash.clone()
    } else {
        let view = engine.view().await?;
        view.replica_set_with_template(&record.target_template())
            .and_then(|rs| rs.metadata.labels.as_ref())
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
            .cloned()
            .ok_or_else(|| {
                CanaryError::Refused(format!(
                    "deploy/{} has no ReplicaSet of the new version to switch to; nothing was changed",
                    record.deployment
                ))
            })?
    };
    let services = traffic::switch_to(
        engine.client(),
        engine.namespace(),
        &record.deployment_uid,
        &hash,
    )
    .await?;
    traffic::wait_switched(
        engine.client(),
        engine.namespace(),
        &services,
        &hash,
        timeout,
    )
    .await?;
    Ok(Switched { services, hash })
}
