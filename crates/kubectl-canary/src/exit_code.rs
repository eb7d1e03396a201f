//! The exit codes of `kubectl canary`, one constant each. Scripts and CI pipelines rely on
//! them: they are part of the interface and documented in docs/usage.md ("Exit codes").

/// Success: the command did what it was asked.
pub const OK: i32 = 0;
/// An unexpected error (an API call failed for a reason not listed below).
pub const ERROR: i32 = 1;
/// The command line is malformed (unknown flag, bad `--canary`, bad image reference).
pub const USAGE: i32 = 2;
/// The Deployment, or the canary on it, does not exist.
pub const NOT_FOUND: i32 = 3;
/// The request does not fit the Deployment's state; nothing was changed.
pub const REFUSED: i32 = 4;
/// Another canary holds the Deployment.
pub const LOCKED: i32 = 5;
/// RBAC forbids a verb the command needs; nothing was changed.
pub const FORBIDDEN: i32 = 6;
/// The API server could not be reached (or stopped answering); the message says whether this
/// run had already changed anything and points at `status`.
pub const UNREACHABLE: i32 = 7;
/// A wait for the controller ran out of time; the record says where things stand.
pub const TIMED_OUT: i32 = 8;
/// The canary needs a person: the Deployment was changed by someone else meanwhile.
pub const STUCK: i32 = 9;
/// The canary is held, but its pods are not healthy (unschedulable, crash-looping, ...).
pub const CANARY_UNHEALTHY: i32 = 10;
/// Automated progression: the analysis failed and the canary was rolled back.
pub const ROLLED_BACK: i32 = 11;
/// Automated progression or analysis: inconclusive, or out of time; the canary is held.
pub const INCONCLUSIVE: i32 = 12;
/// Someone else put the stable pod template back during the canary: the brake is off, the
/// Deployment's own settings are back, the canary is closed. Nothing to undo.
pub const REVERTED_BY_OTHERS: i32 = 13;
/// Someone else set another pod template during the canary: the brake is off, their version
/// rolls out with the Deployment's own settings, the canary is closed.
pub const REPLACED_BY_OTHERS: i32 = 14;
/// `spec.replicas` changed (HPA, `kubectl scale`) while a canary size was held, and the size
/// asked for cannot be kept; abort or promote --full.
pub const RESCALED: i32 = 15;
/// The Deployment was deleted (and perhaps re-created) during the canary; nothing was
/// changed on a new namesake.
pub const RECREATED: i32 = 16;
/// The canary record was deleted or made unreadable by someone else during the run; the
/// run stopped and changed nothing more.
pub const RECORD_LOST: i32 = 17;
/// Another kubectl-canary run took the canary over; this run stopped and changed nothing more.
pub const SUPERSEDED: i32 = 18;
/// The canary record was changed outside kubectl-canary (it differs from the seal on the
/// Deployment or from the stable ReplicaSet, or no update of the Deployment confirms it);
/// nothing was written.
pub const RECORD_TAMPERED: i32 = 20;
/// The Deployment is held by a canary whose record is gone or unreadable; `abort` recovers.
pub const HELD_WITHOUT_RECORD: i32 = 21;
/// Interrupted (Ctrl-C); the output says what state was left.
pub const INTERRUPTED: i32 = 130;

/// The exit code for an adapter error.
pub fn for_error(kind: canary_kube::error::ErrorKind) -> i32 {
    use canary_kube::error::ErrorKind;
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Refused => REFUSED,
        ErrorKind::Locked => LOCKED,
        ErrorKind::Forbidden => FORBIDDEN,
        ErrorKind::Unreachable => UNREACHABLE,
        ErrorKind::TimedOut => TIMED_OUT,
        ErrorKind::Stuck => STUCK,
        ErrorKind::RevertedByOthers => REVERTED_BY_OTHERS,
        ErrorKind::ReplacedByOthers => REPLACED_BY_OTHERS,
        ErrorKind::Rescaled => RESCALED,
        ErrorKind::Recreated => RECREATED,
        ErrorKind::RecordLost => RECORD_LOST,
        ErrorKind::Superseded => SUPERSEDED,
        ErrorKind::RecordTampered => RECORD_TAMPERED,
        ErrorKind::HeldWithoutRecord => HELD_WITHOUT_RECORD,
        ErrorKind::Usage => USAGE,
        ErrorKind::Internal => ERROR,
    }
}

/// The exit code for a command line clap could not parse: a usage error, or [`OK`] for
/// `--help` and `--version` (which clap reports as errors to stop parsing).
pub fn for_cli_error(error: &clap::Error) -> i32 {
    if error.use_stderr() {
        for_error(canary_kube::error::ErrorKind::Usage)
    } else {
        OK
    }
}

/// The exit code of an analysis verdict: 0 pass, [`CANARY_UNHEALTHY`] fail,
/// [`INCONCLUSIVE`] inconclusive or still waiting.
pub fn for_verdict(decision: canary_core::verdict::Decision) -> i32 {
    use canary_core::verdict::Decision;
    match decision {
        Decision::Pass => OK,
        Decision::Fail => CANARY_UNHEALTHY,
        Decision::Wait | Decision::Inconclusive => INCONCLUSIVE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_kube::analysis::AnalysisError;
    use canary_kube::error::CanaryError;

    #[test]
    fn nothing_to_analyse_is_not_found_for_every_command() {
        let no_canary = CanaryError::from(AnalysisError::NoCanaryPods {
            workload: "deploy/web".into(),
            detail: "no ReplicaSet has the canary's template yet".into(),
        });
        assert_eq!(for_error(no_canary.kind()), NOT_FOUND);
        let no_stable = CanaryError::from(AnalysisError::NoStablePods {
            workload: "deploy/web".into(),
        });
        assert_eq!(for_error(no_stable.kind()), NOT_FOUND);
        assert_eq!(
            for_error(CanaryError::from(AnalysisError::NoChecks).kind()),
            USAGE
        );
        assert_eq!(
            for_error(CanaryError::Usage("bad file".into()).kind()),
            USAGE
        );
    }

    #[test]
    fn startup_failures_go_through_the_one_mapping() {
        use clap::Parser;
        let malformed =
            crate::cli::Cli::try_parse_from(["kubectl-canary", "status", "--no-such-flag"])
                .unwrap_err();
        assert_eq!(for_cli_error(&malformed), USAGE);
        let help = crate::cli::Cli::try_parse_from(["kubectl-canary", "--help"]).unwrap_err();
        assert_eq!(for_cli_error(&help), OK);
        let kubeconfig = crate::config::ConfigError::Kubeconfig {
            where_: " /nonexistent".into(),
            detail: "no such file".into(),
        };
        assert_eq!(for_error(kubeconfig.kind()), UNREACHABLE);
    }
}
