//! Where notices go: endpoints (Slack, Microsoft Teams, a signed JSON webhook), the YAML
//! document that lists them by name (the `endpoints.yaml` key of the Secret
//! `kubectl-canary-notify`), and the CLI's `--notify URL_OR_NAME`.
//!
//! A webhook URL is a secret (whoever has it can post to the channel), and so is a signing
//! key: [`Endpoint`]'s `Debug` shows neither, and every message about an endpoint names it
//! by its name.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

/// The key of the Secret that holds the endpoints' YAML.
pub const SECRET_KEY: &str = "endpoints.yaml";

/// The Secret (in the Deployment's namespace) that holds the named endpoints.
pub const SECRET_NAME: &str = "kubectl-canary-notify";

/// The environment variable the CLI reads a `webhook` URL's signing key from.
pub const SIGNING_KEY_ENV: &str = "KUBECTL_CANARY_NOTIFY_KEY";

/// Longest configuration read (bytes).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// How messages are shaped for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A Slack incoming webhook (or anything that takes Slack's JSON: Mattermost, ...).
    Slack,
    /// A Microsoft Teams workflow or incoming webhook: a message with an Adaptive Card.
    Teams,
    /// A generic JSON webhook, signed with HMAC-SHA256.
    Webhook,
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointKind::Slack => "slack",
            EndpointKind::Teams => "teams",
            EndpointKind::Webhook => "webhook",
        })
    }
}

/// One endpoint notices are sent to.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its name: the Secret's name for it, or `--notify #N` for a URL given on the command
    /// line. Every message about the endpoint uses this, never the URL.
    pub name: String,
    /// How messages are shaped.
    pub kind: EndpointKind,
    /// Where to POST (a secret).
    pub url: String,
    /// The HMAC key of a `webhook` endpoint (a secret).
    pub signing_key: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"<redacted>")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The endpoints a namespace's Secret lists, and the report base URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointsConfig {
    /// The endpoints, in the order listed.
    pub endpoints: Vec<Endpoint>,
    /// Where reports are published: a notice links to `<base>/<namespace>/<deployment>.html`
    /// (or `base` with `{namespace}` and `{deployment}` replaced).
    pub report_base_url: Option<String>,
}

impl EndpointsConfig {
    /// The endpoint named `name`.
    pub fn get(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The names listed, for a message naming what there is.
    pub fn names(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.name.as_str()).collect()
    }
}

/// Why endpoints or a `--notify` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// The configuration document is invalid.
    #[error("{}{}: {message}", location(*line, *column), field_suffix(field))]
    Invalid {
        /// 1-based line, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// The field path, e.g. `endpoints[1].url`.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A `--notify` value is neither a URL nor an endpoint name.
    #[error("--notify {shown}: {message}")]
    BadTarget {
        /// The value, shortened so a mistyped URL is not printed whole.
        shown: String,
        /// What is wrong.
        message: String,
    },
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}"),
        (Some(line), None) => format!("line {line}"),
        _ => "notification endpoints".into(),
    }
}

