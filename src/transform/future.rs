//! The response future of [`BodyTransform`](super::BodyTransform).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use pin_project_lite::pin_project;

use super::body::Transforming;
use super::split::Framing;
use super::{BoxError, MessageTransform, ResponseBody, ShapeTransform, TransformError};
use crate::observe::metrics::count_transform_failure;
use crate::protocol::headers::ELECTRIC_SCHEMA;
use crate::protocol::query::{asks_live, single_value};
use crate::protocol::TableName;
use crate::rejection::Rejection;

pin_project! {
    /// The response future of [`BodyTransform`](super::BodyTransform): the inner service's
    /// response, the transform's setup, then (for a response that is not live) the body up to
    /// its first message.
    pub struct ResponseFuture<F, T, B>
    where
        T: ShapeTransform,
    {
        #[pin]
        state: State<F, T::Future, B, T::Messages>,
        request: Option<http::request::Parts>,
        transform: Arc<T>,
        max_message_bytes: usize,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, SetupFuture, B, M> {
        Inner { #[pin] future: F },
        Setup { #[pin] future: SetupFuture, pending: Option<Pending<B>> },
        First { first: Option<(http::response::Parts, Transforming<B, M>)> },
    }
}

/// The response waiting for the setup to finish.
struct Pending<B> {
    parts: http::response::Parts,
    body: B,
    framing: Framing,
    shape_table: Option<(String, String)>,
    holds_head: bool,
}

impl<F, T, B> ResponseFuture<F, T, B>
where
    T: ShapeTransform,
{
    pub(super) fn new(
        future: F,
        request: http::request::Parts,
        transform: Arc<T>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            state: State::Inner { future },
            request: Some(request),
            transform,
            max_message_bytes,
        }
    }
}

/// What to do with a response.
enum Decision {
    PassThrough,
    Refuse(Rejection),
    Transform(Framing),
}

fn decide(request: &http::request::Parts, response: &http::response::Parts) -> Decision {
    if request.method == Method::HEAD || response.status != StatusCode::OK {
        return Decision::PassThrough;
    }
    // Electric labels every shape response; a missing label is read as JSON, so that a
    // transform (which may be a redaction) is never skipped silently.
    let framing = match response.headers.get(CONTENT_TYPE).map(essence) {
        None => Framing::Json,
        Some(Some(essence)) if essence.eq_ignore_ascii_case("application/json") => Framing::Json,
        Some(Some(essence)) if essence.eq_ignore_ascii_case("text/event-stream") => Framing::Sse,
        Some(_) => return Decision::PassThrough,
    };
    let compressed = response
        .headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"identity"));
    if compressed {
        tracing::warn!("upstream answered with a compressed shape log; refusing it");
        count_transform_failure("compressed");
        return Decision::Refuse(
            Rejection::bad_gateway()
                .with_message("Bad gateway: the upstream response is compressed, the body transform needs identity encoding"),
        );
    }
    Decision::Transform(framing)
}

/// The media type of a `content-type`, without parameters.
fn essence(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    Some(text.split(';').next().unwrap_or_default().trim())
}

/// Whether the head waits for the body's first message, so that a failure there is still a
/// `502` the client can read rather than a body cut short under a `200`.
///
/// Only for responses that are not live. Electric answers those from its log at once, so the
/// first message follows the head within moments and holding the head costs nothing; and
/// what is held is bounded (the chunks up to the end of the first message, other output up to
/// the message cap: see `Transforming::poll_first`).
/// A live response is defined by waiting: an SSE stream's first frame may come 20 s after
/// its head (or only a `: keep-alive`), and a long-poll's bytes whenever Electric has a
/// change. Holding those heads would keep from the client what it is owed now, and a bound
/// on the wait would need a timer, tying the layer to a runtime, that is either too short
/// for a slow upstream or too long for a stream. So live heads go out as they come, and a
/// failure in their body ends it with an error.
fn holds_head(request: &http::request::Parts, framing: Framing) -> bool {
    framing == Framing::Json && !asks_live(request.uri.query().unwrap_or_default())
}

/// The `502` for a transform that failed before any byte of the body was sent: it names the
/// class of the failure, never the error's text (which may quote a value or an internal
/// address; that goes to the log, at the call site). Counted in the failures metric.
fn cannot_transform(class: Class) -> Rejection {
    count_transform_failure(class.label);
    Rejection::bad_gateway().with_message(format!(
        "Bad gateway: the response body could not be transformed: {}",
        class.text
    ))
}

/// A failure's class: as a refusal names it, and as the failures metric labels it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Class {
    text: &'static str,
    pub(super) label: &'static str,
}

const SETUP_FAILED: Class = Class {
    text: "setup failed",
    label: "setup_failed",
};
const SCHEMA_REWRITE_FAILED: Class = Class {
    text: "schema rewrite failed",
    label: "schema_rewrite_failed",
};

