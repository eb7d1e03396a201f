//! The drive loops: observe, decide ([`canary_core::machine::decide`]), apply, until the
//! goal is reached; `start`'s hold, `continue_to` (promote, abort) and the guarded update.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;

use canary_core::machine::{Decision, Goal, SpecChange, Waiting};
use canary_core::seal::Seal;

use crate::error::{CanaryError, Result};
use crate::observe::DeploymentView;
use crate::ops;
use crate::store::StoredRecord;
use crate::write::Written;
use canary_core::notify::Moment;

use super::{DriveOptions, Engine, Progress, StartPlan, mutation_point, now};

impl Engine {
    /// Starts a canary planned by [`Engine::plan_start`] (which checked the permissions):
    /// writes the record (the lock), then drives the Deployment to hold exactly the planned
    /// number of canary pods.
    pub async fn start(
        &self,
        plan: StartPlan,
        view: &DeploymentView,
        options: DriveOptions<'_>,
    ) -> Result<StoredRecord> {
        let stored = self.store.create(&plan.record, &view.deployment).await?;
        mutation_point("record created");
        (options.progress)(&Progress::Recorded {
            phase: stored.record.phase,
        });
        let events = self.events(&view.deployment);
        events
            .normal_moment(
                "CanaryStarting",
                format!(
                    "kubectl-canary: starting a canary of {} pod(s) changing {}",
                    plan.canary.pods,
                    plan.record.change_summary()
                ),
                Moment::Started,
                &stored.record,
            )
            .await;
        self.hold(stored, plan.canary.pods, &events, options).await
    }

    /// Drives to a held canary of `pods` pods and records it as held.
    pub(super) async fn hold(
        &self,
        stored: StoredRecord,
        pods: i32,
        events: &crate::events::EventSink,
        options: DriveOptions<'_>,
    ) -> Result<StoredRecord> {
        let mut stored = stored;
        self.drive(
            &mut stored,
            Goal::Hold { pods },
            options.timeout,
            options.progress,
        )
        .await?;
        // A followed change of replicas may have changed the size held.
        let pods = match stored.record.phase.goal() {
            Goal::Hold { pods } => pods,
            _ => pods,
        };
        let record = stored.record.held(pods, &now());
        let stored = self.store.update(&stored, &record).await?;
        mutation_point("record: holding");
        (options.progress)(&Progress::Recorded {
            phase: record.phase,
        });
        events
            .normal_moment(
                "CanaryHeld",
                format!("kubectl-canary: holding {pods} canary pod(s), Deployment paused"),
                Moment::Held,
                &record,
            )
            .await;
        Ok(stored)
    }

    /// Continues a canary to `goal`: records the new intent, drives the Deployment there,
    /// and, for promote-full and abort, deletes the record at the end.
    pub async fn continue_to(
        &self,
        stored: StoredRecord,
        goal: Goal,
        wait: bool,
        options: DriveOptions<'_>,
    ) -> Result<Option<StoredRecord>> {
        let mut record = stored.record.clone();
        let view = self.current_view().await?;
        let deployment = view.deployment.clone();
        // Before anything is written: is the canary still the one recorded?
        let mut stored = stored;
        let mut view_is_current = true;
        if let Some(change) = self.foreign_before(&stored, goal, &view).await? {
            self.on_foreign(change, &mut stored, options.progress)
                .await?;
            record = stored.record.clone();
            view_is_current = false;
        }
        let phase = record.phase.towards(goal);
        let events = self.events(&deployment);
        // Any command that moves the canary ends a wait at an approval gate.
        let stored = if record.phase != phase || record.gate.is_some() {
            record.phase = phase;
            record.gate = None;
            record.note(&now(), phase.describe());
            let stored = self.store.update(&stored, &record).await?;
            mutation_point("record: new phase");
            (options.progress)(&Progress::Recorded { phase });
            stored
        } else {
            stored
        };
        match goal {
            Goal::Hold { pods } => {
                events
                    .normal_moment(
                        "CanaryPromoting",
                        format!("kubectl-canary: growing the canary to {pods} pod(s)"),
                        Moment::StepPromoted,
                        &stored.record,
                    )
                    .await;
                self.hold(stored, pods, &events, options).await.map(Some)
            }
            Goal::PromoteFull | Goal::Abort => {
                let (reason, done_reason, what, moment) = if goal == Goal::Abort {
                    (
                        "CanaryAborting",
                        "CanaryAborted",
                        "rolled back to the stable version",
                        Moment::RolledBack,
                    )
                } else {
                    (
                        "CanaryPromoting",
                        "CanaryPromoted",
                        "promoted the new version to every pod",
                        Moment::Promoted,
                    )
                };
                let mut stored = stored;
                // The Event goes out beside the work, not before it: an abort's rollback
                // should not wait a round trip for a note (bench/: time to a safe state).
                let announced =
                    events.normal(reason, format!("kubectl-canary: {}", phase.describe()));
                let work = async {
                    if wait {
                        if view_is_current && !stored.is_synthesized() {
                            self.apply_first(&view, &mut stored, goal, options.progress)
                                .await?;
                        }
                        self.drive(&mut stored, goal, options.timeout, options.progress)
                            .await
                    } else {
                        self.apply_until_waiting(
                            &mut stored,
                            goal,
                            options.timeout,
                            options.progress,
                        )
                        .await
                    }
                };
                let ((), worked) = tokio::join!(announced, work);
                worked?;
                if goal == Goal::Abort {
                    self.warn_terminating_canary_pods(&stored.record, options.progress)
                        .await;
                }
                self.store.delete(&stored).await?;
                mutation_point("record deleted");
                // The seal stays until the record is gone: a record without it is never trusted.
                self.remove_seal().await?;
                (options.progress)(&Progress::Released);
                events
                    .normal_moment(
                        done_reason,
                        format!("kubectl-canary: {what}; the Deployment's own settings are back"),
                        moment,
                        &stored.record,
                    )
                    .await;
                Ok(None)
            }
        }
    }

