//! An analysis verdict for people: every check's measurements as a table, then each
//! check's reason.

use comfy_table::{Table, presets::NOTHING};

use canary_core::verdict::{Verdict, format_number};

fn value_text(value: Option<f64>) -> String {
    value.map(format_number).unwrap_or_else(|| "-".into())
}

/// The verdict as a table of every check's measurements followed by each check's reason.
pub fn verdict_text(verdict: &Verdict) -> String {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["CHECK", "RESULT", "MEASURE", "CANARY", "STABLE"]);
    for check in &verdict.checks {
        let result = format!(
            "{}{}",
            check.outcome,
            if check.critical {
                ""
            } else {
                " (non-critical)"
            }
        );
        if check.measurements.is_empty() {
            table.add_row([check.name.as_str(), result.as_str(), "-", "-", "-"]);
        }
        for (index, measurement) in check.measurements.iter().enumerate() {
            let (name, result) = if index == 0 {
                (check.name.as_str(), result.as_str())
            } else {
                ("", "")
            };
            table.add_row([
                name.to_string(),
                result.to_string(),
                measurement.name.clone(),
                value_text(measurement.canary),
                value_text(measurement.stable),
            ]);
        }
    }
    let mut text = format!(
        "verdict: {} — {}\n",
        verdict.decision.to_string().to_uppercase(),
        verdict.reason
    );
    if let Some(blind) = &verdict.not_judged {
        text.push_str(&format!("not judged: {blind}\n"));
    }
    if let Some(score) = verdict.score {
        text.push_str(&format!(
            "score: {} (needed {})\n",
            format_number(score),
            format_number(verdict.pass_score)
        ));
    }
    text.push('\n');
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push('\n');
    for check in &verdict.checks {
        text.push_str(&format!(
            "  {} ({}): {}\n",
            check.name, check.kind, check.reason
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::verdict::{
        CheckKind, CheckResult, InconclusivePolicy, Measurement, Outcome, combine,
    };
    use std::time::Duration;

    /// Pod health alone: the text says under the verdict line that requests were not judged.
    #[test]
    fn verdict_text_says_when_requests_were_not_judged() {
        let check = CheckResult {
            name: "pod-health".into(),
            kind: CheckKind::PodHealth,
            outcome: Outcome::Pass,
            critical: true,
            on_inconclusive: InconclusivePolicy::default(),
            measurements: vec![],
            reason: "3 of 3 canary pods Ready".into(),
        };
        let text = verdict_text(&combine(vec![check], 95.0, Duration::ZERO));
        let second = text.lines().nth(1).unwrap_or_default();
        assert!(
            second.starts_with("not judged: requests: no HTTP or Prometheus check ran"),
            "{text}"
        );
    }

    #[test]
    fn verdict_text_lists_every_check_with_numbers_and_reason() {
        let checks = vec![
            CheckResult {
                name: "pod-health".into(),
                kind: CheckKind::PodHealth,
                outcome: Outcome::Fail,
                critical: true,
                on_inconclusive: InconclusivePolicy::default(),
                measurements: vec![
                    Measurement::new("pods Ready", Some(0.0), Some(3.0)),
                    Measurement::new("container restarts", Some(4.0), Some(0.0)),
                ],
                reason: "1 of 1 canary pods failing: web-x: container web: CrashLoopBackOff".into(),
            },
            CheckResult {
                name: "prometheus-1".into(),
                kind: CheckKind::Prometheus,
                outcome: Outcome::Inconclusive,
                critical: false,
                on_inconclusive: InconclusivePolicy::Pass,
                measurements: vec![],
                reason: "Prometheus at http://127.0.0.1:1/ is unreachable: connection refused"
                    .into(),
            },
        ];
        let verdict = combine(checks, 95.0, Duration::ZERO);
        let text = verdict_text(&verdict);
        assert!(
            text.starts_with("verdict: FAIL — critical check failed: pod-health"),
            "{text}"
        );
        assert!(text.contains("container restarts"), "{text}");
        // A Prometheus check was among them: requests were judged.
        assert!(!text.contains("not judged"), "{text}");
        assert!(text.contains("inconclusive (non-critical)"), "{text}");
        assert!(
            text.contains(
                "prometheus-1 (prometheus): Prometheus at http://127.0.0.1:1/ is unreachable"
            ),
            "{text}"
        );
        assert_eq!(
            crate::exit_code::for_verdict(verdict.decision),
            crate::exit_code::CANARY_UNHEALTHY
        );
        assert!(
            canary_core::verdict::event_note(&verdict)
                .contains("pod-health fail, prometheus-1 inconclusive")
        );
    }
}
