//! The DaemonSet canary: `updateStrategy: OnDelete` and the pods of k chosen nodes deleted,
//! so that exactly those nodes run the new revision for as long as the canary holds.
//!
//! Modelled on kubernetes/kubernetes v1.36 `pkg/controller/daemon/daemon_controller.go`
//! (`podsShouldBeOnNode`, `manage`) for the `OnDelete` strategy: the controller creates a pod
//! of the *current* template on every node that should run one and has none, deletes failed
//! and succeeded pods (which then come back on the current template), and replaces nothing
//! else. `RollingUpdate` is not modelled: the canary never relies on it (a DaemonSet's
//! minReadySeconds reaches its old pods too, so `maxSurge` with a long minReadySeconds does not
//! hold; docs/ARCHITECTURE.md, "StatefulSet and DaemonSet controllers: measured"); `promote
//! --full` hands the rest of the rollout to the DaemonSet's own strategy.
//! `crates/canary-kube/tests/kinds_model.rs` checks [`DaemonSetModel`] against the real
//! controller.
//!
//! A canary share of a DaemonSet is a share of its nodes: one pod per node, so `--canary 10%`
//! of 10 nodes is one node (`CanaryMode::Replace`'s arithmetic over the nodes that run it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{CanaryMode, CanarySize, RolloutMathError, resolve_canary};

/// The daemon pod of one node as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonPod {
    /// The value of its `controller-revision-hash` label.
    pub revision: String,
    /// Running and Ready.
    pub ready: bool,
    /// Phase Failed or Succeeded (evicted, or stopped): the controller deletes it.
    pub finished: bool,
}

/// A write of the DaemonSet controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonSetWrite {
    /// Created a pod of `revision` on `node`.
    Create {
        /// The node.
        node: String,
        /// The revision (always the current template's).
        revision: String,
    },
    /// Deleted the finished pod of `node`.
    Delete {
        /// The node.
        node: String,
    },
}

/// An `OnDelete` DaemonSet as its controller sees it: the nodes that should run its pod and
/// the pod each runs (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSetModel {
    /// The hash of the template now.
    pub update_revision: String,
    /// Every node that should run a daemon pod, with its pod (`None`: none yet).
    pub nodes: BTreeMap<String, Option<DaemonPod>>,
}

impl DaemonSetModel {
    /// One sync of the controller under `OnDelete`: a finished pod is deleted; a node
    /// without a pod gets one of the update revision. Returns the writes, applied (a created
    /// pod is not Ready; a deleted pod is gone).
    pub fn sync(&mut self) -> Vec<DaemonSetWrite> {
        let mut writes = Vec::new();
        for (node, pod) in &mut self.nodes {
            match pod {
                Some(p) if p.finished => {
                    *pod = None;
                    writes.push(DaemonSetWrite::Delete { node: node.clone() });
                }
                Some(_) => {}
                None => {
                    *pod = Some(DaemonPod {
                        revision: self.update_revision.clone(),
                        ready: false,
                        finished: false,
                    });
                    writes.push(DaemonSetWrite::Create {
                        node: node.clone(),
                        revision: self.update_revision.clone(),
                    });
                }
            }
        }
        writes
    }

    /// Runs syncs until the controller has nothing to do; a created pod is Ready when
    /// `becomes_ready` says its revision is.
    pub fn settle(&mut self, becomes_ready: impl Fn(&str) -> bool) -> Vec<DaemonSetWrite> {
        let mut all = Vec::new();
        // A node needs at most a deletion and a creation.
        for _ in 0..3 {
            let writes = self.sync();
            if writes.is_empty() {
                break;
            }
            for pod in self.nodes.values_mut().flatten() {
                if !pod.ready && becomes_ready(&pod.revision) {
                    pod.ready = true;
                }
            }
            all.extend(writes);
        }
        all
    }

    /// The nodes whose pod is on `revision`.
    pub fn nodes_on(&self, revision: &str) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter(|(_, pod)| pod.as_ref().is_some_and(|p| p.revision == revision))
            .map(|(node, _)| node.clone())
            .collect()
    }
}

/// What of a DaemonSet a canary depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSetFacts {
    /// The DaemonSet's name.
    pub name: String,
    /// The hash of its template now (the stable revision).
    pub stable_revision: String,
    /// Every node that should run its pod, with the pod it runs.
    pub nodes: BTreeMap<String, Option<DaemonPod>>,
    /// `status.observedGeneration >= metadata.generation`.
    pub caught_up: bool,
}

