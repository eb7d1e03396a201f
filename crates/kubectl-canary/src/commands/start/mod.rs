//! `kubectl canary start`.

pub mod apply;
mod auto;

use std::time::Duration;

use canary_core::gate::ApprovalGates;
use canary_core::rollout_math::{CanaryMode, CanarySize, resolve_canary, step_sizes};
use canary_core::text::{images_text, share_text};
use canary_kube::engine::{CanaryPods, DriveOptions, Engine, StartPlan};
use canary_kube::error::CanaryError;
use canary_kube::observe::DeploymentView;
use canary_kube::ops::{self, start::InterruptedStart};
use canary_kube::traffic::{self, FrontService};

use crate::config::start::StartConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    CommandOutcome, CommandResult, change_fields, notice, print_result, print_structured,
    progress_printer, released_text,
};

/// Runs `start`; returns the exit code.
pub async fn run(config: &Config, start: &StartConfig) -> Result<i32, CanaryError> {
    let planned = plan(config, start).await?;
    let notifier = planned.engine.notifier().clone();
    let result = execute(config, start, planned).await;
    crate::notices::flush(&notifier).await;
    result
}

/// A start checked and worked out, nothing changed yet.
pub(crate) struct PlannedStart {
    engine: Engine,
    plan: StartPlan,
    view: DeploymentView,
    steps: Vec<i32>,
    /// The steps that wait for an approval (`--approve-before`), checked against `steps`.
    gates: ApprovalGates,
    /// The Services in front of the Deployment this start pins (--dark, --sticky,
    /// --blue-green), found and checked before anything changes.
    services: Vec<FrontService>,
}

/// Checks everything `start` needs and works out what it will do, changing nothing.
pub(crate) async fn plan(
    config: &Config,
    start: &StartConfig,
) -> Result<PlannedStart, CanaryError> {
    let sender = if start.run.auto_analysis.is_some() {
        canary_core::notify::Sender::CliAuto
    } else {
        canary_core::notify::Sender::Cli
    };
    let notifier =
        crate::notices::notifier(config, &start.run.notify, &start.deployment, sender).await?;
    let engine =
        Engine::new(&config.client, &config.namespace, &start.deployment).with_notifier(notifier);
    let mut request = start.request_in(&config.namespace)?;
    if start.traffic.blue_green {
        // A full second set: a surge canary as large as the Deployment.
        request.size = CanarySize::Pods(engine.view().await?.replicas());
        request.mode = CanaryMode::Surge;
    }
    let (mut plan, view) = engine.plan_start(&request, start.run.dry_run).await?;
    let services = if start.traffic.changes_services() {
        let found =
            traffic::plan_for_start(&config.client, &config.namespace, &view, start.traffic)
                .await?;
        plan.record.traffic = Some(start.traffic);
        found
    } else {
        Vec::new()
    };
    let steps = step_sizes(&start.run.steps, &plan.canary)
        .map_err(|e| CanaryError::Refused(e.to_string()))?;
    let approve_before: Vec<&str> = start
        .run
        .approve_before
        .iter()
        .map(String::as_str)
        .collect();
    let gates = ApprovalGates::parse_with(&approve_before, &steps, |size| {
        resolve_canary(size, plan.canary.replicas, plan.canary.mode)
            .ok()
            .map(|c| c.pods)
    })
    .map_err(|e| CanaryError::Usage(e.to_string()))?;
    Ok(PlannedStart {
        engine,
        plan,
        view,
        steps,
        gates,
        services,
    })
}

