//! Lines about the Services in front of a Deployment (dark canary, sticky sessions).

use canary_core::traffic::{ServicePin, ServiceTraffic};
use canary_kube::traffic::Released;

/// One line per pinned Service for `status`.
pub fn pins_text(pins: &[(String, ServicePin, ServiceTraffic)]) -> String {
    let mut out = String::new();
    for (name, pin, now) in pins {
        let mut what = Vec::new();
        if pin.is_dark() {
            what.push(format!(
                "dark: selects only the stable pods ({}) until promote",
                selector_text(&pin.applied)
            ));
        }
        if pin.applied.session_affinity != pin.original.session_affinity
            || pin.applied.session_affinity_config != pin.original.session_affinity_config
        {
            let secs = pin
                .applied
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            what.push(format!("sticky: sessionAffinity ClientIP, {secs}s"));
        }
        if !now.equivalent(&pin.applied) {
            what.push("changed by someone else since (kept as they left it)".into());
        }
        let restore = format!(
            "restored on promote/abort to selector {}{}",
            selector_text(&pin.original),
            pin.original
                .session_affinity
                .as_deref()
                .map(|a| format!(", sessionAffinity {a}"))
                .unwrap_or_default()
        );
        out.push_str(&format!(
            "traffic: service/{name}: {}; {restore}\n",
            if what.is_empty() {
                "nothing held".to_string()
            } else {
                what.join("; ")
            }
        ));
    }
    out
}

/// What a release did, for people.
pub fn released_text(released: &Released, what: &str) -> String {
    let mut out = String::new();
    if released.services_hidden {
        out.push_str(
            "  ! cannot list Services (RBAC): if this canary pinned any (--dark, --sticky), someone who may \
             update Services must run `kubectl canary abort` or `promote` again to put them back\n",
        );
    }
    for name in &released.restored {
        out.push_str(&format!("  ✓ service/{name}: {what}\n"));
    }
    for name in &released.changed_by_others {
        out.push_str(&format!(
            "  ! service/{name}: changed by someone else during the canary; their change is kept, \
             only the {} annotation was removed\n",
            canary_core::traffic::PIN_ANNOTATION
        ));
    }
    out
}

fn selector_text(t: &ServiceTraffic) -> String {
    t.selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
