//! The HTTP client the OTLP exporter posts spans with.
//!
//! opentelemetry-otlp ships reqwest 0.13 or an HTTP/2-capable hyper client;
//! either would add a second HTTP stack to the tree, so this is a small
//! HTTP/1.1 client on the hyper-util the workspace already builds. The SDK's
//! batch span processor exports from its own plain thread (polling the
//! export future with `futures_executor::block_on`), where Tokio I/O would
//! find no reactor, so the client drives its requests on a private
//! current-thread runtime, created on first use on that thread. Plain
//! `http://` only: point it at a collector or agent next to the service.
//! Public so tests can export OTLP to the API the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// Collector responses are tiny; anything larger is refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub struct OtlpHttpClient {
    timeout: Duration,
    inner: OnceLock<(tokio::runtime::Runtime, Client<HttpConnector, Full<Bytes>>)>,
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            inner: OnceLock::new(),
        }
    }

    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Only the batch processor's own thread exports; blocking a
            // runtime thread here would stall it.
            return Err("the OTLP HTTP client must not run on a Tokio runtime thread".into());
        }
        let (rt, client) = match self.inner.get() {
            Some(inner) => inner,
            None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let client = Client::builder(TokioExecutor::new()).build_http();
                self.inner.get_or_init(|| (rt, client))
            }
        };
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        rt.block_on(async {
            let exchange = async {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(result) => result,
                Err(_) => {
                    Err(format!("no answer from the collector within {:?}", self.timeout).into())
                }
            }
        })
    }
}

// `HttpClient` is an `async_trait`; this is its expanded signature, which
// spares a direct dependency on the macro crate.
impl HttpClient for OtlpHttpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.send(request) })
    }
}
