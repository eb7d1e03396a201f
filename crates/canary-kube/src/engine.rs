//! The engine: carries out the state machine's decisions on a real Deployment.
//!
//! Every change is one `replace` with the resourceVersion just read; on a conflict the
//! engine reads again and decides again. Between changes it waits on watch streams of the
//! Deployment, its ReplicaSets and pods, not on a timer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde::Serialize;

use canary_core::machine::{Decision, Goal, SpecChange, Waiting, decide, pause_when_held};
use canary_core::record::{
    CanaryRecord, Owner, POD_TEMPLATE_HASH_LABEL, Phase, RECORD_SCHEMA, StableRevision,
    changed_images, images_of,
};
use canary_core::release::{FieldChange, ReleaseInput, check_changes, summarize};
use canary_core::rollout_math::{CanaryMode, CanarySize, ResolvedCanary, resolve_canary};
use canary_core::seal::Seal;
use canary_core::text::share_text;
use canary_core::validate::{AutoscalerFacts, check_start};

use crate::error::{CanaryError, Result, is_status};
use crate::events::EventSink;
use crate::live::LiveView;
use crate::observe::{DeploymentView, NamespaceApis, pod_is_ready, revision_of, template_hash_of};
use crate::preflight;
use crate::status::{StatusReport, pod_problem};
use crate::store::{RecordStore, StoredRecord};

mod admission;
mod foreign;
mod leftovers;
mod resize;
mod trusted;

/// Something the engine did or is waiting for, reported as it happens.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Progress {
    /// The record was written.
    Recorded {
        /// The phase written.
        phase: Phase,
    },
    /// The Deployment was updated.
    Updated {
        /// What the update does.
        summary: String,
    },
    /// Waiting for the controller.
    Waiting {
        /// What for.
        waiting: Waiting,
    },
    /// The record was deleted: the canary is over.
    Released,
    /// Something a person should know that does not stop the command.
    Warning {
        /// What.
        message: String,
    },
}

/// How a drive is bounded and observed.
pub struct DriveOptions<'a> {
    /// Longest total wait for the controller.
    pub timeout: Duration,
    /// Called on every step.
    pub progress: &'a mut (dyn FnMut(&Progress) + Send),
}

/// Counts mutations across the process so the crash tests can stop after the Nth.
static MUTATIONS: AtomicUsize = AtomicUsize::new(0);

/// Called after every change the tool makes to the cluster. With the `test-hooks` feature,
/// `KUBECTL_CANARY_CRASH_AFTER=N` kills the process (no clean-up of any kind, as kill -9)
/// right after the Nth change, which is how the crash-safety tests reach every point.
pub(crate) fn mutation_point(what: &str) {
    let n = MUTATIONS.fetch_add(1, Ordering::SeqCst) + 1;
    tracing::debug!(n, what, "mutation point");
    #[cfg(feature = "test-hooks")]
    if std::env::var("KUBECTL_CANARY_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(n)
    {
        eprintln!("test hook: crashing after mutation {n} ({what})");
        std::process::abort();
    }
}

/// The engine for one Deployment.
#[derive(Clone)]
pub struct Engine {
    pub(crate) client: kube::Client,
    pub(crate) apis: NamespaceApis,
    pub(crate) store: RecordStore,
    pub(crate) name: String,
    /// Whether this command has seen the canary template on the Deployment (see
    /// [`canary_core::foreign::KnownRecord::canary_seen`]).
    canary_seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What `start` was asked for.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// The release: new images, a manifest, patches, environment variables.
    pub release: ReleaseInput,
    /// Wanted canary size.
    pub size: CanarySize,
    /// Surge or replace.
    pub mode: CanaryMode,
    /// Proceed although an HPA targets the Deployment.
    pub allow_autoscaler: bool,
}

/// What `start` will do or did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPlan {
    /// The resolved canary.
    pub canary: ResolvedCanary,
    /// The stable ReplicaSet.
    pub stable: StableRevision,
    /// The updates, in order.
    pub changes: Vec<SpecChange>,
    /// What the release changes in the pod template, field by field.
    pub template_changes: Vec<FieldChange>,
    /// The record that is written first.
    pub record: CanaryRecord,
}

impl Engine {
    /// The engine for Deployment `name` in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            client: client.clone(),
            apis: NamespaceApis::new(client, namespace),
            store: RecordStore::new(client, namespace, name),
            name: name.to_string(),
            canary_seen: Default::default(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.apis.namespace
    }

