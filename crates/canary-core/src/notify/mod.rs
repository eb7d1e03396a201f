//! Notifications (issue 26): the moments of a canary worth telling people ([`Moment`]),
//! the notice that tells one ([`Notice`]), how each kind of endpoint takes it
//! ([`render()`]: Slack, Microsoft Teams, a signed JSON webhook), the signature
//! ([`sign`]), and where notices go ([`endpoints`]: the Secret's YAML, `--notify`).
//! Pure: canary-kube sends them.

pub mod endpoints;
pub mod moment;
pub mod notice;
pub mod render;
pub mod sign;

pub use endpoints::{
    Endpoint, EndpointError, EndpointKind, EndpointsConfig, NotifyTarget, parse_endpoints,
};
pub use moment::{Moment, Sender, Severity};
pub use notice::{Notice, report_link};
pub use render::render;
pub use sign::{SIGNATURE_HEADER, SignatureError, signature_header, verify_signature};

/// The Event reason of a notification that could not be sent.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
