//! What a release is made of (a manifest, patches, environment variables, images) and the
//! Deployment it asks for, composed in that order from the live one. Only the pod template
//! may change: anything else the input changes is refused with the fields named.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::template_diff;
use super::error::ReleaseError;
use super::manifest::Document;
use super::patch::{Patch, apply_patch};
use crate::record::{images_of, normalize, with_images};
use crate::target::{WorkloadKind, WorkloadRef};

/// `--env CONTAINER:NAME=VALUE`: set one environment variable of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvChange {
    /// The container.
    pub container: String,
    /// The variable.
    pub name: String,
    /// Its new value.
    pub value: String,
}

impl EnvChange {
    /// Reads `CONTAINER:NAME=VALUE` (the value may be empty and may contain `=`).
    pub fn parse(arg: &str) -> Result<Self, ReleaseError> {
        let bad = |message: &str| ReleaseError::BadEnv {
            arg: arg.to_string(),
            message: message.to_string(),
        };
        let (container, rest) = arg.split_once(':').ok_or_else(|| bad("no container"))?;
        let (name, value) = rest.split_once('=').ok_or_else(|| bad("no =VALUE"))?;
        if container.is_empty() {
            return Err(bad("the container is empty"));
        }
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            return Err(bad(
                "the variable name must be letters, digits, '_', '-' or '.', not starting with a digit",
            ));
        }
        Ok(Self {
            container: container.to_string(),
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

impl std::fmt::Display for EnvChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}={}", self.container, self.name, self.value)
    }
}

/// Everything a release is made of, from the user's own command line and files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseInput {
    /// `-f`: the Deployment's document of a manifest; its pod template is the canary's.
    pub manifest: Option<Document>,
    /// `--patch`/`--patch-file`, applied in order after the manifest.
    pub patches: Vec<Patch>,
    /// `--env`, after the patches.
    pub env: Vec<EnvChange>,
    /// `CONTAINER=IMAGE`, last.
    pub images: BTreeMap<String, String>,
}

impl ReleaseInput {
    /// Whether the release is of images alone (the way in before manifests and patches).
    pub fn images_only(&self) -> bool {
        self.manifest.is_none() && self.patches.is_empty() && self.env.is_empty()
    }

    /// Whether nothing at all was given.
    pub fn is_empty(&self) -> bool {
        self.images_only() && self.images.is_empty()
    }

    /// Where the release comes from, in words: `web.yaml line 6, --patch, --env web:MODE=b`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(document) = &self.manifest {
            parts.push(format!("{} line {}", document.file, document.line));
        }
        parts.extend(
            self.patches
                .iter()
                .map(|p| format!("{} (--type {})", p.file, p.patch_type)),
        );
        parts.extend(self.env.iter().map(|e| format!("--env {e}")));
        if !self.images.is_empty() {
            parts.push(crate::text::images_text(&self.images));
        }
        parts.join(", ")
    }
}

/// The fields of a workload outside its pod template that a manifest may set and that are
/// compared with the live ones: the manifest's value must be what is live (for objects,
/// what the manifest sets of them).
fn outside_template(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::Deployment => &[
            "/spec/replicas",
            "/spec/strategy",
            "/spec/minReadySeconds",
            "/spec/progressDeadlineSeconds",
            "/spec/revisionHistoryLimit",
            "/spec/paused",
            "/metadata/labels",
            "/metadata/annotations",
        ],
        WorkloadKind::StatefulSet => &[
            "/spec/replicas",
            "/spec/updateStrategy",
            "/spec/podManagementPolicy",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/persistentVolumeClaimRetentionPolicy",
            "/spec/ordinals",
            "/spec/minReadySeconds",
            "/spec/revisionHistoryLimit",
            "/metadata/labels",
            "/metadata/annotations",
        ],
        WorkloadKind::DaemonSet => &[
            "/spec/updateStrategy",
            "/spec/minReadySeconds",
            "/spec/revisionHistoryLimit",
            "/metadata/labels",
            "/metadata/annotations",
        ],
    }
}

/// The Deployment the release asks for: [`desired_workload`] of `deploy/NAME`.
pub fn desired_deployment(
    live: &Value,
    name: &str,
    input: &ReleaseInput,
) -> Result<Value, ReleaseError> {
    desired_workload(live, &WorkloadRef::deployment(name), input)
}

