//! `status` of a StatefulSet or DaemonSet canary: the two sides by `controller-revision-hash`,
//! the record on the workload, what is wrong first, and what to do next.

use serde::Serialize;
use serde_json::Value;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::foreign::ForeignTemplate;
use canary_core::kind_machines::record::WORKLOAD_RECORD_ANNOTATION;
use canary_core::rollout_math::OrdinalHealth;
use kube::ResourceExt;

use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::{KindRecord, KindView, recorded_or_none};

/// Where a StatefulSet or DaemonSet canary stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    /// `sts/NAME` or `ds/NAME`.
    pub workload: String,
    /// What is wrong, most urgent first (empty: nothing).
    pub problems: Vec<String>,
    /// The canary recorded on the workload, if one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<KindCanary>,
    /// The stable revision (the pods' `controller-revision-hash`).
    pub stable_revision: String,
    /// The canary's revision, once the controller has made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Every pod, ordinal or node order.
    pub pods: Vec<KindPod>,
    /// What to run next.
    pub next: Vec<String>,
}

/// The canary as its record says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindCanary {
    /// What the last command asked for, as recorded.
    pub goal: Value,
    /// Who started it (`user on host`).
    pub started_by: String,
    /// When.
    pub started_at: String,
}

/// What the record asks of a held canary, and someone else's template if there is one.
struct Held {
    /// The pods (nodes) a hold asks for; `None` for a promote or an abort.
    asked: Option<usize>,
    /// Someone else's pod template on the workload.
    foreign: Option<ForeignTemplate>,
}

/// A brake with no record: a partition or `OnDelete` holding pods on two revisions that no
/// canary's record explains, and the commands that end it either way.
struct Stranded {
    /// What is wrong.
    problem: String,
    /// What ends it.
    next: Vec<String>,
}

/// One pod and its side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPod {
    /// The pod's name.
    pub name: String,
    /// `stable`, `canary`, or `other` (a revision neither side's).
    pub side: &'static str,
    /// Ready.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Its node.
    pub node: String,
}

impl KindStatus {
    /// The status of a StatefulSet canary.
    pub fn of_statefulset(view: &StatefulSetView) -> Self {
        let record = recorded_or_none(view);
        let stable = match &record {
            Ok(r) => r.intent.stable_revision.clone(),
            Err(_) => view.facts().current_revision,
        };
        let canary = record.as_ref().ok().map(|r| {
            (
                serde_json::to_value(r.goal).unwrap_or_default(),
                r.started_by.clone(),
                r.started_at.clone(),
            )
        });
        let held = record.as_ref().ok().map(|r| Held {
            asked: match r.goal {
                Goal::Hold { pods } => Some(pods as usize),
                _ => None,
            },
            foreign: view.foreign(r, true, r.aborts()),
        });
        let facts = view.facts();
        let name = facts.name.clone();
        let stranded = (record.is_err()
            && facts.partition > 0
            && facts.current_revision != facts.update_revision)
            .then(|| Stranded {
                problem: format!(
                    "sts/{name} is held by a partition ({}) with its pods on two revisions and no canary record (the \
                     record was removed, or the partition set by hand): nothing finishes it by itself",
                    facts.partition
                ),
                next: vec![
                    format!(
                        "kubectl patch sts/{name} --type merge -p '{{\"spec\":{{\"updateStrategy\":{{\"rollingUpdate\":{{\"partition\":0}}}}}}}}' \
                         (the new revision to every pod)"
                    ),
                    format!(
                        "kubectl rollout undo sts/{name}, then the same patch (back; delete a new pod that is not Ready \
                         by hand under OrderedReady)"
                    ),
                ],
            });
        let pods = view
            .pods_by_ordinal()
            .into_iter()
            .map(|(ordinal, pod)| {
                let name = format!("{}-{ordinal}", view.statefulset.name_any());
                let node = view
                    .pods
                    .iter()
                    .find(|p| p.name_any() == name)
                    .and_then(|p| p.spec.as_ref()?.node_name.clone())
                    .unwrap_or_default();
                (
                    pod.revision,
                    KindPod {
                        name,
                        side: "",
                        ready: pod.health == OrdinalHealth::Ready,
                        terminating: pod.health == OrdinalHealth::Terminating,
                        node,
                    },
                )
            })
            .collect();
        Self::assemble(
            view,
            record.err(),
            canary,
            (held, stranded),
            stable,
            view.facts().update_revision,
            pods,
        )
    }

