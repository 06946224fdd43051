//! What the stand-in answers with: its response body (complete, or an SSE stream) and the
//! helpers that build answers: JSON, field refusals, headers, `etag` matches and `304`.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, IF_NONE_MATCH};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;

use crate::protocol::headers::JSON_CONTENT_TYPE;
use crate::rejection::Rejection;

pub(super) type Answer = Response<StandInBody>;
/// An answer a helper gives instead of going on (a refusal); boxed to keep `Result`s small.
pub(super) type Early = Box<Answer>;

/// The body of [`ElectricStandIn`](super::ElectricStandIn)'s responses: complete JSON, or an
/// SSE stream whose frames come as changes happen.
pub struct StandInBody {
    pub(super) kind: BodyKind,
}

pub(super) enum BodyKind {
    Full(Option<Bytes>),
    Stream(Pin<Box<dyn Stream<Item = Bytes> + Send>>),
}

impl StandInBody {
    pub(super) fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            kind: BodyKind::Full((!data.is_empty()).then_some(data)),
        }
    }

    pub(super) fn empty() -> Self {
        Self::full(Bytes::new())
    }
}

impl From<Bytes> for StandInBody {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl fmt::Debug for StandInBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Full(data) => f.debug_tuple("StandInBody").field(data).finish(),
            BodyKind::Stream(_) => f.write_str("StandInBody(<stream>)"),
        }
    }
}

impl Body for StandInBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            BodyKind::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            BodyKind::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|frame| frame.map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::Stream(_) => SizeHint::default(),
        }
    }
}

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Early {
    Box::new(
        Rejection::invalid_request()
            .with_field_error(field, message)
            .into_response(),
    )
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Answer {
    let mut response = Response::new(StandInBody::full(body.to_string()));
    *response.status_mut() = status;
    put(response.headers_mut(), CONTENT_TYPE, JSON_CONTENT_TYPE);
    // Errors are never cached; a 409 is a redirect and gets its own caching.
    if (status.is_client_error() || status.is_server_error()) && status != StatusCode::CONFLICT {
        put(response.headers_mut(), CACHE_CONTROL, "no-store");
        put(
            response.headers_mut(),
            crate::protocol::headers::SURROGATE_CONTROL,
            "no-store",
        );
    }
    response
}

pub(super) fn put(headers: &mut HeaderMap, name: HeaderName, value: impl AsRef<[u8]>) {
    // Values are the stand-in's own (handles, offsets, JSON); one that is not a valid header
    // value (a control character in a column name) is left out rather than panicking.
    if let Ok(value) = HeaderValue::from_bytes(value.as_ref()) {
        headers.insert(name, value);
    }
}

/// Electric's `if-none-match`: a comma-separated list, quotes trimmed.
pub(super) fn etag_matches(parts: &Parts, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    parts
        .headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim().trim_matches('"') == etag)
}

pub(super) fn not_modified_if_matching(parts: &Parts, etag: &str, response: Answer) -> Answer {
    if etag_matches(parts, etag) {
        not_modified(response)
    } else {
        response
    }
}

/// The same answer as 304 with an empty body.
pub(super) fn not_modified(mut response: Answer) -> Answer {
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response.headers_mut().remove(CONTENT_TYPE);
    *response.body_mut() = StandInBody::empty();
    response
}
