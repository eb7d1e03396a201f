//! One reconcile of one opted-in Deployment: level-triggered and idempotent. Everything is
//! decided from what is known now (the Deployment, its ReplicaSets and pods, the brake's
//! annotations and the record: from the watches' caches once they hold the controller's own
//! last writes, else read fresh; [`crate::cache`]), so a replica that takes over after a
//! crash continues where the last one stopped, and every write is guarded by the
//! resourceVersion it was decided on.

mod begin;
mod close;
mod gate;
mod rescale;
mod stable;
mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use canary_core::analysis_spec::PrometheusAddress;
use canary_core::gitops::brake::BrakeAnnotations;
use canary_core::gitops::policy::{GitOpsPolicy, notify_names};
use canary_core::gitops::situation::{Release, classify, is_controller_record};
use canary_core::machine::SpecChange;
use canary_core::notify::{EndpointsConfig, Moment, Notice, Sender};
use canary_core::record::{CanaryRecord, Owner, Phase};
use canary_kube::error::CanaryError;
use canary_kube::events::EventSink;
use canary_kube::gitops::writes::{Written, update_deployment};
use canary_kube::notify::{Notifier, SendPolicy};
use canary_kube::observe::{DeploymentView, NamespaceApis};
use canary_kube::store::{RecordStore, StoredRecord};

use crate::cache::{Caches, OwnWrites};
use crate::metrics::Metrics;

/// What every reconcile shares.
pub struct Context {
    /// The client, with the controller's ServiceAccount.
    pub client: kube::Client,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The Prometheus of analyses (the controller's configuration).
    pub prometheus: Option<PrometheusAddress>,
    /// Who the records say started the canaries.
    pub owner: Owner,
    /// The last warning published per Deployment, so a standing problem is reported once.
    warned: Mutex<HashMap<String, String>>,
    /// Each Deployment's notifier and the endpoints it was made for: kept while the
    /// endpoints stay the same, so notices reach an endpoint in order across reconciles.
    notifiers: Mutex<HashMap<String, (EndpointsConfig, Notifier)>>,
    /// The watches' caches; `None`: every reconcile reads fresh.
    caches: Option<Caches>,
}

impl Context {
    /// A context.
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        prometheus: Option<PrometheusAddress>,
        owner: Owner,
    ) -> Self {
        Self {
            client,
            metrics,
            prometheus,
            owner,
            warned: Mutex::new(HashMap::new()),
            notifiers: Mutex::new(HashMap::new()),
            caches: None,
        }
    }

    /// The context with the watches' caches: reconciles read from them once they hold the
    /// controller's own last writes.
    pub fn with_caches(self, caches: Caches) -> Self {
        Self {
            caches: Some(caches),
            ..self
        }
    }
}

/// Why a reconcile failed; it is retried with a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Kubernetes adapter failed.
    #[error(transparent)]
    Kube(#[from] CanaryError),
}

impl ReconcileError {
    /// A short label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::Kube(error) => match error.kind() {
                canary_kube::error::ErrorKind::NotFound => "not_found",
                canary_kube::error::ErrorKind::Refused => "refused",
                canary_kube::error::ErrorKind::Locked => "locked",
                canary_kube::error::ErrorKind::Forbidden => "forbidden",
                canary_kube::error::ErrorKind::Unreachable => "unreachable",
                canary_kube::error::ErrorKind::TimedOut => "timed_out",
                canary_kube::error::ErrorKind::Stuck => "stuck",
                canary_kube::error::ErrorKind::Usage => "usage",
                canary_kube::error::ErrorKind::RevertedByOthers => "reverted_by_others",
                canary_kube::error::ErrorKind::ReplacedByOthers => "replaced_by_others",
                canary_kube::error::ErrorKind::Rescaled => "rescaled",
                canary_kube::error::ErrorKind::Recreated => "recreated",
                canary_kube::error::ErrorKind::RecordLost => "record_lost",
                canary_kube::error::ErrorKind::Superseded => "superseded",
                canary_kube::error::ErrorKind::RecordTampered => "record_tampered",
                canary_kube::error::ErrorKind::HeldWithoutRecord => "held_without_record",
                canary_kube::error::ErrorKind::Internal => "internal",
            },
        }
    }
}

/// The result of a reconcile.
pub type Outcome = Result<Action, ReconcileError>;

/// How soon to look again while the Deployment controller works (watch events usually
/// come first).
const SOON: Duration = Duration::from_secs(2);

