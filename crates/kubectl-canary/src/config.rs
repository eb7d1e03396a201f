//! Turns the parsed flags into what the commands run with: a Kubernetes client for the
//! chosen kubeconfig and context, the namespace, the output format and the timeout.

pub mod analysis;

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::{GlobalArgs, OutputFormat};

/// What every command runs with.
pub struct Config {
    /// The client.
    pub client: kube::Client,
    /// The namespace of the Deployment.
    pub namespace: String,
    /// How to print.
    pub output: OutputFormat,
    /// Longest wait for the controller.
    pub timeout: Duration,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig{where_}: {detail}")]
    Kubeconfig {
        /// Which file, if one was named.
        where_: String,
        /// What went wrong.
        detail: String,
    },
}

impl Config {
    /// Resolves the global flags.
    pub async fn resolve(global: &GlobalArgs) -> Result<Self, ConfigError> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..Default::default()
        };
        let where_ = global
            .kubeconfig
            .as_ref()
            .map(|p| format!(" {}", p.display()))
            .unwrap_or_default();
        let error = |detail: String| ConfigError::Kubeconfig {
            where_: where_.clone(),
            detail,
        };
        let kube_config = match &global.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| error(e.to_string()))?
            }
            None if global.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| error(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| error(e.to_string()))?,
        };
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        let client = kube::Client::try_from(kube_config).map_err(|e| error(e.to_string()))?;
        Ok(Self {
            client,
            namespace,
            output: global.output,
            timeout: global.timeout,
        })
    }
}
