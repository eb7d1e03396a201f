//! `--notify` and `--report-url`, resolved: URLs become endpoints (named `notify-url-N` in
//! the order given, so an Event about one never shows the URL), names are kept to be looked
//! up in the namespace's Secret by the command, before it changes anything.

use canary_core::notify::endpoints::SIGNING_KEY_ENV;
use canary_core::notify::{Endpoint, EndpointError, EndpointKind, NotifyTarget};

use crate::cli::NotifyFlags;

/// Where a command sends its notices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Endpoints given as URLs.
    pub direct: Vec<Endpoint>,
    /// Endpoints given by name, to look up in the Secret `kubectl-canary-notify`.
    pub names: Vec<String>,
    /// `--report-url`.
    pub report_base_url: Option<String>,
}

/// Why `--notify` or `--report-url` cannot be used (a usage error: nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum NotifyFlagError {
    /// A `--notify` value is neither a URL nor a name.
    #[error(transparent)]
    Target(#[from] EndpointError),
    /// A webhook URL without its signing key.
    #[error(
        "--notify #{index}: a webhook URL's notices are signed: set the environment variable {SIGNING_KEY_ENV} \
         to the receiver's key (at least 16 characters; never a flag, so it stays out of shell histories \
         and process lists), or use slack+/teams+ for a chat"
    )]
    NoSigningKey {
        /// Which `--notify` (1-based).
        index: usize,
    },
    /// `--report-url` is not an http(s) URL.
    #[error("--report-url {0}: not an http:// or https:// URL")]
    ReportUrl(String),
}

impl NotifyConfig {
    /// Resolves the flags; the signing key of webhook URLs is read from the environment
    /// variable [`SIGNING_KEY_ENV`].
    pub fn resolve(flags: &NotifyFlags) -> Result<Self, NotifyFlagError> {
        Self::resolve_with(flags, std::env::var(SIGNING_KEY_ENV).ok())
    }

    /// Resolves the flags with `signing_key` as the environment's key.
    fn resolve_with(
        flags: &NotifyFlags,
        signing_key: Option<String>,
    ) -> Result<Self, NotifyFlagError> {
        let mut config = NotifyConfig::default();
        for (i, arg) in flags.notify.iter().enumerate() {
            match NotifyTarget::parse(arg)? {
                NotifyTarget::Name(name) => {
                    if !config.names.contains(&name) {
                        config.names.push(name);
                    }
                }
                NotifyTarget::Url { kind, url } => {
                    let signing_key = match kind {
                        EndpointKind::Webhook => Some(
                            signing_key
                                .clone()
                                .filter(|key| key.len() >= 16)
                                .ok_or(NotifyFlagError::NoSigningKey { index: i + 1 })?,
                        ),
                        EndpointKind::Slack | EndpointKind::Teams => None,
                    };
                    config.direct.push(Endpoint {
                        name: format!("notify-url-{}", config.direct.len() + 1),
                        kind,
                        url,
                        signing_key,
                    });
                }
            }
        }
        if let Some(base) = &flags.report_url {
            if !(base.starts_with("https://") || base.starts_with("http://")) {
                return Err(NotifyFlagError::ReportUrl(base.clone()));
            }
            config.report_base_url = Some(base.clone());
        }
        Ok(config)
    }

    /// Whether any endpoint is given.
    pub fn is_on(&self) -> bool {
        !self.direct.is_empty() || !self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(notify: &[&str]) -> NotifyFlags {
        NotifyFlags {
            notify: notify.iter().map(|s| s.to_string()).collect(),
            report_url: None,
        }
    }

    #[test]
    fn urls_become_numbered_endpoints_and_names_are_kept() {
        let config = NotifyConfig::resolve_with(
            &flags(&[
                "https://hooks.slack.com/services/x",
                "team-chat",
                "webhook+http://127.0.0.1:9/x",
                "team-chat",
            ]),
            Some("0123456789abcdef".into()),
        )
        .expect("valid");
        let direct: Vec<(&str, EndpointKind)> = config
            .direct
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect();
        assert_eq!(
            direct,
            [
                ("notify-url-1", EndpointKind::Slack),
                ("notify-url-2", EndpointKind::Webhook)
            ]
        );
        assert_eq!(config.names, ["team-chat"]);
        assert_eq!(
            config.direct[1].signing_key.as_deref(),
            Some("0123456789abcdef")
        );
    }

    #[test]
    fn a_webhook_url_needs_a_key_from_the_environment() {
        let cases = [None, Some("short".to_string())];
        for key in cases {
            let error = NotifyConfig::resolve_with(&flags(&["https://example.com/hook"]), key)
                .expect_err("no usable key")
                .to_string();
            assert!(error.contains("KUBECTL_CANARY_NOTIFY_KEY"), "{error}");
        }
    }
}
