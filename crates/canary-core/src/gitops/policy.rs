//! The canary policy of a Deployment, written by its owners (in Git) as annotations.
//!
//! ```yaml
//! metadata:
//!   labels: { kubectl-canary.io/gitops: enabled }
//!   annotations:
//!     kubectl-canary.io/canary-pods: "1"        # first canary size, in pods (the brake's k)
//!     kubectl-canary.io/steps: "3,50%"          # later sizes, growing; then 100%
//!     kubectl-canary.io/interval: 1m            # analysis after each step
//!     kubectl-canary.io/mode: surge             # or replace
//!     kubectl-canary.io/analysis: web-analysis  # ConfigMap with key analysis.yaml
//!                                               # (or `auto`: the pods' request metrics)
//!     kubectl-canary.io/approve-before: full    # wait for an approval before 100%
//!                                               # (`every`, or sizes of the steps)
//!     kubectl-canary.io/approval-timeout: 2h    # then abort (the default) or
//!     kubectl-canary.io/on-approval-timeout: wait  # keep waiting
//!     kubectl-canary.io/notify: team-chat,audit # endpoints of the Secret kubectl-canary-notify
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

use crate::duration::{format_duration, parse_duration};
use crate::gate::{ApprovalGates, ApprovalTimeout, GateError};
use crate::rollout_math::{CanaryMode, CanarySize, resolve_canary};

/// First canary size in pods: what the admission policy brakes at.
pub const CANARY_PODS_ANNOTATION: &str = "kubectl-canary.io/canary-pods";
/// Further canary sizes (pods or traffic percentages), comma-separated, growing.
pub const STEPS_ANNOTATION: &str = "kubectl-canary.io/steps";
/// Time between a step being held and its analysis.
pub const INTERVAL_ANNOTATION: &str = "kubectl-canary.io/interval";
/// `surge` (default) or `replace`.
pub const MODE_ANNOTATION: &str = "kubectl-canary.io/mode";
/// Name of a ConfigMap in the Deployment's namespace holding the analysis spec.
pub const ANALYSIS_ANNOTATION: &str = "kubectl-canary.io/analysis";
/// The value of [`ANALYSIS_ANNOTATION`] that reads no ConfigMap: pod health and the pods'
/// own request metrics on the controller's Prometheus
/// ([`crate::analysis_spec::auto_analysis_spec`]).
pub const AUTO_ANALYSIS: &str = "auto";
/// Steps that wait, after a passing analysis, for an approval by someone allowed to update
/// the Deployment: `full`, `every`, or sizes of the steps (comma-separated).
pub const APPROVE_BEFORE_ANNOTATION: &str = "kubectl-canary.io/approve-before";
/// How long a step waits for its approval (a duration).
pub const APPROVAL_TIMEOUT_ANNOTATION: &str = "kubectl-canary.io/approval-timeout";
/// What the approval timeout does: `abort` (the default) or `wait`.
pub const ON_APPROVAL_TIMEOUT_ANNOTATION: &str = "kubectl-canary.io/on-approval-timeout";
/// The key of the analysis spec (the CLI's YAML format) in that ConfigMap.
pub const ANALYSIS_KEY: &str = "analysis.yaml";
/// Names of notification endpoints, comma-separated: only names; the endpoints (URLs and
/// keys, secrets) are in the Secret `kubectl-canary-notify` of the Deployment's namespace.
pub const NOTIFY_ANNOTATION: &str = "kubectl-canary.io/notify";
/// Most endpoints one Deployment names.
pub const MAX_NOTIFY_ENDPOINTS: usize = 10;

/// The interval when none is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest interval: analyses need some data.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Longest interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Most steps after the first.
pub const MAX_STEPS: usize = 10;
/// The largest first size the policy accepts (the admission policy's regex allows 5 digits).
pub const MAX_CANARY_PODS: i32 = 99_999;

