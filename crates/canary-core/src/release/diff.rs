//! The difference between two pod templates, field by field, with paths people can read:
//! list items that have a `name` are found by it (`spec.containers[web].env[MODE].value`),
//! so a reordering is no change and an added sidecar is one line.

use serde::Serialize;
use serde_json::Value;

use crate::record::{normalize, without_template_hash};

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Where, from the pod template: `spec.containers[web].image`.
    pub path: String,
    /// The value before; absent when the field is added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after; absent when the field is removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

impl FieldChange {
    /// One line: `~ path: old → new`, `+ path: new` or `- path: old`.
    pub fn line(&self) -> String {
        match (&self.old, &self.new) {
            (Some(old), Some(new)) => {
                format!("~ {}: {} → {}", self.path, short(old), short(new))
            }
            (None, Some(new)) => format!("+ {}: {}", self.path, short(new)),
            (Some(old), None) => format!("- {}: {}", self.path, short(old)),
            (None, None) => format!("  {}", self.path),
        }
    }

    /// The container an image change is of, when this is one: `spec.containers[web].image`.
    fn image_of(&self) -> Option<&str> {
        let inner = self
            .path
            .strip_prefix("spec.containers[")
            .or_else(|| self.path.strip_prefix("spec.initContainers["))?;
        inner.strip_suffix("].image")
    }
}

/// Longest value shown on one line; longer ones are cut with `…`.
const SHORT_VALUE: usize = 160;

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHORT_VALUE {
        text
    } else {
        let cut: String = text.chars().take(SHORT_VALUE).collect();
        format!("{cut}…")
    }
}

/// The fields of `new` that differ from `old`, in a stable order (keys sorted, list items
/// by name or position). Both are normalized first (nulls and empty objects dropped, the
/// controller's `pod-template-hash` label removed), as the controller compares templates.
pub fn template_diff(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    walk(
        "",
        &normalize(&without_template_hash(old)),
        &normalize(&without_template_hash(new)),
        &mut changes,
    );
    changes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<FieldChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let here = join(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&here, x, y, out),
                    (x, y) => out.push(FieldChange {
                        path: here,
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(a_named), Some(b_named)) = (named(a), named(b)) {
                let mut names: Vec<&str> = a_named.iter().map(|(n, _)| *n).collect();
                for (name, _) in &b_named {
                    if !names.contains(name) {
                        names.push(name);
                    }
                }
                for name in names {
                    let here = format!("{path}[{name}]");
                    let find = |list: &[(&str, &Value)]| {
                        list.iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, v)| (*v).clone())
                    };
                    match (find(&a_named), find(&b_named)) {
                        (Some(x), Some(y)) => walk(&here, &x, &y, out),
                        (x, y) => out.push(FieldChange {
                            path: here,
                            old: x,
                            new: y,
                        }),
                    }
                }
            } else if a.len() == b.len() && a.iter().chain(b).all(Value::is_object) {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{path}[{i}]"), x, y, out);
                }
            } else {
                out.push(FieldChange {
                    path: path.to_string(),
                    old: Some(old.clone()),
                    new: Some(new.clone()),
                });
            }
        }
        _ => out.push(FieldChange {
            path: path.to_string(),
            old: Some(old.clone()),
            new: Some(new.clone()),
        }),
    }
}

/// The items of a list by their `name`, when every item has a distinct one.
fn named(items: &[Value]) -> Option<Vec<(&str, &Value)>> {
    let list: Vec<(&str, &Value)> = items
        .iter()
        .map(|item| Some((item.get("name")?.as_str()?, item)))
        .collect::<Option<_>>()?;
    let mut names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    (names.len() == list.len()).then_some(list)
}

/// Paths shown in a summary before "and N more".
const SUMMARY_PATHS: usize = 4;

