//! The engine: carries out the state machine's decisions on a real Deployment.
//!
//! Every change is one `replace` with the resourceVersion just read; on a conflict the
//! engine reads again and decides again. Between changes it waits on watch streams of the
//! Deployment, its ReplicaSets and pods, not on a timer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde::Serialize;

use canary_core::machine::Waiting;
use canary_core::record::Phase;

use crate::error::{CanaryError, Result, is_status};
use crate::live::LiveView;
use crate::observe::NamespaceApis;
use crate::store::{RecordStore, StoredRecord};

mod admission;
mod drive;
mod foreign;
mod gate;
mod leftovers;
mod plan;
mod pods;
mod resize;
mod trusted;
mod view;

pub use self::gate::GateOutcome;
pub use self::plan::{StartPlan, StartRequest};
pub use self::pods::CanaryPods;

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
    /// Where the notices of the canary's moments go (nowhere by default).
    notifier: crate::notify::Notifier,
    /// The one live view of this command, started when first asked for ([`Engine::live`]).
    live_view: Arc<tokio::sync::OnceCell<LiveView>>,
    /// The Deployment's label selector, from the first read (it is immutable).
    selector: Arc<OnceLock<String>>,
    /// The newest resourceVersion of the Deployment this command knows of: its own last
    /// update, or a fresh read made while the live view runs.
    deployment_known: Arc<Mutex<Option<String>>>,
    /// A signal cancelled a step mid-flight: the next look at the canary's state reads
    /// afresh ([`Engine::interrupted`]).
    interrupted: Arc<std::sync::atomic::AtomicBool>,
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
            notifier: Default::default(),
            live_view: Default::default(),
            selector: Default::default(),
            deployment_known: Default::default(),
            interrupted: Default::default(),
        }
    }

    /// The same engine, sending the notices of the canary's moments through `notifier`
    /// beside the Events it publishes.
    pub fn with_notifier(mut self, notifier: crate::notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The notifier (off unless set with [`Engine::with_notifier`]).
    pub fn notifier(&self) -> &crate::notify::Notifier {
        &self.notifier
    }

    /// A sink for the Events about `deployment`, sending the notices of moments through
    /// this engine's notifier.
    pub fn events(&self, deployment: &Deployment) -> crate::events::EventSink {
        crate::events::EventSink::new(&self.client, deployment).notifying(&self.notifier)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.apis.namespace
    }

    /// The record store.
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Reads the Deployment alone.
    pub(crate) async fn deployment(&self) -> Result<Deployment> {
        match self.apis.deployments.get(&self.name).await {
            Ok(deployment) => {
                self.saw(&deployment);
                Ok(deployment)
            }
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
        self.store.get().await?.ok_or_else(|| self.no_canary())
    }

    /// The Deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error for a Deployment without a canary, telling how to start one.
    pub fn no_canary(&self) -> CanaryError {
        CanaryError::NoCanary {
            namespace: self.apis.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}

pub use crate::write::apply_change;

pub use crate::store::now;

#[cfg(test)]
mod tests;
