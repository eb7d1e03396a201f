//! The Deployment controller's rolling-update arithmetic, in one place.
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

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

fn join_violations(violations: &[StrategyViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// maxSurge/maxUnavailable as written in the spec: an integer or a percentage of replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "IntOrPercentRepr", into = "IntOrPercentRepr")]
pub enum IntOrPercent {
    /// An absolute number of pods.
    Int(i32),
    /// A percentage of `spec.replicas`.
    Percent(i32),
}

/// The JSON shape Kubernetes uses: a number, or a string ending in `%`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum IntOrPercentRepr {
    Int(i32),
    String(String),
}

impl TryFrom<IntOrPercentRepr> for IntOrPercent {
    type Error = RolloutMathError;

    fn try_from(repr: IntOrPercentRepr) -> Result<Self, Self::Error> {
        match repr {
            IntOrPercentRepr::Int(value) => Ok(Self::Int(value)),
            // A JSON string is only valid as a percentage (intstr refuses "3" as a string).
            IntOrPercentRepr::String(text) => parse_percent(&text),
        }
    }
}

impl From<IntOrPercent> for IntOrPercentRepr {
    fn from(value: IntOrPercent) -> Self {
        match value {
            IntOrPercent::Int(v) => Self::Int(v),
            IntOrPercent::Percent(_) => Self::String(value.to_string()),
        }
    }
}

fn parse_percent(text: &str) -> Result<IntOrPercent, RolloutMathError> {
    let invalid = |reason: &str| RolloutMathError::InvalidIntOrPercent {
        input: text.to_owned(),
        reason: reason.to_owned(),
    };
    let digits = text
        .strip_suffix('%')
        .ok_or_else(|| invalid("a string value must be a percentage ending in '%'"))?;
    // The API's percent regex is `[0-9]+%`: no sign, no decimals, no spaces.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("a percentage must be digits followed by '%'"));
    }
    digits
        .parse::<i32>()
        .map(IntOrPercent::Percent)
        .map_err(|_| invalid("the percentage is too large"))
}

impl FromStr for IntOrPercent {
    type Err = RolloutMathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.ends_with('%') {
            return parse_percent(text);
        }
        text.parse::<i32>()
            .map(Self::Int)
            .map_err(|err| RolloutMathError::InvalidIntOrPercent {
                input: text.to_owned(),
                reason: err.to_string(),
            })
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl IntOrPercent {
    /// The Kubernetes default for both maxSurge and maxUnavailable.
    pub const DEFAULT: Self = Self::Percent(25);

    /// `intstr.GetScaledValueFromIntOrPercent`: an integer as is, a percentage of `total`
    /// rounded up or down.
    ///
    /// Go computes `math.Ceil(float64(value) * float64(total) / 100)`; the product is an exact
    /// integer and dividing it by 100 never lands on a wrong integer, so exact integer
    /// division gives the same result.
    pub fn scaled_value(self, total: i32, round_up: bool) -> i32 {
        match self {
            Self::Int(value) => value,
            Self::Percent(percent) => {
                let product = i64::from(percent) * i64::from(total);
                let floor = product.div_euclid(100);
                let scaled = if round_up && product.rem_euclid(100) != 0 {
                    floor + 1
                } else {
                    floor
                };
                saturate_i32(scaled)
            }
        }
    }

    /// The value as the API's validation reads it (`getIntOrPercentValue`): the number itself,
    /// and 0 for a percentage that is not `[0-9]+%`.
    fn validation_value(self) -> i32 {
        match self {
            Self::Int(v) => v,
            Self::Percent(p) if p < 0 => 0,
            Self::Percent(p) => p,
        }
    }

    /// The value as the API server prints it in an error: JSON of the IntOrString.
    fn api_repr(self) -> String {
        match self {
            Self::Int(v) => v.to_string(),
            Self::Percent(_) => format!("\"{self}\""),
        }
    }
}

fn saturate_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// A field of `spec.strategy.rollingUpdate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StrategyField {
    /// `spec.strategy.rollingUpdate.maxSurge`.
    MaxSurge,
    /// `spec.strategy.rollingUpdate.maxUnavailable`.
    MaxUnavailable,
}

impl fmt::Display for StrategyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxSurge => "spec.strategy.rollingUpdate.maxSurge",
            Self::MaxUnavailable => "spec.strategy.rollingUpdate.maxUnavailable",
        })
    }
}

/// One rule of the API server's `ValidateRollingUpdateDeployment` that a strategy breaks.
///
/// `Display` prints it exactly as the API server does inside its `... is invalid: [...]`
/// message, so a test can look for it verbatim in the server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyViolation {
    /// The field at fault.
    pub field: StrategyField,
    /// Its value.
    pub value: IntOrPercent,
    /// The API server's explanation.
    pub detail: String,
}

impl fmt::Display for StrategyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: Invalid value: {}: {}",
            self.field,
            self.value.api_repr(),
            self.detail
        )
    }
}

