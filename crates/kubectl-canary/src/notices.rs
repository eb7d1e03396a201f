//! The notifier of a command that acts on a canary (`start`, `apply`, `promote`, `abort`):
//! its `--notify` endpoints, the named ones looked up in the namespace's Secret before
//! anything changes, and the bounded wait at the end for the last notices.

use std::time::Duration;

use canary_core::notify::{EndpointsConfig, Sender};
use canary_kube::error::CanaryError;
use canary_kube::notify::{Notifier, SendPolicy};

use crate::config::Config;
use crate::config::notify::NotifyConfig;

/// How long a command waits at its end for its last notices: one request's timeout, so a
/// notice sent once is never cut short, and a hanging endpoint costs the run this at most.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// The notifier for the canary of `deploy/<deployment>`; an unknown name, or a Secret that
/// does not exist or cannot be read, is an error before anything changes.
pub async fn notifier(
    config: &Config,
    notify: &NotifyConfig,
    deployment: &str,
    sender: Sender,
) -> Result<Notifier, CanaryError> {
    if !notify.is_on() {
        return Ok(Notifier::none());
    }
    let named =
        canary_kube::notify::look_up(&config.client, &config.namespace, &notify.names).await?;
    let mut endpoints = notify.direct.clone();
    endpoints.extend(named.endpoints);
    let report_base_url = notify.report_base_url.clone().or(named.report_base_url);
    Ok(Notifier::new(
        &config.client,
        &config.namespace,
        deployment,
        sender,
        EndpointsConfig {
            endpoints,
            report_base_url,
        },
        SendPolicy::default(),
    ))
}

/// Waits (at most [`FLUSH_LIMIT`]) until the last notices are sent; says what was not.
pub async fn flush(notifier: &Notifier) {
    let unsent = notifier.flush(FLUSH_LIMIT).await;
    if !unsent.is_empty() {
        crate::output::notice(&format!(
            "notifications not sent before the command ended: {unsent} (a NotificationFailed Event says so)"
        ));
    }
}
