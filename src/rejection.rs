//! The one refusal type every layer answers with.
//!
//! A [`Rejection`] is an HTTP status plus a JSON body in Electric's own error shape,
//! `{"message": "...", "errors": {"<field>": ["..."]}}`, so that Electric's clients surface
//! it the way they surface Electric's own errors. The response is marked `no-store` (a
//! refusal must never be cached for somebody else) and carries the [`Rejection`] itself in
//! its extensions, so outer layers, metrics and access logs can see *why* without parsing the
//! body.
//!
//! Messages are written by this crate, never copied from upstream errors or secrets. Where a
//! message names client input (a query key, a column), the text is cut to a short length so a
//! refusal cannot be used to reflect large payloads.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

/// The longest piece of client text a refusal message repeats.
const MAX_ECHO: usize = 64;

/// Why a request was refused: the class of the refusal, stable for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request is malformed (400).
    InvalidRequest,
    /// Credentials are missing or wrong (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The method is not served here (405).
    MethodNotAllowed,
    /// A body is larger than allowed (413).
    PayloadTooLarge,
    /// The URL is longer than allowed (414).
    UriTooLong,
    /// The upstream could not be reached or answered wrongly (502).
    BadGateway,
    /// The upstream did not answer in time (504).
    GatewayTimeout,
}

impl RejectionKind {
    /// The HTTP status this kind of refusal answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The kind's stable snake_case name (`invalid_request`, `forbidden`, `bad_gateway`, ...),
    /// as span fields and metric labels carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The default top-level message for this kind, as Electric words its own.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "Payload too large",
            Self::UriTooLong => "URI too long",
            Self::BadGateway => "Bad gateway",
            Self::GatewayTimeout => "Gateway timeout",
        }
    }
}

/// A refusal: status, message, per-field errors, and extra response headers.
///
/// Build one with a kind constructor, add field errors, then turn it into a response:
///
/// ```
/// use tower_electric::rejection::Rejection;
///
/// let rejection = Rejection::invalid_request().with_field_error("offset", "has invalid format");
/// let response = rejection.into_response::<http_body_util::Full<bytes::Bytes>>();
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", message, kind.status())]
pub struct Rejection {
    kind: RejectionKind,
    message: Cow<'static, str>,
    errors: BTreeMap<Cow<'static, str>, Vec<String>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Rejection {
    /// A refusal of the given kind with its default message.
    pub fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            message: Cow::Borrowed(kind.default_message()),
            errors: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// 400, `Invalid request`.
    pub fn invalid_request() -> Self {
        Self::new(RejectionKind::InvalidRequest)
    }

    /// 401, `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(RejectionKind::Unauthorized)
    }

    /// 403, `Forbidden`.
    pub fn forbidden() -> Self {
        Self::new(RejectionKind::Forbidden)
    }

    /// 405, `Method not allowed`, with the `allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &[http::Method]) -> Self {
        let allow = allowed
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let rejection = Self::new(RejectionKind::MethodNotAllowed);
        match HeaderValue::from_str(&allow) {
            Ok(value) => rejection.with_header(http::header::ALLOW, value),
            Err(_) => rejection,
        }
    }

    /// 413, `Payload too large`.
    pub fn payload_too_large() -> Self {
        Self::new(RejectionKind::PayloadTooLarge)
    }

    /// 414, `URI too long`.
    pub fn uri_too_long() -> Self {
        Self::new(RejectionKind::UriTooLong)
    }

    /// 502, `Bad gateway`.
    pub fn bad_gateway() -> Self {
        Self::new(RejectionKind::BadGateway)
    }

    /// 504, `Gateway timeout`.
    pub fn gateway_timeout() -> Self {
        Self::new(RejectionKind::GatewayTimeout)
    }

    /// Replaces the top-level message. Write it for the client: no secrets, no internals.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds an error for one field (a query key, a body key, a header).
    #[must_use]
    pub fn with_field_error(
        mut self,
        field: impl Into<Cow<'static, str>>,
        error: impl Into<String>,
    ) -> Self {
        let field = match field.into() {
            Cow::Owned(text) => Cow::Owned(echo(&text).into_owned()),
            borrowed => borrowed,
        };
        self.errors.entry(field).or_default().push(error.into());
        self
    }

    /// Adds a header to the refusal response (for example `WWW-Authenticate`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The class of this refusal.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The top-level message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The per-field errors, by field name.
    pub fn field_errors(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.errors
            .iter()
            .map(|(field, errors)| (field.as_ref(), errors.as_slice()))
    }

    /// The JSON body, in Electric's error shape.
    pub fn body_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), self.message.as_ref().into());
        if !self.errors.is_empty() {
            let errors = self
                .errors
                .iter()
                .map(|(field, list)| (field.to_string(), list.clone().into()))
                .collect::<serde_json::Map<_, _>>();
            body.insert("errors".into(), errors.into());
        }
        body.into()
    }

    /// The refusal as a response: status, JSON body, `no-store`, the extra headers, and the
    /// rejection itself in the response extensions.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = Bytes::from(self.body_json().to_string());
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            HeaderName::from_static("surrogate-control"),
            HeaderValue::from_static("no-store"),
        );
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Client text as a refusal may repeat it: at most [`MAX_ECHO`] characters.
pub(crate) fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHO) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", text.get(..cut).unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    async fn body_text(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn body_is_electrics_error_shape_exactly() {
        let response = Rejection::invalid_request()
            .with_field_error("offset", "has invalid format")
            .with_field_error("handle", "can't be blank when offset != -1")
            .into_response::<Full<Bytes>>();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()["surrogate-control"], "no-store");
        assert_eq!(
            body_text(response).await,
            r#"{"errors":{"handle":["can't be blank when offset != -1"],"offset":["has invalid format"]},"message":"Invalid request"}"#
        );
    }

    #[tokio::test]
    async fn body_without_field_errors_has_only_a_message() {
        let response = Rejection::forbidden()
            .with_message("table is not allowed")
            .into_response::<Full<Bytes>>();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            body_text(response).await,
            r#"{"message":"table is not allowed"}"#
        );
    }

    #[test]
    fn typed_reason_is_in_the_response_extensions() {
        let response = Rejection::unauthorized().into_response::<Full<Bytes>>();
        let rejection = response.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::Unauthorized);
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let response = Rejection::method_not_allowed(&[http::Method::GET, http::Method::HEAD])
            .into_response::<Full<Bytes>>();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[http::header::ALLOW], "GET, HEAD");
    }

    #[test]
    fn long_client_field_names_are_cut() {
        let key = "k".repeat(500);
        let rejection = Rejection::invalid_request().with_field_error(key, "given more than once");
        let (field, _) = rejection.field_errors().next().unwrap();
        assert!(field.chars().count() <= MAX_ECHO + 1, "{field}");
    }
}
