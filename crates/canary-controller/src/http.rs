//! `/metrics`, `/healthz` (the process serves) and `/readyz` (startup checks passed and the
//! replica is either standing by or leading with every watch listed and watching: it answers
//! 503 while a watch of the leader cannot watch).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What the endpoints report.
pub struct Health {
    /// Set once the startup checks passed.
    pub ready: AtomicBool,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

fn respond(health: &Health, path: &str) -> Response<Full<Bytes>> {
    let blind = health.metrics.blind();
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            health.metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if health.ready.load(Ordering::Relaxed) => match blind {
            None => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            Some(blind) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!(
                    "not watching {} for {:.1}s (last error: {})\n",
                    blind.watch,
                    blind.down_for.as_secs_f64(),
                    blind.last_code.as_deref().unwrap_or("none yet, listing")
                ),
            ),
        },
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "starting\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response is valid")
}

/// Binds `address` (so a port clash fails the start) and returns the serving future.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    Ok(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = respond(&health, request.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_drops_while_a_watch_cannot_watch() {
        let health = Health {
            ready: AtomicBool::new(true),
            metrics: Arc::new(Metrics::new()),
        };
        assert_eq!(respond(&health, "/readyz").status(), StatusCode::OK);
        health.metrics.watch_started("replicasets");
        health.metrics.watch_listing("replicasets");
        health.metrics.watch_listed("replicasets");
        assert_eq!(respond(&health, "/readyz").status(), StatusCode::OK);
        health.metrics.watch_error("replicasets", "403");
        assert_eq!(
            respond(&health, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.metrics.watch_listing("replicasets");
        health.metrics.watch_listed("replicasets");
        assert_eq!(respond(&health, "/readyz").status(), StatusCode::OK);
    }
}
