//! `kubectl canary status`.

use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::status::StatusReport;

use crate::config::status::StatusConfig;
use crate::config::{Config, OutputFormat};
use crate::output::{print_structured, status_text};

/// Prints the status once, or on every change with `--watch`.
pub async fn run(config: &Config, status: &StatusConfig) -> Result<(), CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &status.deployment);
    let mut last = None;
    let mut print = |report: StatusReport| {
        if last.as_ref() == Some(&report) {
            return;
        }
        if !print_structured(config.output, &report) {
            if status.watch && last.is_some() {
                println!("---");
            }
            print!(
                "{}",
                status_text(&report, config.output == OutputFormat::Wide)
            );
        }
        last = Some(report);
    };
    let report = engine.status_report().await?;
    print(report);
    if !status.watch {
        return Ok(());
    }
    // One watch per kind (Deployment, ReplicaSets, pods, record) feeds a live view; each
    // burst of events is rendered once, and only a changed report is printed.
    let mut live = engine.live().await?;
    loop {
        live.changed(std::time::Duration::from_secs(60)).await;
        let view = live.view()?;
        let record = live.record(engine.store())?;
        print(StatusReport::build(
            &config.namespace,
            &view,
            record.as_ref(),
        ));
    }
}