/// Why a DaemonSet cannot take a canary now, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DaemonSetRefusal {
    /// Nodes run a revision other than the template's: a rollout is in progress.
    #[error(
        "ds/{name} is still rolling out: node(s) {nodes} run a revision other than its template's; wait for \
         `kubectl rollout status ds/{name}` to finish and start again"
    )]
    RollingOut {
        /// The DaemonSet.
        name: String,
        /// The nodes on another revision, comma-separated.
        nodes: String,
    },
    /// Nodes that should run a pod and run none, or one that is not Ready.
    #[error(
        "ds/{name} has node(s) without a Ready pod ({nodes}): a canary compares Ready pods; fix them (kubectl \
         describe ds/{name}) and start again"
    )]
    NotReady {
        /// The DaemonSet.
        name: String,
        /// The nodes, comma-separated.
        nodes: String,
    },
    /// The controller has not seen the latest spec yet.
    #[error(
        "ds/{name}'s controller has not yet seen its latest change (observedGeneration behind generation): wait a \
         moment and start again"
    )]
    NotObserved {
        /// The DaemonSet.
        name: String,
    },
    /// Fewer nodes to choose from than the canary asks.
    #[error(
        "ds/{name}: a canary of {pods} node(s) was asked, but only {eligible} of its {total} node(s) {where_}: \
         ask for fewer nodes, or widen --nodes"
    )]
    TooFewNodes {
        /// The DaemonSet.
        name: String,
        /// Canary nodes asked.
        pods: i32,
        /// Nodes to choose from.
        eligible: usize,
        /// Nodes that run the DaemonSet.
        total: usize,
        /// Which nodes were eligible, in words.
        where_: String,
    },
    /// A size that leaves no stable node, or no node at all.
    #[error("ds/{name}: {source}")]
    Size {
        /// The DaemonSet.
        name: String,
        /// What the sizing said.
        source: RolloutMathError,
    },
}

/// A DaemonSet canary: the nodes chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSetCanary {
    /// Canary nodes (one pod each).
    pub pods: i32,
    /// The nodes, by name.
    pub nodes: Vec<String>,
}