/// The workload the release asks for: the live one (as JSON) with the manifest's pod
/// template, then the patches, the environment variables and the images. Refused when the
/// manifest or a patch changes the selector or anything else outside the pod template, or
/// names a container the template does not have.
///
/// ```
/// use canary_core::release::{EnvChange, ReleaseInput, desired_workload};
/// use canary_core::target::WorkloadRef;
/// use serde_json::json;
///
/// let live = json!({"kind": "StatefulSet", "spec": {"replicas": 3,
///     "template": {"spec": {"containers": [{"name": "db", "image": "db:1"}]}}}});
/// let input = ReleaseInput { env: vec![EnvChange::parse("db:MODE=b").unwrap()], ..Default::default() };
/// let desired = desired_workload(&live, &WorkloadRef::parse("sts/db").unwrap(), &input).unwrap();
/// assert_eq!(desired["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "b");
/// ```
pub fn desired_workload(
    live: &Value,
    target: &WorkloadRef,
    input: &ReleaseInput,
) -> Result<Value, ReleaseError> {
    let workload = target.to_string();
    let mut desired = live.clone();
    if let Some(document) = &input.manifest {
        let manifest = &document.object;
        let template = manifest
            .pointer("/spec/template")
            .filter(|t| t.is_object())
            .ok_or_else(|| ReleaseError::NoTemplate {
                file: document.file.clone(),
                line: document.line,
                kind: target.kind,
            })?;
        if let Some(selector) = manifest.pointer("/spec/selector") {
            let live_selector = live
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(Value::Null);
            if normalize(selector) != normalize(&live_selector) {
                return Err(ReleaseError::SelectorDiffers {
                    file: document.file.clone(),
                    line: Some(document.line),
                    workload: target.clone(),
                    found: selector.to_string(),
                    live: live_selector.to_string(),
                });
            }
        }
        let fields: Vec<String> = outside_template(target.kind)
            .iter()
            .filter(|pointer| {
                manifest
                    .pointer(pointer)
                    .is_some_and(|wanted| !set_as_live(wanted, live.pointer(pointer)))
            })
            .map(|pointer| pointer.trim_start_matches('/').replace('/', "."))
            .collect();
        if !fields.is_empty() {
            return Err(ReleaseError::OutsideTemplate {
                file: document.file.clone(),
                line: Some(document.line),
                workload: workload.clone(),
                fields: fields.join(", "),
            });
        }
        desired["spec"]["template"] = template.clone();
    }
    for patch in &input.patches {
        let patched = apply_patch(&desired, patch).map_err(|message| ReleaseError::BadPatch {
            file: patch.file.clone(),
            patch_type: patch.patch_type.to_string(),
            workload: workload.clone(),
            message,
        })?;
        let outside = |object: &Value| {
            let mut object = object.clone();
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("template");
            }
            object.as_object_mut().map(|o| o.remove("status"));
            object
        };
        let changed = template_diff(&outside(&desired), &outside(&patched));
        if !changed.is_empty() {
            let paths: Vec<String> = changed.into_iter().map(|c| c.path).collect();
            if paths.iter().any(|p| p.starts_with("spec.selector")) {
                return Err(ReleaseError::SelectorDiffers {
                    file: patch.file.clone(),
                    line: None,
                    workload: target.clone(),
                    found: patched
                        .pointer("/spec/selector")
                        .cloned()
                        .unwrap_or_default()
                        .to_string(),
                    live: desired
                        .pointer("/spec/selector")
                        .cloned()
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            return Err(ReleaseError::OutsideTemplate {
                file: patch.file.clone(),
                line: None,
                workload: workload.clone(),
                fields: paths.join(", "),
            });
        }
        desired = patched;
    }
    let mut template = desired["spec"]["template"].clone();
    for change in &input.env {
        set_env(&mut template, change).map_err(|known| ReleaseError::UnknownContainer {
            workload: workload.clone(),
            container: change.container.clone(),
            what: format!("--env {change}"),
            known,
        })?;
    }
    let known = images_of(&template);
    if let Some(container) = input.images.keys().find(|c| !known.contains_key(*c)) {
        return Err(ReleaseError::UnknownContainer {
            workload: workload.clone(),
            container: container.clone(),
            what: format!("{container}={}", input.images[container]),
            known: known.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    desired["spec"]["template"] = with_images(&template, &input.images);
    Ok(desired)
}

/// Whether a value a manifest sets is what is live: equal, or for an object, each key it
/// sets set alike (a manifest need not repeat what the API server defaulted).
fn set_as_live(wanted: &Value, live: Option<&Value>) -> bool {
    match (wanted, live) {
        (Value::Object(wanted), Some(Value::Object(live))) => wanted
            .iter()
            .all(|(key, value)| set_as_live(value, live.get(key))),
        (Value::Object(wanted), None) => wanted.is_empty(),
        (Value::Null, None) => true,
        (wanted, Some(live)) => wanted == live,
        (_, None) => false,
    }
}

/// Sets one environment variable in one container (of either list) of a pod template: the
/// value replaces a `value` or `valueFrom` it had. Err: the containers there are.
fn set_env(template: &mut Value, change: &EnvChange) -> Result<(), String> {
    for list in ["/spec/containers", "/spec/initContainers"] {
        let Some(containers) = template.pointer_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        let Some(container) = containers
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(change.container.as_str()))
        else {
            continue;
        };
        let entry = serde_json::json!({"name": change.name, "value": change.value});
        match container.get_mut("env").and_then(Value::as_array_mut) {
            Some(env) => match env
                .iter_mut()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(change.name.as_str()))
            {
                Some(existing) => *existing = entry,
                None => env.push(entry),
            },
            None => container["env"] = Value::Array(vec![entry]),
        }
        return Ok(());
    }
    Err(images_of(template)
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::release::manifest::parse_documents;
    use crate::release::patch::PatchType;

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"},
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1",
                        "env": [{"name": "MODE", "value": "a"}]}]}}
            },
            "status": {"replicas": 4}
        })
    }

    fn manifest(spec_extra: &str) -> Document {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n{spec_extra}  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        env: [{{name: MODE, value: b}}]\n"
        );
        parse_documents("web.yaml", &text).unwrap().remove(0)
    }

    #[test]
    fn a_manifest_gives_its_template_and_may_repeat_what_is_live() {
        let input = ReleaseInput {
            manifest: Some(manifest(
                "  replicas: 4\n  strategy:\n    type: RollingUpdate\n",
            )),
            ..Default::default()
        };
        let desired = desired_deployment(&live(), "web", &input).unwrap();
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "b"
        );
        assert_eq!(desired["spec"]["replicas"], 4);
        assert_eq!(desired["metadata"], live()["metadata"]);
    }

    #[test]
    fn a_manifest_changing_fields_outside_the_template_is_refused_naming_them() {
        let input = ReleaseInput {
            manifest: Some(manifest(
                "  replicas: 6\n  minReadySeconds: 5\n  strategy:\n    rollingUpdate: {maxSurge: 1}\n",
            )),
            ..Default::default()
        };
        let error = desired_deployment(&live(), "web", &input).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "web.yaml, line 1: the release also changes spec.replicas, spec.strategy, spec.minReadySeconds of deploy/web"
            ),
            "{error}"
        );
    }

    #[test]
    fn another_selector_or_no_template_is_refused() {
        let mut document = manifest("");
        document.object["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let input = ReleaseInput {
            manifest: Some(document.clone()),
            ..Default::default()
        };
        assert!(matches!(
            desired_deployment(&live(), "web", &input),
            Err(ReleaseError::SelectorDiffers { .. })
        ));
        document.object["spec"]
            .as_object_mut()
            .unwrap()
            .remove("template");
        document.object["spec"]
            .as_object_mut()
            .unwrap()
            .remove("selector");
        let input = ReleaseInput {
            manifest: Some(document),
            ..Default::default()
        };
        assert!(matches!(
            desired_deployment(&live(), "web", &input),
            Err(ReleaseError::NoTemplate { .. })
        ));
    }

    #[test]
    fn patches_env_and_images_combine_in_order() {
        let input = ReleaseInput {
            manifest: Some(manifest("")),
            patches: vec![Patch {
                patch_type: PatchType::Strategic,
                body: json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["-v"]}]}}}}),
                file: "--patch".into(),
            }],
            env: vec![EnvChange::parse("web:LEVEL=2").unwrap()],
            images: BTreeMap::from([("web".into(), "web:2".into())]),
        };
        let desired = desired_deployment(&live(), "web", &input).unwrap();
        let web = &desired["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(web["image"], "web:2");
        assert_eq!(web["args"], json!(["-v"]));
        assert_eq!(
            web["env"],
            json!([{"name": "MODE", "value": "b"}, {"name": "LEVEL", "value": "2"}])
        );
        assert_eq!(
            input.describe(),
            "web.yaml line 1, --patch (--type strategic), --env web:LEVEL=2, web=web:2"
        );
    }

    #[test]
    fn a_patch_outside_the_template_and_unknown_containers_are_refused() {
        let input = ReleaseInput {
            patches: vec![Patch {
                patch_type: PatchType::Merge,
                body: json!({"spec": {"replicas": 9}}),
                file: "--patch".into(),
            }],
            ..Default::default()
        };
        let error = desired_deployment(&live(), "web", &input).unwrap_err();
        assert!(
            error.to_string().contains("also changes spec.replicas"),
            "{error}"
        );
        let input = ReleaseInput {
            env: vec![EnvChange::parse("db:X=1").unwrap()],
            ..Default::default()
        };
        let error = desired_deployment(&live(), "web", &input).unwrap_err();
        assert!(
            error.to_string().contains("its containers are: web"),
            "{error}"
        );
        let input = ReleaseInput {
            images: BTreeMap::from([("db".into(), "db:2".into())]),
            ..Default::default()
        };
        assert!(matches!(
            desired_deployment(&live(), "web", &input),
            Err(ReleaseError::UnknownContainer { .. })
        ));
    }

    #[test]
    fn env_arguments_are_checked() {
        assert_eq!(
            EnvChange::parse("web:URL=http://x?a=b").unwrap().value,
            "http://x?a=b"
        );
        assert_eq!(EnvChange::parse("web:EMPTY=").unwrap().value, "");
        for bad in ["web=1", "web:=1", ":A=1", "web:A", "web:1A=2", "web:A B=1"] {
            assert!(EnvChange::parse(bad).is_err(), "{bad}");
        }
    }
}
