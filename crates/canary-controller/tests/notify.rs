//! The controller's notifications (issue 26) against a local receiver
//! (`canary_testkit::receiver`): a Deployment whose annotation `kubectl-canary.io/notify`
//! names endpoints of the namespace's Secret `kubectl-canary-notify` gets every moment of
//! its GitOps canary at each, in order and in their shapes; a name the Secret lacks is a
//! Warning once, and the canary and the other endpoints go on.

mod common;

use std::time::Duration;

use canary_core::gitops::policy::NOTIFY_ANNOTATION;
use canary_testkit::receiver::{Answer, Receiver, Shape, create_notify_secret, titles};
use serde_json::Value;

use common::*;

const KEY: &str = "a-test-signing-key-0123456789";

#[tokio::test]
async fn a_controller_canary_tells_every_moment_and_warns_once_about_a_missing_endpoint() {
    let receiver = Receiver::start(Answer::Ok).await;
    let mut annotations = policy("3", "6s");
    annotations.insert(
        NOTIFY_ANNOTATION.to_string(),
        "team-chat,team-teams,audit,gone".to_string(),
    );
    let Some(s) = Scenario::settled("gitops-notify", 6, annotations, Some(POD_HEALTH)).await else {
        return;
    };
    let endpoints = format!(
        "endpoints:\n  - name: team-chat\n    kind: slack\n    url: {}\n  - name: team-teams\n    kind: teams\n    url: {}\n  - name: audit\n    kind: webhook\n    url: {}\n    signingKey: {KEY}\n",
        receiver.url("/slack"),
        receiver.url("/teams"),
        receiver.url("/hook")
    );
    create_notify_secret(&s.client, &s.ns, &endpoints).await;
    let controller = s.controller("a", &[]);
    s.commit(V2).await;
    s.settled_on(V2, 6).await;
    s.record_gone().await;
    s.git.stop().await;
    let promoted = format!("deploy/web in {}: promoted to every pod", s.ns);
    let received = receiver
        .wait_until(
            "the promoted notice at each endpoint",
            Duration::from_secs(30),
            |r| {
                r.iter()
                    .filter(|r| String::from_utf8_lossy(&r.body).contains(&promoted))
                    .count()
                    == 3
            },
        )
        .await;
    let expected: Vec<String> = [
        "canary started",
        "canary held",
        "analysis passed",
        "canary growing to its next step",
        "canary held",
        "analysis passed",
        "promoted to every pod",
    ]
    .iter()
    .map(|headline| format!("deploy/web in {}: {headline}", s.ns))
    .collect();
    let log = controller.log_text();
    assert_eq!(titles(&received, "/slack", Shape::Slack), expected, "{log}");
    assert_eq!(titles(&received, "/teams", Shape::Teams), expected, "{log}");
    assert_eq!(
        titles(&received, "/hook", Shape::Webhook(KEY.as_bytes())),
        expected,
        "{log}"
    );
    let hooks: Vec<Value> = receiver.at("/hook").iter().map(|r| r.json()).collect();
    assert!(
        hooks
            .iter()
            .all(|h| h["sender"] == "kubectl-canary-controller"),
        "{hooks:?}"
    );
    assert_eq!(hooks[1]["canaryPods"], 1);
    assert_eq!(hooks[4]["canaryPods"], 3);
    assert!(
        hooks[1]["nextStep"]
            .as_str()
            .is_some_and(|n| n.contains("revert the commit in Git")),
        "{}",
        hooks[1]
    );
    assert!(
        hooks[2]["reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        hooks[2]
    );
    // The missing name: one Warning, naming it, and never a URL.
    let note = s.event("NotificationConfigUnusable").await;
    assert!(
        note.contains("no endpoint named gone") && note.contains("the canary goes on"),
        "{note}"
    );
    assert!(!note.contains("127.0.0.1"), "{note}");
    assert_eq!(s.said("NotificationConfigUnusable").await, 1);
}