    /// Brings an interrupted start or promotion to rest: held and paused at the size the
    /// record was working towards (the brake means this is quick). Returns that size.
    pub async fn hold_where_recorded(
        &self,
        stored: StoredRecord,
        timeout: Duration,
    ) -> Result<i32> {
        let pods = match stored.record.phase.goal() {
            Goal::Hold { pods } => pods,
            Goal::PromoteFull | Goal::Abort => stored.record.held_pods().unwrap_or(1),
        };
        let mut quiet = |_: &Progress| {};
        self.continue_to(
            stored,
            Goal::Hold { pods },
            true,
            DriveOptions {
                timeout,
                progress: &mut quiet,
            },
        )
        .await?;
        Ok(pods)
    }

    /// The first write of a promotion or rollback, decided from the view the foreign check
    /// just read, before the watches start: a rollback should not wait for four lists
    /// (bench/: time to a safe state). Only the record changed since that read; the update
    /// carries the Deployment's resourceVersion, so a change in between is a conflict, and
    /// [`Engine::drive`] decides again from the watches in every case.
    async fn apply_first(
        &self,
        view: &DeploymentView,
        stored: &mut StoredRecord,
        goal: Goal,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        let record = stored.record.clone();
        if let (goal, Decision::Apply(change)) = ops::step::turn(&record, goal, view) {
            self.apply_checked(view, &change, stored, goal, progress)
                .await?;
        }
        Ok(())
    }

    /// Applies the machine's updates until it only waits for the controller (`--no-wait`),
    /// on fresh reads.
    pub(crate) async fn apply_until_waiting(
        &self,
        stored: &mut StoredRecord,
        goal: Goal,
        timeout: Duration,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        let deadline = Deadline::after(timeout);
        loop {
            if !stored.is_synthesized()
                && let Some((change, record_gone)) = self.foreign_read(stored).await?
            {
                // The record closed by whoever reached the same goal: done, decided on a
                // read at least as new as the record's deletion (as in `drive`).
                if record_gone && self.finished_by_others(&change, stored, goal).await? {
                    return Ok(());
                }
                self.on_foreign(change, stored, progress).await?;
                continue;
            }
            let view = self.view().await?;
            match self
                .take_turn(&view, stored, goal, deadline, progress)
                .await?
            {
                Turned::Resized | Turned::Updated(Some(_)) => {}
                // Someone else wrote first, or the GitOps controller is to carry it out:
                // look again shortly rather than at once.
                Turned::Updated(None) => tokio::time::sleep(Duration::from_millis(200)).await,
                Turned::Waiting(_) | Turned::Reached => return Ok(()),
            }
        }
    }

