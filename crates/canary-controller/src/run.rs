//! Wiring: the startup checks, the HTTP endpoints, the election, and the kube-rs
//! `Controller` over opted-in Deployments while this replica leads; SIGTERM stops it
//! gracefully (running reconciles finish, the Lease is released).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};

use canary_core::gitops::OPT_IN_LABEL;
use canary_core::gitops::situation::CONTROLLER_TOOL;
use canary_core::record::Owner;
use canary_kube::gitops::policy_check::require_brake_policy;
use canary_kube::store::MANAGED_BY_LABEL;

use crate::cache::Caches;
use crate::config::Config;
use crate::http::{Health, serve};
use crate::leader::Election;
use crate::metrics::Metrics;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::triggers::deployment_of_record;
use crate::watches::{WATCH_TIMEOUT_SECS, observed};

/// How the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A startup check failed; nothing was changed.
    #[error("{0}")]
    Startup(String),
    /// Leadership was lost while leading: exit so that no stale leader acts.
    #[error("lost the leader Lease while leading; exiting so that only the new leader acts")]
    LostLeadership,
}

/// How one term of leading ended.
enum Term {
    /// SIGTERM: stopped cleanly, the Lease released.
    Stopped,
    /// Blind past `--max-blind-seconds`: the Lease released, to stand by again.
    GaveUp,
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
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut first = true;
    loop {
        let joined = Election::join(
            client.clone(),
            &config.lease_namespace,
            &config.lease_name,
            &identity,
            config.lease_duration(),
        )
        .await;
        let election = match joined {
            Ok(election) => election,
            Err(error) if first => {
                return Err(RunError::Startup(format!(
                    "cannot join the election on lease {}/{}: {error}",
                    config.lease_namespace, config.lease_name
                )));
            }
            // After giving up the Lease: the API server may still be unreachable.
            Err(error) => {
                tracing::warn!(%error, "cannot join the election again; retrying in 2s");
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                    _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                }
            }
        };
        first = false;
        health.ready.store(true, Ordering::Relaxed);
        match lead(
            &config,
            &client,
            &metrics,
            &identity,
            &user,
            election,
            stop.clone(),
        )
        .await?
        {
            Term::Stopped => return Ok(()),
            Term::GaveUp => continue,
        }
    }
}

