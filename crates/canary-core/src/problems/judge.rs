//! The rules: which problem a pod, a ReplicaSet, a verdict or the Deployment shows.

use serde::Serialize;

use super::evidence::{
    ContainerEvidence, EventEvidence, PodEvidence, ReplicaSetEvidence, Side, Situation, Termination,
};
use crate::duration::format_duration;

/// A container restarted this recently (seconds) still counts as crash-looping while its
/// pod is Ready again, if it restarted more than once: a crash loop spends most of its time
/// Running between two crashes.
pub const RECENT_RESTART_SECS: i64 = 300;

/// What is wrong, as a stable value scripts branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemCode {
    /// A container keeps restarting (CrashLoopBackOff, or Running between two crashes).
    CrashLoop,
    /// A container was killed for memory (OOMKilled).
    OomKilled,
    /// An image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName).
    ImagePull,
    /// A container cannot be created (CreateContainerConfigError, CreateContainerError).
    ContainerConfig,
    /// The scheduler cannot place a pod (with its reason).
    Unschedulable,
    /// A pod has not been Ready for longer than the Deployment's progress deadline.
    NotReady,
    /// The ReplicaSet cannot create pods (quota, limit range, admission refusal).
    FailedCreate,
    /// The last analysis of the canary as it is now failed.
    AnalysisFailed,
    /// Someone else changed the Deployment during the canary.
    ForeignChange,
    /// The canary ReplicaSet's size differs from the size asked for.
    SizeDrift,
}

impl ProblemCode {
    /// The code as `-o json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::CrashLoop => "crashLoop",
            ProblemCode::OomKilled => "oomKilled",
            ProblemCode::ImagePull => "imagePull",
            ProblemCode::ContainerConfig => "containerConfig",
            ProblemCode::Unschedulable => "unschedulable",
            ProblemCode::NotReady => "notReady",
            ProblemCode::FailedCreate => "failedCreate",
            ProblemCode::AnalysisFailed => "analysisFailed",
            ProblemCode::ForeignChange => "foreignChange",
            ProblemCode::SizeDrift => "sizeDrift",
        }
    }

    /// Whether a canary with this problem is unhealthy: promoting it is unsafe. A foreign
    /// change and a drifted size need a person, but say nothing about the new version.
    pub fn unhealthy(self) -> bool {
        !matches!(self, ProblemCode::ForeignChange | ProblemCode::SizeDrift)
    }
}

/// The facts a problem was judged from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemEvidence {
    /// The reason the container or pod reports (`CrashLoopBackOff`, `OOMKilled`,
    /// `ImagePullBackOff`, `Unschedulable`, `FailedCreate`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The container's restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
    /// The exit code of its last termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    /// The reason of its last termination (`Error`, `OOMKilled`, `Completed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit_reason: Option<String>,
    /// How long the pod has not been Ready, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_ready_seconds: Option<i64>,
    /// The newest relevant Event: `REASON: message (N times)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// One problem, with what it is about and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// What is wrong.
    pub code: ProblemCode,
    /// Which side it is on.
    pub side: Side,
    /// The pod, for a pod's problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The container, for a container's problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The ReplicaSet, for a ReplicaSet's problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
    /// The problem in one sentence, with the pod and the evidence.
    pub message: String,
    /// The facts it was judged from.
    pub evidence: ProblemEvidence,
}

impl Problem {
    /// The problem in a few words, its code and what it is about: `crashLoop on pod web-abc`.
    pub fn short(&self) -> String {
        let code = self.code.as_str();
        match (&self.pod, &self.replica_set) {
            (Some(pod), _) => format!("{code} on pod {pod}"),
            (None, Some(rs)) => format!("{code} on ReplicaSet {rs}"),
            (None, None) => code.to_string(),
        }
    }
}

/// Whether the canary is unhealthy: a problem that makes promoting it unsafe is on its side.
pub fn is_unhealthy(problems: &[Problem]) -> bool {
    first_unhealthy(problems).is_some()
}

/// The first problem that makes the canary unhealthy.
pub fn first_unhealthy(problems: &[Problem]) -> Option<&Problem> {
    problems
        .iter()
        .find(|p| p.side == Side::Canary && p.code.unhealthy())
}

