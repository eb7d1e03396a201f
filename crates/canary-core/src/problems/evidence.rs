//! The evidence problems are judged from, as plain data.

use serde::Serialize;

/// Which side of the canary something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    /// The canary's pods or ReplicaSet.
    Canary,
    /// The stable pods or ReplicaSet.
    Stable,
    /// The Deployment (or the canary as a whole: its record, its verdict).
    Deployment,
}

impl Side {
    /// The side in words, as a problem line starts.
    pub fn label(self) -> &'static str {
        match self {
            Side::Canary => "canary",
            Side::Stable => "stable",
            Side::Deployment => "deployment",
        }
    }
}

/// How a container ended (its current or its last termination).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Termination {
    /// The exit code.
    pub exit_code: i32,
    /// The reason (`Error`, `OOMKilled`, `Completed`).
    pub reason: Option<String>,
    /// When it ended, in seconds since the epoch.
    pub finished_at: Option<i64>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerEvidence {
    /// The container's name.
    pub name: String,
    /// `restartCount`.
    pub restarts: i32,
    /// The reason it is waiting (`CrashLoopBackOff`, `ImagePullBackOff`...), if it waits.
    pub waiting_reason: Option<String>,
    /// The waiting state's message.
    pub waiting_message: Option<String>,
    /// Its current termination, if it is terminated now.
    pub terminated: Option<Termination>,
    /// Its last termination (`lastState.terminated`), which stays between two crashes.
    pub last_termination: Option<Termination>,
}

/// An Event about an object, the newest of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventEvidence {
    /// The reason (`BackOff`, `FailedScheduling`, `FailedCreate`, `Failed`).
    pub reason: String,
    /// The message.
    pub message: String,
    /// How often it happened.
    pub count: i32,
    /// When it last happened, in seconds since the epoch.
    pub at: Option<i64>,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvidence {
    /// The pod's name.
    pub name: String,
    /// Its side.
    pub side: Side,
    /// Being deleted: none of its problems counts any more.
    pub terminating: bool,
    /// Ready (a Service sends it traffic).
    pub ready: bool,
    /// Since when it has not been Ready (its `Ready` condition's last transition, else its
    /// creation), in seconds since the epoch; `None` when Ready.
    pub not_ready_since: Option<i64>,
    /// The scheduler's message for a pod it cannot place (`PodScheduled=False/Unschedulable`).
    pub unschedulable: Option<String>,
    /// Its containers.
    pub containers: Vec<ContainerEvidence>,
    /// The newest Warning Event about it, if any.
    pub event: Option<EventEvidence>,
}

/// One ReplicaSet of the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetEvidence {
    /// Its name.
    pub name: String,
    /// Its side.
    pub side: Side,
    /// `spec.replicas`.
    pub desired: i32,
    /// Pods that exist.
    pub pods: i32,
    /// Its `ReplicaFailure` condition (reason and message), while it is true.
    pub failure: Option<String>,
    /// The newest `FailedCreate` Event about it, if newer than its newest `SuccessfulCreate`.
    pub failed_create: Option<EventEvidence>,
}

/// The last analysis verdict recorded for the canary as it is now (its ReplicaSet, its size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictEvidence {
    /// `pass`, `fail`, `wait` or `inconclusive`.
    pub decision: crate::verdict::Decision,
    /// Why, in words.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Everything one look at a canary gives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Situation {
    /// The pods of both sides.
    pub pods: Vec<PodEvidence>,
    /// The ReplicaSets of both sides.
    pub replica_sets: Vec<ReplicaSetEvidence>,
    /// How long a pod may stay not Ready: the Deployment's `progressDeadlineSeconds`, the
    /// time it gives a rollout to make progress.
    pub ready_deadline_secs: i64,
    /// The canary size asked for while it is held (no pending change), and the canary
    /// ReplicaSet's `spec.replicas`.
    pub held: Option<(i32, i32)>,
    /// A change someone else made during the canary, in words.
    pub foreign: Option<String>,
    /// The last verdict recorded for the canary as it is now.
    pub verdict: Option<VerdictEvidence>,
}
