//! The Services in front of a Deployment: found (never asked for), checked before anything
//! changes, pinned for a dark canary or sticky sessions, and put back. The rules are in
//! [`canary_core::traffic`]; this module reads and writes Services.
//!
//! Each Service carries what the tool changed in its own annotation
//! ([`PIN_ANNOTATION`]), written in the same update as the change, so every later run
//! finds what to put back on the Services themselves, whatever happened to the record.

use std::collections::{BTreeMap, BTreeSet};

use canary_core::traffic::{
    PIN_ANNOTATION, Release, Restore, ServicePin, ServiceTraffic, TrafficOptions, gitops_manager,
    restore_step, selects,
};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ListParams, PostParams};

use crate::engine::mutation_point;
use crate::error::{CanaryError, Result};

/// How many times a write that lost a race (409 Conflict) is tried again, re-read each time.
const CONFLICT_RETRIES: usize = 5;

mod switch;
pub use self::switch::{SWITCH_SETTLE, switch_to, wait_switched};

/// One Service in front of the Deployment, as read.
#[derive(Debug, Clone)]
pub struct FrontService {
    /// Its name.
    pub name: String,
    /// Its traffic fields now.
    pub traffic: ServiceTraffic,
    /// The pin it carries, if any (and whether the annotation could be read).
    pub pin: Option<std::result::Result<ServicePin, String>>,
    /// Its field managers.
    pub managers: Vec<String>,
}

/// What releasing the pins did.
#[derive(Debug, Default, Clone)]
pub struct Released {
    /// Services written (fields and annotation), by name.
    pub restored: Vec<String>,
    /// Services someone else changed meanwhile: their change kept, the annotation removed.
    pub changed_by_others: Vec<String>,
    /// RBAC does not let this user list Services: pins, if any, could not be seen.
    pub services_hidden: bool,
}

/// The Services of the namespace, or None when RBAC forbids listing them (a user without
/// rights on Services cannot have pinned any, but another user may have: callers say so).
async fn list_services(api: &Api<Service>) -> Result<Option<Vec<Service>>> {
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(None),
        Err(e) => Err(CanaryError::api("listing Services", e)),
    }
}

/// The traffic fields of a Service.
pub fn traffic_of(service: &Service) -> ServiceTraffic {
    let spec = service.spec.clone().unwrap_or_default();
    ServiceTraffic {
        selector: spec.selector.unwrap_or_default(),
        session_affinity: spec.session_affinity,
        session_affinity_config: spec
            .session_affinity_config
            .and_then(|c| serde_json::to_value(c).ok()),
    }
}

fn pin_of(service: &Service) -> Option<std::result::Result<ServicePin, String>> {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PIN_ANNOTATION))
        .map(|text| ServicePin::parse(text))
}

fn front(service: &Service) -> FrontService {
    FrontService {
        name: service.metadata.name.clone().unwrap_or_default(),
        traffic: traffic_of(service),
        pin: pin_of(service),
        managers: service
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect(),
    }
}

/// The Services of `namespace`; that they may not be listed is an error naming the verb,
/// the resource and what `command` (e.g. "a Blue/Green switch needs") needed them for.
async fn services_or_forbidden(
    client: &kube::Client,
    namespace: &str,
    command: &str,
) -> Result<Vec<Service>> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    match list_services(&api).await? {
        Some(items) => Ok(items),
        None => Err(CanaryError::Forbidden {
            who: format!("user '{}'", crate::preflight::whoami(client).await),
            verb: "list".into(),
            resource: "services".into(),
            namespace: namespace.to_string(),
            command: command.into(),
        }),
    }
}

