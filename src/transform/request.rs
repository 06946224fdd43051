//! [`RequestBodyTransformLayer`]: the write path's JSON bodies, transformed on their way in.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::BoxError;
use crate::body::ResponseBody;
use crate::rejection::Rejection;

/// The default cap on a write body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The per-request half of a write transform: sync, changes the parsed JSON body in place.
///
/// Closures `FnMut(&mut serde_json::Value) -> Result<(), Rejection>` implement it. A
/// [`Rejection`] answers the request instead of forwarding it (choose its status: `400` for a
/// body the transform cannot accept, `403` for a write the caller may not make).
pub trait JsonTransform {
    /// Changes `body` in place.
    fn transform(&mut self, body: &mut serde_json::Value) -> Result<(), Rejection>;
}

impl<F> JsonTransform for F
where
    F: FnMut(&mut serde_json::Value) -> Result<(), Rejection>,
{
    fn transform(&mut self, body: &mut serde_json::Value) -> Result<(), Rejection> {
        self(body)
    }
}

/// The per-request setup of a write transform: async, sees the request head (for example to
/// look up the caller's key once), returns the [`JsonTransform`] for this body. It runs only
/// for a non-empty body that parsed as JSON.
///
/// Closures `Fn(&request::Parts) -> impl Future<Output = Result<J, BoxError>>` implement it;
/// the future must own what it needs.
pub trait WriteTransform {
    /// The body transform.
    type Json: JsonTransform;
    /// The setup's future.
    type Future: Future<Output = Result<Self::Json, BoxError>>;

    /// Prepares the transform of one request's body. An error answers `502`.
    fn setup(&self, request: &http::request::Parts) -> Self::Future;
}

impl<F, Fut, J> WriteTransform for F
where
    F: Fn(&http::request::Parts) -> Fut,
    Fut: Future<Output = Result<J, BoxError>>,
    J: JsonTransform,
{
    type Json = J;
    type Future = Fut;

    fn setup(&self, request: &http::request::Parts) -> Self::Future {
        self(request)
    }
}

/// A [`WriteTransform`] with no setup: the same body transform, cloned for every request.
#[derive(Debug, Clone)]
pub struct EachBody<J>(J);

/// Transforms every write body with `transform`, cloned per request.
pub fn each_body<F>(transform: F) -> EachBody<F>
where
    F: FnMut(&mut serde_json::Value) -> Result<(), Rejection> + Clone,
{
    EachBody(transform)
}

impl<J> WriteTransform for EachBody<J>
where
    J: JsonTransform + Clone,
{
    type Json = J;
    type Future = std::future::Ready<Result<J, BoxError>>;

    fn setup(&self, _: &http::request::Parts) -> Self::Future {
        std::future::ready(Ok(self.0.clone()))
    }
}

/// Reads a request's JSON body (up to a size cap), lets a [`WriteTransform`] change it, and
/// forwards the result as a [`JsonBody`] with its new `content-length`.
///
/// - A body over the cap answers `413` (by its `content-length` before reading, or while
///   reading); a body that is not JSON answers `400`; a setup error answers `502`; the
///   transform's own [`Rejection`] answers as it says. Nothing is forwarded in those cases.
/// - An empty body is forwarded empty, without running the transform.
/// - What is forwarded is the parsed body written anew: the app reads exactly what the
///   transform saw.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_electric::rejection::Rejection;
/// use tower_electric::transform::{each_body, RequestBodyTransformLayer};
/// # use bytes::Bytes;
/// # use http_body_util::{BodyExt, Full};
/// # use tower::ServiceExt;
///
/// // Stand-in for an encryption: the app's API only ever sees the transformed field.
/// let layer = RequestBodyTransformLayer::new(each_body(|body: &mut serde_json::Value| {
///     let title = body
///         .get_mut("title")
///         .ok_or_else(|| Rejection::invalid_request().with_field_error("title", "is required"))?;
///     *title = title.as_str().unwrap_or_default().to_uppercase().into();
///     Ok(())
/// }))
/// .max_body_bytes(64 * 1024);
///
/// let app = tower::service_fn(|request: http::Request<tower_electric::transform::JsonBody>| async {
///     let body = request.into_body().collect().await.unwrap().to_bytes();
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
/// });
/// let service = ServiceBuilder::new().layer(layer).service(app);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = http::Request::post("/todos").body(Full::new(Bytes::from(r#"{"title":"milk"}"#))).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, r#"{"title":"MILK"}"#);
/// # });
/// ```
pub struct RequestBodyTransformLayer<T> {
    transform: Arc<T>,
    max_body_bytes: usize,
}

