use super::*;
use proptest::prelude::*;

fn iop(text: &str) -> IntOrPercent {
    text.parse().expect("valid IntOrPercent")
}

fn sizes(states: &[RolloutState]) -> Vec<(i32, i32)> {
    states.iter().map(RolloutState::sizes).collect()
}

#[test]
fn int_or_percent_parses_and_round_trips() {
    assert_eq!(iop("3"), IntOrPercent::Int(3));
    assert_eq!(iop("25%"), IntOrPercent::Percent(25));
    assert_eq!(iop("-1"), IntOrPercent::Int(-1));
    for text in ["0", "3", "25%", "0%", "150%"] {
        assert_eq!(iop(text).to_string(), text);
    }
    for bad in ["", "%", "-5%", "2.5%", "abc", "3 ", "x%"] {
        assert!(
            bad.parse::<IntOrPercent>().is_err(),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn int_or_percent_serializes_like_kubernetes() {
    assert_eq!(serde_json::to_string(&IntOrPercent::Int(1)).unwrap(), "1");
    assert_eq!(
        serde_json::to_string(&IntOrPercent::Percent(25)).unwrap(),
        "\"25%\""
    );
    assert_eq!(
        serde_json::from_str::<IntOrPercent>("\"10%\"").unwrap(),
        IntOrPercent::Percent(10)
    );
    assert_eq!(
        serde_json::from_str::<IntOrPercent>("2").unwrap(),
        IntOrPercent::Int(2)
    );
    // intstr refuses a string that is not a percentage.
    assert!(serde_json::from_str::<IntOrPercent>("\"2\"").is_err());
}

#[test]
fn scaled_value_rounds_like_intstr() {
    // 25% of 10 = 2.5: maxSurge rounds up to 3, maxUnavailable down to 2.
    assert_eq!(IntOrPercent::Percent(25).scaled_value(10, true), 3);
    assert_eq!(IntOrPercent::Percent(25).scaled_value(10, false), 2);
    assert_eq!(IntOrPercent::Percent(20).scaled_value(10, true), 2);
    assert_eq!(IntOrPercent::Percent(1).scaled_value(1, true), 1);
    assert_eq!(IntOrPercent::Percent(1).scaled_value(1, false), 0);
    assert_eq!(IntOrPercent::Percent(0).scaled_value(7, true), 0);
    assert_eq!(IntOrPercent::Int(4).scaled_value(100, true), 4);
}

#[test]
fn fenceposts_follow_resolve_fenceposts() {
    // (maxSurge, maxUnavailable, replicas) -> (surge, unavailable)
    let cases = [
        ("25%", "25%", 10, 3, 2),
        ("25%", "25%", 1, 1, 0),
        // The examples in ResolveFenceposts' doc comment.
        ("0%", "1%", 2, 0, 1),
        ("1%", "25%", 2, 1, 0),
        ("1%", "0%", 1, 1, 0),
        // Both round to zero: maxUnavailable becomes 1.
        ("0", "10%", 5, 0, 1),
        // MaxUnavailable's guards: never more than replicas, 0 for 0 replicas.
        ("0", "5", 3, 0, 3),
        ("0", "10%", 0, 0, 0),
        ("150%", "0", 4, 6, 0),
    ];
    for (surge, unavailable, replicas, max_surge, max_unavailable) in cases {
        assert_eq!(
            resolve_fenceposts(iop(surge), iop(unavailable), replicas).unwrap(),
            Fenceposts {
                max_surge,
                max_unavailable
            },
            "{surge}/{unavailable} of {replicas}"
        );
    }
    assert_eq!(
        resolve_fenceposts(iop("1"), iop("0"), -1),
        Err(RolloutMathError::NegativeReplicas { replicas: -1 })
    );
}

#[test]
fn validation_reports_the_api_servers_messages() {
    let violations = |s: IntOrPercent, u: IntOrPercent| match validate_rolling_update(s, u) {
        Ok(()) => Vec::new(),
        Err(RolloutMathError::InvalidStrategy { violations }) => {
            violations.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("unexpected error {other}"),
    };
    assert_eq!(
        violations(iop("0"), iop("0")),
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
        ]
    );
    assert_eq!(
        violations(iop("0%"), iop("0%")),
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
        ]
    );
    assert_eq!(
        violations(iop("1"), iop("101%")),
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%"
        ]
    );
    assert_eq!(
        violations(iop("-1"), iop("1")),
        [
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"
        ]
    );
    // A negative maxUnavailable is not zero: only the sign rule is broken.
    assert_eq!(
        violations(iop("0"), iop("-2")),
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: -2: must be greater than or equal to 0"
        ]
    );
    assert_eq!(violations(iop("200%"), iop("0")), Vec::<String>::new());
    assert_eq!(violations(iop("0"), iop("100%")), Vec::<String>::new());
    let err = resolve_fenceposts(iop("0"), iop("0"), 3).unwrap_err();
    assert!(
        err.to_string()
            .contains("may not be 0 when `maxSurge` is 0"),
        "{err}"
    );
}

