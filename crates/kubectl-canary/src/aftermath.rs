//! What an error message adds about the state a failed command left behind: whether this
//! run changed anything (from the client's write ledger, so "nothing changed" is said only
//! when true), what the record now shows, and where to look next.

use std::time::Duration;

use canary_kube::error::ErrorKind;
use canary_kube::store::RecordStore;

use crate::cli::Cli;
use crate::config::Config;

/// How long reading the record for the message may take: the API server may be the very
/// thing that failed.
const RECORD_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The lines to print after an error, empty when there is nothing to add.
pub async fn explain(cli: &Cli, config: &Config, kind: ErrorKind) -> Vec<String> {
    if config.ledger.is_empty() {
        // Refusals, locks and RBAC errors say so themselves; a lost connection or an
        // unexpected failure needs it said.
        return match kind {
            ErrorKind::Unreachable | ErrorKind::Internal | ErrorKind::TimedOut => {
                vec!["nothing was changed: this run wrote nothing to the cluster".into()]
            }
            _ => Vec::new(),
        };
    }
    let mut lines = vec![config.ledger.summary()];
    if let Some(deployment) = target(cli) {
        let store = RecordStore::new(&config.client, &config.namespace, deployment);
        let shown = match tokio::time::timeout(RECORD_READ_TIMEOUT, store.get()).await {
            Ok(Ok(Some(stored))) => format!(
                "the record {} shows: {}",
                store.name(),
                stored.record.phase.describe()
            ),
            Ok(Ok(None)) => format!("the record {} no longer exists", store.name()),
            Ok(Err(error)) => format!("the record {} could not be read: {error}", store.name()),
            Err(_) => format!(
                "the record {} could not be read within {}s",
                store.name(),
                RECORD_READ_TIMEOUT.as_secs()
            ),
        };
        lines.push(shown);
        lines.push(format!(
            "see `kubectl canary status deploy/{deployment} -n {}`; promote or abort continue from the record",
            config.namespace
        ));
    }
    lines
}

/// The Deployment a command is about, if it names one (a StatefulSet's or DaemonSet's
/// canary keeps its record on the workload: nothing is left behind elsewhere).
pub fn target(cli: &Cli) -> Option<&str> {
    let target = cli.command.workload()?;
    (target.kind == canary_core::target::WorkloadKind::Deployment).then_some(target.name.as_str())
}
