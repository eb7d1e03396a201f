//! The logs check's judgement: error lines per pod per minute of log actually read, canary
//! against stable, and the share of error lines among the lines read.
//!
//! Pure: the reading (and the spans, measured on the API server's clock) is done by
//! `canary_kube::analysis::logs`.

use std::time::Duration;

use regex::Regex;

use crate::analysis_spec::LogsSpec;
use crate::duration::format_duration;
use crate::stats;
use crate::verdict::{Measurement, Outcome, format_number};

/// Confidence needed before a higher canary error-line rate (or share) counts as a failure.
pub const LOG_RATE_CONFIDENCE: f64 = 0.98;

/// Below this much log time read on the canary side the rates mean little: a pod started
/// five seconds ago with no error yet is no evidence of a good release.
pub const MIN_CANARY_LOG_SPAN: Duration = Duration::from_secs(20);

/// Error lines counted in the part of one pod's log that was read.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLogCount {
    /// The pod.
    pub pod: String,
    /// Lines matching an error pattern.
    pub error_lines: usize,
    /// All lines read.
    pub lines: usize,
    /// The time the lines read cover (see [`log_span`]).
    pub observed: Duration,
    /// Whether the byte cap cut the log, so that only its newest part was read.
    pub truncated: bool,
}

/// What was read from one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideLogs {
    /// Counts of the pods whose logs could be read.
    pub pods: Vec<PodLogCount>,
    /// Pods whose logs could not be read, with why.
    pub unreadable: Vec<String>,
    /// Pods left out of the sample.
    pub not_sampled: usize,
}

impl SideLogs {
    fn lines(&self) -> u64 {
        self.pods.iter().map(|p| p.lines as u64).sum()
    }

    fn error_lines(&self) -> u64 {
        self.pods.iter().map(|p| p.error_lines as u64).sum()
    }

    fn pod_minutes(&self) -> f64 {
        self.pods
            .iter()
            .map(|p| p.observed.as_secs_f64())
            .sum::<f64>()
            / 60.0
    }

    /// Error lines per pod-minute of log read.
    fn rate(&self) -> Option<f64> {
        let minutes = self.pod_minutes();
        (!self.pods.is_empty() && minutes > 0.0).then(|| self.error_lines() as f64 / minutes)
    }
}

/// Error lines and all lines of `text`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounter {
    /// Lines matching an error pattern.
    pub errors: usize,
    /// All lines.
    pub lines: usize,
}

impl LineCounter {
    /// Counts one line.
    pub fn add(&mut self, line: &str, patterns: &[Regex]) {
        self.lines += 1;
        if patterns.iter().any(|p| p.is_match(line)) {
            self.errors += 1;
        }
    }
}

/// Counts the lines of `text` matching any of `patterns`: (error lines, lines).
pub fn count_error_lines(text: &str, patterns: &[Regex]) -> (usize, usize) {
    let mut counter = LineCounter::default();
    for line in text.lines() {
        counter.add(line, patterns);
    }
    (counter.errors, counter.lines)
}

/// The time one pod's log read covers, all times on the API server's clock (seconds):
/// from the latest of the window's start and the start of the container instance whose log
/// was read (the log endpoint returns only the current instance's lines), to the read (or
/// to the instance's end when it is not running). When the byte cap cut the log, only the
/// newest part was read: it starts at its first line.
pub fn log_span(
    window_start: i64,
    instance_start: Option<i64>,
    end: i64,
    first_line_read: Option<i64>,
    truncated: bool,
) -> Duration {
    let mut start = window_start.max(instance_start.unwrap_or(window_start));
    if truncated && let Some(first) = first_line_read {
        start = start.max(first);
    }
    Duration::from_secs(u64::try_from(end - start).unwrap_or(0))
}

