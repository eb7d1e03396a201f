//! The evidence `canary_core::problems` judges, read from the cluster: pods and
//! ReplicaSets (from the view a status is built from), and what has no watch here, read
//! once per look: the Events of the namespace, the last verdict from the history, the API
//! server's clock. [`Reads::apply`] adds them to a status and judges it again.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;

use canary_core::problems::{
    ContainerEvidence, EventEvidence, NextInput, PodEvidence, ReplicaSetEvidence, Side, Situation,
    Termination, VerdictEvidence, VerdictState, judge, next_steps,
};
use canary_core::record::Phase;
use canary_core::verdict::Decision;

use crate::analysis::clock::ServerClock;
use crate::history::{HistoryRead, HistoryStore};
use crate::observe::{DeploymentView, pod_is_ready, template_hash_of};
use crate::status::StatusReport;

/// What a status's problems and next steps are judged from, kept with the status so that
/// reads made after it was built (Events, the verdict, the clock) can be added.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judging {
    /// The evidence.
    pub situation: Situation,
    /// What the next steps depend on, when the report's next steps come from the record
    /// (not after a foreign change, not for a record that cannot be trusted).
    pub next: Option<NextBasis>,
    /// When the canary started (RFC 3339): verdicts before it are not about this canary.
    pub started_at: Option<String>,
}

/// The state the next steps depend on, besides the problems.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextBasis {
    /// The recorded phase.
    pub phase: Phase,
    /// Something is pending.
    pub pending: bool,
    /// The Deployment still has its original template.
    pub nothing_changed_yet: bool,
}

/// A pod as evidence.
pub fn pod_evidence(pod: &Pod, side: Side) -> PodEvidence {
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let ready = pod_is_ready(pod);
    let not_ready_since = (!ready).then(|| {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "True")
            .and_then(|c| c.last_transition_time.as_ref())
            .or(pod.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
    });
    let unschedulable = conditions
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default());
    let termination = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| Termination {
        exit_code: t.exit_code,
        reason: t.reason.clone(),
        finished_at: t.finished_at.as_ref().map(|at| at.0.as_second()),
    };
    let containers = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            ContainerEvidence {
                name: c.name.clone(),
                restarts: c.restart_count,
                waiting_reason: waiting.and_then(|w| w.reason.clone()),
                waiting_message: waiting.and_then(|w| w.message.clone()),
                terminated: c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination),
                last_termination: c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination),
            }
        })
        .collect();
    PodEvidence {
        name: pod.name_any(),
        side,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        ready,
        not_ready_since: not_ready_since.flatten(),
        unschedulable,
        containers,
        event: None,
    }
}

/// A ReplicaSet (and its pods) as evidence.
pub fn replica_set_evidence(
    view: &DeploymentView,
    rs: &ReplicaSet,
    side: Side,
) -> ReplicaSetEvidence {
    let failure = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        });
    ReplicaSetEvidence {
        name: rs.name_any(),
        side,
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        pods: view.pods_with_hash(&template_hash_of(rs)).len() as i32,
        failure,
        failed_create: None,
    }
}

/// The pods and ReplicaSets of both sides as evidence.
pub fn situation(
    view: &DeploymentView,
    stable: Option<&ReplicaSet>,
    canary: Option<&ReplicaSet>,
) -> Situation {
    let mut situation = Situation {
        ready_deadline_secs: view
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .map_or(600, i64::from),
        ..Default::default()
    };
    for (rs, side) in [(canary, Side::Canary), (stable, Side::Stable)] {
        let Some(rs) = rs else { continue };
        situation
            .replica_sets
            .push(replica_set_evidence(view, rs, side));
        situation.pods.extend(
            view.pods_with_hash(&template_hash_of(rs))
                .into_iter()
                .map(|p| pod_evidence(p, side)),
        );
    }
    situation
}

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
        let events = api
            .list(&kube::api::ListParams::default())
            .await
            .map(|list| list.items)
            .unwrap_or_default();
        let rounds = match HistoryStore::new(client, namespace, deployment)
            .read()
            .await
        {
            Ok(HistoryRead::Found(history)) => history.rounds,
            _ => vec![],
        };
        Self {
            events,
            rounds,
            clock: ServerClock::read(client).await.ok(),
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
        report.judge(self.clock.map(|c| c.now().as_second()));
    }
}

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