/// The API server's message for a percentage that is not `[0-9]+%`.
const INVALID_PERCENT_DETAIL: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// The API server's validation of a rolling update strategy (`ValidateRollingUpdateDeployment`
/// in `pkg/apis/apps/validation`): no negatives, not both zero, maxUnavailable at most 100%.
/// maxSurge may exceed 100%.
pub fn validate_rolling_update(
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
) -> Result<(), RolloutMathError> {
    let mut violations = Vec::new();
    for (field, value) in [
        (StrategyField::MaxUnavailable, max_unavailable),
        (StrategyField::MaxSurge, max_surge),
    ] {
        let detail = match value {
            IntOrPercent::Int(v) if v < 0 => Some("must be greater than or equal to 0"),
            IntOrPercent::Percent(p) if p < 0 => Some(INVALID_PERCENT_DETAIL),
            _ => None,
        };
        if let Some(detail) = detail {
            violations.push(StrategyViolation {
                field,
                value,
                detail: detail.to_owned(),
            });
        }
    }
    if max_unavailable.validation_value() == 0 && max_surge.validation_value() == 0 {
        violations.push(StrategyViolation {
            field: StrategyField::MaxUnavailable,
            value: max_unavailable,
            detail: "may not be 0 when `maxSurge` is 0".to_owned(),
        });
    }
    if let IntOrPercent::Percent(p) = max_unavailable
        && p > 100
    {
        violations.push(StrategyViolation {
            field: StrategyField::MaxUnavailable,
            value: max_unavailable,
            detail: "must not be greater than 100%".to_owned(),
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(RolloutMathError::InvalidStrategy { violations })
    }
}

/// maxSurge and maxUnavailable resolved to pod counts, as the controller uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fenceposts {
    /// Pods allowed above `spec.replicas` (`MaxSurge`).
    pub max_surge: i32,
    /// Pods allowed below `spec.replicas` in availability (`MaxUnavailable`).
    pub max_unavailable: i32,
}

impl Fenceposts {
    /// The most pods all ReplicaSets together may have: `replicas + maxSurge`.
    pub fn max_total_pods(self, replicas: i32) -> i32 {
        replicas + self.max_surge
    }

    /// The fewest available pods the rollout keeps: `replicas - maxUnavailable`.
    pub fn min_available(self, replicas: i32) -> i32 {
        replicas - self.max_unavailable
    }
}

/// Resolves maxSurge/maxUnavailable to pod counts for `replicas` as the controller does.
///
/// First the API server's validation ([`validate_rolling_update`]): a strategy it refuses is
/// an error here too. Then `ResolveFenceposts`: a percentage maxSurge rounds **up**, a
/// percentage maxUnavailable rounds **down**, and if both come out 0 (only possible through
/// rounding, e.g. maxSurge 0 and maxUnavailable 10% of 5) maxUnavailable becomes 1. Finally
/// `MaxUnavailable`'s guards: 0 for a Deployment of 0 replicas, and never more than
/// `replicas`. The result is what `rolling.go` and `sync.go` compute with.
pub fn resolve_fenceposts(
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    replicas: i32,
) -> Result<Fenceposts, RolloutMathError> {
    validate_rolling_update(max_surge, max_unavailable)?;
    if replicas < 0 {
        return Err(RolloutMathError::NegativeReplicas { replicas });
    }
    let surge = max_surge.scaled_value(replicas, true);
    let mut unavailable = max_unavailable.scaled_value(replicas, false);
    if surge == 0 && unavailable == 0 {
        // Rounding down made both zero; the controller assumes surge may be blocked by quota.
        unavailable = 1;
    }
    let unavailable = if replicas == 0 {
        0
    } else {
        unavailable.min(replicas)
    };
    Ok(Fenceposts {
        max_surge: surge,
        max_unavailable: unavailable,
    })
}

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
const PERCENT_SCALE: i128 = 100_000_000_000;

/// The target share `percent`% as an exact fraction of [`PERCENT_SCALE`].
fn percent_numerator(percent: f64) -> i128 {
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

/// A Deployment in the middle of a rolling update, as the controller's arithmetic sees it:
/// all old ReplicaSets summed into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSnapshot {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The new ReplicaSet's `spec.replicas`.
    pub new_rs: i32,
    /// The new ReplicaSet's `status.availableReplicas`.
    pub new_available: i32,
    /// The old ReplicaSets' `spec.replicas`, summed.
    pub old_rs: i32,
    /// The old ReplicaSets' `status.availableReplicas`, summed.
    pub old_available: i32,
}

impl RolloutSnapshot {
    /// Pods of all ReplicaSets (`GetReplicaCountForReplicaSets` over all of them).
    pub fn total_pods(&self) -> i32 {
        self.new_rs + self.old_rs
    }

    /// Available pods of all ReplicaSets.
    pub fn available(&self) -> i32 {
        self.new_available + self.old_available
    }
}

/// `reconcileNewReplicaSet`: the size the controller gives the new ReplicaSet in its next
/// sync. Down to `replicas` if above; otherwise `NewRSNewReplicas`:
/// `new + min(N + maxSurge - total, N - new)`, unchanged when the total is already at
/// `N + maxSurge`.
pub fn new_rs_target(snapshot: &RolloutSnapshot, fenceposts: Fenceposts) -> i32 {
    let replicas = snapshot.replicas;
    if snapshot.new_rs >= replicas {
        return replicas;
    }
    new_rs_new_replicas(
        replicas,
        fenceposts.max_surge,
        snapshot.total_pods(),
        snapshot.new_rs,
    )
}

/// `NewRSNewReplicas` for the RollingUpdate strategy.
fn new_rs_new_replicas(replicas: i32, max_surge: i32, total_pods: i32, new_rs: i32) -> i32 {
    let max_total_pods = replicas + max_surge;
    if total_pods >= max_total_pods {
        return new_rs;
    }
    let scale_up = (max_total_pods - total_pods).min(replicas - new_rs);
    new_rs + scale_up
}

/// `reconcileOldReplicaSets`: how many pods the old ReplicaSets lose in the controller's next
/// sync, when the new ReplicaSet is already at its target.
///
/// Nothing unless `total - (N - maxUnavailable) - (new - newAvailable) > 0`, i.e. old pods
/// only go as new pods become Available. Then unhealthy old pods go first (up to that
/// bound), then available ones down to `N - maxUnavailable` available pods (this second part
/// is not bounded by the first: it is the Go code's behaviour).
pub fn old_rs_max_scale_down(snapshot: &RolloutSnapshot, fenceposts: Fenceposts) -> i32 {
    let plan = old_scale_down_plan(snapshot, fenceposts);
    plan.cleanup + plan.scale_down
}

/// The two parts of an old-ReplicaSet scale-down, summed over old ReplicaSets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OldScaleDown {
    /// Unhealthy (not available) old pods removed (`cleanupUnhealthyReplicas`).
    cleanup: i32,
    /// Available old pods removed (`scaleDownOldReplicaSetsForRollingUpdate`).
    scale_down: i32,
}

