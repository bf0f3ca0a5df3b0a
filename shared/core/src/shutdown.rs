//! Shutdown signals. Core loops take a shutdown *future* rather than
//! listening for signals themselves, so tests can stop them at will.

/// Resolves on SIGINT or SIGTERM (Kubernetes sends SIGTERM, then waits
/// `terminationGracePeriodSeconds` before SIGKILL).
pub async fn signal() {
    let ctrl_c = async {
        // If installing the handler fails we simply never see Ctrl-C; the
        // SIGTERM branch still works, so there is nothing better to do.
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
