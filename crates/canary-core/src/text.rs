//! How numbers, shares and images are written for people, in one place so every message
//! and table says them the same way.

use std::collections::BTreeMap;

/// Formats a measured number compactly for reasons and tables.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == value.trunc() && value.abs() < 1e12 {
        return format!("{value:.0}");
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

/// A percentage as exact as two decimals and no longer: `9.0909` -> `9.09%`, `50` -> `50%`.
/// For sizes and shares a person asked for or chooses between.
pub fn percent_text(percent: f64) -> String {
    let rounded = format!("{percent:.2}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}%")
}

/// A share (0.0..=1.0) of traffic as a percentage with one decimal: `0.0909` -> `9.1%`.
/// For the share a running canary gets.
pub fn share_text(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Container images as `container=image ...`, the way `kubectl set image` takes them.
pub fn images_text(images: &BTreeMap<String, String>) -> String {
    images
        .iter()
        .map(|(container, image)| format!("{container}={image}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the engine waits for the controller to do, in words (the status's `pending` and the
/// progress lines).
pub fn waiting_text(waiting: &crate::machine::Waiting) -> String {
    use crate::machine::Waiting;
    match waiting {
        Waiting::ControllerToObserve => {
            "waiting for the Deployment controller to observe the change".into()
        }
        Waiting::BrakeTakingHold { available } => format!(
            "waiting for the brake to take hold: {available} canary pod(s) still counted Available"
        ),
        Waiting::CanaryScaling {
            canary,
            stable,
            wanted_canary,
            wanted_stable,
        } => format!(
            "waiting for the controller: canary ReplicaSet {canary}/{wanted_canary} pods, stable {stable}/{wanted_stable}"
        ),
        Waiting::RollingOut {
            updated,
            available,
            replicas,
            canary_pods_left,
        } => {
            if *canary_pods_left > 0 {
                format!(
                    "rolling back: {available}/{replicas} stable pods available, {canary_pods_left} canary pod(s) left"
                )
            } else {
                format!("rolling out: {updated}/{replicas} pods updated, {available} available")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_shares() {
        assert_eq!(percent_text(9.090_909), "9.09%");
        assert_eq!(percent_text(50.0), "50%");
        assert_eq!(percent_text(12.5), "12.5%");
        assert_eq!(share_text(1.0 / 11.0), "9.1%");
        let images = BTreeMap::from([
            ("a".to_string(), "x:1".to_string()),
            ("b".to_string(), "y:2".to_string()),
        ]);
        assert_eq!(images_text(&images), "a=x:1 b=y:2");
    }
}
