//! The workload controllers' update arithmetic, in one place: the Deployment controller's
//! rolling update (below), the StatefulSet controller's partitioned update
//! ([`StatefulSetModel`], `statefulset.rs`) and the DaemonSet controller's `OnDelete` update
//! ([`DaemonSetModel`], `daemonset.rs`).
//!
//! Modelled line by line on kubernetes/kubernetes v1.36 `pkg/controller/deployment/rolling.go`
//! (`reconcileNewReplicaSet`, `reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`,
//! `scaleDownOldReplicaSetsForRollingUpdate`), `sync.go` (`scale`, `scaleReplicaSet`),
//! `util/deployment_util.go` (`ResolveFenceposts`, `MaxSurge`, `MaxUnavailable`,
//! `NewRSNewReplicas`, `IsSaturated`, `GetReplicaSetProportion`, `FindActiveOrLatest`),
//! `apimachinery/pkg/util/intstr` (`GetScaledValueFromIntOrPercent`) and the API server's
//! `ValidateRollingUpdateDeployment`. The engine and the planner both use this module; there is
//! no second copy of the arithmetic anywhere. `crates/canary-kube/tests/controller_model.rs`
//! checks [`native_rollout_sequence`] against the real controller.

mod controller;
mod daemonset;
mod error;
mod model;
mod sizing;
mod statefulset;
mod strategy;

pub use controller::*;
pub use daemonset::*;
pub use error::*;
pub use model::*;
pub use sizing::*;
pub use statefulset::*;
pub use strategy::*;

#[cfg(test)]
mod tests;