/// A Deployment's canary policy, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GitOpsPolicy {
    /// Canary pods of the first step (the brake's size).
    pub first_pods: i32,
    /// The later steps.
    pub steps: Vec<CanarySize>,
    /// Time from a step being held to its analysis.
    pub interval: Duration,
    /// Surge or replace.
    pub mode: CanaryMode,
    /// The ConfigMap with the analysis spec; without one, no analysis runs and every step
    /// is promoted after its interval.
    pub analysis: Option<String>,
    /// The steps that wait for an approval, resolved at the replicas the policy was read
    /// for.
    pub gates: ApprovalGates,
    /// How long a gate waits, and what then.
    pub approval_timeout: Option<ApprovalTimeout>,
}

/// A malformed policy annotation. The controller reports it in an Event and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("annotation {annotation}={value:?}: {reason}")]
pub struct PolicyError {
    /// The annotation.
    pub annotation: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl GitOpsPolicy {
    /// Reads and checks the policy from a Deployment's annotations, for `replicas` pods.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        replicas: i32,
    ) -> Result<Self, PolicyError> {
        let get = |key: &'static str| annotations.get(key).map(|v| (key, v.trim().to_string()));
        let bad = |annotation: &'static str, value: &str, reason: String| PolicyError {
            annotation,
            value: value.to_string(),
            reason,
        };
        let mode = match get(MODE_ANNOTATION) {
            None => CanaryMode::Surge,
            Some((key, value)) => value
                .parse()
                .map_err(|_| bad(key, &value, "expected surge or replace".into()))?,
        };
        let Some((key, value)) = get(CANARY_PODS_ANNOTATION) else {
            return Err(bad(
                CANARY_PODS_ANNOTATION,
                "",
                "missing: set the first canary size in pods, e.g. \"1\"".into(),
            ));
        };
        let first_pods = value
            .parse::<i32>()
            .ok()
            .filter(|p| (1..=MAX_CANARY_PODS).contains(p) && !value.starts_with('0'))
            .ok_or_else(|| {
                bad(
                    key,
                    &value,
                    format!("expected a pod count from 1 to {MAX_CANARY_PODS}, e.g. \"1\""),
                )
            })?;
        resolve_canary(CanarySize::Pods(first_pods), replicas, mode)
            .map_err(|e| bad(key, &value, e.to_string()))?;
        let steps = match get(STEPS_ANNOTATION) {
            None => Vec::new(),
            Some((key, value)) => {
                let steps = value
                    .split(',')
                    .map(|s| s.trim().parse::<CanarySize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(key, &value, e.to_string()))?;
                if steps.len() > MAX_STEPS {
                    return Err(bad(key, &value, format!("at most {MAX_STEPS} steps")));
                }
                steps
            }
        };
        let interval = match get(INTERVAL_ANNOTATION) {
            None => DEFAULT_INTERVAL,
            Some((key, value)) => {
                let interval =
                    parse_duration(&value).map_err(|e| bad(key, &value, e.to_string()))?;
                if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                    return Err(bad(
                        key,
                        &value,
                        format!(
                            "must be from {} to {}",
                            format_duration(MIN_INTERVAL),
                            format_duration(MAX_INTERVAL)
                        ),
                    ));
                }
                interval
            }
        };
        let analysis = match get(ANALYSIS_ANNOTATION) {
            None => None,
            Some((key, value)) => {
                if !is_dns_subdomain(&value) {
                    return Err(bad(
                        key,
                        &value,
                        "expected the name of a ConfigMap in the Deployment's namespace".into(),
                    ));
                }
                Some(value)
            }
        };
        let mut policy = Self {
            first_pods,
            steps,
            interval,
            mode,
            analysis,
            gates: ApprovalGates::default(),
            approval_timeout: None,
        };
        let sizes = policy
            .step_sizes(replicas)
            .map_err(|reason| bad(STEPS_ANNOTATION, &annotation_text(annotations), reason))?;
        if let Some((key, value)) = get(APPROVE_BEFORE_ANNOTATION) {
            policy.gates = ApprovalGates::parse_with(&[value.as_str()], &sizes, |size| {
                resolve_canary(size, replicas, mode).ok().map(|c| c.pods)
            })
            .map_err(|e| bad(key, &value, e.to_string()))?;
        }
        let on_timeout = get(ON_APPROVAL_TIMEOUT_ANNOTATION);
        policy.approval_timeout = match get(APPROVAL_TIMEOUT_ANNOTATION) {
            None => {
                if let Some((key, value)) = on_timeout {
                    return Err(bad(
                        key,
                        &value,
                        format!("only with {APPROVAL_TIMEOUT_ANNOTATION}"),
                    ));
                }
                None
            }
            Some((key, value)) => Some(
                ApprovalTimeout::parse(&value, on_timeout.as_ref().map(|(_, v)| v.as_str()))
                    .map_err(|e| match on_timeout.as_ref() {
                        Some((on_key, on_value)) if matches!(e, GateError::OnTimeout { .. }) => {
                            bad(on_key, on_value, e.to_string())
                        }
                        _ => bad(key, &value, e.to_string()),
                    })?,
            ),
        };
        Ok(policy)
    }

    /// The canary sizes of every step in pods, the first being the brake's size; each
    /// larger than the one before and each fitting the Deployment.
    pub fn step_sizes(&self, replicas: i32) -> Result<Vec<i32>, String> {
        let mut sizes = vec![self.first_pods];
        for size in &self.steps {
            let pods = resolve_canary(*size, replicas, self.mode)
                .map_err(|e| format!("{size}: {e}"))?
                .pods;
            let before = *sizes.last().expect("the first size is there");
            if pods <= before {
                return Err(format!(
                    "steps must grow: {size} is {pods} pod(s), not more than the step before ({before})"
                ));
            }
            sizes.push(pods);
        }
        Ok(sizes)
    }
}

