//! Shared helpers of canary-kube's analysis tests.
#![allow(dead_code, missing_docs)]

use canary_core::analysis_spec::{CheckSpec, Probe};
use canary_core::verdict::InconclusivePolicy;
use canary_kube::analysis::AnalysisTarget;
use canary_kube::observe::NamespaceApis;

/// A critical check named `name` of `probe`.
pub fn check(name: &str, probe: Probe) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        critical: true,
        on_inconclusive: InconclusivePolicy::default(),
        probe,
    }
}

/// The two sides of `web` in `namespace`: its two latest revisions.
pub async fn latest_sides(client: &kube::Client, namespace: &str) -> AnalysisTarget {
    let view = NamespaceApis::new(client, namespace)
        .view(client, "web")
        .await
        .expect("a view of the Deployment");
    AnalysisTarget::from_latest_revisions(&view).expect("canary and stable sides")
}
