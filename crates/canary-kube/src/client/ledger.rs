//! What this run changed in the cluster, as seen on the wire: every mutating request that
//! was sent (reviews excepted), with whether its answer confirmed it.

use std::sync::{Arc, Mutex};

/// One change this run made, or may have made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `created`, `updated`, `patched` or `deleted`.
    pub action: &'static str,
    /// `deployments/web`, `configmaps/web.kubectl-canary`.
    pub object: String,
    /// Whether the API server confirmed it (false: the answer was lost, it may have been
    /// applied).
    pub confirmed: bool,
}

impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.confirmed {
            write!(f, "{} {}", self.action, self.object)
        } else {
            write!(
                f,
                "perhaps {} {} (its answer was lost)",
                self.action, self.object
            )
        }
    }
}

/// The changes of this run, shared by every clone of the client.
#[derive(Debug, Clone)]
pub struct WriteLedger(Arc<Mutex<Vec<Write>>>, Keeping);

/// Whether a ledger keeps what it is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keeping {
    Everything,
    Nothing,
}

impl Default for WriteLedger {
    fn default() -> Self {
        Self(Arc::default(), Keeping::Everything)
    }
}

impl WriteLedger {
    /// A ledger that keeps nothing, for a long-running process (the GitOps controller):
    /// there is no run to report on, and a list of every write would only grow.
    pub fn discarding() -> Self {
        Self(Arc::default(), Keeping::Nothing)
    }

    /// Records a change.
    pub fn push(&self, write: Write) {
        if self.1 == Keeping::Nothing {
            return;
        }
        if let Ok(mut writes) = self.0.lock() {
            writes.push(write);
        }
    }

    /// The changes so far, oldest first.
    pub fn writes(&self) -> Vec<Write> {
        self.0.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Whether this run has (or may have) changed anything.
    pub fn is_empty(&self) -> bool {
        self.0.lock().map(|w| w.is_empty()).unwrap_or(false)
    }

    /// One line for an error message: what this run changed, or that it changed nothing.
    pub fn summary(&self) -> String {
        let writes = self.writes();
        if writes.is_empty() {
            return "this run changed nothing".into();
        }
        let list: Vec<String> = writes.iter().map(ToString::to_string).collect();
        format!("this run already changed the cluster: {}", list.join(", "))
    }
}

/// Names a mutating request for the ledger: the action from the method, the object from
/// the path (and, for a create, the name in the body). `None` for a request that changes
/// nothing (a read, an access review) or an Event (a note, not state).
pub fn describe(method: &http::Method, path: &str, body: &[u8]) -> Option<(&'static str, String)> {
    let action = match *method {
        http::Method::POST => "created",
        http::Method::PUT => "updated",
        http::Method::PATCH => "patched",
        http::Method::DELETE => "deleted",
        _ => return None,
    };
    if super::retry::is_review(path) {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let at = segments.iter().position(|s| *s == "namespaces")?;
    let resource = segments.get(at + 2)?;
    if *resource == "events" {
        return None;
    }
    let name = match segments.get(at + 3) {
        Some(name) => (*name).to_string(),
        None => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|o| o.pointer("/metadata/name")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "(new)".into()),
    };
    Some((action, format!("{resource}/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn describes_writes_and_ignores_reads_reviews_and_events() {
        assert_eq!(
            describe(
                &Method::PUT,
                "/apis/apps/v1/namespaces/a/deployments/web",
                b""
            ),
            Some(("updated", "deployments/web".into()))
        );
        assert_eq!(
            describe(
                &Method::POST,
                "/api/v1/namespaces/a/configmaps",
                br#"{"metadata":{"name":"web.kubectl-canary"}}"#
            ),
            Some(("created", "configmaps/web.kubectl-canary".into()))
        );
        assert_eq!(
            describe(
                &Method::GET,
                "/apis/apps/v1/namespaces/a/deployments/web",
                b""
            ),
            None
        );
        assert_eq!(
            describe(
                &Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                b"{}"
            ),
            None
        );
        assert_eq!(
            describe(&Method::POST, "/api/v1/namespaces/a/events", b"{}"),
            None
        );
    }

    #[test]
    fn a_discarding_ledger_keeps_nothing() {
        let ledger = WriteLedger::discarding();
        ledger.push(Write {
            action: "updated",
            object: "deployments/web".into(),
            confirmed: true,
        });
        assert!(ledger.writes().is_empty());
    }

    #[test]
    fn summary_says_nothing_changed_only_when_true() {
        let ledger = WriteLedger::default();
        assert_eq!(ledger.summary(), "this run changed nothing");
        ledger.push(Write {
            action: "updated",
            object: "deployments/web".into(),
            confirmed: false,
        });
        assert_eq!(
            ledger.summary(),
            "this run already changed the cluster: perhaps updated deployments/web (its answer was lost)"
        );
    }
}