fn field_suffix(field: &Option<String>) -> String {
    match field {
        Some(field) if !field.is_empty() && field != "." => format!(", field {field}"),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    report_base_url: Option<String>,
    endpoints: Vec<serde_saphyr::Spanned<RawEndpoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEndpoint {
    name: String,
    kind: EndpointKind,
    url: String,
    #[serde(default)]
    signing_key: Option<String>,
}

/// Reads the endpoints' YAML (the Secret's `endpoints.yaml`):
///
/// ```yaml
/// reportBaseUrl: https://ci.example.com/canary-reports   # optional
/// endpoints:
///   - name: team-chat
///     kind: slack                  # slack | teams | webhook
///     url: https://hooks.slack.com/services/...
///   - name: audit
///     kind: webhook
///     url: https://audit.example.com/kubectl-canary
///     signingKey: a-long-random-string   # required for webhook, refused for the others
/// ```
pub fn parse_endpoints(yaml: &str) -> Result<EndpointsConfig, EndpointError> {
    if yaml.len() > MAX_CONFIG_BYTES {
        return Err(invalid(
            None,
            None,
            format!("longer than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    let mut failed_path: Option<String> = None;
    let raw: Result<RawConfig, serde_saphyr::Error> =
        serde_saphyr::with_deserializer_from_str(yaml, |deserializer| {
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                failed_path = Some(error.path().to_string().replace("].value", "]"));
                error.into_inner()
            })
        });
    let raw = raw.map_err(|error| {
        let location = error.location();
        let mut message = error.without_snippet().to_string();
        if let Some(location) = location {
            let suffix = format!(" at line {}, column {}", location.line(), location.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        EndpointError::Invalid {
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            field: failed_path.clone(),
            message,
        }
    })?;
    if let Some(base) = &raw.report_base_url {
        check_url(base).map_err(|message| invalid(None, Some("reportBaseUrl".into()), message))?;
    }
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(raw.endpoints.len());
    for (i, spanned) in raw.endpoints.into_iter().enumerate() {
        let line = Some(spanned.referenced.line());
        let at = |field: &str, message: String| EndpointError::Invalid {
            line,
            column: None,
            field: Some(format!("endpoints[{i}]{field}")),
            message,
        };
        let raw = spanned.value;
        if !is_name(&raw.name) {
            return Err(at(
                ".name",
                format!(
                    "{:?} is not a name: lowercase letters, digits and '-', at most 63, starting and ending \
                     with a letter or digit",
                    raw.name
                ),
            ));
        }
        if endpoints.iter().any(|e| e.name == raw.name) {
            return Err(at(".name", format!("{:?} is listed twice", raw.name)));
        }
        check_url(&raw.url).map_err(|message| at(".url", message))?;
        match (raw.kind, &raw.signing_key) {
            (EndpointKind::Webhook, None) => {
                return Err(at(
                    "",
                    "a webhook endpoint needs signingKey: its notices are signed so the receiver can tell them \
                     from forgeries"
                        .into(),
                ));
            }
            (EndpointKind::Webhook, Some(key)) if key.len() < 16 => {
                return Err(at(".signingKey", "at least 16 characters".into()));
            }
            (EndpointKind::Slack | EndpointKind::Teams, Some(_)) => {
                return Err(at(
                    ".signingKey",
                    format!("only webhook endpoints are signed, not {}", raw.kind),
                ));
            }
            _ => {}
        }
        endpoints.push(Endpoint {
            name: raw.name,
            kind: raw.kind,
            url: raw.url,
            signing_key: raw.signing_key,
        });
    }
    Ok(EndpointsConfig {
        endpoints,
        report_base_url: raw.report_base_url,
    })
}

fn invalid(line: Option<u64>, field: Option<String>, message: String) -> EndpointError {
    EndpointError::Invalid {
        line,
        column: None,
        field,
        message,
    }
}

/// Whether `name` can name an endpoint (a DNS label).
pub fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// The host of an `http(s)://` URL, lowercased, or why it is not one.
fn check_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("not an http:// or https:// URL")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL has no spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(host.to_ascii_lowercase())
}

/// The kind of endpoint a URL is, by its host: `hooks.slack.com` is Slack; Teams' incoming
/// webhooks (`*.webhook.office.com`) and workflows (`*.logic.azure.com`, and Power
/// Automate's `*.powerautomate.com`, `*.powerplatform.com`, `flow.microsoft.com`) are
/// Teams; anything else a signed webhook.
pub fn kind_of_host(host: &str) -> EndpointKind {
    let host = host.trim_end_matches('.');
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if host == "hooks.slack.com" {
        EndpointKind::Slack
    } else if [
        "webhook.office.com",
        "logic.azure.com",
        "powerautomate.com",
        "powerplatform.com",
    ]
    .iter()
    .any(|domain| under(domain))
        || host == "flow.microsoft.com"
    {
        EndpointKind::Teams
    } else {
        EndpointKind::Webhook
    }
}

/// What a `--notify` value names.
#[derive(Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    /// A URL given directly, with its kind (from an explicit `slack+`, `teams+` or
    /// `webhook+` prefix, else from its host).
    Url {
        /// How messages are shaped.
        kind: EndpointKind,
        /// The URL, without the prefix.
        url: String,
    },
    /// An endpoint of the namespace's Secret, by name.
    Name(String),
}

impl fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyTarget::Url { kind, .. } => write!(f, "Url({kind}, <redacted>)"),
            NotifyTarget::Name(name) => write!(f, "Name({name})"),
        }
    }
}

impl NotifyTarget {
    /// Reads a `--notify` value: a URL (`https://...`, or `slack+https://...`,
    /// `teams+https://...`, `webhook+https://...`) or an endpoint's name.
    pub fn parse(arg: &str) -> Result<Self, EndpointError> {
        let bad = |message: String| EndpointError::BadTarget {
            shown: shown(arg),
            message,
        };
        let (explicit, url) = match arg.split_once('+') {
            Some((prefix, url)) if url.contains("://") => {
                let kind = match prefix {
                    "slack" => EndpointKind::Slack,
                    "teams" => EndpointKind::Teams,
                    "webhook" => EndpointKind::Webhook,
                    other => {
                        return Err(bad(format!(
                            "unknown kind {other:?} before '+': slack, teams or webhook"
                        )));
                    }
                };
                (Some(kind), url)
            }
            _ => (None, arg),
        };
        if url.contains("://") {
            let host = check_url(url).map_err(bad)?;
            return Ok(NotifyTarget::Url {
                kind: explicit.unwrap_or_else(|| kind_of_host(&host)),
                url: url.to_string(),
            });
        }
        if is_name(arg) {
            return Ok(NotifyTarget::Name(arg.to_string()));
        }
        Err(bad(format!(
            "neither a URL (https://..., or slack+https://, teams+https://, webhook+https://) nor the name \
             of an endpoint of the Secret {SECRET_NAME} (lowercase letters, digits and '-')"
        )))
    }
}

/// A value shown in a message: a URL only up to its host, so a secret path is not printed.
fn shown(arg: &str) -> String {
    match arg.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}/...")
        }
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_by_prefix_or_host() {
        use EndpointKind::*;
        let cases = [
            ("https://hooks.slack.com/services/T0/B0/x", Slack),
            ("https://contoso.webhook.office.com/webhookb2/x", Teams),
            (
                "https://prod-01.westus.logic.azure.com:443/workflows/x",
                Teams,
            ),
            ("https://example.com/hook", Webhook),
            ("http://127.0.0.1:8080/x", Webhook),
            ("slack+https://chat.example.com/hooks/x", Slack),
            ("teams+http://127.0.0.1:9/x", Teams),
            ("webhook+https://hooks.slack.com/services/x", Webhook),
            ("https://hooks.slack.com.evil.example/x", Webhook),
            ("https://notlogic.azure.com/x", Webhook),
            (
                "https://default0a1b.2c.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/x",
                Teams,
            ),
            ("https://api.powerautomate.com/webhook/x", Teams),
            ("https://flow.microsoft.com/x", Teams),
            ("https://notpowerplatform.com/x", Webhook),
        ];
        for (arg, kind) in cases {
            match NotifyTarget::parse(arg) {
                Ok(NotifyTarget::Url { kind: found, url }) => {
                    assert_eq!(found, kind, "{arg}");
                    assert!(url.starts_with("http"), "{arg}: {url}");
                }
                other => panic!("{arg}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_and_bad_values() {
        assert_eq!(
            NotifyTarget::parse("team-chat"),
            Ok(NotifyTarget::Name("team-chat".into()))
        );
        let cases = [
            ("Team Chat", "neither a URL"),
            ("ftp://example.com/x", "not an http:// or https:// URL"),
            ("irc+https://example.com/x", "unknown kind \"irc\""),
            ("https:///path", "the URL has no host"),
            ("-chat", "neither a URL"),
        ];
        for (arg, message) in cases {
            let error = NotifyTarget::parse(arg).expect_err(arg).to_string();
            assert!(error.contains(message), "{arg}: {error}");
        }
        // A URL is never printed whole in a refusal.
        let error = NotifyTarget::parse("irc+https://hooks.example.com/secret-path")
            .expect_err("irc")
            .to_string();
        assert!(!error.contains("secret-path"), "{error}");
    }

    const GOOD: &str = "\
reportBaseUrl: https://ci.example.com/reports
endpoints:
  - name: team-chat
    kind: slack
    url: https://hooks.slack.com/services/T/B/x
  - name: audit
    kind: webhook
    url: https://audit.example.com/hook
    signingKey: 0123456789abcdef0123
";

    #[test]
    fn a_config_lists_named_endpoints_and_never_shows_their_secrets() {
        let config = parse_endpoints(GOOD).expect("valid");
        assert_eq!(config.names(), ["team-chat", "audit"]);
        assert_eq!(
            config.report_base_url.as_deref(),
            Some("https://ci.example.com/reports")
        );
        let audit = config.get("audit").expect("audit");
        assert_eq!(audit.kind, EndpointKind::Webhook);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hooks.slack.com") && !debug.contains("0123456789"),
            "{debug}"
        );
    }

    #[test]
    fn config_errors_name_line_and_field() {
        let cases = [
            (
                "endpoints:\n  - name: a\n    kind: discord\n    url: https://x.example/\n",
                "line 3, column 11, field endpoints[0].kind: unknown variant `discord`",
            ),
            (
                "endpoints:\n  - name: a\n    kind: slack\n    url: https://x.example/\n    colour: red\n",
                "line 5, column 5, field endpoints[0].colour: unknown field `colour`",
            ),
            (
                "endpoints:\n  - name: a\n    kind: slack\n    url: https://x.example/\n  - name: a\n    kind: teams\n    url: https://y.example/\n",
                "line 5, field endpoints[1].name: \"a\" is listed twice",
            ),
            (
                "endpoints:\n  - name: a\n    kind: webhook\n    url: https://x.example/\n",
                "line 2, field endpoints[0]: a webhook endpoint needs signingKey",
            ),
            (
                "endpoints:\n  - name: a\n    kind: slack\n    url: https://x.example/\n    signingKey: 0123456789abcdef\n",
                "field endpoints[0].signingKey: only webhook endpoints are signed, not slack",
            ),
            (
                "endpoints:\n  - name: a\n    kind: slack\n    url: hooks.slack.com/x\n",
                "line 2, field endpoints[0].url: not an http:// or https:// URL",
            ),
            (
                "endpoints:\n  - name: A_B\n    kind: slack\n    url: https://x.example/\n",
                "field endpoints[0].name: \"A_B\" is not a name",
            ),
            (
                "reportBaseUrl: x\nendpoints: []\n",
                "field reportBaseUrl: not an http",
            ),
            ("endpoint: []\n", "unknown field `endpoint`"),
        ];
        for (yaml, expected) in cases {
            let error = parse_endpoints(yaml).expect_err(yaml).to_string();
            assert!(error.contains(expected), "{yaml}\n=> {error}");
        }
    }
}
