use super::*;
use proptest::prelude::*;

/// The p-value by enumerating every way of choosing which pooled values form the first
/// sample: the definition the exact algorithm must reproduce.
fn brute_force_p_value(first: &[f64], second: &[f64], alternative: Alternative) -> f64 {
    let pooled: Vec<f64> = first.iter().chain(second).copied().collect();
    let n = pooled.len();
    let n1 = first.len();
    let u_of = |chosen: &[usize]| -> f64 {
        let mut u = 0.0;
        for i in 0..n {
            if !chosen.contains(&i) {
                continue;
            }
            for j in 0..n {
                if chosen.contains(&j) {
                    continue;
                }
                if pooled[i] > pooled[j] {
                    u += 1.0;
                } else if pooled[i] == pooled[j] {
                    u += 0.5;
                }
            }
        }
        u
    };
    let observed: Vec<usize> = (0..n1).collect();
    let u_observed = u_of(&observed);
    let mean = (n1 * (n - n1)) as f64 / 2.0;
    let (mut extreme, mut all) = (0u64, 0u64);
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != n1 {
            continue;
        }
        let chosen: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let u = u_of(&chosen);
        all += 1;
        let is_extreme = match alternative {
            Alternative::Greater => u >= u_observed - 1e-9,
            Alternative::Less => u <= u_observed + 1e-9,
            Alternative::TwoSided => (u - mean).abs() >= (u_observed - mean).abs() - 1e-9,
        };
        if is_extreme {
            extreme += 1;
        }
    }
    extreme as f64 / all as f64
}

fn alternatives() -> impl Strategy<Value = Alternative> {
    prop_oneof![
        Just(Alternative::TwoSided),
        Just(Alternative::Greater),
        Just(Alternative::Less)
    ]
}

/// Small integer-valued samples so that ties are frequent.
fn small_sample(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((0i32..6).prop_map(f64::from), 1..=max_len)
}

/// Continuous samples: ties practically never happen.
fn continuous_sample(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1000.0f64..1000.0, len)
}

proptest! {
    #[test]
    fn exact_p_value_equals_brute_force_with_ties(
        first in small_sample(7),
        second in small_sample(7),
        alternative in alternatives(),
    ) {
        let result = mann_whitney_u(&first, &second, alternative).unwrap();
        prop_assert_eq!(result.method, PValueMethod::Exact);
        let expected = brute_force_p_value(&first, &second, alternative);
        prop_assert!((result.p_value - expected).abs() < 1e-9,
            "exact {} vs brute force {}", result.p_value, expected);
    }

    #[test]
    fn exact_p_value_equals_brute_force_without_ties(
        first in continuous_sample(1..=6),
        second in continuous_sample(1..=8),
        alternative in alternatives(),
    ) {
        let result = mann_whitney_u(&first, &second, alternative).unwrap();
        let expected = brute_force_p_value(&first, &second, alternative);
        prop_assert!((result.p_value - expected).abs() < 1e-9,
            "exact {} vs brute force {}", result.p_value, expected);
    }

    #[test]
    fn swapping_samples_mirrors_the_one_sided_tests(
        first in small_sample(12),
        second in small_sample(20),
    ) {
        let greater = mann_whitney_u(&first, &second, Alternative::Greater).unwrap();
        let less_swapped = mann_whitney_u(&second, &first, Alternative::Less).unwrap();
        prop_assert!((greater.p_value - less_swapped.p_value).abs() < 1e-9);
        let u_swapped = less_swapped.u;
        prop_assert!((greater.u + u_swapped - (first.len() * second.len()) as f64).abs() < 1e-9);
    }

    #[test]
    fn u_counts_pairs(first in small_sample(15), second in small_sample(15)) {
        let mut pairs = 0.0;
        for a in &first {
            for b in &second {
                pairs += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
            }
        }
        let result = mann_whitney_u(&first, &second, Alternative::TwoSided).unwrap();
        prop_assert_eq!(result.u, pairs);
    }

    #[test]
    fn normal_approximation_is_close_to_exact_near_the_switch(
        first in prop::collection::vec((0i32..40).prop_map(f64::from), 20..=25),
        second in prop::collection::vec((0i32..40).prop_map(f64::from), 20..=25),
        alternative in alternatives(),
    ) {
        let ranking = Ranking::new(&first, &second);
        let exact = exact_p_value(&ranking, first.len(), ranking.doubled_rank_sum_of_first(), alternative);
        let u = mann_whitney_u(&first, &second, alternative).unwrap().u;
        let approx = normal_p_value(&ranking, first.len(), second.len(), u, alternative);
        prop_assert!((exact - approx).abs() < 0.02, "exact {} vs normal {}", exact, approx);
    }
}