/// Compares the two sides' error lines. The canary fails when its rate is above
/// `max_ratio` times the stable rate and at least `min_increase_per_minute` above it, or
/// when its share of error lines among the lines read is above `max_ratio` times the stable
/// share (a canary that logs only errors, however slowly), each only when chance explains
/// the difference in under 2% of cases. A canary from which no line was read, or whose
/// logs cover too little time, is inconclusive.
pub fn judge_logs(
    canary: &SideLogs,
    stable: &SideLogs,
    settings: &LogsSpec,
    window: Duration,
) -> (Outcome, Vec<Measurement>, String) {
    let canary_rate = canary.rate();
    let stable_rate = stable.rate();
    let measurements = vec![
        Measurement::new("error lines per pod per minute", canary_rate, stable_rate),
        Measurement::new(
            "error lines",
            Some(canary.error_lines() as f64),
            Some(stable.error_lines() as f64),
        ),
        Measurement::new(
            "log lines read",
            Some(canary.lines() as f64),
            Some(stable.lines() as f64),
        ),
        Measurement::new(
            "minutes of log read",
            Some(canary.pod_minutes()),
            Some(stable.pod_minutes()),
        ),
        Measurement::new(
            "pods read",
            Some(canary.pods.len() as f64),
            Some(stable.pods.len() as f64),
        ),
    ];
    let notes = format!(
        "{}{}{}{}{}{}",
        unreadable_note(canary, "canary"),
        unreadable_note(stable, "stable"),
        sampled_note(canary, "canary"),
        sampled_note(stable, "stable"),
        truncated_note(canary, "canary"),
        truncated_note(stable, "stable"),
    );
    let inconclusive = |reason: String| (Outcome::Inconclusive, measurements.clone(), reason);
    let (Some(canary_rate), Some(stable_rate)) = (canary_rate, stable_rate) else {
        let missing = if canary_rate.is_none() {
            "canary"
        } else {
            "stable"
        };
        return inconclusive(format!(
            "no readable {missing} pod logs over the last {}{notes}",
            format_duration(window)
        ));
    };
    if canary.lines() == 0 {
        return inconclusive(format!(
            "no log line read from the {} canary pods over the last {}: a canary that logs nothing shows no error rate; at least one line is needed{notes}",
            canary.pods.len(),
            format_duration(window)
        ));
    }
    let canary_span: Duration = canary.pods.iter().map(|p| p.observed).sum();
    if canary_span < MIN_CANARY_LOG_SPAN {
        return inconclusive(format!(
            "the canary pods' logs read cover only {} in all, too little to judge: at least {} are needed{notes}",
            format_duration(canary_span),
            format_duration(MIN_CANARY_LOG_SPAN)
        ));
    }
    let summary = format!(
        "canary {} vs stable {} error lines per pod per minute of log read (window {})",
        format_number(canary_rate),
        format_number(stable_rate),
        format_duration(window)
    );
    // A canary that logs only errors, however slowly: its share of error lines.
    let share = |side: &SideLogs| side.error_lines() as f64 / side.lines().max(1) as f64;
    let share_worse = share(canary) > share(stable) * settings.max_ratio
        && share(canary) > share(stable)
        && stable.lines() > 0;
    let rate_worse = canary_rate > stable_rate * settings.max_ratio
        && canary_rate - stable_rate >= settings.min_increase_per_minute;
    if !rate_worse && !share_worse {
        return (Outcome::Pass, measurements, format!("{summary}{notes}"));
    }
    let rate_p = || {
        stats::poisson_rate_greater(
            canary.error_lines(),
            canary.pod_minutes(),
            stable.error_lines(),
            stable.pod_minutes(),
        )
        .unwrap_or(1.0)
    };
    let share_p = || {
        stats::fisher_exact_greater(
            canary.error_lines(),
            canary.lines(),
            stable.error_lines(),
            stable.lines(),
        )
        .unwrap_or(1.0)
    };
    let significant = |p: f64| p < 1.0 - LOG_RATE_CONFIDENCE;
    if rate_worse && significant(rate_p()) {
        return (
            Outcome::Fail,
            measurements,
            format!(
                "{summary}: more than {}x the stable rate and at least {} per minute more (p={}){notes}",
                format_number(settings.max_ratio),
                format_number(settings.min_increase_per_minute),
                format_number(rate_p())
            ),
        );
    }
    if share_worse && significant(share_p()) {
        return (
            Outcome::Fail,
            measurements,
            format!(
                "{summary}: {} of {} canary lines are errors against {} of {} stable lines, more than {}x the stable share (p={}){notes}",
                canary.error_lines(),
                canary.lines(),
                stable.error_lines(),
                stable.lines(),
                format_number(settings.max_ratio),
                format_number(share_p())
            ),
        );
    }
    let (p, needed) = if rate_worse {
        (rate_p(), minutes_to_decide(canary, stable))
    } else {
        (share_p(), None)
    };
    let needed = match needed {
        Some(minutes) => format!(
            "; at this rate about {} pod-minutes of canary log would decide",
            format_number(minutes.ceil())
        ),
        None => format!(
            "; at this share about {} canary lines would decide",
            lines_to_decide(canary, stable).map_or("more".into(), |n| n.to_string())
        ),
    };
    inconclusive(format!(
        "{summary}: higher, but with so few lines it may be chance (p={}){needed}{notes}",
        format_number(p)
    ))
}

