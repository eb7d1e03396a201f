//! Errors of the Kubernetes adapters, each with the context of where it was raised.

use thiserror::Error;

use canary_core::foreign::ForeignChange;
use canary_core::kind_machines::foreign::ForeignTemplate;
use canary_core::machine::Stuck;

use crate::analysis::error::AnalysisError;

/// How an error should be reported; the binary maps each to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// The request does not fit the object's state; nothing was changed.
    Refused,
    /// Another canary holds the Deployment.
    Locked,
    /// RBAC forbids a needed verb.
    Forbidden,
    /// The API server could not be reached.
    Unreachable,
    /// A wait ran out of time.
    TimedOut,
    /// The canary needs a person's decision.
    Stuck,
    /// Someone else put the stable template back; the brake is off, the canary closed.
    RevertedByOthers,
    /// Someone else set another template; the brake is off, the canary closed.
    ReplacedByOthers,
    /// `spec.replicas` changed while a size was held.
    Rescaled,
    /// The Deployment was deleted (and perhaps re-created) during the canary.
    Recreated,
    /// The record was deleted or made unreadable by someone else during a run.
    RecordLost,
    /// Another run took the canary over.
    Superseded,
    /// The record differs from what only the Deployment's writers and its controller own.
    RecordTampered,
    /// The Deployment is held by a canary whose record is gone or unreadable.
    HeldWithoutRecord,
    /// The input (an analysis spec, for instance) is malformed; nothing was changed.
    Usage,
    /// Anything else.
    Internal,
}

