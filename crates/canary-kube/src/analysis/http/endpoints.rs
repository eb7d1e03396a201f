//! Which pods a Service sends traffic to, on which port: its ready endpoints (from its
//! EndpointSlices), split into canary and stable pods, as pod proxy paths.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use canary_core::analysis_spec::HttpSpec;

use super::super::{AnalysisTarget, Side, list_side_pods};
use super::send::pod_proxy_path;

/// A Service's ready endpoints as the check uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ServiceEndpoints {
    /// All ready endpoints (canary, stable and any other pods the Service selects).
    pub(super) ready: usize,
    /// Pod proxy paths of the ready canary endpoints, on the port the Service targets.
    pub(super) canary_paths: Vec<String>,
    /// The same for the stable pods.
    pub(super) stable_paths: Vec<String>,
}

/// The ready endpoints of `service` for the check's port (the Service's port).
pub(super) async fn of_service(
    client: &kube::Client,
    target: &AnalysisTarget,
    service: &str,
    settings: &HttpSpec,
) -> Result<ServiceEndpoints, String> {
    let namespace = &target.namespace;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let found = services
        .get(service)
        .await
        .map_err(|e| format!("cannot read service {service}: {e}"))?;
    let port_name = found
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == i32::from(settings.port)))
        .map(|p| p.name.clone().unwrap_or_default())
        .ok_or_else(|| format!("service {service} has no port {}", settings.port))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let slices = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .map_err(|e| format!("cannot list the endpoints of service {service}: {e}"))?;
    let (canary, stable) = futures::join!(
        list_side_pods(client, target, Side::Canary),
        list_side_pods(client, target, Side::Stable)
    );
    let names = |pods: Vec<k8s_openapi::api::core::v1::Pod>| -> BTreeSet<String> {
        pods.iter().map(|p| p.name_any()).collect()
    };
    let (canary, stable) = (names(canary?), names(stable?));
    let mut endpoints = ServiceEndpoints::default();
    for slice in &slices.items {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            // An unset `ready` means ready (the API's convention for consumers).
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            endpoints.ready += 1;
            let Some(pod) = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone())
            else {
                continue;
            };
            let path = pod_proxy_path(namespace, &pod, port, &settings.path);
            if canary.contains(&pod) {
                endpoints.canary_paths.push(path);
            } else if stable.contains(&pod) {
                endpoints.stable_paths.push(path);
            }
        }
    }
    Ok(endpoints)
}
