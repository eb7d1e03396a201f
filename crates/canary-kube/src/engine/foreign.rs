//! The engine's side of foreign changes (see [`canary_core::foreign`]): what the watches
//! or a fresh read show is classified before every decision, and on a foreign change the run
//! steps aside: it takes its brake off where the rule says so, closes the record with the
//! reason, or touches nothing more, and stops with an error naming what happened.

use kube::ResourceExt;

use canary_core::foreign::{
    ForeignChange, ForeignResponse, KnownRecord, SeenRecord, classify, follow_size, followed,
};
use canary_core::machine::{Goal, TemplateState, template_state};
use canary_core::seal::Seal;
use std::sync::atomic::Ordering;

use super::{Engine, Progress, mutation_point};
use crate::error::{CanaryError, Result, is_status};
use crate::live::LiveView;
use crate::observe::DeploymentView;
use crate::store::StoredRecord;
use crate::workload::Workload;

/// How many times a release is tried when other writers keep winning the race.
const RELEASE_ATTEMPTS: usize = 5;

fn known(stored: &StoredRecord, canary_seen: bool) -> KnownRecord<'_> {
    KnownRecord {
        record: &stored.record,
        resource_version: &stored.resource_version,
        canary_seen,
    }
}

fn seen(record: &Result<Option<StoredRecord>>) -> SeenRecord<'_> {
    match record {
        Ok(Some(now)) => SeenRecord::Present {
            record: &now.record,
            resource_version: &now.resource_version,
        },
        // Unreadable counts as lost: this run can no longer tell what it holds.
        Ok(None) | Err(_) => SeenRecord::Gone,
    }
}

fn classify_view<W: Workload>(
    stored: &StoredRecord,
    canary_seen: bool,
    record: SeenRecord<'_>,
    view: Option<&W>,
) -> Option<ForeignChange> {
    // A workload being deleted is gone for the canary: foreground deletion removes the
    // record (a dependent) first, and the workload follows.
    let uid = view.filter(|v| !v.is_being_deleted()).map(|v| v.uid());
    let observation = view.map(|v| v.observation(&stored.record));
    classify(
        known(stored, canary_seen),
        record,
        uid.as_deref(),
        observation.as_ref(),
    )
}

impl Engine {
    /// Whether this command has seen the canary template on the Deployment; updated from
    /// every view it decides on.
    fn canary_seen<W: Workload>(&self, stored: &StoredRecord, view: Option<&W>) -> bool {
        if let Some(view) = view
            && template_state(&stored.record, &view.template()) == TemplateState::Canary
        {
            self.canary_seen.store(true, Ordering::SeqCst);
        }
        self.canary_seen.load(Ordering::SeqCst)
    }

    /// A foreign change as the live view's watches show it (Deployment, ReplicaSets, pods
    /// and the record), if any.
    pub(super) fn foreign_in_live(
        &self,
        live: &LiveView,
        stored: &StoredRecord,
    ) -> Option<ForeignChange> {
        let record = live.record(&self.store);
        let view = live.view().ok();
        let canary_seen = self.canary_seen.load(Ordering::SeqCst);
        let change = classify_view(stored, canary_seen, seen(&record), view.as_ref());
        self.canary_seen(stored, view.as_ref());
        change
    }

    /// A foreign change as fresh reads show it, if any.
    pub(super) async fn foreign_now(&self, stored: &StoredRecord) -> Result<Option<ForeignChange>> {
        Ok(self.foreign_read(stored).await?.map(|(change, _)| change))
    }

    /// A foreign change as fresh reads show it, if any, and whether the record was gone
    /// (read as absent, not unreadable).
    pub(super) async fn foreign_read(
        &self,
        stored: &StoredRecord,
    ) -> Result<Option<(ForeignChange, bool)>> {
        let view = self.view_if_exists().await?;
        let record = self.store.get().await;
        let canary_seen = self.canary_seen.load(Ordering::SeqCst);
        let change = classify_view(stored, canary_seen, seen(&record), view.as_ref());
        self.canary_seen(stored, view.as_ref());
        // Gone, not unreadable (as the watch loop tells them apart).
        let gone = matches!(record, Ok(None));
        Ok(change.map(|change| (change, gone)))
    }

