//! The upstream's own HTTP/1.1 client for a plain `http://` Electric: one request at a time
//! per connection, connections pooled, bodies streamed both ways.
//!
//! Why not hyper's: a held long-poll is an idle connection waiting for a response head, and
//! hyper-util's pooled connection keeps a task, a dispatch channel and 8 KiB read and write
//! buffers for it (about 17 KiB resident per held poll under jemalloc, measured with
//! heaptrack). Here the request's own future holds the connection while it waits, writes the
//! head from a buffer it frees once written, and reserves a read buffer only when the socket
//! is readable, so a held poll costs its socket and its future. Parsing is `httparse`, the
//! parser hyper uses. TLS and h2 stay with hyper-util, where rustls' and h2's own buffers are
//! the larger share anyway.
//!
//! Reuse is where a client can hand one response's bytes to another request, so a connection
//! goes back to the pool only after a response whose end was read exactly (`Content-Length`
//! or chunked, never "until close", never after `Connection: close` or from HTTP/1.0), with
//! nothing after it; and it is taken out again only if nothing arrived on it in between
//! (`pool::Check` says how closely that is checked: for a request that may be sent again, by
//! what Tokio's reactor saw, for any other by a peek at the socket).
//! Anything unclear in a response's framing is an error (see [`wire`]).

mod body;
mod pool;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use self::body::Connection;
pub(super) use self::body::Http1Body;
use self::pool::{Check, Pool};
use self::wire::{encode_head, parse_head, response_framing, RequestFraming, MAX_HEAD};
use super::body::BoxError;
use super::UpstreamBody;

