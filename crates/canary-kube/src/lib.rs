//! Kubernetes adapters of kubectl-canary: they read Deployments, keep the canary record,
//! apply the core state machine's decisions and run the analysis probes.

pub mod analysis;
pub mod apply;
pub mod capacity;
pub mod client;
pub mod engine;
pub mod error;
pub mod event_publisher;
pub mod events;
pub mod evidence;
pub mod gate;
pub mod gitops;
pub mod history;
pub mod kinds;
pub mod kinds_drive;
pub mod kinds_events;
pub mod kinds_status;
pub mod live;
pub mod notify;
pub mod observe;
pub mod ops;
pub mod plan_subject;
pub mod preflight;
pub mod problems;
pub mod release;
pub mod report;
pub mod status;
pub mod store;
pub mod streaming_watch;
pub mod test_hooks;
pub mod traffic;
pub mod trust;
pub mod workload;
pub mod write;