    /// The status of a DaemonSet canary.
    pub fn of_daemonset(view: &DaemonSetView) -> Self {
        let record = recorded_or_none(view);
        let stable = match &record {
            Ok(r) => r.intent.stable_revision.clone(),
            Err(_) => view.template_revision(),
        };
        let canary = record.as_ref().ok().map(|r| {
            (
                serde_json::to_value(&r.goal).unwrap_or_default(),
                r.started_by.clone(),
                r.started_at.clone(),
            )
        });
        let held = record.as_ref().ok().map(|r| Held {
            asked: match &r.goal {
                DaemonSetGoal::Hold { nodes } => Some(nodes.len()),
                _ => None,
            },
            foreign: view.foreign(r, true, r.aborts()),
        });
        let name = view.daemonset.name_any();
        let revisions: std::collections::BTreeSet<String> = view
            .pods_by_node()
            .into_values()
            .flatten()
            .map(|p| p.revision)
            .collect();
        let on_delete = view.observation().strategy["type"] == "OnDelete";
        let stranded = (record.is_err() && on_delete && revisions.len() > 1).then(|| Stranded {
            problem: format!(
                "ds/{name} has updateStrategy OnDelete with its pods on {} revisions and no canary record (the record \
                 was removed, or it is staged by hand): nothing finishes it by itself",
                revisions.len()
            ),
            next: vec![
                format!(
                    "kubectl patch ds/{name} --type merge -p '{{\"spec\":{{\"updateStrategy\":{{\"type\":\"RollingUpdate\"}}}}}}' \
                     (the template to every node)"
                ),
                format!("kubectl rollout undo ds/{name}, then the same patch (back)"),
            ],
        });
        let mut pods: Vec<_> = view
            .pods
            .iter()
            .map(|p| {
                (
                    p.labels()
                        .get(crate::kinds::CONTROLLER_REVISION_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    KindPod {
                        name: p.name_any(),
                        side: "",
                        ready: crate::observe::pod_is_ready(p),
                        terminating: p.metadata.deletion_timestamp.is_some(),
                        node: p
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                    },
                )
            })
            .collect();
        pods.sort_by(|(_, a), (_, b)| a.node.cmp(&b.node).then(a.name.cmp(&b.name)));
        Self::assemble(
            view,
            record.err(),
            canary,
            (held, stranded),
            stable,
            view.template_revision(),
            pods,
        )
    }

    fn assemble<V: KindView>(
        view: &V,
        record_error: Option<crate::error::CanaryError>,
        canary: Option<(Value, canary_core::record::Owner, String)>,
        (held, stranded): (Option<Held>, Option<Stranded>),
        stable: String,
        template_revision: String,
        pods: Vec<(String, KindPod)>,
    ) -> Self {
        let workload = view.workload();
        let canary_revision =
            (canary.is_some() && template_revision != stable).then_some(template_revision);
        let pods: Vec<KindPod> = pods
            .into_iter()
            .map(|(revision, pod)| KindPod {
                side: if revision == stable {
                    "stable"
                } else if Some(&revision) == canary_revision.as_ref() {
                    "canary"
                } else {
                    "other"
                },
                ..pod
            })
            .collect();
        let mut problems = Vec::new();
        // Someone else's template first: the next command answers it and closes the canary.
        if let Some(foreign) = held.as_ref().and_then(|h| h.foreign) {
            let (answer, code) = match foreign {
                ForeignTemplate::RevertedToStable => ("aborts the canary", 13),
                ForeignTemplate::ReplacedByOtherVersion => {
                    ("releases its brake under their template", 14)
                }
            };
            problems.push(format!(
                "someone else changed the pod template of {workload} ({}); the next command (`kubectl canary abort \
                 {workload}`) {answer} and closes it (exit {code})",
                match foreign {
                    ForeignTemplate::RevertedToStable => "the stable one is back",
                    ForeignTemplate::ReplacedByOtherVersion => "another version",
                }
            ));
        }
        let running = pods
            .iter()
            .filter(|p| p.side == "canary" && !p.terminating)
            .count();
        if let Some(asked) = held.as_ref().and_then(|h| h.asked).filter(|&a| running > a) {
            problems.push(match view.workload().starts_with("sts/") {
                true => format!(
                    "the canary runs {running} pods, {asked} asked: the StatefulSet was scaled and its new highest \
                     ordinals came up on the canary revision; `kubectl canary promote {workload} --canary {asked}` \
                     holds {asked} again"
                ),
                false => format!(
                    "the canary runs on {running} nodes, {asked} asked: a node that joined got its pod from the \
                     canary template (the DaemonSet makes new nodes' pods from the template of the moment); abort \
                     takes it back, promote --full keeps it"
                ),
            });
        }
        if let Some((goal, _, _)) = &canary {
            let unfinished = match goal["goal"].as_str() {
                Some("promoteFull") => Some(format!("kubectl canary promote {workload} --full")),
                Some("abort") => Some(format!("kubectl canary abort {workload}")),
                _ => None,
            };
            if let Some(command) = unfinished {
                problems.push(format!(
                    "the last command on the canary did not finish (it stopped or was stopped); `{command}` finishes it"
                ));
            }
        }
        let has_annotation = view
            .object()
            .annotations()
            .contains_key(WORKLOAD_RECORD_ANNOTATION);
        if let (Some(error), true) = (&record_error, has_annotation) {
            problems.push(error.to_string());
        }
        if let Some(stranded) = &stranded {
            problems.push(stranded.problem.clone());
        }
        for pod in pods.iter().filter(|p| !p.ready && !p.terminating) {
            problems.push(format!("{} pod {} is not Ready", pod.side, pod.name));
        }
        let next = match &canary {
            None if stranded.is_some() => stranded.map(|s| s.next).unwrap_or_default(),
            Some(_) => vec![
                format!("kubectl canary promote {workload} --canary SIZE (grow) or --full"),
                format!("kubectl canary abort {workload}"),
            ],
            None if has_annotation => vec![format!(
                "kubectl annotate {workload} {WORKLOAD_RECORD_ANNOTATION}- (only if no canary runs on it)"
            )],
            None => vec![format!(
                "kubectl canary start {workload} CONTAINER=IMAGE --canary 1"
            )],
        };
        Self {
            workload,
            problems,
            canary: canary.map(|(goal, owner, started_at)| KindCanary {
                goal,
                started_by: format!("{} on {}", owner.user, owner.host),
                started_at,
            }),
            stable_revision: stable,
            canary_revision,
            pods,
            next,
        }
    }

    /// Canary pods, and those of them Ready.
    pub fn canary_pods(&self) -> (usize, usize) {
        let canary: Vec<&KindPod> = self
            .pods
            .iter()
            .filter(|p| p.side == "canary" && !p.terminating)
            .collect();
        (canary.len(), canary.iter().filter(|p| p.ready).count())
    }
}
