//! Leader election on a Lease: one replica reconciles, the others wait to take over.

use std::time::Duration;

use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

/// A running election: `changed` reports leadership, dropping it releases the Lease.
pub struct Election {
    /// True while this replica leads.
    pub leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl Election {
    /// Joins the election for Lease `namespace/name` as `identity`.
    pub async fn join(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> kube_lease_manager::Result<Self> {
        let seconds = duration.as_secs();
        // Renew a third of the duration before expiry.
        let grace = (seconds / 3).max(1);
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_parameters(
                LeaseParams::new(identity, seconds, grace)
                    .with_field_manager(format!("kubectl-canary-controller/{identity}")),
            )
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    /// Waits until this replica leads.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Waits until this replica no longer leads (or the election ended).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Releases the Lease if held, so it is free for a standby replica (which takes it when it
    /// next looks: when the Lease it saw would have expired).
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leader Lease"),
            Ok(Err(error)) => tracing::warn!(%error, "could not release the leader Lease"),
            Err(error) => tracing::warn!(%error, "the election task failed"),
        }
    }
}
