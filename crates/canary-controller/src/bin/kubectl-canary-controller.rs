//! `kubectl-canary-controller`: the GitOps mode of kubectl-canary (see docs/gitops.md).

use clap::Parser;

use canary_controller::config::{Config, LogFormat};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let metrics = std::sync::Arc::new(canary_controller::metrics::Metrics::new());
    let client = match canary_controller::client::counting_client(metrics.clone()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes configuration (in-cluster or KUBECONFIG)");
            return std::process::ExitCode::from(2);
        }
    };
    match canary_controller::run::run(config, client, metrics).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped");
            std::process::ExitCode::from(1)
        }
    }
}