/// The class of a body error.
pub(super) fn class_of(error: &TransformError) -> Class {
    let (text, label) = match error {
        TransformError::Upstream(_) => ("upstream body failed", "upstream_body_failed"),
        TransformError::MessageTooLarge { .. } => ("message too large", "message_too_large"),
        TransformError::Malformed { .. } => ("malformed message", "malformed_message"),
        TransformError::Truncated => ("truncated body", "truncated_body"),
        TransformError::Transform(_) => ("transform failed", "transform_failed"),
    };
    Class { text, label }
}

/// The shape's table from the request's `table` parameter, for messages without a relation;
/// `None` when it is missing, repeated or malformed.
///
/// Only `table` is decoded, on every response: the layers in front checked the query whole.
fn shape_table(request: &http::request::Parts) -> Option<(String, String)> {
    let table = TableName::parse(&single_value(request.uri.query()?, "table")?).ok()?;
    Some((
        table.schema().as_str().to_owned(),
        table.name().as_str().to_owned(),
    ))
}

/// Lets the transform rewrite `electric-schema`; the header is replaced only if it changed.
fn rewrite_schema<M: MessageTransform>(
    headers: &mut HeaderMap,
    messages: &mut M,
) -> Result<(), BoxError> {
    let Some(value) = headers.get(ELECTRIC_SCHEMA) else {
        return Ok(());
    };
    let original: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(value.as_bytes())?;
    let mut schema = original.clone();
    messages.rewrite_schema(&mut schema)?;
    if schema != original {
        let text = serde_json::to_string(&schema)?;
        headers.insert(ELECTRIC_SCHEMA, HeaderValue::from_str(&text)?);
    }
    Ok(())
}

impl<F, T, B, E> Future for ResponseFuture<F, T, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    T: ShapeTransform,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B, T::Messages>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    let Some(request) = this.request.take() else {
                        return Poll::Pending;
                    };
                    let (parts, body) = response.into_parts();
                    match decide(&request, &parts) {
                        Decision::PassThrough => {
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                ResponseBody::pass_through(body),
                            )));
                        }
                        Decision::Refuse(rejection) => {
                            return Poll::Ready(Ok(rejection.into_response()));
                        }
                        Decision::Transform(framing) => {
                            let future = this.transform.setup(&request, &parts);
                            let pending = Pending {
                                parts,
                                body,
                                framing,
                                shape_table: shape_table(&request),
                                holds_head: holds_head(&request, framing),
                            };
                            this.state.set(State::Setup {
                                future,
                                pending: Some(pending),
                            });
                        }
                    }
                }
                StateProj::Setup { future, pending } => {
                    let result = ready!(future.poll(cx));
                    let Some(Pending {
                        mut parts,
                        body,
                        framing,
                        shape_table,
                        holds_head,
                    }) = pending.take()
                    else {
                        return Poll::Pending;
                    };
                    let mut messages = match result {
                        Ok(messages) => messages,
                        Err(error) => {
                            tracing::warn!(%error, "body transform setup failed");
                            let rejection = cannot_transform(SETUP_FAILED);
                            return Poll::Ready(Ok(rejection.into_response()));
                        }
                    };
                    if let Err(error) = rewrite_schema(&mut parts.headers, &mut messages) {
                        tracing::warn!(%error, "electric-schema rewrite failed");
                        let rejection = cannot_transform(SCHEMA_REWRITE_FAILED);
                        return Poll::Ready(Ok(rejection.into_response()));
                    }
                    parts.headers.remove(CONTENT_LENGTH);
                    let transforming = Transforming::new(
                        body,
                        messages,
                        framing,
                        *this.max_message_bytes,
                        shape_table,
                    );
                    if !holds_head {
                        let body = ResponseBody::transform(transforming);
                        return Poll::Ready(Ok(Response::from_parts(parts, body)));
                    }
                    this.state.set(State::First {
                        first: Some((parts, transforming)),
                    });
                }
                StateProj::First { first } => {
                    let Some((_, transforming)) = first.as_mut() else {
                        return Poll::Pending;
                    };
                    let result = ready!(transforming.poll_first(cx));
                    let Some((parts, transforming)) = first.take() else {
                        return Poll::Pending;
                    };
                    return Poll::Ready(Ok(match result {
                        Ok(()) => {
                            Response::from_parts(parts, ResponseBody::transform(transforming))
                        }
                        Err(error) => {
                            tracing::warn!(%error, "shape log transform failed before the first byte");
                            cannot_transform(class_of(&error)).into_response()
                        }
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(query: &str) -> Option<(String, String)> {
        let request = http::Request::get(format!("/v1/shape?{query}"))
            .body(())
            .unwrap();
        shape_table(&request.into_parts().0)
    }

    #[test]
    fn the_shape_table_is_read_from_the_one_table_param_however_it_is_spelled() {
        let items = Some(("public".to_owned(), "items".to_owned()));
        assert_eq!(table_of("offset=-1&table=items&where=a%3D1"), items);
        assert_eq!(table_of("%74able=items&offset=-1"), items);
        assert_eq!(
            table_of("table=%22My+Schema%22.%22Items%22"),
            Some(("My Schema".to_owned(), "Items".to_owned()))
        );
        assert_eq!(table_of("offset=-1"), None);
        assert_eq!(table_of("table=items&%74able=other"), None);
        assert_eq!(table_of("table=%ZZ"), None);
    }
}
