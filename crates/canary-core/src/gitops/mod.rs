//! GitOps mode: the pure decisions of the in-cluster controller.
//!
//! A GitOps tool applies a new pod template to an opted-in Deployment; the API server's
//! MutatingAdmissionPolicy (`deploy/policy.yaml`) brakes it in the same write and keeps the
//! Deployment's own rollout settings in annotations. The controller then reads three things
//! from the Deployment: its policy ([`policy`]), the brake's annotations ([`brake`]) and the
//! canary record, and decides what the release is ([`situation`]). Analysis specs read from
//! ConfigMaps are bounded before use ([`spec_bounds`]).

pub mod brake;
pub mod policy;
pub mod situation;
pub mod spec_bounds;

/// The label that opts a Deployment in (`kubectl-canary.io/gitops=enabled`); the policy's
/// binding and the controller's watch both select on it.
pub const OPT_IN_LABEL: (&str, &str) = ("kubectl-canary.io/gitops", "enabled");

/// The prefix of every annotation of the GitOps mode.
pub const ANNOTATION_PREFIX: &str = "kubectl-canary.io/";
