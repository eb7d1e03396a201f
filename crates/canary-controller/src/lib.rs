//! The GitOps controller of kubectl-canary.
//!
//! A GitOps tool applies a new pod template to a Deployment labelled
//! `kubectl-canary.io/gitops=enabled`; the API server's MutatingAdmissionPolicy
//! (`deploy/policy.yaml`) brakes it in the same write, so exactly `k` canary pods start. This
//! controller then runs the canary the way `kubectl canary start --auto` does, from the same
//! record (so `kubectl canary status` and `promote` work on it): analysis on the interval,
//! promote on pass, hold on the stable pods on fail (without fighting Git), hold on
//! inconclusive. One replica leads (a Lease); it serves metrics and health on HTTP.

pub mod cache;
pub mod client;
pub mod config;
pub mod exit_code;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod triggers;
pub mod watches;
