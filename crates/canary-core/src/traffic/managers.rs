//! Who else writes a Service: a GitOps controller that applies it from Git would put a
//! changed selector or affinity back (self-heal, drift correction) and fight the canary.

/// Field managers of the GitOps controllers the tool knows: Argo CD (server-side apply
/// and its client-side apply), Flux's kustomize-controller and helm-controller.
pub const GITOPS_MANAGERS: &[&str] = &[
    "argocd-controller",
    "argocd-application-controller",
    "kustomize-controller",
    "helm-controller",
];

/// The first GitOps controller among a Service's field managers, if any.
pub fn gitops_manager<'a>(managers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    managers
        .into_iter()
        .find(|m| GITOPS_MANAGERS.contains(m))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_argo_and_flux_but_not_kubectl() {
        assert_eq!(
            gitops_manager(["kubectl-client-side-apply", "kubectl-expose"]),
            None
        );
        assert_eq!(
            gitops_manager(["kubectl", "argocd-controller"]).as_deref(),
            Some("argocd-controller")
        );
        assert_eq!(
            gitops_manager(["kustomize-controller"]).as_deref(),
            Some("kustomize-controller")
        );
    }
}
