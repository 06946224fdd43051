//! The response future of [`BodyTransform`](super::BodyTransform).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use pin_project_lite::pin_project;

use super::split::Framing;
use super::{BoxError, MessageTransform, ResponseBody, ShapeTransform};
use crate::protocol::headers::ELECTRIC_SCHEMA;
use crate::protocol::query::single_value;
use crate::protocol::TableName;
use crate::rejection::Rejection;

pin_project! {
    /// The response future of [`BodyTransform`](super::BodyTransform): the inner service's
    /// response, then the transform's setup.
    pub struct ResponseFuture<F, T, B>
    where
        T: ShapeTransform,
    {
        #[pin]
        state: State<F, T::Future, B>,
        request: Option<http::request::Parts>,
        transform: Arc<T>,
        max_message_bytes: usize,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, SetupFuture, B> {
        Inner { #[pin] future: F },
        Setup { #[pin] future: SetupFuture, pending: Option<Pending<B>> },
    }
}

/// The response waiting for the setup to finish.
struct Pending<B> {
    parts: http::response::Parts,
    body: B,
    framing: Framing,
    shape_table: Option<(String, String)>,
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
                    }) = pending.take()
                    else {
                        return Poll::Pending;
                    };
                    let mut messages = match result {
                        Ok(messages) => messages,
                        Err(error) => {
                            tracing::warn!(%error, "body transform setup failed");
                            return Poll::Ready(Ok(Rejection::bad_gateway().into_response()));
                        }
                    };
                    if let Err(error) = rewrite_schema(&mut parts.headers, &mut messages) {
                        tracing::warn!(%error, "electric-schema rewrite failed");
                        return Poll::Ready(Ok(Rejection::bad_gateway().into_response()));
                    }
                    parts.headers.remove(CONTENT_LENGTH);
                    let body = ResponseBody::transform(
                        body,
                        messages,
                        framing,
                        *this.max_message_bytes,
                        shape_table,
                    );
                    return Poll::Ready(Ok(Response::from_parts(parts, body)));
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