/// Every problem of a situation, canary first, then the Deployment's, then the stable
/// side's; within a side in the order of [`ProblemCode`]. `now` (seconds since the epoch,
/// on the API server's clock) enables the rules that need time (not Ready past the
/// deadline, a recent restart of a pod that is Ready again); without it they are left out.
pub fn judge(situation: &Situation, now: Option<i64>) -> Vec<Problem> {
    let mut problems: Vec<Problem> = vec![];
    for rs in &situation.replica_sets {
        problems.extend(replica_set_problem(rs));
    }
    for pod in &situation.pods {
        problems.extend(pod_problem_at(pod, situation.ready_deadline_secs, now));
    }
    if let Some(verdict) = &situation.verdict
        && verdict.decision == crate::verdict::Decision::Fail
    {
        problems.push(Problem {
            code: ProblemCode::AnalysisFailed,
            side: Side::Canary,
            pod: None,
            container: None,
            replica_set: None,
            message: format!(
                "the last analysis failed the canary (at {}): {}",
                verdict.at, verdict.reason
            ),
            evidence: ProblemEvidence {
                reason: Some(verdict.reason.clone()),
                ..Default::default()
            },
        });
    }
    if let Some(foreign) = &situation.foreign {
        problems.push(Problem {
            code: ProblemCode::ForeignChange,
            side: Side::Deployment,
            pod: None,
            container: None,
            replica_set: None,
            message: format!("changed by someone else: {foreign}"),
            evidence: ProblemEvidence::default(),
        });
    } else if let Some((asked, desired)) = situation.held
        && asked != desired
    {
        let rs = situation
            .replica_sets
            .iter()
            .find(|rs| rs.side == Side::Canary)
            .map(|rs| rs.name.clone());
        problems.push(Problem {
            code: ProblemCode::SizeDrift,
            side: Side::Canary,
            pod: None,
            container: None,
            message: format!(
                "the canary ReplicaSet{} is at {desired} pod(s), but a canary of {asked} was asked for",
                rs.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
            ),
            replica_set: rs,
            evidence: ProblemEvidence::default(),
        });
    }
    let rank = |side: Side| match side {
        Side::Canary => 0,
        Side::Deployment => 1,
        Side::Stable => 2,
    };
    // Stable: the order of the rules within a side stays as found (pods by name).
    problems.sort_by_key(|p| (rank(p.side), p.code));
    problems
}

/// A pod's problem from its current state and its restarts alone (no clock): what a wait
/// for the canary's pods reports as soon as it shows.
pub fn pod_problem(pod: &PodEvidence) -> Option<Problem> {
    pod_problem_at(pod, i64::MAX, None)
}

fn pod_problem_at(pod: &PodEvidence, deadline_secs: i64, now: Option<i64>) -> Option<Problem> {
    if pod.terminating {
        return None;
    }
    let event = pod.event.as_ref().map(event_text);
    let problem = |code, container: Option<&ContainerEvidence>, message, evidence| Problem {
        code,
        side: pod.side,
        pod: Some(pod.name.clone()),
        container: container.map(|c| c.name.clone()),
        replica_set: None,
        message,
        evidence: ProblemEvidence {
            event: event.clone(),
            ..evidence
        },
    };
    let name = &pod.name;
    if let Some(message) = &pod.unschedulable {
        return Some(problem(
            ProblemCode::Unschedulable,
            None,
            format!("{name}: Pending, cannot be scheduled: {message}"),
            ProblemEvidence {
                reason: Some("Unschedulable".into()),
                ..Default::default()
            },
        ));
    }
    for container in &pod.containers {
        let waiting = container.waiting_reason.as_deref().unwrap_or_default();
        if matches!(
            waiting,
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
        ) {
            let detail = container
                .waiting_message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Some(problem(
                ProblemCode::ImagePull,
                Some(container),
                format!(
                    "{name}: {waiting} (container {}, the image cannot be pulled{detail})",
                    container.name
                ),
                ProblemEvidence {
                    reason: Some(waiting.into()),
                    restarts: Some(container.restarts),
                    ..Default::default()
                },
            ));
        }
        if matches!(
            waiting,
            "CreateContainerConfigError" | "CreateContainerError"
        ) {
            let detail = container
                .waiting_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Some(problem(
                ProblemCode::ContainerConfig,
                Some(container),
                format!("{name}: {waiting} (container {}{detail})", container.name),
                ProblemEvidence {
                    reason: Some(waiting.into()),
                    ..Default::default()
                },
            ));
        }
        if let Some(found) = restarting(pod, container, now) {
            let Restarting { ended, now_text } = found;
            let oom = ended.reason.as_deref() == Some("OOMKilled");
            let reason = ended.reason.clone().unwrap_or_default();
            let ago = match (now, ended.finished_at) {
                (Some(now), Some(at)) if now >= at => format!(
                    " {} ago",
                    format_duration(std::time::Duration::from_secs((now - at) as u64))
                ),
                _ => String::new(),
            };
            let (code, what) = if oom {
                (ProblemCode::OomKilled, "OOMKilled")
            } else {
                (ProblemCode::CrashLoop, "crash-looping")
            };
            return Some(problem(
                code,
                Some(container),
                format!(
                    "{name}: {what} (container {}, {} restarts, last exit {} ({reason}){ago}; now {now_text})",
                    container.name, container.restarts, ended.exit_code
                ),
                ProblemEvidence {
                    // What it does now: CrashLoopBackOff, Error (terminated) or Running.
                    reason: Some(
                        container
                            .waiting_reason
                            .clone()
                            .or_else(|| {
                                container.terminated.as_ref().and_then(|t| t.reason.clone())
                            })
                            .unwrap_or_else(|| "Running".into()),
                    ),
                    restarts: Some(container.restarts),
                    last_exit_code: Some(ended.exit_code),
                    last_exit_reason: ended.reason.clone(),
                    ..Default::default()
                },
            ));
        }
    }
    let (Some(now), Some(since)) = (now, pod.not_ready_since) else {
        return None;
    };
    let not_ready = now.saturating_sub(since);
    if pod.ready || not_ready <= deadline_secs {
        return None;
    }
    let states: Vec<String> = pod
        .containers
        .iter()
        .map(|c| format!("{} {}", c.name, container_state(c)))
        .collect();
    Some(problem(
        ProblemCode::NotReady,
        None,
        format!(
            "{name}: not Ready for {}, past the deadline of {} (the Deployment's progressDeadlineSeconds){}",
            format_duration(std::time::Duration::from_secs(not_ready as u64)),
            format_duration(std::time::Duration::from_secs(deadline_secs.max(0) as u64)),
            if states.is_empty() {
                String::new()
            } else {
                format!("; containers: {}", states.join(", "))
            }
        ),
        ProblemEvidence {
            reason: Some("NotReady".into()),
            not_ready_seconds: Some(not_ready),
            ..Default::default()
        },
    ))
}

