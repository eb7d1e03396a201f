//! Wiring: the startup checks, the HTTP endpoints, the election, and the kube-rs
//! `Controller` over opted-in Deployments while this replica leads; SIGTERM stops it
//! gracefully (running reconciles finish, the Lease is released).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use canary_core::gitops::OPT_IN_LABEL;
use canary_core::gitops::situation::CONTROLLER_TOOL;
use canary_core::record::Owner;
use canary_kube::gitops::policy_check::require_brake_policy;
use canary_kube::store::MANAGED_BY_LABEL;

use crate::config::Config;
use crate::http::{Health, serve};
use crate::leader::Election;
use crate::metrics::Metrics;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::triggers::deployment_of_record;
use crate::watches::observed;

/// How the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A startup check failed; nothing was changed.
    #[error("{0}")]
    Startup(String),
    /// Leadership was lost while leading: exit so that no stale leader acts.
    #[error("lost the leader Lease while leading; exiting so that only the new leader acts")]
    LostLeadership,
    /// While leading, a watch could not watch for longer than `--max-blind-seconds`: the
    /// Lease was released so that a replica that can see takes over.
    #[error(
        "the {watch} watch has not been watching for {seconds:.0}s (last error: {code}); released the leader Lease so that another replica takes over"
    )]
    Blind {
        /// The watch.
        watch: String,
        /// How long it had been down.
        seconds: f64,
        /// Its last error code.
        code: String,
    },
}

/// Runs the controller until SIGTERM (or Ctrl-C).
pub async fn run(
    config: Config,
    client: kube::Client,
    metrics: Arc<Metrics>,
) -> Result<(), RunError> {
    let health = Arc::new(Health {
        ready: Default::default(),
        metrics: metrics.clone(),
    });
    let server = serve(config.listen, health.clone())
        .await
        .map_err(|e| RunError::Startup(format!("cannot listen on {}: {e}", config.listen)))?;
    tokio::spawn(server);
    if !config.skip_policy_check {
        require_brake_policy(&client, &config.policy_name)
            .await
            .map_err(|e| RunError::Startup(e.to_string()))?;
    }
    let identity = config.identity();
    let user = canary_kube::preflight::whoami(&client).await;
    let mut election = Election::join(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &identity,
        config.lease_duration(),
    )
    .await
    .map_err(|e| {
        RunError::Startup(format!(
            "cannot join the election on lease {}/{}: {e}",
            config.lease_namespace, config.lease_name
        ))
    })?;
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!(%identity, %user, "started; waiting to lead");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tokio::select! {
        acquired = election.acquired() => if !acquired {
            return Err(RunError::LostLeadership);
        },
        _ = &mut shutdown => {
            election.release().await;
            return Ok(());
        }
    }
    metrics.set_leader(true);
    tracing::info!(%identity, "leading");
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        config.prometheus(),
        Owner {
            user,
            host: identity.clone(),
            pid: std::process::id(),
            tool_version: format!("{CONTROLLER_TOOL}/{}", env!("CARGO_PKG_VERSION")),
        },
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = controller(&config, client, ctx, metrics.clone(), async {
        let _ = stop_rx.await;
    });
    tokio::pin!(controller);
    let result = tokio::select! {
        _ = &mut controller => Ok(()),
        _ = election.lost() => {
            metrics.set_leader(false);
            Err(RunError::LostLeadership)
        }
        blind = blind_past(&metrics, config.max_blind()) => {
            tracing::error!(watch = %blind.watch, seconds = blind.for_.as_secs_f64(), "blind for too long; giving up the leader Lease");
            metrics.set_leader(false);
            metrics.watches_stopped();
            election.release().await;
            return Err(RunError::Blind {
                watch: blind.watch,
                seconds: blind.for_.as_secs_f64(),
                code: blind.last_code.unwrap_or_else(|| "none yet".into()),
            });
        }
        _ = &mut shutdown => {
            tracing::info!("SIGTERM: finishing running reconciles");
            let _ = stop_tx.send(());
            controller.await;
            Ok(())
        }
    };
    if result.is_ok() {
        election.release().await;
    }
    result
}

/// Resolves when a watch has been down for longer than `bound` (checked every second).
async fn blind_past(metrics: &Metrics, bound: std::time::Duration) -> crate::metrics::Blind {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(blind) = metrics.blind().filter(|blind| blind.for_ > bound) {
            return blind;
        }
    }
}

/// The kube-rs controller: opted-in Deployments; their ReplicaSets and records trigger them.
/// Each kind has its own watch with its own backoff ([`crate::watches`]).
async fn controller(
    config: &Config,
    client: kube::Client,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (deployments, replica_sets, config_maps): (
        Api<Deployment>,
        Api<PartialObjectMeta<ReplicaSet>>,
        Api<ConfigMap>,
    ) = match &config.namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let opted_in =
        watcher::Config::default().labels(&format!("{}={}", OPT_IN_LABEL.0, OPT_IN_LABEL.1));
    let records = watcher::Config::default()
        .labels(&format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1));
    let (reader, writer) = reflector::store();
    let deployments = observed(
        "deployments",
        move || watcher(deployments.clone(), opted_in.clone()),
        metrics.clone(),
    )
    .reflect(writer)
    .applied_objects();
    let replica_sets = observed(
        "replicasets",
        move || watcher(replica_sets.clone(), watcher::Config::default()),
        metrics.clone(),
    )
    .touched_objects();
    let records = observed(
        "records",
        move || watcher(config_maps.clone(), records.clone()),
        metrics.clone(),
    )
    .touched_objects();
    Controller::for_stream(deployments, reader)
        .owns_stream(replica_sets)
        .watches_stream(records, |config_map: ConfigMap| {
            deployment_of_record(&config_map)
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
