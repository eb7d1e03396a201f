//! Events about a StatefulSet's or DaemonSet's canary, on the workload itself, so that
//! `kubectl describe sts/db` and `kubectl get events` show what kubectl-canary did: the
//! canary held (at which size), promoted, aborted, closed under someone else's template,
//! each step of `--auto` and each verdict. The reasons are the Deployment's.

use kube::Resource;

use canary_core::kind_machines::foreign::ForeignTemplate;
use canary_core::verdict::Verdict;

use crate::events::EventSink;
use crate::kinds_status::KindStatus;

/// What a drive ended with, for its Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindEnding {
    /// A hold reached (a start, a grown canary, the size held again).
    Held,
    /// Every pod on the canary's revision, the workload's own strategy back.
    Promoted,
    /// Every pod on the stable revision, the workload's own strategy back.
    Aborted,
}

/// Publishes the Events of one workload's canary. Failures are logged, never fatal.
pub struct KindEvents {
    sink: EventSink,
    workload: String,
}

impl KindEvents {
    /// Events about `object`, named `workload` (`sts/db`) in their notes.
    pub fn about<K: Resource<DynamicType = ()>>(
        client: &kube::Client,
        object: &K,
        workload: String,
    ) -> Self {
        Self {
            sink: EventSink::for_object(client, object),
            workload,
        }
    }

    /// A drive reached `ending`, leaving `status`.
    pub async fn ended(&self, ending: KindEnding, status: &KindStatus) {
        let workload = &self.workload;
        let (canary, _) = status.canary_pods();
        let (reason, note) = match ending {
            KindEnding::Held => (
                "CanaryHeld",
                format!(
                    "kubectl-canary: the canary of {workload} is held at {canary} pod(s) ({}) on revision {}; stable \
                     revision {}",
                    status
                        .pods
                        .iter()
                        .filter(|p| p.side == "canary" && !p.terminating)
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    status.canary_revision.as_deref().unwrap_or("?"),
                    status.stable_revision
                ),
            ),
            KindEnding::Promoted => (
                "CanaryPromoted",
                format!(
                    "kubectl-canary: {workload} promoted: every pod on revision {}, its own update strategy back",
                    status.stable_revision
                ),
            ),
            KindEnding::Aborted => (
                "CanaryAborted",
                format!(
                    "kubectl-canary: the canary of {workload} aborted: every pod on the stable revision {}, its own \
                     update strategy back",
                    status.stable_revision
                ),
            ),
        };
        self.sink.normal(reason, note).await;
    }

    /// The canary was closed under someone else's template.
    pub async fn closed(&self, change: ForeignTemplate) {
        self.sink
            .warning(
                "CanaryClosed",
                format!("kubectl-canary: {}", change.explain(&self.workload)),
            )
            .await;
    }

    /// A step of `--auto` begins.
    pub async fn step(&self, number: usize, of: usize, pods: i32, interval_seconds: u64) {
        self.sink
            .normal(
                "CanaryStep",
                format!(
                    "kubectl-canary: step {number} of {of}: {pods} canary pod(s) of {}, analysing for {interval_seconds}s",
                    self.workload
                ),
            )
            .await;
    }

    /// An analysis verdict.
    pub async fn verdict(&self, verdict: &Verdict) {
        self.sink.verdict(verdict).await;
    }
}
