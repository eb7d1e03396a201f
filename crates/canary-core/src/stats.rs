//! Statistics for canary analysis: the Mann-Whitney U test and the Hodges-Lehmann shift.
//!
//! The test is implemented here rather than taken from `statrs` because statrs 0.19.1's
//! exact p-value is inverted when the first sample is not larger than the second, and a
//! canary usually has fewer observations than the stable side.
//!
//! For small samples (at most [`EXACT_MAX_TOTAL`] observations in all) the p-value is the
//! exact permutation probability, computed by counting the ways the observed midranks can be
//! split between the samples; this is exact with ties too. Larger samples use the normal
//! approximation with tie correction and continuity correction.

use statrs::function::erf::erfc;
use statrs::function::factorial::ln_binomial;
use thiserror::Error;

/// Largest total sample size for which the exact permutation distribution is computed.
///
/// The counting table has about `n1 * N^2` cells, so 50 keeps one test well under a
/// millisecond while the normal approximation is already good beyond it.
pub const EXACT_MAX_TOTAL: usize = 50;

/// Which difference between the samples the test looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// The samples differ in either direction.
    TwoSided,
    /// The first sample tends to be larger than the second.
    Greater,
    /// The first sample tends to be smaller than the second.
    Less,
}

/// How a p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PValueMethod {
    /// Exact permutation distribution of the rank sum (with ties).
    Exact,
    /// Normal approximation with tie and continuity correction.
    NormalApproximation,
}

/// The result of a Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: pairs where the first sample's value is larger, ties counting one half.
    pub u: f64,
    /// Probability under the null hypothesis of a result at least as extreme as the one observed.
    pub p_value: f64,
    /// How `p_value` was computed.
    pub method: PValueMethod,
}

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatsError {
    /// One of the samples has no values.
    #[error("the {which} sample is empty")]
    EmptySample {
        /// "first" or "second".
        which: &'static str,
    },
    /// A value is NaN or infinite; callers must drop or explain such values first.
    #[error("the {which} sample contains a value that is not a finite number")]
    NonFinite {
        /// "first" or "second".
        which: &'static str,
    },
}

fn check_sample(sample: &[f64], which: &'static str) -> Result<(), StatsError> {
    if sample.is_empty() {
        return Err(StatsError::EmptySample { which });
    }
    if sample.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite { which });
    }
    Ok(())
}

/// Tie structure of the pooled sample: for each group of equal values, its size and how many
/// of its members come from the first sample.
struct Ranking {
    /// (group size, members from the first sample), in increasing value order.
    groups: Vec<(usize, usize)>,
}

impl Ranking {
    fn new(first: &[f64], second: &[f64]) -> Self {
        let mut pooled: Vec<(f64, bool)> = first
            .iter()
            .map(|&v| (v, true))
            .chain(second.iter().map(|&v| (v, false)))
            .collect();
        pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut groups = Vec::new();
        let mut start = 0;
        while start < pooled.len() {
            let mut end = start + 1;
            // Compare with == so that -0.0 and 0.0 are one tie group, as they are equal values.
            while end < pooled.len() && pooled[end].0 == pooled[start].0 {
                end += 1;
            }
            let from_first = pooled[start..end].iter().filter(|(_, f)| *f).count();
            groups.push((end - start, from_first));
            start = end;
        }
        Ranking { groups }
    }

    /// Twice the midrank of each group (an integer), in group order.
    fn doubled_midranks(&self) -> Vec<u64> {
        let mut before = 0u64;
        self.groups
            .iter()
            .map(|&(size, _)| {
                // Ranks before+1 ..= before+size; their mean doubled is 2*before + size + 1.
                let doubled = 2 * before + size as u64 + 1;
                before += size as u64;
                doubled
            })
            .collect()
    }

    /// Twice the rank sum of the first sample.
    fn doubled_rank_sum_of_first(&self) -> u64 {
        self.doubled_midranks()
            .iter()
            .zip(&self.groups)
            .map(|(r, &(_, from_first))| r * from_first as u64)
            .sum()
    }

    /// Sum over tie groups of t^3 - t, for the variance's tie correction.
    fn tie_term(&self) -> f64 {
        self.groups
            .iter()
            .map(|&(size, _)| {
                let t = size as f64;
                t * t * t - t
            })
            .sum()
    }
}

