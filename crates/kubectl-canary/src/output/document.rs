//! The documents `-o json` and `-o yaml` print: one per command run (and one per change with
//! `status --watch`), each with `apiVersion` (the schema's version, [`SCHEMA_VERSION`]) and
//! `kind` (its shape) first. Every value a script branches on is an enumerated value; every
//! sentence for people is a field of its own; no document holds JSON inside a string. The
//! shapes are documented in docs/output.md, whose examples the tests below check.

use canary_core::machine::Decision;
use canary_core::plan::{CanaryPlan, Explanation};
use canary_core::verdict::Verdict;
use canary_kube::engine::StartPlan;
use canary_kube::status::StatusReport;
use serde::Serialize;

/// The version of the documents' schema. A field is only ever added within a version; a
/// removed or changed field makes a new version.
pub const SCHEMA_VERSION: &str = "kubectl-canary.io/v1";

/// A value printed as a document: its `kind`.
pub trait Document: Serialize {
    /// The document's kind, e.g. `Status`.
    const KIND: &'static str;
}

/// The printed form: `apiVersion` and `kind`, then the document's own fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, T: Document> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: Document> Envelope<'a, T> {
    /// `body` with its version and kind.
    pub fn of(body: &'a T) -> Self {
        Envelope {
            api_version: SCHEMA_VERSION,
            kind: T::KIND,
            body,
        }
    }
}

impl Document for StatusReport {
    const KIND: &'static str = "Status";
}

impl Document for Verdict {
    const KIND: &'static str = "Verdict";
}

impl Document for StartPlan {
    const KIND: &'static str = "StartPlan";
}

/// What a dry run of `promote` or `abort` would do: the state machine's next decision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun<'a> {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// The next decision (its `decision` field says which).
    pub next: &'a Decision,
}

impl Document for DryRun<'_> {
    const KIND: &'static str = "DryRun";
}

/// How a command that changes a canary ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandOutcome {
    /// The canary is held at its size.
    Held,
    /// The new version runs on every pod; the canary is closed.
    Promoted,
    /// The stable version runs on every pod again; the canary is closed.
    RolledBack,
    /// A record no update of the Deployment confirmed was deleted; the Deployment untouched.
    RecordDiscarded,
    /// An unreadable record was deleted; the Deployment untouched.
    UnreadableRecordDeleted,
    /// The seal a finished canary left on the Deployment was removed.
    SealRemoved,
    /// A signal stopped the command; the record keeps the intent.
    Interrupted,
}

/// The result of `promote` or `abort` (and of `start` interrupted).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// `start`, `promote` or `abort`.
    pub command: &'static str,
    /// The namespace.
    pub namespace: String,
    /// The Deployment.
    pub deployment: String,
    /// How it ended.
    pub outcome: CommandOutcome,
    /// The same in words, with what to do next where something is left to do.
    pub message: String,
    /// The status afterwards, when it was read.
    pub status: Option<StatusReport>,
}

impl Document for CommandResult {
    const KIND: &'static str = "Result";
}

/// How `start --auto` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AutoResult {
    /// Every step passed; the new version runs on every pod.
    Promoted,
    /// A step failed its analysis; the stable version runs on every pod again.
    RolledBack,
    /// The analysis could not decide; the canary stays held and recorded.
    Inconclusive,
    /// A signal stopped the run.
    Interrupted,
}

/// The result of `start --auto`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoOutcome {
    /// How it ended.
    pub outcome: AutoResult,
    /// The canary sizes reached, in pods.
    pub steps: Vec<i32>,
    /// The verdict of every analysis, in order.
    pub verdicts: Vec<Verdict>,
}

impl Document for AutoOutcome {
    const KIND: &'static str = "AutoRun";
}

/// `plan`: the canary plan of a Deployment (or of `--replicas` without a cluster).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport<'a> {
    /// The Deployment, when planned from a live one.
    pub deployment: Option<&'a str>,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// The plan's fields.
    #[serde(flatten)]
    pub plan: &'a CanaryPlan,
}

impl Document for PlanReport<'_> {
    const KIND: &'static str = "Plan";
}

/// `plan --explain`: the walk-through of the controller's native rollout and the canary.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainReport<'a> {
    /// The Deployment, when explained from a live one.
    pub deployment: Option<&'a str>,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// The explanation's fields.
    #[serde(flatten)]
    pub explanation: &'a Explanation,
}

impl Document for ExplainReport<'_> {
    const KIND: &'static str = "PlanExplanation";
}