#[test]
fn canary_mode_and_size_parse() {
    assert_eq!("surge".parse::<CanaryMode>().unwrap(), CanaryMode::Surge);
    assert_eq!(
        "replace".parse::<CanaryMode>().unwrap(),
        CanaryMode::Replace
    );
    assert!("Surge".parse::<CanaryMode>().is_err());
    assert_eq!(
        serde_json::to_string(&CanaryMode::Replace).unwrap(),
        "\"replace\""
    );
    assert_eq!("1".parse::<CanarySize>().unwrap(), CanarySize::Pods(1));
    assert_eq!(
        "10%".parse::<CanarySize>().unwrap(),
        CanarySize::Percent(10.0)
    );
    assert_eq!(
        "2.5%".parse::<CanarySize>().unwrap(),
        CanarySize::Percent(2.5)
    );
    assert_eq!(
        "100%".parse::<CanarySize>().unwrap(),
        CanarySize::Percent(100.0)
    );
    for bad in [
        "0", "-1", "0%", "-5%", "100.5%", "101%", "abc", "nan%", "inf%", "1e1%", "%", "",
    ] {
        assert!(
            bad.parse::<CanarySize>().is_err(),
            "{bad:?} must be refused"
        );
    }
    assert_eq!(CanarySize::Percent(2.5).to_string(), "2.5%");
    assert_eq!(
        serde_json::to_string(&CanarySize::Percent(5.0)).unwrap(),
        "\"5%\""
    );
}

#[test]
fn percent_resolves_to_the_nearest_traffic_share() {
    let pods = |size: &str, n, mode| resolve_canary(size.parse().unwrap(), n, mode).map(|c| c.pods);
    // Surge 10 replicas: 1 pod = 9.09% is the smallest share there is.
    assert_eq!(pods("5%", 10, CanaryMode::Surge), Ok(1));
    // Surge 10: 2 pods = 16.7%, 3 pods = 23.1%; 20% is nearer 23.1% (3.1 vs 3.3 points).
    assert_eq!(pods("20%", 10, CanaryMode::Surge), Ok(3));
    // Replace 10: 15% lies exactly between 1 (10%) and 2 (20%): tie goes to fewer pods.
    assert_eq!(pods("15%", 10, CanaryMode::Replace), Ok(1));
    assert_eq!(pods("25%", 10, CanaryMode::Replace), Ok(2));
    // Surge cannot exceed 50%: 80% gives k = N.
    assert_eq!(pods("80%", 4, CanaryMode::Surge), Ok(4));
    // Replace keeps one stable pod: 100% of 4 gives 3.
    assert_eq!(pods("100%", 4, CanaryMode::Replace), Ok(3));
    // 5% of 19 surge is exact: 1/(19+1).
    let exact = resolve_canary("5%".parse().unwrap(), 19, CanaryMode::Surge).unwrap();
    assert_eq!(exact.pods, 1);
    assert!((exact.traffic_share() - 0.05).abs() < 1e-12);
    assert_eq!(exact.extra_pods(), 1);
    let replace = resolve_canary(CanarySize::Pods(1), 20, CanaryMode::Replace).unwrap();
    assert_eq!(replace.stable_pods, 19);
    assert_eq!(replace.extra_pods(), 0);
    assert!((replace.traffic_share() - 0.05).abs() < 1e-12);
}