/// The canary pod-minutes at which the rates seen so far would be significant (the canary's
/// counts scaled up at its rate, the stable side as read), if under a day.
fn minutes_to_decide(canary: &SideLogs, stable: &SideLogs) -> Option<f64> {
    let rate = canary.rate()?;
    let mut minutes = canary.pod_minutes().max(1.0);
    while minutes < 24.0 * 60.0 {
        minutes *= 1.25;
        let errors = (rate * minutes).round() as u64;
        let p = stats::poisson_rate_greater(
            errors,
            minutes,
            stable.error_lines(),
            stable.pod_minutes(),
        )?;
        if p < 1.0 - LOG_RATE_CONFIDENCE {
            return Some(minutes);
        }
    }
    None
}

/// The canary lines at which the error share seen so far would be significant, if under a
/// million.
fn lines_to_decide(canary: &SideLogs, stable: &SideLogs) -> Option<u64> {
    let share = canary.error_lines() as f64 / canary.lines().max(1) as f64;
    let mut lines = canary.lines().max(1) as f64;
    while lines < 1e6 {
        lines *= 1.25;
        let n = lines.ceil() as u64;
        let errors = (share * n as f64).round() as u64;
        let p = stats::fisher_exact_greater(errors, n, stable.error_lines(), stable.lines())?;
        if p < 1.0 - LOG_RATE_CONFIDENCE {
            return Some(n);
        }
    }
    None
}

fn unreadable_note(side: &SideLogs, name: &str) -> String {
    if side.unreadable.is_empty() {
        String::new()
    } else {
        format!("; {name} logs not readable: {}", side.unreadable.join("; "))
    }
}

fn sampled_note(side: &SideLogs, name: &str) -> String {
    if side.not_sampled == 0 {
        return String::new();
    }
    let read = side.pods.len() + side.unreadable.len();
    format!(
        "; {name}: logs of {read} of {} pods read",
        read + side.not_sampled
    )
}

