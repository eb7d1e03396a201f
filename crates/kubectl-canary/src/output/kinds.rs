//! The human view of a StatefulSet or DaemonSet canary's status: what is wrong first, the
//! canary as recorded, each pod with its side, then what to run next.

use std::fmt::Write;

use canary_core::plan::KindPlan;
use canary_kube::kinds_drive::KindPreview;
use canary_kube::kinds_status::KindStatus;

/// A plan as text: one line per size around the target (`*` what `start` takes), with
/// its share and the pods or nodes it takes.
pub fn plan_text(plan: &KindPlan) -> String {
    let mut out = format!(
        "{}: {} {}; canary of {} (in place: no extra pods)\n",
        plan.workload, plan.total, plan.unit, plan.target
    );
    if let Some(refused) = &plan.refused {
        let _ = writeln!(out, "! {refused}");
        return out;
    }
    let _ = writeln!(out, " CANARY  STABLE  SHARE    TAKES");
    for option in &plan.options {
        let o = &option.option;
        let _ = writeln!(
            out,
            " {:<7} {:<7} {:<8} {}",
            format!("{}{}", o.canary_pods, if o.chosen { " *" } else { "" }),
            o.stable_pods,
            format!("{}%", round2(o.traffic_share_percent)),
            option.which.join(", ")
        );
    }
    if let Some(exact) = &plan.exact {
        let _ = writeln!(
            out,
            "{} is exact with {} replicas ({} of them canary)",
            plan.target, exact.replicas, exact.canary_pods
        );
    }
    out
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A dry run's answer as text: the first step, the fields it writes, the pods it deletes.
pub fn preview_text(command: &str, preview: &KindPreview) -> String {
    let mut out = String::new();
    if let Some(foreign) = preview.foreign {
        let _ = writeln!(out, "! {}", foreign.explain(&preview.workload));
    }
    let _ = writeln!(
        out,
        "dry run: `{command} {}` would first: {}; nothing was changed",
        preview.workload, preview.first
    );
    for change in &preview.changes {
        let _ = writeln!(out, "  {}", change.line());
    }
    if preview.records {
        let _ = writeln!(
            out,
            "  ~ metadata.annotations[kubectl-canary.io/canary]: the canary's record, with this command's goal"
        );
    }
    for pod in &preview.deletions {
        let _ = writeln!(out, "  - pod/{pod} (deleted; its volumes kept)");
    }
    out
}

/// The status as text.
pub fn status_text(status: &KindStatus) -> String {
    let mut out = String::new();
    for problem in &status.problems {
        let _ = writeln!(out, "! {problem}");
    }
    match &status.canary {
        Some(canary) => {
            let (pods, ready) = status.canary_pods();
            let _ = writeln!(
                out,
                "{}: canary of {pods} pod(s) ({ready} Ready), asked {}; started by {} at {}",
                status.workload,
                goal_words(&canary.goal),
                canary.started_by,
                canary.started_at
            );
        }
        None => {
            let _ = writeln!(out, "{}: no canary", status.workload);
        }
    }
    let _ = writeln!(
        out,
        "stable revision {}{}",
        status.stable_revision,
        status
            .canary_revision
            .as_ref()
            .map(|r| format!(", canary revision {r}"))
            .unwrap_or_default()
    );
    let width = status
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "{:<width$}  SIDE    READY  NODE", "POD");
    for pod in &status.pods {
        let ready = if pod.terminating {
            "gone"
        } else if pod.ready {
            "yes"
        } else {
            "no"
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:<5}  {}",
            pod.name, pod.side, ready, pod.node
        );
    }
    for next in &status.next {
        let _ = writeln!(out, "next: {next}");
    }
    out
}

/// A recorded goal in words: `hold 2 pod(s)`, `hold on node-1, node-2`, `promote`, `abort`.
fn goal_words(goal: &serde_json::Value) -> String {
    match goal["goal"].as_str() {
        Some("hold") if goal["pods"].is_number() => format!("hold {} pod(s)", goal["pods"]),
        Some("hold") => format!(
            "hold on {}",
            goal["nodes"]
                .as_array()
                .map(|n| n
                    .iter()
                    .filter_map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        Some("promoteFull") => "promote to every pod".to_string(),
        Some("abort") => "abort".to_string(),
        _ => goal.to_string(),
    }
}