/// One term: waits to lead, then runs the controller until SIGTERM, the Lease lost, or a
/// watch blind past `--max-blind-seconds` (then the Lease is released so that a replica that
/// can see takes over, and this one stands by again).
async fn lead(
    config: &Config,
    client: &kube::Client,
    metrics: &Arc<Metrics>,
    identity: &str,
    user: &str,
    mut election: Election,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Term, RunError> {
    tracing::info!(%identity, %user, "started; waiting to lead");
    tokio::select! {
        acquired = election.acquired() => if !acquired {
            return Err(RunError::LostLeadership);
        },
        _ = stop.wait_for(|stopped| *stopped) => {
            election.release().await;
            return Ok(Term::Stopped);
        }
    }
    metrics.set_leader(true);
    tracing::info!(%identity, "leading");
    let ctx = Context::new(
        client.clone(),
        metrics.clone(),
        config.prometheus(),
        Owner {
            user: user.to_string(),
            host: identity.to_string(),
            pid: std::process::id(),
            tool_version: format!("{CONTROLLER_TOOL}/{}", env!("CARGO_PKG_VERSION")),
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut controller = Box::pin(controller(
        config,
        client.clone(),
        ctx,
        metrics.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let term = tokio::select! {
        _ = &mut controller => Term::Stopped,
        _ = election.lost() => {
            metrics.set_leader(false);
            metrics.watches_stopped();
            return Err(RunError::LostLeadership);
        }
        blind = blind_past(metrics, config.max_blind()) => {
            tracing::error!(
                watch = %blind.watch,
                seconds = blind.down_for.as_secs_f64(),
                last_error = blind.last_code.as_deref().unwrap_or("none yet"),
                "blind for too long: gave up the leader Lease so that a replica that can see takes over; standing by"
            );
            Term::GaveUp
        }
        _ = stop.wait_for(|stopped| *stopped) => {
            tracing::info!("SIGTERM: finishing running reconciles");
            let _ = stop_tx.send(());
            (&mut controller).await;
            Term::Stopped
        }
    };
    // Dropping the controller cancels its running reconciles: none acts after the release.
    drop(controller);
    metrics.set_leader(false);
    metrics.watches_stopped();
    election.release().await;
    Ok(term)
}

/// Resolves when a watch has been down for longer than `bound` (checked every second).
async fn blind_past(metrics: &Metrics, bound: std::time::Duration) -> crate::metrics::Blind {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(blind) = metrics.blind().filter(|blind| blind.down_for > bound) {
            return blind;
        }
    }
}

/// The kube-rs controller: opted-in Deployments; their ReplicaSets and records trigger them.
/// Each kind has its own watch with its own backoff ([`crate::watches`]), and each fills a
/// cache that reconciles read ([`crate::cache`]); pods fill theirs without triggering (a
/// canary in progress looks again on its own schedule).
async fn controller(
    config: &Config,
    client: kube::Client,
    ctx: Context,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (deployments, replica_sets, pods, config_maps): (
        Api<Deployment>,
        Api<ReplicaSet>,
        Api<Pod>,
        Api<ConfigMap>,
    ) = match &config.namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    // Every watch ends on the server after WATCH_TIMEOUT_SECS, so a watch that stays silent
    // longer is a dead connection that the client's read timeout ends.
    let watched = watcher::Config::default().timeout(WATCH_TIMEOUT_SECS);
    let opted_in = watched
        .clone()
        .labels(&format!("{}={}", OPT_IN_LABEL.0, OPT_IN_LABEL.1));
    let records = watched
        .clone()
        .labels(&format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1));
    let every_pod = watched.clone();
    let (deployments_cache, deployments_writer) = reflector::store();
    let (replica_sets_cache, replica_sets_writer) = reflector::store();
    let (pods_cache, pods_writer) = reflector::store();
    let (records_cache, records_writer) = reflector::store();
    let caches = Caches::new(
        deployments_cache.clone(),
        replica_sets_cache,
        pods_cache,
        records_cache.clone(),
    );
    let deployments_delivered = caches.deployments_delivered.clone();
    let records_delivered = caches.records_delivered.clone();
    let ctx = Arc::new(ctx.with_caches(caches));
    let deployments_seen = deployments_cache.clone();
    let deployments = observed(
        "deployments",
        move || watcher(deployments.clone(), opted_in.clone()),
        metrics.clone(),
    )
    .reflect(deployments_writer)
    .inspect_ok(move |event| deployments_delivered.note(event, &deployments_seen))
    .applied_objects();
    // Without managedFields: the caches keep what decisions read, not who wrote what.
    let replica_sets = observed(
        "replicasets",
        move || watcher(replica_sets.clone(), watched.clone()),
        metrics.clone(),
    )
    .modify(|rs: &mut ReplicaSet| rs.managed_fields_mut().clear())
    .reflect(replica_sets_writer)
    .touched_objects();
    let pods = observed(
        "pods",
        move || watcher(pods.clone(), every_pod.clone()),
        metrics.clone(),
    )
    .modify(|pod: &mut Pod| pod.managed_fields_mut().clear())
    .reflect(pods_writer)
    .touched_objects();
    let records = observed(
        "records",
        move || watcher(config_maps.clone(), records.clone()),
        metrics.clone(),
    )
    .reflect(records_writer)
    .inspect_ok(move |event| records_delivered.note(event, &records_cache))
    .touched_objects();
    Controller::for_stream(deployments, deployments_cache)
        .owns_stream(replica_sets)
        .watches_stream(records, |config_map: ConfigMap| {
            deployment_of_record(&config_map)
        })
        .watches_stream(pods, |_: Pod| None::<ObjectRef<Deployment>>)
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
