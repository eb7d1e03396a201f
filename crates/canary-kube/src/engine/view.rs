//! The engine's view of the cluster: one live view per command ([`Engine::live`]), shared by
//! every step that waits or decides, caught up with the command's own writes before each
//! use; fresh reads before it starts.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;

use super::Engine;
use crate::error::Result;
use crate::live::LiveView;
use crate::observe::DeploymentView;

impl Engine {
    /// The watch-fed live view of the Deployment and its canary: started on the first call,
    /// shared by every later one (and by clones of this engine), so a command lists and
    /// watches each kind once. Returns once the view reflects the newest versions of the
    /// Deployment and the record this command knows of (its own writes, fresh reads; at most
    /// 5 s), so a decision never takes this command's write for someone else's.
    pub async fn live(&self) -> Result<LiveView> {
        let mut live = self
            .live_view
            .get_or_try_init(|| async {
                let selector = match self.selector.get() {
                    Some(selector) => selector.clone(),
                    None => {
                        let deployment = self.apis.deployment(&self.client, &self.name).await?;
                        self.saw(&deployment);
                        crate::observe::selector_string(&deployment)
                    }
                };
                LiveView::start(&self.apis, &self.store, &self.name, &selector).await
            })
            .await?
            .clone();
        let deployment = self.deployment_known.lock().ok().and_then(|v| v.clone());
        live.caught_up_with_known(
            deployment.as_deref(),
            self.store.newest_known().as_ref(),
            Duration::from_secs(5),
        )
        .await;
        Ok(live)
    }

    /// What this command's live view shows of the Deployment and its record, caught up with
    /// the command's own writes; `None` when no live view runs (nothing is read for it).
    pub async fn known_state(&self) -> Option<crate::history::KnownState> {
        if !self.live_view.initialized() {
            return None;
        }
        let live = self.live().await.ok()?;
        Some(crate::history::KnownState {
            owner: live.view().ok()?.deployment,
            record: live.record(&self.store).ok().flatten().map(|s| s.record),
        })
    }

    /// Notes an update of the Deployment this command made (its stored resourceVersion).
    pub(crate) fn wrote_deployment(&self, updated: &Deployment) {
        if let Some(version) = updated.metadata.resource_version.clone() {
            self.noted_deployment(version);
        }
    }

    /// Notes a resourceVersion of the Deployment read fresh while the live view runs.
    pub(super) fn noted_deployment(&self, version: String) {
        if let Ok(mut known) = self.deployment_known.lock() {
            *known = Some(version);
        }
    }

    /// A signal cancelled a step of this command mid-flight: a write may have been made
    /// whose answer was never read, so what the command knows may be older than the
    /// cluster. The next look at the canary's state ([`Engine::canary_state`]) reads
    /// afresh, and the live view then catches up with what that read found.
    pub fn interrupted(&self) {
        self.interrupted
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Keeps the Deployment's label selector from its first read (the live view's watches
    /// need it).
    pub(super) fn saw(&self, deployment: &Deployment) {
        if self.selector.get().is_none() {
            let _ = self
                .selector
                .set(crate::observe::selector_string(deployment));
        }
    }

    /// The Deployment with its ReplicaSets and pods as this command sees them now: its live
    /// view once one runs (caught up with its own writes), a fresh read before.
    pub async fn current_view(&self) -> Result<DeploymentView> {
        if self.live_view.initialized() {
            self.live().await?.view()
        } else {
            self.view().await
        }
    }

    /// Reads the Deployment with its ReplicaSets and pods.
    pub async fn view(&self) -> Result<DeploymentView> {
        let view = self.apis.view(&self.client, &self.name).await?;
        self.saw(&view.deployment);
        Ok(view)
    }

    /// Reads the Deployment's UID (what the Service pins and the record name it by).
    /// From the live view once one runs.
    pub async fn deployment_uid(&self) -> Result<String> {
        let deployment = match self.live_view.initialized() {
            true => self.current_view().await?.deployment,
            false => self.deployment().await?,
        };
        Ok(deployment.metadata.uid.unwrap_or_default())
    }
}
