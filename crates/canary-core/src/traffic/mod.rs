//! Traffic through the Services in front of a Deployment: the dark canary (the Services
//! pinned to the stable pods until promote) and sticky sessions (`sessionAffinity:
//! ClientIP` for the duration of the canary).
//!
//! What the tool changes on a Service is recorded on that Service itself, in the
//! [`PIN_ANNOTATION`], written in the same update as the change: only writers of the
//! Service can change it, so what a restore writes never comes from something a lesser
//! writer (of ConfigMaps, of the record) could plant. The canary record lists the Services
//! for `status` and history only; it is never the source of a write.

mod fields;
mod managers;
mod restore;

pub use fields::{ServiceTraffic, selects};
pub use managers::{GITOPS_MANAGERS, gitops_manager};
pub use restore::{Release, Restore, restore_step};

use serde::{Deserialize, Serialize};

use crate::pod::POD_TEMPLATE_HASH_LABEL;

/// The Service annotation holding what the tool changed and what it put there.
pub const PIN_ANNOTATION: &str = "kubectl-canary.io/traffic";

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` of `--sticky`: one hour.
pub const DEFAULT_STICKY_SECONDS: i32 = 3600;

/// The largest timeout the API server accepts for ClientIP affinity (one day).
pub const MAX_STICKY_SECONDS: i32 = 86_400;

/// What the user asked for the Services in front of the Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficOptions {
    /// Dark canary: the Services select only the stable pods until promote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dark: bool,
    /// Sticky sessions: `sessionAffinity: ClientIP` with this timeout (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_seconds: Option<i32>,
    /// Blue/Green: a full second set of pods (with `dark`); promote switches the Services
    /// to it in one update each instead of letting both sets in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blue_green: bool,
}

impl TrafficOptions {
    /// Whether any Service is to be changed.
    pub fn changes_services(&self) -> bool {
        self.dark || self.sticky_seconds.is_some()
    }

    /// A few words for people.
    pub fn describe(&self) -> String {
        if self.blue_green {
            return "blue/green (the Services stay on the old pods until promote switches them)"
                .to_string();
        }
        match (self.dark, self.sticky_seconds) {
            (true, Some(s)) => format!("dark (no Service traffic until promote), sticky ({s}s)"),
            (true, None) => "dark (no Service traffic until promote)".to_string(),
            (false, Some(s)) => format!("sticky sessions (ClientIP, {s}s)"),
            (false, None) => "shared by pod count".to_string(),
        }
    }
}

/// The content of [`PIN_ANNOTATION`] on one Service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePin {
    /// The Deployment whose canary changed the Service (its UID).
    pub deployment_uid: String,
    /// The Deployment's name, for people.
    pub deployment: String,
    /// The Service's traffic fields before the canary: what a restore puts back.
    pub original: ServiceTraffic,
    /// What the tool put there: a restore only writes over exactly this, never over a
    /// change someone else made since.
    pub applied: ServiceTraffic,
}

impl ServicePin {
    /// The pin of a Service whose fields are `original`, for `options` and the stable
    /// ReplicaSet's `pod-template-hash`.
    pub fn new(
        deployment: &str,
        deployment_uid: &str,
        original: &ServiceTraffic,
        options: TrafficOptions,
        stable_hash: &str,
    ) -> Self {
        Self {
            deployment_uid: deployment_uid.to_string(),
            deployment: deployment.to_string(),
            original: original.clone(),
            applied: original.pinned(options, stable_hash),
        }
    }

    /// Reads the annotation's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The annotation's text.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a pin always serializes")
    }

    /// Whether the selector is pinned (dark canary).
    pub fn is_dark(&self) -> bool {
        self.applied.selector != self.original.selector
    }

    /// The same pin with the selector let go (promote): the Service selects every pod of
    /// the Deployment again; sticky sessions, if any, stay until the canary ends.
    pub fn with_selector_released(&self) -> Self {
        Self {
            applied: ServiceTraffic {
                selector: self.original.selector.clone(),
                ..self.applied.clone()
            },
            ..self.clone()
        }
    }

    /// The same pin with the selector pointing at the pods of the ReplicaSet whose
    /// `pod-template-hash` is `hash` (Blue/Green: the switch to the new set, or back).
    pub fn pointed_at(&self, hash: &str) -> Self {
        let mut applied = self.applied.clone();
        applied
            .selector
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
        Self {
            applied,
            ..self.clone()
        }
    }

    /// The `pod-template-hash` the selector is pinned to, if any.
    pub fn pinned_hash(&self) -> Option<&str> {
        if !self.is_dark() {
            return None;
        }
        self.applied
            .selector
            .get(POD_TEMPLATE_HASH_LABEL)
            .map(String::as_str)
    }

    /// Whether nothing is changed any more (the annotation can go).
    pub fn is_released(&self) -> bool {
        self.applied == self.original
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn web() -> ServiceTraffic {
        ServiceTraffic {
            selector: BTreeMap::from([("app".to_string(), "web".to_string())]),
            session_affinity: Some("None".into()),
            session_affinity_config: None,
        }
    }

    #[test]
    fn a_dark_pin_adds_the_stable_hash_and_round_trips() {
        let pin = ServicePin::new(
            "web",
            "uid",
            &web(),
            TrafficOptions {
                dark: true,
                sticky_seconds: None,
                blue_green: false,
            },
            "abc",
        );
        assert!(pin.is_dark());
        assert_eq!(pin.applied.selector["pod-template-hash"], "abc");
        assert_eq!(pin.applied.selector["app"], "web");
        assert_eq!(pin.applied.session_affinity, web().session_affinity);
        assert_eq!(ServicePin::parse(&pin.to_annotation()).unwrap(), pin);
        let released = pin.with_selector_released();
        assert!(!released.is_dark());
        assert!(released.is_released());
    }

    #[test]
    fn a_sticky_pin_stays_after_the_selector_is_released() {
        let pin = ServicePin::new(
            "web",
            "uid",
            &web(),
            TrafficOptions {
                dark: true,
                sticky_seconds: Some(600),
                blue_green: false,
            },
            "abc",
        );
        let released = pin.with_selector_released();
        assert!(!released.is_released());
        assert_eq!(
            released.applied.session_affinity.as_deref(),
            Some("ClientIP")
        );
        assert_eq!(released.applied.selector, web().selector);
    }

    #[test]
    fn blue_green_points_the_selector_at_one_set_or_the_other() {
        let pin = ServicePin::new(
            "web",
            "uid",
            &web(),
            TrafficOptions {
                dark: true,
                sticky_seconds: None,
                blue_green: true,
            },
            "old",
        );
        assert_eq!(pin.pinned_hash(), Some("old"));
        let switched = pin.pointed_at("new");
        assert_eq!(switched.pinned_hash(), Some("new"));
        assert_eq!(switched.original, pin.original);
        assert_eq!(switched.pointed_at("old"), pin);
        assert_eq!(pin.with_selector_released().pinned_hash(), None);
    }

    #[test]
    fn unknown_fields_in_a_pin_are_refused() {
        assert!(ServicePin::parse(r#"{"deploymentUid":"u","deployment":"w","original":{"selector":{}},"applied":{"selector":{}},"x":1}"#).is_err());
    }
}
