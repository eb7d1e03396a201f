//! `start`, `status`, `promote` and `abort` of a StatefulSet (`sts/NAME`) or a DaemonSet
//! (`ds/NAME`): parse (done in `config::kinds`), call `canary_kube::ops::kinds`, render.

use canary_kube::error::CanaryError;
use canary_kube::kinds_drive::KindDrive;
use canary_kube::ops::kinds::{self, KindStart};

use crate::config::Config;
use crate::config::kinds::{KindAction, KindConfig};
use crate::exit_code;
use crate::output::{notice, print_structured};

/// Runs the command; returns the exit code.
pub async fn run(config: &Config, kind: &KindConfig) -> Result<i32, CanaryError> {
    let target = &kind.target;
    let mut progress = |summary: &str| notice(&format!("  ✓ {summary}"));
    let mut drive = KindDrive {
        client: &config.client,
        writer: canary_kube::write::CLI,
        namespace: &config.namespace,
        timeout: config.timeout,
        progress: &mut progress,
    };
    let status = match &kind.action {
        KindAction::Status => kinds::status(&config.client, &config.namespace, target).await?,
        KindAction::Start {
            images,
            size,
            nodes,
        } => {
            let ask = KindStart {
                images,
                size: *size,
                nodes: nodes.as_deref(),
            };
            kinds::start(&mut drive, target, ask).await?
        }
        KindAction::Promote(size) => kinds::promote(&mut drive, target, *size).await?,
        KindAction::Abort => kinds::abort(&mut drive, target).await?,
    };
    if !print_structured(config.output, &status) {
        print!("{}", crate::output::kinds::status_text(&status));
    }
    Ok(exit_code::OK)
}
