//! The checks `start` makes before it changes anything. Each refusal says what is wrong
//! and what to do.

use std::collections::BTreeMap;

use thiserror::Error;

/// What `start` needs to know about a Deployment to accept or refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFacts {
    /// The Deployment's name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.strategy.type`.
    pub strategy_type: String,
    /// `spec.paused`.
    pub paused: bool,
    /// `metadata.generation` has been observed by the controller.
    pub caught_up: bool,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// ReplicaSets of the Deployment that still have pods.
    pub replica_sets_with_pods: usize,
    /// Container name to image, in the pod template.
    pub images: BTreeMap<String, String>,
}

/// A HorizontalPodAutoscaler that targets the Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscalerFacts {
    /// The HPA's name.
    pub name: String,
    /// `spec.minReplicas`.
    pub min_replicas: i32,
    /// `spec.maxReplicas`.
    pub max_replicas: i32,
}

/// What an HPA does to a canary started with `--allow-hpa`, said before anything changes:
/// while held with no command running, a change of `spec.replicas` is spread by the paused
/// Deployment's controller over both sides in proportion (its `scale()`), so the canary can
/// run more or fewer pods than asked; a command that runs (`--auto` here, or the GitOps
/// controller) follows it and keeps the size asked (docs/holding.md).
pub fn autoscaler_notice(
    deployment: &str,
    hpa: &AutoscalerFacts,
    size: &str,
    watched: bool,
) -> String {
    let while_held = if watched {
        "this run watches it and holds the size asked again after each change".to_string()
    } else {
        format!(
            "when no kubectl-canary command runs, nothing puts it back: `kubectl canary status deploy/{deployment}` \
             shows the size asked and the size running, and `kubectl canary promote deploy/{deployment} --canary {size}` \
             holds the size asked again (start --auto and the GitOps controller watch and do it themselves)"
        )
    };
    format!(
        "HorizontalPodAutoscaler '{}' (min {}, max {}) scales deploy/{deployment}: when it changes spec.replicas while \
         the canary is held, the Deployment's controller spreads the change over the stable and canary ReplicaSets in \
         proportion (even while paused), so the canary runs more or fewer pods than --canary {size}; {while_held}",
        hpa.name, hpa.min_replicas, hpa.max_replicas
    )
}

/// Why `start` refused a Deployment.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StartRefusal {
    /// A named container is not in the pod template.
    #[error(
        "container '{container}' is not in the pod template of deploy/{deployment}; its containers are: {known}"
    )]
    UnknownContainer {
        /// The Deployment.
        deployment: String,
        /// The name given.
        container: String,
        /// The containers that exist.
        known: String,
    },
    /// Every named container already runs the requested image.
    #[error(
        "deploy/{deployment} already runs {images}: a canary needs a different image (nothing to release)"
    )]
    SameImage {
        /// The Deployment.
        deployment: String,
        /// The images as `container=image`.
        images: String,
    },
    /// `spec.replicas` is 0.
    #[error(
        "deploy/{0} has 0 replicas: there is no stable version to compare a canary with; scale it up first"
    )]
    NoReplicas(String),
    /// The strategy is `Recreate`, which never runs old and new pods together.
    #[error(
        "deploy/{0} uses strategy Recreate, which never runs old and new pods side by side, so it cannot hold a canary; \
         switch it to RollingUpdate first (kubectl patch deploy/{0} -p '{{\"spec\":{{\"strategy\":{{\"type\":\"RollingUpdate\",\"rollingUpdate\":null}}}}}}')"
    )]
    Recreate(String),
    /// Paused by someone else.
    #[error(
        "deploy/{0} is paused by someone else (spec.paused is true and no kubectl-canary record exists); \
         finish or resume that rollout first (kubectl rollout resume deploy/{0})"
    )]
    PausedElsewhere(String),
    /// A rollout is in progress.
    #[error(
        "deploy/{deployment} is in the middle of a rollout ({detail}); wait for it to finish \
         (kubectl rollout status deploy/{deployment}) and start the canary from a settled Deployment"
    )]
    RolloutInProgress {
        /// The Deployment.
        deployment: String,
        /// What is not settled.
        detail: String,
    },
    /// An HPA targets the Deployment and `--allow-hpa` was not given.
    #[error(
        "HorizontalPodAutoscaler '{hpa}' (min {min}, max {max}) scales deploy/{deployment}: when it changes spec.replicas \
         during the canary, the Deployment controller rescales the stable and canary ReplicaSets proportionally \
         (even while paused), so while no kubectl-canary command runs the canary is no longer exactly the size \
         asked for (a running command follows the change; `promote --canary SIZE` puts the size back). Pass \
         --allow-hpa to start anyway, or pin the HPA \
         (minReplicas = maxReplicas) for the duration of the canary"
    )]
    Autoscaled {
        /// The Deployment.
        deployment: String,
        /// The HPA.
        hpa: String,
        /// `minReplicas`.
        min: i32,
        /// `maxReplicas`.
        max: i32,
    },
}