/// Everything one reconcile reads, in one place.
pub(crate) struct Reconciling<'a> {
    ctx: &'a Context,
    key: String,
    apis: NamespaceApis,
    view: DeploymentView,
    store: RecordStore,
    stored: Option<StoredRecord>,
    brake: Option<BrakeAnnotations>,
    policy: Result<GitOpsPolicy, String>,
    events: EventSink,
    /// The endpoint names of the `kubectl-canary.io/notify` annotation.
    notify_names: Result<Vec<String>, String>,
    /// The Deployment's resourceVersion after this reconcile's last update of it.
    wrote_deployment: Mutex<Option<String>>,
}

impl Reconciling<'_> {
    pub fn deployment(&self) -> &Deployment {
        &self.view.deployment
    }

    pub fn name(&self) -> String {
        self.view.name()
    }

    /// Publishes a Warning once per distinct message and Deployment.
    pub async fn warn_once(&self, reason: &str, note: String) {
        warn_once(self.ctx, &self.key, &self.events, reason, note).await;
    }

    /// Publishes a Warning once per distinct message, and with it the notice of `moment`
    /// about `record`.
    pub async fn warn_once_moment(
        &self,
        reason: &str,
        note: String,
        moment: Moment,
        record: &CanaryRecord,
    ) {
        let notice = self.notice(moment, record, &note);
        if warn_once(self.ctx, &self.key, &self.events, reason, note).await {
            self.tell(notice).await;
        }
    }

    /// Publishes a Normal event and logs it, and sends the notice of `moment` about
    /// `record` (its detail: the note).
    pub async fn normal_moment(
        &self,
        reason: &str,
        note: String,
        moment: Moment,
        record: &CanaryRecord,
    ) {
        let notice = self.notice(moment, record, &note);
        self.tell(notice).await;
        self.normal(reason, note).await;
    }

    /// Sends `notice` (as the controller) to the endpoints the Deployment names. The
    /// endpoints are read from the namespace's Secret now; a malformed annotation, a Secret
    /// that cannot be read or a name it lacks is a Warning once, and the canary goes on.
    pub async fn tell(&self, notice: Notice) {
        let names = match &self.notify_names {
            Ok(names) if names.is_empty() => return,
            Ok(names) => names,
            Err(error) => {
                self.warn_once(
                    "InvalidNotifyAnnotation",
                    format!("{error}; no notices are sent until it is fixed, the canary goes on"),
                )
                .await;
                return;
            }
        };
        let namespace = self.apis.namespace.clone();
        let config =
            match canary_kube::notify::look_up_present(&self.ctx.client, &namespace, names).await {
                Ok((config, None)) => config,
                Ok((config, Some(missing))) => {
                    self.warn_once(
                        "NotificationConfigUnusable",
                        format!("{missing}; notices go to the others, the canary goes on"),
                    )
                    .await;
                    config
                }
                Err(error) => {
                    self.warn_once(
                        "NotificationConfigUnusable",
                        format!("{error}; notices are not sent, the canary goes on"),
                    )
                    .await;
                    return;
                }
            };
        if config.endpoints.is_empty() {
            return;
        }
        let notifier = {
            let mut notifiers = self.ctx.notifiers.lock().expect("notifiers lock");
            match notifiers.get(&self.key) {
                Some((known, notifier)) if *known == config => notifier.clone(),
                _ => {
                    let notifier = Notifier::new(
                        &self.ctx.client,
                        &namespace,
                        &self.view.name(),
                        Sender::Controller,
                        config.clone(),
                        SendPolicy::default(),
                    );
                    notifiers.insert(self.key.clone(), (config, notifier.clone()));
                    notifier
                }
            }
        };
        notifier.notify(notice);
    }

    /// The controller's notice of `moment` about `record`, now.
    pub fn notice(&self, moment: Moment, record: &CanaryRecord, detail: &str) -> Notice {
        Notice::about(
            moment,
            &self.apis.namespace,
            record,
            Sender::Controller,
            &now(),
            detail,
        )
    }

    /// Forgets the last warning (the problem is gone).
    pub fn clear_warning(&self) {
        self.ctx
            .warned
            .lock()
            .expect("warned lock")
            .remove(&self.key);
    }

    /// Publishes a Normal event and logs it.
    pub async fn normal(&self, reason: &str, note: String) {
        tracing::info!(deployment = %self.key, reason, %note);
        self.events.normal(reason, note).await;
    }

    /// Records the canary's phase in the metrics.
    pub fn phase_metric(&self, phase: Option<Phase>) {
        let label = phase.map(|phase| match phase {
            Phase::Starting { .. } => "starting",
            Phase::Holding { .. } => "holding",
            Phase::Promoting { .. } => "promoting",
            Phase::PromotingFull => "promotingFull",
            Phase::Aborting => "aborting",
        });
        self.ctx.metrics.set_phase(&self.key, label);
    }

    /// Writes the record with the resourceVersion it was read with.
    pub async fn save(&self, record: CanaryRecord) -> Result<(), ReconcileError> {
        let stored = self.stored.as_ref().expect("a record");
        // The stored copy may carry the brake's settings (trusted); write the record's own.
        let mut record = record;
        record.original_settings = stored.record.original_settings.clone();
        self.store.update(stored, &record).await?;
        self.phase_metric(Some(record.phase));
        Ok(())
    }

    /// Puts the Deployment's own settings back (from the brake's annotations) and removes
    /// those annotations in the same write: the admission policy stops holding the
    /// settings exactly when they are back. `summary`: what the write is, for the log.
    pub async fn release_brake(&self, summary: &str) -> Result<Written, ReconcileError> {
        let brake = self
            .brake
            .as_ref()
            .expect("only released with the brake on");
        let change = SpecChange {
            template: None,
            settings: brake.original.clone(),
            summary: summary.into(),
        };
        self.update_deployment(&change, true).await
    }

    /// Updates the Deployment as read with `change` (with `release`, the brake's
    /// annotations go in the same write), noting the version stored so that the next
    /// reconcile does not decide on the caches before they hold it.
    pub async fn update_deployment(
        &self,
        change: &SpecChange,
        release: bool,
    ) -> Result<Written, ReconcileError> {
        let written =
            update_deployment(&self.apis.deployments, self.deployment(), change, release).await?;
        if let Written::Stored(version) = &written
            && let Ok(mut wrote) = self.wrote_deployment.lock()
        {
            *wrote = Some(version.clone());
        }
        Ok(written)
    }

    /// The versions of the Deployment and the record this reconcile wrote last.
    fn own_writes(&self) -> OwnWrites {
        OwnWrites {
            deployment: self.wrote_deployment.lock().ok().and_then(|w| w.clone()),
            record: self.store.newest_known(),
        }
    }

    /// Records a finished canary's duration in the metrics.
    pub fn finished_metric(&self, outcome: &str) {
        let started = self
            .stored
            .as_ref()
            .and_then(|s| s.record.started_at.parse::<Timestamp>().ok());
        if let Some(started) = started {
            let seconds =
                (Timestamp::now().as_millisecond() - started.as_millisecond()) as f64 / 1000.0;
            self.ctx.metrics.finished(outcome, seconds.max(0.0));
        }
        self.phase_metric(None);
    }
}

