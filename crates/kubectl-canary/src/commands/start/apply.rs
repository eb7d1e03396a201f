//! `kubectl canary apply -f DIR_OR_FILE`: a CI pipeline's `kubectl apply`, with a canary
//! (as `start`, with its flags) for each Deployment whose pod template changes. Everything
//! is checked before anything changes; then the other objects are applied, then the
//! canaries run one after the other, and the first that does not end well decides the exit
//! code.

use canary_core::release::Document;
use canary_kube::apply::{TemplateChange, apply_object, template_change};
use canary_kube::error::CanaryError;

use crate::config::start::ApplyConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;

/// Runs `apply`; returns the exit code.
pub async fn run(config: &Config, apply: &ApplyConfig) -> Result<i32, CanaryError> {
    let human = !matches!(config.output, OutputFormat::Json | OutputFormat::Yaml);
    if apply.documents.is_empty() {
        return Err(CanaryError::Usage(
            "the files given hold no object to apply".to_string(),
        ));
    }
    // Which Deployments get a canary; each one checked as `start` checks it.
    let mut canaries: Vec<&Document> = Vec::new();
    let mut others: Vec<&Document> = Vec::new();
    for document in &apply.documents {
        if !document.is_deployment() {
            others.push(document);
            continue;
        }
        if let Some(namespace) = document.namespace()
            && namespace != config.namespace
        {
            return Err(CanaryError::Refused(format!(
                "{}, line {}: Deployment {} is for namespace {namespace}, this apply runs in namespace {}: \
                 pass -n {namespace} (one namespace's canaries per apply); nothing was changed",
                document.file,
                document.line,
                document.name(),
                config.namespace
            )));
        }
        match template_change(&config.client, &config.namespace, document).await? {
            TemplateChange::Changed => canaries.push(document),
            TemplateChange::NewDeployment | TemplateChange::Unchanged => others.push(document),
        }
    }
    for document in &canaries {
        super::plan(config, &apply.start_for(document)).await?;
    }
    // Every other object through the API server's dry run (validation, admission, RBAC),
    // so that a refusal comes before anything is applied.
    for document in &others {
        apply_object(&config.client, &config.namespace, document, true).await?;
    }
    if human {
        println!(
            "apply: {} object(s) applied as they are, {} Deployment(s) released with a canary{}",
            others.len(),
            canaries.len(),
            if canaries.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    canaries
                        .iter()
                        .map(|d| format!("deploy/{}", d.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    for document in &others {
        if !apply.each.dry_run {
            apply_object(&config.client, &config.namespace, document, false).await?;
        }
        if human {
            println!(
                "  {} {}/{} (server-side apply, field manager {})",
                if apply.each.dry_run {
                    "would apply"
                } else {
                    "applied"
                },
                document.kind(),
                document.name(),
                canary_kube::apply::FIELD_MANAGER
            );
        }
    }
    for (index, document) in canaries.iter().enumerate() {
        let start = apply.start_for(document);
        // Planned again: an earlier canary may have run for minutes.
        let planned = super::plan(config, &start).await?;
        let notifier = planned.engine.notifier().clone();
        let code = super::execute(config, &start, planned).await;
        crate::notices::flush(&notifier).await;
        let code = code?;
        if code != exit_code::OK {
            let left: Vec<String> = canaries[index + 1..]
                .iter()
                .map(|d| format!("deploy/{}", d.name()))
                .collect();
            if human && !left.is_empty() {
                println!(
                    "apply stopped at deploy/{}: not released (their manifests not applied): {}",
                    document.name(),
                    left.join(", ")
                );
            }
            return Ok(code);
        }
    }
    Ok(exit_code::OK)
}
