//! Why a release cannot be made a canary. Each message says what was wrong (the file and
//! line where there is one) and what to do; nothing was changed.

use thiserror::Error;

use crate::target::{WorkloadKind, WorkloadRef};

/// Why the input of a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReleaseError {
    /// A manifest or patch is not YAML or JSON.
    #[error("{file}{}: cannot be read as YAML or JSON: {message}", at_line(*line))]
    Unparseable {
        /// The file (`-` for standard input, `--patch` for the flag).
        file: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A file cannot be read at all.
    #[error("{file}: cannot be read: {message}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// A document of a manifest is not an object with `kind` and `metadata.name`.
    #[error("{file}{}: {message}", at_line(Some(*line)))]
    NotAnObject {
        /// The file.
        file: String,
        /// Line where the document starts.
        line: usize,
        /// What is missing.
        message: String,
    },
    /// The manifest has no workload of that kind and name (only other kinds or other names).
    #[error(
        "{file} has no {} {name}{}; found: {found}. Give the manifest of {}/{name} (a \
         multi-document file may hold it among others)",
        kind.name(),
        namespace.as_deref().map(|n| format!(" in namespace {n}")).unwrap_or_default(),
        kind.short()
    )]
    NoSuchWorkload {
        /// The file.
        file: String,
        /// The kind wanted.
        kind: WorkloadKind,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: Option<String>,
        /// What the file holds: `Service/web (line 1), Deployment/api (line 14)`.
        found: String,
    },
    /// The manifest's workload of that name is another namespace's.
    #[error(
        "{file}, line {line}: {} {name} is for namespace {found}, the canary is in namespace \
         {expected}: pass -n {found}, or use the manifest of this namespace",
        kind.name()
    )]
    OtherNamespace {
        /// The file.
        file: String,
        /// Line where its document starts.
        line: usize,
        /// Its kind.
        kind: WorkloadKind,
        /// Its name.
        name: String,
        /// The manifest's namespace.
        found: String,
        /// The namespace of the command.
        expected: String,
    },
    /// The manifest's workload has no pod template.
    #[error(
        "{file}, line {line}: the {} has no spec.template: there is nothing to release",
        kind.name()
    )]
    NoTemplate {
        /// The file.
        file: String,
        /// Line where its document starts.
        line: usize,
        /// Its kind.
        kind: WorkloadKind,
    },
    /// The manifest or patch changes `spec.selector`, which the API server does not allow.
    #[error(
        "{file}{}: spec.selector differs from {workload}'s ({found} instead of {live}); a \
         {kind}'s selector cannot change: its pods would belong to another {kind}. Keep the \
         selector, or release it as a new {kind}",
        at_line(*line),
        kind = workload.kind.name()
    )]
    SelectorDiffers {
        /// The file or flag.
        file: String,
        /// Line where the workload's document starts.
        line: Option<usize>,
        /// The workload.
        workload: WorkloadRef,
        /// The selector given.
        found: String,
        /// The selector live.
        live: String,
    },
    /// The input also changes fields outside the pod template.
    #[error(
        "{file}{}: the release also changes {fields} of {workload}, outside the pod template. A \
         canary releases a pod template; those fields would change every pod at once or be lost at \
         promote/abort, so they are refused: apply them separately (before or after the canary, \
         e.g. `kubectl apply` of the manifest with the current pod template), or leave them as they \
         are live in the manifest",
        at_line(*line)
    )]
    OutsideTemplate {
        /// The file or flag.
        file: String,
        /// Line where the workload's document starts.
        line: Option<usize>,
        /// The workload, as kubectl names it (`deploy/web`).
        workload: String,
        /// The fields, by path.
        fields: String,
    },
    /// A patch could not be applied.
    #[error("{file} (--type {patch_type}): cannot be applied to {workload}: {message}")]
    BadPatch {
        /// The flag or file.
        file: String,
        /// Its type.
        patch_type: String,
        /// The workload, as kubectl names it (`deploy/web`).
        workload: String,
        /// Why.
        message: String,
    },
    /// A `--env` argument is malformed.
    #[error(
        "--env {arg}: {message}; expected CONTAINER:NAME=VALUE, e.g. --env web:LOG_LEVEL=debug"
    )]
    BadEnv {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// `--env` or an image names a container the new pod template does not have.
    #[error(
        "container '{container}' ({what}) is not in the pod template of {workload}; its containers are: {known}"
    )]
    UnknownContainer {
        /// The workload, as kubectl names it (`deploy/web`).
        workload: String,
        /// The container named.
        container: String,
        /// Which argument named it.
        what: String,
        /// The containers there are.
        known: String,
    },
    /// The release leaves the pod template as it is.
    #[error(
        "the release does not change the pod template of {workload}{}, so no pod would restart and \
         there is nothing to canary. A ConfigMap or Secret whose content alone changes is not seen by \
         running pods (environment variables from it never, mounted files only after a delay, with no \
         rollback): give it a new name (kustomize's configMapGenerator does) and reference the new \
         name in the pod template; that change is canaried",
        if from.is_empty() { String::new() } else { format!(" ({from})") }
    )]
    NoTemplateChange {
        /// The workload, as kubectl names it (`deploy/web`).
        workload: String,
        /// What the release was made of.
        from: String,
    },
}

impl ReleaseError {
    /// Whether the input itself is malformed (a usage error), rather than refused for the
    /// workload it was given for.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            ReleaseError::Unparseable { .. }
                | ReleaseError::Unreadable { .. }
                | ReleaseError::NotAnObject { .. }
                | ReleaseError::BadEnv { .. }
        )
    }
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}
