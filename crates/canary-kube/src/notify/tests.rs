//! The notifier against a stand-in endpoint (wiremock) and a stand-in API server (tower-test)
//! that records the Events: retries, the failure Event naming the endpoint and never its
//! URL, the signature, and a flush that gives up in time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use canary_core::notify::{
    Endpoint, EndpointKind, EndpointsConfig, Moment, Notice, SIGNATURE_HEADER, Sender,
    verify_signature,
};

use super::*;

/// A client whose API server answers every request 201 and keeps the Events' notes.
fn recording_client() -> (kube::Client, Arc<Mutex<Vec<Value>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let events = Arc::new(Mutex::new(Vec::new()));
    let kept = events.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            kept.lock().unwrap().push(event.clone());
            send.send_response(
                Response::builder()
                    .status(201)
                    .body(Body::from(serde_json::to_vec(&event).unwrap()))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(service, "ns"), events)
}

fn notice(moment: Moment) -> Notice {
    Notice {
        moment,
        namespace: "ns".into(),
        deployment: "web".into(),
        stable: Some("nginx=nginx:1.14".into()),
        canary: Some("nginx=nginx:1.15".into()),
        canary_pods: Some(1),
        replicas: Some(3),
        share: Some(0.25),
        detail: "kubectl-canary: holding 1 canary pod(s)".into(),
        reasons: vec![],
        next_step: "look".into(),
        sender: Sender::Cli,
        at: "2026-12-05T07:00:00Z".into(),
        report_url: None,
    }
}

fn endpoint(server: &MockServer, kind: EndpointKind) -> Endpoint {
    Endpoint {
        name: "audit".into(),
        kind,
        url: format!("{}/secret-path-123", server.uri()),
        signing_key: (kind == EndpointKind::Webhook).then(|| "0123456789abcdef".into()),
    }
}

fn fast() -> SendPolicy {
    SendPolicy {
        request_timeout: Duration::from_millis(300),
        attempts: 3,
        backoff: Duration::from_millis(20),
        queue: 8,
    }
}

fn notes(events: &Mutex<Vec<Value>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "NotificationFailed")
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_500_is_retried_and_a_later_success_sends_no_event() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (client, events) = recording_client();
    let config = EndpointsConfig {
        endpoints: vec![endpoint(&server, EndpointKind::Webhook)],
        report_base_url: Some("https://r.example".into()),
    };
    let notifier = Notifier::new(&client, "ns", "web", Sender::Cli, config, fast());
    notifier.notify(notice(Moment::Held));
    assert!(notifier.flush(Duration::from_secs(5)).await.is_empty());
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 3);
    assert!(notes(&events).is_empty());
    // Signed, over exactly the body sent; the report link filled in from the base.
    let last = requests.last().expect("a request");
    let header = last.headers[SIGNATURE_HEADER].to_str().expect("ASCII");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    verify_signature(b"0123456789abcdef", header, &last.body, now, 300).expect("verified");
    let document: Value = serde_json::from_slice(&last.body).expect("JSON");
    assert_eq!(document["reportUrl"], "https://r.example/ns/web.html");
}

#[tokio::test]
async fn a_failing_endpoint_becomes_an_event_naming_it_and_never_its_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let (client, events) = recording_client();
    let config = EndpointsConfig {
        endpoints: vec![endpoint(&server, EndpointKind::Slack)],
        report_base_url: None,
    };
    let notifier = Notifier::new(&client, "ns", "web", Sender::Cli, config, fast());
    notifier.notify(notice(Moment::Started));
    assert!(notifier.flush(Duration::from_secs(5)).await.is_empty());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    let notes = notes(&events);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("the started notice to endpoint audit (slack) was not sent")
            && notes[0].contains("503")
            && notes[0].contains("after 3 attempts"),
        "{}",
        notes[0]
    );
    assert!(!notes[0].contains("secret-path-123") && !notes[0].contains("127.0.0.1"));
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let (client, events) = recording_client();
    let config = EndpointsConfig {
        endpoints: vec![endpoint(&server, EndpointKind::Teams)],
        report_base_url: None,
    };
    let notifier = Notifier::new(&client, "ns", "web", Sender::Cli, config, fast());
    notifier.notify(notice(Moment::Promoted));
    notifier.flush(Duration::from_secs(5)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(notes(&events).len(), 1);
}

#[tokio::test]
async fn notify_returns_at_once_and_flush_gives_up_on_a_hanging_endpoint_in_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let (client, events) = recording_client();
    let config = EndpointsConfig {
        endpoints: vec![endpoint(&server, EndpointKind::Webhook)],
        report_base_url: None,
    };
    let policy = SendPolicy {
        request_timeout: Duration::from_secs(10),
        ..fast()
    };
    let notifier = Notifier::new(&client, "ns", "web", Sender::Cli, config, policy);
    let queued = Instant::now();
    for moment in [Moment::Started, Moment::Held, Moment::Promoted] {
        notifier.notify(notice(moment));
    }
    assert!(
        queued.elapsed() < Duration::from_millis(50),
        "{:?}",
        queued.elapsed()
    );
    let flushing = Instant::now();
    let unsent = notifier.flush(Duration::from_millis(500)).await;
    let waited = flushing.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(unsent, Unsent(vec![("audit".into(), 3)]));
    let notes = notes(&events);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("3 notice(s) to endpoint audit were not sent")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_notifier_without_endpoints_sends_nothing_and_flushes_at_once() {
    let (client, _) = recording_client();
    let notifier = Notifier::new(
        &client,
        "ns",
        "web",
        Sender::Cli,
        EndpointsConfig::default(),
        fast(),
    );
    assert!(!notifier.is_on());
    notifier.notify(notice(Moment::Held));
    assert!(notifier.flush(Duration::ZERO).await.is_empty());
}

#[test]
fn names_are_selected_in_order_and_missing_ones_named() {
    let config = canary_core::notify::parse_endpoints(
        "reportBaseUrl: https://r.example\nendpoints:\n  - name: a\n    kind: slack\n    url: https://x.example/\n  - name: b\n    kind: teams\n    url: https://y.example/\n",
    )
    .expect("valid");
    let chosen = secret::select(config.clone(), "ns", &["b".into(), "a".into(), "b".into()])
        .expect("both exist");
    assert_eq!(chosen.names(), ["b", "a"]);
    assert_eq!(chosen.report_base_url.as_deref(), Some("https://r.example"));
    let error = secret::select(config, "ns", &["a".into(), "c".into()])
        .expect_err("c is missing")
        .to_string();
    assert_eq!(
        error,
        "no endpoint named c in the Secret kubectl-canary-notify of namespace ns (it lists: a, b)"
    );
}
