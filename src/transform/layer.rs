//! [`BodyTransformLayer`] and the service it builds.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::ACCEPT_ENCODING;
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxError, ResponseBody, ResponseFuture, ShapeTransform, DEFAULT_MAX_MESSAGE_BYTES};

/// Transforms shape-log messages as they stream from the inner service (see the
/// [module docs](super)).
pub struct BodyTransformLayer<T> {
    transform: Arc<T>,
    max_message_bytes: usize,
}

impl<T> BodyTransformLayer<T> {
    /// A layer applying `transform` to every shape response.
    pub fn new(transform: T) -> Self {
        Self {
            transform: Arc::new(transform),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The largest message accepted, in bytes (default [`DEFAULT_MAX_MESSAGE_BYTES`]); a
    /// larger one ends the body with [`TransformError::MessageTooLarge`](super::TransformError::MessageTooLarge).
    /// The layer buffers at most about one message of this size per response.
    #[must_use]
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }
}

impl<T> Clone for BodyTransformLayer<T> {
    fn clone(&self) -> Self {
        Self {
            transform: Arc::clone(&self.transform),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

impl<T> fmt::Debug for BodyTransformLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyTransformLayer")
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl<S, T> Layer<S> for BodyTransformLayer<T> {
    type Service = BodyTransform<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTransform {
            inner,
            transform: Arc::clone(&self.transform),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// The service of [`BodyTransformLayer`].
pub struct BodyTransform<S, T> {
    inner: S,
    transform: Arc<T>,
    max_message_bytes: usize,
}

impl<S: Clone, T> Clone for BodyTransform<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            transform: Arc::clone(&self.transform),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for BodyTransform<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyTransform")
            .field("inner", &self.inner)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for BodyTransform<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    T: ShapeTransform,
{
    type Response = Response<ResponseBody<ResBody, T::Messages>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, T, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // The layer must see the bytes Electric wrote, not a compressed rendering of them.
        parts
            .headers
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let head = parts.clone();
        let future = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::new(
            future,
            head,
            Arc::clone(&self.transform),
            self.max_message_bytes,
        )
    }
}
