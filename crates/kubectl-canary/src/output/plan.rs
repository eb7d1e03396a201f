//! `kubectl canary plan` for people: the plan view (options per mode, capacity, advice) and
//! the `--explain` walk-through.

use std::fmt::Write as _;

use canary_core::plan::{
    CanaryPlan, CapacityVerdict, Explanation, PauseLanding, Resources, format_cpu, format_memory,
};
use canary_core::text::percent_text;
use canary_kube::plan_subject::PlanSubject;
use comfy_table::{Table, presets::NOTHING};

fn subject_line(subject: &PlanSubject) -> String {
    match (&subject.deployment, &subject.namespace) {
        (Some(name), Some(namespace)) => format!(
            "deploy/{name} in namespace {namespace}: {} replicas",
            subject.replicas
        ),
        _ => format!(
            "a Deployment of {} replicas (offline plan)",
            subject.replicas
        ),
    }
}

fn capacity_cell(verdict: &CapacityVerdict) -> String {
    match verdict {
        CapacityVerdict::NoExtraPods => "no extra pods".to_owned(),
        CapacityVerdict::Fits { .. } => "fits".to_owned(),
        CapacityVerdict::DoesNotFit {
            extra_pods,
            fitting,
        } => format!("{fitting} of {extra_pods} fit: autoscaler must add nodes"),
        CapacityVerdict::NotChecked { .. } => "not checked".to_owned(),
    }
}

fn requests_cell(requests: Option<Resources>, extra_pods: i32) -> String {
    match requests {
        _ if extra_pods == 0 => "-".to_owned(),
        None => "unknown".to_owned(),
        Some(r) if r.is_zero() => "none requested".to_owned(),
        Some(r) => format!(
            "{} CPU, {}",
            format_cpu(r.cpu_millis),
            format_memory(r.memory_bytes)
        ),
    }
}

/// The human plan view.
pub fn plan_text(subject: &PlanSubject, canary_plan: &CanaryPlan, wide: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}; canary {}",
        subject_line(subject),
        match canary_plan.target {
            canary_core::rollout_math::CanarySize::Pods(k) => format!("of {k} pod(s)"),
            canary_core::rollout_math::CanarySize::Percent(p) =>
                format!("of {} of traffic", percent_text(p)),
        }
    );
    if let Some(requests) = canary_plan.pod_requests {
        let _ = writeln!(out, "one pod requests {requests}");
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    let mut header = vec![
        "MODE",
        "CANARY",
        "STABLE",
        "PODS",
        "EXTRA",
        "TRAFFIC",
        "EXTRA REQUESTS",
        "CAPACITY",
    ];
    if wide {
        header.push("OFF TARGET");
    }
    table.set_header(header);
    for mode in &canary_plan.modes {
        if let Some(refused) = &mode.refused {
            table.add_row(vec![mode.mode.to_string(), format!("refused: {refused}")]);
            continue;
        }
        for option in &mode.options {
            let mut row = vec![
                format!("{}{}", mode.mode, if option.chosen { " *" } else { "" }),
                option.canary_pods.to_string(),
                option.stable_pods.to_string(),
                option.total_pods.to_string(),
                option.extra_pods.to_string(),
                percent_text(option.traffic_share_percent),
                requests_cell(option.extra_requests, option.extra_pods),
                capacity_cell(&option.capacity),
            ];
            if wide {
                row.push(
                    option
                        .off_target_points
                        .map_or_else(|| "-".to_owned(), |d| format!("{d:.2} points")),
                );
            }
            table.add_row(row);
        }
    }
    let _ = writeln!(out, "{table}");
    // Blue/Green beside the canary (`start --blue-green`): a full second set, no traffic
    // until the switch, then all of it.
    let n = subject.replicas;
    if n > 0 {
        let _ = writeln!(
            out,
            "blue/green (start --blue-green): {n} new pod(s) beside the {n} old, {n} extra pod(s) ({} extra requests) \
             for the whole release; traffic 0% until the switch, then 100% in one update per Service",
            requests_cell(canary_plan.pod_requests.map(|r| r.times(n)), n)
        );
    }
    let _ = writeln!(
        out,
        "* the size `kubectl canary start --canary {} --mode MODE` would use; traffic = the canary's share of Ready pods behind a Service",
        canary_plan.target
    );
    for line in &canary_plan.advice {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn landing_cell(landing: PauseLanding) -> &'static str {
    match landing {
        PauseLanding::Rests => "lands here while new pods start",
        PauseLanding::Race => "only by winning a race",
        PauseLanding::Complete => "(rollout complete)",
    }
}

/// The human teaching view.
pub fn explanation_text(subject: &PlanSubject, explanation: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}, maxSurge {} (= {} pods), maxUnavailable {} (= {} pods)",
        subject_line(subject),
        explanation.max_surge,
        explanation.fenceposts.max_surge,
        explanation.max_unavailable,
        explanation.fenceposts.max_unavailable
    );
    let _ = writeln!(
        out,
        "\nThe native rolling update, as new pods become available one at a time:"
    );
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(vec![
        "STEP",
        "OLD",
        "NEW",
        "NEW AVAILABLE",
        "PODS",
        "NEW SHARE",
        "HAND-TYPED PAUSE",
        "",
    ]);
    for (index, step) in explanation.native.iter().enumerate() {
        table.add_row(vec![
            index.to_string(),
            step.old_pods.to_string(),
            step.new_pods.to_string(),
            step.new_available.to_string(),
            step.total_pods.to_string(),
            percent_text(step.new_share_percent),
            landing_cell(step.pause).to_owned(),
            if step.is_wanted_canary {
                "<- the canary wanted".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    let _ = writeln!(out, "{table}");
    for line in &explanation.summary {
        let _ = writeln!(out, "{line}");
    }
    let canary = explanation.canary;
    let _ = writeln!(
        out,
        "\nWhat kubectl-canary does instead ({} mode, {} canary pod(s) beside {} stable, {} of traffic):",
        canary.mode,
        canary.pods,
        canary.stable_pods,
        percent_text(canary.traffic_share() * 100.0)
    );
    for (index, step) in explanation.steps.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", index + 1, step.title);
        let _ = writeln!(out, "   {}", step.why);
        for command in &step.kubectl {
            let _ = writeln!(out, "   $ {command}");
        }
        if !step.states.is_empty() {
            let states: Vec<String> = step
                .states
                .iter()
                .map(|(old, new)| format!("({old}, {new})"))
                .collect();
            let _ = writeln!(
                out,
                "   controller writes (old, new): {}",
                states.join(" -> ")
            );
        }
    }
    out
}
