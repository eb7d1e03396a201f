//! PromQL query templates: the placeholders, rendering one for a side, and checking one.

use std::time::Duration;

/// The placeholders a query template may use.
pub const QUERY_PLACEHOLDERS: &[&str] = &[
    "{{selector}}",
    "{{namespace}}",
    "{{hash}}",
    "{{replicaset}}",
    "{{revision}}",
    "{{deployment}}",
    "{{workload}}",
    "{{window}}",
];

/// The values a query template is rendered with, for one side of the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The workload's name (a Deployment's, StatefulSet's or DaemonSet's).
    pub workload: &'a str,
    /// The object that carries the side's revision: a Deployment's ReplicaSet, a
    /// StatefulSet's or DaemonSet's ControllerRevision.
    pub revision: &'a str,
    /// The pod label that tells the sides apart, as Prometheus' Kubernetes discovery names
    /// it (`pod_template_hash`; `controller_revision_hash` for StatefulSets and DaemonSets).
    pub revision_label: &'a str,
    /// Its value on the side's pods.
    pub hash: &'a str,
    /// The analysis window.
    pub window: Duration,
}

impl QueryContext<'_> {
    /// The label matchers of the side's pod series: `namespace="…",<revision label>="…"`.
    fn side_matchers(&self) -> String {
        format!(
            "namespace=\"{}\",{}=\"{}\"",
            self.namespace, self.revision_label, self.hash
        )
    }
}

/// Renders a query template for one side: `{{selector}}` becomes
/// `namespace="…",pod_template_hash="…"` (the labels Prometheus' Kubernetes discovery gives
/// pod series; `controller_revision_hash` for a StatefulSet or DaemonSet), `{{hash}}`,
/// `{{namespace}}`, `{{revision}}` (alias `{{replicaset}}`) and `{{workload}}` (alias
/// `{{deployment}}`) their values, and `{{window}}` the window in seconds, e.g. `60s`.
///
/// ```
/// use std::time::Duration;
/// use canary_core::analysis_spec::{render_query, QueryContext};
/// let context = QueryContext { namespace: "shop", workload: "web", revision: "web-7d9f",
///     revision_label: "pod_template_hash", hash: "7d9f", window: Duration::from_secs(120) };
/// assert_eq!(
///     render_query("sum(rate(http_requests_total{ {{selector}} }[{{window}}]))", &context),
///     r#"sum(rate(http_requests_total{ namespace="shop",pod_template_hash="7d9f" }[120s]))"#,
/// );
/// ```
pub fn render_query(template: &str, context: &QueryContext<'_>) -> String {
    template
        .replace("{{selector}}", &context.side_matchers())
        .replace("{{namespace}}", context.namespace)
        .replace("{{hash}}", context.hash)
        .replace("{{replicaset}}", context.revision)
        .replace("{{revision}}", context.revision)
        .replace("{{deployment}}", context.workload)
        .replace("{{workload}}", context.workload)
        .replace(
            "{{window}}",
            &format!("{}s", context.window.as_secs().max(1)),
        )
}

/// The query that shows which pods of a side Prometheus has live series of (series the pods
/// themselves expose, not the scrape's own `up`/`scrape_*`, which exist for a target that
/// cannot be scraped too), for a template written with `{{selector}}`: its labels are the
/// ones this looks for. One series per pod, labelled `pod`.
///
/// ```
/// use std::time::Duration;
/// use canary_core::analysis_spec::{live_series_query, QueryContext};
/// let context = QueryContext { namespace: "shop", workload: "db", revision: "db-5c8f",
///     revision_label: "controller_revision_hash", hash: "db-5c8f", window: Duration::from_secs(60) };
/// assert_eq!(
///     live_series_query(&context),
///     r#"group by (pod) ({namespace="shop",controller_revision_hash="db-5c8f",__name__!~"up|scrape_.+"})"#,
/// );
/// ```
pub fn live_series_query(context: &QueryContext<'_>) -> String {
    format!(
        "group by (pod) ({{{},__name__!~\"up|scrape_.+\"}})",
        context.side_matchers()
    )
}

/// Why a query template cannot tell the canary from the stable pods, if it cannot.
pub fn query_template_problem(template: &str) -> Option<String> {
    if template.trim().is_empty() {
        return Some("the query is empty".into());
    }
    let distinguishes = ["{{selector}}", "{{hash}}", "{{replicaset}}", "{{revision}}"]
        .iter()
        .any(|p| template.contains(p));
    if !distinguishes {
        return Some(
            "the query must contain {{selector}}, {{hash}} or {{revision}} ({{replicaset}}), otherwise canary and stable get the same answer"
                .into(),
        );
    }
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return Some("unclosed {{ in the query".into());
        };
        let placeholder = &rest[start..start + end + 2];
        if !QUERY_PLACEHOLDERS.contains(&placeholder) {
            return Some(format!(
                "unknown placeholder {placeholder}; known: {}",
                QUERY_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[start + end + 2..];
    }
    None
}