/// C(n, k) exactly, for the brute-force Fisher test.
fn choose(n: u64, k: u64) -> u128 {
    if k > n {
        return 0;
    }
    (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
}

proptest! {
    #[test]
    fn fisher_equals_exact_counting(
        first_total in 0u64..25,
        second_total in 0u64..25,
        first_share in 0.0f64..=1.0,
        second_share in 0.0f64..=1.0,
    ) {
        let first_failures = (first_total as f64 * first_share).round() as u64;
        let second_failures = (second_total as f64 * second_share).round() as u64;
        let failures = first_failures + second_failures;
        let successes = first_total + second_total - failures;
        // Count the ways to pick the first group's requests from all of them with at
        // least as many failures as observed.
        let extreme: u128 = (first_failures..=failures.min(first_total))
            .map(|x| choose(failures, x) * choose(successes, first_total - x))
            .sum();
        let all = choose(first_total + second_total, first_total);
        let expected = extreme as f64 / all as f64;
        let p = fisher_exact_greater(first_failures, first_total, second_failures, second_total).unwrap();
        prop_assert!((p - expected).abs() < 1e-9, "{} vs {}", p, expected);
    }
}

proptest! {
    #[test]
    fn poisson_rate_test_equals_enumeration(
        first_count in 0u64..7,
        second_count in 0u64..7,
        first_exposure in 0.1f64..10.0,
        second_exposure in 0.1f64..10.0,
    ) {
        // Every way the events could have been split between the groups, each with its
        // probability under equal rates.
        let total = first_count + second_count;
        let share = first_exposure / (first_exposure + second_exposure);
        let mut expected = 0.0;
        for mask in 0u32..(1 << total) {
            let in_first = u64::from(mask.count_ones());
            if in_first >= first_count {
                expected += share.powi(in_first as i32) * (1.0 - share).powi((total - in_first) as i32);
            }
        }
        let p = poisson_rate_greater(first_count, first_exposure, second_count, second_exposure).unwrap();
        prop_assert!((p - expected).abs() < 1e-9, "{} vs {}", p, expected);
    }
}

#[test]
fn poisson_rate_test_refuses_empty_exposure() {
    assert_eq!(poisson_rate_greater(1, 0.0, 0, 1.0), None);
    assert_eq!(poisson_rate_greater(0, 1.0, 0, 1.0), Some(1.0));
}

#[test]
fn fisher_refuses_impossible_counts() {
    assert_eq!(fisher_exact_greater(3, 2, 0, 2), None);
    assert_eq!(fisher_exact_greater(0, 0, 0, 0), Some(1.0));
}

#[test]
fn canary_smaller_than_stable_is_not_inverted() {
    // The statrs bug: with n1 <= n2 its exact p-value reports the opposite tail.
    let canary = [10.0, 11.0, 12.0];
    let stable = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let greater = mann_whitney_u(&canary, &stable, Alternative::Greater).unwrap();
    // Only one of C(9,3) = 84 splits puts the three largest values in the first sample.
    assert!((greater.p_value - 1.0 / 84.0).abs() < 1e-12);
    let less = mann_whitney_u(&canary, &stable, Alternative::Less).unwrap();
    assert!((less.p_value - 1.0).abs() < 1e-12);
}

#[test]
fn large_samples_use_the_normal_approximation() {
    let first: Vec<f64> = (0..40).map(|i| f64::from(i) + 5.0).collect();
    let second: Vec<f64> = (0..40).map(f64::from).collect();
    let result = mann_whitney_u(&first, &second, Alternative::Greater).unwrap();
    assert_eq!(result.method, PValueMethod::NormalApproximation);
    // scipy.stats.mannwhitneyu(first, second, alternative="greater", method="asymptotic")
    // gives U = 987.5 and p = 0.035947886709456714 for these samples.
    assert_eq!(result.u, 987.5);
    assert!(
        (result.p_value - 0.035947886709456714).abs() < 1e-9,
        "{}",
        result.p_value
    );
}

#[test]
fn all_values_equal_gives_no_evidence() {
    let same = vec![3.0; 30];
    let result = mann_whitney_u(&same, &same, Alternative::TwoSided).unwrap();
    assert_eq!(result.p_value, 1.0);
    let result = mann_whitney_u(&same[..3], &same[..4], Alternative::Greater).unwrap();
    assert_eq!(result.p_value, 1.0);
}

#[test]
fn rejects_empty_and_non_finite_samples() {
    assert_eq!(
        mann_whitney_u(&[], &[1.0], Alternative::TwoSided),
        Err(StatsError::EmptySample { which: "first" })
    );
    assert_eq!(
        mann_whitney_u(&[1.0], &[f64::NAN], Alternative::TwoSided),
        Err(StatsError::NonFinite { which: "second" })
    );
}

#[test]
fn hodges_lehmann_stays_cheap_and_close_on_large_samples() {
    let first: Vec<f64> = (0..20_000).map(|i| f64::from(i % 1000) + 50.0).collect();
    let second: Vec<f64> = (0..30_000).map(|i| f64::from(i % 1000)).collect();
    let shift = hodges_lehmann_shift(&first, &second).unwrap();
    assert!((shift - 50.0).abs() < 2.0, "{shift}");
}

#[test]
fn hodges_lehmann_is_the_median_pairwise_difference() {
    assert_eq!(hodges_lehmann_shift(&[10.0, 12.0], &[1.0, 2.0]), Some(9.5));
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[]), None);
}
