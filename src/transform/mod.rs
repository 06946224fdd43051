//! Streaming transforms of shape logs: [`BodyTransformLayer`], and of JSON write bodies:
//! [`RequestBodyTransformLayer`].
//!
//! Electric's security guide: *"Electric syncs ciphertext as well as it syncs plaintext. You
//! can encrypt and decrypt data in HTTP middleware or in the local client."* This module is
//! that middleware. [`BodyTransformLayer`] rewrites the `value` and `old_value` columns of
//! shape-log messages as they stream from Electric to the client (decrypt, redact, reshape,
//! or drop whole messages); [`RequestBodyTransformLayer`] rewrites the JSON body of an app's
//! write on its way in (for example to encrypt fields before they reach the app's API).
//!
//! # What is transformed
//! A `200` response to a `GET` or `POST` whose `content-type` is JSON (an array of messages,
//! or the subset object `{"metadata": ..., "data": [messages]}`) or `text/event-stream`
//! (`live_sse`: one `data: <message>` line per event). Everything else passes untouched:
//! `304`, every `4xx` (a `409 must-refetch` is never rewritten) and `5xx`, `HEAD`, other
//! content types. Control messages (`up-to-date`, `must-refetch`, `snapshot-end`) and move
//! events pass byte for byte; so does every message the transform did not change.
//!
//! # Streaming, bounded
//! Messages are split out of the body as their bytes arrive, whatever the chunk boundaries;
//! each message is read on its own (borrowing from the chunk; in one pass that also finds its
//! end when it is whole in the chunk) and written anew only if the transform changed it, and
//! then only the values it changed: the rest of the message is copied as it came (a row that
//! gained or lost a column is written member by member). Memory is bounded by the largest
//! message, never by the response: a message over
//! [`max_message_bytes`](BodyTransformLayer::max_message_bytes) (default
//! [`DEFAULT_MAX_MESSAGE_BYTES`]) ends the body with an error. SSE lines, `: keep-alive`
//! comments included, are passed on as soon as they end.
//!
//! # Errors
//! A failure before any byte of the body was sent answers `502` with the crate's
//! [`Rejection`](crate::rejection::Rejection) body, `no-store`, naming the class of the failure
//! and never the error's text (which may quote a value): `{"message": "Bad gateway: the
//! response body could not be transformed: <class>"}`, the class one of `setup failed`,
//! `schema rewrite failed`, `transform failed`, `malformed message`, `message too large`,
//! `truncated body`, `upstream body failed`. That covers the per-response setup and, for a
//! response that is not live, the first message: the head of such a response waits until
//! its first message has been transformed (or the body ended), buffering only the chunks up
//! to the end of that message. Live responses (`live` long-polls, SSE) are answered as their
//! head comes: their first bytes may come many seconds later, and the client is owed the head
//! now.
//!
//! A failure later (the transform's, a malformed or oversized message, a body that ends
//! early) ends the body with a [`TransformError`]: the status line is already sent, so the
//! server aborts the response and the client sees a broken response, never a shorter array
//! that still parses.
//!
//! # Headers
//! - The forwarded request asks for `accept-encoding: identity`, so the layer sees plain JSON;
//!   a response that is still compressed (`content-encoding` other than `identity`) answers
//!   `502` rather than being corrupted.
//! - `content-length` is removed from transformed responses.
//! - `electric-schema` can be rewritten by [`MessageTransform::rewrite_schema`], for example a
//!   column's type after decryption.
//! - `etag` is **kept**. It names the upstream chunk (`"<handle>:<offset>:<offset>"`) and the
//!   transform is a function of that chunk and of who asks (their key, their rights), so for
//!   one client the validator still identifies exactly the bytes it was sent; keeping it is
//!   what makes conditional requests work: a client's `if-none-match` reaches Electric
//!   unchanged and its `304` passes through untouched, so the client reuses its own,
//!   already transformed, copy. What must not happen is a *shared* cache serving one
//!   principal's transformed bytes to another; that is a matter of `cache-control: private`
//!   or `Vary` on responses whose contents depend on identity, which the shape policy sets.
//!
//! # Example
//! Upper-case one column of `public.items`, and drop deletes:
//!
//! ```
//! use std::borrow::Cow;
//! use tower::ServiceBuilder;
//! use tower_electric::transform::{each_message, BodyTransformLayer, Operation};
//! # use bytes::Bytes;
//! # use http_body_util::{BodyExt, Full};
//!
//! let layer = BodyTransformLayer::new(each_message(|message| {
//!     if message.operation() == Some(Operation::Delete) {
//!         message.discard();
//!         return Ok(());
//!     }
//!     if message.relation().is_some_and(|relation| relation.table == "items") {
//!         if let Some(Some(title)) = message.value_mut().and_then(|row| row.get_mut("title")) {
//!             *title = Cow::Owned(title.to_uppercase());
//!         }
//!     }
//!     Ok(())
//! }));
//!
//! # let upstream = tower::service_fn(|_request: http::Request<Full<Bytes>>| async {
//! #     let body = r#"[{"headers":{"operation":"insert","relation":["public","items"]},"key":"k","value":{"id":"1","title":"a"}}]"#;
//! #     Ok::<_, std::convert::Infallible>(http::Response::builder()
//! #         .header("content-type", "application/json; charset=utf-8")
//! #         .body(Full::new(Bytes::from(body))).unwrap())
//! # });
//! let service = ServiceBuilder::new().layer(layer).service(upstream);
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # use tower::ServiceExt;
//! # let response = service.oneshot(http::Request::new(Full::new(Bytes::new()))).await.unwrap();
//! # let body = response.into_body().collect().await.unwrap().to_bytes();
//! # assert_eq!(body, r#"[{"headers":{"operation":"insert","relation":["public","items"]},"key":"k","value":{"id":"1","title":"A"}}]"#);
//! # });
//! ```
//!
//! A transform with an async per-response setup, for example to look up the caller's tenant
//! key once per response, implements [`ShapeTransform`] (or is a closure
//! `Fn(&request::Parts, &response::Parts) -> impl Future<Output = Result<impl MessageTransform, BoxError>>`),
//! and the size cap can be changed:
//!
//! ```
//! use tower_electric::transform::{BodyTransformLayer, BoxError, Message};
//!
//! #[derive(Clone)]
//! struct TenantKey(String);
//!
//! let layer = BodyTransformLayer::new(
//!     |request: &http::request::Parts, _response: &http::response::Parts| {
//!         // Clone what the setup needs; the future must not borrow the request.
//!         let tenant = request.extensions.get::<TenantKey>().cloned();
//!         async move {
//!             let key = tenant.ok_or("no tenant")?;
//!             Ok::<_, BoxError>(move |message: &mut Message<'_>| -> Result<(), BoxError> {
//!                 let _ = (&key, message); // decrypt with `key` here
//!                 Ok(())
//!             })
//!         }
//!     },
//! )
//! .max_message_bytes(1024 * 1024);
//! # let _ = layer;
//! ```

