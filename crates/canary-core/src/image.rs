//! Image references and the `container=image` arguments of `start`.
//!
//! A malformed reference must be refused before anything changes: the API server accepts
//! almost any string as an image, and the mistake would only show up as canary pods stuck
//! in `InvalidImageName`.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// One requested image change: container `container` gets image `image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// Name of the container in the pod template.
    pub container: String,
    /// The new image reference, validated.
    pub image: String,
}

/// Why an image argument was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    /// The argument is not of the form `container=image`.
    #[error("'{0}' is not of the form CONTAINER=IMAGE (for example nginx=nginx:1.15)")]
    NotAnAssignment(String),
    /// The image part is not a valid reference.
    #[error("'{image}' is not a valid image reference: {why}")]
    InvalidReference {
        /// The reference as given.
        image: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The same container was named twice.
    #[error("container '{0}' is named twice; give one image per container")]
    DuplicateContainer(String),
    /// No image change was given.
    #[error("no image given: name at least one CONTAINER=IMAGE (for example nginx=nginx:1.15)")]
    Empty,
}

impl ImageChange {
    /// Parses `container=image`, validating the image reference.
    pub fn parse(arg: &str) -> Result<Self, ImageError> {
        let (container, image) = arg
            .split_once('=')
            .filter(|(c, i)| !c.is_empty() && !i.is_empty())
            .ok_or_else(|| ImageError::NotAnAssignment(arg.to_string()))?;
        validate_reference(image)?;
        Ok(Self {
            container: container.to_string(),
            image: image.to_string(),
        })
    }

    /// Parses every argument and refuses duplicates; the result is keyed by container.
    pub fn parse_all<S: AsRef<str>>(args: &[S]) -> Result<BTreeMap<String, String>, ImageError> {
        if args.is_empty() {
            return Err(ImageError::Empty);
        }
        let mut changes = BTreeMap::new();
        for arg in args {
            let change = Self::parse(arg.as_ref())?;
            if changes
                .insert(change.container.clone(), change.image)
                .is_some()
            {
                return Err(ImageError::DuplicateContainer(change.container));
            }
        }
        Ok(changes)
    }
}

impl fmt::Display for ImageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.container, self.image)
    }
}

/// Checks an image reference against the distribution reference grammar
/// (`[host[:port]/]path[:tag][@algorithm:hex]`).
pub fn validate_reference(image: &str) -> Result<(), ImageError> {
    let bad = |why| ImageError::InvalidReference {
        image: image.to_string(),
        why,
    };
    if image.trim() != image || image.is_empty() {
        return Err(bad("it is empty or has surrounding spaces"));
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or_else(|| bad("the digest must be ALGORITHM:HEX"))?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "the digest must be ALGORITHM:HEX with at least 32 hex digits",
            ));
        }
    }
    // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let first_ok = tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !first_ok || !rest_ok || tag.len() > 128 {
            return Err(bad(
                "the tag must be 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            ));
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err(bad("the repository name must be 1-255 characters"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first component is a registry host when it looks like one (kubectl's rule).
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            if !is_registry_host(first) {
                return Err(bad("the registry host is not a valid host[:port]"));
            }
            components.remove(0);
        }
    }
    if !components.iter().all(|c| is_path_component(c)) {
        return Err(bad(
            "repository path components must be lower-case letters and digits, separated by '.', '_', '__' or '-'",
        ));
    }
    Ok(())
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Separators: '.', '_', '__' or any run of '-'.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return false;
        }
    }
    true
}

fn is_registry_host(host: &str) -> bool {
    let (host, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_references() {
        for image in [
            "nginx",
            "nginx:1.15",
            "library/nginx:1.15-alpine",
            "registry.example.com:5000/team/app:v2",
            "localhost/app",
            "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "nginx:1.15__crashloop",
            "my_app__x/a-b--c:latest",
        ] {
            assert_eq!(validate_reference(image), Ok(()), "{image}");
        }
    }

    #[test]
    fn refuses_malformed_references() {
        for image in [
            "",
            "Nginx:1.15",
            "nginx:",
            "nginx:.1",
            "nginx::1",
            "nginx:1.15 ",
            "-nginx",
            "nginx@sha256:xyz",
            "nginx:1.15/app",
            "registry..com/app",
            "a//b",
        ] {
            assert!(
                validate_reference(image).is_err(),
                "{image:?} should be refused"
            );
        }
    }

    #[test]
    fn parses_assignments_and_refuses_duplicates() {
        let changes = ImageChange::parse_all(&["nginx=nginx:1.15", "side=busybox:1"]).unwrap();
        assert_eq!(changes["nginx"], "nginx:1.15");
        assert_eq!(
            ImageChange::parse_all(&["a=x:1", "a=y:1"]),
            Err(ImageError::DuplicateContainer("a".into()))
        );
        assert!(matches!(
            ImageChange::parse("nginx:1.15"),
            Err(ImageError::NotAnAssignment(_))
        ));
        assert_eq!(ImageChange::parse_all::<&str>(&[]), Err(ImageError::Empty));
    }
}
