//! The named endpoints of a namespace: the Secret `kubectl-canary-notify`, key
//! `endpoints.yaml` ([`canary_core::notify::parse_endpoints`]). Only a Secret: endpoint URLs
//! and signing keys are secrets, and the controller's RBAC grants `get` on this one Secret
//! by name. Annotations and flags only name endpoints.

use k8s_openapi::api::core::v1::Secret;
use thiserror::Error;

use canary_core::notify::endpoints::{MAX_CONFIG_BYTES, SECRET_KEY, SECRET_NAME};
use canary_core::notify::{EndpointError, EndpointsConfig, parse_endpoints};

use crate::error::{CanaryError, is_status};

/// Why named endpoints cannot be used.
#[derive(Debug, Error)]
pub enum NotifyConfigError {
    /// The Secret does not exist.
    #[error(
        "no Secret {SECRET_NAME} in namespace {namespace} to look up the endpoint(s) {names} in; create it \
         (docs/notifications.md) or give a URL"
    )]
    NoSecret {
        /// The namespace.
        namespace: String,
        /// The names looked up, joined.
        names: String,
    },
    /// The Secret has no `endpoints.yaml`, or it cannot be read.
    #[error("the Secret {SECRET_NAME} in namespace {namespace}, key {SECRET_KEY}: {error}")]
    Invalid {
        /// The namespace.
        namespace: String,
        /// What is wrong.
        error: EndpointError,
    },
    /// Names that the Secret does not list.
    #[error(
        "no endpoint named {missing} in the Secret {SECRET_NAME} of namespace {namespace} (it lists: {listed})"
    )]
    Unknown {
        /// The namespace.
        namespace: String,
        /// The missing names, joined.
        missing: String,
        /// The names it lists, joined.
        listed: String,
    },
    /// The Secret could not be read (RBAC, the API server).
    #[error(transparent)]
    Read(#[from] CanaryError),
}

impl From<NotifyConfigError> for CanaryError {
    /// What the CLI reports: a usage error (exit 2) when the names or the Secret are wrong,
    /// the read's own error otherwise.
    fn from(error: NotifyConfigError) -> Self {
        match error {
            NotifyConfigError::Read(error) => error,
            other => CanaryError::Usage(other.to_string()),
        }
    }
}

/// Reads the namespace's endpoints; `None` when the Secret does not exist.
pub async fn read_endpoints(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<EndpointsConfig>, NotifyConfigError> {
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = match api.get(SECRET_NAME).await {
        Ok(secret) => secret,
        Err(error) if is_status(&error, 404) => return Ok(None),
        Err(error) => {
            return Err(CanaryError::api(
                format!("reading the Secret {SECRET_NAME} in namespace {namespace}"),
                error,
            )
            .into());
        }
    };
    let invalid = |message: String| NotifyConfigError::Invalid {
        namespace: namespace.to_string(),
        error: EndpointError::Invalid {
            line: None,
            column: None,
            field: None,
            message,
        },
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(SECRET_KEY))
        .map(|value| value.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(SECRET_KEY))
                .map(|value| value.clone().into_bytes())
        })
        .ok_or_else(|| invalid("missing".into()))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(invalid(format!("longer than {MAX_CONFIG_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    parse_endpoints(&text)
        .map(Some)
        .map_err(|error| NotifyConfigError::Invalid {
            namespace: namespace.to_string(),
            error,
        })
}

/// The endpoints named `names` in the namespace's Secret, with its report base URL.
/// Without names nothing is read. A missing Secret or name is an error naming them.
pub async fn look_up(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
) -> Result<EndpointsConfig, NotifyConfigError> {
    if names.is_empty() {
        return Ok(EndpointsConfig::default());
    }
    let Some(config) = read_endpoints(client, namespace).await? else {
        return Err(NotifyConfigError::NoSecret {
            namespace: namespace.to_string(),
            names: names.join(", "),
        });
    };
    select(config, namespace, names)
}

/// The endpoints named `names` that the namespace's Secret lists, and an error naming the
/// ones it does not list (or the Secret missing): the controller sends to what there is and
/// warns about the rest.
pub async fn look_up_present(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
) -> Result<(EndpointsConfig, Option<NotifyConfigError>), NotifyConfigError> {
    if names.is_empty() {
        return Ok((EndpointsConfig::default(), None));
    }
    let Some(config) = read_endpoints(client, namespace).await? else {
        return Err(NotifyConfigError::NoSecret {
            namespace: namespace.to_string(),
            names: names.join(", "),
        });
    };
    let present: Vec<String> = names
        .iter()
        .filter(|name| config.get(name).is_some())
        .cloned()
        .collect();
    let missing = select(config.clone(), namespace, names).err();
    Ok((select(config, namespace, &present)?, missing))
}

/// The endpoints of `config` named `names`, in that order (each once).
pub(crate) fn select(
    config: EndpointsConfig,
    namespace: &str,
    names: &[String],
) -> Result<EndpointsConfig, NotifyConfigError> {
    let missing: Vec<&str> = names
        .iter()
        .filter(|name| config.get(name).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let listed = config.names();
        return Err(NotifyConfigError::Unknown {
            namespace: namespace.to_string(),
            missing: missing.join(", "),
            listed: if listed.is_empty() {
                "none".into()
            } else {
                listed.join(", ")
            },
        });
    }
    let mut endpoints = Vec::new();
    for name in names {
        if let Some(endpoint) = config.get(name)
            && !endpoints
                .iter()
                .any(|e: &canary_core::notify::Endpoint| &e.name == name)
        {
            endpoints.push(endpoint.clone());
        }
    }
    Ok(EndpointsConfig {
        endpoints,
        report_base_url: config.report_base_url,
    })
}
