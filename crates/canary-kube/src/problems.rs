//! The evidence `canary_core::problems` judges, read from the cluster: pods and
//! ReplicaSets (from the view a status is built from), and what has no watch here, read
//! once per look: the Events of the namespace, the last verdict from the history, the API
//! server's clock. [`Reads::apply`] adds them to a status and judges it again.

use k8s_openapi::api::core::v1::Event;

use canary_core::problems::{
    EventEvidence, NextInput, Side, VerdictEvidence, VerdictState, judge, next_steps,
};
use canary_core::verdict::Decision;

use crate::analysis::clock::ServerClock;
use crate::history::{HistoryRead, HistoryStore};
use crate::status::StatusReport;

pub use crate::evidence::{Judging, NextBasis, pod_evidence, replica_set_evidence, situation};

/// What a status adds to its watch's view, read once per look.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    /// The namespace's Events.
    pub events: Vec<Event>,
    /// The analysis rounds of the history, newest last.
    pub rounds: Vec<canary_core::history::AnalysisRound>,
    /// The API server's clock.
    pub clock: Option<ServerClock>,
}

impl Reads {
    /// Reads the Events, the history and the clock. Each read that fails leaves its part
    /// empty: a status is shown without it rather than not at all.
    pub async fn read(client: &kube::Client, namespace: &str, deployment: &str) -> Self {
        let api: kube::Api<Event> = kube::Api::namespaced(client.clone(), namespace);
        let params = kube::api::ListParams::default();
        let history = HistoryStore::new(client, namespace, deployment);
        let (events, history, clock) =
            tokio::join!(api.list(&params), history.read(), ServerClock::read(client));
        Self {
            events: events.map(|list| list.items).unwrap_or_default(),
            rounds: match history {
                Ok(HistoryRead::Found(history)) => history.rounds,
                _ => vec![],
            },
            clock: clock.ok(),
        }
    }

    /// The Reads with a clock read before (the live view reads it once).
    pub fn with_clock(mut self, clock: Option<ServerClock>) -> Self {
        if self.clock.is_none() {
            self.clock = clock;
        }
        self
    }

    /// Adds the Events and the last verdict to the status's evidence and judges it again
    /// with the clock.
    pub fn apply(&self, report: &mut StatusReport) {
        let judging = &mut report.judging;
        for pod in &mut judging.situation.pods {
            pod.event = newest(&self.events, "Pod", &pod.name, |e| {
                e.type_.as_deref() == Some("Warning")
            });
        }
        for rs in &mut judging.situation.replica_sets {
            let failed = newest(&self.events, "ReplicaSet", &rs.name, |e| {
                e.reason.as_deref() == Some("FailedCreate")
            });
            let created = newest(&self.events, "ReplicaSet", &rs.name, |e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
            });
            rs.failed_create = failed.filter(|f| created.as_ref().is_none_or(|c| f.at >= c.at));
        }
        let canary = report.canary.as_ref();
        judging.situation.verdict = self
            .rounds
            .iter()
            .rev()
            .find(|round| {
                canary.is_some_and(|c| {
                    round.canary_replica_set == c.replica_set
                        && round.canary_pods == c.desired.max(0) as usize
                }) && judging
                    .started_at
                    .as_ref()
                    .is_none_or(|started| round.at.as_str() >= started.as_str())
            })
            .map(|round| VerdictEvidence {
                decision: round.verdict.decision,
                reason: round.verdict.reason.clone(),
                at: round.at.clone(),
            });
        report.notification_failures =
            self.notification_failures(&report.deployment, report.judging.started_at.as_deref());
        report.judge(self.clock.map(|c| c.now().as_second()));
    }

    /// The `NotificationFailed` Events about `deployment` (since `since`, RFC 3339), newest
    /// first, at most [`MAX_NOTIFICATION_FAILURES`].
    fn notification_failures(
        &self,
        deployment: &str,
        since: Option<&str>,
    ) -> Vec<crate::status::NotificationFailure> {
        let mut failures: Vec<crate::status::NotificationFailure> = self
            .events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("Deployment")
                    && e.involved_object.name.as_deref() == Some(deployment)
                    && e.reason.as_deref() == Some(canary_core::notify::NOTIFICATION_FAILED)
            })
            .filter_map(|e| {
                let at = crate::events::last_seen(e)?;
                let since = since.and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok());
                if since.is_some_and(|since| at < since) {
                    return None;
                }
                let message = e.message.clone().unwrap_or_default();
                Some(crate::status::NotificationFailure {
                    at: at.to_string(),
                    message: message
                        .strip_prefix("kubectl-canary: ")
                        .unwrap_or(&message)
                        .to_string(),
                    count: crate::events::count(e),
                })
            })
            .collect();
        failures.sort_by(|a, b| b.at.cmp(&a.at));
        failures.truncate(MAX_NOTIFICATION_FAILURES);
        failures
    }
}

/// Most failed notifications a status shows.
pub const MAX_NOTIFICATION_FAILURES: usize = 5;

/// The newest Event about an object that `keep` keeps.
fn newest(
    events: &[Event],
    kind: &str,
    name: &str,
    keep: impl Fn(&Event) -> bool,
) -> Option<EventEvidence> {
    events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
                && keep(e)
        })
        .map(|e| EventEvidence {
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: crate::events::count(e),
            at: crate::events::last_seen(e).map(|t| t.as_second()),
        })
        .max_by_key(|e| e.at)
}

impl StatusReport {
    /// Judges the problems from the report's evidence (with the API server's time `now`,
    /// when known), and orders the next steps by them when they come from the record.
    pub fn judge(&mut self, now: Option<i64>) {
        let problems = judge(&self.judging.situation, now);
        for (side, status) in [
            (Side::Stable, self.stable.as_mut()),
            (Side::Canary, self.canary.as_mut()),
        ] {
            if let Some(status) = status {
                status.problems = problems
                    .iter()
                    .filter(|p| p.side == side && (p.pod.is_some() || p.replica_set.is_some()))
                    .map(|p| p.message.clone())
                    .collect();
            }
        }
        if let Some(basis) = self.judging.next {
            let verdict = match self.judging.situation.verdict.as_ref().map(|v| v.decision) {
                None => VerdictState::None,
                Some(Decision::Pass) => VerdictState::Passed,
                Some(_) => VerdictState::Undecided,
            };
            let next = next_steps(&NextInput {
                name: &self.deployment,
                phase: basis.phase,
                pending: basis.pending,
                nothing_changed_yet: basis.nothing_changed_yet,
                replicas: self.replicas,
                problems: &problems,
                verdict,
                gate: basis.gate,
            });
            self.next_steps = next.steps;
            self.promote_withheld = next.promote_withheld;
        }
        self.problems = problems;
    }

    /// Whether the canary is unhealthy: promoting it is unsafe (`status` exits with the
    /// "held but unhealthy" code).
    pub fn unhealthy(&self) -> bool {
        canary_core::problems::is_unhealthy(&self.problems)
    }
}