#[test]
fn canary_sizes_out_of_range_are_refused_with_advice() {
    let err = resolve_canary(CanarySize::Pods(11), 10, CanaryMode::Surge).unwrap_err();
    assert_eq!(
        err,
        RolloutMathError::CanaryLargerThanDeployment {
            canary_pods: 11,
            replicas: 10
        }
    );
    assert!(err.to_string().contains("use at most 10 pods"), "{err}");
    assert!(resolve_canary(CanarySize::Pods(10), 10, CanaryMode::Surge).is_ok());
    let err = resolve_canary(CanarySize::Pods(10), 10, CanaryMode::Replace).unwrap_err();
    assert!(err.to_string().contains("use at most 9 pods"), "{err}");
    assert_eq!(
        resolve_canary(CanarySize::Pods(1), 1, CanaryMode::Replace),
        Err(RolloutMathError::ReplaceLeavesNoStablePod {
            canary_pods: 1,
            replicas: 1
        })
    );
    assert_eq!(
        resolve_canary(CanarySize::Percent(50.0), 1, CanaryMode::Replace),
        Err(RolloutMathError::ReplaceLeavesNoStablePod {
            canary_pods: 1,
            replicas: 1
        })
    );
    assert_eq!(
        resolve_canary(CanarySize::Pods(1), 0, CanaryMode::Surge),
        Err(RolloutMathError::NoReplicas)
    );
    assert!(resolve_canary(CanarySize::Pods(0), 5, CanaryMode::Surge).is_err());
    assert!(resolve_canary(CanarySize::Percent(f64::NAN), 5, CanaryMode::Surge).is_err());
}

#[test]
fn brake_strategy_is_k_and_zero() {
    assert_eq!(
        brake_strategy(CanaryMode::Surge, 2),
        Fenceposts {
            max_surge: 2,
            max_unavailable: 0
        }
    );
    assert_eq!(
        brake_strategy(CanaryMode::Replace, 2),
        Fenceposts {
            max_surge: 0,
            max_unavailable: 2
        }
    );
}

#[test]
fn new_rs_target_follows_new_rs_new_replicas() {
    let fp = Fenceposts {
        max_surge: 3,
        max_unavailable: 2,
    };
    let snap = |new_rs, old_rs| RolloutSnapshot {
        replicas: 10,
        new_rs,
        new_available: 0,
        old_rs,
        old_available: old_rs,
    };
    // The example in reconcileOldReplicaSets: 10 replicas, surge 3, unavailable 2.
    assert_eq!(new_rs_target(&snap(0, 10), fp), 3);
    assert_eq!(new_rs_target(&snap(3, 8), fp), 5);
    assert_eq!(new_rs_target(&snap(5, 8), fp), 5);
    // Capped by N - new.
    assert_eq!(new_rs_target(&snap(9, 0), fp), 10);
    // Above N it is scaled down to N.
    assert_eq!(new_rs_target(&snap(12, 0), fp), 10);
}

