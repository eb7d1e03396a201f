//! The metric judge: compares the canary's samples or values with the stable ones
//! (Mann-Whitney U test with a tolerance, or absolute thresholds).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::combine::Outcome;
use crate::stats::{self, Alternative};
use crate::text::format_number;

/// Which change of a metric is bad for the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Higher is worse (latency, error rate). The default.
    #[default]
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any significant change is bad.
    Either,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        })
    }
}

/// How the metric judge compares a canary sample with a stable sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgeConfig {
    /// Which change is bad.
    pub direction: Direction,
    /// Confidence needed to call a difference significant (Kayenta uses 0.98).
    pub confidence: f64,
    /// Relative change tolerated even when significant: 0.1 lets the canary be 10% worse.
    pub tolerance: f64,
    /// Absolute change always tolerated, so that 1 ms against 0.5 ms is not a failure.
    pub absolute_tolerance: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            direction: Direction::Increase,
            confidence: 0.98,
            tolerance: 0.1,
            absolute_tolerance: 0.0,
        }
    }
}

/// How the judge classified a metric, in Kayenta's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// The canary is significantly higher, beyond the tolerance.
    High,
    /// The canary is significantly lower, beyond the tolerance.
    Low,
    /// No difference beyond the tolerance.
    Same,
    /// The data cannot decide (too few finite values).
    NoData,
}

/// The judge's answer for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// How the canary compares.
    pub classification: Classification,
    /// The check outcome that follows from the classification and the direction.
    pub outcome: Outcome,
    /// Median of the canary's finite values.
    pub canary: Option<f64>,
    /// Median of the stable pods' finite values.
    pub stable: Option<f64>,
    /// The Mann-Whitney p-value, when the test was run.
    pub p_value: Option<f64>,
    /// Why, for a person.
    pub reason: String,
}

fn outcome_for(classification: Classification, direction: Direction) -> Outcome {
    match (classification, direction) {
        (Classification::NoData, _) => Outcome::Inconclusive,
        (Classification::Same, _) => Outcome::Pass,
        (Classification::High, Direction::Increase | Direction::Either) => Outcome::Fail,
        (Classification::Low, Direction::Decrease | Direction::Either) => Outcome::Fail,
        (Classification::High | Classification::Low, _) => Outcome::Pass,
    }
}

