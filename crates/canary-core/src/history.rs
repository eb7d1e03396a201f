//! The canary's history for reports: the analysis rounds, the commands run and the phases,
//! kept in the cluster beside the record (and after it, until the next canary), bounded in
//! size. Pure: reading and writing it is `canary_kube::history`.
//!
//! Like the record, it lives in a ConfigMap that anyone who may write ConfigMaps can edit;
//! unlike the record, nothing is ever written to a Deployment from it. It is only shown, and
//! the report says where it comes from and that it may have been altered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::HistoryEntry;
use crate::verdict::Verdict;

/// Layout version of [`CanaryHistory`].
pub const HISTORY_SCHEMA: u32 = 1;
/// Analysis rounds kept (the newest).
pub const MAX_ROUNDS: usize = 120;
/// Commands kept (the newest).
pub const MAX_COMMANDS: usize = 60;
/// Phase lines kept (the newest).
pub const MAX_PHASES: usize = 120;
/// The largest serialized history: a quarter of what a ConfigMap may hold (1 MiB), so a
/// history never makes a write fail; older rounds are dropped first.
pub const MAX_BYTES: usize = 256 * 1024;

/// One run of a kubectl-canary command on the Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRun {
    /// When it ended (RFC 3339).
    pub at: String,
    /// The command line, secrets redacted ([`redact_command_line`]).
    pub command_line: Vec<String>,
    /// Its exit code.
    pub exit_code: i32,
}

/// One analysis round: the verdict with every check's numbers, and the canary's shape then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRound {
    /// When the verdict was reached (RFC 3339).
    pub at: String,
    /// The canary ReplicaSet analysed.
    pub canary_replica_set: String,
    /// The stable ReplicaSet it was compared with.
    pub stable_replica_set: String,
    /// Canary pods analysed.
    pub canary_pods: usize,
    /// Stable pods analysed.
    pub stable_pods: usize,
    /// Share of Ready pods on the canary side then, if known.
    pub traffic_share: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// How many old entries were dropped to keep the history bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    /// Analysis rounds.
    pub rounds: usize,
    /// Commands.
    pub commands: usize,
    /// Phase lines.
    pub phases: usize,
}

/// The history of the newest canary of one Deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryHistory {
    /// Layout version, [`HISTORY_SCHEMA`].
    pub schema: u32,
    /// The Deployment's name.
    pub deployment: String,
    /// The Deployment's UID: a history of a deleted namesake is not this one's.
    pub deployment_uid: String,
    /// When the canary this history is of started (the record's `startedAt`), if known.
    pub canary_started_at: Option<String>,
    /// The phases, from the record's history, oldest first.
    pub phases: Vec<HistoryEntry>,
    /// The commands run, oldest first.
    pub commands: Vec<CommandRun>,
    /// The analysis rounds, oldest first.
    pub rounds: Vec<AnalysisRound>,
    /// What was dropped to stay within the bounds.
    #[serde(default)]
    pub dropped: Dropped,
}

impl CanaryHistory {
    /// An empty history for a Deployment.
    pub fn new(deployment: &str, deployment_uid: &str) -> Self {
        Self {
            schema: HISTORY_SCHEMA,
            deployment: deployment.to_string(),
            deployment_uid: deployment_uid.to_string(),
            canary_started_at: None,
            phases: vec![],
            commands: vec![],
            rounds: vec![],
            dropped: Dropped::default(),
        }
    }

    /// This history, or a fresh one when it is of another Deployment (a re-created
    /// namesake) or of an earlier canary than the one started at `started_at`.
    pub fn continued_for(self, deployment_uid: &str, started_at: Option<&str>) -> Self {
        let other_canary = match (started_at, &self.canary_started_at) {
            (Some(now), Some(then)) => now != then,
            _ => false,
        };
        if self.deployment_uid != deployment_uid || other_canary {
            let mut fresh = Self::new(&self.deployment, deployment_uid);
            fresh.canary_started_at = started_at.map(str::to_string);
            return fresh;
        }
        let mut same = self;
        if same.canary_started_at.is_none() {
            same.canary_started_at = started_at.map(str::to_string);
        }
        same
    }

    /// Adds the record's phase lines not seen yet (the record keeps its whole history, so
    /// every write brings the lines written since).
    pub fn merge_phases(&mut self, lines: &[HistoryEntry]) {
        for line in lines {
            if !self.phases.contains(line) {
                self.phases.push(line.clone());
            }
        }
        self.bound();
    }

    /// Adds a command run.
    pub fn add_command(&mut self, run: CommandRun) {
        self.commands.push(run);
        self.bound();
    }

    /// Adds an analysis round.
    pub fn add_round(&mut self, round: AnalysisRound) {
        self.rounds.push(round);
        self.bound();
    }

