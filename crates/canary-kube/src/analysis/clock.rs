//! The API server's clock: every time an analysis judges by (a pod's age, how much of a log
//! the window covers, a Prometheus range) is measured against the clock that wrote the
//! objects' timestamps, never against this machine's, so a laptop minutes fast or slow
//! judges the same as one in sync.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use tokio::time::Instant;

/// The API server's time as read from a response's `Date` header, carried forward with the
/// monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerClock {
    /// The server's time at `read_at`.
    at: Timestamp,
    /// When (on the monotonic clock) the server's time was `at`.
    read_at: Instant,
}

impl ServerClock {
    /// Reads the API server's clock with one `GET /version`.
    pub async fn read(client: &kube::Client) -> Result<Self, String> {
        let request = http::Request::get("/version")
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let response = client
            .send(request)
            .await
            .map_err(|e| format!("cannot read the API server's clock: {e}"))?;
        let received = Instant::now();
        let date = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or("cannot read the API server's clock: its answer has no Date header")?;
        let server_time = parse_http_date(date)?;
        // The server wrote the Date somewhere between sending and receiving, truncated to
        // the second: the middle of both intervals is the best estimate.
        let read_at = sent + (received - sent) / 2;
        Ok(Self::from_reading(
            server_time + SignedDuration::from_millis(500),
            read_at,
        ))
    }

    /// A clock that read `server_time` at `read_at`.
    pub fn from_reading(server_time: Timestamp, read_at: Instant) -> Self {
        Self {
            at: server_time,
            read_at,
        }
    }

    /// The API server's time now.
    pub fn now(&self) -> Timestamp {
        let elapsed = Instant::now().saturating_duration_since(self.read_at);
        self.at
            .checked_add(SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(self.at)
    }
}

/// Parses an HTTP `Date` header (IMF-fixdate, e.g. `Mon, 30 Nov 2026 22:18:29 GMT`).
pub fn parse_http_date(text: &str) -> Result<Timestamp, String> {
    k8s_openapi::jiff::fmt::rfc2822::parse(text)
        .map(|zoned| zoned.timestamp())
        .map_err(|e| format!("cannot read the API server's clock from Date {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_an_http_date() {
        assert_eq!(
            parse_http_date("Mon, 30 Nov 2026 22:18:29 GMT").unwrap(),
            "2026-11-30T22:18:29Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_http_date("yesterday").is_err());
    }

    /// The analysis reads no local wall clock: every "now" it judges by is this module's.
    /// (A laptop 2 minutes fast failed fresh canaries as "not Ready 2m after creation".)
    #[test]
    fn no_check_reads_the_local_wall_clock() {
        fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/analysis");
        let mut files = Vec::new();
        sources(&dir, &mut files);
        assert!(files.len() > 5, "{files:?}");
        let wall_clocks = ["Timestamp::now()", "SystemTime::now()", "Utc::now()"];
        for file in files.iter().filter(|f| !f.ends_with("clock.rs")) {
            let text = std::fs::read_to_string(file).unwrap();
            // Test code may make up times; the checks may not read them.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for clock in wall_clocks {
                assert!(
                    !code.contains(clock),
                    "{} reads the local clock ({clock}): use ServerClock",
                    file.display()
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn follows_the_server_time_whatever_the_local_clock_says() {
        // A server two minutes behind this machine: its time is what counts.
        let server = Timestamp::now() - SignedDuration::from_secs(120);
        let clock = ServerClock::from_reading(server, Instant::now());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(clock.now(), server + SignedDuration::from_secs(30));
    }
}
