//! `kubectl-canary-controller`: the GitOps mode of kubectl-canary (see docs/gitops.md).

use clap::Parser;

use canary_controller::config::{Config, LogFormat};
use canary_controller::exit_code;

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
            return std::process::ExitCode::from(exit_code::NO_KUBERNETES_CONFIG);
        }
    };
    let result = canary_controller::run::run(config, client, metrics).await;
    if let Err(error) = &result {
        tracing::error!(%error, "stopped");
    }
    std::process::ExitCode::from(exit_code::of(&result))
}