    /// Keeps the newest entries within [`MAX_ROUNDS`], [`MAX_COMMANDS`], [`MAX_PHASES`] and
    /// the whole within [`MAX_BYTES`] serialized, counting what it drops.
    pub fn bound(&mut self) {
        self.dropped.rounds += drop_oldest(&mut self.rounds, MAX_ROUNDS);
        self.dropped.commands += drop_oldest(&mut self.commands, MAX_COMMANDS);
        self.dropped.phases += drop_oldest(&mut self.phases, MAX_PHASES);
        while self.serialized_len() > MAX_BYTES {
            let list_lengths = [self.rounds.len(), self.commands.len(), self.phases.len()];
            // The longest list gives way first; rounds are the largest entries.
            if list_lengths[0] > 1 {
                self.dropped.rounds += drop_oldest(&mut self.rounds, list_lengths[0] / 2);
            } else if list_lengths[1] > 1 {
                self.dropped.commands += drop_oldest(&mut self.commands, list_lengths[1] / 2);
            } else if list_lengths[2] > 1 {
                self.dropped.phases += drop_oldest(&mut self.phases, list_lengths[2] / 2);
            } else {
                // Single huge entries (a reason of megabytes): keep the shape, drop them.
                self.dropped.rounds += self.rounds.len();
                self.rounds.clear();
                break;
            }
        }
    }

    /// The serialized size in bytes.
    pub fn serialized_len(&self) -> usize {
        serde_json::to_string(self).map_or(usize::MAX, |s| s.len())
    }
}

fn drop_oldest<T>(list: &mut Vec<T>, keep: usize) -> usize {
    let excess = list.len().saturating_sub(keep);
    list.drain(..excess);
    excess
}

/// Flags whose values are secrets: never stored, never shown.
const SECRET_FLAGS: [&str; 1] = ["--token"];

/// Flags whose values are secrets when they are URLs (a webhook URL is a credential for its
/// channel), shown when they are names (`--notify team-chat` names an endpoint of a Secret).
const URL_FLAGS: [&str; 1] = ["--notify"];

