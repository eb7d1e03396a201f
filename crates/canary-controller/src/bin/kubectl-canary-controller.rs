//! `kubectl-canary-controller`: the GitOps mode of kubectl-canary (see docs/gitops.md).

use std::io::IsTerminal;

use clap::Parser;

use canary_controller::config::{Config, LogFormat};
use canary_controller::exit_code;

/// INFO, but not kube-client's own line per answer of status 5xx: an HTTP check's request
/// through the API server's proxy that the canary answers with a 500 is a measurement (the
/// verdict's line carries the numbers), and a failing request the controller needed ends
/// its reconcile, which is logged at WARN with the error. Nor kube-runtime's watcher's WARN
/// per failed retry: the controller's watches log an outage's first failure and its end
/// (`watches.rs`). `RUST_LOG` replaces this.
const DEFAULT_LOG_FILTER: &str =
    "info,kube_client::client::builder=off,kube_runtime::watcher=error";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .init(),
    }
    let metrics = std::sync::Arc::new(canary_controller::metrics::Metrics::new());
    let client = match canary_controller::client::counting_client(metrics.clone()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes configuration (in-cluster or KUBECONFIG)");
            return std::process::ExitCode::from(exit_code::NO_KUBERNETES_CONFIG);
        }
    };
    let result = canary_controller::run::run(config, client, metrics).await;
    if let Err(error) = &result {
        tracing::error!(%error, "stopped");
    }
    std::process::ExitCode::from(exit_code::of(&result))
}