/// The Services of `namespace` that send traffic to pods labelled `pod_labels` (the
/// Deployment's pod template), plus any carrying a pin of this Deployment (pinned, they
/// may no longer match the template, e.g. after a promotion).
pub async fn services_in_front(
    client: &kube::Client,
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    deployment_uid: &str,
) -> Result<Vec<FrontService>> {
    let items = services_or_forbidden(
        client,
        namespace,
        "`kubectl canary start --dark/--sticky` needs",
    )
    .await?;
    Ok(items
        .iter()
        .map(front)
        .filter(|s| {
            selects(&s.traffic.selector, pod_labels)
                || matches!(&s.pin, Some(Ok(p)) if p.deployment_uid == deployment_uid)
        })
        .collect())
}

/// Checks, before anything changes, that the tool may and should change every Service in
/// front of the Deployment: RBAC allows `update` on each (SelfSubjectAccessReview, by name);
/// no GitOps controller manages it (it would put the fields back); no other Deployment's
/// canary pins it; and, for a dark canary, it selects no pod of anything but this
/// Deployment (pinning it to one ReplicaSet would cut the others off).
pub async fn check_changeable(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    deployment_uid: &str,
    services: &[FrontService],
    options: TrafficOptions,
    own_hashes: &BTreeSet<String>,
) -> Result<()> {
    if services.is_empty() {
        return Err(CanaryError::Refused(format!(
            "no Service in namespace '{namespace}' selects the pods of deploy/{deployment}, so --dark/--sticky \
             have nothing to act on; nothing was changed (create the Service first, or start without them)"
        )));
    }
    for service in services {
        let name = &service.name;
        if let Some(manager) = gitops_manager(service.managers.iter().map(String::as_str)) {
            return Err(CanaryError::Refused(format!(
                "service/{name} is managed by the GitOps controller '{manager}' (its field managers), which \
                 would put its selector and affinity back while the canary runs; nothing was changed. \
                 Start without --dark/--sticky, or make the change in Git (or pause that application's sync) first"
            )));
        }
        match &service.pin {
            Some(Ok(pin)) if pin.deployment_uid != deployment_uid => {
                return Err(CanaryError::Refused(format!(
                    "service/{name} is pinned by the canary of deploy/{} (annotation {PIN_ANNOTATION}); \
                     nothing was changed; finish that canary first",
                    pin.deployment
                )));
            }
            Some(Err(e)) => {
                return Err(CanaryError::Refused(format!(
                    "service/{name} carries an unreadable {PIN_ANNOTATION} annotation ({e}); nothing was changed; \
                     a writer of Services must look at it and remove it"
                )));
            }
            _ => {}
        }
        if !may_update_service(client, namespace, name).await? {
            return Err(CanaryError::Forbidden {
                who: format!("user '{}'", crate::preflight::whoami(client).await),
                verb: "update".into(),
                resource: format!("services/{name}"),
                namespace: namespace.to_string(),
                command: "`kubectl canary start --dark/--sticky` needs".into(),
            });
        }
        if options.dark && service.pin.is_none() {
            let foreign =
                pods_of_others(client, namespace, &service.traffic.selector, own_hashes).await?;
            if let Some(pod) = foreign {
                return Err(CanaryError::Refused(format!(
                    "service/{name} also sends traffic to pod {pod}, which is not a pod of deploy/{deployment}: \
                     pinning it to the stable ReplicaSet would cut that pod off; nothing was changed. \
                     Start without --dark, or give the Deployment a Service of its own"
                )));
            }
        }
    }
    Ok(())
}

/// A pod the selector matches that no ReplicaSet of the Deployment (by `pod-template-hash`)
/// owns, if any.
async fn pods_of_others(
    client: &kube::Client,
    namespace: &str,
    selector: &BTreeMap<String, String>,
    own_hashes: &BTreeSet<String>,
) -> Result<Option<String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = api
        .list(&ListParams::default().labels(&labels))
        .await
        .map_err(|e| CanaryError::api("listing the pods a Service selects", e))?;
    Ok(pods.items.iter().find_map(|pod| {
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(canary_core::record::POD_TEMPLATE_HASH_LABEL));
        let owned_by_rs = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "ReplicaSet" && o.controller == Some(true));
        (!(owned_by_rs && hash.is_some_and(|h| own_hashes.contains(h))))
            .then(|| pod.metadata.name.clone().unwrap_or_default())
    }))
}

