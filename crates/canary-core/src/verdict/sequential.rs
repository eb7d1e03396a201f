//! Sequential sampling for the HTTP check's error rates: requests are sent in groups and the
//! evidence is looked at after each group, so a clearly bad canary fails (and a clearly good
//! one passes) as soon as the evidence says so, and the check sends more only while it is
//! undecided, up to its bound (`requests` per side).
//!
//! A group-sequential design with error spending (Lan and DeMets), in its simplest valid
//! form: the overall false-fail rate `alpha` is spent over the planned looks with a
//! Pocock-type function `alpha · ln(1 + (e − 1)·t)` (t = requests so far / bound), and each
//! look's share is a plain significance level. By the union bound the probability that a
//! canary no worse than the stable pods fails at *any* look is at most `alpha`, whatever the
//! common error rate and whenever the looks stop (the one-sided Fisher exact test is valid,
//! conservative, at every look). Symmetrically, `beta` is spent over the looks for passing:
//! a look passes the error rate when a simultaneous upper confidence bound of
//! `canary rate − stable rate` (Clopper-Pearson on each side at half the look's share) is at
//! most `max_error_rate_increase`; so a canary worse than the stable pods by more than the
//! tolerance is passed by these looks with probability at most `beta`.
//!
//! A bound reached undecided falls back to the fixed-sample rule (the point estimate within
//! the tolerance passes the error rate; above it is inconclusive with the requests that would
//! decide), never to a failure beyond the spent `alpha`. The error rates this gives are
//! measured by simulation in this module's tests and written in docs/analysis.md.

use statrs::distribution::{Beta, ContinuousCDF};

use crate::analysis_spec::HttpSpec;
use crate::stats;

/// Requests per side between two looks at the evidence.
pub const LOOK_EVERY: u32 = 20;

/// Confidence needed before a higher canary error rate counts as a failure (the HTTP
/// check's; kept here, where its error spending is derived from it).
pub const ERROR_RATE_CONFIDENCE: f64 = 0.98;

/// Probability, at most, that a canary no worse than the stable pods fails on its error rate
/// (over all looks).
pub const FALSE_FAIL_RATE: f64 = 1.0 - ERROR_RATE_CONFIDENCE;

/// Probability, at most, that a canary whose error rate exceeds the stable pods' by more than
/// the tolerance passes a look on its error rate (over all looks).
pub const FALSE_PASS_RATE: f64 = 0.05;

/// The looks of one check: cumulative requests per side at which the evidence is judged,
/// and the error budget each look may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialPlan {
    /// Requests per side at each look, increasing; the last is the bound.
    pub looks: Vec<u32>,
    /// The significance level of each look's failure test (sums to at most [`FALSE_FAIL_RATE`]).
    pub fail_levels: Vec<f64>,
    /// The confidence budget of each look's pass test (sums to at most [`FALSE_PASS_RATE`]).
    pub pass_levels: Vec<f64>,
}

/// What one look at the error counts says.
#[derive(Debug, Clone, PartialEq)]
pub enum LookDecision {
    /// The canary's error rate is significantly higher, beyond the tolerance.
    Fail {
        /// One-sided Fisher exact p-value.
        p_value: f64,
        /// The level this look may reject at.
        level: f64,
    },
    /// The canary's error rate is, with the look's confidence, within the tolerance.
    Pass {
        /// Upper confidence bound of canary rate − stable rate.
        upper_bound: f64,
    },
    /// Neither yet: send more (or, at the bound, fall back to the fixed-sample rule).
    Undecided {
        /// One-sided Fisher exact p-value.
        p_value: f64,
        /// The level this look may reject at.
        level: f64,
        /// Upper confidence bound of canary rate − stable rate.
        upper_bound: f64,
    },
}

/// Pocock-type error spending: the share of the budget spent by information fraction `t`.
fn spent(t: f64) -> f64 {
    (1.0 + (std::f64::consts::E - 1.0) * t.clamp(0.0, 1.0)).ln()
}

