//! Manifests: a YAML (or JSON) stream of one or more documents, as `kubectl apply -f`
//! reads it, each document kept with the file and line it starts at.

use serde_json::Value;

use super::error::ReleaseError;
use crate::target::WorkloadRef;

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it was read from (`-` for standard input).
    pub file: String,
    /// 1-based line where its document starts.
    pub line: usize,
    /// The object.
    pub object: Value,
}

impl Document {
    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// Whether it is an `apps` Deployment.
    pub fn is_deployment(&self) -> bool {
        self.is_apps("Deployment")
    }

    /// Whether it is an `apps` object of `kind` (`StatefulSet`).
    pub fn is_apps(&self, kind: &str) -> bool {
        self.kind() == kind
            && self
                .object
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("apps/"))
    }

    /// `Kind/name (line N)`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{} (line {})", self.kind(), self.name(), self.line)
    }
}

/// Reads a stream of YAML documents separated by `---` lines (JSON is YAML too). Empty
/// documents are skipped; a `kind: List` is read as its items (at the List's line). An
/// error names the file and the line in it.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, ReleaseError> {
    let mut documents = Vec::new();
    for (start, body) in split_documents(text) {
        if body.trim().is_empty() {
            continue;
        }
        let object: Value =
            parse_yaml(&body).map_err(|(line, message)| ReleaseError::Unparseable {
                file: file.to_string(),
                line: Some(line.map_or(start, |l| start + l - 1)),
                message,
            })?;
        if object.is_null() {
            continue;
        }
        let document = |object: Value| -> Result<Document, ReleaseError> {
            if !object.is_object() || object.get("kind").and_then(Value::as_str).is_none() {
                return Err(ReleaseError::NotAnObject {
                    file: file.to_string(),
                    line: start,
                    message: "this document is not a Kubernetes object (no kind)".to_string(),
                });
            }
            Ok(Document {
                file: file.to_string(),
                line: start,
                object,
            })
        };
        if object.get("kind").and_then(Value::as_str) == Some("List") {
            for item in object
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                documents.push(document(item.clone())?);
            }
        } else {
            documents.push(document(object)?);
        }
    }
    Ok(documents)
}

/// Reads one YAML (or JSON) document; an error is its 1-based line in the document, when
/// known, and the parser's words (without its own location, which the caller gives
/// relative to the file).
pub fn parse_yaml(text: &str) -> Result<Value, (Option<usize>, String)> {
    serde_saphyr::from_str(text).map_err(|error: serde_saphyr::Error| {
        let line = error.location().map(|l| l.line() as usize);
        let column = error.location().map(|l| l.column());
        let full = error.to_string();
        let first = full.lines().next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        // Drop the parser's "line L column C: " (relative to the document).
        let words = match first.split_once(": ") {
            Some((place, rest)) if place.starts_with("line ") => rest,
            _ => first,
        };
        let message = match column {
            Some(column) => format!("column {column}: {words}"),
            None => words.to_string(),
        };
        (line, message)
    })
}

/// The documents of a stream with the 1-based line each starts at (the line after its
/// `---`, or 1).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if separator {
            documents.push((i + 2, String::new()));
            // Content after `--- ` on the same line belongs to the next document.
            let rest = line[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                let last = documents.last_mut().expect("just pushed");
                last.0 = i + 1;
                last.1.push_str(rest);
                last.1.push('\n');
            }
        } else if line == "..." {
            continue;
        } else {
            let last = documents.last_mut().expect("never empty");
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    documents
}

/// The Deployment `name` of a manifest: [`find_workload`] of `deploy/NAME`.
pub fn find_deployment<'a>(
    documents: &'a [Document],
    file: &str,
    namespace: &str,
    name: &str,
) -> Result<&'a Document, ReleaseError> {
    find_workload(documents, file, namespace, &WorkloadRef::deployment(name))
}

/// The document of `target` in a manifest: found by kind, name and namespace (a document
/// without a namespace is for the command's namespace).
pub fn find_workload<'a>(
    documents: &'a [Document],
    file: &str,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<&'a Document, ReleaseError> {
    let (kind, name) = (target.kind.name(), target.name.as_str());
    let named: Vec<&Document> = documents
        .iter()
        .filter(|d| d.is_apps(kind) && d.name() == name)
        .collect();
    if let Some(found) = named
        .iter()
        .find(|d| d.namespace().is_none_or(|n| n == namespace))
    {
        return Ok(found);
    }
    if let Some(other) = named.first() {
        return Err(ReleaseError::OtherNamespace {
            file: other.file.clone(),
            line: other.line,
            kind: target.kind,
            name: name.to_string(),
            found: other.namespace().unwrap_or_default().to_string(),
            expected: namespace.to_string(),
        });
    }
    let found = if documents.is_empty() {
        "no object at all".to_string()
    } else {
        documents
            .iter()
            .map(Document::describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(ReleaseError::NoSuchWorkload {
        file: file.to_string(),
        kind: target.kind,
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
---
# the Deployment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: other
";

    #[test]
    fn documents_are_read_with_their_lines_and_found_by_kind_namespace_and_name() {
        let documents = parse_documents("web.yaml", STREAM).unwrap();
        assert_eq!(
            documents.iter().map(Document::describe).collect::<Vec<_>>(),
            [
                "Service/web (line 1)",
                "Deployment/web (line 6)",
                "Deployment/api (line 14)"
            ]
        );
        let web = find_deployment(&documents, "web.yaml", "default", "web").unwrap();
        assert_eq!(web.object["spec"]["replicas"], 4);
        let error = find_deployment(&documents, "web.yaml", "default", "db").unwrap_err();
        assert!(
            error.to_string().contains("Service/web (line 1)"),
            "{error}"
        );
        let error = find_deployment(&documents, "web.yaml", "default", "api").unwrap_err();
        assert_eq!(
            error.to_string(),
            "web.yaml, line 14: Deployment api is for namespace other, the canary is in namespace \
             default: pass -n other, or use the manifest of this namespace"
        );
    }

    #[test]
    fn an_unparseable_document_names_its_file_and_line() {
        let text = "kind: Service\nmetadata:\n  name: a\n---\nkind: Deployment\nmetadata:\n  name: [unclosed\n";
        let error = parse_documents("m.yaml", text).unwrap_err();
        let ReleaseError::Unparseable { line, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(line.is_some_and(|l| l >= 5), "{error}");
        assert!(error.to_string().starts_with("m.yaml, line "), "{error}");
        let error = parse_documents("m.yaml", "---\n- a\n- b\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "m.yaml, line 2: this document is not a Kubernetes object (no kind)"
        );
    }

    #[test]
    fn json_and_lists_are_read() {
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}]}"#;
        let documents = parse_documents("-", json).unwrap();
        assert_eq!(documents.len(), 1);
        assert!(documents[0].is_deployment());
    }
}