async fn may_update_service(client: &kube::Client, namespace: &str, name: &str) -> Result<bool> {
    let update = crate::preflight::Permission {
        verb: "update",
        group: "",
        resource: "services",
    };
    crate::preflight::may(client, namespace, &update, Some(name)).await
}

/// Pins every Service for `options`: one update each (resourceVersion-guarded), fields and
/// annotation together. A Service already carrying this Deployment's pin (a start that
/// stopped half way) keeps the original its pin recorded: the original never comes from a
/// Service the tool has already changed.
pub async fn pin_all(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    deployment_uid: &str,
    options: TrafficOptions,
    stable_hash: &str,
    services: &[FrontService],
) -> Result<Vec<String>> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut pinned = Vec::new();
    for service in services {
        let name = service.name.clone();
        write_with_retry(&api, &name, |svc| {
            let now = traffic_of(svc);
            let original = match pin_of(svc) {
                Some(Ok(p)) if p.deployment_uid == deployment_uid => p.original,
                Some(_) => return Err(CanaryError::Refused(format!(
                    "service/{name} got another {PIN_ANNOTATION} annotation meanwhile; stopped before changing it"
                ))),
                None => now.clone(),
            };
            let pin = ServicePin::new(deployment, deployment_uid, &original, options, stable_hash);
            Ok((pin.applied != now || pin_of(svc).is_none()).then(|| (pin.applied.clone(), Some(pin))))
        })
        .await?;
        mutation_point(&format!("service/{name} pinned"));
        pinned.push(name);
    }
    Ok(pinned)
}

/// Releases this Deployment's pins on every Service of the namespace that carries one:
/// the selector only, or everything (the Services exactly as before the canary, annotation
/// removed). Found from the Services themselves, so a crash at any point is finished by
/// the next run.
pub async fn release(
    client: &kube::Client,
    namespace: &str,
    deployment_uid: &str,
    release: Release,
) -> Result<Released> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut out = Released::default();
    let Some(items) = list_services(&api).await? else {
        out.services_hidden = true;
        return Ok(out);
    };
    for service in &items {
        if !matches!(pin_of(service), Some(Ok(p)) if p.deployment_uid == deployment_uid) {
            continue;
        }
        let name = service.metadata.name.clone().unwrap_or_default();
        let mut others = false;
        let wrote = write_with_retry(&api, &name, |svc| {
            let Some(Ok(pin)) = pin_of(svc) else {
                return Ok(None);
            };
            Ok(match restore_step(&traffic_of(svc), &pin, release) {
                Restore::Nothing => None,
                Restore::Write { fields, pin } => Some((fields, pin)),
                Restore::ChangedByOthers { now, .. } => {
                    others = true;
                    Some((now, None))
                }
            })
        })
        .await?;
        if wrote {
            mutation_point(&format!("service/{name} released"));
            if others {
                out.changed_by_others.push(name);
            } else {
                out.restored.push(name);
            }
        }
    }
    Ok(out)
}

/// This Deployment's pins, by Service name, with each Service's fields now (for `status`).
pub async fn pins(
    client: &kube::Client,
    namespace: &str,
    deployment_uid: &str,
) -> Result<Vec<(String, ServicePin, ServiceTraffic)>> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let Some(items) = list_services(&api).await? else {
        return Ok(Vec::new());
    };
    Ok(items
        .iter()
        .filter_map(|s| match pin_of(s) {
            Some(Ok(p)) if p.deployment_uid == deployment_uid => Some((
                s.metadata.name.clone().unwrap_or_default(),
                p,
                traffic_of(s),
            )),
            _ => None,
        })
        .collect())
}

