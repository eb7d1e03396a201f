//! The documents `-o json` and `-o yaml` print: one per command run (and one per change with
//! `status --watch`), each with `apiVersion` (the schema's version, [`SCHEMA_VERSION`]) and
//! `kind` (its shape) first. Every value a script branches on is an enumerated value; every
//! sentence for people is a field of its own; no document holds JSON inside a string. The
//! shapes are documented in docs/output.md, whose examples the tests below check.

use canary_core::machine::Decision;
use canary_core::plan::{CanaryPlan, Explanation};
use canary_core::verdict::Verdict;
use canary_kube::engine::StartPlan;
use canary_kube::status::StatusReport;
use serde::Serialize;

/// The version of the documents' schema. A field is only ever added within a version; a
/// removed or changed field makes a new version.
pub const SCHEMA_VERSION: &str = "kubectl-canary.io/v1";

/// A value printed as a document: its `kind`.
pub trait Document: Serialize {
    /// The document's kind, e.g. `Status`.
    const KIND: &'static str;
}

/// The printed form: `apiVersion` and `kind`, then the document's own fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, T: Document> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: Document> Envelope<'a, T> {
    /// `body` with its version and kind.
    pub fn of(body: &'a T) -> Self {
        Envelope {
            api_version: SCHEMA_VERSION,
            kind: T::KIND,
            body,
        }
    }
}

impl Document for canary_kube::kinds_status::KindStatus {
    const KIND: &'static str = "WorkloadStatus";
}

impl Document for canary_core::plan::KindPlan {
    const KIND: &'static str = "WorkloadPlan";
}

impl Document for canary_kube::kinds_drive::KindPreview {
    const KIND: &'static str = "WorkloadDryRun";
}

impl Document for StatusReport {
    const KIND: &'static str = "Status";
}

impl Document for Verdict {
    const KIND: &'static str = "Verdict";
}

impl Document for StartPlan {
    const KIND: &'static str = "StartPlan";
}

/// What a dry run of `promote` or `abort` would do: the state machine's next decision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun<'a> {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// The next decision (its `decision` field says which).
    pub next: &'a Decision,
}

impl Document for DryRun<'_> {
    const KIND: &'static str = "DryRun";
}

/// How a command that changes a canary ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandOutcome {
    /// The canary is held at its size.
    Held,
    /// The new version runs on every pod; the canary is closed.
    Promoted,
    /// The stable version runs on every pod again; the canary is closed.
    RolledBack,
    /// A record no update of the Deployment confirmed was deleted; the Deployment untouched.
    RecordDiscarded,
    /// An unreadable record was deleted; the Deployment untouched.
    UnreadableRecordDeleted,
    /// The seal a finished canary left on the Deployment was removed.
    SealRemoved,
    /// No canary was running; Services a finished or interrupted canary had left pinned
    /// were put back as they were.
    ServicesRestored,
    /// A signal stopped the command; the record keeps the intent.
    Interrupted,
    /// The step an approval gate held back was approved, and the run waiting there took it.
    Approved,
}

/// The result of `promote` or `abort` (and of `start` interrupted).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// `start`, `promote` or `abort`.
    pub command: &'static str,
    /// The namespace.
    pub namespace: String,
    /// The Deployment.
    pub deployment: String,
    /// How it ended.
    pub outcome: CommandOutcome,
    /// The same in words, with what to do next where something is left to do.
    pub message: String,
    /// The status afterwards, when it was read.
    pub status: Option<StatusReport>,
}

impl Document for CommandResult {
    const KIND: &'static str = "Result";
}

/// How `start --auto` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AutoResult {
    /// Every step passed; the new version runs on every pod.
    Promoted,
    /// A step failed its analysis; the stable version runs on every pod again.
    RolledBack,
    /// The analysis could not decide; the canary stays held and recorded.
    Inconclusive,
    /// A signal stopped the run.
    Interrupted,
}

/// The result of `start --auto`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoOutcome {
    /// How it ended.
    pub outcome: AutoResult,
    /// The canary sizes reached, in pods.
    pub steps: Vec<i32>,
    /// The verdict of every analysis, in order.
    pub verdicts: Vec<Verdict>,
}

impl Document for AutoOutcome {
    const KIND: &'static str = "AutoRun";
}

/// `plan`: the canary plan of a Deployment (or of `--replicas` without a cluster).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport<'a> {
    /// The Deployment, when planned from a live one.
    pub deployment: Option<&'a str>,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// The plan's fields.
    #[serde(flatten)]
    pub plan: &'a CanaryPlan,
}

