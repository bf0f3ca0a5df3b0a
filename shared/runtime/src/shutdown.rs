//! Fans one shutdown future out to every task of a service.
//!
//! A service runs several loops (consumers, outbox publisher, ops server)
//! that must all stop when the process is asked to; each gets its own
//! waiter from the same [`Shutdown`].

use std::future::Future;

use tokio::sync::watch;

/// A shutdown signal that any number of tasks can wait on.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Returns the fan-out and the future that drives it: run the driver
    /// alongside the tasks (e.g. in the same `tokio::join!`).
    pub fn new(
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = watch::channel(false);
        let driver = async move {
            signal.await;
            let _ = tx.send(true);
        };
        (Self { rx }, driver)
    }

    /// Resolves once shutdown was requested.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            // An error means the sender is gone, which also means "stop".
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// The raw flag, for loops that poll it between steps.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (s, driver) = Shutdown::new(async move {
            let _ = rx.await;
        });
        let (a, b) = (s.wait(), s.wait());
        tx.send(()).unwrap();
        tokio::join!(driver, a, b);
        assert!(*s.receiver().borrow());
    }
}