    /// The record store.
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Starts a watch-fed live view of the Deployment and its canary.
    pub async fn live(&self) -> Result<LiveView> {
        LiveView::start(&self.apis, &self.store, &self.deployment().await?).await
    }

    /// Reads the Deployment with its ReplicaSets and pods.
    pub async fn view(&self) -> Result<DeploymentView> {
        self.apis.view(&self.client, &self.name).await
    }

    /// Reads the Deployment alone.
    pub(crate) async fn deployment(&self) -> Result<Deployment> {
        match self.apis.deployments.get(&self.name).await {
            Ok(deployment) => Ok(deployment),
            Err(e) if is_status(&e, 404) => Err(CanaryError::DeploymentNotFound {
                namespace: self.apis.namespace.clone(),
                name: self.name.clone(),
                hint: "; it was deleted, and its canary record with it".into(),
            }),
            Err(e) => Err(CanaryError::api(format!("reading deploy/{}", self.name), e)),
        }
    }

    /// Reads the record as it is, unchecked; none is an error telling how to start one.
    /// Whatever is written to the Deployment must come from
    /// [`Engine::verified_record`](crate::trust) instead.
    pub async fn record(&self) -> Result<StoredRecord> {
        self.store
            .get()
            .await?
            .ok_or_else(|| CanaryError::NoCanary {
                namespace: self.apis.namespace.clone(),
                name: self.name.clone(),
            })
    }

