//! Which Deployment a record ConfigMap's change concerns, so that the controller reconciles
//! it. Not from the `kubectl-canary.io/deployment` label: that label is for selecting, and a
//! Deployment name longer than a label value (63 characters) is hashed in it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use canary_kube::store::record_name;

/// The Deployment a record belongs to: its owner reference to an `apps/v1` Deployment (the
/// store sets one on every record it creates for a Deployment), else the record's own name
/// (`<deployment>.kubectl-canary`). `None` for a ConfigMap that is neither.
pub fn deployment_of_record(config_map: &ConfigMap) -> Option<ObjectRef<Deployment>> {
    let namespace = config_map.namespace()?;
    let owner = config_map
        .owner_references()
        .iter()
        .find(|owner| owner.kind == "Deployment" && owner.api_version == "apps/v1")
        .map(|owner| owner.name.clone());
    let name = owner.or_else(|| {
        let suffix = record_name("");
        config_map
            .name_any()
            .strip_suffix(suffix.as_str())
            .filter(|deployment| !deployment.is_empty())
            .map(str::to_string)
    })?;
    Some(ObjectRef::new(&name).within(&namespace))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn record(name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                owner_references: Some(owners),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn owner(kind: &str, api_version: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_long_name_is_found_whole_by_owner_reference_or_record_name() {
        let long = format!("{}-web", "a".repeat(70));
        let by_owner = record(
            &record_name(&long),
            vec![owner("Deployment", "apps/v1", &long)],
        );
        let expected = ObjectRef::<Deployment>::new(&long).within("team");
        assert_eq!(deployment_of_record(&by_owner), Some(expected.clone()));
        let by_name = record(&record_name(&long), vec![]);
        assert_eq!(deployment_of_record(&by_name), Some(expected));
    }

    #[test]
    fn only_a_deployment_owner_counts_and_other_config_maps_map_to_nothing() {
        let other_owner = record(
            "web.kubectl-canary",
            vec![
                owner("ReplicaSet", "apps/v1", "web-1"),
                owner("Deployment", "extensions/v1beta1", "x"),
            ],
        );
        assert_eq!(
            deployment_of_record(&other_owner),
            Some(ObjectRef::new("web").within("team"))
        );
        assert_eq!(deployment_of_record(&record("settings", vec![])), None);
        assert_eq!(
            deployment_of_record(&record(".kubectl-canary", vec![])),
            None
        );
    }
}