    /// Whether `change`, seen with the record gone, is whoever reached `goal` closing the
    /// record (the GitOps controller carrying out this run's promotion): decided on a fresh
    /// read of the Deployment, at least as new as the record's deletion, since the last
    /// writes of the Deployment and its ReplicaSets can reach a watch (or an earlier read)
    /// after the deletion does ([`ForeignChange::response_towards`]).
    pub(super) async fn finished_by_others(
        &self,
        change: &ForeignChange,
        stored: &StoredRecord,
        goal: Goal,
    ) -> Result<bool> {
        let Some(view) = self.view_if_exists().await? else {
            return Ok(false);
        };
        Ok(change.response_towards(
            &stored.record,
            goal,
            SeenRecord::Gone,
            &view.observation(&stored.record),
        ) == ForeignResponse::Done)
    }

    /// Before a command writes its phase: a foreign change that matters for `goal`. An
    /// abort wants the stable template anyway, and a promotion to 100% or an abort does not
    /// care about the number of replicas.
    pub(super) async fn foreign_before(
        &self,
        stored: &StoredRecord,
        goal: Goal,
        view: &DeploymentView,
    ) -> Result<Option<ForeignChange>> {
        let record = SeenRecord::Present {
            record: &stored.record,
            resource_version: &stored.resource_version,
        };
        let canary_seen = self.canary_seen(stored, None::<&DeploymentView>);
        let change = classify_view(stored, canary_seen, record, Some(view));
        self.canary_seen(stored, Some(view));
        Ok(change.filter(|change| match change {
            ForeignChange::RevertedToStable => goal != Goal::Abort,
            ForeignChange::Rescaled { .. } => matches!(goal, Goal::Hold { .. }),
            _ => true,
        }))
    }