#[test]
fn old_scale_down_waits_for_availability() {
    let fp = Fenceposts {
        max_surge: 3,
        max_unavailable: 2,
    };
    // Case 1 of the Go comment: new pods crashloop, an old pod fails: nothing moves.
    let stuck = RolloutSnapshot {
        replicas: 10,
        new_rs: 5,
        new_available: 0,
        old_rs: 8,
        old_available: 7,
    };
    assert_eq!(old_rs_max_scale_down(&stuck, fp), 0);
    // Settled old RS after the template change: old goes to N - unavailable.
    let start = RolloutSnapshot {
        replicas: 10,
        new_rs: 3,
        new_available: 0,
        old_rs: 10,
        old_available: 10,
    };
    assert_eq!(old_rs_max_scale_down(&start, fp), 2);
    // Two new pods available: old may lose two more.
    let progress = RolloutSnapshot {
        replicas: 10,
        new_rs: 5,
        new_available: 2,
        old_rs: 8,
        old_available: 8,
    };
    assert_eq!(old_rs_max_scale_down(&progress, fp), 2);
    // Unhealthy old pods go first: 1 unhealthy, bound 13-8-3 = 2.
    let unhealthy = RolloutSnapshot {
        replicas: 10,
        new_rs: 5,
        new_available: 2,
        old_rs: 8,
        old_available: 7,
    };
    assert_eq!(old_rs_max_scale_down(&unhealthy, fp), 1 + 1);
    assert_eq!(
        old_rs_max_scale_down(
            &RolloutSnapshot {
                replicas: 3,
                new_rs: 3,
                new_available: 3,
                old_rs: 0,
                old_available: 0
            },
            fp
        ),
        0
    );
}

