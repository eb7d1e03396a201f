//! Canary sizing: modes, sizes, resolving a size to pods, steps that grow, the brake.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::*;

/// How the canary gets its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryMode {
    /// Canary pods are added on top of all stable pods (`maxSurge=k, maxUnavailable=0`).
    Surge,
    /// Canary pods take the place of stable pods (`maxSurge=0, maxUnavailable=k`).
    Replace,
}

impl FromStr for CanaryMode {
    type Err = RolloutMathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "surge" => Ok(Self::Surge),
            "replace" => Ok(Self::Replace),
            _ => Err(RolloutMathError::InvalidCanaryMode {
                input: text.to_owned(),
            }),
        }
    }
}

impl fmt::Display for CanaryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Surge => "surge",
            Self::Replace => "replace",
        })
    }
}

/// The canary size a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CanarySize {
    /// An exact number of canary pods.
    Pods(i32),
    /// A traffic share in percent, in (0, 100].
    Percent(f64),
}

impl FromStr for CanarySize {
    type Err = RolloutMathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| RolloutMathError::InvalidCanarySize {
            input: text.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(number) = text.strip_suffix('%') {
            // Only plain decimals: f64's parser would also take "inf", "NaN" and "1e2".
            if number.is_empty()
                || !number
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return Err(invalid("a share must be a decimal number followed by '%'"));
            }
            let percent: f64 = number
                .parse()
                .map_err(|_| invalid("a share must be a decimal number followed by '%'"))?;
            if percent <= 0.0 {
                return Err(invalid("the share must be greater than 0%"));
            }
            if percent > 100.0 {
                return Err(invalid("the share must not be greater than 100%"));
            }
            return Ok(Self::Percent(percent));
        }
        let pods: i32 = text
            .parse()
            .map_err(|_| invalid("not a whole number of pods"))?;
        if pods <= 0 {
            return Err(invalid("a canary needs at least 1 pod"));
        }
        Ok(Self::Pods(pods))
    }
}

impl TryFrom<String> for CanarySize {
    type Error = RolloutMathError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<CanarySize> for String {
    fn from(size: CanarySize) -> Self {
        size.to_string()
    }
}

impl fmt::Display for CanarySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pods(pods) => write!(f, "{pods}"),
            Self::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

/// A canary size resolved to pods for a Deployment of `replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedCanary {
    /// Canary pods.
    pub pods: i32,
    /// Stable pods running alongside the canary.
    pub stable_pods: i32,
    /// How the canary gets its pods.
    pub mode: CanaryMode,
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
}

impl ResolvedCanary {
    /// The canary's share of Ready pods, which is its share of traffic behind a Service
    /// (Services balance per pod): `k/(N+k)` in surge mode, `k/N` in replace mode.
    pub fn traffic_share(&self) -> f64 {
        f64::from(self.pods) / f64::from(self.pods + self.stable_pods)
    }

    /// Pods beyond `spec.replicas` while the canary runs: `k` in surge mode, 0 in replace.
    pub fn extra_pods(&self) -> i32 {
        self.pods + self.stable_pods - self.replicas
    }

    /// The canary for `pods` canary pods in `mode`, without range checks.
    pub(crate) fn of(pods: i32, replicas: i32, mode: CanaryMode) -> Self {
        Self {
            pods,
            stable_pods: stable_pods_beside_canary(mode, replicas, pods),
            mode,
            replicas,
        }
    }
}

/// The stable pods beside a canary of `pods` in a Deployment of `replicas`: all `N` in surge
/// mode (the canary is extra), `N - k` in replace mode (the canary takes their place).
pub fn stable_pods_beside_canary(mode: CanaryMode, replicas: i32, pods: i32) -> i32 {
    match mode {
        CanaryMode::Surge => replicas,
        CanaryMode::Replace => replicas - pods,
    }
}

/// A canary only grows: a later size must have more pods than the one before it (going
/// back is an abort, not a step).
pub fn grows(before: i32, next: i32) -> bool {
    next > before
}

/// Why the steps of an automated rollout cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A step does not fit the Deployment.
    #[error("--steps {size}: {source}")]
    Size {
        /// The step as given.
        size: CanarySize,
        /// Why it does not fit.
        #[source]
        source: RolloutMathError,
    },
    /// A step is not larger than the one before.
    #[error("--steps must grow: {size} is {pods} pod(s), not more than the step before ({before})")]
    NotGrowing {
        /// The step as given.
        size: CanarySize,
        /// Its pods.
        pods: i32,
        /// The pods of the step before.
        before: i32,
    },
}

/// The canary sizes of the steps of an automated rollout, in pods, the first being `first`
/// (where `start` holds; `steps[0]` is what it was resolved from): each later step resolved
/// as [`resolve_canary`] does, and each must [`grows`] from the one before.
pub fn step_sizes(steps: &[CanarySize], first: &ResolvedCanary) -> Result<Vec<i32>, StepError> {
    let mut sizes = vec![first.pods];
    for size in steps.iter().skip(1).copied() {
        let pods = resolve_canary(size, first.replicas, first.mode)
            .map(|c| c.pods)
            .map_err(|source| StepError::Size { size, source })?;
        let before = *sizes.last().expect("at least the first step");
        if !grows(before, pods) {
            return Err(StepError::NotGrowing { size, pods, before });
        }
        sizes.push(pods);
    }
    Ok(sizes)
}

