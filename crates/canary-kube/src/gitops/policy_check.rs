//! At start the controller checks that the API server serves MutatingAdmissionPolicy
//! (`admissionregistration.k8s.io/v1`, Kubernetes 1.36+) and that the brake's policy and
//! binding are installed. Without them a Git change would roll out unbraked while the
//! controller believed it was making canaries, so it refuses to start.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use crate::error::is_status;

/// The name of the policy and of its binding in `deploy/policy.yaml` (the default of the
/// controller's `--policy-name`).
pub const POLICY_NAME: &str = "kubectl-canary-brake";

/// Why the controller cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCheckError {
    /// The API or the object is missing.
    #[error(
        "{what} {name} is not installed, or this cluster does not serve \
         admissionregistration.k8s.io/v1 {plural} (Kubernetes 1.36 or later): without it Git \
         changes would roll out unbraked. Install deploy/ (kubectl apply -k deploy/) on a \
         cluster of Kubernetes 1.36 or later; the CLI (kubectl canary start) works on older ones"
    )]
    Missing {
        /// Its name.
        name: String,
        /// Policy or binding.
        what: &'static str,
        /// The resource.
        plural: &'static str,
    },
    /// Reading failed otherwise.
    #[error("checking the admission policy: {0}")]
    Api(kube::Error),
}

/// Checks that the policy `name` and its binding of the same name exist.
pub async fn require_brake_policy(
    client: &kube::Client,
    name: &str,
) -> Result<(), PolicyCheckError> {
    for (kind, plural, what) in [
        (
            "MutatingAdmissionPolicy",
            "mutatingadmissionpolicies",
            "the MutatingAdmissionPolicy",
        ),
        (
            "MutatingAdmissionPolicyBinding",
            "mutatingadmissionpolicybindings",
            "the MutatingAdmissionPolicyBinding",
        ),
    ] {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            plural,
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.get(name).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                return Err(PolicyCheckError::Missing {
                    name: name.to_string(),
                    what,
                    plural,
                });
            }
            Err(e) => return Err(PolicyCheckError::Api(e)),
        }
    }
    Ok(())
}
