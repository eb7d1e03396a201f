//! The errors of the rolling-update arithmetic and of canary sizing.

use super::*;

/// Errors of the rolling-update arithmetic and of canary sizing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RolloutMathError {
    /// A maxSurge/maxUnavailable value that is neither an integer nor `<digits>%`.
    #[error(
        "invalid value {input:?}: {reason} (write an integer such as \"3\" or a percentage such as \"25%\")"
    )]
    InvalidIntOrPercent {
        /// What was given.
        input: String,
        /// Why it is not an integer or a percentage.
        reason: String,
    },
    /// The strategy would be refused by the API server; the violations are the API's own.
    #[error("the API server would refuse this rolling update strategy: {}", join_violations(.violations))]
    InvalidStrategy {
        /// Every rule broken, in the order the API server reports them.
        violations: Vec<StrategyViolation>,
    },
    /// A negative replica count.
    #[error("replicas must not be negative, got {replicas}")]
    NegativeReplicas {
        /// The replica count given.
        replicas: i32,
    },
    /// A canary size that is not a positive pod count or a percentage in (0, 100].
    #[error(
        "invalid canary size {input:?}: {reason} (write a pod count such as \"2\" or a share such as \"5%\")"
    )]
    InvalidCanarySize {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A canary mode other than `surge` or `replace`.
    #[error(
        "invalid canary mode {input:?}: use \"surge\" (extra pods) or \"replace\" (no extra pods)"
    )]
    InvalidCanaryMode {
        /// What was given.
        input: String,
    },
    /// The Deployment has no replicas to take a canary from.
    #[error(
        "the Deployment has 0 replicas: a canary needs at least one stable pod; scale it up first"
    )]
    NoReplicas,
    /// A surge canary larger than the Deployment.
    #[error(
        "a canary of {canary_pods} pods is larger than the Deployment's {replicas} replicas: use at most {replicas} pods, or scale the Deployment up first"
    )]
    CanaryLargerThanDeployment {
        /// Canary pods asked for.
        canary_pods: i32,
        /// The Deployment's replicas.
        replicas: i32,
    },
    /// A replace canary that would leave no stable pod.
    #[error(
        "replace mode keeps at least one stable pod: a canary of {canary_pods} pods out of {replicas} replicas leaves none; use at most {max} pods, or surge mode (extra pods, nothing replaced)",
        max = .replicas - 1
    )]
    ReplaceLeavesNoStablePod {
        /// Canary pods asked for.
        canary_pods: i32,
        /// The Deployment's replicas.
        replicas: i32,
    },
    /// The model did not reach the end of the rollout; it would be a bug in this module.
    #[error(
        "the rollout model made no progress at old={old_rs} new={new_rs} (new available {new_available}) with replicas={replicas}"
    )]
    ModelStuck {
        /// Replicas of the Deployment.
        replicas: i32,
        /// Old ReplicaSets' pods.
        old_rs: i32,
        /// New ReplicaSet's pods.
        new_rs: i32,
        /// New ReplicaSet's available pods.
        new_available: i32,
    },
}

pub(super) fn join_violations(violations: &[StrategyViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
