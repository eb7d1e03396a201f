//! The canary planner: what a canary of a given size really is for a Deployment.
//!
//! A canary behind a plain Service gets a share of traffic equal to its share of Ready pods,
//! so a share such as 5% is exact only for some replica counts, and surge pods cost
//! capacity. [`plan`] lays this out for both modes; [`explain`] is the teaching view that
//! contrasts the native rolling update (where a hand-typed `kubectl rollout pause` can land)
//! with the steps kubectl-canary takes. Everything here is computed from
//! [`crate::rollout_math`]; nothing performs I/O.

use crate::rollout_math::RolloutMathError;

/// Errors of the planner's inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A resource quantity that is not a Kubernetes quantity.
    #[error("invalid resource quantity {input:?}: {reason}")]
    InvalidQuantity {
        /// What was given.
        input: String,
        /// Why it is not a quantity.
        reason: &'static str,
    },
    /// The arithmetic refused the input.
    #[error(transparent)]
    RolloutMath(#[from] RolloutMathError),
}

mod advice;
mod capacity;
mod explain;
mod kinds;
mod options;
mod quantities;

pub use capacity::*;
pub use explain::*;
pub use kinds::*;
pub use options::*;
pub use quantities::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout_math::stable_pods_beside_canary;
    use crate::rollout_math::*;

    fn node(
        name: &str,
        cpu: i64,
        memory: i64,
        requested_cpu: i64,
        requested_memory: i64,
    ) -> NodeCapacity {
        NodeCapacity {
            name: name.to_owned(),
            allocatable: Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
            },
            allocatable_pods: 110,
            requested: Resources {
                cpu_millis: requested_cpu,
                memory_bytes: requested_memory,
            },
            pods: 10,
        }
    }

    const MI: i64 = 1 << 20;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("1.0005"), Ok(1001));
        assert_eq!(parse_cpu_millis("100u"), Ok(1));
        assert_eq!(parse_memory_bytes("128Mi"), Ok(128 * MI));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("1.5Gi"), Ok(1536 * MI));
        assert_eq!(parse_memory_bytes("1e3"), Ok(1000));
        assert_eq!(parse_memory_bytes("129M"), Ok(129_000_000));
        for bad in ["", "abc", "1Xi", "-1", "1.2.3", "m", "1e"] {
            assert!(parse_memory_bytes(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_memory(128 * MI), "128Mi");
        assert_eq!(format_memory(1000), "1000");
    }

    #[test]
    fn capacity_counts_pods_per_node() {
        let pod = Resources {
            cpu_millis: 500,
            memory_bytes: 256 * MI,
        };
        // Node a has 1.2 CPU free (2 pods by CPU), node b 512Mi free (2 pods by memory).
        let nodes = ClusterCapacity::Nodes {
            nodes: vec![
                node("a", 4000, 8192 * MI, 2800, 0),
                node("b", 8000, 1024 * MI, 0, 512 * MI),
            ],
        };
        assert_eq!(
            check_capacity(&nodes, Some(pod), 4),
            CapacityVerdict::Fits { extra_pods: 4 }
        );
        assert_eq!(
            check_capacity(&nodes, Some(pod), 5),
            CapacityVerdict::DoesNotFit {
                extra_pods: 5,
                fitting: 4
            }
        );
        assert_eq!(
            check_capacity(&nodes, Some(pod), 0),
            CapacityVerdict::NoExtraPods
        );
        // Without requests only the pod count limits.
        let full = ClusterCapacity::Nodes {
            nodes: vec![NodeCapacity {
                pods: 109,
                ..node("c", 1000, MI, 1000, MI)
            }],
        };
        assert_eq!(
            check_capacity(&full, Some(Resources::default()), 2),
            CapacityVerdict::DoesNotFit {
                extra_pods: 2,
                fitting: 1
            }
        );
        assert!(matches!(
            check_capacity(&ClusterCapacity::Offline, Some(pod), 1),
            CapacityVerdict::NotChecked { .. }
        ));
    }

    #[test]
    fn five_percent_of_ten_needs_nineteen_plus_one_or_twenty() {
        let plan = plan(&PlanInput {
            replicas: 10,
            target: "5%".parse().unwrap(),
            pod_requests: Some(Resources {
                cpu_millis: 100,
                memory_bytes: 128 * MI,
            }),
            cluster: ClusterCapacity::Offline,
        })
        .unwrap();
        let surge = &plan.modes[0];
        assert_eq!(surge.mode, CanaryMode::Surge);
        let chosen = surge.options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            (chosen.canary_pods, chosen.stable_pods, chosen.extra_pods),
            (1, 10, 1)
        );
        assert!((chosen.traffic_share_percent - 100.0 / 11.0).abs() < 1e-9);
        assert_eq!(
            chosen.extra_requests,
            Some(Resources {
                cpu_millis: 100,
                memory_bytes: 128 * MI
            })
        );
        assert_eq!(
            surge
                .options
                .iter()
                .map(|o| o.canary_pods)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            surge.exact,
            Some(ExactSizing {
                replicas: 19,
                stable_pods: 19,
                canary_pods: 1
            })
        );
        let replace = &plan.modes[1];
        let chosen = replace.options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            (chosen.canary_pods, chosen.stable_pods, chosen.extra_pods),
            (1, 9, 0)
        );
        assert_eq!(chosen.capacity, CapacityVerdict::NoExtraPods);
        assert_eq!(
            replace.exact,
            Some(ExactSizing {
                replicas: 20,
                stable_pods: 19,
                canary_pods: 1
            })
        );
        assert!(
            plan.advice[0].contains("5% is not achievable with 10 replicas"),
            "{:?}",
            plan.advice
        );
        assert!(
            plan.advice[1].contains("19+1") && plan.advice[1].contains("20 (replace"),
            "{:?}",
            plan.advice
        );
    }

    #[test]
    fn exact_sizing_scales_to_the_current_replicas() {
        assert_eq!(
            exact_sizing(5.0, 38, CanaryMode::Surge),
            Some(ExactSizing {
                replicas: 38,
                stable_pods: 38,
                canary_pods: 2
            })
        );
        assert_eq!(
            exact_sizing(2.5, 10, CanaryMode::Replace),
            Some(ExactSizing {
                replicas: 40,
                stable_pods: 39,
                canary_pods: 1
            })
        );
        assert_eq!(
            exact_sizing(50.0, 4, CanaryMode::Surge),
            Some(ExactSizing {
                replicas: 4,
                stable_pods: 4,
                canary_pods: 4
            })
        );
        // Above 50% a surge canary cannot be exact; 100% is never a canary.
        assert_eq!(exact_sizing(60.0, 10, CanaryMode::Surge), None);
        assert_eq!(exact_sizing(100.0, 10, CanaryMode::Replace), None);
        // 33.333% would need 100000 replicas or more.
        assert_eq!(exact_sizing(33.333, 10, CanaryMode::Replace), None);
    }

    #[test]
    fn surge_that_does_not_fit_says_autoscaler_and_suggests_replace() {
        let plan = plan(&PlanInput {
            replicas: 4,
            target: CanarySize::Pods(2),
            pod_requests: Some(Resources {
                cpu_millis: 1000,
                memory_bytes: 0,
            }),
            cluster: ClusterCapacity::Nodes {
                nodes: vec![node("a", 4000, 0, 3500, 0)],
            },
        })
        .unwrap();
        let chosen = plan.modes[0].options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            chosen.capacity,
            CapacityVerdict::DoesNotFit {
                extra_pods: 2,
                fitting: 0
            }
        );
        let advice = plan.advice.join("\n");
        assert!(
            advice.contains("cluster autoscaler would have to add nodes"),
            "{advice}"
        );
        assert!(
            advice.contains("Replace mode needs no extra pods"),
            "{advice}"
        );
        // A pod count is its own exact size: no replica suggestion.
        assert_eq!(plan.modes[0].exact, None);
    }

    #[test]
    fn refused_modes_are_explained() {
        let plan = plan(&PlanInput {
            replicas: 1,
            target: CanarySize::Pods(1),
            pod_requests: None,
            cluster: ClusterCapacity::Unavailable {
                reason: "nodes is forbidden".to_owned(),
            },
        })
        .unwrap();
        assert!(
            plan.modes[1]
                .refused
                .as_deref()
                .unwrap()
                .contains("at least one stable pod")
        );
        assert!(plan.modes[1].options.is_empty());
        let advice = plan.advice.join("\n");
        assert!(
            advice.contains("capacity check skipped: nodes is forbidden"),
            "{advice}"
        );
    }

    proptest::proptest! {
        #[test]
        fn exact_sizing_is_exact(
            hundredths in 1u32..=10_000,
            replicas in 1..500i32,
            surge in proptest::bool::ANY,
        ) {
            let percent = f64::from(hundredths) / 100.0;
            let mode = if surge { CanaryMode::Surge } else { CanaryMode::Replace };
            if let Some(exact) = exact_sizing(percent, replicas, mode) {
                // canary / (stable + canary) == hundredths / 10000, in integers.
                let total = i64::from(exact.stable_pods + exact.canary_pods);
                proptest::prop_assert_eq!(
                    i64::from(exact.canary_pods) * 10_000,
                    i64::from(hundredths) * total
                );
                proptest::prop_assert!(exact.canary_pods >= 1 && exact.stable_pods >= 1);
                let expected_stable =
                    stable_pods_beside_canary(mode, exact.replicas, exact.canary_pods);
                proptest::prop_assert_eq!(exact.stable_pods, expected_stable);
                // resolve_canary agrees: at that size the share is hit exactly.
                let resolved = resolve_canary(CanarySize::Percent(percent), exact.replicas, mode).unwrap();
                proptest::prop_assert_eq!(resolved.pods, exact.canary_pods);
            }
        }
    }

    fn explain_input(
        max_surge: &str,
        max_unavailable: &str,
        replicas: i32,
        canary: ResolvedCanary,
    ) -> ExplainInput {
        ExplainInput {
            deployment: Some("web".to_owned()),
            replicas,
            max_surge: max_surge.parse().unwrap(),
            max_unavailable: max_unavailable.parse().unwrap(),
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            containers: vec!["app".to_owned()],
            selector: Some("app=web".to_owned()),
            canary,
            brake_seconds: 1_000_000_000,
        }
    }

    #[test]
    fn explain_default_strategy_never_rests_at_one_canary() {
        let canary = resolve_canary(CanarySize::Pods(1), 10, CanaryMode::Surge).unwrap();
        let view = explain(&explain_input("25%", "25%", 10, canary)).unwrap();
        assert_eq!(
            view.fenceposts,
            Fenceposts {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        assert!(!view.native_rests_at_canary);
        assert_eq!(view.native[0].pause, PauseLanding::Race);
        assert_eq!((view.native[3].old_pods, view.native[3].new_pods), (8, 5));
        assert_eq!(view.native[3].pause, PauseLanding::Rests);
        assert_eq!(view.native.last().unwrap().pause, PauseLanding::Complete);
        assert!(
            view.summary[2].contains("never rests at 10 stable + 1 canary"),
            "{:?}",
            view.summary
        );
        let brake = &view.steps[1];
        assert_eq!(brake.states, [(10, 0), (10, 1)]);
        assert!(
            brake.kubectl[1].contains(r#""maxSurge":1,"maxUnavailable":0"#),
            "{}",
            brake.kubectl[1]
        );
        assert!(brake.kubectl[1].contains(r#"{"name":"app","image":"NEW_IMAGE"}"#));
        assert!(view.steps[3].kubectl[0] == "kubectl rollout pause deployment/web");
        assert!(view.steps[4].kubectl[0].contains(r#""maxSurge":"25%","maxUnavailable":"25%""#));
    }

    #[test]
    fn explain_one_surge_rests_at_one_canary() {
        let canary = resolve_canary(CanarySize::Pods(1), 3, CanaryMode::Surge).unwrap();
        let view = explain(&explain_input("1", "0", 3, canary)).unwrap();
        assert!(view.native_rests_at_canary);
        let at_canary: Vec<&NativeStep> =
            view.native.iter().filter(|s| s.is_wanted_canary).collect();
        assert_eq!(at_canary.len(), 1);
        assert_eq!((at_canary[0].old_pods, at_canary[0].new_pods), (3, 1));
        assert!((at_canary[0].new_share_percent - 25.0).abs() < 1e-9);
        let replace = resolve_canary(CanarySize::Pods(2), 10, CanaryMode::Replace).unwrap();
        let view = explain(&explain_input("25%", "25%", 10, replace)).unwrap();
        assert_eq!(view.steps[1].states, [(10, 0), (8, 0), (8, 2)]);
        assert!(view.steps[1].kubectl[1].contains(r#""maxSurge":0,"maxUnavailable":2"#));
    }

    #[test]
    fn explain_refuses_what_the_api_refuses() {
        let canary = resolve_canary(CanarySize::Pods(1), 3, CanaryMode::Surge).unwrap();
        assert!(matches!(
            explain(&explain_input("0", "0", 3, canary)),
            Err(PlanError::RolloutMath(
                RolloutMathError::InvalidStrategy { .. }
            ))
        ));
    }

    #[test]
    fn plan_serializes_with_camel_case_and_tags() {
        let plan = plan(&PlanInput {
            replicas: 10,
            target: "5%".parse().unwrap(),
            pod_requests: None,
            cluster: ClusterCapacity::Offline,
        })
        .unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["target"], "5%");
        assert_eq!(json["modes"][0]["mode"], "surge");
        assert_eq!(
            json["modes"][0]["options"][0]["capacity"]["status"],
            "notChecked"
        );
        assert_eq!(json["modes"][1]["exact"]["replicas"], 20);
        let verdict = CapacityVerdict::DoesNotFit {
            extra_pods: 2,
            fitting: 1,
        };
        assert_eq!(
            serde_json::to_value(&verdict).unwrap(),
            serde_json::json!({"status": "doesNotFit", "extraPods": 2, "fitting": 1})
        );
    }
}
