//! The layer, its service and its future.

use std::net::IpAddr;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::lists::{IpLists, IpListsHandle};
use super::source::{resolve, ClientIpSource};
use super::{ClientIp, PeerAddr};
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::rejection::Rejection;

/// The default limit on hops in a forwarding chain.
pub const DEFAULT_MAX_HOPS: usize = 16;

/// Allows requests from listed networks only; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct IpAllowLayer {
    lists: IpListsHandle,
    config: Config,
}

#[derive(Debug, Clone)]
struct Config {
    source: ClientIpSource,
    max_hops: usize,
}

impl IpAllowLayer {
    /// A layer that checks the connection's peer address against `lists`.
    pub fn new(lists: IpLists) -> Self {
        Self {
            lists: IpListsHandle::new(lists),
            config: Config {
                source: ClientIpSource::Peer,
                max_hops: DEFAULT_MAX_HOPS,
            },
        }
    }

    /// Where the client's address is read (default [`ClientIpSource::Peer`]). Headers are
    /// read only from peers in [`IpLists::trust_proxies`].
    #[must_use]
    pub fn client_ip_source(mut self, source: ClientIpSource) -> Self {
        self.config.source = source;
        self
    }

    /// The most hops a forwarding chain may have, over all its header lines (default
    /// [`DEFAULT_MAX_HOPS`]); a longer chain is refused.
    #[must_use]
    pub fn max_hops(mut self, max_hops: usize) -> Self {
        self.config.max_hops = max_hops;
        self
    }

    /// The handle that replaces the lists of every service this layer builds, while they run.
    pub fn handle(&self) -> IpListsHandle {
        self.lists.clone()
    }
}

impl<S> Layer<S> for IpAllowLayer {
    type Service = IpAllow<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpAllow {
            inner,
            lists: self.lists.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service of [`IpAllowLayer`].
#[derive(Debug, Clone)]
pub struct IpAllow<S> {
    inner: S,
    lists: IpListsHandle,
    config: Config,
}

impl<S> IpAllow<S> {
    /// The handle that replaces this service's lists (shared with its layer).
    pub fn handle(&self) -> IpListsHandle {
        self.lists.clone()
    }

    /// The client address of `request`, or the refusal.
    fn decide<B>(&self, request: &Request<B>) -> Result<IpAddr, Rejection> {
        let lists = self.lists.current();
        let config = &self.config;
        let peer = peer_addr(request);
        let resolved = resolve(
            &config.source,
            peer,
            request.headers(),
            &lists,
            config.max_hops,
        )
        .map_err(|unresolved| {
            tracing::debug!(peer = ?peer, reason = %unresolved, "ip allow: refused, client address unknown");
            unresolved.into_rejection()
        })?;
        let allowed = lists.is_allowed(resolved.client);
        let verdict = if allowed {
            "allowed"
        } else if lists.is_denied(resolved.client) {
            "denied"
        } else {
            "not in the allow list"
        };
        tracing::debug!(
            client_ip = %resolved.client,
            peer = %resolved.peer,
            forwarded = resolved.forwarded,
            verdict,
            "ip allow: decided"
        );
        if allowed {
            Ok(resolved.client)
        } else {
            Err(Rejection::forbidden().with_message("client address not allowed"))
        }
    }
}

/// The connection's peer: [`PeerAddr`], else (feature `axum`) axum's `ConnectInfo`.
fn peer_addr<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(PeerAddr(addr)) = request.extensions().get::<PeerAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(addr.ip());
    }
    None
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IpAllow<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.decide(&request) {
            Ok(client) => {
                request.extensions_mut().insert(ClientIp(client));
                ResponseFuture::inner(self.inner.call(request))
            }
            Err(rejection) => ResponseFuture::refused(rejection),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use tower::{service_fn, ServiceExt};

    /// Echoes the decided client address as the body.
    async fn echo_client(request: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
        let client = request
            .extensions()
            .get::<ClientIp>()
            .map(|c| c.0.to_string());
        Ok(Response::new(Full::new(Bytes::from(
            client.unwrap_or_default(),
        ))))
    }

    fn request(peer: Option<&str>, xff: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(PeerAddr(addr));
        }
        if let Some(xff) = xff {
            request
                .headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        }
        request
    }

    async fn body(response: Response<ResponseBody<Full<Bytes>>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn layer() -> IpAllowLayer {
        IpAllowLayer::new(IpLists::new().allow("127.0.0.0/8").unwrap())
    }

    #[tokio::test]
    async fn allowed_peer_reaches_the_inner_service_with_its_client_ip() {
        let service = layer().layer(service_fn(echo_client));
        let response = service
            .oneshot(request(Some("127.0.0.1:5000"), None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "127.0.0.1");
    }

    #[tokio::test]
    async fn other_peer_is_refused_with_a_rejection() {
        let service = layer().layer(service_fn(echo_client));
        let response = service
            .oneshot(request(Some("203.0.113.9:5000"), None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.extensions().get::<Rejection>().is_some());
        assert_eq!(
            body(response).await,
            r#"{"message":"client address not allowed"}"#
        );
    }

    #[tokio::test]
    async fn spoofed_header_from_untrusted_peer_is_ignored() {
        let service = layer()
            .client_ip_source(ClientIpSource::XForwardedFor)
            .layer(service_fn(echo_client));
        let response = service
            .oneshot(request(Some("203.0.113.9:5000"), Some("127.0.0.1")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn missing_peer_fails_closed() {
        let service = layer().layer(service_fn(echo_client));
        let response = service.oneshot(request(None, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn polled_after_completion_is_still_a_refusal() {
        use std::future::Future as _;
        let mut service = layer().layer(service_fn(echo_client));
        let future = service.call(request(None, None));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut pinned = std::pin::pin!(future);
        for _ in 0..2 {
            let Poll::Ready(Ok(response)) = pinned.as_mut().poll(&mut cx) else {
                panic!("a refusal is ready at once");
            };
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_connect_info_is_a_peer() {
        let service = layer().layer(service_fn(echo_client));
        let mut request = request(None, None);
        let addr: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "127.0.0.2");
    }
}
