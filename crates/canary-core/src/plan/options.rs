//! The plan itself: the achievable canaries around a target in each mode, and the replica
//! counts at which a share is exact.

use serde::{Deserialize, Serialize};

use super::advice::advise;
use super::*;
use crate::rollout_math::{
    CanaryMode, CanarySize, ResolvedCanary, RolloutMathError, canary_pod_range, resolve_canary,
};

/// What to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The canary size asked for.
    pub target: CanarySize,
    /// Requests of one pod of the template (summed over containers), when known.
    pub pod_requests: Option<Resources>,
    /// The cluster's capacity, when known.
    pub cluster: ClusterCapacity,
}

/// One achievable canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryOption {
    /// Canary pods.
    pub canary_pods: i32,
    /// Stable pods beside them.
    pub stable_pods: i32,
    /// All pods while the canary runs.
    pub total_pods: i32,
    /// Pods beyond `spec.replicas`.
    pub extra_pods: i32,
    /// The canary's share of Ready pods, i.e. of traffic through a Service, in percent.
    pub traffic_share_percent: f64,
    /// Distance from a percentage target, in percentage points (absent for a pod count).
    pub off_target_points: Option<f64>,
    /// Whether this is the size `start` would use for the target.
    pub chosen: bool,
    /// Requests the extra pods add, when the template's requests are known.
    pub extra_requests: Option<Resources>,
    /// Whether the cluster has room for the extra pods.
    pub capacity: CapacityVerdict,
}

/// A replica count at which a percentage target is exact in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactSizing {
    /// `spec.replicas` to set.
    pub replicas: i32,
    /// Stable pods during the canary.
    pub stable_pods: i32,
    /// Canary pods.
    pub canary_pods: i32,
}

/// The plan for one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModePlan {
    /// The mode.
    pub mode: CanaryMode,
    /// Why this mode cannot take the target, if it cannot.
    pub refused: Option<String>,
    /// Achievable sizes around the target, smallest first.
    pub options: Vec<CanaryOption>,
    /// The replica count nearest the current one at which a percentage target is exact;
    /// absent for a pod count, or when no replica count up to [`MAX_EXACT_REPLICAS`] works.
    pub exact: Option<ExactSizing>,
}

/// The largest Deployment the planner proposes to make a share exact.
pub const MAX_EXACT_REPLICAS: i32 = 10_000;

/// The canary plan for both modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPlan {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The size asked for.
    pub target: CanarySize,
    /// Requests of one pod, when known.
    pub pod_requests: Option<Resources>,
    /// Surge first, then replace.
    pub modes: Vec<ModePlan>,
    /// Plain-language conclusions, most important first.
    pub advice: Vec<String>,
}

/// Plans a canary of `input.target` for `input.replicas` in both modes.
///
/// ```
/// use canary_core::plan::{ClusterCapacity, PlanInput, plan};
/// use canary_core::rollout_math::{CanaryMode, CanarySize};
///
/// // 10% of the traffic of a 10-replica Deployment, planned offline.
/// let plan = plan(&PlanInput {
///     replicas: 10,
///     target: CanarySize::Percent(10.0),
///     pod_requests: None,
///     cluster: ClusterCapacity::Offline,
/// })
/// .unwrap();
/// let surge = plan.modes.iter().find(|m| m.mode == CanaryMode::Surge).unwrap();
/// let chosen = surge.options.iter().find(|o| o.chosen).unwrap();
/// // One extra pod beside all ten: 1/11 of the traffic, the nearest surge gets to 10%.
/// assert_eq!((chosen.canary_pods, chosen.stable_pods), (1, 10));
/// // Replace mode takes one of the ten: exactly 10%.
/// let replace = plan.modes.iter().find(|m| m.mode == CanaryMode::Replace).unwrap();
/// let chosen = replace.options.iter().find(|o| o.chosen).unwrap();
/// assert_eq!((chosen.canary_pods, chosen.stable_pods), (1, 9));
/// ```
pub fn plan(input: &PlanInput) -> Result<CanaryPlan, PlanError> {
    if input.replicas < 0 {
        return Err(RolloutMathError::NegativeReplicas {
            replicas: input.replicas,
        }
        .into());
    }
    let modes: Vec<ModePlan> = [CanaryMode::Surge, CanaryMode::Replace]
        .into_iter()
        .map(|mode| plan_mode(input, mode))
        .collect();
    let advice = advise(input, &modes);
    Ok(CanaryPlan {
        replicas: input.replicas,
        target: input.target,
        pod_requests: input.pod_requests,
        modes,
        advice,
    })
}

