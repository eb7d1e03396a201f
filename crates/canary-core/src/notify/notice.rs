//! A notice: one moment of one canary, with everything a person needs to read it without
//! opening a terminal (the workload, both versions, sizes and share, the reasons, the next
//! step, a link to the report).

use crate::goal::Goal;
use crate::record::CanaryRecord;
use crate::rollout_math::ResolvedCanary;
use crate::verdict::Verdict;

use super::moment::{Moment, Sender};

/// One moment of one canary, ready to be rendered for an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What happened.
    pub moment: Moment,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name (the workload is `deploy/NAME`).
    pub deployment: String,
    /// The stable version: its images as `container=image`.
    pub stable: Option<String>,
    /// The canary's version: the release's change in one line (images, field paths).
    pub canary: Option<String>,
    /// Canary pods at this moment.
    pub canary_pods: Option<i32>,
    /// The Deployment's `spec.replicas`.
    pub replicas: Option<i32>,
    /// The canary's share of Ready pods, 0..=1: its share of traffic behind a Service.
    pub share: Option<f64>,
    /// What happened, in one sentence (the note of the Kubernetes Event of the same moment).
    pub detail: String,
    /// Why: a verdict's reason and its checks that did not pass, a stuck canary's cause.
    pub reasons: Vec<String>,
    /// What a person may do next, with the commands.
    pub next_step: String,
    /// Who sent it.
    pub sender: Sender,
    /// When (RFC 3339).
    pub at: String,
    /// A link to the canary's HTML report, when a base URL is configured.
    pub report_url: Option<String>,
}

impl Notice {
    /// A notice of `moment` about the canary `record` describes (of a Deployment in
    /// `namespace`), sent by `sender` at `at`; `detail` says what happened. Sizes and share come from the record's phase (the whole
    /// Deployment once promoted, nothing once rolled back).
    pub fn about(
        moment: Moment,
        namespace: &str,
        record: &CanaryRecord,
        sender: Sender,
        at: &str,
        detail: impl Into<String>,
    ) -> Self {
        let pods = match moment {
            Moment::Promoted => Some(record.replicas),
            Moment::RolledBack => Some(0),
            _ => match record.phase.goal() {
                Goal::Hold { pods } => Some(pods),
                Goal::PromoteFull | Goal::Abort => record.held_pods(),
            },
        };
        let share = pods.map(|pods| match moment {
            Moment::Promoted => 1.0,
            _ => ResolvedCanary::of(pods, record.replicas, record.mode).traffic_share(),
        });
        let next_step = moment.next_step(sender, namespace, &record.deployment);
        Self {
            moment,
            namespace: namespace.to_string(),
            deployment: record.deployment.clone(),
            stable: Some(crate::text::images_text(&record.original_images)),
            canary: Some(record.change_summary()),
            canary_pods: pods,
            replicas: Some(record.replicas),
            share: share.filter(|s| s.is_finite()),
            detail: detail.into(),
            reasons: vec![],
            next_step,
            sender,
            at: at.to_string(),
            report_url: None,
        }
    }

    /// The same notice with the reasons of `verdict`: its own reason, then each check that
    /// did not pass with its reason.
    pub fn with_verdict(mut self, verdict: &Verdict) -> Self {
        self.reasons.push(verdict.reason.clone());
        for check in &verdict.checks {
            if check.outcome != crate::verdict::Outcome::Pass {
                self.reasons.push(format!(
                    "{} {}: {}",
                    check.name, check.outcome, check.reason
                ));
            }
        }
        self
    }

    /// The same notice with a reason added.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }

    /// The same notice with the link to the report under `base`, if any (see
    /// [`report_link`]).
    pub fn with_report_base(mut self, base: Option<&str>) -> Self {
        self.report_url = base.map(|base| report_link(base, &self.namespace, &self.deployment));
        self
    }

    /// `deploy/NAME`.
    pub fn workload(&self) -> String {
        format!("deploy/{}", self.deployment)
    }

    /// The one-line title: `deploy/web in shop: analysis failed`.
    pub fn title(&self) -> String {
        format!(
            "{} in {}: {}",
            self.workload(),
            self.namespace,
            self.moment.headline()
        )
    }

    /// The sizes in words: `1 canary pod(s) of 6 replicas, 14.3% of traffic`.
    pub fn sizes_text(&self) -> Option<String> {
        let pods = self.canary_pods?;
        let mut text = format!("{pods} canary pod(s)");
        if let Some(replicas) = self.replicas {
            text.push_str(&format!(" of {replicas} replicas"));
        }
        if let Some(share) = self.share {
            text.push_str(&format!(", {} of traffic", crate::text::share_text(share)));
        }
        Some(text)
    }

    /// The whole notice as plain text: the fallback of chat messages.
    pub fn plain_text(&self) -> String {
        let mut text = format!("{}. {}", self.title(), self.detail);
        for reason in &self.reasons {
            text.push_str(&format!(" Reason: {reason}."));
        }
        text.push_str(&format!(" Next: {}", self.next_step));
        if let Some(url) = &self.report_url {
            text.push_str(&format!(" Report: {url}"));
        }
        text
    }
}

/// The link to a canary's report under `base`: `{namespace}` and `{deployment}` in `base`
/// are replaced; without them `/<namespace>/<deployment>.html` is appended (where
/// `kubectl canary report deploy/NAME -n NS --out DIR/NS/NAME.html` puts it).
pub fn report_link(base: &str, namespace: &str, deployment: &str) -> String {
    if base.contains("{namespace}") || base.contains("{deployment}") {
        base.replace("{namespace}", namespace)
            .replace("{deployment}", deployment)
    } else {
        format!(
            "{}/{namespace}/{deployment}.html",
            base.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A notice with every field set, for the renderers' tests.
    pub(crate) fn sample(moment: Moment, sender: Sender) -> Notice {
        Notice {
            moment,
            namespace: "shop".into(),
            deployment: "web".into(),
            stable: Some("nginx=nginx:1.14".into()),
            canary: Some("nginx=nginx:1.15".into()),
            canary_pods: Some(1),
            replicas: Some(6),
            share: Some(1.0 / 7.0),
            detail: "kubectl-canary: analysis fail: critical check failed: http".into(),
            reasons: vec![
                "critical check failed: http".into(),
                "http fail: 60% errors <b>".into(),
            ],
            next_step: "fix the release & start again".into(),
            sender,
            at: "2026-12-05T07:00:00Z".into(),
            report_url: Some("https://ci.example/reports/shop/web.html".into()),
        }
    }

    #[test]
    fn report_links_take_placeholders_or_a_path() {
        let cases = [
            (
                "https://r.example/canary",
                "https://r.example/canary/shop/web.html",
            ),
            (
                "https://r.example/canary/",
                "https://r.example/canary/shop/web.html",
            ),
            (
                "https://r.example/{namespace}-{deployment}",
                "https://r.example/shop-web",
            ),
        ];
        for (base, link) in cases {
            assert_eq!(report_link(base, "shop", "web"), link, "{base}");
        }
    }

    #[test]
    fn sizes_say_pods_replicas_and_share() {
        let notice = sample(Moment::Held, Sender::Cli);
        assert_eq!(
            notice.sizes_text().as_deref(),
            Some("1 canary pod(s) of 6 replicas, 14.3% of traffic")
        );
        assert_eq!(notice.title(), "deploy/web in shop: canary held");
    }
}
