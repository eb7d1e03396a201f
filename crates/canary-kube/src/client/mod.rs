//! The Kubernetes client every command uses: kube's own HTTP stack with one layer on top
//! ([`resilient::Resilient`]) that retries what is safe to retry, bounds every attempt by a
//! per-request timeout and the whole by `--timeout`, and keeps a [`WriteLedger`] of what
//! this run changed, so an error after a write can say so instead of "nothing changed".

pub mod ledger;
pub mod resilient;
pub mod retry;

use std::time::Duration;

pub use ledger::{Write, WriteLedger};
pub use retry::{RequestPolicy, SendOnce};

/// Builds the client for a resolved kubeconfig: kube's built-in retry is turned off (it
/// retries every method, POST included, for up to 15 attempts) and ours is put on top.
pub fn build(
    mut config: kube::Config,
    policy: RequestPolicy,
) -> Result<(kube::Client, WriteLedger), kube::Error> {
    config.default_retry = false;
    let ledger = WriteLedger::default();
    let base = kube::client::ClientBuilder::try_from(config.clone())?;
    let layer = resilient::ResilientLayer::new(policy, ledger.clone());
    let client = base.with_layer(&layer).build();
    Ok((client, ledger))
}

/// The per-request timeout when `--request-timeout` is not given: long enough for a large
/// LIST on a busy API server, short enough that a frozen one is noticed well within the
/// usual `--timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