/// The smallest two-sided p-value any split of `n1` and `n2` distinct values can reach.
fn smallest_two_sided_p_value(n1: usize, n2: usize) -> f64 {
    // 2 / C(n1 + n2, n1), computed in floating point to avoid overflow.
    let k = n1.min(n2);
    let n = n1 + n2;
    let mut combinations = 1.0f64;
    for i in 0..k {
        combinations = combinations * (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 / combinations).min(1.0)
}

fn describe_change(canary: f64, stable: f64) -> String {
    if stable != 0.0 {
        format!("{:+.1}%", 100.0 * (canary - stable) / stable.abs())
    } else {
        format!("{:+}", canary - stable)
    }
}

/// Compares canary and stable samples of one metric with a Mann-Whitney U test, like Kayenta's
/// judge: NaN and infinite values are dropped (and said so), a difference counts only if it is
/// significant at `config.confidence` and larger than the tolerance band, and its direction
/// decides whether it is a failure. Samples too small for the test to ever reach the
/// confidence are inconclusive rather than a silent pass.
pub fn judge_samples(canary: &[f64], stable: &[f64], config: &JudgeConfig) -> Judgement {
    let finite =
        |sample: &[f64]| -> Vec<f64> { sample.iter().copied().filter(|v| v.is_finite()).collect() };
    let canary_values = finite(canary);
    let stable_values = finite(stable);
    let dropped = (canary.len() - canary_values.len()) + (stable.len() - stable_values.len());
    let dropped_note = if dropped > 0 {
        format!(" ({dropped} NaN or infinite values ignored)")
    } else {
        String::new()
    };
    let canary_median = stats::median(&canary_values);
    let stable_median = stats::median(&stable_values);
    let no_data = |reason: String| Judgement {
        classification: Classification::NoData,
        outcome: Outcome::Inconclusive,
        canary: canary_median,
        stable: stable_median,
        p_value: None,
        reason,
    };
    if canary_values.is_empty() || stable_values.is_empty() {
        let side = match (canary_values.is_empty(), stable_values.is_empty()) {
            (true, true) => "canary and stable",
            (true, false) => "canary",
            _ => "stable",
        };
        return no_data(format!("no finite {side} values{dropped_note}"));
    }
    let alpha = 1.0 - config.confidence;
    if canary_values == stable_values
        || (canary_values.iter().all(|v| *v == canary_values[0])
            && stable_values.iter().all(|v| *v == canary_values[0]))
    {
        // Identical data is no difference however small the samples are.
    } else if smallest_two_sided_p_value(canary_values.len(), stable_values.len()) > alpha {
        // The sample that would decide: the fewest values per side (at least as many as
        // now) with which a difference could reach the confidence.
        let (canary_n, stable_n) = (canary_values.len(), stable_values.len());
        let needed = (canary_n.min(stable_n).max(1)..=10_000)
            .find(|&n| smallest_two_sided_p_value(n.max(canary_n), n.max(stable_n)) <= alpha)
            .map_or("more".to_string(), |n| format!("at least {n}"));
        return no_data(format!(
            "{canary_n} canary and {stable_n} stable values are too few to show a difference at {:.0}% confidence: {needed} values per side would decide{dropped_note}",
            config.confidence * 100.0
        ));
    }
    let (Some(canary_mid), Some(stable_mid)) = (canary_median, stable_median) else {
        return no_data(format!("no finite values{dropped_note}"));
    };
    let test = match stats::mann_whitney_u(&canary_values, &stable_values, Alternative::TwoSided) {
        Ok(test) => test,
        Err(error) => return no_data(format!("{error}{dropped_note}")),
    };
    let shift = stats::hodges_lehmann_shift(&canary_values, &stable_values).unwrap_or(0.0);
    let allowed = (config.tolerance * stable_mid.abs()).max(config.absolute_tolerance);
    let significant = test.p_value < alpha;
    let classification = if significant && shift > allowed {
        Classification::High
    } else if significant && -shift > allowed {
        Classification::Low
    } else {
        Classification::Same
    };
    let outcome = outcome_for(classification, config.direction);
    let summary = format!(
        "canary median {} vs stable {} ({}), shift {}, {} (n={}/{}){}",
        format_number(canary_mid),
        format_number(stable_mid),
        describe_change(canary_mid, stable_mid),
        format_number(shift),
        if test.p_value < 0.0001 {
            "p<0.0001".to_string()
        } else {
            format!("p={:.4}", test.p_value)
        },
        canary_values.len(),
        stable_values.len(),
        dropped_note
    );
    let reason = match (classification, outcome) {
        (Classification::Same, _) if !significant => {
            format!("no significant difference: {summary}")
        }
        (Classification::Same, _) => format!(
            "difference within tolerance of {}: {summary}",
            format_number(allowed)
        ),
        (_, Outcome::Fail) => format!(
            "canary significantly {} beyond tolerance {}: {summary}",
            if classification == Classification::High {
                "higher"
            } else {
                "lower"
            },
            format_number(allowed)
        ),
        _ => format!(
            "canary significantly {} (an improvement for direction {}): {summary}",
            if classification == Classification::High {
                "higher"
            } else {
                "lower"
            },
            config.direction
        ),
    };
    Judgement {
        classification,
        outcome,
        canary: Some(canary_mid),
        stable: Some(stable_mid),
        p_value: Some(test.p_value),
        reason,
    }
}

/// Compares two single values (an instant query, an error rate) with the tolerance band:
/// without samples there is no test, so any change beyond the tolerance counts.
pub fn judge_values(canary: Option<f64>, stable: Option<f64>, config: &JudgeConfig) -> Judgement {
    let no_data = |reason: &str| Judgement {
        classification: Classification::NoData,
        outcome: Outcome::Inconclusive,
        canary,
        stable,
        p_value: None,
        reason: reason.to_string(),
    };
    let (c, s) = match (canary, stable) {
        (Some(c), Some(s)) if c.is_finite() && s.is_finite() => (c, s),
        (None, _) => return no_data("no canary value"),
        (_, None) => return no_data("no stable value"),
        _ => return no_data("a value is NaN or infinite"),
    };
    let allowed = (config.tolerance * s.abs()).max(config.absolute_tolerance);
    let classification = if c - s > allowed {
        Classification::High
    } else if s - c > allowed {
        Classification::Low
    } else {
        Classification::Same
    };
    let outcome = outcome_for(classification, config.direction);
    let reason = format!(
        "canary {} vs stable {} ({}), tolerance {}{}",
        format_number(c),
        format_number(s),
        describe_change(c, s),
        format_number(allowed),
        match outcome {
            Outcome::Fail => format!(": worse in direction {}", config.direction),
            _ => String::new(),
        }
    );
    Judgement {
        classification,
        outcome,
        canary: Some(c),
        stable: Some(s),
        p_value: None,
        reason,
    }
}

/// Absolute bounds for a canary value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// The canary value must not be above this.
    pub max: Option<f64>,
    /// The canary value must not be below this.
    pub min: Option<f64>,
}

impl Threshold {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        self.max.is_none() && self.min.is_none()
    }

    /// The violated bound, described, if `value` is outside.
    pub fn violation(&self, value: f64) -> Option<String> {
        if let Some(max) = self.max
            && value > max
        {
            return Some(format!(
                "canary value {} is above the maximum {}",
                format_number(value),
                format_number(max)
            ));
        }
        if let Some(min) = self.min
            && value < min
        {
            return Some(format!(
                "canary value {} is below the minimum {}",
                format_number(value),
                format_number(min)
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_values_say_how_many_would_decide() {
        // Two against two can never reach 98% (the smallest two-sided p is 1/3); five per
        // side can (2/252).
        let judgement = judge_samples(&[1.0, 2.0], &[3.0, 4.0], &JudgeConfig::default());
        assert_eq!(
            judgement.outcome,
            Outcome::Inconclusive,
            "{}",
            judgement.reason
        );
        assert!(
            judgement
                .reason
                .contains("at least 5 values per side would decide"),
            "{}",
            judgement.reason
        );
    }
}
