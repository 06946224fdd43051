//! [`BodyTransformLayer`] and the service it builds.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::ACCEPT_ENCODING;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
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
        let head = detached_head(&parts);
        let future = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::new(
            future,
            head,
            Arc::clone(&self.transform),
            self.max_message_bytes,
        )
    }
}

/// A copy of the request head for the setup, holding no bytes of the connection's read buffer.
///
/// hyper hands out the URI and header values as slices of the buffer it read the request into
/// (8 KiB or more), and a slice keeps the whole buffer alive. The head is held until the
/// response comes, which for a live request is up to Electric's long-poll timeout, so a plain
/// clone would pin one read buffer per held long-poll. The values are copied into one buffer of
/// their own instead (one allocation the size of the values).
/// (Extensions are cloned as they are: with hyper's `preserve_header_case` on, its header-case
/// map still refers to the read buffer.)
fn detached_head(parts: &Parts) -> Parts {
    let mut values = BytesMut::with_capacity(parts.headers.values().map(HeaderValue::len).sum());
    for value in parts.headers.values() {
        values.extend_from_slice(value.as_bytes());
    }
    let mut values = values.freeze();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let copy = values.split_to(value.len());
        let mut copy = HeaderValue::from_maybe_shared(copy).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    let uri = Uri::try_from(parts.uri.to_string()).unwrap_or_else(|_| parts.uri.clone());

    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = uri;
    head.version = parts.version;
    head.headers = headers;
    head.extensions = parts.extensions.clone();
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detached_head_equals_the_request_head_and_shares_none_of_its_bytes() {
        let read_buffer = Bytes::from_static(b"/v1/shape?table=items&offset=-1 Bearer t 1.2.3.4");
        let (mut parts, ()) =
            Request::get(Uri::from_maybe_shared(read_buffer.slice(0..31)).unwrap())
                .body(())
                .unwrap()
                .into_parts();
        let mut token = HeaderValue::from_maybe_shared(read_buffer.slice(32..40)).unwrap();
        token.set_sensitive(true);
        parts.headers.append("authorization", token);
        parts.headers.append(
            "x-forwarded-for",
            HeaderValue::from_maybe_shared(read_buffer.slice(41..)).unwrap(),
        );
        parts
            .headers
            .append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        parts.extensions.insert(7u8);

        let head = detached_head(&parts);
        assert_eq!(head.method, parts.method);
        assert_eq!(head.uri, parts.uri);
        assert_eq!(head.headers, parts.headers);
        assert!(head.headers["authorization"].is_sensitive());
        assert_eq!(head.extensions.get::<u8>(), Some(&7));

        let within = |text: &[u8]| {
            let range = read_buffer.as_ptr_range();
            range.contains(&text.as_ptr())
        };
        assert!(head.headers.values().all(|value| !within(value.as_bytes())));
        assert!(!within(head.uri.path().as_bytes()));
        // The test's premise: a plain clone does share them.
        assert!(within(parts.clone().headers["authorization"].as_bytes()));
    }
}