#[test]
fn native_sequences_worked_out_from_rolling_go() {
    // 1/0 with 3 replicas: surge one, wait, drop one old, surge again.
    let states = native_rollout_sequence(3, iop("1"), iop("0")).unwrap();
    assert_eq!(
        sizes(&states),
        [(3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]
    );
    let resting: Vec<bool> = states.iter().map(|s| s.resting).collect();
    assert_eq!(resting, [false, true, false, true, false, true, false]);
    // 0/1 with 3 replicas: the new RS is created at 0, the old one drops first.
    let states = native_rollout_sequence(3, iop("0"), iop("1")).unwrap();
    assert_eq!(
        sizes(&states),
        [(3, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]
    );
    // 25%/25% with 10 replicas = surge 3, unavailable 2: 3 new at once, old to 8, new to 5.
    let states = native_rollout_sequence(10, iop("25%"), iop("25%")).unwrap();
    assert_eq!(&sizes(&states)[..4], &[(10, 0), (10, 3), (8, 3), (8, 5)]);
    assert!(states[3].resting);
    // One new pod available: old 8 -> 7 (available 7 + 1 = 8 = minAvailable), new 5 -> 6.
    assert_eq!(&sizes(&states)[4..6], &[(7, 5), (7, 6)]);
    assert_eq!(states.last().unwrap().sizes(), (0, 10));
    // 1 replica, 25%/25% = surge 1, unavailable 0.
    assert_eq!(
        sizes(&native_rollout_sequence(1, iop("25%"), iop("25%")).unwrap()),
        [(1, 0), (1, 1), (0, 1)]
    );
    // 0/0 is refused exactly as the API server refuses it.
    assert!(matches!(
        native_rollout_sequence(5, iop("0"), iop("0")),
        Err(RolloutMathError::InvalidStrategy { .. })
    ));
}

#[test]
fn brake_holds_the_canary_at_k() {
    for (mode, expected) in [
        (
            CanaryMode::Surge,
            vec![ControllerWrite::CreateNew { replicas: 2 }],
        ),
        (
            CanaryMode::Replace,
            vec![
                ControllerWrite::CreateNew { replicas: 0 },
                ControllerWrite::ScaleOld {
                    index: 0,
                    from: 10,
                    to: 8,
                },
                ControllerWrite::ScaleNew { from: 0, to: 2 },
            ],
        ),
    ] {
        let mut model = DeploymentModel::settled(10, brake_strategy(mode, 2));
        assert_eq!(model.rolling_until_quiescent(), expected, "{mode}");
        let snap = model.snapshot();
        assert_eq!(snap.new_rs, 2);
    }
}

#[test]
fn brake_sequence_lists_every_write() {
    assert_eq!(brake_sequence(10, CanaryMode::Surge, 2), [(10, 0), (10, 2)]);
    assert_eq!(
        brake_sequence(10, CanaryMode::Replace, 2),
        [(10, 0), (8, 0), (8, 2)]
    );
    assert_eq!(brake_sequence(1, CanaryMode::Surge, 1), [(1, 0), (1, 1)]);
}

#[test]
fn roll_over_cleans_up_unhealthy_old_pods_first() {
    // Case 2 of reconcileOldReplicaSets' comment: 10 replicas, surge 3, unavailable 2;
    // A has 8 available pods, B (the previous new one) 5 crashlooping pods; a new
    // template arrives. C starts at 0 (13 pods already), B's 5 unhealthy pods go
    // (13 - 8 - 0 = 5), and C can then grow by 5.
    let fenceposts = Fenceposts {
        max_surge: 3,
        max_unavailable: 2,
    };
    let mut model = DeploymentModel {
        replicas: 10,
        fenceposts,
        status_replicas: 13,
        old: vec![
            ReplicaSetModel {
                available: 8,
                ..replica_set("a", 1, 8, 13)
            },
            ReplicaSetModel {
                available: 0,
                ..replica_set("b", 2, 5, 13)
            },
        ],
        new: None,
    };
    assert_eq!(
        model.rolling_sync(),
        vec![
            ControllerWrite::CreateNew { replicas: 0 },
            ControllerWrite::ScaleOld {
                index: 1,
                from: 5,
                to: 0
            },
        ]
    );
    assert_eq!(
        model.rolling_sync(),
        vec![ControllerWrite::ScaleNew { from: 0, to: 5 }]
    );
    assert_eq!(model.rolling_sync(), vec![]);
    assert_eq!(model.snapshot().old_rs, 8);
}

fn replica_set(name: &str, created: u64, replicas: i32, max_replicas: i32) -> ReplicaSetModel {
    ReplicaSetModel {
        name: name.to_owned(),
        created,
        replicas,
        available: replicas,
        desired_replicas: Some(10),
        max_replicas: Some(max_replicas),
    }
}

#[test]
fn proportional_scale_spreads_a_scale_up() {
    // A paused surge canary (10 stable + 2 canary, annotation max 12) scaled to 20
    // replicas with maxSurge 2: allowed 22, 10 to add; stable gets round(10*22/12)=18 -> +8
    // (capped by allowed 10), canary round(2*22/12)=4 -> +2 (capped by the 2 left).
    let sets = [
        replica_set("stable", 1, 10, 12),
        replica_set("canary", 2, 2, 12),
    ];
    assert_eq!(proportional_scale(20, 2, 12, &sets).sizes, vec![18, 4]);
    // Raising maxSurge alone while paused also rescales both sides: 10+2 -> allowed 13.
    assert_eq!(proportional_scale(10, 3, 12, &sets).sizes, vec![11, 2]);
    // Scale down to 5 replicas, maxSurge 2: allowed 7, remove 5; stable
    // round(10*7/12)=6 -> -4, canary round(2*7/12)=1 -> -1.
    assert_eq!(proportional_scale(5, 2, 12, &sets).sizes, vec![6, 1]);
    // Missing annotation falls back to status.replicas.
    let mut no_annotation = sets.clone();
    no_annotation[0].max_replicas = None;
    assert_eq!(
        proportional_scale(20, 2, 12, &no_annotation).sizes,
        vec![18, 4]
    );
    // Equal sizes shrinking (allowed 5, have 6): both round to 3, so the leftover -1 goes
    // to the first in ReplicaSetsBySizeOlder order, the older one.
    let equal = [replica_set("a", 1, 3, 6), replica_set("b", 2, 3, 6)];
    assert_eq!(proportional_scale(4, 1, 6, &equal).sizes, vec![2, 3]);
}

#[test]
fn paused_scale_matches_sync_scale() {
    let mut model = DeploymentModel::settled(10, brake_strategy(CanaryMode::Surge, 2));
    model.rolling_until_quiescent();
    model.status_replicas = 12;
    model.replicas = 20;
    model.fenceposts = Fenceposts {
        max_surge: 2,
        max_unavailable: 0,
    };
    model.scale();
    assert_eq!(model.snapshot().old_rs, 18);
    assert_eq!(model.snapshot().new_rs, 4);
    // A single active ReplicaSet simply takes all replicas.
    let mut single = DeploymentModel::settled(
        4,
        Fenceposts {
            max_surge: 1,
            max_unavailable: 0,
        },
    );
    single.replicas = 6;
    assert_eq!(
        single.scale(),
        vec![ControllerWrite::ScaleOld {
            index: 0,
            from: 4,
            to: 6
        }]
    );
}

fn strategy_value() -> impl Strategy<Value = IntOrPercent> {
    prop_oneof![
        (0..6i32).prop_map(IntOrPercent::Int),
        (0..=100i32).prop_map(IntOrPercent::Percent),
    ]
}

proptest! {
    #[test]
    fn native_rollout_invariants(
        replicas in 0..40i32,
        max_surge in strategy_value(),
        max_unavailable in strategy_value(),
    ) {
        let valid = validate_rolling_update(max_surge, max_unavailable).is_ok();
        let result = native_rollout_sequence(replicas, max_surge, max_unavailable);
        prop_assert_eq!(valid, result.is_ok());
        let Ok(states) = result else { return Ok(()) };
        let fp = resolve_fenceposts(max_surge, max_unavailable, replicas).unwrap();
        prop_assert_eq!(states.first().map(RolloutState::sizes), Some((replicas, 0)));
        prop_assert_eq!(states.last().map(RolloutState::sizes), Some((0, replicas)));
        for state in &states {
            // Never above N + surge pods.
            prop_assert!(state.old_rs + state.new_rs <= replicas + fp.max_surge, "{state:?}");
            // Never below N - unavailable available pods (old pods are all available).
            prop_assert!(state.old_rs + state.new_available >= replicas - fp.max_unavailable, "{state:?}");
            prop_assert!(state.new_rs <= replicas && state.old_rs >= 0 && state.new_rs >= 0);
        }
        // The new ReplicaSet only grows, the old ones only shrink.
        for pair in states.windows(2) {
            prop_assert!(pair[1].new_rs >= pair[0].new_rs && pair[1].old_rs <= pair[0].old_rs);
        }
    }

    #[test]
    fn resolved_canary_is_nearest_and_in_range(
        replicas in 1..200i32,
        percent in 0.01f64..=100.0,
        surge in any::<bool>(),
    ) {
        let mode = if surge { CanaryMode::Surge } else { CanaryMode::Replace };
        match resolve_canary(CanarySize::Percent(percent), replicas, mode) {
            Ok(canary) => {
                prop_assert!(canary_pod_range(replicas, mode).contains(&canary.pods));
                let error = (canary.traffic_share() - percent / 100.0).abs();
                for other in canary_pod_range(replicas, mode) {
                    let share = ResolvedCanary::of(other, replicas, mode).traffic_share();
                    prop_assert!(error <= (share - percent / 100.0).abs() + 1e-12);
                }
            }
            Err(err) => {
                prop_assert_eq!(mode, CanaryMode::Replace);
                prop_assert_eq!(replicas, 1);
                prop_assert_eq!(err, RolloutMathError::ReplaceLeavesNoStablePod { canary_pods: 1, replicas: 1 });
            }
        }
    }

    #[test]
    fn proportional_scale_reaches_the_allowed_size(
        replicas in 1..60i32,
        max_surge in 0..10i32,
        old in 1..40i32,
        new in 1..40i32,
    ) {
        let before = old + new;
        let sets = [replica_set("old", 1, old, before), replica_set("new", 2, new, before)];
        let sizes = proportional_scale(replicas, max_surge, before, &sets).sizes;
        prop_assert_eq!(sizes.iter().sum::<i32>(), replicas + max_surge);
        prop_assert!(sizes.iter().all(|&s| s >= 0));
    }
}