fn old_scale_down_plan(snapshot: &RolloutSnapshot, fenceposts: Fenceposts) -> OldScaleDown {
    let none = OldScaleDown {
        cleanup: 0,
        scale_down: 0,
    };
    if snapshot.old_rs == 0 {
        return none;
    }
    let min_available = fenceposts.min_available(snapshot.replicas);
    let new_unavailable = snapshot.new_rs - snapshot.new_available;
    let max_scaled_down = snapshot.total_pods() - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return none;
    }
    let unhealthy_old = (snapshot.old_rs - snapshot.old_available).max(0);
    let cleanup = max_scaled_down.min(unhealthy_old);
    // The scale-down reads availability from the same (pre-cleanup) statuses.
    let available = snapshot.available();
    let scale_down = if available <= min_available {
        0
    } else {
        (available - min_available).min(snapshot.old_rs - cleanup)
    };
    OldScaleDown {
        cleanup,
        scale_down,
    }
}

/// One ReplicaSet owned by the Deployment, with what the controller reads from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetModel {
    /// A name, for reporting only.
    pub name: String,
    /// Creation order: larger is newer (`ReplicaSetsByCreationTimestamp`).
    pub created: u64,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// The `deployment.kubernetes.io/desired-replicas` annotation.
    pub desired_replicas: Option<i32>,
    /// The `deployment.kubernetes.io/max-replicas` annotation.
    pub max_replicas: Option<i32>,
}

/// The sizes [`proportional_scale`] gives the active ReplicaSets, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProportionalScale {
    /// The new `spec.replicas` of each ReplicaSet given, in the same order.
    pub sizes: Vec<i32>,
}

/// `scale()`'s proportional branch (`sync.go`): when `spec.replicas` or maxSurge changes while
/// more than one ReplicaSet has pods (a paused Deployment, or a scaling event mid-rollout),
/// the difference between `N + maxSurge` and the current total is spread over the active
/// ReplicaSets in proportion to their size, using each one's max-replicas annotation
/// (`GetReplicaSetProportion`, rounding half away from zero); the leftover goes to the
/// largest (on a tie, the newest when growing, the oldest when shrinking).
///
/// `replica_sets` are the active ones (replicas > 0); `status_replicas` is the Deployment's
/// `status.replicas`, the fallback for a missing annotation.
pub fn proportional_scale(
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    replica_sets: &[ReplicaSetModel],
) -> ProportionalScale {
    let current: i32 = replica_sets.iter().map(|rs| rs.replicas).sum();
    let allowed_size = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let to_add = allowed_size - current;
    let mut sizes: Vec<i32> = replica_sets.iter().map(|rs| rs.replicas).collect();
    if to_add == 0 || replica_sets.is_empty() {
        return ProportionalScale { sizes };
    }
    let mut order: Vec<usize> = (0..replica_sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&replica_sets[a], &replica_sets[b]);
        rb.replicas.cmp(&ra.replicas).then_with(|| {
            if to_add > 0 {
                // ReplicaSetsBySizeNewer: newer first on a tie.
                rb.created.cmp(&ra.created)
            } else {
                // ReplicaSetsBySizeOlder: older first on a tie.
                ra.created.cmp(&rb.created)
            }
        })
    });
    let mut added = 0;
    for &index in &order {
        let proportion = replica_set_proportion(
            &replica_sets[index],
            replicas,
            max_surge,
            status_replicas,
            to_add,
            added,
        );
        sizes[index] = replica_sets[index].replicas + proportion;
        added += proportion;
    }
    let largest = order[0];
    sizes[largest] = (sizes[largest] + to_add - added).max(0);
    ProportionalScale { sizes }
}

