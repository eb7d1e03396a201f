//! The `deploy/web` (`sts/db`, `ds/agent`) argument: which workload a command acts on.

use std::fmt;

use thiserror::Error;

/// The kinds of workload kubectl-canary canaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// The kind as kubectl abbreviates it: `deploy`, `sts`, `ds`.
    pub fn short(self) -> &'static str {
        match self {
            Self::Deployment => "deploy",
            Self::StatefulSet => "sts",
            Self::DaemonSet => "ds",
        }
    }

    /// The kind as the API names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
        }
    }

    /// The kind of a `kind/` prefix, in every spelling kubectl accepts for it: the short
    /// name alone, the singular or plural resource with or without its group.
    fn of(prefix: &str) -> Option<Self> {
        let lower = prefix.to_ascii_lowercase();
        let (resource, grouped) = match lower
            .strip_suffix(".v1.apps")
            .or_else(|| lower.strip_suffix(".apps"))
        {
            Some(resource) => (resource, true),
            None => (lower.as_str(), false),
        };
        match (resource, grouped) {
            ("deploy", false) | ("deployment" | "deployments", _) => Some(Self::Deployment),
            ("sts", false) | ("statefulset" | "statefulsets", _) => Some(Self::StatefulSet),
            ("ds", false) | ("daemonset" | "daemonsets", _) => Some(Self::DaemonSet),
            _ => None,
        }
    }
}

/// A workload named on the command line: `deploy/web` (also `deployment/web`,
/// `deployments.apps/web` or a bare `web`), `sts/db` (`statefulset/db`...) or `ds/agent`
/// (`daemonset/agent`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
}

/// Why a workload argument was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    /// The argument names a kind kubectl-canary does not canary.
    #[error(
        "{kind}/{name} is not a workload kubectl-canary canaries: write deploy/<name>, sts/<name> or ds/<name>"
    )]
    UnknownKind {
        /// The kind as written.
        kind: String,
        /// The name as written.
        name: String,
    },
    /// The name is empty or not a valid object name.
    #[error(
        "'{0}' is not a valid workload name: use lower-case letters, digits, '-' and '.', at most 253 characters"
    )]
    InvalidName(String),
}

impl WorkloadRef {
    /// The Deployment `name`.
    pub fn deployment(name: impl Into<String>) -> Self {
        Self {
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }

    /// Parses `kind/name` or a bare name (a Deployment), accepting every spelling kubectl
    /// accepts for the three kinds.
    ///
    /// ```
    /// use canary_core::target::{WorkloadKind, WorkloadRef};
    ///
    /// assert_eq!(WorkloadRef::parse("web").unwrap().kind, WorkloadKind::Deployment);
    /// assert_eq!(WorkloadRef::parse("statefulsets.apps/db").unwrap().kind, WorkloadKind::StatefulSet);
    /// assert!(WorkloadRef::parse("cronjob/x").is_err());
    /// ```
    pub fn parse(arg: &str) -> Result<Self, TargetError> {
        let (kind, name) = match arg.split_once('/') {
            Some((kind, name)) => (
                WorkloadKind::of(kind).ok_or_else(|| TargetError::UnknownKind {
                    kind: kind.to_string(),
                    name: name.to_string(),
                })?,
                name,
            ),
            None => (WorkloadKind::Deployment, arg),
        };
        if !is_dns_subdomain(name) {
            return Err(TargetError::InvalidName(name.to_string()));
        }
        Ok(Self {
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.short(), self.name)
    }
}

/// RFC 1123 subdomain, the rule for workload names.
fn is_dns_subdomain(name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubectl_spellings() {
        let cases = [
            ("deploy/web", WorkloadKind::Deployment),
            ("deployment/web", WorkloadKind::Deployment),
            ("deployments.apps/web", WorkloadKind::Deployment),
            ("Deployment.v1.apps/web", WorkloadKind::Deployment),
            ("web", WorkloadKind::Deployment),
            ("sts/web", WorkloadKind::StatefulSet),
            ("statefulset/web", WorkloadKind::StatefulSet),
            ("statefulsets.apps/web", WorkloadKind::StatefulSet),
            ("ds/web", WorkloadKind::DaemonSet),
            ("daemonset/web", WorkloadKind::DaemonSet),
            ("daemonsets.v1.apps/web", WorkloadKind::DaemonSet),
        ];
        for (arg, kind) in cases {
            let target = WorkloadRef::parse(arg).unwrap();
            assert_eq!((target.kind, target.name.as_str()), (kind, "web"), "{arg}");
        }
        assert_eq!(WorkloadRef::parse("sts/db").unwrap().to_string(), "sts/db");
    }

    #[test]
    fn refuses_other_kinds_and_bad_names() {
        for arg in ["rs/web", "cronjob/web", "sts.apps/web", "ds.v1.apps/web"] {
            assert!(
                matches!(
                    WorkloadRef::parse(arg),
                    Err(TargetError::UnknownKind { .. })
                ),
                "{arg}"
            );
        }
        assert!(matches!(
            WorkloadRef::parse("deploy/Web"),
            Err(TargetError::InvalidName(_))
        ));
        assert!(matches!(
            WorkloadRef::parse("sts/"),
            Err(TargetError::InvalidName(_))
        ));
    }
}
