//! The controller's own configuration: flags (and their environment variables). Endpoints
//! the analysis calls come from here, never from a spec in a namespace.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use canary_core::analysis_spec::PrometheusAddress;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log collectors).
    Json,
    /// Human-readable lines.
    Text,
}

/// `kubectl-canary-controller` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kubectl-canary-controller",
    version,
    about = "GitOps mode of kubectl-canary: turns a braked Git change of an opted-in Deployment into an exact, analysed canary"
)]
pub struct Config {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "KC_CONTROLLER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The Prometheus that analysis specs' Prometheus checks query. A spec naming another
    /// address is refused.
    #[arg(long, env = "KC_CONTROLLER_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "KC_CONTROLLER_NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kubectl-canary-controller")]
    pub lease_name: String,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubectl-canary-system")]
    pub lease_namespace: String,
    /// Seconds a leader's Lease is valid without renewal: how long a crashed leader blocks
    /// the next one at most.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Seconds a leader may go on without one of its watches (the API server refusing or not
    /// answering its list and watch requests) before it gives up the Lease and stands by
    /// again, so that a replica that can see takes over.
    #[arg(long, default_value_t = 60)]
    pub max_blind_seconds: u64,
    /// This replica's identity in the Lease (default: the pod name, else host and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// The brake's MutatingAdmissionPolicy (and binding) that must be installed.
    #[arg(long, default_value = canary_kube::gitops::policy_check::POLICY_NAME)]
    pub policy_name: String,
    /// Start without checking that the brake's admission policy is installed (for clusters
    /// where the controller may not read admission policies; the brake is still required).
    #[arg(long)]
    pub skip_policy_check: bool,
}

impl Config {
    /// The Prometheus address of analyses, if configured.
    pub fn prometheus(&self) -> Option<PrometheusAddress> {
        self.prometheus_url
            .as_ref()
            .map(|url| PrometheusAddress::Url(url.trim_end_matches('/').to_string()))
    }

    /// This replica's Lease identity.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// How long the leader may be blind, see `max_blind_seconds`.
    pub fn max_blind(&self) -> Duration {
        Duration::from_secs(self.max_blind_seconds.max(1))
    }

    /// The Lease duration.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.max(3))
    }
}