/// Runs the two-sample Mann-Whitney U test of `first` against `second`.
///
/// ```
/// use canary_core::stats::{mann_whitney_u, Alternative};
/// let canary = [12.0, 14.0, 15.0, 16.0];
/// let stable = [1.0, 2.0, 3.0, 4.0, 5.0];
/// let result = mann_whitney_u(&canary, &stable, Alternative::Greater).unwrap();
/// assert_eq!(result.u, 20.0);
/// assert!(result.p_value < 0.01);
/// ```
pub fn mann_whitney_u(
    first: &[f64],
    second: &[f64],
    alternative: Alternative,
) -> Result<MannWhitney, StatsError> {
    check_sample(first, "first")?;
    check_sample(second, "second")?;
    let n1 = first.len();
    let n2 = second.len();
    let ranking = Ranking::new(first, second);
    let doubled_r1 = ranking.doubled_rank_sum_of_first();
    let u = doubled_r1 as f64 / 2.0 - (n1 * (n1 + 1)) as f64 / 2.0;
    if n1 + n2 <= EXACT_MAX_TOTAL {
        let p_value = exact_p_value(&ranking, n1, doubled_r1, alternative);
        Ok(MannWhitney {
            u,
            p_value,
            method: PValueMethod::Exact,
        })
    } else {
        let p_value = normal_p_value(&ranking, n1, n2, u, alternative);
        Ok(MannWhitney {
            u,
            p_value,
            method: PValueMethod::NormalApproximation,
        })
    }
}

/// Exact permutation p-value: the share of all ways to pick `n1` of the pooled values whose
/// rank sum is at least as extreme as the observed one.
fn exact_p_value(ranking: &Ranking, n1: usize, doubled_r1: u64, alternative: Alternative) -> f64 {
    let midranks = ranking.doubled_midranks();
    let total: usize = ranking.groups.iter().map(|g| g.0).sum();
    let max_sum = (total * (total + 1)) as u64; // doubled sum of all ranks
    let width = max_sum as usize + 1;
    // ways[k * width + s]: number of ways to choose k values with doubled rank sum s.
    let mut ways = vec![0f64; (n1 + 1) * width];
    let mut next = vec![0f64; (n1 + 1) * width];
    ways[0] = 1.0;
    // Sums above the ranks seen so far cannot have any way yet: skip them.
    let mut reachable = 0usize;
    for (&(size, _), &rank) in ranking.groups.iter().zip(&midranks) {
        next.fill(0.0);
        for k in 0..=n1 {
            for s in 0..=reachable {
                let count = ways[k * width + s];
                if count == 0.0 {
                    continue;
                }
                let mut choose = 1f64; // C(size, take)
                for take in 0..=size.min(n1 - k) {
                    let sum = s + take * rank as usize;
                    next[(k + take) * width + sum] += count * choose;
                    choose = choose * (size - take) as f64 / (take + 1) as f64;
                }
            }
        }
        reachable = (reachable + size * rank as usize).min(width - 1);
        std::mem::swap(&mut ways, &mut next);
    }
    let row = &ways[n1 * width..(n1 + 1) * width];
    let all: f64 = row.iter().sum();
    let doubled_mean = (n1 * (total + 1)) as i64;
    let observed = doubled_r1 as i64;
    let extreme: f64 = row
        .iter()
        .enumerate()
        .filter(|&(s, _)| {
            let s = s as i64;
            match alternative {
                Alternative::Greater => s >= observed,
                Alternative::Less => s <= observed,
                Alternative::TwoSided => {
                    (s - doubled_mean).abs() >= (observed - doubled_mean).abs()
                }
            }
        })
        .map(|(_, &c)| c)
        .sum();
    (extreme / all).clamp(0.0, 1.0)
}

/// Standard normal upper tail P(Z >= z).
fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn normal_p_value(
    ranking: &Ranking,
    n1: usize,
    n2: usize,
    u: f64,
    alternative: Alternative,
) -> f64 {
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let total = n1f + n2f;
    let mean = n1f * n2f / 2.0;
    let variance =
        n1f * n2f / 12.0 * ((total + 1.0) - ranking.tie_term() / (total * (total - 1.0)));
    if variance <= 0.0 {
        // Every value is equal: no evidence of any difference.
        return 1.0;
    }
    let sd = variance.sqrt();
    let p = match alternative {
        Alternative::Greater => normal_upper_tail((u - mean - 0.5) / sd),
        Alternative::Less => normal_upper_tail((mean - u - 0.5) / sd),
        Alternative::TwoSided => {
            let z = ((u - mean).abs() - 0.5).max(0.0) / sd;
            2.0 * normal_upper_tail(z)
        }
    };
    p.clamp(0.0, 1.0)
}