impl GitOpsPolicy {
    /// What was asked for the step held at `pods` when the Deployment had `replicas`: the
    /// first size (a count) or the later step that came to `pods` (a count or a share), so
    /// that a change of `spec.replicas` keeps it (a share stays a share, a count the count).
    /// `None` when no step comes to `pods`.
    pub fn size_asked_at(&self, replicas: i32, pods: i32) -> Option<CanarySize> {
        let sizes = self.step_sizes(replicas).ok()?;
        match sizes.iter().position(|&size| size == pods)? {
            0 => Some(CanarySize::Pods(self.first_pods)),
            step => self.steps.get(step - 1).copied(),
        }
    }
}

/// The endpoint names of [`NOTIFY_ANNOTATION`] (none without it). Kept apart from the
/// policy: a malformed value stops the notices, never the canary.
pub fn notify_names(annotations: &BTreeMap<String, String>) -> Result<Vec<String>, PolicyError> {
    let Some(value) = annotations.get(NOTIFY_ANNOTATION) else {
        return Ok(vec![]);
    };
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !crate::notify::endpoints::is_name(name) {
            return Err(PolicyError {
                annotation: NOTIFY_ANNOTATION,
                value: value.clone(),
                reason: format!(
                    "{name:?} is not an endpoint name (lowercase letters, digits and '-'); expected names of the \
                     Secret {}'s endpoints, comma-separated, never a URL",
                    crate::notify::endpoints::SECRET_NAME
                ),
            });
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    if names.len() > MAX_NOTIFY_ENDPOINTS {
        return Err(PolicyError {
            annotation: NOTIFY_ANNOTATION,
            value: value.clone(),
            reason: format!("at most {MAX_NOTIFY_ENDPOINTS} endpoints"),
        });
    }
    Ok(names)
}

fn annotation_text(annotations: &BTreeMap<String, String>) -> String {
    annotations
        .get(STEPS_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

/// Whether `name` is a valid Kubernetes object name (RFC 1123 subdomain).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub use crate::step_policy::next_size as next_step;

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_size_asked_for_a_held_step_is_the_step_s_own_count_or_share() {
        let policy = GitOpsPolicy::from_annotations(
            &annotations(&[(CANARY_PODS_ANNOTATION, "1"), (STEPS_ANNOTATION, "3, 50%")]),
            10,
        )
        .unwrap();
        assert_eq!(policy.size_asked_at(10, 1), Some(CanarySize::Pods(1)));
        assert_eq!(policy.size_asked_at(10, 3), Some(CanarySize::Pods(3)));
        assert_eq!(
            policy.size_asked_at(10, 10),
            Some(CanarySize::Percent(50.0))
        );
        assert_eq!(policy.size_asked_at(10, 4), None, "no step comes to 4 pods");
        assert_eq!(policy.size_asked_at(0, 1), None, "no sizes at 0 replicas");
    }

    #[test]
    fn notify_names_are_only_names() {
        type Case<'a> = (Option<&'a str>, Result<Vec<&'a str>, &'a str>);
        let cases: [Case; 5] = [
            (None, Ok(vec![])),
            (Some("team-chat"), Ok(vec!["team-chat"])),
            (Some(" a, b ,a,"), Ok(vec!["a", "b"])),
            (Some("https://hooks.slack.com/x"), Err("never a URL")),
            (Some("A"), Err("\"A\" is not an endpoint name")),
        ];
        for (value, expected) in cases {
            let pairs: Vec<(&str, &str)> = value
                .map(|v| vec![(NOTIFY_ANNOTATION, v)])
                .unwrap_or_default();
            let found = notify_names(&annotations(&pairs));
            match expected {
                Ok(names) => assert_eq!(found, Ok(names.iter().map(|s| s.to_string()).collect())),
                Err(message) => {
                    let error = found.expect_err("refused").to_string();
                    assert!(error.contains(message), "{value:?}: {error}");
                }
            }
        }
    }

    #[test]
    fn reads_a_full_policy() {
        let policy = GitOpsPolicy::from_annotations(
            &annotations(&[
                (CANARY_PODS_ANNOTATION, "1"),
                (STEPS_ANNOTATION, "3, 50%"),
                (INTERVAL_ANNOTATION, "30s"),
                (MODE_ANNOTATION, "surge"),
                (ANALYSIS_ANNOTATION, "web-analysis"),
            ]),
            10,
        )
        .unwrap();
        assert_eq!(policy.interval, Duration::from_secs(30));
        assert_eq!(policy.analysis.as_deref(), Some("web-analysis"));
        assert_eq!(policy.step_sizes(10).unwrap(), vec![1, 3, 10]);
        assert_eq!(next_step(&[1, 3, 10], 1), Some(3));
        assert_eq!(next_step(&[1, 3, 10], 10), None);
    }

    #[test]
    fn approval_gates_are_read_against_the_steps() {
        let policy = GitOpsPolicy::from_annotations(
            &annotations(&[
                (CANARY_PODS_ANNOTATION, "1"),
                (STEPS_ANNOTATION, "3, 50%"),
                (APPROVE_BEFORE_ANNOTATION, "50%, full"),
                (APPROVAL_TIMEOUT_ANNOTATION, "2h"),
                (ON_APPROVAL_TIMEOUT_ANNOTATION, "wait"),
            ]),
            10,
        )
        .unwrap();
        assert!(policy.gates.full);
        // 50% of the traffic beside 10 stable pods (surge) is 10 canary pods.
        assert_eq!(
            policy.gates.pods.iter().copied().collect::<Vec<_>>(),
            vec![10]
        );
        let timeout = policy.approval_timeout.expect("a timeout");
        assert_eq!(timeout.after, Duration::from_secs(7200));
        assert_eq!(timeout.then, crate::gate::OnTimeout::Wait);
    }

    #[test]
    fn defaults_apply_when_only_the_size_is_given() {
        let policy =
            GitOpsPolicy::from_annotations(&annotations(&[(CANARY_PODS_ANNOTATION, "2")]), 5)
                .unwrap();
        assert_eq!(policy.mode, CanaryMode::Surge);
        assert_eq!(policy.interval, DEFAULT_INTERVAL);
        assert_eq!(policy.analysis, None);
        assert_eq!(policy.step_sizes(5).unwrap(), vec![2]);
    }

    #[test]
    fn each_malformed_annotation_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], CANARY_PODS_ANNOTATION),
            (&[(CANARY_PODS_ANNOTATION, "10%")], CANARY_PODS_ANNOTATION),
            (&[(CANARY_PODS_ANNOTATION, "0")], CANARY_PODS_ANNOTATION),
            (&[(CANARY_PODS_ANNOTATION, "01")], CANARY_PODS_ANNOTATION),
            (&[(CANARY_PODS_ANNOTATION, "6")], CANARY_PODS_ANNOTATION),
            (
                &[(CANARY_PODS_ANNOTATION, "5"), (MODE_ANNOTATION, "replace")],
                CANARY_PODS_ANNOTATION,
            ),
            (
                &[(CANARY_PODS_ANNOTATION, "1"), (MODE_ANNOTATION, "blue")],
                MODE_ANNOTATION,
            ),
            (
                &[(CANARY_PODS_ANNOTATION, "2"), (STEPS_ANNOTATION, "1")],
                STEPS_ANNOTATION,
            ),
            (
                &[(CANARY_PODS_ANNOTATION, "1"), (STEPS_ANNOTATION, "x")],
                STEPS_ANNOTATION,
            ),
            (
                &[(CANARY_PODS_ANNOTATION, "1"), (INTERVAL_ANNOTATION, "1s")],
                INTERVAL_ANNOTATION,
            ),
            (
                &[(CANARY_PODS_ANNOTATION, "1"), (INTERVAL_ANNOTATION, "soon")],
                INTERVAL_ANNOTATION,
            ),
            (
                &[
                    (CANARY_PODS_ANNOTATION, "1"),
                    (ANALYSIS_ANNOTATION, "Bad_Name"),
                ],
                ANALYSIS_ANNOTATION,
            ),
            (
                &[
                    (CANARY_PODS_ANNOTATION, "1"),
                    (APPROVE_BEFORE_ANNOTATION, "3"),
                ],
                APPROVE_BEFORE_ANNOTATION,
            ),
            (
                &[
                    (CANARY_PODS_ANNOTATION, "1"),
                    (APPROVE_BEFORE_ANNOTATION, "full"),
                    (APPROVAL_TIMEOUT_ANNOTATION, "soon"),
                ],
                APPROVAL_TIMEOUT_ANNOTATION,
            ),
            (
                &[
                    (CANARY_PODS_ANNOTATION, "1"),
                    (APPROVE_BEFORE_ANNOTATION, "full"),
                    (APPROVAL_TIMEOUT_ANNOTATION, "1h"),
                    (ON_APPROVAL_TIMEOUT_ANNOTATION, "promote"),
                ],
                ON_APPROVAL_TIMEOUT_ANNOTATION,
            ),
            (
                &[
                    (CANARY_PODS_ANNOTATION, "1"),
                    (ON_APPROVAL_TIMEOUT_ANNOTATION, "wait"),
                ],
                ON_APPROVAL_TIMEOUT_ANNOTATION,
            ),
        ];
        for (pairs, annotation) in cases {
            let error = GitOpsPolicy::from_annotations(&annotations(pairs), 5)
                .expect_err(&format!("{pairs:?} must be refused"));
            assert_eq!(error.annotation, *annotation, "{pairs:?}: {error}");
        }
    }
}