/// The changes in one line for status, the record and Events: image changes as
/// `web=web:2`, other fields by path (`spec.containers[web].env[MODE].value`; `+` added,
/// `-` removed), the first few.
pub fn summarize(changes: &[FieldChange]) -> String {
    if changes.is_empty() {
        return "no change of the pod template".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut others = Vec::new();
    for change in changes {
        match (
            change.image_of(),
            change.new.as_ref().and_then(Value::as_str),
        ) {
            (Some(container), Some(image)) => parts.push(format!("{container}={image}")),
            _ => others.push(match (&change.old, &change.new) {
                (None, _) => format!("+{}", change.path),
                (_, None) => format!("-{}", change.path),
                _ => change.path.clone(),
            }),
        }
    }
    let shown = others.len().min(SUMMARY_PATHS);
    parts.extend(others.iter().take(shown).cloned());
    let mut text = parts.join(", ");
    if others.len() > shown {
        text.push_str(&format!(" and {} more field(s)", others.len() - shown));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "web", "image": "web:1",
                    "env": [{"name": "MODE", "value": "a"}, {"name": "LEVEL", "value": "1"}],
                    "args": ["--port", "80"]}],
                "volumes": [{"name": "config", "configMap": {"name": "web-config-abc"}}]
            }
        })
    }

    #[test]
    fn equal_templates_have_no_change_whatever_the_json_form() {
        let mut other = template();
        other["metadata"]["annotations"] = json!({});
        other["metadata"]["labels"]["pod-template-hash"] = json!("123");
        assert_eq!(template_diff(&template(), &other), vec![]);
        assert_eq!(summarize(&[]), "no change of the pod template");
    }

    #[test]
    fn named_items_are_matched_by_name_and_paths_say_where() {
        let mut new = template();
        new["spec"]["containers"][0]["env"] =
            json!([{"name": "LEVEL", "value": "1"}, {"name": "MODE", "value": "b"}]);
        new["spec"]["volumes"][0]["configMap"]["name"] = json!("web-config-def");
        new["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "proxy", "image": "envoy:1"}));
        let changes = template_diff(&template(), &new);
        let lines: Vec<String> = changes.iter().map(FieldChange::line).collect();
        assert_eq!(
            lines,
            [
                r#"~ spec.containers[web].env[MODE].value: "a" → "b""#,
                r#"+ spec.containers[proxy]: {"image":"envoy:1","name":"proxy"}"#,
                r#"~ spec.volumes[config].configMap.name: "web-config-abc" → "web-config-def""#,
            ]
        );
        assert_eq!(
            summarize(&changes),
            "spec.containers[web].env[MODE].value, +spec.containers[proxy], spec.volumes[config].configMap.name"
        );
    }

    #[test]
    fn lists_without_names_change_as_a_whole_and_images_read_as_images() {
        let mut new = template();
        new["spec"]["containers"][0]["args"] = json!(["--port", "8080", "--verbose"]);
        new["spec"]["containers"][0]["image"] = json!("web:2");
        let changes = template_diff(&template(), &new);
        assert_eq!(changes[0].path, "spec.containers[web].args");
        assert_eq!(changes[0].old, Some(json!(["--port", "80"])));
        assert_eq!(summarize(&changes), "web=web:2, spec.containers[web].args");
        let removed = template_diff(&new, &template());
        assert!(removed.iter().all(|c| c.old.is_some() && c.new.is_some()));
        let mut without_volumes = template();
        without_volumes["spec"]
            .as_object_mut()
            .unwrap()
            .remove("volumes");
        assert_eq!(
            template_diff(&template(), &without_volumes)[0].line(),
            r#"- spec.volumes: [{"configMap":{"name":"web-config-abc"},"name":"config"}]"#
        );
    }

    #[test]
    fn a_long_summary_is_cut_with_a_count() {
        let old = json!({"spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let mut new = old.clone();
        for i in 0..6 {
            new["spec"]["containers"][0][format!("f{i}")] = json!(i);
        }
        assert!(summarize(&template_diff(&old, &new)).ends_with("and 2 more field(s)"));
    }
}
