//! The controller's exit codes (also in docs/gitops.md), mapped from its errors in one place.

use crate::run::RunError;

/// Stopped cleanly on SIGTERM or Ctrl-C (running reconciles finished, the Lease released).
pub const STOPPED: u8 = 0;
/// A startup check failed (the brake's admission policy missing, the HTTP port taken, the
/// election not joinable); nothing was changed.
pub const STARTUP_REFUSED: u8 = 1;
/// No Kubernetes configuration (neither in-cluster nor KUBECONFIG).
pub const NO_KUBERNETES_CONFIG: u8 = 2;
/// The Lease was lost while leading; exiting so that only the new leader acts.
pub const LOST_LEADERSHIP: u8 = 3;

/// The exit code of a run's outcome.
pub fn of(result: &Result<(), RunError>) -> u8 {
    match result {
        Ok(()) => STOPPED,
        Err(RunError::Startup(_)) => STARTUP_REFUSED,
        Err(RunError::LostLeadership) => LOST_LEADERSHIP,
    }
}