/// Ingresses of the namespace that route to one of `services`: an ingress controller that
/// balances to the pod IPs itself (ingress-nginx, Traefik, most gateways) ignores the
/// Service's sessionAffinity, so `--sticky` does not hold for traffic coming through them.
pub async fn ingresses_bypassing(
    client: &kube::Client,
    namespace: &str,
    services: &[String],
) -> Result<Vec<(String, String)>> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(CanaryError::api("listing Ingresses", e)),
    };
    let mut out = Vec::new();
    for ingress in list.items {
        let name = ingress.metadata.name.clone().unwrap_or_default();
        let spec = ingress.spec.unwrap_or_default();
        let mut backends: Vec<String> = spec
            .default_backend
            .iter()
            .filter_map(|b| b.service.as_ref().map(|s| s.name.clone()))
            .collect();
        for rule in spec.rules.iter().flatten() {
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                if let Some(s) = &path.backend.service {
                    backends.push(s.name.clone());
                }
            }
        }
        for backend in backends {
            if services.contains(&backend) && !out.contains(&(name.clone(), backend.clone())) {
                out.push((name.clone(), backend));
            }
        }
    }
    Ok(out)
}

/// Reads the Service, lets `decide` return the fields and pin to write (None: nothing),
/// writes them with the resourceVersion read; on a conflict reads again. Returns whether
/// it wrote.
async fn write_with_retry(
    api: &Api<Service>,
    name: &str,
    mut decide: impl FnMut(&Service) -> Result<Option<(ServiceTraffic, Option<ServicePin>)>>,
) -> Result<bool> {
    for _ in 0..CONFLICT_RETRIES {
        let mut svc = api
            .get(name)
            .await
            .map_err(|e| CanaryError::api(format!("reading service/{name}"), e))?;
        let Some((fields, pin)) = decide(&svc)? else {
            return Ok(false);
        };
        let spec = svc.spec.get_or_insert_with(Default::default);
        spec.selector = (!fields.selector.is_empty()).then_some(fields.selector);
        spec.session_affinity = fields.session_affinity;
        spec.session_affinity_config = match fields.session_affinity_config {
            Some(v) => Some(serde_json::from_value(v).map_err(|e| {
                CanaryError::Refused(format!(
                    "service/{name}: a sessionAffinityConfig this tool cannot write back ({e})"
                ))
            })?),
            None => None,
        };
        let annotations = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match pin {
            Some(p) => {
                annotations.insert(PIN_ANNOTATION.to_string(), p.to_annotation());
            }
            None => {
                annotations.remove(PIN_ANNOTATION);
            }
        }
        if annotations.is_empty() {
            svc.metadata.annotations = None;
        }
        // managedFields are the API server's: never sent back
        svc.metadata.managed_fields = None;
        match api.replace(name, &PostParams::default(), &svc).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(CanaryError::api(format!("updating service/{name}"), e)),
        }
    }
    Err(CanaryError::Refused(format!(
        "service/{name} kept changing under us ({CONFLICT_RETRIES} conflicts in a row); run the command again"
    )))
}

/// The Services a `start` with `options` will change, checked (see [`check_changeable`]):
/// found from the Deployment's pod template labels, nothing changed yet.
pub async fn plan_for_start(
    client: &kube::Client,
    namespace: &str,
    view: &crate::observe::DeploymentView,
    options: TrafficOptions,
) -> Result<Vec<FrontService>> {
    let deployment = view.name().to_string();
    let uid = view.uid();
    let labels = view
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let own_hashes: BTreeSet<String> = view
        .replica_sets
        .iter()
        .filter_map(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(canary_core::record::POD_TEMPLATE_HASH_LABEL))
                .cloned()
        })
        .collect();
    let services = services_in_front(client, namespace, &labels, &uid).await?;
    check_changeable(
        client,
        namespace,
        &deployment,
        &uid,
        &services,
        options,
        &own_hashes,
    )
    .await?;
    Ok(services)
}
