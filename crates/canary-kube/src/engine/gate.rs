//! `start --auto`'s wait at an approval gate: the gate recorded first, then watches until
//! the Deployment carries the gate's approval, its timeout passes or someone else acts.

use std::time::Duration;

use canary_core::foreign::ForeignChange;
use canary_core::gate::{ApprovalTimeout, AwaitedGate, GateState, GatedStep};

use crate::error::Result;
use crate::store::{StoredRecord, now};
use canary_core::notify::Moment;

use super::{Engine, Progress, mutation_point};

/// How a wait at an approval gate ended.
#[derive(Debug)]
pub enum GateOutcome {
    /// The Deployment carries the gate's approval: take the step.
    Approved,
    /// Nobody approved within the timeout, whose policy is to roll back.
    TimedOut,
    /// Someone else changed the canary meanwhile (a change of replicas, another run): the
    /// caller handles it as during an analysis.
    Foreign(ForeignChange),
}

/// What a gate awaits and from whom, with the commands, as the Event and the notice say it.
fn awaiting_words(gate: &AwaitedGate, name: &str, timeout: Option<ApprovalTimeout>) -> String {
    format!(
        "{} waits for an approval by someone allowed to update deploy/{name}: `{}` (or `{}`){}",
        gate.before,
        gate.approve_command(name),
        gate.annotate_command(name),
        timeout
            .map(|t| format!("; timeout {t}"))
            .unwrap_or_default()
    )
}

impl Engine {
    /// Waits at the gate before `before`: records the gate (so `status`, the report and a
    /// later command see it), says so in an Event, then waits on watches until the
    /// Deployment carries the gate's approval ([`canary_core::gate::APPROVE_ANNOTATION`],
    /// set by `kubectl canary promote` or by hand), the timeout passes, or a foreign change
    /// shows. `stored` is the record as it is after the wait.
    pub async fn await_approval(
        &self,
        stored: &mut StoredRecord,
        before: GatedStep,
        timeout: Option<ApprovalTimeout>,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<GateOutcome> {
        let deployment = self.deployment().await?;
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let gate = AwaitedGate::new(before, &uid, &stored.record.started_at, &now(), timeout);
        let mut record = stored.record.clone();
        record.note(
            &gate.since,
            format!(
                "analysis passed; awaiting approval before {before}{}",
                timeout
                    .map(|t| format!(" (timeout {t})"))
                    .unwrap_or_default()
            ),
        );
        record.gate = Some(gate.clone());
        *stored = self.store.update(stored, &record).await?;
        mutation_point("record: awaiting approval");
        progress(&Progress::Recorded {
            phase: record.phase,
        });
        let events = self.events(&deployment);
        let awaiting = awaiting_words(&gate, &self.name, timeout);
        events
            .normal_moment(
                "CanaryAwaitingApproval",
                format!("kubectl-canary: the analysis passed; {awaiting}"),
                Moment::AwaitingApproval { awaiting },
                &stored.record,
            )
            .await;
        let mut live = self.live().await?;
        // Our own record write must not look like another run's.
        live.record_caught_up_with(&stored.resource_version, Duration::from_secs(5))
            .await;
        let mut overdue_said = false;
        loop {
            if let Some(change) = self.foreign_in_live(&live, stored) {
                return Ok(GateOutcome::Foreign(change));
            }
            let view = live.view()?;
            let left = match crate::gate::state(&gate, &view.deployment) {
                GateState::Approved => {
                    events
                        .normal(
                            "CanaryApproved",
                            format!("kubectl-canary: {before} approved"),
                        )
                        .await;
                    return Ok(GateOutcome::Approved);
                }
                GateState::TimedOut => {
                    events
                        .warning(
                            "CanaryApprovalTimedOut",
                            format!(
                                "kubectl-canary: nobody approved {before} within {}: rolling back",
                                timeout.map(|t| t.to_string()).unwrap_or_default()
                            ),
                        )
                        .await;
                    return Ok(GateOutcome::TimedOut);
                }
                GateState::Overdue => {
                    if !overdue_said {
                        overdue_said = true;
                        events
                            .warning_moment(
                                "CanaryApprovalOverdue",
                                format!(
                                    "kubectl-canary: {before} is still waiting for an approval (timeout {}); \
                                     approve with `{}` or stop with `kubectl canary abort deploy/{}`",
                                    timeout.map(|t| t.to_string()).unwrap_or_default(),
                                    gate.approve_command(&self.name),
                                    self.name
                                ),
                                Moment::AwaitingApproval {
                                    awaiting: format!(
                                        "still: {}",
                                        awaiting_words(&gate, &self.name, timeout)
                                    ),
                                },
                                &stored.record,
                            )
                            .await;
                        progress(&Progress::Warning {
                            message: format!(
                                "the approval before {before} is overdue; still waiting"
                            ),
                        });
                    }
                    None
                }
                GateState::Waiting { left } => left,
            };
            // Watches wake the wait; the timeout's own moment needs no event.
            let max = left
                .map(|left| left.min(Duration::from_secs(5)))
                .unwrap_or(Duration::from_secs(5));
            live.changed(max).await;
        }
    }
}

impl Engine {
    /// Approves `gate`: its token on the Deployment, as `writer` (read again on a conflict).
    pub async fn approve(&self, writer: crate::write::Writer, gate: &AwaitedGate) -> Result<()> {
        for _ in 0..5 {
            let deployment = self.deployment().await?;
            if let crate::write::Written::Stored(()) = writer
                .approve(&self.apis.deployments, &deployment, &gate.token)
                .await?
            {
                mutation_point("approval written");
                return Ok(());
            }
        }
        Err(crate::error::CanaryError::Refused(format!(
            "deploy/{} kept changing while the approval was written (5 conflicts); try again",
            self.name
        )))
    }

    /// Waits (at most `max`) for whoever waits at `gate` to take the approved step: the
    /// record no longer waits at it (or is gone). `false` when nobody did in time.
    pub async fn gate_taken(&self, gate: &AwaitedGate, max: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + max;
        let mut live = self.live().await?;
        loop {
            let waiting = live
                .record(&self.store)?
                .and_then(|stored| stored.record.gate)
                .is_some_and(|recorded| recorded.token == gate.token);
            if !waiting {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            live.changed(deadline - now).await;
        }
    }
}
