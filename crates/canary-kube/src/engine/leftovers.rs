//! What can outlast a canary without holding it: canary pods a finalizer keeps
//! terminating, and a canary ReplicaSet that cannot create pods (quota, limit range,
//! admission refusal).

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;

use canary_core::record::CanaryRecord;

use super::{Engine, Progress};
use crate::observe::DeploymentView;

impl Engine {
    /// After an abort has restored everything and the canary ReplicaSet is at 0: warns
    /// about canary pods still terminating (a finalizer can keep them for ever). They do not
    /// hold the lock: they get no traffic and their ReplicaSet will not replace them.
    pub(super) async fn warn_terminating_canary_pods(
        &self,
        record: &CanaryRecord,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) {
        let Ok(view) = self.current_view().await else {
            return;
        };
        let Some(canary) = view.replica_set_with_template(&record.target_template()) else {
            return;
        };
        let hash = crate::observe::template_hash_of(canary);
        let terminating: Vec<String> = view
            .pods_with_hash(&hash)
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(|p| {
                let finalizers = p.finalizers().join(", ");
                if finalizers.is_empty() {
                    p.name_any()
                } else {
                    format!("{} (finalizers: {finalizers})", p.name_any())
                }
            })
            .collect();
        if !terminating.is_empty() {
            progress(&Progress::Warning {
                message: format!(
                    "{} canary pod(s) still terminating, not waited for: {}; they get no traffic \
                     (not Ready) and nothing replaces them",
                    terminating.len(),
                    terminating.join("; ")
                ),
            });
        }
    }
}

/// Why the canary ReplicaSet cannot create its pods, as the ReplicaSet controller says it
/// (`ReplicaFailure`, reason `FailedCreate`, with the API server's message), if so.
pub(super) fn create_failure(view: &DeploymentView, record: &CanaryRecord) -> Option<String> {
    view.replica_set_with_template(&record.target_template())
        .and_then(replica_failure)
}

/// The `ReplicaFailure` condition of a ReplicaSet, in words.
fn replica_failure(rs: &ReplicaSet) -> Option<String> {
    rs.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| {
            format!(
                "ReplicaSet {} cannot create pods ({}): {}",
                rs.name_any(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
}