/// `GetReplicaSetProportion` with `getReplicaSetFraction`.
fn replica_set_proportion(
    rs: &ReplicaSetModel,
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas == 0 {
        -rs.replicas
    } else {
        let max_replicas = i64::from(replicas + max_surge);
        let before = match rs.max_replicas {
            Some(value) if value != 0 => i64::from(value),
            _ => i64::from(status_replicas),
        };
        if before == 0 {
            0
        } else {
            // math.Round(a / b) for a >= 0, b > 0: half away from zero.
            let scaled = i64::from(rs.replicas) * max_replicas;
            saturate_i32((2 * scaled + before).div_euclid(2 * before)) - rs.replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// One write the Deployment controller makes to a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ControllerWrite {
    /// The new ReplicaSet is created with `replicas`.
    CreateNew {
        /// Its initial `spec.replicas`.
        replicas: i32,
    },
    /// The new ReplicaSet is scaled.
    ScaleNew {
        /// Size before.
        from: i32,
        /// Size after.
        to: i32,
    },
    /// An old ReplicaSet (index into [`DeploymentModel::old`]) is scaled.
    ScaleOld {
        /// Index into the model's old ReplicaSets.
        index: usize,
        /// Size before.
        from: i32,
        /// Size after.
        to: i32,
    },
}

impl ControllerWrite {
    /// The (old, new) sizes after this write, from the sizes before it (old ReplicaSets
    /// summed).
    pub fn apply_to(&self, (old_rs, new_rs): (i32, i32)) -> (i32, i32) {
        match *self {
            Self::CreateNew { replicas } => (old_rs, replicas),
            Self::ScaleNew { to, .. } => (old_rs, to),
            Self::ScaleOld { from, to, .. } => (old_rs + to - from, new_rs),
        }
    }
}

/// The (old, new) sizes the controller writes when the brake update for a canary of
/// `canary_pods` in `mode` meets a settled Deployment of `replicas`, starting with `(N, 0)`:
/// surge `(N,0) (N,k)`, replace `(N,0) (N-k,0) (N-k,k)`. No canary pod becomes available, so
/// this is where the rollout stops.
pub fn brake_sequence(replicas: i32, mode: CanaryMode, canary_pods: i32) -> Vec<(i32, i32)> {
    let mut model = DeploymentModel::settled(replicas, brake_strategy(mode, canary_pods));
    let mut sizes = vec![(replicas, 0)];
    let mut current = (replicas, 0);
    for write in model.rolling_until_quiescent() {
        current = write.apply_to(current);
        if sizes.last() != Some(&current) {
            sizes.push(current);
        }
    }
    sizes
}

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
fn is_saturated(replicas: i32, rs: &ReplicaSetModel) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iop(text: &str) -> IntOrPercent {
        text.parse().expect("valid IntOrPercent")
    }

    fn sizes(states: &[RolloutState]) -> Vec<(i32, i32)> {
        states.iter().map(RolloutState::sizes).collect()
    }

    #[test]
    fn int_or_percent_parses_and_round_trips() {
        assert_eq!(iop("3"), IntOrPercent::Int(3));
        assert_eq!(iop("25%"), IntOrPercent::Percent(25));
        assert_eq!(iop("-1"), IntOrPercent::Int(-1));
        for text in ["0", "3", "25%", "0%", "150%"] {
            assert_eq!(iop(text).to_string(), text);
        }
        for bad in ["", "%", "-5%", "2.5%", "abc", "3 ", "x%"] {
            assert!(
                bad.parse::<IntOrPercent>().is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn int_or_percent_serializes_like_kubernetes() {
        assert_eq!(serde_json::to_string(&IntOrPercent::Int(1)).unwrap(), "1");
        assert_eq!(
            serde_json::to_string(&IntOrPercent::Percent(25)).unwrap(),
            "\"25%\""
        );
        assert_eq!(
            serde_json::from_str::<IntOrPercent>("\"10%\"").unwrap(),
            IntOrPercent::Percent(10)
        );
        assert_eq!(
            serde_json::from_str::<IntOrPercent>("2").unwrap(),
            IntOrPercent::Int(2)
        );
        // intstr refuses a string that is not a percentage.
        assert!(serde_json::from_str::<IntOrPercent>("\"2\"").is_err());
    }

    #[test]
    fn scaled_value_rounds_like_intstr() {
        // 25% of 10 = 2.5: maxSurge rounds up to 3, maxUnavailable down to 2.
        assert_eq!(IntOrPercent::Percent(25).scaled_value(10, true), 3);
        assert_eq!(IntOrPercent::Percent(25).scaled_value(10, false), 2);
        assert_eq!(IntOrPercent::Percent(20).scaled_value(10, true), 2);
        assert_eq!(IntOrPercent::Percent(1).scaled_value(1, true), 1);
        assert_eq!(IntOrPercent::Percent(1).scaled_value(1, false), 0);
        assert_eq!(IntOrPercent::Percent(0).scaled_value(7, true), 0);
        assert_eq!(IntOrPercent::Int(4).scaled_value(100, true), 4);
    }

    #[test]
    fn fenceposts_follow_resolve_fenceposts() {
        // (maxSurge, maxUnavailable, replicas) -> (surge, unavailable)
        let cases = [
            ("25%", "25%", 10, 3, 2),
            ("25%", "25%", 1, 1, 0),
            // The examples in ResolveFenceposts' doc comment.
            ("0%", "1%", 2, 0, 1),
            ("1%", "25%", 2, 1, 0),
            ("1%", "0%", 1, 1, 0),
            // Both round to zero: maxUnavailable becomes 1.
            ("0", "10%", 5, 0, 1),
            // MaxUnavailable's guards: never more than replicas, 0 for 0 replicas.
            ("0", "5", 3, 0, 3),
            ("0", "10%", 0, 0, 0),
            ("150%", "0", 4, 6, 0),
        ];
        for (surge, unavailable, replicas, max_surge, max_unavailable) in cases {
            assert_eq!(
                resolve_fenceposts(iop(surge), iop(unavailable), replicas).unwrap(),
                Fenceposts {
                    max_surge,
                    max_unavailable
                },
                "{surge}/{unavailable} of {replicas}"
            );
        }
        assert_eq!(
            resolve_fenceposts(iop("1"), iop("0"), -1),
            Err(RolloutMathError::NegativeReplicas { replicas: -1 })
        );
    }

    #[test]
    fn validation_reports_the_api_servers_messages() {
        let violations = |s: IntOrPercent, u: IntOrPercent| match validate_rolling_update(s, u) {
            Ok(()) => Vec::new(),
            Err(RolloutMathError::InvalidStrategy { violations }) => {
                violations.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("unexpected error {other}"),
        };
        assert_eq!(
            violations(iop("0"), iop("0")),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
            ]
        );
        assert_eq!(
            violations(iop("0%"), iop("0%")),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
            ]
        );
        assert_eq!(
            violations(iop("1"), iop("101%")),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%"
            ]
        );
        assert_eq!(
            violations(iop("-1"), iop("1")),
            [
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        // A negative maxUnavailable is not zero: only the sign rule is broken.
        assert_eq!(
            violations(iop("0"), iop("-2")),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: -2: must be greater than or equal to 0"
            ]
        );
        assert_eq!(violations(iop("200%"), iop("0")), Vec::<String>::new());
        assert_eq!(violations(iop("0"), iop("100%")), Vec::<String>::new());
        let err = resolve_fenceposts(iop("0"), iop("0"), 3).unwrap_err();
        assert!(
            err.to_string()
                .contains("may not be 0 when `maxSurge` is 0"),
            "{err}"
        );
    }

    #[test]
    fn canary_mode_and_size_parse() {
        assert_eq!("surge".parse::<CanaryMode>().unwrap(), CanaryMode::Surge);
        assert_eq!(
            "replace".parse::<CanaryMode>().unwrap(),
            CanaryMode::Replace
        );
        assert!("Surge".parse::<CanaryMode>().is_err());
        assert_eq!(
            serde_json::to_string(&CanaryMode::Replace).unwrap(),
            "\"replace\""
        );
        assert_eq!("1".parse::<CanarySize>().unwrap(), CanarySize::Pods(1));
        assert_eq!(
            "10%".parse::<CanarySize>().unwrap(),
            CanarySize::Percent(10.0)
        );
        assert_eq!(
            "2.5%".parse::<CanarySize>().unwrap(),
            CanarySize::Percent(2.5)
        );
        assert_eq!(
            "100%".parse::<CanarySize>().unwrap(),
            CanarySize::Percent(100.0)
        );
        for bad in [
            "0", "-1", "0%", "-5%", "100.5%", "101%", "abc", "nan%", "inf%", "1e1%", "%", "",
        ] {
            assert!(
                bad.parse::<CanarySize>().is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(CanarySize::Percent(2.5).to_string(), "2.5%");
        assert_eq!(
            serde_json::to_string(&CanarySize::Percent(5.0)).unwrap(),
            "\"5%\""
        );
    }

    #[test]
    fn percent_resolves_to_the_nearest_traffic_share() {
        let pods =
            |size: &str, n, mode| resolve_canary(size.parse().unwrap(), n, mode).map(|c| c.pods);
        // Surge 10 replicas: 1 pod = 9.09% is the smallest share there is.
        assert_eq!(pods("5%", 10, CanaryMode::Surge), Ok(1));
        // Surge 10: 2 pods = 16.7%, 3 pods = 23.1%; 20% is nearer 23.1% (3.1 vs 3.3 points).
        assert_eq!(pods("20%", 10, CanaryMode::Surge), Ok(3));
        // Replace 10: 15% lies exactly between 1 (10%) and 2 (20%): tie goes to fewer pods.
        assert_eq!(pods("15%", 10, CanaryMode::Replace), Ok(1));
        assert_eq!(pods("25%", 10, CanaryMode::Replace), Ok(2));
        // Surge cannot exceed 50%: 80% gives k = N.
        assert_eq!(pods("80%", 4, CanaryMode::Surge), Ok(4));
        // Replace keeps one stable pod: 100% of 4 gives 3.
        assert_eq!(pods("100%", 4, CanaryMode::Replace), Ok(3));
        // 5% of 19 surge is exact: 1/(19+1).
        let exact = resolve_canary("5%".parse().unwrap(), 19, CanaryMode::Surge).unwrap();
        assert_eq!(exact.pods, 1);
        assert!((exact.traffic_share() - 0.05).abs() < 1e-12);
        assert_eq!(exact.extra_pods(), 1);
        let replace = resolve_canary(CanarySize::Pods(1), 20, CanaryMode::Replace).unwrap();
        assert_eq!(replace.stable_pods, 19);
        assert_eq!(replace.extra_pods(), 0);
        assert!((replace.traffic_share() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn canary_sizes_out_of_range_are_refused_with_advice() {
        let err = resolve_canary(CanarySize::Pods(11), 10, CanaryMode::Surge).unwrap_err();
        assert_eq!(
            err,
            RolloutMathError::CanaryLargerThanDeployment {
                canary_pods: 11,
                replicas: 10
            }
        );
        assert!(err.to_string().contains("use at most 10 pods"), "{err}");
        assert!(resolve_canary(CanarySize::Pods(10), 10, CanaryMode::Surge).is_ok());
        let err = resolve_canary(CanarySize::Pods(10), 10, CanaryMode::Replace).unwrap_err();
        assert!(err.to_string().contains("use at most 9 pods"), "{err}");
        assert_eq!(
            resolve_canary(CanarySize::Pods(1), 1, CanaryMode::Replace),
            Err(RolloutMathError::ReplaceLeavesNoStablePod {
                canary_pods: 1,
                replicas: 1
            })
        );
        assert_eq!(
            resolve_canary(CanarySize::Percent(50.0), 1, CanaryMode::Replace),
            Err(RolloutMathError::ReplaceLeavesNoStablePod {
                canary_pods: 1,
                replicas: 1
            })
        );
        assert_eq!(
            resolve_canary(CanarySize::Pods(1), 0, CanaryMode::Surge),
            Err(RolloutMathError::NoReplicas)
        );
        assert!(resolve_canary(CanarySize::Pods(0), 5, CanaryMode::Surge).is_err());
        assert!(resolve_canary(CanarySize::Percent(f64::NAN), 5, CanaryMode::Surge).is_err());
    }

    #[test]
    fn brake_strategy_is_k_and_zero() {
        assert_eq!(
            brake_strategy(CanaryMode::Surge, 2),
            Fenceposts {
                max_surge: 2,
                max_unavailable: 0
            }
        );
        assert_eq!(
            brake_strategy(CanaryMode::Replace, 2),
            Fenceposts {
                max_surge: 0,
                max_unavailable: 2
            }
        );
    }

    #[test]
    fn new_rs_target_follows_new_rs_new_replicas() {
        let fp = Fenceposts {
            max_surge: 3,
            max_unavailable: 2,
        };
        let snap = |new_rs, old_rs| RolloutSnapshot {
            replicas: 10,
            new_rs,
            new_available: 0,
            old_rs,
            old_available: old_rs,
        };
        // The example in reconcileOldReplicaSets: 10 replicas, surge 3, unavailable 2.
        assert_eq!(new_rs_target(&snap(0, 10), fp), 3);
        assert_eq!(new_rs_target(&snap(3, 8), fp), 5);
        assert_eq!(new_rs_target(&snap(5, 8), fp), 5);
        // Capped by N - new.
        assert_eq!(new_rs_target(&snap(9, 0), fp), 10);
        // Above N it is scaled down to N.
        assert_eq!(new_rs_target(&snap(12, 0), fp), 10);
    }

    #[test]
    fn old_scale_down_waits_for_availability() {
        let fp = Fenceposts {
            max_surge: 3,
            max_unavailable: 2,
        };
        // Case 1 of the Go comment: new pods crashloop, an old pod fails: nothing moves.
        let stuck = RolloutSnapshot {
            replicas: 10,
            new_rs: 5,
            new_available: 0,
            old_rs: 8,
            old_available: 7,
        };
        assert_eq!(old_rs_max_scale_down(&stuck, fp), 0);
        // Settled old RS after the template change: old goes to N - unavailable.
        let start = RolloutSnapshot {
            replicas: 10,
            new_rs: 3,
            new_available: 0,
            old_rs: 10,
            old_available: 10,
        };
        assert_eq!(old_rs_max_scale_down(&start, fp), 2);
        // Two new pods available: old may lose two more.
        let progress = RolloutSnapshot {
            replicas: 10,
            new_rs: 5,
            new_available: 2,
            old_rs: 8,
            old_available: 8,
        };
        assert_eq!(old_rs_max_scale_down(&progress, fp), 2);
        // Unhealthy old pods go first: 1 unhealthy, bound 13-8-3 = 2.
        let unhealthy = RolloutSnapshot {
            replicas: 10,
            new_rs: 5,
            new_available: 2,
            old_rs: 8,
            old_available: 7,
        };
        assert_eq!(old_rs_max_scale_down(&unhealthy, fp), 1 + 1);
        assert_eq!(
            old_rs_max_scale_down(
                &RolloutSnapshot {
                    replicas: 3,
                    new_rs: 3,
                    new_available: 3,
                    old_rs: 0,
                    old_available: 0
                },
                fp
            ),
            0
        );
    }

    #[test]
    fn native_sequences_worked_out_from_rolling_go() {
        // 1/0 with 3 replicas: surge one, wait, drop one old, surge again.
        let states = native_rollout_sequence(3, iop("1"), iop("0")).unwrap();
        assert_eq!(
            sizes(&states),
            [(3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]
        );
        let resting: Vec<bool> = states.iter().map(|s| s.resting).collect();
        assert_eq!(resting, [false, true, false, true, false, true, false]);
        // 0/1 with 3 replicas: the new RS is created at 0, the old one drops first.
        let states = native_rollout_sequence(3, iop("0"), iop("1")).unwrap();
        assert_eq!(
            sizes(&states),
            [(3, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]
        );
        // 25%/25% with 10 replicas = surge 3, unavailable 2: 3 new at once, old to 8, new to 5.
        let states = native_rollout_sequence(10, iop("25%"), iop("25%")).unwrap();
        assert_eq!(&sizes(&states)[..4], &[(10, 0), (10, 3), (8, 3), (8, 5)]);
        assert!(states[3].resting);
        // One new pod available: old 8 -> 7 (available 7 + 1 = 8 = minAvailable), new 5 -> 6.
        assert_eq!(&sizes(&states)[4..6], &[(7, 5), (7, 6)]);
        assert_eq!(states.last().unwrap().sizes(), (0, 10));
        // 1 replica, 25%/25% = surge 1, unavailable 0.
        assert_eq!(
            sizes(&native_rollout_sequence(1, iop("25%"), iop("25%")).unwrap()),
            [(1, 0), (1, 1), (0, 1)]
        );
        // 0/0 is refused exactly as the API server refuses it.
        assert!(matches!(
            native_rollout_sequence(5, iop("0"), iop("0")),
            Err(RolloutMathError::InvalidStrategy { .. })
        ));
    }

    #[test]
    fn brake_holds_the_canary_at_k() {
        for (mode, expected) in [
            (
                CanaryMode::Surge,
                vec![ControllerWrite::CreateNew { replicas: 2 }],
            ),
            (
                CanaryMode::Replace,
                vec![
                    ControllerWrite::CreateNew { replicas: 0 },
                    ControllerWrite::ScaleOld {
                        index: 0,
                        from: 10,
                        to: 8,
                    },
                    ControllerWrite::ScaleNew { from: 0, to: 2 },
                ],
            ),
        ] {
            let mut model = DeploymentModel::settled(10, brake_strategy(mode, 2));
            assert_eq!(model.rolling_until_quiescent(), expected, "{mode}");
            let snap = model.snapshot();
            assert_eq!(snap.new_rs, 2);
        }
    }

    #[test]
    fn brake_sequence_lists_every_write() {
        assert_eq!(brake_sequence(10, CanaryMode::Surge, 2), [(10, 0), (10, 2)]);
        assert_eq!(
            brake_sequence(10, CanaryMode::Replace, 2),
            [(10, 0), (8, 0), (8, 2)]
        );
        assert_eq!(brake_sequence(1, CanaryMode::Surge, 1), [(1, 0), (1, 1)]);
    }

    #[test]
    fn roll_over_cleans_up_unhealthy_old_pods_first() {
        // Case 2 of reconcileOldReplicaSets' comment: 10 replicas, surge 3, unavailable 2;
        // A has 8 available pods, B (the previous new one) 5 crashlooping pods; a new
        // template arrives. C starts at 0 (13 pods already), B's 5 unhealthy pods go
        // (13 - 8 - 0 = 5), and C can then grow by 5.
        let fenceposts = Fenceposts {
            max_surge: 3,
            max_unavailable: 2,
        };
        let mut model = DeploymentModel {
            replicas: 10,
            fenceposts,
            status_replicas: 13,
            old: vec![
                ReplicaSetModel {
                    available: 8,
                    ..replica_set("a", 1, 8, 13)
                },
                ReplicaSetModel {
                    available: 0,
                    ..replica_set("b", 2, 5, 13)
                },
            ],
            new: None,
        };
        assert_eq!(
            model.rolling_sync(),
            vec![
                ControllerWrite::CreateNew { replicas: 0 },
                ControllerWrite::ScaleOld {
                    index: 1,
                    from: 5,
                    to: 0
                },
            ]
        );
        assert_eq!(
            model.rolling_sync(),
            vec![ControllerWrite::ScaleNew { from: 0, to: 5 }]
        );
        assert_eq!(model.rolling_sync(), vec![]);
        assert_eq!(model.snapshot().old_rs, 8);
    }

    fn replica_set(name: &str, created: u64, replicas: i32, max_replicas: i32) -> ReplicaSetModel {
        ReplicaSetModel {
            name: name.to_owned(),
            created,
            replicas,
            available: replicas,
            desired_replicas: Some(10),
            max_replicas: Some(max_replicas),
        }
    }

    #[test]
    fn proportional_scale_spreads_a_scale_up() {
        // A paused surge canary (10 stable + 2 canary, annotation max 12) scaled to 20
        // replicas with maxSurge 2: allowed 22, 10 to add; stable gets round(10*22/12)=18 -> +8
        // (capped by allowed 10), canary round(2*22/12)=4 -> +2 (capped by the 2 left).
        let sets = [
            replica_set("stable", 1, 10, 12),
            replica_set("canary", 2, 2, 12),
        ];
        assert_eq!(proportional_scale(20, 2, 12, &sets).sizes, vec![18, 4]);
        // Raising maxSurge alone while paused also rescales both sides: 10+2 -> allowed 13.
        assert_eq!(proportional_scale(10, 3, 12, &sets).sizes, vec![11, 2]);
        // Scale down to 5 replicas, maxSurge 2: allowed 7, remove 5; stable
        // round(10*7/12)=6 -> -4, canary round(2*7/12)=1 -> -1.
        assert_eq!(proportional_scale(5, 2, 12, &sets).sizes, vec![6, 1]);
        // Missing annotation falls back to status.replicas.
        let mut no_annotation = sets.clone();
        no_annotation[0].max_replicas = None;
        assert_eq!(
            proportional_scale(20, 2, 12, &no_annotation).sizes,
            vec![18, 4]
        );
        // Equal sizes shrinking (allowed 5, have 6): both round to 3, so the leftover -1 goes
        // to the first in ReplicaSetsBySizeOlder order, the older one.
        let equal = [replica_set("a", 1, 3, 6), replica_set("b", 2, 3, 6)];
        assert_eq!(proportional_scale(4, 1, 6, &equal).sizes, vec![2, 3]);
    }

    #[test]
    fn paused_scale_matches_sync_scale() {
        let mut model = DeploymentModel::settled(10, brake_strategy(CanaryMode::Surge, 2));
        model.rolling_until_quiescent();
        model.status_replicas = 12;
        model.replicas = 20;
        model.fenceposts = Fenceposts {
            max_surge: 2,
            max_unavailable: 0,
        };
        model.scale();
        assert_eq!(model.snapshot().old_rs, 18);
        assert_eq!(model.snapshot().new_rs, 4);
        // A single active ReplicaSet simply takes all replicas.
        let mut single = DeploymentModel::settled(
            4,
            Fenceposts {
                max_surge: 1,
                max_unavailable: 0,
            },
        );
        single.replicas = 6;
        assert_eq!(
            single.scale(),
            vec![ControllerWrite::ScaleOld {
                index: 0,
                from: 4,
                to: 6
            }]
        );
    }

    fn strategy_value() -> impl Strategy<Value = IntOrPercent> {
        prop_oneof![
            (0..6i32).prop_map(IntOrPercent::Int),
            (0..=100i32).prop_map(IntOrPercent::Percent),
        ]
    }

    proptest! {
        #[test]
        fn native_rollout_invariants(
            replicas in 0..40i32,
            max_surge in strategy_value(),
            max_unavailable in strategy_value(),
        ) {
            let valid = validate_rolling_update(max_surge, max_unavailable).is_ok();
            let result = native_rollout_sequence(replicas, max_surge, max_unavailable);
            prop_assert_eq!(valid, result.is_ok());
            let Ok(states) = result else { return Ok(()) };
            let fp = resolve_fenceposts(max_surge, max_unavailable, replicas).unwrap();
            prop_assert_eq!(states.first().map(RolloutState::sizes), Some((replicas, 0)));
            prop_assert_eq!(states.last().map(RolloutState::sizes), Some((0, replicas)));
            for state in &states {
                // Never above N + surge pods.
                prop_assert!(state.old_rs + state.new_rs <= replicas + fp.max_surge, "{state:?}");
                // Never below N - unavailable available pods (old pods are all available).
                prop_assert!(state.old_rs + state.new_available >= replicas - fp.max_unavailable, "{state:?}");
                prop_assert!(state.new_rs <= replicas && state.old_rs >= 0 && state.new_rs >= 0);
            }
            // The new ReplicaSet only grows, the old ones only shrink.
            for pair in states.windows(2) {
                prop_assert!(pair[1].new_rs >= pair[0].new_rs && pair[1].old_rs <= pair[0].old_rs);
            }
        }

        #[test]
        fn resolved_canary_is_nearest_and_in_range(
            replicas in 1..200i32,
            percent in 0.01f64..=100.0,
            surge in any::<bool>(),
        ) {
            let mode = if surge { CanaryMode::Surge } else { CanaryMode::Replace };
            match resolve_canary(CanarySize::Percent(percent), replicas, mode) {
                Ok(canary) => {
                    prop_assert!(canary_pod_range(replicas, mode).contains(&canary.pods));
                    let error = (canary.traffic_share() - percent / 100.0).abs();
                    for other in canary_pod_range(replicas, mode) {
                        let share = ResolvedCanary::of(other, replicas, mode).traffic_share();
                        prop_assert!(error <= (share - percent / 100.0).abs() + 1e-12);
                    }
                }
                Err(err) => {
                    prop_assert_eq!(mode, CanaryMode::Replace);
                    prop_assert_eq!(replicas, 1);
                    prop_assert_eq!(err, RolloutMathError::ReplaceLeavesNoStablePod { canary_pods: 1, replicas: 1 });
                }
            }
        }

        #[test]
        fn proportional_scale_reaches_the_allowed_size(
            replicas in 1..60i32,
            max_surge in 0..10i32,
            old in 1..40i32,
            new in 1..40i32,
        ) {
            let before = old + new;
            let sets = [replica_set("old", 1, old, before), replica_set("new", 2, new, before)];
            let sizes = proportional_scale(replicas, max_surge, before, &sets).sizes;
            prop_assert_eq!(sizes.iter().sum::<i32>(), replicas + max_surge);
            prop_assert!(sizes.iter().all(|&s| s >= 0));
        }
    }
}