/// The canary pod counts `mode` allows for `replicas`: `1..=N` in surge mode, `1..N` in
/// replace mode (one stable pod must remain). Empty when none is possible.
pub fn canary_pod_range(replicas: i32, mode: CanaryMode) -> std::ops::RangeInclusive<i32> {
    match mode {
        CanaryMode::Surge => 1..=replicas,
        CanaryMode::Replace => 1..=replicas - 1,
    }
}

/// Resolves a canary size for a Deployment of `replicas` in `mode`.
///
/// A pod count is taken as is and checked: at most `N` in surge mode (the brake surges by k
/// and the new ReplicaSet never exceeds N), fewer than `N` in replace mode (at least one
/// stable pod remains, so replace with N=1 is refused). A percentage is a **traffic share**:
/// the k whose share in this mode (`k/(N+k)` or `k/N`) is nearest the target, within the same
/// range. Ties go to the smaller k: fewer pods exposed to the new version and fewer extra
/// pods. Shares are compared exactly (the percentage is taken to 1e-9 of a point), so a tie
/// such as 15% between 1 and 2 pods of 10 is a tie, not a floating-point accident.
///
/// ```
/// use canary_core::rollout_math::{CanaryMode, CanarySize, resolve_canary};
///
/// // 10% of the traffic of 10 replicas: surge adds 1 pod beside the 10 (1/11 = 9.1%) ...
/// let surge = resolve_canary(CanarySize::Percent(10.0), 10, CanaryMode::Surge).unwrap();
/// assert_eq!((surge.pods, surge.stable_pods, surge.extra_pods()), (1, 10, 1));
/// // ... replace takes 1 of the 10 (exactly 10%).
/// let replace = resolve_canary(CanarySize::Percent(10.0), 10, CanaryMode::Replace).unwrap();
/// assert_eq!((replace.pods, replace.stable_pods), (1, 9));
/// assert_eq!(replace.traffic_share(), 0.1);
/// // Replace must leave a stable pod.
/// assert!(resolve_canary(CanarySize::Pods(1), 1, CanaryMode::Replace).is_err());
/// ```
pub fn resolve_canary(
    size: CanarySize,
    replicas: i32,
    mode: CanaryMode,
) -> Result<ResolvedCanary, RolloutMathError> {
    if replicas < 0 {
        return Err(RolloutMathError::NegativeReplicas { replicas });
    }
    if replicas == 0 {
        return Err(RolloutMathError::NoReplicas);
    }
    let pods = match size {
        CanarySize::Pods(pods) => {
            if pods < 1 {
                return Err(RolloutMathError::InvalidCanarySize {
                    input: pods.to_string(),
                    reason: "a canary needs at least 1 pod".to_owned(),
                });
            }
            pods
        }
        CanarySize::Percent(percent) => {
            if percent.is_nan() || percent <= 0.0 || percent > 100.0 {
                return Err(RolloutMathError::InvalidCanarySize {
                    input: size.to_string(),
                    reason: "the share must be greater than 0% and at most 100%".to_owned(),
                });
            }
            nearest_canary_pods(percent, replicas, mode).unwrap_or(1)
        }
    };
    match mode {
        CanaryMode::Surge if pods > replicas => Err(RolloutMathError::CanaryLargerThanDeployment {
            canary_pods: pods,
            replicas,
        }),
        CanaryMode::Replace if pods >= replicas => {
            Err(RolloutMathError::ReplaceLeavesNoStablePod {
                canary_pods: pods,
                replicas,
            })
        }
        _ => Ok(ResolvedCanary::of(pods, replicas, mode)),
    }
}

/// A percentage as an exact fraction `numerator / PERCENT_SCALE` of 1.
pub(super) const PERCENT_SCALE: i128 = 100_000_000_000;

/// The target share `percent`% as an exact fraction of [`PERCENT_SCALE`].
pub(super) fn percent_numerator(percent: f64) -> i128 {
    // Rounding to 1e-9 percentage points removes binary noise such as 2.5 -> 2.4999999.
    (percent * 1e9).round() as i128
}

/// The canary pods whose traffic share in `mode` is nearest `percent`, ties to the smaller
/// count; `None` when `mode` allows no canary at all for `replicas`.
pub fn nearest_canary_pods(percent: f64, replicas: i32, mode: CanaryMode) -> Option<i32> {
    let target = percent_numerator(percent);
    let mut best: Option<(i32, i128, i128)> = None;
    for pods in canary_pod_range(replicas, mode) {
        let candidate = ResolvedCanary::of(pods, replicas, mode);
        let denominator = i128::from(candidate.pods + candidate.stable_pods);
        // |k/D - t/S| compared as |k*S - t*D| / (D*S); keep numerator and denominator.
        let distance = (i128::from(pods) * PERCENT_SCALE - target * denominator).abs();
        let better = match best {
            None => true,
            Some((_, best_distance, best_denominator)) => {
                distance * best_denominator < best_distance * denominator
            }
        };
        if better {
            best = Some((pods, distance, denominator));
        }
    }
    best.map(|(pods, _, _)| pods)
}

/// The strategy of the brake that holds a canary at `canary_pods`: surge `(k, 0)`, replace
/// `(0, k)`. Written as integers into the spec, they resolve to themselves.
pub fn brake_strategy(mode: CanaryMode, canary_pods: i32) -> Fenceposts {
    match mode {
        CanaryMode::Surge => Fenceposts {
            max_surge: canary_pods,
            max_unavailable: 0,
        },
        CanaryMode::Replace => Fenceposts {
            max_surge: 0,
            max_unavailable: canary_pods,
        },
    }
}
