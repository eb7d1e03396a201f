//! Patches of a Deployment, as `kubectl patch --type json|merge|strategic` applies them,
//! computed here without the API server so that they combine with a manifest and other
//! changes before anything is sent.
//!
//! The strategic merge patch knows the merge keys of the lists of a Deployment's pod
//! template (containers by name, env by name, ports by containerPort, volumeMounts by
//! mountPath, volumes by name, ...) and the directives `$patch` (merge, replace, delete),
//! `$retainKeys`, `$deleteFromPrimitiveList/<list>` and `$setElementOrder/<list>` (the
//! order is taken as given; items not named keep their place). A list without a merge key
//! is replaced, as the API server does.

use serde_json::{Map, Value};

/// How a patch is read, `kubectl patch --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch: a list of operations.
    Json,
    /// RFC 7386 JSON merge patch: `null` deletes, lists are replaced.
    Merge,
    /// Kubernetes strategic merge patch: lists with a merge key are merged by it.
    Strategic,
}

impl std::fmt::Display for PatchType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PatchType::Json => "json",
            PatchType::Merge => "merge",
            PatchType::Strategic => "strategic",
        })
    }
}

/// A patch as given on the command line or in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// How to apply it.
    pub patch_type: PatchType,
    /// The patch (YAML or JSON, read).
    pub body: Value,
    /// Where it came from, for messages: `--patch` or the file's name.
    pub file: String,
}

/// Applies a patch to a whole object (a Deployment, as JSON).
pub fn apply_patch(object: &Value, patch: &Patch) -> Result<Value, String> {
    match patch.patch_type {
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.body.clone())
                .map_err(|e| format!("not a JSON patch (a list of operations): {e}"))?;
            let mut object = object.clone();
            json_patch::patch(&mut object, &operations).map_err(|e| e.to_string())?;
            Ok(object)
        }
        PatchType::Merge => {
            if !patch.body.is_object() {
                return Err("a merge patch must be an object".to_string());
            }
            let mut object = object.clone();
            json_patch::merge(&mut object, &patch.body);
            Ok(object)
        }
        PatchType::Strategic => {
            let Value::Object(body) = &patch.body else {
                return Err("a strategic merge patch must be an object".to_string());
            };
            let Value::Object(original) = object else {
                return Err("the object to patch is not an object".to_string());
            };
            Ok(merge_map(original, body)?
                .map(Value::Object)
                .unwrap_or(Value::Null))
        }
    }
}

/// The merge key of a list field of a Deployment (and its pod template), as the
/// Kubernetes API declares it (`patchMergeKey`); `None`: the list is replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const ELEMENT_ORDER: &str = "$setElementOrder/";

/// Merges a patch map into a map; `None` when the patch deletes the map.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, String> {
    let mut result = match patch.get(DIRECTIVE).and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => Map::new(),
        Some("merge") | None => original.clone(),
        Some(other) => return Err(format!("unknown directive {DIRECTIVE}: {other}")),
    };
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| format!("{RETAIN_KEYS} must be a list"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        result.retain(|key, _| keep.contains(&key.as_str()));
    }
    for (key, value) in patch {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(ELEMENT_ORDER) {
            continue;
        }
        if let Some(list) = key.strip_prefix(DELETE_FROM) {
            let gone = value
                .as_array()
                .ok_or_else(|| format!("{key} must be a list"))?;
            if let Some(Value::Array(items)) = result.get_mut(list) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if value.is_null() {
            result.remove(key);
            continue;
        }
        let merged = match (result.get(key), value) {
            (Some(Value::Object(a)), Value::Object(b)) => match merge_map(a, b)? {
                Some(map) => Value::Object(map),
                None => {
                    result.remove(key);
                    continue;
                }
            },
            (_, Value::Object(b)) => match merge_map(&Map::new(), b)? {
                Some(map) => Value::Object(map),
                None => {
                    result.remove(key);
                    continue;
                }
            },
            (Some(Value::Array(a)), Value::Array(b)) => {
                let order = patch.get(&format!("{ELEMENT_ORDER}{key}"));
                Value::Array(merge_list(key, a, b, order)?)
            }
            (None, Value::Array(b)) => Value::Array(merge_list(key, &[], b, None)?),
            (_, other) => other.clone(),
        };
        result.insert(key.clone(), merged);
    }
    Ok(Some(result))
}

