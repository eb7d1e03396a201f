//! `kubectl canary report`: the canary of a Deployment (running or finished) as one
//! self-contained HTML file, from what the cluster keeps; read-only.

use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;

use crate::config::Config;
use crate::config::report::ReportConfig;
use crate::exit_code;
use crate::output::report::{render, write_report};

/// Writes the report; returns the exit code.
pub async fn run(config: &Config, report: &ReportConfig) -> Result<i32, CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &report.deployment);
    let data = canary_kube::report::gather(&engine).await?;
    let html = render(&data, crate::cli::VERSION);
    if let Err(error) = write_report(&report.out, &html) {
        eprintln!(
            "error: cannot write the report to {}: {error}",
            report.out.display()
        );
        return Ok(exit_code::ERROR);
    }
    if report.out.as_os_str() != "-" {
        eprintln!(
            "wrote the report of deploy/{} to {}",
            data.deployment,
            report.out.display()
        );
    }
    Ok(exit_code::OK)
}
