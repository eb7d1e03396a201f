//! `IntOrPercent` as the API reads and writes it, the API server's validation of a
//! rolling update, and the fenceposts (resolved maxSurge/maxUnavailable).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::*;

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
pub(super) enum IntOrPercentRepr {
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

pub(super) fn parse_percent(text: &str) -> Result<IntOrPercent, RolloutMathError> {
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

pub(super) fn saturate_i32(value: i64) -> i32 {
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
pub(super) const INVALID_PERCENT_DETAIL: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

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
