//! Advice: what a person should consider, from the plan of both modes.

use super::*;
use crate::rollout_math::{CanaryMode, CanarySize};
use crate::text::percent_text;

pub(super) fn advise(input: &PlanInput, modes: &[ModePlan]) -> Vec<String> {
    let mut advice = Vec::new();
    let chosen = |mode: &ModePlan| mode.options.iter().find(|o| o.chosen).cloned();
    let surge = modes.iter().find(|m| m.mode == CanaryMode::Surge);
    let replace = modes.iter().find(|m| m.mode == CanaryMode::Replace);

    if let CanarySize::Percent(target) = input.target {
        let exact_now = modes
            .iter()
            .filter_map(chosen)
            .any(|o| o.off_target_points.is_some_and(|d| d < 1e-9));
        if !exact_now {
            let achieved: Vec<String> = modes
                .iter()
                .filter_map(|m| {
                    chosen(m).map(|o| {
                        format!(
                            "{} {} pod(s) gives {}",
                            m.mode,
                            o.canary_pods,
                            percent_text(o.traffic_share_percent)
                        )
                    })
                })
                .collect();
            advice.push(format!(
                "{} is not achievable with {} replicas: {}.",
                percent_text(target),
                input.replicas,
                achieved.join(", ")
            ));
        }
        let exact: Vec<String> = modes
            .iter()
            .filter_map(|m| {
                m.exact.map(|e| match m.mode {
                    CanaryMode::Surge => format!(
                        "{}+{} (surge: {} replicas and {} canary)",
                        e.stable_pods, e.canary_pods, e.replicas, e.canary_pods
                    ),
                    CanaryMode::Replace => format!(
                        "{} (replace: {} replicas, {} of them canary)",
                        e.replicas, e.replicas, e.canary_pods
                    ),
                })
            })
            .collect();
        if !exact.is_empty() {
            advice.push(format!(
                "{} is exact with {}.",
                percent_text(target),
                exact.join(" or ")
            ));
        }
    }

    if let Some(option) = surge.and_then(chosen) {
        match &option.capacity {
            CapacityVerdict::DoesNotFit {
                extra_pods,
                fitting,
            } => advice.push(format!(
                "Surge mode adds {extra_pods} pod(s){}, but the cluster's free allocatable capacity holds only {fitting}: the cluster autoscaler would have to add nodes (a cost), or the canary stays Pending. Replace mode needs no extra pods.",
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::Fits { extra_pods } => advice.push(format!(
                "Surge mode adds {extra_pods} pod(s){}; the free allocatable capacity holds them (taints and affinity not considered).",
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::NotChecked { reason } => advice.push(format!(
                "Surge mode adds {} pod(s){}; capacity check skipped: {reason}.",
                option.extra_pods,
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::NoExtraPods => {}
        }
    }
    if input.pod_requests.is_some_and(Resources::is_zero) {
        advice.push(
            "The pod template requests no CPU or memory: the scheduler cannot see what canary pods cost.".to_owned(),
        );
    }
    if let Some(refused) = replace.and_then(|m| m.refused.as_ref()) {
        advice.push(format!("Replace mode: {refused}."));
    }
    if let Some(refused) = surge.and_then(|m| m.refused.as_ref()) {
        advice.push(format!("Surge mode: {refused}."));
    }
    advice
}
