//! The proxy server: accept, classify, maybe break, forward.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

use crate::classify::S3Op;
use crate::fault::{FaultBook, FaultKind, FaultRule, ProxyStats};

type ProxyBody = BoxBody<Bytes, std::io::Error>;

struct Shared {
    upstream: String,
    client: reqwest::Client,
    book: Mutex<FaultBook>,
    /// Requests held by [`FaultKind::Hold`], oldest first: sending releases one.
    held: Mutex<VecDeque<oneshot::Sender<()>>>,
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, VecDeque<oneshot::Sender<()>>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn book(&self) -> MutexGuard<'_, FaultBook> {
        // A panic while holding the lock cannot leave the book half-updated in a way that
        // matters for a test proxy; keep serving.
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running proxy. Dropping it stops accepting and closes its connections.
pub struct S3FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl S3FaultProxy {
    /// Starts a proxy on an ephemeral 127.0.0.1 port in front of `upstream`
    /// (`http://127.0.0.1:<port>`). `seed` drives the dice of random rules.
    pub async fn start(upstream: &str, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .no_gzip()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            book: Mutex::new(FaultBook::new(seed)),
            held: Mutex::new(VecDeque::new()),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(Self { addr, shared, stop })
    }

    /// The endpoint to give the client instead of the S3 server's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule; rules are tried in the order they were added.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.book().add(rule);
    }

    /// Removes every rule; counters stay.
    pub fn clear(&self) {
        self.shared.book().clear();
    }

    /// How many requests [`FaultKind::Hold`] holds now.
    pub fn held(&self) -> usize {
        self.shared.held().len()
    }

    /// Waits until at least `count` requests are held; panics after `limit` (a test's own
    /// deadline, so that a request that never comes fails the test instead of hanging it).
    pub async fn wait_until_held(&self, count: usize, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.held() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} held requests expected within {limit:?}, {} held",
                self.held()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Forwards the oldest held request; `false` when none is held.
    pub fn release_next(&self) -> bool {
        let mut held = self.shared.held();
        while let Some(release) = held.pop_front() {
            // A request whose client gave up is gone; release the next one instead.
            if release.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// Forwards every held request.
    pub fn release_all(&self) {
        while self.release_next() {}
    }

    /// Requests seen and faults injected so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared.book().stats.clone()
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, shared.clone(), stop.clone()));
            }
            _ = stop.changed() => break,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let kill = Arc::new(Notify::new());
    let kill_for_requests = kill.clone();
    let service = hyper::service::service_fn(move |req| {
        handle(shared.clone(), req, kill_for_requests.clone())
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    // Dropping the connection future closes the socket: that is the reset.
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = stop.changed() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    kill: Arc<Notify>,
) -> Result<Response<ProxyBody>, Infallible> {
    let op = S3Op::classify(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    );
    let fault = shared.book().take(op, req.uri().path());
    tracing::debug!(method = %req.method(), path = %req.uri().path(), ?op, ?fault, "s3 proxy");
    match fault {
        Some(FaultKind::InternalError) => Ok(s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )),
        Some(FaultKind::SlowDown) => Ok(s3_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        )),
        Some(FaultKind::AccessDenied) => Ok(s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Access Denied",
        )),
        Some(FaultKind::Stall(duration)) => {
            tokio::time::sleep(duration).await;
            Ok(hang_up(&kill).await)
        }
        Some(FaultKind::Reset) => Ok(hang_up(&kill).await),
        Some(FaultKind::Delay(duration)) => {
            tokio::time::sleep(duration).await;
            Ok(forward(&shared, req).await)
        }
        Some(FaultKind::Hold) => {
            let (release, released) = oneshot::channel();
            shared.held().push_back(release);
            // A release, or a sender dropped without one, lets the request through.
            let _ = released.await;
            Ok(forward(&shared, req).await)
        }
        Some(FaultKind::Truncate) => {
            let response = forward(&shared, req).await;
            Ok(truncate(response).await)
        }
        Some(FaultKind::ResponseLost) => {
            let _landed = forward(&shared, req).await;
            Ok(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ))
        }
        None => Ok(forward(&shared, req).await),
    }
}

/// Closes the connection; the pending response is never sent.
async fn hang_up(kill: &Notify) -> Response<ProxyBody> {
    kill.notify_one();
    std::future::pending::<()>().await;
    // Unreachable in practice: the connection task drops this future.
    s3_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        "connection reset",
    )
}

async fn forward(shared: &Shared, req: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                &error.to_string(),
            );
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut request = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", shared.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        // The client library sets the length of the body it sends itself.
        if !is_hop_header(name.as_str()) && name != CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return s3_error(
                StatusCode::BAD_GATEWAY,
                "UpstreamUnreachable",
                &error.to_string(),
            );
        }
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => {
            return s3_error(StatusCode::BAD_GATEWAY, "UpstreamBody", &error.to_string());
        }
    };
    let mut out = Response::new(full(bytes));
    *out.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_header(name.as_str()) {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// Keeps the status and headers (so `Content-Length` still promises the whole body) and
/// sends half of the body before failing the stream, which makes hyper close the connection.
async fn truncate(response: Response<ProxyBody>) -> Response<ProxyBody> {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut parts = parts;
    if bytes.len() < 2 {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len() + 64));
    }
    let half = bytes.slice(..bytes.len() / 2);
    let frames = futures::stream::iter(vec![
        Ok(Frame::data(half)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "truncated by fault injection",
        )),
    ]);
    Response::from_parts(parts, StreamBody::new(frames).boxed())
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>injected-fault</RequestId></Error>"
    );
    let mut response = Response::new(full(Bytes::from(xml)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn is_hop_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
    )
}