/// Publishes a Warning about `key` unless the same one was the last published: a standing
/// problem is reported once, not on every reconcile. Whether it was published.
async fn warn_once(
    ctx: &Context,
    key: &str,
    events: &EventSink,
    reason: &str,
    note: String,
) -> bool {
    let line = format!("{reason}: {note}");
    let fresh = {
        let mut warned = ctx.warned.lock().expect("warned lock");
        if warned.get(key) == Some(&line) {
            false
        } else {
            warned.insert(key.to_string(), line);
            true
        }
    };
    if fresh {
        tracing::warn!(deployment = %key, reason, %note);
        events.warning(reason, note).await;
    }
    fresh
}

/// Reconciles one Deployment.
pub fn reconcile(
    deployment: Arc<Deployment>,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, Outcome> {
    // Boxed here, where every lifetime is concrete: rustc cannot otherwise prove the nested
    // futures Send for every lifetime (rust-lang/rust#102211).
    Box::pin(reconcile_deployment(deployment, ctx))
}

async fn reconcile_deployment(deployment: Arc<Deployment>, ctx: Arc<Context>) -> Outcome {
    ctx.metrics.reconciled();
    let namespace = deployment.namespace().unwrap_or_default();
    let name = deployment.name_any();
    let key = format!("{namespace}/{name}");
    let apis = NamespaceApis::new(&ctx.client, &namespace);
    let store = RecordStore::new(&ctx.client, &namespace, &name);
    let cached = ctx
        .caches
        .as_ref()
        .and_then(|caches| caches.read(&namespace, &name, &store.name()));
    let (source, stored) = match cached {
        Some(cached) => {
            let braked =
                BrakeAnnotations::from_annotations(cached.view.deployment.annotations()).is_some();
            let stored = match cached.record {
                Some(config_map) => store.decode(config_map).map(Some),
                // The record's watch selects by label: a record whose label was removed is
                // not in the cache. With the brake on there must be one: look it up.
                None if braked => store.get().await,
                None => Ok(None),
            };
            (Source::Cached(Box::new(cached.view)), stored)
        }
        None => {
            // Read fresh: the caches have not listed yet, or not yet delivered the
            // controller's own last write.
            let Some(deployment) = apis
                .deployments
                .get_opt(&name)
                .await
                .map_err(|e| CanaryError::api(format!("reading deploy/{name}"), e))?
            else {
                ctx.metrics.set_phase(&key, None);
                return Ok(Action::await_change());
            };
            if deployment.meta().deletion_timestamp.is_some() {
                return Ok(Action::await_change());
            }
            let stored = store.get().await;
            (Source::Fresh(Box::new(deployment)), stored)
        }
    };
    let deployment = source.deployment();
    if deployment.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let events = EventSink::new(&ctx.client, deployment);
    let stored = match stored {
        Ok(stored) => stored,
        Err(error @ CanaryError::BadRecord { .. }) => {
            let note = format!(
                "{error}; the controller changes nothing on deploy/{name} until the record is repaired or deleted"
            );
            warn_once(&ctx, &key, &events, "CanaryRecordUnreadable", note).await;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        Err(error) => return Err(error.into()),
    };
    if stored
        .as_ref()
        .is_some_and(|stored| !is_controller_record(&stored.record))
    {
        // A canary started with the CLI: the CLI drives it.
        return Ok(Action::await_change());
    }
    let view = match source {
        Source::Cached(view) => *view,
        Source::Fresh(deployment) => apis.view_of(*deployment).await?,
    };
    let annotations = view.deployment.annotations().clone();
    let replicas = view.replicas();
    let brake = match BrakeAnnotations::from_annotations(&annotations) {
        None => None,
        Some(Ok(brake)) => Some(brake),
        Some(Err(error)) => {
            let note = format!(
                "{error}: the Deployment's own rollout settings cannot be read back, so the controller \
                 changes nothing; restore the annotation or set the settings by hand and remove the \
                 kubectl-canary.io/ annotations"
            );
            warn_once(&ctx, &key, &events, "CanaryBrakeAnnotationsDamaged", note).await;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let release = Reconciling {
        ctx: &ctx,
        key,
        apis,
        store,
        stored,
        brake,
        policy: GitOpsPolicy::from_annotations(&annotations, replicas).map_err(|e| e.to_string()),
        notify_names: notify_names(&annotations).map_err(|e| e.to_string()),
        events,
        view,
        wrote_deployment: Mutex::new(None),
    };
    decide(release).await
}

/// Where a reconcile's Deployment came from.
enum Source {
    /// The caches, with its ReplicaSets and pods.
    Cached(Box<DeploymentView>),
    /// A fresh read; its ReplicaSets and pods are listed next.
    Fresh(Box<Deployment>),
}

impl Source {
    fn deployment(&self) -> &Deployment {
        match self {
            Source::Cached(view) => &view.deployment,
            Source::Fresh(deployment) => deployment,
        }
    }
}

/// Decides and acts on what was read, then notes the versions written so that the next
/// reconcile reads fresh until the caches hold them.
async fn decide(release: Reconciling<'_>) -> Outcome {
    let outcome = decide_on(&release).await;
    if let Some(caches) = &release.ctx.caches {
        caches.note_own(&release.key, release.own_writes());
    }
    outcome
}

async fn decide_on(release: &Reconciling<'_>) -> Outcome {
    // A record that disagrees with the cluster (changed by a ConfigMap writer) decides
    // nothing, whatever the situation: the controller stops for this Deployment.
    if let Some(stored) = &release.stored
        && steps::trusted(release, &stored.record).await.is_none()
    {
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let template = release.view.template();
    let record = release.stored.as_ref().map(|s| &s.record);
    let situation = classify(&template, record, release.brake.is_some());
    tracing::debug!(deployment = %release.key, ?situation, "reconciling");
    match situation {
        Release::Idle => {
            release.phase_metric(None);
            match &release.policy {
                Err(error) => {
                    release
                        .warn_once(
                            "InvalidCanaryPolicy",
                            format!(
                                "{error}; the next change of the pod template will roll out without a canary \
                                 until the annotation is fixed"
                            ),
                        )
                        .await
                }
                Ok(_) => release.clear_warning(),
            }
            Ok(Action::await_change())
        }
        Release::Begin => begin::begin(release).await,
        Release::Continue => steps::continue_canary(release).await,
        Release::Reverted => close::reverted(release).await,
        Release::Superseded => close::superseded(release).await,
        Release::Abandoned => close::abandoned(release).await,
    }
}

/// Retries a failed reconcile after a pause, counting the error.
pub fn error_policy(
    _deployment: Arc<Deployment>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.error(error.metric_label());
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

pub(crate) use canary_kube::store::now;
