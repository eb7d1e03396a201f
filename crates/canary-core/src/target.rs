//! The `deploy/web` argument: which workload a command acts on.

use std::fmt;

use thiserror::Error;

/// A Deployment named on the command line (`deploy/web`, `deployment/web`,
/// `deployments.apps/web` or a bare `web`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRef {
    /// The Deployment's name.
    pub name: String,
}

/// Why a workload argument was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    /// The argument names another kind of workload.
    #[error(
        "{kind}/{name} is not a Deployment: kubectl-canary works on Deployments only (write deploy/<name>)"
    )]
    NotADeployment {
        /// The kind as written.
        kind: String,
        /// The name as written.
        name: String,
    },
    /// The name is empty or not a valid object name.
    #[error(
        "'{0}' is not a valid Deployment name: use lower-case letters, digits, '-' and '.', at most 253 characters"
    )]
    InvalidName(String),
}

impl DeploymentRef {
    /// Parses `kind/name` or a bare name, accepting every spelling kubectl accepts for
    /// Deployments.
    pub fn parse(arg: &str) -> Result<Self, TargetError> {
        let (kind, name) = match arg.split_once('/') {
            Some((kind, name)) => (Some(kind), name),
            None => (None, arg),
        };
        if let Some(kind) = kind {
            let lower = kind.to_ascii_lowercase();
            let is_deployment = matches!(
                lower.as_str(),
                "deploy"
                    | "deployment"
                    | "deployments"
                    | "deployment.apps"
                    | "deployments.apps"
                    | "deployment.v1.apps"
                    | "deployments.v1.apps"
            );
            if !is_deployment {
                return Err(TargetError::NotADeployment {
                    kind: kind.to_string(),
                    name: name.to_string(),
                });
            }
        }
        if !is_dns_subdomain(name) {
            return Err(TargetError::InvalidName(name.to_string()));
        }
        Ok(Self {
            name: name.to_string(),
        })
    }
}

impl fmt::Display for DeploymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deploy/{}", self.name)
    }
}

/// RFC 1123 subdomain, the rule for Deployment names.
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
        for arg in [
            "deploy/web",
            "deployment/web",
            "deployments.apps/web",
            "web",
        ] {
            assert_eq!(DeploymentRef::parse(arg).unwrap().name, "web", "{arg}");
        }
    }

    #[test]
    fn refuses_other_kinds_and_bad_names() {
        assert!(matches!(
            DeploymentRef::parse("sts/web"),
            Err(TargetError::NotADeployment { .. })
        ));
        assert!(matches!(
            DeploymentRef::parse("deploy/Web"),
            Err(TargetError::InvalidName(_))
        ));
        assert!(matches!(
            DeploymentRef::parse("deploy/"),
            Err(TargetError::InvalidName(_))
        ));
    }
}