/// The median of a sample of finite numbers, `None` when it is empty.
pub fn median(sample: &[f64]) -> Option<f64> {
    if sample.is_empty() {
        return None;
    }
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The arithmetic mean of a sample, `None` when it is empty.
pub fn mean(sample: &[f64]) -> Option<f64> {
    if sample.is_empty() {
        None
    } else {
        Some(sample.iter().sum::<f64>() / sample.len() as f64)
    }
}

/// At most this many values per sample enter the Hodges-Lehmann estimate: the pairwise
/// differences grow with the product of the sizes, and a long range query must not cost
/// gigabytes for an estimate that evenly spread values give as well.
pub const HODGES_LEHMANN_MAX_VALUES: usize = 1000;

/// The Hodges-Lehmann estimate of how far `first` is shifted from `second`: the median of
/// all pairwise differences. It is the location shift the Mann-Whitney test is about, and is
/// robust to the outliers a latency series is full of. Samples larger than
/// [`HODGES_LEHMANN_MAX_VALUES`] are thinned to evenly spaced order statistics first.
pub fn hodges_lehmann_shift(first: &[f64], second: &[f64]) -> Option<f64> {
    let first = thinned(first);
    let second = thinned(second);
    let differences: Vec<f64> = first
        .iter()
        .flat_map(|a| second.iter().map(move |b| a - b))
        .collect();
    median(&differences)
}

/// The sample itself if small enough, else evenly spaced order statistics of it.
fn thinned(sample: &[f64]) -> Vec<f64> {
    if sample.len() <= HODGES_LEHMANN_MAX_VALUES {
        return sample.to_vec();
    }
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    (0..HODGES_LEHMANN_MAX_VALUES)
        .map(|i| sorted[i * last / (HODGES_LEHMANN_MAX_VALUES - 1)])
        .collect()
}

/// One-sided Fisher exact test: the probability, if failures were spread over both groups
/// regardless of group, that the first group gets at least `first_failures` of them.
///
/// Used to tell a canary whose error rate is really higher from one that was unlucky in a
/// handful of requests. `None` if a count exceeds its total.
///
/// ```
/// use canary_core::stats::fisher_exact_greater;
/// // 9 of 30 canary requests failed, none of 30 stable ones: clearly not chance.
/// assert!(fisher_exact_greater(9, 30, 0, 30).unwrap() < 0.01);
/// // 1 of 20 against 0 of 20 happens half the time by chance.
/// assert!((fisher_exact_greater(1, 20, 0, 20).unwrap() - 0.5).abs() < 1e-12);
/// ```
pub fn fisher_exact_greater(
    first_failures: u64,
    first_total: u64,
    second_failures: u64,
    second_total: u64,
) -> Option<f64> {
    if first_failures > first_total || second_failures > second_total {
        return None;
    }
    let total = first_total + second_total;
    let failures = first_failures + second_failures;
    let successes = total - failures;
    let ln_all = ln_binomial(total, first_total);
    // P(X = x) for X the first group's failures, hypergeometric with the margins fixed.
    let probability = |x: u64| -> f64 {
        if x > failures || first_total - x > successes {
            return 0.0;
        }
        (ln_binomial(failures, x) + ln_binomial(successes, first_total - x) - ln_all).exp()
    };
    let p: f64 = (first_failures..=failures.min(first_total))
        .map(probability)
        .sum();
    Some(p.clamp(0.0, 1.0))
}

/// One-sided test that events (error lines) happen at a higher rate in the first group:
/// given the total count, under equal rates the first group's share is binomial with
/// probability `first_exposure / (first_exposure + second_exposure)`; this is the probability
/// of at least `first_count`. Exposures are observation times (e.g. pod-minutes).
///
/// `None` when an exposure is not a positive finite number.
///
/// ```
/// use canary_core::stats::poisson_rate_greater;
/// // 60 error lines in 1 pod-minute against none in 2: not chance.
/// assert!(poisson_rate_greater(60, 1.0, 0, 2.0).unwrap() < 1e-20);
/// // 2 against 1 over equal time: quite possibly chance.
/// assert!(poisson_rate_greater(2, 1.0, 1, 1.0).unwrap() > 0.4);
/// ```
pub fn poisson_rate_greater(
    first_count: u64,
    first_exposure: f64,
    second_count: u64,
    second_exposure: f64,
) -> Option<f64> {
    let valid = |x: f64| x.is_finite() && x > 0.0;
    if !valid(first_exposure) || !valid(second_exposure) {
        return None;
    }
    let total = first_count + second_count;
    let share = first_exposure / (first_exposure + second_exposure);
    let (ln_share, ln_rest) = (share.ln(), (1.0 - share).ln());
    let p: f64 = (first_count..=total)
        .map(|x| {
            let ln_p = ln_binomial(total, x) + x as f64 * ln_share + (total - x) as f64 * ln_rest;
            ln_p.exp()
        })
        .sum();
    Some(p.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