    /// Checks everything `start` needs (the permissions to change things too, unless
    /// `dry_run`) and works out what it would do, changing nothing.
    pub async fn plan_start(
        &self,
        request: &StartRequest,
        dry_run: bool,
    ) -> Result<(StartPlan, DeploymentView)> {
        let permissions: &[&[preflight::Permission]] = if dry_run {
            &[preflight::READ]
        } else {
            &[preflight::READ, preflight::CHANGE, preflight::START]
        };
        preflight::require(
            &self.client,
            self.namespace(),
            "kubectl canary start",
            permissions,
        )
        .await?;
        let view = self.view().await?;
        // A canary, a record of any kind, or a Deployment held without its record: refused
        // with what it is. A seal left by a finished canary is replaced by the first update.
        let state = crate::trust::classify(&view, crate::trust::read_record(&self.store).await?)?;
        if !matches!(state, crate::trust::CanaryState::None { .. }) {
            return Err(state.error(&self.name, &self.store.name()));
        }
        let autoscaler = self.autoscaler_of(&view).await?;
        // Images alone are checked as always (known containers, not the images running);
        // any other release by what it makes of the template, below.
        let no_images = std::collections::BTreeMap::new();
        check_start(
            &view.facts(),
            if request.release.images_only() {
                &request.release.images
            } else {
                &no_images
            },
            autoscaler.as_ref(),
            request.allow_autoscaler,
        )
        .map_err(|refusal| CanaryError::Refused(refusal.to_string()))?;
        let canary = resolve_canary(request.size, view.replicas(), request.mode)
            .map_err(|e| CanaryError::Refused(e.to_string()))?;
        let template = view.template();
        let target =
            crate::release::target_template(&self.apis, &view.deployment, &request.release).await?;
        let template_changes =
            check_changes(&self.name, &template, &target, &request.release.describe())?;
        let stable_rs = view.replica_set_with_template(&template).ok_or_else(|| {
            CanaryError::Refused(format!(
                "deploy/{} has no ReplicaSet for its current template yet; wait for the controller and retry",
                self.name
            ))
        })?;
        let stable = StableRevision {
            replica_set: stable_rs.name_any(),
            uid: stable_rs.uid().unwrap_or_default(),
            revision: revision_of(stable_rs).to_string(),
            pod_template_hash: template_hash_of(stable_rs),
        };
        let owner = Owner {
            user: preflight::whoami(&self.client).await,
            host: hostname(),
            pid: std::process::id(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let now = now();
        let mut record = CanaryRecord {
            schema: RECORD_SCHEMA,
            deployment: self.name.clone(),
            deployment_uid: view.deployment.uid().unwrap_or_default(),
            replicas: view.replicas(),
            original_images: images_of(&template),
            target_images: changed_images(&template, &target),
            original_template: template,
            target_template: Some(target),
            original_settings: crate::observe::settings_of(&view.deployment),
            stable: stable.clone(),
            mode: request.mode,
            phase: Phase::Starting { pods: canary.pods },
            started_by: owner,
            started_at: now.clone(),
            history: vec![],
            admitted_target_template: None,
            requested_size: Some(request.size),
            brake_while_held: false,
            traffic: None,
        };
        record.note(
            &now,
            format!(
                "start: canary of {} pod(s) ({} of traffic) in {} mode, stable {}",
                canary.pods,
                share_text(canary.traffic_share()),
                canary.mode,
                stable.replica_set
            ),
        );
        record.note(
            &now,
            format!(
                "release ({}): {}",
                request.release.describe(),
                summarize(&template_changes)
            ),
        );
        let goal = Goal::Hold { pods: canary.pods };
        let mut changes = Vec::new();
        if let Decision::Apply(first) = decide(&record, goal, &view.observation(&record)) {
            changes.push(first);
            // Then, once the controller has scaled the canary, the pause.
            changes.push(pause_when_held(&record, canary.pods));
        }
        Ok((
            StartPlan {
                canary,
                stable,
                changes,
                template_changes,
                record,
            },
            view,
        ))
    }

    async fn autoscaler_of(&self, view: &DeploymentView) -> Result<Option<AutoscalerFacts>> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), self.namespace());
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            // A cluster without the autoscaling API has no HPA. A 403 is not skipped: an
            // HPA we cannot see would fight the canary over spec.replicas (the error names
            // the verb; preflight asks for it before any change).
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(CanaryError::api("listing HorizontalPodAutoscalers", e)),
        };
        Ok(list.items.into_iter().find_map(|hpa| {
            let spec = hpa.spec;
            let target = spec.scale_target_ref;
            (target.kind == "Deployment" && target.name == view.name()).then(|| AutoscalerFacts {
                name: hpa.metadata.name.unwrap_or_default(),
                min_replicas: spec.min_replicas.unwrap_or(1),
                max_replicas: spec.max_replicas,
            })
        }))
    }

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
        let events = EventSink::new(&self.client, &view.deployment);
        events
            .normal(
                "CanaryStarting",
                format!(
                    "kubectl-canary: starting a canary of {} pod(s) changing {}",
                    plan.canary.pods,
                    plan.record.change_summary()
                ),
            )
            .await;
        self.hold(stored, plan.canary.pods, &events, options).await
    }

    /// Drives to a held canary of `pods` pods and records it as held.
    async fn hold(
        &self,
        stored: StoredRecord,
        pods: i32,
        events: &EventSink,
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
        let mut record = stored.record.clone();
        record.phase = Phase::Holding { pods };
        record.note(&now(), format!("holding {pods} canary pod(s), paused"));
        let stored = self.store.update(&stored, &record).await?;
        mutation_point("record: holding");
        (options.progress)(&Progress::Recorded {
            phase: record.phase,
        });
        events
            .normal(
                "CanaryHeld",
                format!("kubectl-canary: holding {pods} canary pod(s), Deployment paused"),
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
        let deployment = self.deployment().await?;
        let view = self.apis.view_of(deployment.clone()).await?;
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
        let events = EventSink::new(&self.client, &deployment);
        let stored = if record.phase != phase {
            record.phase = phase;
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
                    .normal(
                        "CanaryPromoting",
                        format!("kubectl-canary: growing the canary to {pods} pod(s)"),
                    )
                    .await;
                self.hold(stored, pods, &events, options).await.map(Some)
            }
            Goal::PromoteFull | Goal::Abort => {
                let (reason, done_reason, what) = if goal == Goal::Abort {
                    (
                        "CanaryAborting",
                        "CanaryAborted",
                        "rolled back to the stable version",
                    )
                } else {
                    (
                        "CanaryPromoting",
                        "CanaryPromoted",
                        "promoted the new version to every pod",
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
                    .normal(
                        done_reason,
                        format!("kubectl-canary: {what}; the Deployment's own settings are back"),
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

    /// Applies the machine's updates until it only waits for the controller (`--no-wait`).
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
        let goal = current_goal(goal, &record);
        if let Decision::Apply(change) = decide(&record, goal, &view.observation(&record)) {
            self.apply_checked(view, &change, stored, goal, progress)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn apply_until_waiting(
        &self,
        stored: &mut StoredRecord,
        goal: Goal,
        timeout: Duration,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !stored.is_synthesized()
                && let Some(change) = self.foreign_now(stored).await?
            {
                self.on_foreign(change, stored, progress).await?;
                continue;
            }
            let view = self.view().await?;
            let record = stored.record.clone();
            let goal = current_goal(goal, &record);
            match decide(&record, goal, &view.observation(&record)) {
                Decision::Resize(resize) => {
                    if Instant::now() >= deadline {
                        return Err(self.resize_timed_out(goal, timeout, &resize));
                    }
                    self.resize(&view, &resize, progress).await?;
                }
                Decision::Apply(change) => {
                    if Instant::now() >= deadline {
                        return Err(self.update_timed_out(goal, timeout, &change));
                    }
                    if self
                        .apply_checked(&view, &change, stored, goal, progress)
                        .await?
                        .is_none()
                    {
                        // Someone else wrote first, or the GitOps controller is to carry it
                        // out: look again shortly rather than at once.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Decision::Stuck(stuck) => {
                    return Err(CanaryError::Stuck {
                        deployment: self.name.clone(),
                        stuck,
                    });
                }
                Decision::Wait(_) | Decision::Reached => return Ok(()),
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
        let deadline = Instant::now() + timeout;
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
                self.on_foreign(change, stored, progress).await?;
                // Decide next on a view that includes the record just written.
                live.record_caught_up_with(&stored.resource_version, Duration::from_secs(5))
                    .await;
                continue;
            }
            let view = live.view()?;
            let record = stored.record.clone();
            let goal = current_goal(goal, &record);
            match decide(&record, goal, &view.observation(&record)) {
                Decision::Resize(resize) => {
                    if Instant::now() >= deadline {
                        return Err(self.resize_timed_out(goal, timeout, &resize));
                    }
                    self.resize(&view, &resize, progress).await?;
                    live.changed(Duration::from_secs(5)).await;
                }
                Decision::Reached => return Ok(()),
                Decision::Stuck(stuck) => {
                    return Err(CanaryError::Stuck {
                        deployment: self.name.clone(),
                        stuck,
                    });
                }
                Decision::Apply(change) => {
                    if Instant::now() >= deadline {
                        return Err(self.update_timed_out(goal, timeout, &change));
                    }
                    match self
                        .apply_checked(&view, &change, stored, goal, progress)
                        .await?
                    {
                        // Decide next on a view that includes our own write.
                        Some(version) => {
                            live.caught_up_with(&version, Duration::from_secs(5)).await
                        }
                        // Someone else wrote first: wait for their write to arrive.
                        None => live.changed(Duration::from_secs(5)).await,
                    }
                }
                Decision::Wait(waiting) => {
                    if last_wait.as_ref() != Some(&waiting) {
                        progress(&Progress::Waiting {
                            waiting: waiting.clone(),
                        });
                        last_wait = Some(waiting.clone());
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
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

    /// One update of the Deployment guarded by the resourceVersion just read, carrying the
    /// seal of the record it comes from. A conflict is not an error: the caller reads again
    /// and decides again.
    async fn apply(
        &self,
        view: &DeploymentView,
        change: &SpecChange,
        seal: &Seal,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Option<Deployment>> {
        let mut deployment = view.deployment.clone();
        apply_change(&mut deployment, change)?;
        crate::trust::set_seal(&mut deployment, Some(seal));
        match self
            .apis
            .deployments
            .replace(&self.name, &PostParams::default(), &deployment)
            .await
        {
            Ok(updated) => {
                mutation_point(&change.summary);
                progress(&Progress::Updated {
                    summary: change.summary.clone(),
                });
                Ok(Some(updated))
            }
            Err(e) if is_status(&e, 409) => {
                tracing::debug!("conflict updating deploy/{}; reading again", self.name);
                Ok(None)
            }
            Err(e) if is_status(&e, 422) => Err(CanaryError::Refused(format!(
                "the API server refused the update of deploy/{}: {e}",
                self.name
            ))),
            Err(e) => Err(CanaryError::api(
                format!("updating deploy/{}", self.name),
                e,
            )),
        }
    }

    /// One read of the cluster (the Deployment, its ReplicaSets and pods, the record), as a
    /// status report.
    pub async fn status_report(&self) -> Result<StatusReport> {
        Ok(self.checked_status_report().await?.0)
    }

    /// Waits (at most `timeout`) on the live view until the `pods` canary pods of a held
    /// canary are Ready, or one of them shows a problem (unschedulable, crash-looping, image
    /// pull failure), whichever comes first.
    ///
    /// A foreign change ends the wait as it ends the engine's loops (a change of replicas
    /// that can be followed is: the canary is held again at its new size, and `stored` is
    /// the new record); a canary ReplicaSet that cannot create pods ends it at once.
    pub async fn wait_for_canary_pods(
        &self,
        stored: &mut StoredRecord,
        timeout: Duration,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<CanaryPods> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut live = self.live().await?;
        loop {
            if !stored.is_synthesized()
                && let Some(change) = self.foreign_in_live(&live, stored)
            {
                self.on_foreign(change, stored, progress).await?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                *stored = self
                    .hold_again(
                        stored.clone(),
                        DriveOptions {
                            timeout: left,
                            progress,
                        },
                    )
                    .await?;
                live.record_caught_up_with(&stored.resource_version, Duration::from_secs(5))
                    .await;
                continue;
            }
            let record = &stored.record;
            let pods = record.held_pods().unwrap_or(1);
            let view = live.view()?;
            if let Some(failure) = leftovers::create_failure(&view, record) {
                return Ok(CanaryPods::CannotCreate { failure });
            }
            let hash = view
                .replica_set_with_template(&record.target_template())
                .map(template_hash_of)
                .ok_or_else(|| {
                    CanaryError::Refused(format!(
                        "deploy/{0} is held, but its canary ReplicaSet is not to be found; see `kubectl canary status deploy/{0}`",
                        record.deployment
                    ))
                })?;
            let canary: Vec<&Pod> = view
                .pods
                .iter()
                .filter(|p| p.labels().get(POD_TEMPLATE_HASH_LABEL) == Some(&hash))
                .collect();
            if let Some(problem) = canary.iter().find_map(|p| pod_problem(p)) {
                return Ok(CanaryPods::Unhealthy { problem });
            }
            let ready = canary.iter().filter(|p| pod_is_ready(p)).count() as i32;
            if ready >= pods {
                return Ok(CanaryPods::Ready { ready });
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(CanaryPods::NotReadyInTime { ready });
            }
            live.changed(left).await;
        }
    }
}

/// How the canary pods of a held canary came out of [`Engine::wait_for_canary_pods`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryPods {
    /// At least the wanted number are Ready.
    Ready {
        /// Ready canary pods.
        ready: i32,
    },
    /// A canary pod shows a problem.
    Unhealthy {
        /// The first problem seen.
        problem: String,
    },
    /// The canary ReplicaSet cannot create pods (quota, limit range, admission refusal).
    CannotCreate {
        /// The ReplicaSet's `ReplicaFailure` condition, with the API server's message.
        failure: String,
    },
    /// Time ran out before enough were Ready.
    NotReadyInTime {
        /// Ready canary pods at the end.
        ready: i32,
    },
}

/// The goal now: a hold follows the record's size (which a followed change of replicas can
/// change); promote-full and abort stay what they are.
fn current_goal(goal: Goal, record: &CanaryRecord) -> Goal {
    match (goal, record.phase.goal()) {
        (Goal::Hold { .. }, hold @ Goal::Hold { .. }) => hold,
        _ => goal,
    }
}

/// Writes a [`SpecChange`] into a Deployment object.
pub fn apply_change(deployment: &mut Deployment, change: &SpecChange) -> Result<()> {
    let spec = deployment.spec.get_or_insert_with(Default::default);
    if let Some(template) = &change.template {
        spec.template =
            serde_json::from_value::<PodTemplateSpec>(template.clone()).map_err(|e| {
                CanaryError::Refused(format!("the recorded pod template is unusable: {e}"))
            })?;
    }
    let settings = &change.settings;
    spec.strategy = if settings.strategy.is_null() {
        None
    } else {
        Some(
            serde_json::from_value::<DeploymentStrategy>(settings.strategy.clone()).map_err(
                |e| CanaryError::Refused(format!("the recorded strategy is unusable: {e}")),
            )?,
        )
    };
    spec.min_ready_seconds = settings.min_ready_seconds;
    spec.progress_deadline_seconds = settings.progress_deadline_seconds;
    spec.paused = settings.paused;
    Ok(())
}

/// The current time, RFC 3339.
pub fn now() -> String {
    Timestamp::now().to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl Engine {
    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests;