impl SequentialPlan {
    /// Looks every [`LOOK_EVERY`] requests per side up to `bound` (the last look at the bound).
    pub fn new(bound: u32) -> Self {
        let bound = bound.max(1);
        let mut looks: Vec<u32> = (1..)
            .map(|k| k * LOOK_EVERY)
            .take_while(|n| *n < bound)
            .collect();
        looks.push(bound);
        let mut fail_levels = Vec::with_capacity(looks.len());
        let mut pass_levels = Vec::with_capacity(looks.len());
        let mut previous = 0.0;
        for n in &looks {
            let now = spent(f64::from(*n) / f64::from(bound));
            fail_levels.push(FALSE_FAIL_RATE * (now - previous));
            pass_levels.push(FALSE_PASS_RATE * (now - previous));
            previous = now;
        }
        SequentialPlan {
            looks,
            fail_levels,
            pass_levels,
        }
    }

    /// The plan of an HTTP check (`requests` is the bound per side).
    pub fn of(settings: &HttpSpec) -> Self {
        Self::new(
            settings
                .requests
                .clamp(1, crate::analysis_spec::MAX_HTTP_REQUESTS),
        )
    }

    /// The bound: the most requests per side.
    pub fn bound(&self) -> u32 {
        *self.looks.last().unwrap_or(&1)
    }

    /// The look reached with `sent` requests per side (index into `looks`), if any.
    pub fn look_at(&self, sent: usize) -> Option<usize> {
        self.looks.iter().rposition(|n| *n as usize <= sent)
    }

    /// The requests per side the next group should bring each side to, after `sent`.
    pub fn next_look(&self, sent: usize) -> Option<u32> {
        self.looks.iter().copied().find(|n| *n as usize > sent)
    }

    /// Judges the error counts at look `look`: `canary`/`stable` = (errors, requests).
    pub fn decide(
        &self,
        look: usize,
        canary: (usize, usize),
        stable: (usize, usize),
        max_error_rate_increase: f64,
    ) -> LookDecision {
        let level = self.fail_levels[look];
        let p_value = stats::fisher_exact_greater(
            canary.0 as u64,
            canary.1 as u64,
            stable.0 as u64,
            stable.1 as u64,
        )
        .unwrap_or(1.0);
        let rate = |(errors, sent): (usize, usize)| errors as f64 / sent.max(1) as f64;
        if rate(canary) - rate(stable) > max_error_rate_increase && p_value <= level {
            return LookDecision::Fail { p_value, level };
        }
        let half = self.pass_levels[look] / 2.0;
        let upper_bound = upper_confidence_bound(canary.0, canary.1, half)
            - lower_confidence_bound(stable.0, stable.1, half);
        if upper_bound <= max_error_rate_increase {
            return LookDecision::Pass { upper_bound };
        }
        LookDecision::Undecided {
            p_value,
            level,
            upper_bound,
        }
    }
}

/// Clopper-Pearson: the rate `p` with P(at most `errors` of `sent` | p) = `level` (1 when
/// every request failed).
pub fn upper_confidence_bound(errors: usize, sent: usize, level: f64) -> f64 {
    if sent == 0 || errors >= sent {
        return 1.0;
    }
    Beta::new(errors as f64 + 1.0, (sent - errors) as f64)
        .map_or(1.0, |beta| beta.inverse_cdf(1.0 - level))
}