/// An error of the Kubernetes adapters.
#[derive(Debug, Error)]
pub enum CanaryError {
    /// The Deployment does not exist in the namespace.
    #[error("deployment '{name}' not found in namespace '{namespace}'{hint}")]
    DeploymentNotFound {
        /// Namespace searched.
        namespace: String,
        /// Name searched.
        name: String,
        /// Where it does exist, if found elsewhere (", but it exists in namespace x: add -n x").
        hint: String,
    },
    /// A StatefulSet or DaemonSet that does not exist in the namespace.
    #[error(
        "{kind}/{name} not found in namespace '{namespace}'; check the name and the namespace (-n)"
    )]
    WorkloadNotFound {
        /// The kind as kubectl abbreviates it (`sts`, `ds`).
        kind: &'static str,
        /// Namespace searched.
        namespace: String,
        /// Name searched.
        name: String,
    },
    /// The workload was deleted while the command ran (it may have been created again):
    /// the run stopped, writing nothing to a namesake.
    #[error(
        "{workload} was deleted while this command ran (it may have been created again): the run stopped and \
         wrote nothing to a new one; see `kubectl canary status {workload}`"
    )]
    WorkloadGone {
        /// The workload, as kubectl names it (`sts/db`).
        workload: String,
    },
    /// A canary already runs on the StatefulSet or DaemonSet.
    #[error(
        "a canary is already running on {workload}; see `kubectl canary status {workload}`, then promote or abort it; nothing was changed"
    )]
    WorkloadLocked {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
    },
    /// No canary is recorded on the StatefulSet or DaemonSet.
    #[error(
        "no canary is running on {workload} (no kubectl-canary.io/canary annotation); start one with `kubectl canary start {workload} CONTAINER=IMAGE`"
    )]
    NoWorkloadCanary {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
    },
    /// No canary is recorded for the Deployment.
    #[error(
        "no canary is running on deploy/{name} in namespace '{namespace}' (no {name}.kubectl-canary record); start one with `kubectl canary start deploy/{name} CONTAINER=IMAGE`"
    )]
    NoCanary {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
    },
    /// The request was refused before any change.
    #[error("{0}")]
    Refused(String),
    /// A canary already runs on the Deployment.
    #[error(
        "a canary is already running on deploy/{deployment}: {holder}; \
         see `kubectl canary status deploy/{deployment}`, then promote or abort it"
    )]
    Locked {
        /// Deployment.
        deployment: String,
        /// Who started it, where, when, and what it is doing.
        holder: String,
    },
    /// RBAC forbids a verb the command needs.
    #[error(
        "forbidden: {who} may not {verb} {resource} {}, which {command}; \
         ask for {} that grants it (nothing was changed)",
        scope(.namespace),
        grantor(.namespace)
    )]
    Forbidden {
        /// The user as authenticated (`user 'name'`).
        who: String,
        /// The verb.
        verb: String,
        /// The resource, `resource.group` or `resource`.
        resource: String,
        /// The namespace; empty for a cluster-scoped resource (nodes), which a ClusterRole
        /// grants.
        namespace: String,
        /// The command that needs it.
        command: String,
    },
    /// The API server could not be reached.
    #[error(
        "cannot reach the Kubernetes API server ({detail}); check the kubeconfig/context and that the cluster is up"
    )]
    Unreachable {
        /// The underlying error.
        detail: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {seconds}s waiting for {what}; last seen: {last}")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        seconds: u64,
        /// The last state seen.
        last: String,
    },
    /// The state machine needs a person.
    #[error("{}", .stuck.explain(.deployment))]
    Stuck {
        /// Deployment.
        deployment: String,
        /// Why.
        stuck: Stuck,
    },
    /// The state machine of a StatefulSet or DaemonSet canary needs a person.
    #[error("{why}")]
    WorkloadStuck {
        /// The workload, as `sts/NAME` or `ds/NAME`.
        workload: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// Someone else's pod template on a StatefulSet or DaemonSet during its canary: the run
    /// answered as [`ForeignTemplate::explain`] says and closed the canary.
    #[error("{}", .change.explain(.workload))]
    WorkloadForeign {
        /// The workload, as `sts/NAME` or `ds/NAME`.
        workload: String,
        /// Whose template.
        change: ForeignTemplate,
    },
    /// Someone else changed the Deployment or the record during the canary; the run did
    /// what [`ForeignChange::response`] says (released the brake, or nothing) and stopped.
    #[error("{}", .change.explain(.deployment))]
    Foreign {
        /// Deployment.
        deployment: String,
        /// What happened.
        change: ForeignChange,
    },
    /// Admission (a mutating policy or webhook) changed rollout settings the tool wrote,
    /// twice: the canary cannot be steered.
    #[error(
        "the API server did not keep the rollout settings written to deploy/{deployment}, even when sent again \
         ({detail}): a mutating admission policy or webhook rewrites them; exempt the Deployment from it, \
         then run the command again or `kubectl canary abort deploy/{deployment}`"
    )]
    WriteDidNotStick {
        /// Deployment.
        deployment: String,
        /// What was sent and what was stored.
        detail: String,
    },
    /// The stored record is unreadable or of another version.
    #[error(
        "the canary record {name} is unreadable ({detail}); inspect it with `kubectl get configmap {name} -o yaml`"
    )]
    BadRecord {
        /// ConfigMap name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The record differs from the seal on the Deployment or from the stable ReplicaSet:
    /// the command stopped before any write.
    #[error(
        "the canary record {name} was changed outside kubectl-canary: {tampering}; nothing was \
         written to deploy/{deployment}. {hint}"
    )]
    RecordTampered {
        /// Deployment.
        deployment: String,
        /// The record's ConfigMap name.
        name: String,
        /// What differs (boxed: errors stay small).
        tampering: Box<canary_core::seal::Tampering>,
        /// What to do.
        hint: String,
    },
    /// The Deployment carries the brake and the seal, but the record is gone or unreadable.
    #[error(
        "deploy/{deployment} is held by a kubectl-canary canary whose record {name} is lost ({how}); \
         run `kubectl canary abort deploy/{deployment}` to roll back to the stable ReplicaSet \
         {stable} with the settings kept in the Deployment's {annotation} annotation"
    )]
    HeldWithoutRecord {
        /// Deployment.
        deployment: String,
        /// The record's ConfigMap name.
        name: String,
        /// `missing` or `unreadable (why)`.
        how: String,
        /// The stable ReplicaSet named by the seal.
        stable: String,
        /// The seal's annotation.
        annotation: &'static str,
    },
    /// The input is malformed (an analysis spec that cannot be read).
    #[error("{0}")]
    Usage(String),
    /// An analysis could not run at all.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Api {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl CanaryError {
    /// Wraps a client error with what was being done, recognising the cases that have
    /// their own kind (unreachable server).
    pub fn api(context: impl Into<String>, source: kube::Error) -> Self {
        match &source {
            kube::Error::HyperError(_) | kube::Error::Service(_) => CanaryError::Unreachable {
                detail: format!("{}: {source}", context.into()),
            },
            _ => CanaryError::Api {
                context: context.into(),
                source,
            },
        }
    }

    /// The kind of the error, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CanaryError::DeploymentNotFound { .. }
            | CanaryError::WorkloadNotFound { .. }
            | CanaryError::NoWorkloadCanary { .. }
            | CanaryError::NoCanary { .. } => ErrorKind::NotFound,
            CanaryError::Refused(_) => ErrorKind::Refused,
            CanaryError::WorkloadGone { .. } => ErrorKind::Recreated,
            CanaryError::Locked { .. } | CanaryError::WorkloadLocked { .. } => ErrorKind::Locked,
            CanaryError::Forbidden { .. } => ErrorKind::Forbidden,
            CanaryError::Unreachable { .. } => ErrorKind::Unreachable,
            CanaryError::TimedOut { .. } => ErrorKind::TimedOut,
            CanaryError::Stuck { .. }
            | CanaryError::WorkloadStuck { .. }
            | CanaryError::WriteDidNotStick { .. } => ErrorKind::Stuck,
            CanaryError::WorkloadForeign { change, .. } => match change {
                ForeignTemplate::RevertedToStable => ErrorKind::RevertedByOthers,
                ForeignTemplate::ReplacedByOtherVersion => ErrorKind::ReplacedByOthers,
            },
            CanaryError::Foreign { change, .. } => match change {
                ForeignChange::RevertedToStable => ErrorKind::RevertedByOthers,
                ForeignChange::ReplacedByOtherVersion { .. } => ErrorKind::ReplacedByOthers,
                ForeignChange::Rescaled { .. } => ErrorKind::Rescaled,
                ForeignChange::Recreated { .. } => ErrorKind::Recreated,
                ForeignChange::RecordLost => ErrorKind::RecordLost,
                ForeignChange::SupersededByAnotherRun { .. } => ErrorKind::Superseded,
            },
            CanaryError::RecordTampered { .. } => ErrorKind::RecordTampered,
            CanaryError::HeldWithoutRecord { .. } => ErrorKind::HeldWithoutRecord,
            CanaryError::Usage(_) => ErrorKind::Usage,
            // Nothing to analyse is a canary that does not exist (exit code 3), whichever
            // command runs the analysis; a spec without checks is malformed input.
            CanaryError::Analysis(AnalysisError::NoChecks) => ErrorKind::Usage,
            CanaryError::Analysis(
                AnalysisError::NoCanaryPods { .. } | AnalysisError::NoStablePods { .. },
            ) => ErrorKind::NotFound,
            CanaryError::Analysis(AnalysisError::ServerClock { .. }) => ErrorKind::Unreachable,
            CanaryError::Api { source, .. } if is_status(source, 403) => ErrorKind::Forbidden,
            CanaryError::BadRecord { .. } | CanaryError::Api { .. } => ErrorKind::Internal,
        }
    }
}

/// Where a permission applies, as [`CanaryError::Forbidden`] says it.
fn scope(namespace: &str) -> String {
    if namespace.is_empty() {
        "cluster-wide".to_owned()
    } else {
        format!("in namespace '{namespace}'")
    }
}

/// What grants a permission of `namespace` (empty: cluster-wide, which no Role can grant).
fn grantor(namespace: &str) -> &'static str {
    if namespace.is_empty() {
        "a ClusterRole (and ClusterRoleBinding)"
    } else {
        "a Role"
    }
}

/// Whether a client error is an API status with this HTTP code.
pub fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Result of the adapters.
pub type Result<T, E = CanaryError> = std::result::Result<T, E>;