/// Why a request through this client failed. Names no address and no query.
#[derive(Debug, thiserror::Error)]
pub(in crate::upstream) enum Http1Error {
    #[error("the upstream host did not resolve to any address")]
    NoAddress,
    #[error("connecting to the upstream failed")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the upstream took longer than the connect timeout")]
    ConnectTimeout,
    #[error("writing the request failed")]
    Write(#[source] std::io::Error),
    #[error("the request body failed")]
    RequestBody(#[source] BoxError),
    #[error("the request body's length differs from the length it stated")]
    RequestBodyLength,
    #[error("reading the response failed")]
    Read(#[source] std::io::Error),
    #[error("the upstream closed the connection before a response head")]
    ClosedBeforeHead,
    #[error("the response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the response head is malformed")]
    MalformedHead,
    #[error("the upstream switched protocols, which was not asked for")]
    UnexpectedUpgrade,
    #[error("the response's framing is invalid: {0}")]
    Framing(&'static str),
    #[error("the upstream closed the connection before the body's end")]
    Truncated,
    #[error("the chunked response body is malformed: {0}")]
    Chunked(&'static str),
}

/// An HTTP/1.1 client for one upstream host.
#[derive(Debug)]
pub(super) struct Http1Client {
    /// `host:port`, as resolved for each new connection.
    address: String,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

impl Http1Client {
    pub(super) fn new(authority: &Authority, connect_timeout: Duration) -> Self {
        Self {
            address: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            connect_timeout,
            pool: Arc::default(),
        }
    }

    /// Sends `request` (its URI's path and query are the request target; its headers, `Host`
    /// among them, go as they are) and reads the response head. A pooled connection that
    /// turns out closed before any answer came is replaced, once, by a new connection, if the
    /// request may be sent again: an idempotent method (RFC 9110 §9.2.2) without a body.
    pub(super) async fn send(
        self: Arc<Self>,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Http1Body>, Http1Error> {
        let (parts, mut body) = request.into_parts();
        let framing = RequestFraming::of(
            &parts.method,
            body.is_end_stream(),
            body.size_hint().exact(),
        );
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |target| target.as_str());
        let head = encode_head(&parts.method, target, &parts.headers, framing);
        drop(parts.headers);
        let replayable = framing.replayable() && parts.method.is_idempotent();
        let mut pooled = self.pool.take(if replayable {
            Check::Reactor
        } else {
            Check::Socket
        });
        loop {
            let reused = pooled.is_some();
            let stream = match pooled.take() {
                Some(stream) => stream,
                None => self.connect().await?,
            };
            let mut connection = Connection::new(stream);
            match exchange(&mut connection, &head, &mut body, framing).await {
                Ok(response) => {
                    let (framing, keep_alive) = response_framing(&parts.method, &response)?;
                    let pool = keep_alive.then(|| self.pool.clone());
                    let mut answer = Response::new(Http1Body::new(connection, framing, pool));
                    *answer.status_mut() = response.status;
                    *answer.version_mut() = response.version;
                    *answer.headers_mut() = response.headers;
                    return Ok(answer);
                }
                // The retry goes out on a new connection: never twice on a pooled one.
                Err(Exchange::NothingBack(_)) if reused && replayable => {}
                Err(Exchange::NothingBack(error) | Exchange::Failed(error)) => return Err(error),
            }
        }
    }

    /// A new connection, to the first of the host's addresses that accepts one in time.
    async fn connect(&self) -> Result<TcpStream, Http1Error> {
        let deadline = Instant::now() + self.connect_timeout;
        let addresses = tokio::time::timeout_at(deadline, tokio::net::lookup_host(&*self.address))
            .await
            .map_err(|_| Http1Error::ConnectTimeout)?
            .map_err(Http1Error::Connect)?;
        let mut last = None;
        for address in addresses {
            match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    // SSE frames are small: do not hold them back waiting for more.
                    stream.set_nodelay(true).map_err(Http1Error::Connect)?;
                    return Ok(stream);
                }
                Ok(Err(error)) => last = Some(error),
                Err(_) => return Err(Http1Error::ConnectTimeout),
            }
        }
        Err(last.map_or(Http1Error::NoAddress, Http1Error::Connect))
    }
}

/// How one attempt failed: `NothingBack` when the connection failed before any byte of a
/// response came (a pooled connection the server had closed), else `Failed`.
enum Exchange {
    NothingBack(Http1Error),
    Failed(Http1Error),
}

/// Writes the request on `connection` and reads the final response head (informational
/// 1xx heads are read and left out).
async fn exchange(
    connection: &mut Connection,
    head: &[u8],
    body: &mut UpstreamBody,
    framing: RequestFraming,
) -> Result<wire::Head, Exchange> {
    let nothing_back = Exchange::NothingBack;
    connection
        .stream
        .write_all(head)
        .await
        .map_err(|error| nothing_back(Http1Error::Write(error)))?;
    // A body that failed is the request's own failure, not the connection's.
    write_body(&mut connection.stream, body, framing)
        .await
        .map_err(|error| match error {
            Http1Error::Write(_) => Exchange::NothingBack(error),
            error => Exchange::Failed(error),
        })?;
    let mut received = false;
    loop {
        if !connection.buf.is_empty() {
            received = true;
            let buffered = connection.buf.len();
            if let Some(head) = parse_head(&mut connection.buf).map_err(Exchange::Failed)? {
                // Counted on what the head took, whatever one read brought at once.
                if buffered - connection.buf.len() > MAX_HEAD {
                    return Err(Exchange::Failed(Http1Error::HeadTooLarge));
                }
                match head.status.as_u16() {
                    101 => return Err(Exchange::Failed(Http1Error::UnexpectedUpgrade)),
                    100..=199 => continue,
                    _ => return Ok(head),
                }
            }
            if connection.buf.len() > MAX_HEAD {
                return Err(Exchange::Failed(Http1Error::HeadTooLarge));
            }
        }
        let failed = |error| {
            if received {
                Exchange::Failed(error)
            } else {
                Exchange::NothingBack(error)
            }
        };
        match connection.read().await {
            Ok(0) => return Err(failed(Http1Error::ClosedBeforeHead)),
            Ok(_) => {}
            Err(error) => return Err(failed(Http1Error::Read(error))),
        }
    }
}

/// Streams the request body as `framing` says, each frame as it comes.
async fn write_body(
    stream: &mut TcpStream,
    body: &mut UpstreamBody,
    framing: RequestFraming,
) -> Result<(), Http1Error> {
    let mut sent: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Http1Error::RequestBody)?;
        // Trailers of a request body are left out, as hop-by-hop `TE`/`Trailer` are.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            RequestFraming::None => return Err(Http1Error::RequestBodyLength),
            RequestFraming::Length(length) if sent > length => {
                return Err(Http1Error::RequestBodyLength)
            }
            RequestFraming::Length(_) => write(stream, &data).await?,
            RequestFraming::Chunked => {
                write(stream, format!("{:x}\r\n", data.len()).as_bytes()).await?;
                write(stream, &data).await?;
                write(stream, b"\r\n").await?;
            }
        }
    }
    match framing {
        RequestFraming::Length(length) if sent != length => Err(Http1Error::RequestBodyLength),
        RequestFraming::Chunked => write(stream, b"0\r\n\r\n").await,
        _ => Ok(()),
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), Http1Error> {
    stream.write_all(bytes).await.map_err(Http1Error::Write)
}
