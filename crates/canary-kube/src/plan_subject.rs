//! What `kubectl canary plan` plans for, read from a live Deployment: its replicas,
//! rolling-update settings (those recorded before a running canary, not the brake), containers,
//! pod requests and, for the plan view, the cluster's free capacity.

use canary_core::plan::{ClusterCapacity, Resources};
use canary_core::rollout_math::IntOrPercent;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;

use crate::capacity::{cluster_capacity, pod_requests};
use crate::error::{CanaryError, ErrorKind};
use crate::observe::selector_string;
use crate::store::RecordStore;

/// The default `progressDeadlineSeconds` the API server fills in for a Deployment.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// What a plan is about: a live Deployment, or the numbers given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSubject {
    /// The Deployment, when planning for a live one.
    pub deployment: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Whether the strategy is Recreate.
    pub recreate: bool,
    /// The rolling update's maxSurge.
    pub max_surge: IntOrPercent,
    /// The rolling update's maxUnavailable.
    pub max_unavailable: IntOrPercent,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// `spec.progressDeadlineSeconds`.
    pub progress_deadline_seconds: i32,
    /// The template's container names.
    pub containers: Vec<String>,
    /// The Deployment's label selector, as text.
    pub selector: Option<String>,
    /// Remarks about where the numbers come from, printed first.
    pub notes: Vec<String>,
    /// Requests of one pod, when known.
    pub pod_requests: Option<Resources>,
    /// The cluster's free capacity, when read.
    pub cluster: ClusterCapacity,
}

/// Reads the plan's subject for deploy/`name`; the cluster's capacity (which lists nodes
/// and pods cluster-wide) only `with_capacity`.
pub async fn read_plan_subject(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    with_capacity: bool,
) -> Result<PlanSubject, CanaryError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments
        .get_opt(name)
        .await
        .map_err(|e| CanaryError::api(format!("read deploy/{}", name), e))?
        .ok_or_else(|| CanaryError::DeploymentNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
            hint: String::new(),
        })?;
    let selector = selector_string(&deployment);
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let mut spec = deployment.spec.unwrap_or_default();
    // While a canary runs, the live strategy and minReadySeconds are the brake: plan with
    // the settings recorded before it started. A user who may not read the record gets the
    // live settings.
    let store = RecordStore::new(client, namespace, name);
    let record = match store.get().await {
        Ok(stored) => stored.map(|s| s.record).filter(|r| r.deployment_uid == uid),
        Err(e) if e.kind() == ErrorKind::Forbidden => None,
        Err(e) => return Err(e),
    };
    let mut notes = Vec::new();
    if let Some(record) = &record {
        let original = &record.original_settings;
        spec.strategy = serde_json::from_value(original.strategy.clone()).ok();
        spec.min_ready_seconds = original.min_ready_seconds;
        spec.progress_deadline_seconds = original.progress_deadline_seconds;
        notes.push(format!(
            "A canary is running on deploy/{} ({}): planned with the strategy, minReadySeconds and progressDeadlineSeconds recorded before it started, not the brake now in place.",
            name, record.phase.describe()
        ));
    }
    let strategy = spec.strategy.clone().unwrap_or_default();
    let rolling = strategy.rolling_update.unwrap_or_default();
    let strategy_value = |value: Option<IntOrString>, field: &'static str| match value {
        None => Ok(IntOrPercent::DEFAULT),
        Some(IntOrString::Int(v)) => Ok(IntOrPercent::Int(v)),
        Some(IntOrString::String(s)) => s
            .parse::<IntOrPercent>()
            .map_err(|source| CanaryError::Refused(format!("deploy/{name}: {field} {source}"))),
    };
    let template_spec = spec.template.spec.unwrap_or_default();
    let requests = pod_requests(&template_spec)
        .map_err(|source| CanaryError::Refused(format!("deploy/{name}: {source}")))?;
    // The capacity check lists nodes and pods cluster-wide: only the plan view needs it.
    let cluster = if with_capacity {
        cluster_capacity(client).await?
    } else {
        ClusterCapacity::Offline
    };
    Ok(PlanSubject {
        deployment: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        replicas: spec.replicas.unwrap_or(1),
        recreate: strategy.type_.as_deref() == Some("Recreate"),
        max_surge: strategy_value(rolling.max_surge, "maxSurge")?,
        max_unavailable: strategy_value(rolling.max_unavailable, "maxUnavailable")?,
        min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
        progress_deadline_seconds: spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
        containers: template_spec
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        selector: Some(selector),
        notes,
        pod_requests: Some(requests),
        cluster,
    })
}