impl Document for PlanReport<'_> {
    const KIND: &'static str = "Plan";
}

/// `plan --explain`: the walk-through of the controller's native rollout and the canary.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainReport<'a> {
    /// The Deployment, when explained from a live one.
    pub deployment: Option<&'a str>,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// The explanation's fields.
    #[serde(flatten)]
    pub explanation: &'a Explanation,
}

impl Document for ExplainReport<'_> {
    const KIND: &'static str = "PlanExplanation";
}

/// The documented examples (docs/output/*.json) are exactly what these values print: a
/// change of a document's shape fails here until docs/output.md and the examples say so
/// (`UPDATE_OUTPUT_EXAMPLES=1` rewrites the examples; review the diff, and a removed or
/// changed field needs a new [`SCHEMA_VERSION`]).
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use canary_core::machine::Waiting;
    use canary_core::plan::{ClusterCapacity, PlanInput, plan};
    use canary_core::rollout_math::{CanaryMode, CanarySize};
    use canary_core::verdict::{
        CheckKind, CheckResult, InconclusivePolicy, Measurement, Outcome, combine,
    };
    use canary_kube::status::{SideStatus, StatusPhase};

    use super::*;
    use crate::cli::OutputFormat;
    use crate::output::structured_text;

    fn check_example<T: Document>(name: &str, value: &T) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/output")
            .join(format!("{name}.json"));
        let printed = structured_text(OutputFormat::Json, value).expect("JSON");
        if std::env::var_os("UPDATE_OUTPUT_EXAMPLES").is_some() {
            std::fs::write(&path, &printed).expect("write the example");
            return;
        }
        let documented =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            printed,
            documented,
            "{name}: the printed document differs from {} (docs/output.md)",
            path.display()
        );
        // YAML carries the same document.
        let yaml = structured_text(OutputFormat::Yaml, value).expect("YAML");
        assert!(yaml.starts_with("---\n"), "{yaml}");
        let from_yaml: serde_json::Value = serde_saphyr::from_str(&yaml).expect("YAML parses");
        // (Read with the same float parser: serde_json's default one rounds the last digit.)
        let from_json: serde_json::Value = serde_saphyr::from_str(&printed).expect("JSON parses");
        assert_eq!(from_yaml, from_json, "{name}: YAML and JSON agree");
    }

    fn side(name: &str, revision: i64, image: &str, pods: i32) -> SideStatus {
        SideStatus {
            replica_set: name.into(),
            revision,
            pod_template_hash: name.rsplit('-').next().unwrap_or_default().into(),
            images: BTreeMap::from([("web".to_string(), image.to_string())]),
            desired: pods,
            pods,
            ready: pods,
            available: pods,
            restarts: 0,
            problems: vec![],
        }
    }

    fn status() -> StatusReport {
        StatusReport {
            namespace: "shop".into(),
            deployment: "web".into(),
            problems: vec![],
            replicas: 10,
            paused: true,
            phase: StatusPhase::Holding,
            phase_description: "holding a canary of 1 pod(s)".into(),
            mode: Some(CanaryMode::Surge),
            started_by: Some("alice on laptop (pid 4242, kubectl-canary 0.1.0)".into()),
            started_at: Some("2026-11-30T22:00:00Z".into()),
            stable: Some(side("web-5d8f9c7b6", 3, "shop/web:1.4", 10)),
            canary: Some(side("web-7c9d8b5f4", 4, "shop/web:1.5", 1)),
            canary_traffic_share: Some(1.0 / 11.0),
            extra_pods: 1,
            pending: None,
            waiting: None,
            foreign: None,
            next_steps: vec![
                "kubectl canary analyze deploy/web".into(),
                "kubectl canary promote deploy/web --full".into(),
                "kubectl canary abort deploy/web".into(),
            ],
            promote_withheld: None,
            history: vec!["2026-11-30T22:00:00Z started: 1 canary pod(s)".into()],
            integrity: None,
            release: None,
            canary_size: None,
            approval: None,
            template_changes: vec![],
            notification_failures: vec![],
            judging: Default::default(),
        }
    }

    fn verdict() -> Verdict {
        combine(
            vec![
                CheckResult {
                    name: "pod-health".into(),
                    kind: CheckKind::PodHealth,
                    outcome: Outcome::Pass,
                    critical: true,
                    on_inconclusive: InconclusivePolicy::default(),
                    measurements: vec![Measurement::new("pods Ready", Some(1.0), Some(10.0))],
                    reason: "1 of 1 canary pods Ready, 0 restarts".into(),
                },
                CheckResult {
                    name: "http-80".into(),
                    kind: CheckKind::Http,
                    outcome: Outcome::Fail,
                    critical: true,
                    on_inconclusive: InconclusivePolicy::default(),
                    measurements: vec![
                        Measurement::new("requests", Some(20.0), Some(20.0)),
                        Measurement::new("error rate", Some(1.0), Some(0.0)),
                    ],
                    reason: "error rate canary 20/20 (status 500) vs stable 0/20: more than 5 points above stable (Fisher p=0)".into(),
                },
            ],
            95.0,
            Duration::ZERO,
        )
    }

    #[test]
    fn status_held_and_waiting() {
        check_example("status", &status());
        let mut waiting = status();
        waiting.phase = StatusPhase::Promoting;
        waiting.phase_description = "promoting the canary from 1 to 2 pod(s)".into();
        waiting.waiting = Some(Waiting::CanaryScaling {
            canary: 1,
            stable: 10,
            wanted_canary: 2,
            wanted_stable: 10,
        });
        waiting.pending = Some(canary_core::text::waiting_text(
            waiting.waiting.as_ref().unwrap(),
        ));
        check_example("status-waiting", &waiting);
    }

    /// A canary whose pod crash-loops: the problem leads, abort is advised first and
    /// promotion withheld with why.
    #[test]
    fn status_unhealthy() {
        check_example("status-unhealthy", &unhealthy_status());
    }

    /// In text the problem is the line after the Deployment's, coloured only when asked
    /// (a terminal without NO_COLOR), with the not-advised promotion after the steps.
    #[test]
    fn status_text_leads_with_the_problem_coloured_on_a_terminal() {
        let report = unhealthy_status();
        let plain = crate::output::status_text_in(&report, false, false);
        let lines: Vec<&str> = plain.lines().collect();
        assert!(
            lines[1].starts_with("problem (canary, crashLoop): web-7c9d8b5f4-x2x7q: crash-looping"),
            "{plain}"
        );
        assert_eq!(
            lines[2],
            "  newest event: BackOff: Back-off restarting failed container web in pod web-7c9d8b5f4-x2x7q (14 times)"
        );
        assert!(!plain.contains('\u{1b}'), "{plain}");
        assert!(plain.ends_with(
            "not advised: promoting is unsafe while the canary is unhealthy: web-7c9d8b5f4-x2x7q: crash-looping (container web, 15 restarts, last exit 1 (Error) 2s ago; now Running, not Ready)\n"
        ), "{plain}");
        let coloured = crate::output::status_text_in(&report, false, true);
        assert!(
            coloured.contains("\u{1b}[1;31mproblem (canary, crashLoop)"),
            "{coloured}"
        );
        // Both sides' labels are coloured, the canary's red while it is unhealthy.
        assert!(coloured.contains("\u{1b}[38;5;9m canary "), "{coloured:?}");
        assert!(coloured.contains("\u{1b}[38;5;10m stable "), "{coloured:?}");
    }

    #[test]
    fn status_says_which_notifications_failed() {
        let text = crate::output::status_text_in(&unhealthy_status(), false, false);
        assert!(
            text.contains(
                "notification failed (2025-11-30T22:02:10Z): the held notice to endpoint team-chat (slack) was not sent"
            ),
            "{text}"
        );
        assert!(!crate::output::status_text_in(&status(), false, false).contains("notification"));
    }

    fn unhealthy_status() -> StatusReport {
        use canary_core::problems::{
            ContainerEvidence, NextInput, PodEvidence, Side, Situation, Termination, VerdictState,
            judge, next_steps,
        };
        use canary_core::record::Phase;
        let mut report = status();
        let situation = Situation {
            pods: vec![PodEvidence {
                name: "web-7c9d8b5f4-x2x7q".into(),
                side: Side::Canary,
                terminating: false,
                ready: false,
                not_ready_since: Some(1_764_540_000),
                unschedulable: None,
                containers: vec![ContainerEvidence {
                    name: "web".into(),
                    restarts: 15,
                    waiting_reason: None,
                    waiting_message: None,
                    terminated: None,
                    last_termination: Some(Termination {
                        exit_code: 1,
                        reason: Some("Error".into()),
                        finished_at: Some(1_764_540_098),
                    }),
                }],
                event: Some(canary_core::problems::EventEvidence {
                    reason: "BackOff".into(),
                    message: "Back-off restarting failed container web in pod web-7c9d8b5f4-x2x7q"
                        .into(),
                    count: 14,
                    at: Some(1_764_540_099),
                }),
            }],
            ready_deadline_secs: 600,
            ..Default::default()
        };
        report.problems = judge(&situation, Some(1_764_540_100));
        let canary = report.canary.as_mut().unwrap();
        canary.ready = 0;
        canary.available = 0;
        canary.restarts = 15;
        canary.problems = vec![report.problems[0].message.clone()];
        report.canary_traffic_share = Some(0.0);
        let next = next_steps(&NextInput {
            name: "web",
            phase: Phase::Holding { pods: 1 },
            pending: false,
            nothing_changed_yet: false,
            replicas: 10,
            problems: &report.problems,
            verdict: VerdictState::None,
            gate: None,
        });
        report.next_steps = next.steps;
        report.promote_withheld = next.promote_withheld;
        report.notification_failures = vec![canary_kube::status::NotificationFailure {
            at: "2025-11-30T22:02:10Z".into(),
            message: "the held notice to endpoint team-chat (slack) was not sent: the endpoint answered 500 \
                      Internal Server Error (after 3 attempts)"
                .into(),
            count: 1,
        }];
        report
    }

    #[test]
    fn result() {
        check_example(
            "result",
            &CommandResult {
                command: "abort",
                namespace: "shop".into(),
                deployment: "web".into(),
                outcome: CommandOutcome::RolledBack,
                message: "rolled back: the stable version runs on every pod of deploy/web, the canary is closed".into(),
                status: None,
            },
        );
    }

    #[test]
    fn verdict_and_auto_run() {
        check_example("verdict", &verdict());
        check_example(
            "auto-run",
            &AutoOutcome {
                outcome: AutoResult::RolledBack,
                steps: vec![1],
                verdicts: vec![verdict()],
            },
        );
    }

    #[test]
    fn dry_run() {
        check_example(
            "dry-run",
            &DryRun {
                dry_run: true,
                next: &Decision::Reached,
            },
        );
    }

    #[test]
    fn plan_report() {
        let planned = plan(&PlanInput {
            replicas: 10,
            target: CanarySize::Pods(1),
            pod_requests: None,
            cluster: ClusterCapacity::Offline,
        })
        .expect("a plan");
        check_example(
            "plan",
            &PlanReport {
                deployment: None,
                namespace: None,
                plan: &planned,
            },
        );
    }

    #[test]
    fn workload_status() {
        use canary_kube::kinds_status::{KindCanary, KindPod, KindStatus};
        let pod = |name: &str, side: &'static str, ready: bool, node: &str| KindPod {
            name: name.into(),
            side,
            ready,
            terminating: false,
            node: node.into(),
        };
        check_example(
            "workload-status",
            &KindStatus {
                workload: "sts/db".into(),
                problems: vec!["canary pod db-2 is not Ready".into()],
                canary: Some(KindCanary {
                    goal: serde_json::json!({"goal": "hold", "pods": 1}),
                    started_by: "alice on laptop".into(),
                    started_at: "2026-12-05T10:00:00Z".into(),
                }),
                stable_revision: "db-5d8f7c9b6".into(),
                canary_revision: Some("db-7b4c6d8f5".into()),
                pods: vec![
                    pod("db-0", "stable", true, "node-a"),
                    pod("db-1", "stable", true, "node-b"),
                    pod("db-2", "canary", false, "node-c"),
                ],
                next: vec![
                    "kubectl canary promote sts/db --canary SIZE (grow) or --full".into(),
                    "kubectl canary abort sts/db".into(),
                ],
            },
        );
    }

    /// Nothing a script reads is JSON inside a string.
    #[test]
    fn no_document_holds_json_in_a_string() {
        fn strings(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::String(s) => found.push(s.clone()),
                serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, found)),
                serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, found)),
                _ => {}
            }
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/output");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("docs/output").flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let document: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut found = Vec::new();
            strings(&document, &mut found);
            for s in found {
                let trimmed = s.trim();
                assert!(
                    !(trimmed.starts_with('{') || trimmed.starts_with('['))
                        || serde_json::from_str::<serde_json::Value>(trimmed).is_err(),
                    "{}: JSON inside a string: {s}",
                    entry.path().display()
                );
            }
            seen += 1;
        }
        assert!(seen >= 6, "{seen} examples");
    }
}
