//! The fields of a Service that decide which pods get its traffic and how.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::TrafficOptions;
use crate::pod::POD_TEMPLATE_HASH_LABEL;

/// A Service's `spec.selector`, `spec.sessionAffinity` and `spec.sessionAffinityConfig`,
/// exactly as the API server returned them (absent stays absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTraffic {
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.sessionAffinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    /// `spec.sessionAffinityConfig`, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<Value>,
}

impl ServiceTraffic {
    /// The fields while the canary runs: with `dark`, the selector narrowed to the stable
    /// ReplicaSet's pods (its `pod-template-hash`, which canary pods never carry); with
    /// sticky sessions, ClientIP affinity with the timeout.
    pub fn pinned(&self, options: TrafficOptions, stable_hash: &str) -> Self {
        let mut out = self.clone();
        if options.dark {
            out.selector
                .insert(POD_TEMPLATE_HASH_LABEL.to_string(), stable_hash.to_string());
        }
        if let Some(seconds) = options.sticky_seconds {
            out.session_affinity = Some("ClientIP".to_string());
            out.session_affinity_config = Some(json!({"clientIP": {"timeoutSeconds": seconds}}));
        }
        out
    }

    /// Whether the two mean the same to the API server: an absent `sessionAffinity` is
    /// `None`, and a `sessionAffinityConfig` only counts with ClientIP affinity (the API
    /// server drops it otherwise).
    pub fn equivalent(&self, other: &Self) -> bool {
        let affinity = |t: &Self| t.session_affinity.clone().unwrap_or_else(|| "None".into());
        let config = |t: &Self| {
            if affinity(t) == "ClientIP" {
                t.session_affinity_config.clone()
            } else {
                None
            }
        };
        self.selector == other.selector
            && affinity(self) == affinity(other)
            && config(self) == config(other)
    }
}

/// Whether a Service with this selector sends traffic to pods with these labels: a
/// non-empty selector whose every pair the labels carry (an empty selector selects no pod:
/// its endpoints are managed by someone else).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_selector_selects_pods_carrying_all_its_labels() {
        let pod = map(&[("app", "web"), ("tier", "front")]);
        assert!(selects(&map(&[("app", "web")]), &pod));
        assert!(selects(&map(&[("app", "web"), ("tier", "front")]), &pod));
        assert!(!selects(&map(&[("app", "api")]), &pod));
        assert!(!selects(&map(&[("app", "web"), ("x", "y")]), &pod));
        assert!(
            !selects(&map(&[]), &pod),
            "an empty selector selects nothing"
        );
    }

    #[test]
    fn the_stable_hash_keeps_canary_pods_out() {
        let svc = ServiceTraffic {
            selector: map(&[("app", "web")]),
            session_affinity: None,
            session_affinity_config: None,
        };
        let pinned = svc.pinned(
            TrafficOptions {
                dark: true,
                sticky_seconds: None,
                blue_green: false,
            },
            "stable1",
        );
        let stable_pod = map(&[("app", "web"), ("pod-template-hash", "stable1")]);
        let canary_pod = map(&[("app", "web"), ("pod-template-hash", "canary2")]);
        assert!(selects(&pinned.selector, &stable_pod));
        assert!(!selects(&pinned.selector, &canary_pod));
        assert!(selects(&svc.selector, &canary_pod));
    }

    #[test]
    fn absent_affinity_is_none_and_config_only_counts_with_client_ip() {
        let a = ServiceTraffic {
            selector: map(&[("app", "web")]),
            session_affinity: None,
            session_affinity_config: None,
        };
        let b = ServiceTraffic {
            session_affinity: Some("None".into()),
            ..a.clone()
        };
        assert!(a.equivalent(&b));
        let sticky = a.pinned(
            TrafficOptions {
                dark: false,
                sticky_seconds: Some(60),
                blue_green: false,
            },
            "h",
        );
        assert!(!a.equivalent(&sticky));
        assert_eq!(
            sticky.session_affinity_config,
            Some(json!({"clientIP": {"timeoutSeconds": 60}}))
        );
    }
}
