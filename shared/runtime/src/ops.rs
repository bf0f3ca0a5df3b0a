//! The consumer process's small HTTP side: `/healthz`, `/readyz` and
//! `/metrics` for probes and Prometheus.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(pool): State<PgPool>) -> impl IntoResponse {
    let pg = achilles_core::db::reachable(&pool).await;
    let status = if pg {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"postgres": if pg { "ok" } else { "unreachable" }})),
    )
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        achilles_core::metrics::render(),
    )
}

/// Binds the ops listener (`/metrics`, `/healthz`, `/readyz`) on `listen`.
pub async fn bind(listen: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(listen).await?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

/// Serves the ops endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(pool);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