/// Checks that a canary with these image changes (none for a release of other fields)
/// can start on this Deployment.
pub fn check_start(
    facts: &DeploymentFacts,
    images: &BTreeMap<String, String>,
    autoscaler: Option<&AutoscalerFacts>,
    allow_autoscaler: bool,
) -> Result<(), StartRefusal> {
    let deployment = facts.name.clone();
    for container in images.keys() {
        if !facts.images.contains_key(container) {
            return Err(StartRefusal::UnknownContainer {
                deployment,
                container: container.clone(),
                known: facts.images.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
    }
    // No images: a release of other fields, checked by what it makes of the template.
    if !images.is_empty() && images.iter().all(|(c, i)| facts.images.get(c) == Some(i)) {
        return Err(StartRefusal::SameImage {
            deployment,
            images: crate::text::images_text(images),
        });
    }
    if facts.replicas == 0 {
        return Err(StartRefusal::NoReplicas(deployment));
    }
    if facts.strategy_type == "Recreate" {
        return Err(StartRefusal::Recreate(deployment));
    }
    if facts.paused {
        return Err(StartRefusal::PausedElsewhere(deployment));
    }
    let unsettled = if !facts.caught_up {
        Some("the controller has not observed the latest spec yet".to_string())
    } else if facts.replica_sets_with_pods > 1 {
        Some(format!(
            "{} ReplicaSets still have pods",
            facts.replica_sets_with_pods
        ))
    } else if facts.updated_replicas != facts.replicas || facts.status_replicas != facts.replicas {
        Some(format!(
            "{} of {} pods updated, {} pods exist",
            facts.updated_replicas, facts.replicas, facts.status_replicas
        ))
    } else if facts.available_replicas < facts.replicas {
        Some(format!(
            "{} of {} pods available",
            facts.available_replicas, facts.replicas
        ))
    } else {
        None
    };
    if let Some(detail) = unsettled {
        return Err(StartRefusal::RolloutInProgress { deployment, detail });
    }
    if let (Some(hpa), false) = (autoscaler, allow_autoscaler) {
        return Err(StartRefusal::Autoscaled {
            deployment,
            hpa: hpa.name.clone(),
            min: hpa.min_replicas,
            max: hpa.max_replicas,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DeploymentFacts {
        DeploymentFacts {
            name: "web".into(),
            replicas: 10,
            strategy_type: "RollingUpdate".into(),
            paused: false,
            caught_up: true,
            updated_replicas: 10,
            available_replicas: 10,
            status_replicas: 10,
            replica_sets_with_pods: 1,
            images: BTreeMap::from([("nginx".into(), "nginx:1.14".into())]),
        }
    }

    fn images(container: &str, image: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(container.to_string(), image.to_string())])
    }

    #[test]
    fn accepts_a_settled_deployment() {
        assert_eq!(
            check_start(&facts(), &images("nginx", "nginx:1.15"), None, false),
            Ok(())
        );
    }

    #[test]
    fn refuses_each_bad_case_with_its_own_reason() {
        let new = images("nginx", "nginx:1.15");
        let check = |f: DeploymentFacts| check_start(&f, &new, None, false).unwrap_err();
        assert!(matches!(
            check_start(&facts(), &images("app", "x:1"), None, false),
            Err(StartRefusal::UnknownContainer { .. })
        ));
        assert!(matches!(
            check_start(&facts(), &images("nginx", "nginx:1.14"), None, false),
            Err(StartRefusal::SameImage { .. })
        ));
        assert!(matches!(
            check(DeploymentFacts {
                replicas: 0,
                ..facts()
            }),
            StartRefusal::NoReplicas(_)
        ));
        assert!(matches!(
            check(DeploymentFacts {
                strategy_type: "Recreate".into(),
                ..facts()
            }),
            StartRefusal::Recreate(_)
        ));
        assert!(matches!(
            check(DeploymentFacts {
                paused: true,
                ..facts()
            }),
            StartRefusal::PausedElsewhere(_)
        ));
        assert!(matches!(
            check(DeploymentFacts {
                replica_sets_with_pods: 2,
                ..facts()
            }),
            StartRefusal::RolloutInProgress { .. }
        ));
        assert!(matches!(
            check(DeploymentFacts {
                available_replicas: 9,
                ..facts()
            }),
            StartRefusal::RolloutInProgress { .. }
        ));
        let hpa = AutoscalerFacts {
            name: "web".into(),
            min_replicas: 2,
            max_replicas: 10,
        };
        assert!(matches!(
            check_start(&facts(), &new, Some(&hpa), false),
            Err(StartRefusal::Autoscaled { .. })
        ));
        assert_eq!(check_start(&facts(), &new, Some(&hpa), true), Ok(()));
    }
}