/// Carries out a planned start (or prints it, with `--dry-run`); returns the exit code.
pub(crate) async fn execute(
    config: &Config,
    start: &StartConfig,
    planned: PlannedStart,
) -> Result<i32, CanaryError> {
    let PlannedStart {
        engine,
        plan,
        view,
        steps,
        gates,
        services,
    } = planned;
    let name = &start.deployment;
    let canary = plan.canary;
    let human = !matches!(config.output, OutputFormat::Json | OutputFormat::Yaml);
    let dark = !services.is_empty() && plan.record.traffic.is_some_and(|t| t.dark);
    if human {
        let share = if dark {
            format!(
                "0% of Service traffic (dark; {} of the pods)",
                share_text(canary.traffic_share())
            )
        } else {
            format!("{} of traffic", share_text(canary.traffic_share()))
        };
        println!(
            "start deploy/{name}: {} canary pod(s) changing {} beside {} stable ({} mode): {share}, {} extra pod(s)",
            canary.pods,
            plan.record.change_summary(),
            canary.stable_pods,
            canary.mode,
            canary.extra_pods()
        );
        if let Some(hpa) = &plan.autoscaler {
            let size = plan
                .record
                .requested_size
                .map_or_else(|| canary.pods.to_string(), |s| s.to_string());
            notice(&canary_core::validate::autoscaler_notice(
                name,
                hpa,
                &size,
                start.run.auto_analysis.is_some(),
            ));
        }
        if start.manifest.is_none() && start.release.images_only() {
            println!(
                "  by hand: kubectl set image deploy/{name} {} && kubectl rollout pause deploy/{name}   (a race: the pause lands whenever it lands)",
                images_text(&start.release.images)
            );
        }
    }
    if start.run.dry_run {
        if !print_structured(config.output, &plan) {
            println!("dry run: nothing changed. The pod template would change:");
            for change in &plan.template_changes {
                println!("    {}", change.line());
            }
            println!("It would:");
            for service in &services {
                println!(
                    "  0. update service/{} ({}), recording its selector and affinity in its {} annotation",
                    service.name,
                    start.traffic.describe(),
                    canary_core::traffic::PIN_ANNOTATION
                );
            }
            println!(
                "  1. create configmap/{} recording the original settings and the stable ReplicaSet {} (revision {})",
                engine.store().name(),
                plan.stable.replica_set,
                plan.stable.revision
            );
            for (i, change) in plan.changes.iter().enumerate() {
                println!("  {}. update deploy/{name}: {}", i + 2, change.summary);
                println!("     {}", change_fields(change));
            }
        }
        return Ok(exit_code::OK);
    }
    // From here on the first SIGINT/SIGTERM settles into a safe state (crate::signals).
    let _handling = crate::signals::Handling::begin();
    let mut printer = progress_printer(config.output);
    let uid = view.uid();
    let pinned_uid = (!services.is_empty()).then_some(uid.as_str());
    if !services.is_empty() {
        let pin = ops::start::pin_services(
            &engine,
            &uid,
            start.traffic,
            &plan.stable.pod_template_hash,
            &services,
        );
        let pinned = tokio::select! {
            result = pin => result,
            _ = crate::signals::interrupted() => {
                return interrupted(&engine, config, pinned_uid).await;
            }
        };
        let pinned = match pinned {
            Ok(pinned) => pinned,
            Err(failed) => {
                if let Some(released) = &failed.released {
                    notice(released_text(released, "put back as it was").trim_end());
                }
                return Err(failed.error);
            }
        };
        if human {
            for service in &pinned {
                println!("  ✓ service/{service}: {}", start.traffic.describe());
            }
        }
        if start.traffic.sticky_seconds.is_some() {
            for (ingress, service) in ops::start::settle_sticky(&engine, &pinned).await? {
                notice(&format!(
                    "  ! ingress/{ingress} routes to service/{service}: an ingress controller that balances to pod IPs \
                     itself (ingress-nginx, Traefik, most gateways) ignores sessionAffinity; set affinity there \
                     (e.g. nginx.ingress.kubernetes.io/affinity: cookie) for clients coming through it"
                ));
            }
        }
    }
    let started = tokio::select! {
        result = engine.start(plan.clone(), &view, DriveOptions { timeout: config.timeout, progress: &mut printer }) => result,
        _ = crate::signals::interrupted() => {
            return interrupted(&engine, config, pinned_uid).await;
        }
    };
    let started = match started {
        Ok(started) => started,
        Err(e) => {
            if !services.is_empty() {
                release_after_failed_start(&engine, &uid).await;
            }
            return Err(e);
        }
    };
    if human {
        println!(
            "  ✓ held: exactly {} canary pod(s) and {} stable, Deployment paused (no brake while held)\n    by hand: kubectl rollout pause deploy/{name}",
            canary.pods, canary.stable_pods
        );
    }
    if let Some(spec) = &start.run.auto_analysis {
        return auto::run(config, start, &engine, started, &steps, &gates, spec).await;
    }
    let mut code = exit_code::OK;
    if start.run.wait {
        let ready = tokio::select! {
            ready = wait_for_canary_pods(&engine, started.clone(), config.timeout, human, &mut printer) => ready?,
            _ = crate::signals::interrupted() => {
                notice(&format!("interrupted: the canary stays held and recorded; see `kubectl canary status deploy/{name}`"));
                return Ok(exit_code::INTERRUPTED);
            }
        };
        if !ready {
            code = exit_code::CANARY_UNHEALTHY;
        }
    }
    let mut report = engine.status_report().await?;
    config.remember(&engine).await;
    // The Services this start pinned dark select only the stable pods: 0% of requests.
    report.with_dark_pin(dark);
    if !print_structured(config.output, &report) {
        print!("{}", crate::output::status_text(&report, false));
    }
    Ok(code)
}