impl<T> RequestBodyTransformLayer<T> {
    /// A layer applying `transform` to every request body.
    pub fn new(transform: T) -> Self {
        Self {
            transform: Arc::new(transform),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

impl<T> Clone for RequestBodyTransformLayer<T> {
    fn clone(&self) -> Self {
        Self {
            transform: Arc::clone(&self.transform),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

impl<T> fmt::Debug for RequestBodyTransformLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBodyTransformLayer")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl<S, T> Layer<S> for RequestBodyTransformLayer<T> {
    type Service = RequestBodyTransform<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBodyTransform {
            inner,
            transform: Arc::clone(&self.transform),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// The service of [`RequestBodyTransformLayer`].
pub struct RequestBodyTransform<S, T> {
    inner: S,
    transform: Arc<T>,
    max_body_bytes: usize,
}

impl<S: Clone, T> Clone for RequestBodyTransform<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            transform: Arc::clone(&self.transform),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for RequestBodyTransform<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBodyTransform")
            .field("inner", &self.inner)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// The future of [`RequestBodyTransform`]: reads, transforms, then calls the inner service.
pub struct RequestFuture<R, E> {
    future: Pin<Box<dyn Future<Output = Result<R, E>> + Send>>,
}

impl<R, E> fmt::Debug for RequestFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFuture").finish_non_exhaustive()
    }
}

impl<R, E> Future for RequestFuture<R, E> {
    type Output = Result<R, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for RequestBodyTransform<S, T>
where
    S: Service<Request<JsonBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    T: WriteTransform + Send + Sync + 'static,
    T::Future: Send,
    T::Json: Send,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = RequestFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let transform = Arc::clone(&self.transform);
        let max_body_bytes = self.max_body_bytes;
        let future = async move {
            let (mut parts, body) = request.into_parts();
            let body = match read_and_transform(&parts, body, &*transform, max_body_bytes).await {
                Ok(body) => body,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            parts.headers.remove(TRANSFER_ENCODING);
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            let response = inner
                .call(Request::from_parts(parts, JsonBody::new(body)))
                .await?;
            Ok(response.map(ResponseBody::inner))
        };
        RequestFuture {
            future: Box::pin(future),
        }
    }
}

async fn read_and_transform<B, T>(
    parts: &http::request::Parts,
    body: B,
    transform: &T,
    max_body_bytes: usize,
) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<BoxError>,
    T: WriteTransform,
{
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body_bytes as u64) {
        return Err(Rejection::payload_too_large());
    }
    let bytes = match Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(Rejection::payload_too_large()),
        Err(_) => {
            return Err(Rejection::invalid_request().with_field_error("body", "could not be read"))
        }
    };
    if bytes.is_empty() {
        return Ok(bytes);
    }
    let mut value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| Rejection::invalid_request().with_field_error("body", "is not valid JSON"))?;
    let mut json = transform.setup(parts).await.map_err(|error| {
        tracing::warn!(%error, "write transform setup failed");
        Rejection::bad_gateway()
    })?;
    json.transform(&mut value)?;
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|_| Rejection::invalid_request().with_field_error("body", "could not be written"))
}

/// The transformed request body the inner service receives: complete, of known length.
#[derive(Debug, Clone, Default)]
pub struct JsonBody {
    data: Option<Bytes>,
}

impl JsonBody {
    fn new(data: Bytes) -> Self {
        Self {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for JsonBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.data.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |data| data.len() as u64))
    }
}
