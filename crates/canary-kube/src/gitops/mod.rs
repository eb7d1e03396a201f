//! Kubernetes adapters of the GitOps controller: its writes to Deployments and ReplicaSets,
//! the analysis spec read from a ConfigMap, and the check that the brake's admission policy
//! is installed.

pub mod policy_check;
pub mod spec_source;
pub mod writes;