/// Waits until the canary pods are Ready, reporting the first problem (unschedulable,
/// crash-looping, image pull failure, a ReplicaSet that cannot create pods) as soon as it
/// shows. A foreign change ends the wait as it ends the engine's. Returns whether they are
/// ready.
async fn wait_for_canary_pods(
    engine: &Engine,
    mut started: canary_kube::store::StoredRecord,
    timeout: Duration,
    human: bool,
    progress: &mut (dyn FnMut(&canary_kube::engine::Progress) + Send),
) -> Result<bool, CanaryError> {
    let outcome = engine
        .wait_for_canary_pods(&mut started, timeout, progress)
        .await?;
    let record = &started.record;
    // The size held now (a followed change of replicas can change it).
    let pods = record.held_pods().unwrap_or(1);
    if human {
        match &outcome {
            CanaryPods::Unhealthy { problem } => {
                println!("  ✗ the canary is held but unhealthy: {problem}");
                println!(
                    "    look closer with `kubectl canary status deploy/{}`; roll back with `kubectl canary abort deploy/{}`",
                    record.deployment, record.deployment
                );
            }
            CanaryPods::CannotCreate { failure } => {
                println!("  ✗ the canary is held but has no pod: {failure}");
                println!(
                    "    fix the cause (quota, limit range, admission policy) and the ReplicaSet retries; \
                     or roll back with `kubectl canary abort deploy/{}`",
                    record.deployment
                );
            }
            CanaryPods::Ready { ready } if record.traffic.is_some_and(|t| t.dark) => println!(
                "  ✓ {ready}/{pods} canary pod(s) Ready; dark: no Service traffic until promote (check them through the pod proxy)"
            ),
            CanaryPods::Ready { ready } => {
                println!("  ✓ {ready}/{pods} canary pod(s) Ready and receiving traffic")
            }
            CanaryPods::NotReadyInTime { ready } => println!(
                "  ✗ only {ready}/{pods} canary pod(s) Ready after {}s",
                timeout.as_secs()
            ),
        }
    }
    Ok(matches!(outcome, CanaryPods::Ready { .. }))
}

/// Ctrl-C during `start`: leave either nothing changed or a recorded, paused canary
/// ([`canary_kube::ops::start::settle_interrupted`]), and say which.
/// `pinned`: the Deployment's UID when this start pins Services (they are put back too).
async fn interrupted(
    engine: &Engine,
    config: &Config,
    pinned: Option<&str>,
) -> Result<i32, CanaryError> {
    // The listener said it is settling; a second signal ends the process from there.
    let settled = ops::start::settle_interrupted(engine, pinned, config.timeout).await?;
    let name = engine.name();
    let message = match settled {
        InterruptedStart::NothingChanged {
            released: Some(released),
        } => {
            notice(released_text(&released, "put back as it was").trim_end());
            "interrupted before the Deployment was changed: the Services are as they were".into()
        }
        InterruptedStart::NothingChanged { released: None } => {
            "interrupted before any change: nothing was changed".into()
        }
        InterruptedStart::RecordDiscarded { released } => {
            if let Some(released) = released {
                notice(released_text(&released, "put back as it was").trim_end());
            }
            "interrupted before the Deployment was changed: removed the record, nothing is changed"
                .into()
        }
        InterruptedStart::Held { pods } => format!(
            "interrupted after the Deployment was changed: left a recorded, paused canary of {pods} pod(s); \
             continue with `kubectl canary promote deploy/{name} ...` or roll back with `kubectl canary abort deploy/{name}`"
        ),
    };
    notice(&message);
    let result = CommandResult {
        command: "start",
        namespace: config.namespace.clone(),
        deployment: name.to_string(),
        outcome: CommandOutcome::Interrupted,
        message,
        status: None,
    };
    print_result(config.output, &result);
    Ok(exit_code::INTERRUPTED)
}

/// A start that failed before any update of the Deployment takes its Service pins back off
/// ([`canary_kube::ops::start::release_after_failed_start`]), and says so.
async fn release_after_failed_start(engine: &Engine, uid: &str) {
    if let Some(released) = ops::start::release_after_failed_start(engine, uid).await {
        notice(released_text(&released, "put back as it was").trim_end());
    }
}
