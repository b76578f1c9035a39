//! The endpoint: `GET /metrics` over HTTP/1.1 (hyper), anything else 404.
//!
//! Scrapers are not trusted to behave: each connection gets a few seconds
//! for its request headers and a few more for the whole exchange, a
//! request larger than a small buffer is refused by hyper, and at most
//! [`MAX_CONNECTIONS`] are open at once. At the cap a new connection takes
//! the place of the oldest one, so that a scraper holding idle
//! connections cannot lock out the others: it only loses its own.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::sample::{AiSample, JailSample, Snapshot};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a connection has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// Time a connection may last, request and response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's smallest read buffer: a request's line and headers must fit.
const MAX_REQUEST: usize = 8192;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint reads the jails' counts from (the server).
pub trait Sampler: Send + Sync + 'static {
    /// Every jail's counts now. Takes each jail's lock only to copy them.
    fn sample_jails(&self) -> impl Future<Output = Vec<JailSample>> + Send;
    /// The AI rule generator's numbers, `None` while it is off. Blocking
    /// (it reads the store): called off the runtime threads.
    fn sample_ai(&self) -> Option<AiSample>;
}

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve<S: Sampler>(listener: TcpListener, sampler: Arc<S>) {
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                tracing::warn!("metrics endpoint: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        open.retain(|h| !h.is_finished());
        if open.len() >= MAX_CONNECTIONS {
            if let Some(oldest) = open.pop_front() {
                oldest.abort();
            }
        }
        let sampler = sampler.clone();
        let task = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, sampler.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Err(e)) => tracing::debug!("metrics endpoint: connection: {e}"),
                Err(_) => tracing::debug!("metrics endpoint: connection timed out"),
                Ok(Ok(())) => {}
            }
        });
        open.push_back(task.abort_handle());
    }
}

async fn answer<S: Sampler>(
    req: Request<Incoming>,
    sampler: Arc<S>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
        ));
    }
    let jails = sampler.sample_jails().await;
    // stat of the logs, /proc reads, the AI's store and the encoding (91
    // jails: some KiB of text) off the runtime threads.
    let text = tokio::task::spawn_blocking(move || {
        super::encode::render(Snapshot {
            ai: sampler.sample_ai(),
            journal_lags: super::sample::journal_lags(&jails, crate::ai::pipeline::now()),
            sources: super::sample::source_lags(&jails),
            jails,
            actions: super::actions::snapshot(),
            process: super::process::sample(),
        })
    })
    .await;
    Ok(match text {
        Ok(text) => respond(StatusCode::OK, CONTENT_TYPE, text),
        Err(e) => {
            tracing::error!("metrics endpoint: encoding: {e}");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                String::new(),
            )
        }
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}