pub(super) fn plan_mode(input: &PlanInput, mode: CanaryMode) -> ModePlan {
    let replicas = input.replicas;
    let exact = match input.target {
        CanarySize::Percent(percent) => exact_sizing(percent, replicas, mode),
        CanarySize::Pods(_) => None,
    };
    let chosen = match resolve_canary(input.target, replicas, mode) {
        Ok(canary) => canary.pods,
        Err(err) => {
            return ModePlan {
                mode,
                refused: Some(err.to_string()),
                options: Vec::new(),
                exact,
            };
        }
    };
    let range = canary_pod_range(replicas, mode);
    let options = (chosen - 1..=chosen + 1)
        .filter(|pods| range.contains(pods))
        .map(|pods| {
            let canary = ResolvedCanary::of(pods, replicas, mode);
            let share = canary.traffic_share() * 100.0;
            let extra_pods = canary.extra_pods();
            CanaryOption {
                canary_pods: pods,
                stable_pods: canary.stable_pods,
                total_pods: canary.pods + canary.stable_pods,
                extra_pods,
                traffic_share_percent: share,
                off_target_points: match input.target {
                    CanarySize::Percent(target) => Some((share - target).abs()),
                    CanarySize::Pods(_) => None,
                },
                chosen: pods == chosen,
                extra_requests: input.pod_requests.map(|r| r.times(extra_pods)),
                capacity: check_capacity(&input.cluster, input.pod_requests, extra_pods),
            }
        })
        .collect();
    ModePlan {
        mode,
        refused: None,
        options,
        exact,
    }
}

pub(super) fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// The replica count nearest `replicas` at which `percent` is an exact share in `mode`.
///
/// The share as a reduced fraction `a/b`: surge needs `k/(N+k) = a/b`, i.e. `N = m(b-a)`,
/// `k = ma` (possible up to 50%); replace needs `k/N = a/b`, i.e. `N = mb`, `k = ma`
/// (below 100%). `m` is chosen so that N is nearest the current replicas.
pub fn exact_sizing(percent: f64, replicas: i32, mode: CanaryMode) -> Option<ExactSizing> {
    // Percent to 1e-9 of a point, as resolve_canary compares it.
    let numerator = (percent * 1e9).round() as i128;
    let denominator: i128 = 100_000_000_000;
    if numerator <= 0 {
        return None;
    }
    let divisor = gcd(numerator, denominator);
    let (a, b) = (numerator / divisor, denominator / divisor);
    let (unit_replicas, unit_stable) = match mode {
        CanaryMode::Surge if 2 * a <= b => (b - a, b - a),
        CanaryMode::Replace if a < b => (b, b - a),
        _ => return None,
    };
    let current = i128::from(replicas.max(1));
    let multiple = ((2 * current + unit_replicas) / (2 * unit_replicas)).max(1);
    let total = multiple * unit_replicas;
    if total > i128::from(MAX_EXACT_REPLICAS) {
        return None;
    }
    Some(ExactSizing {
        replicas: i32::try_from(total).ok()?,
        stable_pods: i32::try_from(multiple * unit_stable).ok()?,
        canary_pods: i32::try_from(multiple * a).ok()?,
    })
}
