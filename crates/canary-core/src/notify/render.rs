//! A notice as each kind of endpoint takes it: Slack's incoming-webhook JSON (a text
//! fallback and Block Kit blocks), a Microsoft Teams message with an Adaptive Card
//! attachment, and the generic webhook's document (`apiVersion`/`kind` like the CLI's
//! `-o json` documents), which is signed (see [`super::sign`]).

use serde_json::{Value, json};

use super::endpoints::EndpointKind;
use super::moment::Severity;
use super::notice::Notice;

/// The webhook document's `apiVersion`.
pub const API_VERSION: &str = "kubectl-canary.io/v1";

/// The webhook document's `kind`.
pub const NOTICE_KIND: &str = "Notice";

/// Slack's limits: a section's text and a field's text, a header's text.
const SLACK_SECTION_MAX: usize = 3000;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_HEADER_MAX: usize = 150;

/// The body to POST to an endpoint of `kind`.
pub fn render(notice: &Notice, kind: EndpointKind) -> Value {
    match kind {
        EndpointKind::Slack => slack(notice),
        EndpointKind::Teams => teams(notice),
        EndpointKind::Webhook => webhook_document(notice),
    }
}

/// Slack's incoming-webhook message: `text` (the fallback notifications and old clients
/// show) and `blocks`: a header, what happened, the facts as fields, the reasons, the next
/// step, and who sent it when with the report link.
pub fn slack(notice: &Notice) -> Value {
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": cut(&notice.title(), SLACK_HEADER_MAX), "emoji": true},
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&mrkdwn(&notice.detail), SLACK_SECTION_MAX)},
        }),
    ];
    let fields: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(title, value)| {
            json!({"type": "mrkdwn", "text": cut(&format!("*{title}*\n{}", mrkdwn(&value)), SLACK_FIELD_MAX)})
        })
        .collect();
    blocks.push(json!({"type": "section", "fields": fields}));
    if !notice.reasons.is_empty() {
        let reasons: Vec<String> = notice
            .reasons
            .iter()
            .map(|r| format!("• {}", mrkdwn(r)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&format!("*Why*\n{}", reasons.join("\n")), SLACK_SECTION_MAX)},
        }));
    }
    blocks.push(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(&format!("*Next*\n{}", mrkdwn(&notice.next_step)), SLACK_SECTION_MAX)},
    }));
    let mut context = format!(
        "{} {} · {}",
        severity_mark(notice.moment.severity()),
        notice.sender.program(),
        notice.at
    );
    if let Some(url) = &notice.report_url {
        context.push_str(&format!(" · <{}|report>", mrkdwn(url)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context}],
    }));
    json!({"text": notice.plain_text(), "blocks": blocks})
}

/// A Microsoft Teams message as Teams workflows ("Post to a channel when a webhook request
/// is received") and incoming webhooks take it: `type: message` with one Adaptive Card
/// (version 1.4) attachment: the title coloured by severity, what happened, a fact set,
/// the reasons, the next step, and an `Action.OpenUrl` to the report.
pub fn teams(notice: &Notice) -> Value {
    let colour = match notice.moment.severity() {
        Severity::Info => "Default",
        Severity::Good => "Good",
        Severity::Warning => "Warning",
        Severity::Bad => "Attention",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": notice.title(), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": true}),
        json!({"type": "TextBlock", "text": notice.detail, "wrap": true}),
    ];
    let facts: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    body.push(json!({"type": "FactSet", "facts": facts}));
    if !notice.reasons.is_empty() {
        let reasons: Vec<String> = notice.reasons.iter().map(|r| format!("- {r}")).collect();
        body.push(json!({"type": "TextBlock", "text": format!("**Why**\n\n{}", reasons.join("\n")), "wrap": true}));
    }
    body.push(json!({"type": "TextBlock", "text": format!("**Next**: {}", notice.next_step), "wrap": true}));
    body.push(json!({"type": "TextBlock", "text": format!("{} · {}", notice.sender.program(), notice.at), "isSubtle": true, "size": "Small", "wrap": true}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(url) = &notice.report_url {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Report", "url": url}]);
    }
    json!({
        "type": "message",
        "summary": notice.title(),
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// The generic webhook's document (docs/notifications.md has its schema): `apiVersion`,
/// `kind: Notice`, the moment's code and severity, the title, the workload, both versions,
/// the sizes, what happened, the reasons, the next step, who sent it and when, the report
/// link. Absent values are `null`; fields are only ever added within a version.
pub fn webhook_document(notice: &Notice) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": NOTICE_KIND,
        "moment": notice.moment.code(),
        "severity": notice.moment.severity(),
        "title": notice.title(),
        "namespace": notice.namespace,
        "deployment": notice.deployment,
        "workload": notice.workload(),
        "stable": notice.stable,
        "canary": notice.canary,
        "canaryPods": notice.canary_pods,
        "replicas": notice.replicas,
        "share": notice.share,
        "detail": notice.detail,
        "reasons": notice.reasons,
        "nextStep": notice.next_step,
        "sender": notice.sender.program(),
        "at": notice.at,
        "reportUrl": notice.report_url,
    })
}

/// The facts every message shows, as (title, value).
fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let mut facts = vec![(
        "Workload",
        format!("{} in {}", notice.workload(), notice.namespace),
    )];
    if let Some(stable) = &notice.stable {
        facts.push(("Stable", stable.clone()));
    }
    if let Some(canary) = &notice.canary {
        facts.push(("Canary", canary.clone()));
    }
    if let Some(sizes) = notice.sizes_text() {
        facts.push(("Size", sizes));
    }
    facts
}

