//! What putting a Service back means, given what it is now.

use super::{ServicePin, ServiceTraffic};

/// How much of a pin to let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Only the selector (promote: the canary pods get traffic); sticky sessions stay.
    Selector,
    /// Everything: the Service as it was before the canary.
    All,
}

/// The next step for a Service carrying a pin.
#[derive(Debug, Clone, PartialEq)]
pub enum Restore {
    /// Nothing to write: the Service already is as wanted and carries the right pin.
    Nothing,
    /// Write these fields and this pin in one update (None: remove the annotation).
    Write {
        /// The fields to write.
        fields: ServiceTraffic,
        /// The pin to keep, or None to remove the annotation.
        pin: Option<ServicePin>,
    },
    /// Someone changed the fields since the tool wrote them: their change is kept (only
    /// the annotation is removed) and reported, with what the tool would have put back.
    ChangedByOthers {
        /// What the Service has now.
        now: ServiceTraffic,
        /// What the tool would have written.
        wanted: ServiceTraffic,
    },
}

/// The step that takes a Service from `now`, carrying `pin` (read from the Service
/// itself), to `release`d. The Service may be as the tool left it (the pin's `applied`)
/// or already as wanted (a run that stopped before removing the annotation); anything else
/// is someone else's change, which is never written over.
pub fn restore_step(now: &ServiceTraffic, pin: &ServicePin, release: Release) -> Restore {
    let wanted = match release {
        Release::Selector => pin.with_selector_released(),
        Release::All => ServicePin {
            applied: pin.original.clone(),
            ..pin.clone()
        },
    };
    let keep = (!wanted.is_released()).then(|| wanted.clone());
    if now.equivalent(&wanted.applied) {
        if keep.as_ref() == Some(pin) {
            return Restore::Nothing;
        }
        return Restore::Write {
            fields: now.clone(),
            pin: keep,
        };
    }
    if now.equivalent(&pin.applied) {
        return Restore::Write {
            fields: wanted.applied,
            pin: keep,
        };
    }
    Restore::ChangedByOthers {
        now: now.clone(),
        wanted: wanted.applied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::TrafficOptions;
    use std::collections::BTreeMap;

    fn original() -> ServiceTraffic {
        ServiceTraffic {
            selector: BTreeMap::from([("app".to_string(), "web".to_string())]),
            session_affinity: Some("None".into()),
            session_affinity_config: None,
        }
    }

    fn pin(dark: bool, sticky: Option<i32>) -> ServicePin {
        ServicePin::new(
            "web",
            "uid",
            &original(),
            TrafficOptions {
                dark,
                sticky_seconds: sticky,
                blue_green: false,
            },
            "h1",
        )
    }

    #[test]
    fn restoring_all_puts_the_original_back_and_drops_the_annotation() {
        let p = pin(true, Some(60));
        assert_eq!(
            restore_step(&p.applied, &p, Release::All),
            Restore::Write {
                fields: original(),
                pin: None
            }
        );
    }

    #[test]
    fn releasing_the_selector_keeps_sticky_sessions_and_the_pin() {
        let p = pin(true, Some(60));
        let Restore::Write { fields, pin: kept } = restore_step(&p.applied, &p, Release::Selector)
        else {
            panic!("a write");
        };
        assert_eq!(fields.selector, original().selector);
        assert_eq!(fields.session_affinity.as_deref(), Some("ClientIP"));
        assert_eq!(kept, Some(p.with_selector_released()));
        // once done, nothing more to do
        let kept = kept.unwrap();
        assert_eq!(
            restore_step(&fields, &kept, Release::Selector),
            Restore::Nothing
        );
    }

    #[test]
    fn a_restore_that_stopped_before_removing_the_annotation_only_removes_it() {
        let p = pin(true, None);
        assert_eq!(
            restore_step(&original(), &p, Release::All),
            Restore::Write {
                fields: original(),
                pin: None
            }
        );
    }

    #[test]
    fn someone_elses_change_is_never_written_over() {
        let p = pin(true, None);
        let mut theirs = p.applied.clone();
        theirs.selector.insert("tier".into(), "front".into());
        assert!(matches!(
            restore_step(&theirs, &p, Release::All),
            Restore::ChangedByOthers { .. }
        ));
    }
}