/// Plans a canary of `size` on a DaemonSet: `size` is a share of the nodes that run it; the
/// nodes are chosen among `allowed` (the nodes `--nodes SELECTOR` selects; `None`: any), by
/// name, so that the same request chooses the same nodes. Refused while a rollout is in
/// progress, while a node lacks a Ready pod, and when fewer nodes are allowed than asked.
///
/// ```
/// use std::collections::BTreeMap;
/// use canary_core::rollout_math::{CanarySize, DaemonPod, DaemonSetFacts, plan_daemonset_canary};
///
/// let pod = Some(DaemonPod { revision: "h1".into(), ready: true, finished: false });
/// let nodes: BTreeMap<String, _> =
///     (0..10).map(|i| (format!("node-{i}"), pod.clone())).collect();
/// let facts = DaemonSetFacts {
///     name: "agent".into(), stable_revision: "h1".into(), nodes, caught_up: true,
/// };
/// let canary = plan_daemonset_canary(&facts, CanarySize::Percent(10.0), None).unwrap();
/// assert_eq!(canary.nodes, ["node-0"]);
/// ```
pub fn plan_daemonset_canary(
    facts: &DaemonSetFacts,
    size: CanarySize,
    allowed: Option<&BTreeSet<String>>,
) -> Result<DaemonSetCanary, DaemonSetRefusal> {
    let name = facts.name.clone();
    if !facts.caught_up {
        return Err(DaemonSetRefusal::NotObserved { name });
    }
    let join = |nodes: Vec<&String>| {
        nodes
            .into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let elsewhere: Vec<&String> = facts
        .nodes
        .iter()
        .filter(|(_, pod)| {
            pod.as_ref()
                .is_some_and(|p| p.revision != facts.stable_revision)
        })
        .map(|(node, _)| node)
        .collect();
    if !elsewhere.is_empty() {
        return Err(DaemonSetRefusal::RollingOut {
            name,
            nodes: join(elsewhere),
        });
    }
    let not_ready: Vec<&String> = facts
        .nodes
        .iter()
        .filter(|(_, pod)| !pod.as_ref().is_some_and(|p| p.ready && !p.finished))
        .map(|(node, _)| node)
        .collect();
    if !not_ready.is_empty() {
        return Err(DaemonSetRefusal::NotReady {
            name,
            nodes: join(not_ready),
        });
    }
    let total = facts.nodes.len();
    let canary = resolve_canary(size, total as i32, CanaryMode::Replace).map_err(|source| {
        DaemonSetRefusal::Size {
            name: name.clone(),
            source,
        }
    })?;
    let eligible: Vec<&String> = facts
        .nodes
        .keys()
        .filter(|node| allowed.is_none_or(|a| a.contains(*node)))
        .collect();
    if eligible.len() < canary.pods as usize {
        return Err(DaemonSetRefusal::TooFewNodes {
            name,
            pods: canary.pods,
            eligible: eligible.len(),
            total,
            where_: if allowed.is_some() {
                "match --nodes".to_owned()
            } else {
                "run it".to_owned()
            },
        });
    }
    Ok(DaemonSetCanary {
        pods: canary.pods,
        nodes: eligible
            .into_iter()
            .take(canary.pods as usize)
            .cloned()
            .collect(),
    })
}

/// The nodes of a canary grown to `pods` nodes: the current ones first, then the other
/// nodes that run the DaemonSet, by name (the same request grows onto the same nodes).
pub fn grown_canary_nodes(
    nodes: &BTreeMap<String, Option<DaemonPod>>,
    current: &[String],
    pods: i32,
) -> Vec<String> {
    let others = nodes.keys().filter(|node| !current.contains(node)).cloned();
    current
        .iter()
        .cloned()
        .chain(others)
        .take(pods.max(0) as usize)
        .collect()
}

/// The nodes whose pod a canary deletes to put `canary_nodes` on `canary_revision`: those
/// whose pod is on another revision (a node already on it, from a run that stopped half
/// way, is left alone, so repeating the step deletes nothing twice).
pub fn canary_deletions(
    nodes: &BTreeMap<String, Option<DaemonPod>>,
    canary_nodes: &[String],
    canary_revision: &str,
) -> Vec<String> {
    canary_nodes
        .iter()
        .filter(|node| {
            nodes
                .get(*node)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.revision != canary_revision)
        })
        .cloned()
        .collect()
}