mod body;
mod future;
mod layer;
mod message;
mod request;
mod split;

use std::borrow::Cow;
use std::future::Future;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{BodyTransform, BodyTransformLayer};
pub use message::{Message, Operation, Relation, Row};
pub use request::{
    each_body, EachBody, JsonBody, JsonTransform, RequestBodyTransform, RequestBodyTransformLayer,
    RequestFuture, WriteTransform, DEFAULT_MAX_BODY_BYTES,
};

/// A type-erased error, as transforms return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The default cap on one message's size: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Why a transformed body ended early. The server aborts the response: the client sees a
/// broken response, never a valid-looking shorter one. (Before the first byte of a
/// non-live response, the same failures answer a `502` instead; see the
/// [module docs](self#errors).)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// The upstream body failed.
    #[error("upstream body failed")]
    Upstream(#[source] BoxError),
    /// One message was larger than the cap.
    #[error("a shape-log message is larger than {limit} bytes")]
    MessageTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body is not a well-formed shape log.
    #[error("malformed shape log: {reason}")]
    Malformed {
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// The body ended inside the shape log.
    #[error("upstream body ended inside the shape log")]
    Truncated,
    /// The transform failed on a message.
    #[error("transform failed")]
    Transform(#[source] BoxError),
}

/// The per-message half of a transform: sync, called for every change message of one
/// response, after the async [`ShapeTransform::setup`].
///
/// Closures `FnMut(&mut Message<'_>) -> Result<(), BoxError>` implement it.
pub trait MessageTransform {
    /// Changes `message` in place: its [`value`](Message::value_mut) and
    /// [`old_value`](Message::old_value_mut) columns, or [`discards`](Message::discard) it.
    /// An error ends the response body with [`TransformError::Transform`], or answers `502`
    /// when no byte of the body was sent yet.
    fn transform(&mut self, message: &mut Message<'_>) -> Result<(), BoxError>;

    /// Rewrites the response's `electric-schema` (column name → `{type, ...}`), called once,
    /// before the first message, when the response has one. The header is written back only
    /// if the schema changed. An error answers `502`. Does nothing by default.
    fn rewrite_schema(
        &mut self,
        schema: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), BoxError> {
        let _ = schema;
        Ok(())
    }
}

impl<F> MessageTransform for F
where
    F: FnMut(&mut Message<'_>) -> Result<(), BoxError>,
{
    fn transform(&mut self, message: &mut Message<'_>) -> Result<(), BoxError> {
        self(message)
    }
}

/// The per-response half of a transform: an async setup that sees the request (as it was
/// when it reached the layer) and the response's status and headers, and returns the
/// [`MessageTransform`] for this response's messages.
///
/// Closures `Fn(&request::Parts, &response::Parts) -> impl Future<Output = Result<M, BoxError>>`
/// implement it; the future must own what it needs (clone from the parts first).
pub trait ShapeTransform {
    /// The per-message transform.
    type Messages: MessageTransform;
    /// The setup's future.
    type Future: Future<Output = Result<Self::Messages, BoxError>>;

    /// Prepares the transform of one response. An error answers `502`.
    fn setup(
        &self,
        request: &http::request::Parts,
        response: &http::response::Parts,
    ) -> Self::Future;
}

impl<F, Fut, M> ShapeTransform for F
where
    F: Fn(&http::request::Parts, &http::response::Parts) -> Fut,
    Fut: Future<Output = Result<M, BoxError>>,
    M: MessageTransform,
{
    type Messages = M;
    type Future = Fut;

    fn setup(
        &self,
        request: &http::request::Parts,
        response: &http::response::Parts,
    ) -> Self::Future {
        self(request, response)
    }
}

/// A [`ShapeTransform`] with no setup: the same message transform, cloned for every response.
#[derive(Debug, Clone)]
pub struct EachMessage<M>(M);

/// Transforms every response's messages with `transform`, cloned per response.
pub fn each_message<F>(transform: F) -> EachMessage<F>
where
    F: FnMut(&mut Message<'_>) -> Result<(), BoxError> + Clone,
{
    EachMessage(transform)
}

impl<M> ShapeTransform for EachMessage<M>
where
    M: MessageTransform + Clone,
{
    type Messages = M;
    type Future = std::future::Ready<Result<M, BoxError>>;

    fn setup(&self, _: &http::request::Parts, _: &http::response::Parts) -> Self::Future {
        std::future::ready(Ok(self.0.clone()))
    }
}