/// Clopper-Pearson: the rate `p` with P(at least `errors` of `sent` | p) = `level` (0 without
/// errors).
pub fn lower_confidence_bound(errors: usize, sent: usize, level: f64) -> f64 {
    if sent == 0 || errors == 0 {
        return 0.0;
    }
    Beta::new(errors as f64, (sent - errors) as f64 + 1.0)
        .map_or(0.0, |beta| beta.inverse_cdf(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a deterministic generator, so the simulated rates are the same every run.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }

        fn errors(&mut self, rate: f64, requests: u32) -> usize {
            (0..requests).filter(|_| self.next() < rate).count()
        }
    }

    /// What one simulated check ended with.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum End {
        Fail,
        Pass,
        /// The bound reached undecided: the fixed-sample rule applies.
        BoundPass,
        BoundInconclusive,
    }

    /// Runs one check as the probe does: a group per side, then a look, until decided.
    fn simulate(
        plan: &SequentialPlan,
        canary_rate: f64,
        stable_rate: f64,
        tolerance: f64,
        rng: &mut SplitMix,
    ) -> (End, u32) {
        let (mut canary, mut stable, mut sent) = (0, 0, 0u32);
        for (look, n) in plan.looks.iter().enumerate() {
            canary += rng.errors(canary_rate, n - sent);
            stable += rng.errors(stable_rate, n - sent);
            sent = *n;
            let pair = (canary, sent as usize);
            match plan.decide(look, pair, (stable, sent as usize), tolerance) {
                LookDecision::Fail { .. } => return (End::Fail, sent),
                LookDecision::Pass { .. } => return (End::Pass, sent),
                LookDecision::Undecided { .. } => {}
            }
        }
        let rate = |errors: usize| errors as f64 / f64::from(sent);
        if rate(canary) - rate(stable) > tolerance {
            (End::BoundInconclusive, sent)
        } else {
            (End::BoundPass, sent)
        }
    }

    struct Summary {
        fail: f64,
        pass: f64,
        bound_pass: f64,
        mean_requests: f64,
        fail_within_60: f64,
    }

    fn run(bound: u32, canary_rate: f64, stable_rate: f64, seed: u64) -> Summary {
        const RUNS: u32 = 4000;
        let plan = SequentialPlan::new(bound);
        let mut rng = SplitMix(seed);
        let (mut fail, mut pass, mut bound_pass, mut requests, mut early_fail) =
            (0u32, 0u32, 0u32, 0u64, 0u32);
        for _ in 0..RUNS {
            let (end, sent) = simulate(&plan, canary_rate, stable_rate, 0.05, &mut rng);
            requests += u64::from(sent);
            match end {
                End::Fail => {
                    fail += 1;
                    if sent <= 60 {
                        early_fail += 1;
                    }
                }
                End::Pass => pass += 1,
                End::BoundPass => bound_pass += 1,
                End::BoundInconclusive => {}
            }
        }
        let share = |count: u32| f64::from(count) / f64::from(RUNS);
        Summary {
            fail: share(fail),
            pass: share(pass),
            bound_pass: share(bound_pass),
            mean_requests: requests as f64 / f64::from(RUNS),
            fail_within_60: share(early_fail),
        }
    }

    #[test]
    fn error_budgets_are_spent_exactly_once() {
        for bound in [1, 20, 30, 200, 1000] {
            let plan = SequentialPlan::new(bound);
            assert_eq!(plan.bound(), bound);
            let fail: f64 = plan.fail_levels.iter().sum();
            let pass: f64 = plan.pass_levels.iter().sum();
            assert!((fail - FALSE_FAIL_RATE).abs() < 1e-12, "{bound}: {fail}");
            assert!((pass - FALSE_PASS_RATE).abs() < 1e-12, "{bound}: {pass}");
            assert!(plan.looks.windows(2).all(|w| w[0] < w[1]));
        }
        // A bound of 20 is one look at the whole budget: the fixed-sample test of before.
        let single = SequentialPlan::new(20);
        assert_eq!(single.looks, vec![20]);
        assert!((single.fail_levels[0] - 0.02).abs() < 1e-12);
        assert_eq!(SequentialPlan::new(200).looks.len(), 10);
        assert_eq!(SequentialPlan::new(200).next_look(40), Some(60));
        assert_eq!(SequentialPlan::new(200).look_at(59), Some(1));
        assert_eq!(SequentialPlan::new(200).look_at(19), None);
    }

    #[test]
    fn confidence_bounds_match_clopper_pearson() {
        // 0 of 20 at 2.5%: 1 − 0.025^(1/20).
        let upper = upper_confidence_bound(0, 20, 0.025);
        assert!(
            (upper - (1.0 - 0.025f64.powf(1.0 / 20.0))).abs() < 1e-9,
            "{upper}"
        );
        // 20 of 20 at 2.5%: 0.025^(1/20).
        let lower = lower_confidence_bound(20, 20, 0.025);
        assert!((lower - 0.025f64.powf(1.0 / 20.0)).abs() < 1e-9, "{lower}");
        assert_eq!(lower_confidence_bound(0, 20, 0.025), 0.0);
        assert_eq!(upper_confidence_bound(5, 5, 0.025), 1.0);
    }

    /// The case: 20% errors against none, which 20 requests per side could not tell
    /// from chance (Fisher p=0.053). With the default bound the check fails within the round
    /// (measured: every run, 88% within 60 requests per side, 51 on average).
    #[test]
    fn a_clearly_bad_canary_fails_within_the_first_round() {
        let summary = run(200, 0.20, 0.0, 1);
        assert!(summary.fail > 0.999, "fail {}", summary.fail);
        assert!(
            summary.fail_within_60 > 0.8,
            "within 60: {}",
            summary.fail_within_60
        );
        assert!(summary.mean_requests < 60.0, "{}", summary.mean_requests);
    }

    /// A canary as good as the stable pods fails at most `alpha` (2%) of the time, at any
    /// common error rate; without errors it passes after 120 requests per side, never more.
    #[test]
    fn a_good_canary_fails_at_most_alpha_and_passes_without_flooding() {
        for (rate, seed) in [(0.0, 2), (0.01, 3), (0.05, 4), (0.2, 5)] {
            let summary = run(200, rate, rate, seed);
            assert!(
                summary.fail <= FALSE_FAIL_RATE,
                "rate {rate}: {}",
                summary.fail
            );
        }
        let summary = run(200, 0.0, 0.0, 6);
        assert_eq!(summary.pass, 1.0);
        assert_eq!(summary.mean_requests, 120.0);
    }

    /// A canary worse than stable by more than the tolerance is passed by a look at most
    /// `beta` (5%) of the time; at the bound the fixed-sample rule may still pass it (the
    /// point estimate within the tolerance), which is measured here and documented.
    #[test]
    fn a_canary_beyond_the_tolerance_passes_rarely() {
        for (canary, stable, seed, bound_pass_at_most) in [
            // Measured with another seed: 30%, 0.6%, 5%.
            (0.06, 0.0, 7, 0.35),
            (0.10, 0.0, 8, 0.02),
            (0.15, 0.05, 9, 0.08),
        ] {
            let summary = run(200, canary, stable, seed);
            assert!(
                summary.pass <= FALSE_PASS_RATE,
                "{canary} vs {stable}: pass {}",
                summary.pass
            );
            assert!(
                summary.bound_pass <= bound_pass_at_most,
                "{canary} vs {stable}: bound pass {}",
                summary.bound_pass
            );
        }
    }

    /// A share as docs/results/sequential-simulation.md shows it: whole percents, or up to
    /// two decimals below 10%.
    fn percent(share: f64) -> String {
        let p = share * 100.0;
        let text = if p == p.round() {
            format!("{p:.0}")
        } else if p < 10.0 {
            format!("{p:.2}")
        } else {
            format!("{p:.1}")
        };
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        format!("{text}%")
    }

    /// Prints the table of docs/results/sequential-simulation.md (`scripts/sequential-simulation`
    /// writes it): 4000 simulated checks per row with the default bound (200) and tolerance
    /// (5 points), seed 1.
    #[test]
    #[ignore = "a table generator, run by scripts/sequential-simulation"]
    fn print_the_simulation_table() {
        let rows = [
            (0.0, 0.0),
            (0.01, 0.01),
            (0.05, 0.05),
            (0.20, 0.20),
            (0.03, 0.0),
            (0.06, 0.0),
            (0.10, 0.0),
            (0.15, 0.05),
            (0.20, 0.0),
            (0.50, 0.0),
            (1.0, 0.0),
        ];
        println!(
            "| canary vs stable error rate | fails | fails within 60 requests per side | passes at a look | passes at the bound | mean requests per side |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for (canary, stable) in rows {
            let s = run(200, canary, stable, 1);
            println!(
                "| {} vs {} | {} | {} | {} | {} | {:.0} |",
                percent(canary),
                percent(stable),
                percent(s.fail),
                percent(s.fail_within_60),
                percent(s.pass),
                percent(s.bound_pass),
                s.mean_requests
            );
        }
    }
}
