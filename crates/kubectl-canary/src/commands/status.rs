//! `kubectl canary status`.

use futures::StreamExt;
use kube::runtime::watcher;

use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::observe::selector_string;
use canary_kube::status::StatusReport;

use crate::cli::{OutputFormat, StatusArgs};
use crate::config::Config;
use crate::output::{print_structured, status_text};

/// Prints the status once, or on every change with `--watch`.
pub async fn run(config: &Config, args: &StatusArgs) -> Result<(), CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &args.target.name);
    let mut last = None;
    let mut print = |report: StatusReport| {
        if last.as_ref() == Some(&report) {
            return;
        }
        if !print_structured(config.output, &report) {
            if args.watch && last.is_some() {
                println!("---");
            }
            print!(
                "{}",
                status_text(&report, config.output == OutputFormat::Wide)
            );
        }
        last = Some(report);
    };
    let report = gather(&engine, config).await?;
    print(report);
    if !args.watch {
        return Ok(());
    }
    // Follow the watch streams of the Deployment, its ReplicaSets, pods and record; each
    // event triggers one fresh read, and only a changed view is printed.
    let view = engine.view().await?;
    let selector = selector_string(&view.deployment);
    let apis = canary_kube::observe::NamespaceApis::new(&config.client, &config.namespace);
    let records: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(config.client.clone(), &config.namespace);
    let mut changes = futures::stream::select_all([
        watcher(
            apis.deployments.clone(),
            watcher::Config::default().fields(&format!("metadata.name={}", args.target.name)),
        )
        .map(|_| ())
        .boxed(),
        watcher(
            apis.replica_sets.clone(),
            watcher::Config::default().labels(&selector),
        )
        .map(|_| ())
        .boxed(),
        watcher(
            apis.pods.clone(),
            watcher::Config::default().labels(&selector),
        )
        .map(|_| ())
        .boxed(),
        watcher(
            records,
            watcher::Config::default().fields(&format!("metadata.name={}", engine.store().name())),
        )
        .map(|_| ())
        .boxed(),
    ]);
    while changes.next().await.is_some() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while futures::FutureExt::now_or_never(changes.next())
            .flatten()
            .is_some()
        {}
        print(gather(&engine, config).await?);
    }
    Ok(())
}

/// One read of the cluster, as a report.
pub async fn gather(engine: &Engine, config: &Config) -> Result<StatusReport, CanaryError> {
    let view = engine.view().await?;
    let stored = engine.store().get().await?;
    Ok(StatusReport::build(
        &config.namespace,
        &view,
        stored.as_ref(),
    ))
}