/// A container that ended and restarts: how it ended and what it does now.
struct Restarting<'a> {
    ended: &'a Termination,
    now_text: String,
}

/// Whether a container is in a restart loop, judged from what stays true between two
/// crashes: terminated now, waiting in CrashLoopBackOff, or restarted (with a last
/// termination) while its pod is not Ready; or, with a clock, restarted more than once
/// and lately while Ready again.
fn restarting<'a>(
    pod: &PodEvidence,
    container: &'a ContainerEvidence,
    now: Option<i64>,
) -> Option<Restarting<'a>> {
    if let Some(terminated) = &container.terminated {
        let ended = container
            .last_termination
            .as_ref()
            .filter(|_| terminated.reason.as_deref() != Some("OOMKilled"))
            .filter(|last| last.reason.as_deref() == Some("OOMKilled"))
            .unwrap_or(terminated);
        return Some(Restarting {
            ended,
            now_text: format!(
                "terminated, exit {} ({})",
                terminated.exit_code,
                terminated.reason.clone().unwrap_or_default()
            ),
        });
    }
    let last = container.last_termination.as_ref()?;
    let waiting = container.waiting_reason.as_deref();
    let recent = match (now, last.finished_at) {
        (Some(now), Some(at)) => now - at <= RECENT_RESTART_SECS,
        _ => false,
    };
    let looping = waiting == Some("CrashLoopBackOff")
        || (container.restarts > 0 && !pod.ready)
        || (container.restarts > 1 && recent);
    looping.then(|| Restarting {
        ended: last,
        now_text: match (&container.waiting_reason, pod.ready) {
            (None, false) => "Running, not Ready".into(),
            (None, true) => "Running, Ready".into(),
            _ => container_state(container),
        },
    })
}

/// A container's current state in `kubectl get pods`' words, with readiness.
fn container_state(container: &ContainerEvidence) -> String {
    match (&container.waiting_reason, &container.terminated) {
        (Some(reason), _) => reason.clone(),
        (None, Some(t)) => format!(
            "terminated, exit {} ({})",
            t.exit_code,
            t.reason.clone().unwrap_or_default()
        ),
        (None, None) => "Running".into(),
    }
}

fn replica_set_problem(rs: &ReplicaSetEvidence) -> Option<Problem> {
    // The condition stays while the ReplicaSet cannot create pods; the Event says the same
    // when the condition is not (yet) written, as long as pods are missing.
    let (message, event) = match (&rs.failure, &rs.failed_create) {
        (Some(failure), event) => (failure.clone(), event.as_ref()),
        (None, Some(event)) if rs.pods < rs.desired => {
            (format!("FailedCreate: {}", event.message), Some(event))
        }
        _ => return None,
    };
    Some(Problem {
        code: ProblemCode::FailedCreate,
        side: rs.side,
        pod: None,
        container: None,
        replica_set: Some(rs.name.clone()),
        message: format!(
            "ReplicaSet {} cannot create pods ({message}); {} of {} pod(s) exist",
            rs.name, rs.pods, rs.desired
        ),
        evidence: ProblemEvidence {
            reason: Some("FailedCreate".into()),
            event: event.map(event_text),
            ..Default::default()
        },
    })
}

/// An Event as evidence: `REASON: message (N times)`.
fn event_text(event: &EventEvidence) -> String {
    if event.count > 1 {
        format!(
            "{}: {} ({} times)",
            event.reason, event.message, event.count
        )
    } else {
        format!("{}: {}", event.reason, event.message)
    }
}
