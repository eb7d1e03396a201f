//! `plan`'s flags, resolved.

use canary_core::plan::Resources;
use canary_core::rollout_math::{CanaryMode, CanarySize, IntOrPercent};

use crate::cli::PlanArgs;

/// What `plan` runs with.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// The Deployment's name; `None` plans without a cluster (`--replicas`).
    pub deployment: Option<String>,
    /// `--replicas`: the replicas of a Deployment planned without a cluster.
    pub replicas: Option<i32>,
    /// `--canary`: the canary size planned.
    pub canary: CanarySize,
    /// `--mode`: the mode `--explain` walks through.
    pub mode: CanaryMode,
    /// `--explain`: the teaching view instead of the plan.
    pub explain: bool,
    /// `--max-surge` (without a cluster).
    pub max_surge: Option<IntOrPercent>,
    /// `--max-unavailable` (without a cluster).
    pub max_unavailable: Option<IntOrPercent>,
    /// `--cpu` and `--memory` (without a cluster): one pod's requests, if either is given.
    pub pod_requests: Option<Resources>,
}

impl From<&PlanArgs> for PlanConfig {
    fn from(args: &PlanArgs) -> Self {
        Self {
            deployment: args.target.as_ref().map(|target| target.name.clone()),
            replicas: args.replicas,
            canary: args.canary,
            mode: args.mode.into(),
            explain: args.explain,
            max_surge: args.max_surge,
            max_unavailable: args.max_unavailable,
            pod_requests: (args.cpu.is_some() || args.memory.is_some()).then(|| Resources {
                cpu_millis: args.cpu.unwrap_or(0),
                memory_bytes: args.memory.unwrap_or(0),
            }),
        }
    }
}
