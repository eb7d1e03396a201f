//! A notification receiver for the tests (issue 26): an HTTP/1.1 server on 127.0.0.1 that
//! records every request (path, headers, raw body, when) and answers as told: 200, another
//! status (a 500), or never (it holds the connection open and sends nothing, as a hung
//! endpoint does). Each request gets its own connection (`Connection: close`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK.
    Ok,
    /// This status, e.g. 500.
    Status(u16),
    /// Nothing, ever: the request is read and the connection held open.
    Hang,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path, e.g. `/slack`.
    pub path: String,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// When its body was read.
    pub at: SystemTime,
}

impl Received {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// The receiver; stops when dropped.
pub struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free port of 127.0.0.1 answering `answer`.
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let port = listener.local_addr().expect("its address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move { serve(stream, answer, kept).await });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in the order their bodies were read.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received lock").clone()
    }

    /// The requests to `path` so far.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits (polling every 100 ms, at most `timeout`) until `done` holds for the requests
    /// received; panics with what was received when it does not.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = received
                    .iter()
                    .map(|r| format!("{} {}", r.path, String::from_utf8_lossy(&r.body)))
                    .collect();
                panic!(
                    "timed out after {}s waiting for {what}; received:\n{}",
                    timeout.as_secs(),
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Receiver {
    /// The first webhook document (JSON) whose `moment` is `moment`, waited for at most
    /// `timeout`.
    pub async fn notice_of(&self, moment: &str, timeout: Duration) -> serde_json::Value {
        let received = self
            .wait_until(&format!("the {moment} notice"), timeout, |r| {
                r.iter().any(|r| r.json()["moment"] == moment)
            })
            .await;
        received
            .iter()
            .map(Received::json)
            .find(|n| n["moment"] == moment)
            .expect("the notice waited for")
    }
}

/// Creates the Secret `kubectl-canary-notify` with `endpoints_yaml` (its `endpoints.yaml`)
/// in `namespace`: the endpoints the CLI's and the controller's notifications name.
pub async fn create_notify_secret(client: &kube::Client, namespace: &str, endpoints_yaml: &str) {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kubectl-canary-notify"},
        "stringData": {"endpoints.yaml": endpoints_yaml},
    }))
    .expect("a Secret");
    secrets
        .create(&Default::default(), &secret)
        .await
        .expect("the Secret is created");
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request and answers it.
async fn serve(mut stream: TcpStream, answer: Answer, kept: Arc<Mutex<Vec<Received>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    kept.lock().expect("received lock").push(Received {
        path,
        headers,
        body,
        at: SystemTime::now(),
    });
    let status = match answer {
        Answer::Ok => 200,
        Answer::Status(status) => status,
        Answer::Hang => {
            // Hold the connection until the client gives up (it closes it) or the test ends.
            let _ = stream.read(&mut chunk).await;
            return;
        }
    };
    let response =
        format!("HTTP/1.1 {status} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The kind of message an endpoint of the receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Slack's incoming-webhook JSON.
    Slack,
    /// A Teams message with an Adaptive Card.
    Teams,
    /// The signed webhook document, with the signing key.
    Webhook(&'static [u8]),
}

/// The titles (`deploy/web in NS: canary held`) of the notices received at `path`, in
/// order, each checked against its shape (panicking with the payload when it does not fit):
/// Slack's `text` and blocks (header, sections with the facts, context), the Teams message
/// with its Adaptive Card (title, fact set), the webhook document (`apiVersion`, `kind`, its
/// fields) with its signature verified as a receiver would, within 300 s of now.
pub fn titles(received: &[Received], path: &str, shape: Shape) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            let message = r.json();
            let context = || format!("{path}: {message}");
            match shape {
                Shape::Slack => {
                    assert!(
                        message["text"].as_str().is_some_and(|t| !t.is_empty()),
                        "{}",
                        context()
                    );
                    let blocks = message["blocks"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{}", context()));
                    let types: Vec<&str> =
                        blocks.iter().filter_map(|b| b["type"].as_str()).collect();
                    assert_eq!(types.first(), Some(&"header"), "{}", context());
                    assert_eq!(types.last(), Some(&"context"), "{}", context());
                    assert!(
                        blocks
                            .iter()
                            .any(|b| b["fields"].as_array().is_some_and(|f| f.len() >= 3)),
                        "{}",
                        context()
                    );
                    blocks[0]["text"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                }
                Shape::Teams => {
                    assert_eq!(message["type"], "message", "{}", context());
                    let attachment = &message["attachments"][0];
                    assert_eq!(
                        attachment["contentType"],
                        "application/vnd.microsoft.card.adaptive",
                        "{}",
                        context()
                    );
                    let card = &attachment["content"];
                    assert_eq!(card["type"], "AdaptiveCard", "{}", context());
                    assert_eq!(card["version"], "1.4", "{}", context());
                    let body = card["body"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{}", context()));
                    assert!(body.iter().any(|b| b["type"] == "FactSet"), "{}", context());
                    body[0]["text"].as_str().unwrap_or_default().to_string()
                }
                Shape::Webhook(key) => {
                    assert_eq!(
                        message["apiVersion"],
                        "kubectl-canary.io/v1",
                        "{}",
                        context()
                    );
                    assert_eq!(message["kind"], "Notice", "{}", context());
                    for field in [
                        "moment", "severity", "workload", "detail", "nextStep", "sender", "at",
                    ] {
                        assert!(message[field].is_string(), "{field}: {}", context());
                    }
                    assert!(message["reasons"].is_array(), "{}", context());
                    let header = r
                        .header(canary_core::notify::SIGNATURE_HEADER)
                        .unwrap_or_else(|| panic!("no signature: {}", context()));
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .expect("after 1970")
                        .as_secs() as i64;
                    canary_core::notify::verify_signature(key, header, &r.body, now, 300)
                        .unwrap_or_else(|e| panic!("{e}: {}", context()));
                    message["title"].as_str().unwrap_or_default().to_string()
                }
            }
        })
        .collect()
}
