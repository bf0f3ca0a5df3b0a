//! A TCP proxy that loses responses, for testing retries.
//!
//! After [`LossyProxy::lose_next`]`(n)`, the next `n` connections are
//! forwarded to the target, but as soon as the target starts answering,
//! both sides are closed: the request had its effect, the client never
//! hears about it, exactly like a response lost to a network fault or a
//! proxy timeout. Other connections pass through. (Clients should not pool
//! connections, or a request may ride an older, healthy connection.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

pub struct LossyProxy {
    pub addr: SocketAddr,
    armed: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
}

impl LossyProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let lost = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicUsize::new(0));
        let (counter, arm) = (lost.clone(), armed.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let drop_it = arm
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    if drop_it {
                        lose_response(client, upstream).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let (mut c, mut u) = (client, upstream);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                });
            }
        });
        Self { addr, armed, lost }
    }

    /// Loses the responses of the next `n` connections.
    pub fn lose_next(&self, n: usize) {
        self.armed.store(n, Ordering::SeqCst);
    }

    /// Responses lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Forwards the request, waits for the first byte of the answer, then
/// closes both connections.
async fn lose_response(client: TcpStream, upstream: TcpStream) {
    let (mut client_read, _client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let forward = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
    });
    let mut first = [0u8; 1];
    let _ = upstream_read.read(&mut first).await;
    forward.abort();
}
