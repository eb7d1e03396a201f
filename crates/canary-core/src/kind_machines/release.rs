//! The canary template of a StatefulSet or DaemonSet release of new images.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::image::ImageChange;
use crate::record::{images_of, with_images};

/// Why a release of images was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindReleaseError {
    /// No container of that name in the pod template.
    #[error(
        "{workload} has no container named '{container}' (its containers: {known}); nothing was changed"
    )]
    UnknownContainer {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
        /// The container asked for.
        container: String,
        /// The containers there are.
        known: String,
    },
    /// Every image asked for already runs.
    #[error(
        "{workload} already runs {images}: a canary of the same images would change no pod; nothing was changed"
    )]
    SameImages {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
        /// The images asked for.
        images: String,
    },
    /// No image given.
    #[error(
        "give the new images as CONTAINER=IMAGE (for example {workload} app=app:2); nothing was changed"
    )]
    NoImages {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
    },
}

/// The canary template of `workload` (`sts/db`): `original` with `images` set, refused for
/// an unknown container or when every image already runs.
///
/// ```
/// use canary_core::image::ImageChange;
/// use canary_core::kind_machines::release::canary_template;
/// use serde_json::json;
///
/// let original = json!({"spec": {"containers": [{"name": "db", "image": "db:1"}]}});
/// let change = ImageChange { container: "db".into(), image: "db:2".into() };
/// let canary = canary_template("sts/db", &original, &[change]).unwrap();
/// assert_eq!(canary["spec"]["containers"][0]["image"], "db:2");
/// ```
pub fn canary_template(
    workload: &str,
    original: &Value,
    images: &[ImageChange],
) -> Result<Value, KindReleaseError> {
    if images.is_empty() {
        return Err(KindReleaseError::NoImages {
            workload: workload.to_owned(),
        });
    }
    let running = images_of(original);
    let asked: BTreeMap<String, String> = images
        .iter()
        .map(|c| (c.container.clone(), c.image.clone()))
        .collect();
    for container in asked.keys() {
        if !running.contains_key(container) {
            return Err(KindReleaseError::UnknownContainer {
                workload: workload.to_owned(),
                container: container.clone(),
                known: running.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
    }
    if asked.iter().all(|(c, i)| running.get(c) == Some(i)) {
        return Err(KindReleaseError::SameImages {
            workload: workload.to_owned(),
            images: crate::text::images_text(&asked),
        });
    }
    Ok(with_images(original, &asked))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_release_of_images_is_refused_when_it_names_no_container_or_changes_nothing() {
        let original = json!({"spec": {"containers": [{"name": "db", "image": "db:1"}, {"name": "log", "image": "log:1"}]}});
        let change = |c: &str, i: &str| ImageChange {
            container: c.into(),
            image: i.into(),
        };
        let cases: [(Vec<ImageChange>, &str); 3] = [
            (
                vec![change("web", "web:2")],
                "no container named 'web' (its containers: db, log)",
            ),
            (vec![change("db", "db:1")], "already runs"),
            (vec![], "give the new images"),
        ];
        for (images, says) in cases {
            let error = canary_template("sts/db", &original, &images)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(says) && error.contains("nothing was changed"),
                "{error}"
            );
        }
        let canary = canary_template("sts/db", &original, &[change("log", "log:2")]).unwrap();
        assert_eq!(canary["spec"]["containers"][1]["image"], "log:2");
        assert_eq!(canary["spec"]["containers"][0]["image"], "db:1");
    }
}
