//! The brake as the admission policy leaves it: annotations written by the API server in
//! the same write as the GitOps change (`deploy/policy.yaml`).
//!
//! They live on the Deployment because only the Deployment's writers can change them: the
//! settings put back at the end come from here, never from the record (a ConfigMap), so
//! whoever may only edit ConfigMaps cannot choose what is written to the Deployment.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::record::RolloutSettings;

/// Present while a canary is in progress: the policy keeps the rollout settings as they
/// are for every writer but the controller.
pub const BRAKE_ANNOTATION: &str = "kubectl-canary.io/brake";
/// The images of the template before the change (`name=image,...`, in container order).
pub const STABLE_IMAGES_ANNOTATION: &str = "kubectl-canary.io/stable-images";
/// The Deployment's own `maxSurge` (`25%` or `1`).
pub const ORIGINAL_MAX_SURGE_ANNOTATION: &str = "kubectl-canary.io/original-max-surge";
/// The Deployment's own `maxUnavailable`.
pub const ORIGINAL_MAX_UNAVAILABLE_ANNOTATION: &str = "kubectl-canary.io/original-max-unavailable";
/// The Deployment's own `minReadySeconds` (0 when it had none).
pub const ORIGINAL_MIN_READY_ANNOTATION: &str = "kubectl-canary.io/original-min-ready-seconds";
/// The Deployment's own `progressDeadlineSeconds`.
pub const ORIGINAL_PROGRESS_DEADLINE_ANNOTATION: &str =
    "kubectl-canary.io/original-progress-deadline-seconds";

/// Every annotation the policy writes; the controller removes them all when it releases.
pub const STATE_ANNOTATIONS: [&str; 6] = [
    BRAKE_ANNOTATION,
    STABLE_IMAGES_ANNOTATION,
    ORIGINAL_MAX_SURGE_ANNOTATION,
    ORIGINAL_MAX_UNAVAILABLE_ANNOTATION,
    ORIGINAL_MIN_READY_ANNOTATION,
    ORIGINAL_PROGRESS_DEADLINE_ANNOTATION,
];

/// What the policy recorded when it braked a change.
#[derive(Debug, Clone, PartialEq)]
pub struct BrakeAnnotations {
    /// `name=image,...` of the template before the change.
    pub stable_images: String,
    /// The Deployment's own rollout settings, to put back (not paused).
    pub original: RolloutSettings,
}

/// Why the brake's annotations cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {reason}")]
pub struct BrakeAnnotationError {
    /// The annotation.
    pub annotation: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl BrakeAnnotations {
    /// Reads the brake's annotations: `None` when no canary is in progress.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Option<Result<Self, BrakeAnnotationError>> {
        annotations.get(BRAKE_ANNOTATION)?;
        Some(Self::parse(annotations))
    }

    fn parse(annotations: &BTreeMap<String, String>) -> Result<Self, BrakeAnnotationError> {
        let get = |annotation: &'static str| {
            annotations
                .get(annotation)
                .map(|v| v.trim().to_string())
                .ok_or_else(|| BrakeAnnotationError {
                    annotation,
                    reason: "missing".into(),
                })
        };
        let int = |annotation: &'static str| -> Result<i32, BrakeAnnotationError> {
            let text = get(annotation)?;
            text.parse::<i32>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| BrakeAnnotationError {
                    annotation,
                    reason: format!("{text:?} is not a count of seconds"),
                })
        };
        let int_or_percent = |annotation: &'static str| -> Result<Value, BrakeAnnotationError> {
            let text = get(annotation)?;
            parse_int_or_percent(&text).ok_or_else(|| BrakeAnnotationError {
                annotation,
                reason: format!("{text:?} is neither a pod count nor a percentage"),
            })
        };
        let min_ready = int(ORIGINAL_MIN_READY_ANNOTATION)?;
        Ok(Self {
            stable_images: get(STABLE_IMAGES_ANNOTATION)?,
            original: RolloutSettings {
                strategy: json!({
                    "type": "RollingUpdate",
                    "rollingUpdate": {
                        "maxSurge": int_or_percent(ORIGINAL_MAX_SURGE_ANNOTATION)?,
                        "maxUnavailable": int_or_percent(ORIGINAL_MAX_UNAVAILABLE_ANNOTATION)?,
                    },
                }),
                // The API server omits a zero minReadySeconds; keep it omitted.
                min_ready_seconds: (min_ready != 0).then_some(min_ready),
                progress_deadline_seconds: Some(int(ORIGINAL_PROGRESS_DEADLINE_ANNOTATION)?),
                paused: None,
            },
        })
    }
}

/// `25%` as a string, `1` as a number (an IntOrString).
fn parse_int_or_percent(text: &str) -> Option<Value> {
    if let Some(number) = text.strip_suffix('%') {
        number
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 100)
            .map(|_| Value::String(text.to_string()))
    } else {
        text.parse::<i32>()
            .ok()
            .filter(|v| *v >= 0)
            .map(Value::from)
    }
}

/// The images of a pod template as the policy writes them: `name=image` in container
/// order, joined by commas.
pub fn images_signature(template: &Value) -> String {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}",
                c.get("name").and_then(Value::as_str).unwrap_or_default(),
                c.get("image").and_then(Value::as_str).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written_by_policy() -> BTreeMap<String, String> {
        [
            (BRAKE_ANNOTATION, "on"),
            (STABLE_IMAGES_ANNOTATION, "nginx=nginx:1.14"),
            (ORIGINAL_MAX_SURGE_ANNOTATION, "25%"),
            (ORIGINAL_MAX_UNAVAILABLE_ANNOTATION, "0"),
            (ORIGINAL_MIN_READY_ANNOTATION, "0"),
            (ORIGINAL_PROGRESS_DEADLINE_ANNOTATION, "600"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn originals_read_back_as_the_api_server_stores_them() {
        let brake = BrakeAnnotations::from_annotations(&written_by_policy())
            .unwrap()
            .unwrap();
        assert_eq!(brake.stable_images, "nginx=nginx:1.14");
        assert_eq!(
            brake.original,
            RolloutSettings {
                strategy: json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
                min_ready_seconds: None,
                progress_deadline_seconds: Some(600),
                paused: None,
            }
        );
    }

    #[test]
    fn no_brake_annotation_means_no_canary() {
        let mut annotations = written_by_policy();
        annotations.remove(BRAKE_ANNOTATION);
        assert!(BrakeAnnotations::from_annotations(&annotations).is_none());
    }

    #[test]
    fn damaged_originals_are_named() {
        for (annotation, value) in [
            (ORIGINAL_MAX_SURGE_ANNOTATION, "lots"),
            (ORIGINAL_MAX_UNAVAILABLE_ANNOTATION, "150%"),
            (ORIGINAL_MIN_READY_ANNOTATION, "-1"),
            (ORIGINAL_PROGRESS_DEADLINE_ANNOTATION, ""),
        ] {
            let mut annotations = written_by_policy();
            annotations.insert(annotation.to_string(), value.to_string());
            let error = BrakeAnnotations::from_annotations(&annotations)
                .unwrap()
                .unwrap_err();
            assert_eq!(error.annotation, annotation);
        }
        let mut annotations = written_by_policy();
        annotations.remove(STABLE_IMAGES_ANNOTATION);
        assert!(
            BrakeAnnotations::from_annotations(&annotations)
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn signature_keeps_container_order() {
        let template = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:1.15"}, {"name": "a-side", "image": "busybox:1"}
        ]}});
        assert_eq!(
            images_signature(&template),
            "web=nginx:1.15,a-side=busybox:1"
        );
    }
}