/// The nodes whose pod an abort deletes once the template is back (still `OnDelete`): every
/// node whose pod is not on the stable revision, the chosen nodes and any that joined during
/// the canary (a joining node gets the template of that moment, the canary's).
pub fn rollback_deletions(
    nodes: &BTreeMap<String, Option<DaemonPod>>,
    stable_revision: &str,
) -> Vec<String> {
    nodes
        .iter()
        .filter(|(_, pod)| pod.as_ref().is_some_and(|p| p.revision != stable_revision))
        .map(|(node, _)| node.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "h-old";
    const NEW: &str = "h-new";

    fn pod(revision: &str) -> Option<DaemonPod> {
        Some(DaemonPod {
            revision: revision.to_owned(),
            ready: true,
            finished: false,
        })
    }

    fn nodes(n: usize) -> BTreeMap<String, Option<DaemonPod>> {
        (0..n).map(|i| (format!("node-{i:02}"), pod(OLD))).collect()
    }

    fn facts(n: usize) -> DaemonSetFacts {
        DaemonSetFacts {
            name: "agent".into(),
            stable_revision: OLD.into(),
            nodes: nodes(n),
            caught_up: true,
        }
    }

    /// Under OnDelete a new template moves no pod; deleting the chosen nodes' pods puts
    /// exactly those on the new revision; a joining node and an evicted stable pod get the
    /// template of the moment.
    #[test]
    fn on_delete_moves_exactly_the_deleted_nodes() {
        let mut model = DaemonSetModel {
            update_revision: NEW.into(),
            nodes: nodes(10),
        };
        assert!(
            model.settle(|_| true).is_empty(),
            "a new template moves nothing"
        );
        let canary = plan_daemonset_canary(&facts(10), CanarySize::Pods(2), None).unwrap();
        let deletions = canary_deletions(&model.nodes, &canary.nodes, NEW);
        assert_eq!(deletions, ["node-00", "node-01"]);
        for node in &deletions {
            model.nodes.insert(node.clone(), None);
        }
        model.settle(|_| true);
        assert_eq!(
            model.nodes_on(NEW),
            canary.nodes.iter().cloned().collect::<BTreeSet<_>>()
        );
        assert!(canary_deletions(&model.nodes, &canary.nodes, NEW).is_empty());
        // A node joins; a stable pod is evicted (phase Failed).
        model.nodes.insert("node-99".into(), None);
        model
            .nodes
            .get_mut("node-05")
            .unwrap()
            .as_mut()
            .unwrap()
            .finished = true;
        model.settle(|_| true);
        assert_eq!(model.nodes_on(NEW).len(), 4);
        // Abort: the template back, then every pod off the stable revision deleted.
        model.update_revision = OLD.into();
        let back = rollback_deletions(&model.nodes, OLD);
        assert_eq!(back, ["node-00", "node-01", "node-05", "node-99"]);
        for node in &back {
            model.nodes.insert(node.clone(), None);
        }
        model.settle(|_| true);
        assert_eq!(model.nodes_on(OLD).len(), 11);
    }

    /// A canary grows onto the nodes it has, then others by name.
    #[test]
    fn a_canary_grows_from_its_nodes() {
        let all = nodes(5);
        let grown = grown_canary_nodes(&all, &["node-03".into()], 3);
        assert_eq!(grown, ["node-03", "node-00", "node-01"]);
    }

    /// A share is a share of the nodes; `--nodes` restricts the choice; refusals say what
    /// to do.
    #[test]
    fn a_daemonset_canary_is_planned_or_refused_with_what_to_do() {
        let plan = |f: &DaemonSetFacts, size, allowed: Option<&BTreeSet<String>>| {
            plan_daemonset_canary(f, size, allowed)
        };
        let ten = facts(10);
        // (size, --nodes, the nodes chosen)
        type Case<'a> = (CanarySize, Option<Vec<&'a str>>, &'a [&'a str]);
        let cases: [Case; 4] = [
            (CanarySize::Percent(10.0), None, &["node-00"]),
            (CanarySize::Percent(25.0), None, &["node-00", "node-01"]),
            (
                CanarySize::Pods(1),
                Some(vec!["node-07", "node-03"]),
                &["node-03"],
            ),
            (
                CanarySize::Pods(2),
                Some(vec!["node-07", "node-03"]),
                &["node-03", "node-07"],
            ),
        ];
        for (size, allowed, chosen) in cases {
            let allowed: Option<BTreeSet<String>> =
                allowed.map(|a| a.into_iter().map(String::from).collect());
            let canary = plan(&ten, size, allowed.as_ref()).unwrap();
            assert_eq!(canary.nodes, chosen, "{size:?}");
            assert_eq!(canary.pods as usize, chosen.len());
        }
        let only_one: BTreeSet<String> = ["node-04".to_string()].into();
        let mut rolling = facts(4);
        rolling.nodes.insert("node-02".into(), pod(NEW));
        let mut missing = facts(4);
        missing.nodes.insert("node-03".into(), None);
        let unobserved = DaemonSetFacts {
            caught_up: false,
            ..facts(4)
        };
        type Refusal<'a> = (
            &'a DaemonSetFacts,
            CanarySize,
            Option<&'a BTreeSet<String>>,
            &'a str,
        );
        let refusals: [Refusal; 6] = [
            (
                &ten,
                CanarySize::Pods(2),
                Some(&only_one),
                "only 1 of its 10 node(s) match --nodes",
            ),
            (
                &ten,
                CanarySize::Pods(10),
                None,
                "keeps at least one stable pod",
            ),
            (
                &rolling,
                CanarySize::Pods(1),
                None,
                "node(s) node-02 run a revision",
            ),
            (
                &missing,
                CanarySize::Pods(1),
                None,
                "without a Ready pod (node-03)",
            ),
            (&unobserved, CanarySize::Pods(1), None, "has not yet seen"),
            (
                &facts(1),
                CanarySize::Pods(1),
                None,
                "keeps at least one stable pod",
            ),
        ];
        for (f, size, allowed, says) in refusals {
            let error = plan(f, size, allowed).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
            assert!(error.starts_with("ds/agent"), "{error}");
        }
    }
}