    /// For a command that waits outside the engine's loops (`start` waiting for Ready
    /// canary pods): a foreign change ends the wait the way it ends the engine's.
    /// Returns whether the record changed (a followed change of `spec.replicas`): the
    /// caller then holds the canary again with [`Engine::hold_again`].
    pub async fn check_foreign(
        &self,
        stored: &mut StoredRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<bool> {
        match self.foreign_now(stored).await? {
            Some(change) => self
                .on_foreign(change, stored, progress)
                .await
                .map(|()| true),
            None => Ok(false),
        }
    }

    /// Holds the canary again at the size its record now says (after a followed change
    /// of `spec.replicas`).
    pub async fn hold_again(
        &self,
        stored: StoredRecord,
        options: super::DriveOptions<'_>,
    ) -> Result<StoredRecord> {
        let Goal::Hold { pods } = stored.record.phase.goal() else {
            return Ok(stored);
        };
        let events = self.events(&self.deployment().await?);
        self.hold(stored, pods, &events, options).await
    }

    async fn view_if_exists(&self) -> Result<Option<DeploymentView>> {
        match self.apis.deployments.get(&self.name).await {
            Ok(deployment) => self.apis.view_of(deployment).await.map(Some),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(CanaryError::api(format!("reading deploy/{}", self.name), e)),
        }
    }

    /// Waits on watches until a foreign change shows, and returns it (for a command that
    /// waits on something else meanwhile, such as `start --auto`'s analysis).
    pub async fn next_foreign(&self, stored: &StoredRecord) -> Result<ForeignChange> {
        let mut live = self.live().await?;
        loop {
            if let Some(change) = self.foreign_in_live(&live, stored) {
                return Ok(change);
            }
            live.changed(std::time::Duration::from_secs(5)).await;
        }
    }

    /// `Engine::on_foreign` for commands: follows a change of replicas (`Ok`, `stored`
    /// updated), or ends the run as the rule says.
    pub async fn handle_foreign(
        &self,
        change: ForeignChange,
        stored: &mut StoredRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        self.on_foreign(change, stored, progress).await
    }

    /// Handles a foreign change: a change of `spec.replicas` that can be followed is
    /// followed (the record takes the new count and size; `Ok`, and `stored` is the new
    /// record); anything else ends the run as [`Engine::step_aside`] says.
    pub(super) async fn on_foreign(
        &self,
        change: ForeignChange,
        stored: &mut StoredRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        if let ForeignChange::Rescaled { now, .. } = change
            && let Some(pods) = follow_size(&stored.record, now)
        {
            let record = followed(&stored.record, now, pods, &super::now());
            *stored = self.store.update(stored, &record).await?;
            mutation_point("record: followed a change of replicas");
            progress(&Progress::Recorded {
                phase: stored.record.phase,
            });
            return Ok(());
        }
        Err(self.step_aside(change, stored, progress).await)
    }

    /// Does what the rule says about `change` (release the brake and close the record,
    /// close it, or nothing) and returns the error that ends the run.
    pub(super) async fn step_aside(
        &self,
        change: ForeignChange,
        stored: &StoredRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> CanaryError {
        // Another run writes the record before the Deployment: a fresh read of the record
        // may show that what looked like someone else's template is that run's doing.
        let change = match self.foreign_now(stored).await {
            Ok(Some(
                fresh @ (ForeignChange::SupersededByAnotherRun { .. }
                | ForeignChange::RecordLost
                | ForeignChange::Recreated { .. }),
            )) => fresh,
            _ => change,
        };
        tracing::info!(?change, "foreign change: stepping aside");
        match self.release(&change, stored, progress).await {
            Ok(()) => CanaryError::Foreign {
                deployment: self.name.clone(),
                change,
            },
            Err(error) => error,
        }
    }

    async fn release(
        &self,
        change: &ForeignChange,
        stored: &StoredRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        for _ in 0..RELEASE_ATTEMPTS {
            let Some(view) = self.view_if_exists().await? else {
                return Ok(());
            };
            if view.deployment.uid().as_deref() != Some(stored.record.deployment_uid.as_str())
                || view.deployment.metadata.deletion_timestamp.is_some()
            {
                return Ok(());
            }
            match change.response(&stored.record, &view.observation(&stored.record)) {
                // Following is decided in `on_foreign`, done in `drive`.
                ForeignResponse::Stop | ForeignResponse::Follow { .. } | ForeignResponse::Done => {
                    return Ok(());
                }
                ForeignResponse::Close => return self.close(change, stored, &view, progress).await,
                ForeignResponse::Release(spec) => {
                    // A conflict: someone wrote meanwhile; read and judge again. The seal stays
                    // (goal: the Deployment's own settings) until the record is deleted.
                    let seal = Seal::for_record(&stored.record, Goal::Abort);
                    let _ = self.apply(&view, &spec, &seal, progress).await?;
                }
            }
        }
        Err(CanaryError::Refused(format!(
            "deploy/{} keeps changing under other writers; the canary's brake could not be taken off \
             after {RELEASE_ATTEMPTS} attempts: run `kubectl canary abort deploy/{}`",
            self.name, self.name
        )))
    }

    /// Deletes the record (if it is still this canary's) and says why in an Event.
    async fn close(
        &self,
        change: &ForeignChange,
        stored: &StoredRecord,
        view: &DeploymentView,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        self.events(&view.deployment)
            .warning_moment(
                "CanaryClosed",
                format!(
                    "kubectl-canary: {}; {}",
                    change.what_happened(&self.name),
                    change.closing_note()
                ),
                canary_core::notify::Moment::ForeignChange,
                &stored.record,
            )
            .await;
        if let Some(current) = self.store.get().await.ok().flatten()
            && current.record.started_at == stored.record.started_at
            && current.record.started_by == stored.record.started_by
        {
            self.store.delete(&current).await?;
            mutation_point("record deleted: foreign change");
            // The seal stays until the record is gone: a record without it is never trusted.
            self.remove_seal().await?;
            progress(&Progress::Released);
        }
        Ok(())
    }
}
