//! A recorded canary with Git's template on the Deployment: drive it to its step, analyse
//! after the interval, promote, or hold it on the stable pods after a failure.

use std::time::Duration;

use canary_core::notify::Moment;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use canary_core::machine::{Decision, Goal};
use canary_core::record::{CanaryRecord, Phase, replica_set_template_matches};
use canary_core::step_policy::NextStep;
use canary_core::verdict::Decision as Verdict;
use canary_kube::analysis::{AnalysisTarget, RunOptions, run_analysis};
use canary_kube::gitops::spec_source::read_analysis_spec;
use canary_kube::gitops::writes::Written;
use canary_kube::observe::template_json;
use canary_kube::{ops, write};
use kube::ResourceExt;

use super::stable::{self, FAILED_NOTE};
use super::{Outcome, Reconciling, SOON, now};

/// How long an abort recorded by the CLI is left to the CLI before the controller holds the
/// Deployment on its stable pods itself.
const CLI_ABORT_GRACE: Duration = Duration::from_secs(120);

/// Time since the record's last history line.
fn since_last_note(record: &CanaryRecord) -> Option<Duration> {
    let at = record.history.last()?.at.parse::<Timestamp>().ok()?;
    let ms = Timestamp::now().as_millisecond() - at.as_millisecond();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The first problem that makes the held canary unhealthy, judged from its pods and
/// ReplicaSet as `kubectl canary status` judges them (`canary_core::problems`).
fn canary_problem(
    release: &Reconciling<'_>,
    record: &CanaryRecord,
) -> Option<canary_core::problems::Problem> {
    let view = &release.view;
    let mut situation = canary_kube::problems::situation(
        view,
        view.replica_set_with_template(&record.original_template),
        view.replica_set_with_template(&record.target_template()),
    );
    situation.ready_deadline_secs = record
        .original_settings
        .progress_deadline_seconds
        .map_or(600, i64::from);
    let problems = canary_core::problems::judge(&situation, Some(Timestamp::now().as_second()));
    canary_core::problems::first_unhealthy(&problems).cloned()
}

/// Most history lines kept in a controller-run record (inconclusive rounds add one each).
const MAX_HISTORY: usize = 100;

/// Continues a recorded canary according to its phase.
pub(super) async fn continue_canary(release: &Reconciling<'_>) -> Outcome {
    let stored = release.stored.as_ref().expect("continue needs a record");
    let Some(record) = trusted(release, &stored.record).await else {
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    release.phase_metric(Some(record.phase));
    if let Some(outcome) = super::rescale::follow_replicas(release, &record).await {
        return outcome;
    }
    match record.phase {
        Phase::Starting { pods } | Phase::Promoting { to: pods, .. } => {
            drive(release, &record, Goal::Hold { pods }).await
        }
        Phase::Holding { pods } => analyse_when_due(release, record, pods).await,
        Phase::PromotingFull => drive(release, &record, Goal::PromoteFull).await,
        Phase::Aborting if stable::aborted_here(&record) => {
            stable::hold_on_stable(release, &record).await
        }
        // `kubectl canary abort` reverts the template itself (the policy releases the brake
        // in that write): leave it to the CLI, unless it left the abort unfinished.
        Phase::Aborting => match since_last_note(&record) {
            Some(age) if age < CLI_ABORT_GRACE => Ok(Action::requeue(CLI_ABORT_GRACE - age)),
            _ => stable::hold_on_stable(release, &record).await,
        },
    }
}

/// The record with what must not come from a ConfigMap replaced or checked: the settings to
/// put back come from the brake's annotations on the Deployment, and the stable template
/// must be the recorded stable ReplicaSet's (same UID). `None` (with a warning) when the
/// record disagrees with the cluster.
pub(super) async fn trusted(
    release: &Reconciling<'_>,
    record: &CanaryRecord,
) -> Option<CanaryRecord> {
    let name = release.name();
    let uid = release.view.uid();
    if record.deployment_uid != uid {
        release
            .warn_once(
                "CanaryRecordStale",
                format!(
                    "the canary record {}.kubectl-canary belongs to an earlier deploy/{name}; delete it",
                    name
                ),
            )
            .await;
        return None;
    }
    let stable_matches = release
        .view
        .replica_sets
        .iter()
        .find(|rs| rs.uid().as_deref() == Some(record.stable.uid.as_str()))
        .and_then(|rs| rs.spec.as_ref()?.template.as_ref().map(template_json))
        .is_some_and(|template| replica_set_template_matches(&template, &record.original_template));
    if !stable_matches {
        release
            .warn_once(
                "CanaryRecordChanged",
                format!(
                    "the canary record of deploy/{name} does not match its stable ReplicaSet {} (changed outside \
                     kubectl-canary, or the ReplicaSet is gone): the controller changes nothing; revert the \
                     commit in Git to go back to the stable version",
                    record.stable.replica_set
                ),
            )
            .await;
        return None;
    }
    let mut trusted = record.clone();
    if let Some(brake) = &release.brake {
        trusted.original_settings = brake.original.clone();
    }
    Some(trusted)
}

/// One step of the state machine towards `goal`.
async fn drive(release: &Reconciling<'_>, record: &CanaryRecord, goal: Goal) -> Outcome {
    // The CLI's drive loops take the same turn, one after another.
    let (goal, decision) = ops::step::turn(record, goal, &release.view);
    match decision {
        Decision::Apply(change) => {
            if matches!(record.phase, Phase::Promoting { .. })
                && canary_kube::test_hooks::steps_held()
            {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            let promoting = goal == Goal::PromoteFull;
            if promoting && release.brake.is_none() {
                // The settings to put back come only from the brake's annotations; without
                // them the Deployment is left as it is.
                return Ok(Action::requeue(SOON));
            }
            tracing::info!(deployment = %release.key, summary = %change.summary, "updating");
            match release.update_deployment(&change, promoting).await? {
                Written::Stored(_) | Written::Conflict => Ok(Action::requeue(SOON)),
            }
        }
        Decision::Wait(_) | Decision::Reached
            if goal == Goal::PromoteFull && release.brake.is_some() =>
        {
            // The settings are back (someone else put them back) but the brake's annotations
            // are not gone: remove them, or the policy would keep these settings for every
            // later writer and brake no later commit.
            release
                .release_brake("remove the brake's annotations")
                .await?;
            Ok(Action::requeue(SOON))
        }
        Decision::Wait(_) => Ok(Action::requeue(SOON)),
        // A change of replicas spread over both sides by the Deployment controller (paused,
        // it scales proportionally): one side back to its size, as the CLI's engine does.
        Decision::Resize(resize) => {
            tracing::info!(deployment = %release.key, summary = %resize.summary, "resizing");
            ops::step::resize(
                write::CONTROLLER,
                &release.apis.replica_sets,
                &release.view,
                &resize,
            )
            .await?;
            Ok(Action::requeue(SOON))
        }
        Decision::Stuck(stuck) => {
            release
                .warn_once_moment(
                    "CanaryStuck",
                    stuck.explain(&release.name()),
                    Moment::Stuck,
                    record,
                )
                .await;
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        Decision::Reached => match goal {
            Goal::Hold { pods } => {
                let held = record.held(pods, &now());
                release.save(held.clone()).await?;
                release
                    .normal_moment(
                        "CanaryHeld",
                        format!("kubectl-canary-controller: holding {pods} canary pod(s); analysis after the interval"),
                        Moment::Held,
                        &held,
                    )
                    .await;
                Ok(Action::requeue(SOON))
            }
            Goal::PromoteFull => {
                let stored = release.stored.as_ref().expect("a record");
                release.store.delete(stored).await?;
                release.finished_metric("promoted");
                release
                    .normal_moment(
                        "CanaryPromoted",
                        format!(
                            "kubectl-canary-controller: the release ({}) promoted to every pod; the Deployment's own settings are back",
                            record.change_summary()
                        ),
                        Moment::Promoted,
                        record,
                    )
                    .await;
                Ok(Action::await_change())
            }
            Goal::Abort => unreachable!("abort is handled by the stable hold"),
        },
    }
}

/// Analyses a held step once its interval has passed since it was held (or since the last
/// inconclusive round); acts on the verdict.
async fn analyse_when_due(release: &Reconciling<'_>, record: CanaryRecord, pods: i32) -> Outcome {
    let Ok(policy) = &release.policy else {
        release
            .warn_once(
                "InvalidCanaryPolicy",
                format!(
                    "{}; the canary stays held at {pods} pod(s) until the annotation is fixed",
                    release.policy.as_ref().err().cloned().unwrap_or_default()
                ),
            )
            .await;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    // Still at the held size? (Anything else is the machine's to repair.)
    if !matches!(
        ops::step::turn(&record, Goal::Hold { pods }, &release.view),
        (_, Decision::Reached)
    ) {
        return drive(release, &record, Goal::Hold { pods }).await;
    }
    // What is wrong with the canary is said at once (a Warning Event), not only by the
    // analysis after the interval.
    if let Some(problem) = canary_problem(release, &record) {
        release
            .warn_once(
                "CanaryUnhealthy",
                format!(
                    "the canary of deploy/{} is unhealthy ({} on {}): {}; the analysis after the interval \
                     will judge it, or revert the commit in Git to go back to the stable version",
                    release.name(),
                    problem.code.as_str(),
                    problem
                        .pod
                        .as_deref()
                        .or(problem.replica_set.as_deref())
                        .unwrap_or("the canary"),
                    // The first words only: the counts in the rest change on every crash,
                    // and a standing problem is reported once.
                    problem.message.split(" (").next().unwrap_or_default()
                ),
            )
            .await;
    }
    // A step that passed and waits for its approval: no analysis until it is taken (what is
    // wrong with the canary is still said, above).
    if let Some(gate) = &record.gate {
        return super::gate::at_gate(release, &record, policy, gate, pods).await;
    }
    let since = record
        .history
        .last()
        .and_then(|entry| entry.at.parse::<Timestamp>().ok())
        .unwrap_or_else(Timestamp::now);
    let elapsed_ms = (Timestamp::now().as_millisecond() - since.as_millisecond()).max(0) as u64;
    let interval_ms = policy.interval.as_millis() as u64;
    if elapsed_ms < interval_ms {
        return Ok(Action::requeue(Duration::from_millis(
            interval_ms - elapsed_ms,
        )));
    }
    let (decision, reason) = match &policy.analysis {
        None => (
            Verdict::Pass,
            "no analysis configured: promoted after the interval".to_string(),
        ),
        Some(config_map) => {
            let namespace = release.apis.namespace.clone();
            let spec = match read_analysis_spec(
                &release.ctx.client,
                &namespace,
                config_map,
                release.ctx.prometheus.as_ref(),
            )
            .await
            {
                Ok(spec) => spec,
                Err(error) => {
                    release
                        .warn_once(
                            "InvalidAnalysisSpec",
                            format!(
                                "{error}; the canary stays held at {pods} pod(s) until it is fixed"
                            ),
                        )
                        .await;
                    return Ok(Action::requeue(policy.interval));
                }
            };
            let target = match AnalysisTarget::from_record(&release.view, &record) {
                Ok(target) => target,
                Err(error) => return not_analysable_yet(release, error.to_string()).await,
            };
            match analyse(release.ctx.client.clone(), target, spec).await {
                Ok(verdict) => (verdict.decision, verdict.reason),
                Err(error) => (Verdict::Inconclusive, error),
            }
        }
    };
    release.ctx.metrics.verdict(&decision.to_string());
    // One line per verdict, with its numbers (the reason): at WARN when it fails.
    if decision == Verdict::Fail {
        tracing::warn!(deployment = %release.key, %decision, pods, %reason, "analysis verdict");
    } else {
        tracing::info!(deployment = %release.key, %decision, pods, %reason, "analysis verdict");
    }
    let sizes = policy
        .step_sizes(record.replicas)
        .unwrap_or_else(|_| vec![pods]);
    let mut next = record.clone();
    // `start --auto` takes the same step (and drives to its goal at once).
    let after = ops::step::after_analysis(&record, decision, &sizes, pods);
    if let Some(before) = canary_core::step_policy::gate_before(&policy.gates, after.step) {
        return super::gate::wait_at_gate(release, next, before, policy, pods, &reason).await;
    }
    match after.step {
        NextStep::Grow { .. } | NextStep::PromoteFull => {
            next.phase = after.phase.expect("a pass moves on");
            next.note(
                &now(),
                format!(
                    "analysis passed at {pods} pod(s): {reason}; {}",
                    next.phase.describe()
                ),
            );
            release.save(next.clone()).await?;
            let note = format!(
                "kubectl-canary-controller: analysis passed at {pods} pod(s) ({reason}); {}",
                next.phase.describe()
            );
            release
                .tell(
                    release
                        .notice(Moment::AnalysisPassed, &record, &note)
                        .with_reason(reason.clone()),
                )
                .await;
            release.normal("CanaryAnalysisPassed", note).await;
            if let Phase::Promoting { to, .. } = next.phase {
                let growing =
                    format!("kubectl-canary-controller: growing the canary to {to} pod(s)");
                release
                    .tell(release.notice(Moment::StepPromoted, &next, &growing))
                    .await;
            }
        }
        NextStep::RollBack => {
            next.phase = after.phase.expect("a failure rolls back");
            next.note(
                &now(),
                format!("{FAILED_NOTE} at {pods} pod(s): {reason}; holding on the stable pods until the next commit"),
            );
            release.save(next).await?;
            let note = format!(
                "kubectl-canary-controller: analysis failed at {pods} pod(s): {reason}. The release failed: \
                 the Deployment keeps Git's template, paused, with its canary scaled to 0 so only stable \
                 pods serve; push a fix or revert the commit"
            );
            let notice = release
                .notice(Moment::AnalysisFailed, &record, &note)
                .with_reason(reason.clone());
            release.warn_once("CanaryFailed", note).await;
            release.tell(notice).await;
        }
        NextStep::Hold => {
            next.note(&now(), format!("analysis inconclusive at {pods} pod(s): {reason}; holding, analysing again after the interval"));
            if next.history.len() > MAX_HISTORY {
                let excess = next.history.len() - MAX_HISTORY;
                next.history.drain(1..=excess);
            }
            release.save(next).await?;
            let note = format!(
                "kubectl-canary-controller: analysis inconclusive at {pods} pod(s): {reason}; holding"
            );
            release
                .tell(
                    release
                        .notice(Moment::AnalysisInconclusive, &record, &note)
                        .with_reason(reason.clone()),
                )
                .await;
            release.normal("CanaryAnalysisInconclusive", note).await;
        }
    }
    Ok(Action::requeue(SOON))
}

/// Runs one analysis on a blocking-pool thread. The analysis future is not provably `Send`
/// to rustc (its checks borrow the spec inside a `FuturesUnordered`, rust-lang/rust#102211),
/// which the kube-rs controller requires of reconciles; `block_on` there needs no `Send`.
async fn analyse(
    client: kube::Client,
    target: AnalysisTarget,
    spec: canary_core::analysis_spec::AnalysisSpec,
) -> Result<canary_core::verdict::Verdict, String> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(run_analysis(&client, &target, &spec, RunOptions::default()))
    })
    .await
    .map_err(|e| format!("the analysis task failed: {e}"))?
    .map_err(|e| e.to_string())
}

async fn not_analysable_yet(release: &Reconciling<'_>, why: String) -> Outcome {
    tracing::info!(deployment = %release.key, %why, "not analysing yet");
    Ok(Action::requeue(SOON))
}
