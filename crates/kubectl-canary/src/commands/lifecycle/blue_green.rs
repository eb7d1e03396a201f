//! Blue/Green's switch, said.

use canary_core::machine::Goal;
use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::ops::switch::{self, Switched};

use crate::config::{Config, OutputFormat};

/// Blue/Green: every Service to one set ([`canary_kube::ops::switch`]), said.
pub(super) async fn switch_sets(
    config: &Config,
    engine: &Engine,
    record: &canary_core::record::CanaryRecord,
    goal: Goal,
) -> Result<(), CanaryError> {
    let Switched { services, hash } =
        switch::switch_sets(engine, record, goal, config.timeout).await?;
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        let side = if goal == Goal::Abort { "old" } else { "new" };
        for service in &services {
            println!(
                "  ✓ service/{service}: switched to the {side} set (pod-template-hash={hash}) in one update; its endpoints follow"
            );
        }
    }
    Ok(())
}