    /// Observes, decides and applies until the goal is reached; waits on watch events.
    /// Before every decision, what the watches show is checked for foreign changes (another
    /// Deployment, another run's record, another template, another size); on one, the run
    /// steps aside as [`canary_core::foreign`] says and stops.
    pub async fn drive(
        &self,
        stored: &mut StoredRecord,
        goal: Goal,
        timeout: Duration,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        let deadline = Deadline::after(timeout);
        let mut live = self.live().await?;
        let mut last_wait: Option<Waiting> = None;
        loop {
            if !stored.is_synthesized()
                && let Some(change) = self.foreign_in_live(&live, stored)
            {
                // The record closed by whoever finished the same goal: the run is done
                // (the rule: `ForeignChange::response_towards`).
                let record_now = live.record(&self.store);
                let now = match &record_now {
                    Ok(None) => canary_core::foreign::SeenRecord::Gone,
                    Ok(Some(now)) => canary_core::foreign::SeenRecord::Present {
                        record: &now.record,
                        resource_version: &now.resource_version,
                    },
                    Err(_) => canary_core::foreign::SeenRecord::Unchecked,
                };
                if let Ok(view) = live.view()
                    && change.response_towards(
                        &stored.record,
                        goal,
                        now,
                        &view.observation(&stored.record),
                    ) == canary_core::foreign::ForeignResponse::Done
                {
                    return Ok(());
                }
                // A record closed by whoever reached the goal (the GitOps controller carrying
                // out this run's promotion) can reach this run's watches before that run's
                // last writes of the Deployment and its ReplicaSets do: they come on other
                // watches, in no set order. A fresh read, at least as new as the deletion,
                // decides then, before the record is called lost.
                if matches!(now, canary_core::foreign::SeenRecord::Gone)
                    && self.finished_by_others(&change, stored, goal).await?
                {
                    return Ok(());
                }
                self.on_foreign(change, stored, progress).await?;
                // Decide next on a view that includes the record just written.
                live.record_caught_up_with(&stored.resource_version, Duration::from_secs(5))
                    .await;
                continue;
            }
            let view = live.view()?;
            match self
                .take_turn(&view, stored, goal, deadline, progress)
                .await?
            {
                Turned::Resized => live.changed(Duration::from_secs(5)).await,
                Turned::Reached => return Ok(()),
                // Decide next on a view that includes our own write.
                Turned::Updated(Some(version)) => {
                    live.caught_up_with(&version, Duration::from_secs(5)).await
                }
                // Someone else wrote first: wait for their write to arrive.
                Turned::Updated(None) => live.changed(Duration::from_secs(5)).await,
                Turned::Waiting(waiting) => {
                    if last_wait.as_ref() != Some(&waiting) {
                        progress(&Progress::Waiting {
                            waiting: waiting.clone(),
                        });
                        last_wait = Some(waiting.clone());
                    }
                    let left = deadline.left();
                    if left.is_zero() {
                        return Err(CanaryError::TimedOut {
                            what: format!("deploy/{} to reach {goal:?}", self.name),
                            seconds: timeout.as_secs(),
                            last: serde_json::to_string(&waiting).unwrap_or_default(),
                        });
                    }
                    // The next watch event, or a slow safety net in case a watch stalls.
                    live.changed(left.min(Duration::from_secs(5))).await;
                }
            }
        }
    }

    /// One turn of a drive loop on `view` ([`ops::step::turn`]): a resize or an update
    /// carried out (unless the deadline passed), a stuck canary as an error, or what is
    /// waited for.
    async fn take_turn(
        &self,
        view: &DeploymentView,
        stored: &mut StoredRecord,
        goal: Goal,
        deadline: Deadline,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Turned> {
        let record = stored.record.clone();
        let (goal, decision) = ops::step::turn(&record, goal, view);
        match decision {
            Decision::Resize(resize) => {
                if deadline.passed() {
                    return Err(self.resize_timed_out(goal, deadline.timeout, &resize));
                }
                self.resize(view, &resize, progress).await?;
                Ok(Turned::Resized)
            }
            Decision::Apply(change) => {
                if deadline.passed() {
                    return Err(self.update_timed_out(goal, deadline.timeout, &change));
                }
                let version = self
                    .apply_checked(view, &change, stored, goal, progress)
                    .await?;
                Ok(Turned::Updated(version))
            }
            Decision::Stuck(stuck) => {
                // No Event: the error says it to whoever runs the command; the notice tells
                // the others.
                let notice = crate::events::EventSink::for_deployment(
                    &self.client,
                    self.namespace(),
                    &self.name,
                )
                .notifying(&self.notifier)
                .notice(Moment::Stuck, &record, &stuck.explain(&self.name));
                self.notifier.notify(notice);
                Err(CanaryError::Stuck {
                    deployment: self.name.clone(),
                    stuck,
                })
            }
            Decision::Wait(waiting) => Ok(Turned::Waiting(waiting)),
            Decision::Reached => Ok(Turned::Reached),
        }
    }

    /// One update of the Deployment guarded by the resourceVersion just read, carrying the
    /// seal of the record it comes from. A conflict is not an error: the caller reads again
    /// and decides again.
    pub(super) async fn apply(
        &self,
        view: &DeploymentView,
        change: &SpecChange,
        seal: &Seal,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Option<Deployment>> {
        let mut deployment = crate::write::changed(&view.deployment, change)?;
        crate::trust::set_seal(&mut deployment, Some(seal));
        match crate::write::CLI
            .replace_deployment(&self.apis.deployments, &deployment)
            .await?
        {
            Written::Stored(updated) => {
                self.wrote_deployment(&updated);
                mutation_point(&change.summary);
                progress(&Progress::Updated {
                    summary: change.summary.clone(),
                });
                Ok(Some(updated))
            }
            Written::Conflict => Ok(None),
        }
    }
}

/// What one turn of a drive loop did.
enum Turned {
    /// A ReplicaSet resize was sent (stored, or someone else's change came first).
    Resized,
    /// An update of the Deployment: `Some` its stored resourceVersion, `None` someone else
    /// wrote first.
    Updated(Option<String>),
    /// The controller is to act next.
    Waiting(Waiting),
    /// The goal is reached.
    Reached,
}

/// A drive's time limit.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}
