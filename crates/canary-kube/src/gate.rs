//! Approval gates read off the cluster: the approval a workload carries, how long a
//! recorded gate has waited, and where it stands ([`canary_core::gate`] decides).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use canary_core::gate::{APPROVE_ANNOTATION, AwaitedGate, GateState};

/// The approval annotation's value on `deployment`, if any.
pub fn approval_of(deployment: &Deployment) -> Option<&str> {
    deployment
        .annotations()
        .get(APPROVE_ANNOTATION)
        .map(String::as_str)
}

/// How long `gate` has waited by this machine's clock (zero for a start in the future or
/// an unreadable time).
pub fn waited(gate: &AwaitedGate) -> Duration {
    let Ok(since) = gate.since.parse::<Timestamp>() else {
        return Duration::ZERO;
    };
    let ms = Timestamp::now().as_millisecond() - since.as_millisecond();
    Duration::from_millis(ms.max(0) as u64)
}

/// Where `gate` stands on `deployment` now.
pub fn state(gate: &AwaitedGate, deployment: &Deployment) -> GateState {
    gate.state(approval_of(deployment), waited(gate))
}