fn severity_mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => ":large_blue_circle:",
        Severity::Good => ":large_green_circle:",
        Severity::Warning => ":large_yellow_circle:",
        Severity::Bad => ":red_circle:",
    }
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (the rest is shown as typed).
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::moment::{Moment, Sender};
    use crate::notify::notice::tests::sample;

    #[test]
    fn slack_has_a_fallback_and_blocks_within_limits() {
        let notice = sample(Moment::AnalysisFailed, Sender::CliAuto);
        let message = slack(&notice);
        assert!(
            message["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("deploy/web in shop: analysis failed"))
        );
        let blocks = message["blocks"].as_array().expect("blocks");
        let types: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                "header", "section", "section", "section", "section", "context"
            ]
        );
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let fields = blocks[2]["fields"].as_array().expect("fields");
        assert_eq!(fields.len(), 4);
        assert_eq!(
            fields[3]["text"],
            "*Size*\n1 canary pod(s) of 6 replicas, 14.3% of traffic"
        );
        // mrkdwn control characters are escaped, the report is a link.
        assert!(
            blocks[3]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("&lt;b&gt;")
        );
        assert!(
            blocks[4]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("release &amp; start")
        );
        assert!(
            blocks[5]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .ends_with("<https://ci.example/reports/shop/web.html|report>")
        );
    }

    #[test]
    fn slack_cuts_long_texts() {
        let mut notice = sample(Moment::Held, Sender::Cli);
        notice.detail = "x".repeat(5000);
        notice.deployment = "d".repeat(200);
        let message = slack(&notice);
        assert_eq!(
            message["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SLACK_HEADER_MAX
        );
        assert_eq!(
            message["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SLACK_SECTION_MAX
        );
    }

    #[test]
    fn teams_is_a_message_with_an_adaptive_card() {
        let notice = sample(Moment::RolledBack, Sender::Controller);
        let message = teams(&notice);
        assert_eq!(message["type"], "message");
        let attachment = &message["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["body"][2]["type"], "FactSet");
        assert_eq!(card["body"][2]["facts"][0]["value"], "deploy/web in shop");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://ci.example/reports/shop/web.html"
        );
    }

    #[test]
    fn the_webhook_document_has_the_stated_schema() {
        let notice = sample(Moment::AnalysisFailed, Sender::Controller);
        let document = webhook_document(&notice);
        let keys: Vec<&str> = document
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "apiVersion",
            "kind",
            "moment",
            "severity",
            "title",
            "namespace",
            "deployment",
            "workload",
            "stable",
            "canary",
            "canaryPods",
            "replicas",
            "share",
            "detail",
            "reasons",
            "nextStep",
            "sender",
            "at",
            "reportUrl",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(document["apiVersion"], API_VERSION);
        assert_eq!(document["kind"], "Notice");
        assert_eq!(document["moment"], "analysisFailed");
        assert_eq!(document["severity"], "bad");
        assert_eq!(document["sender"], "kubectl-canary-controller");
        assert_eq!(document["workload"], "deploy/web");
    }
}