/// Merges a patch list into a list by the field's merge key, or replaces it. The order is
/// the API server's: the patch's items in the patch's order (or `$setElementOrder`'s), the
/// others in their original order, interleaved where both are in the original list.
fn merge_list(
    field: &str,
    original: &[Value],
    patch: &[Value],
    element_order: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let Some(key) = merge_key(field) else {
        return Ok(patch
            .iter()
            .filter(|item| item.get(DIRECTIVE).is_none())
            .cloned()
            .collect());
    };
    let replace = patch
        .iter()
        .any(|item| item.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"));
    let mut result: Vec<Value> = if replace {
        Vec::new()
    } else {
        original.to_vec()
    };
    for item in patch {
        let Value::Object(fields) = item else {
            return Err(format!("the items of {field} must be objects with {key}"));
        };
        if fields.get(DIRECTIVE).and_then(Value::as_str) == Some("replace") {
            continue;
        }
        let id = fields
            .get(key)
            .ok_or_else(|| format!("an item of {field} has no {key}, its merge key"))?;
        let position = result.iter().position(|o| o.get(key) == Some(id));
        match position {
            Some(i) => match &result[i] {
                Value::Object(existing) => match merge_map(existing, fields)? {
                    Some(merged) => result[i] = Value::Object(merged),
                    None => {
                        result.remove(i);
                    }
                },
                _ => result[i] = item.clone(),
            },
            None if fields.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") => {}
            None => {
                let mut fresh = fields.clone();
                fresh.remove(DIRECTIVE);
                result.push(Value::Object(fresh));
            }
        }
    }
    let patch_keys: Vec<&Value> = patch
        .iter()
        .filter(|item| item.get(DIRECTIVE).is_none())
        .filter_map(|item| item.get(key))
        .collect();
    let patch_order: Vec<&Value> = match element_order.and_then(Value::as_array) {
        Some(order) => order.iter().filter_map(|item| item.get(key)).collect(),
        None => patch_keys.clone(),
    };
    let original_order: Vec<&Value> = if replace {
        Vec::new()
    } else {
        original.iter().filter_map(|item| item.get(key)).collect()
    };
    Ok(order_like_the_api_server(
        result,
        key,
        &patch_keys,
        &patch_order,
        &original_order,
    ))
}

/// The order the API server gives a merged list (strategicpatch's normalizeElementOrder):
/// the items the patch names, sorted by the patch's order, and the others, sorted by the
/// original order, merged so that an other item goes first only when both are in the
/// original list and it was before.
fn order_like_the_api_server(
    merged: Vec<Value>,
    key: &str,
    patch_keys: &[&Value],
    patch_order: &[&Value],
    original_order: &[&Value],
) -> Vec<Value> {
    let position = |order: &[&Value], item: &Value| {
        item.get(key)
            .and_then(|id| order.iter().position(|o| *o == id))
    };
    let (mut named, mut others): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| item.get(key).is_some_and(|id| patch_keys.contains(&id)));
    named.sort_by_key(|item| position(patch_order, item).unwrap_or(usize::MAX));
    others.sort_by_key(|item| position(original_order, item).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len() + others.len());
    let (mut left, mut right) = (others.into_iter().peekable(), named.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(original_order, l), position(original_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [
            {"name": "web", "image": "web:1", "env": [{"name": "MODE", "value": "a"}],
             "args": ["--a"]},
            {"name": "log", "image": "log:1"}
        ]}}}})
    }

    fn patch(patch_type: PatchType, body: Value) -> Patch {
        Patch {
            patch_type,
            body,
            file: "--patch".into(),
        }
    }

    #[test]
    fn strategic_merges_containers_and_env_by_name_and_replaces_args() {
        let body = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "LEVEL", "value": "2"}], "args": ["--b"]},
            {"name": "proxy", "image": "envoy:1"}
        ]}}}});
        let out = apply_patch(&deployment(), &patch(PatchType::Strategic, body)).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        // The API server's order: the patch's items first where the original does not
        // order them (kubectl patch puts an added container before the others).
        let names: Vec<&str> = containers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "proxy", "log"]);
        assert_eq!(containers[0]["image"], "web:1");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "LEVEL", "value": "2"}, {"name": "MODE", "value": "a"}])
        );
        assert_eq!(containers[0]["args"], json!(["--b"]));
        assert_eq!(containers[1], json!({"name": "proxy", "image": "envoy:1"}));
        assert_eq!(out["spec"]["replicas"], 4);
    }

    #[test]
    fn strategic_directives_delete_and_replace() {
        let body = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "log", "$patch": "delete"},
                           {"name": "web", "env": [{"name": "MODE", "$patch": "delete"}]}],
            "$setElementOrder/containers": [{"name": "web"}]
        }}}});
        let out = apply_patch(&deployment(), &patch(PatchType::Strategic, body)).unwrap();
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["env"], json!([]));
        let replace = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x:1"}]}}}});
        let out = apply_patch(&deployment(), &patch(PatchType::Strategic, replace)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x:1"}])
        );
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}});
        assert!(
            apply_patch(&deployment(), &patch(PatchType::Strategic, bad))
                .unwrap_err()
                .contains("merge key")
        );
    }

    #[test]
    fn merge_replaces_lists_and_json_applies_operations() {
        let body = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        let out = apply_patch(&deployment(), &patch(PatchType::Merge, body)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "web:2"}])
        );
        let ops = json!([
            {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "b"},
            {"op": "add", "path": "/spec/template/spec/containers/1/args", "value": ["-v"]}
        ]);
        let out = apply_patch(&deployment(), &patch(PatchType::Json, ops)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "b"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["args"],
            json!(["-v"])
        );
        let failing = json!([{"op": "remove", "path": "/spec/nothing"}]);
        assert!(apply_patch(&deployment(), &patch(PatchType::Json, failing)).is_err());
        assert!(apply_patch(&deployment(), &patch(PatchType::Json, json!({"a": 1}))).is_err());
    }
}
