//! The analysis spec of a Deployment: a ConfigMap in its namespace named by the policy,
//! read, size-limited, parsed with the CLI's parser and bounded for controller mode.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use canary_core::analysis_spec::auto_analysis_spec;
use canary_core::analysis_spec::{AnalysisSpec, PrometheusAddress, parse_analysis_spec};
use canary_core::gitops::policy::{ANALYSIS_KEY, AUTO_ANALYSIS};
use canary_core::gitops::spec_bounds::{MAX_SPEC_BYTES, bound_for_controller};

/// Why the analysis spec cannot be used: said in an Event, and the canary is held.
#[derive(Debug, thiserror::Error)]
pub enum SpecSourceError {
    /// The ConfigMap is missing or has no spec.
    #[error("analysis spec configmap/{name}: {detail}")]
    Missing {
        /// The ConfigMap.
        name: String,
        /// What is missing.
        detail: String,
    },
    /// The spec is malformed or out of bounds.
    #[error("analysis spec configmap/{name} key {ANALYSIS_KEY}: {detail}")]
    Invalid {
        /// The ConfigMap.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The API server could not be asked.
    #[error("reading analysis spec configmap/{name}: {source}")]
    Api {
        /// The ConfigMap.
        name: String,
        /// The error.
        source: kube::Error,
    },
}

/// Reads the spec named `name` from `namespace`.
pub async fn read_analysis_spec(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    prometheus: Option<&PrometheusAddress>,
) -> Result<AnalysisSpec, SpecSourceError> {
    if name == AUTO_ANALYSIS {
        let mut spec = auto_analysis_spec();
        bound_for_controller(&mut spec, prometheus).map_err(|detail| SpecSourceError::Invalid {
            name: name.to_string(),
            detail,
        })?;
        return Ok(spec);
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = api
        .get_opt(name)
        .await
        .map_err(|source| SpecSourceError::Api {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| SpecSourceError::Missing {
            name: name.to_string(),
            detail: format!("not found in namespace {namespace}"),
        })?;
    let text = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(ANALYSIS_KEY))
        .ok_or_else(|| SpecSourceError::Missing {
            name: name.to_string(),
            detail: format!("has no key {ANALYSIS_KEY}"),
        })?;
    let invalid = |detail: String| SpecSourceError::Invalid {
        name: name.to_string(),
        detail,
    };
    if text.len() > MAX_SPEC_BYTES {
        return Err(invalid(format!(
            "{} bytes; at most {MAX_SPEC_BYTES}",
            text.len()
        )));
    }
    let mut spec = parse_analysis_spec(text).map_err(|e| invalid(e.to_string()))?;
    bound_for_controller(&mut spec, prometheus).map_err(invalid)?;
    Ok(spec)
}