/// The command line as it may be stored and shown: the values of secret flags (`--token`)
/// and URLs given to `--notify` replaced by `REDACTED`, in both `--flag VALUE` and
/// `--flag=VALUE` forms.
pub fn redact_command_line(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    let mut hide_next_url = false;
    for arg in args {
        if hide_next || (hide_next_url && arg.contains("://")) {
            out.push("REDACTED".to_string());
            hide_next = false;
            hide_next_url = false;
            continue;
        }
        hide_next_url = false;
        if SECRET_FLAGS.contains(&arg.as_str()) {
            hide_next = true;
            out.push(arg.clone());
        } else if URL_FLAGS.contains(&arg.as_str()) {
            hide_next_url = true;
            out.push(arg.clone());
        } else if let Some(flag) = SECRET_FLAGS
            .iter()
            .find(|flag| arg.starts_with(&format!("{flag}=")))
        {
            out.push(format!("{flag}=REDACTED"));
        } else if let Some(flag) = URL_FLAGS
            .iter()
            .find(|flag| arg.starts_with(&format!("{flag}=")) && arg.contains("://"))
        {
            out.push(format!("{flag}=REDACTED"));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// One point of a chart: when (RFC 3339), the canary's value, the stable side's.
pub type Point = (String, Option<f64>, Option<f64>);

/// One measurement of one check over the rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementSeries {
    /// The check's name.
    pub check: String,
    /// The measurement's name.
    pub measurement: String,
    /// Its values, one per round that measured it, oldest first.
    pub points: Vec<Point>,
}

/// The measurements of every check over the rounds, in first-seen order of check and
/// measurement: what a report charts.
pub fn measurement_series(rounds: &[AnalysisRound]) -> Vec<MeasurementSeries> {
    let mut order: Vec<(String, String)> = vec![];
    let mut points: BTreeMap<(String, String), Vec<Point>> = BTreeMap::new();
    for round in rounds {
        for check in &round.verdict.checks {
            for measurement in &check.measurements {
                let key = (check.name.clone(), measurement.name.clone());
                if !order.contains(&key) {
                    order.push(key.clone());
                }
                points.entry(key).or_default().push((
                    round.at.clone(),
                    measurement.canary,
                    measurement.stable,
                ));
            }
        }
    }
    order
        .into_iter()
        .map(|key| MeasurementSeries {
            points: points.remove(&key).unwrap_or_default(),
            check: key.0,
            measurement: key.1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{CheckKind, CheckResult, InconclusivePolicy, Measurement, combine};
    use std::time::Duration;

    fn round(at: &str, reason_len: usize) -> AnalysisRound {
        let check = CheckResult {
            name: "pod-health".into(),
            kind: CheckKind::PodHealth,
            outcome: crate::verdict::Outcome::Pass,
            critical: true,
            on_inconclusive: InconclusivePolicy::default(),
            measurements: vec![Measurement::new("pods Ready", Some(1.0), Some(3.0))],
            reason: "x".repeat(reason_len),
        };
        AnalysisRound {
            at: at.into(),
            canary_replica_set: "web-2".into(),
            stable_replica_set: "web-1".into(),
            canary_pods: 1,
            stable_pods: 3,
            traffic_share: Some(0.25),
            verdict: combine(vec![check], 95.0, Duration::ZERO),
        }
    }

    #[test]
    fn the_history_stays_within_its_bounds_keeping_the_newest() {
        let mut history = CanaryHistory::new("web", "uid");
        for i in 0..(MAX_ROUNDS + 30) {
            history.add_round(round(&format!("t{i}"), 10));
        }
        assert_eq!(history.rounds.len(), MAX_ROUNDS);
        assert_eq!(history.dropped.rounds, 30);
        assert_eq!(
            history.rounds.last().unwrap().at,
            format!("t{}", MAX_ROUNDS + 29)
        );
        // Large rounds: the byte bound holds too.
        let mut large = CanaryHistory::new("web", "uid");
        for i in 0..100 {
            large.add_round(round(&format!("t{i}"), 10_000));
        }
        assert!(
            large.serialized_len() <= MAX_BYTES,
            "{}",
            large.serialized_len()
        );
        assert!(large.dropped.rounds > 0);
        assert_eq!(large.rounds.last().unwrap().at, "t99");
        // One entry larger than the bound on its own is dropped, not kept.
        let mut huge = CanaryHistory::new("web", "uid");
        huge.add_round(round("t", MAX_BYTES * 2));
        assert!(huge.serialized_len() <= MAX_BYTES);
    }

    #[test]
    fn a_new_canary_or_a_recreated_deployment_starts_a_new_history() {
        let mut history = CanaryHistory::new("web", "uid-1").continued_for("uid-1", Some("t0"));
        history.add_command(CommandRun {
            at: "t1".into(),
            command_line: vec!["kubectl-canary".into()],
            exit_code: 0,
        });
        let same = history.clone().continued_for("uid-1", Some("t0"));
        assert_eq!(same.commands.len(), 1);
        let ended = history.clone().continued_for("uid-1", None);
        assert_eq!(ended.commands.len(), 1, "no record (canary ended): kept");
        assert!(
            history
                .clone()
                .continued_for("uid-1", Some("t5"))
                .commands
                .is_empty()
        );
        assert!(
            history
                .continued_for("uid-2", Some("t0"))
                .commands
                .is_empty()
        );
    }

    #[test]
    fn phases_are_merged_without_repeats() {
        let mut history = CanaryHistory::new("web", "uid");
        let a = HistoryEntry {
            at: "t1".into(),
            event: "started".into(),
        };
        let b = HistoryEntry {
            at: "t2".into(),
            event: "held".into(),
        };
        history.merge_phases(std::slice::from_ref(&a));
        history.merge_phases(&[a.clone(), b.clone()]);
        assert_eq!(history.phases, vec![a, b]);
    }

    #[test]
    fn tokens_are_never_stored() {
        let args: Vec<String> = [
            "kubectl-canary",
            "--token",
            "s3cret",
            "status",
            "--token=abc",
            "deploy/web",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let redacted = redact_command_line(&args);
        assert_eq!(
            redacted,
            [
                "kubectl-canary",
                "--token",
                "REDACTED",
                "status",
                "--token=REDACTED",
                "deploy/web"
            ]
        );
    }

    #[test]
    fn notify_urls_are_never_stored_and_names_are() {
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &[
                    "--notify",
                    "https://hooks.slack.com/services/T/B/x",
                    "--notify",
                    "team-chat",
                ],
                &["--notify", "REDACTED", "--notify", "team-chat"],
            ),
            (
                &["--notify=slack+https://chat.example/x", "--notify=audit"],
                &["--notify=REDACTED", "--notify=audit"],
            ),
            (
                &["--notify", "team-chat", "https://x"],
                &["--notify", "team-chat", "https://x"],
            ),
            (
                &["--token", "--notify", "--notify", "http://127.0.0.1:9/x"],
                &["--token", "REDACTED", "--notify", "REDACTED"],
            ),
        ];
        for (args, expected) in cases {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert_eq!(redact_command_line(&args), expected, "{args:?}");
        }
    }

    #[test]
    fn series_follow_each_check_measurement_over_the_rounds() {
        let rounds = vec![round("t1", 1), round("t2", 1)];
        let series = measurement_series(&rounds);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].check, "pod-health");
        assert_eq!(series[0].measurement, "pods Ready");
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(
            series[0].points[1],
            ("t2".to_string(), Some(1.0), Some(3.0))
        );
    }
}