fn truncated_note(side: &SideLogs, name: &str) -> String {
    let cut: Vec<&str> = side
        .pods
        .iter()
        .filter(|p| p.truncated)
        .map(|p| p.pod.as_str())
        .collect();
    if cut.is_empty() {
        String::new()
    } else {
        format!(
            "; {name}: only the newest part of the log of {} read (byte cap), rate per minute of that part",
            cut.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side of pods given as (error lines, lines, seconds of log read).
    fn side_of(counts: &[(usize, usize, u64)]) -> SideLogs {
        SideLogs {
            pods: counts
                .iter()
                .enumerate()
                .map(|(i, &(error_lines, lines, seconds))| PodLogCount {
                    pod: format!("p{i}"),
                    error_lines,
                    lines,
                    observed: Duration::from_secs(seconds),
                    truncated: false,
                })
                .collect(),
            ..SideLogs::default()
        }
    }

    /// Pods with 100 ordinary lines besides their error lines.
    fn side(counts: &[(usize, u64)]) -> SideLogs {
        let with_lines: Vec<(usize, usize, u64)> =
            counts.iter().map(|&(e, s)| (e, e + 100, s)).collect();
        side_of(&with_lines)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    fn judge(canary: &SideLogs, stable: &SideLogs) -> (Outcome, Vec<Measurement>, String) {
        judge_logs(canary, stable, &LogsSpec::default(), MINUTE)
    }

    #[test]
    fn counts_lines_matching_any_pattern() {
        let patterns = LogsSpec::default().patterns;
        let text = "GET / 200\n2026/11/26 [error] 1#1: boom\nfatal: disk full\nok\n";
        assert_eq!(count_error_lines(text, &patterns), (2, 4));
    }

    #[test]
    fn clearly_worse_canary_fails() {
        let (outcome, measurements, reason) = judge(&side(&[(60, 60)]), &side(&[(2, 60), (0, 60)]));
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert_eq!(measurements[0].canary, Some(60.0));
        assert_eq!(measurements[0].stable, Some(1.0));
    }

    #[test]
    fn small_absolute_differences_pass() {
        let (outcome, _, reason) = judge(&side(&[(0, 60)]), &side(&[(0, 60)]));
        assert_eq!(outcome, Outcome::Pass, "{reason}");
    }

    #[test]
    fn a_few_extra_lines_are_inconclusive_with_the_span_that_would_decide() {
        let (outcome, _, reason) = judge(&side(&[(3, 60)]), &side(&[(1, 60), (0, 60)]));
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("may be chance"), "{reason}");
        assert!(
            reason.contains("pod-minutes of canary log would decide"),
            "{reason}"
        );
    }

    #[test]
    fn young_pods_are_judged_per_minute_read() {
        let (outcome, measurements, _) = judge(&side(&[(10, 30)]), &side(&[(10, 60)]));
        assert_eq!(measurements[0].canary, Some(20.0));
        assert_eq!(outcome, Outcome::Pass);
    }

    #[test]
    fn a_canary_with_no_line_read_is_inconclusive_not_a_pass() {
        let (outcome, _, reason) = judge(&side_of(&[(0, 0, 60)]), &side(&[(0, 60)]));
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("no log line read"), "{reason}");
    }

    #[test]
    fn a_canary_logging_only_errors_fails_however_slowly() {
        // 3 lines in 4 pod-minutes, all errors: well under the rate's 1 per minute more
        // than stable...
        let slow_errors = side_of(&[(1, 1, 60), (1, 1, 60), (1, 1, 60), (0, 0, 60)]);
        let stable = side_of(&[(0, 300, 60), (1, 300, 60)]);
        let (outcome, _, reason) = judge(&slow_errors, &stable);
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert!(
            reason.contains("3 of 3 canary lines are errors"),
            "{reason}"
        );
        // ...and a single error line is too few to tell: inconclusive, with what would decide.
        let (outcome, _, reason) = judge(&side_of(&[(1, 1, 60)]), &side_of(&[(1, 30, 60)]));
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("canary lines would decide"), "{reason}");
    }

    #[test]
    fn too_little_canary_log_or_no_pods_is_inconclusive() {
        let (outcome, _, reason) = judge(&side(&[(0, 5)]), &side(&[(0, 60)]));
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(reason.contains("too little"), "{reason}");
        let mut unreadable = side(&[]);
        unreadable
            .unreadable
            .push("c1: container is waiting to start".into());
        let (outcome, _, reason) = judge(&unreadable, &side(&[(0, 60)]));
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(reason.contains("no readable canary pod logs"), "{reason}");
        assert!(reason.contains("waiting to start"), "{reason}");
    }

    #[test]
    fn the_span_starts_at_the_last_restart_and_a_cut_log_at_its_first_line_read() {
        // Window from 1000 to 1060; the container restarted at 1040.
        assert_eq!(
            log_span(1000, Some(1040), 1060, Some(1041), false),
            Duration::from_secs(20)
        );
        // Not restarted within the window: the whole window.
        assert_eq!(
            log_span(1000, Some(500), 1060, Some(1001), false),
            Duration::from_secs(60)
        );
        // The byte cap kept only the newest 10 s.
        assert_eq!(
            log_span(1000, Some(500), 1060, Some(1050), true),
            Duration::from_secs(10)
        );
        // A clock that went backwards gives no span, not a huge one.
        assert_eq!(log_span(1000, None, 990, None, false), Duration::ZERO);
    }

    #[test]
    fn a_cut_log_says_so() {
        let mut canary = side(&[(60, 60)]);
        canary.pods[0].truncated = true;
        let (_, _, reason) = judge(&canary, &side(&[(0, 60)]));
        assert!(
            reason.contains("only the newest part of the log of p0"),
            "{reason}"
        );
    }
}
