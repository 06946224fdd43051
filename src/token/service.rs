//! The [`ApiToken`] service: authenticates the caller, strips credentials, injects the secret.

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use tower_service::Service;

use super::config::{is_credential_key, InjectSecret, RequireToken, SECRET_KEY, SOURCE_ID_KEY};
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::protocol::query::{canonical_taking, push_pair, with_query};
use crate::protocol::{ProtocolError, QueryPairs};
use crate::rejection::Rejection;

/// What an [`ApiTokenLayer`](super::ApiTokenLayer) was configured with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) inject: Option<InjectSecret>,
    pub(crate) require: Option<RequireToken>,
    pub(crate) max_query_len: usize,
}

/// Middleware that requires a caller token and/or injects Electric's secret. Built by
/// [`ApiTokenLayer`](super::ApiTokenLayer).
#[derive(Debug, Clone)]
pub struct ApiToken<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> ApiToken<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApiToken<S>
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
        match self.settings.prepare(&mut request) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(rejection) => {
                tracing::debug!(
                    status = rejection.status().as_u16(),
                    reason = rejection.message(),
                    "ApiTokenLayer refused a request"
                );
                ResponseFuture::refused(rejection)
            }
        }
    }
}

/// A credential the caller presented, as far as its form goes.
enum Presented<'a> {
    /// Token bytes, to be compared.
    Token(&'a [u8]),
    /// Something in a credential's place that can never be valid (another scheme, no token).
    Unusable,
}

impl Settings {
    /// Checks the caller (require mode) and rewrites the request for upstream: caller
    /// credentials removed, Electric's secret added (inject mode). On error nothing is
    /// forwarded.
    fn prepare<B>(&self, request: &mut Request<B>) -> Result<(), Rejection> {
        if let (None, Some(inject)) = (&self.require, &self.inject) {
            if let Some(query) = canonical_injected(self.raw_query(request.uri())?, inject) {
                // On failure the text is dropped unread: it holds the injected secret.
                let query = query?;
                let uri = std::mem::take(request.uri_mut());
                *request.uri_mut() =
                    with_query(uri, &query).ok_or_else(Rejection::invalid_request)?;
                return Ok(());
            }
        }
        let query = if self.rewrites_query() {
            Some(self.take_credentials(request.uri())?)
        } else {
            None
        };

        if let Some(require) = &self.require {
            let preflight = require.allow_preflight && request.method() == Method::OPTIONS;
            if !preflight {
                let from_query = query
                    .as_ref()
                    .map_or(&[][..], |(_, taken)| taken.as_slice());
                authenticate(require, request.headers(), from_query)?;
            }
            if require.bearer {
                request.headers_mut().remove(AUTHORIZATION);
            }
            if let Some(header) = &require.header {
                request.headers_mut().remove(header);
            }
        }

        if let Some((pairs, _taken)) = query {
            let mut query = pairs.to_query_string();
            if let Some(inject) = &self.inject {
                push_injected(&mut query, inject);
            }
            // On failure the text is dropped unread: it holds the injected secret.
            let uri = std::mem::take(request.uri_mut());
            *request.uri_mut() = with_query(uri, &query).ok_or_else(Rejection::invalid_request)?;
        }
        Ok(())
    }

    fn rewrites_query(&self) -> bool {
        self.inject.is_some()
            || self
                .require
                .as_ref()
                .is_some_and(|require| require.query_param)
    }

    /// Decodes the query the way Electric does and takes out every credential key, in any
    /// spelling or number. A query that does not decode is refused whole.
    fn take_credentials(
        &self,
        uri: &Uri,
    ) -> Result<(QueryPairs, Vec<(String, String)>), Rejection> {
        let raw = self.raw_query(uri)?;
        // Inject mode owns `source_id` whether or not it sets one (see `is_credential_key`).
        let with_source_id = self.inject.is_some();
        Ok(QueryPairs::parse_taking(raw, |key| {
            is_credential_key(key, with_source_id)
        })?)
    }

    /// The query as sent, if it is not over the length limit.
    fn raw_query<'a>(&self, uri: &'a Uri) -> Result<&'a str, Rejection> {
        let raw = uri.query().unwrap_or_default();
        if raw.len() > self.max_query_len {
            return Err(ProtocolError::QueryTooLong {
                max_len: self.max_query_len,
            }
            .into());
        }
        Ok(raw)
    }
}

/// Inject mode's upstream query for a query already written canonically (always so behind
/// the shape policy layer, which writes every query it forwards so): the
/// same text as decoding every pair, taking out the credentials, setting the secret and
/// encoding them again gives, copied instead. `None` for any other query, which then takes
/// that general path.
fn canonical_injected(raw: &str, inject: &InjectSecret) -> Option<Result<String, ProtocolError>> {
    let kept = canonical_taking(raw, |key| is_credential_key(key, true))?;
    Some(kept.map(|mut query| {
        push_injected(&mut query, inject);
        query
    }))
}

/// Appends the server's secret, and Electric Cloud's `source_id` after it, to a query whose
/// credentials were all taken out.
fn push_injected(query: &mut String, inject: &InjectSecret) {
    push_pair(query, SECRET_KEY, inject.secret.expose());
    if let Some(source_id) = &inject.source_id {
        push_pair(query, SOURCE_ID_KEY, source_id.as_str());
    }
}

/// Finds the one credential the caller presented and checks it.
///
/// Ambiguity is refused, never resolved: two `Authorization` headers, two copies of the custom
/// header, two `secret` params, or a token in more than one of these places is a 400
/// (RFC 6750 §3.1 `invalid_request`: "repeats the same parameter, uses more than one method
/// for including an access token"), so no "first one wins" can differ between this layer and
/// whatever reads the request after it.
fn authenticate(
    require: &RequireToken,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), Rejection> {
    let mut presented = Vec::new();
    if require.bearer {
        if let Some(value) = single_header(require, headers, &AUTHORIZATION)? {
            presented.push(bearer_token(value));
        }
    }
    if let Some(name) = &require.header {
        if let Some(value) = single_header(require, headers, name)? {
            presented.push(token(value.as_bytes()));
        }
    }
    if require.query_param {
        let mut copies = query.iter().filter(|(key, _)| key == SECRET_KEY);
        if let Some((_, value)) = copies.next() {
            if copies.next().is_some() {
                return Err(ambiguous(require, SECRET_KEY, "given more than once"));
            }
            presented.push(token(value.as_bytes()));
        }
    }

    let mut presented = presented.into_iter();
    match (presented.next(), presented.next()) {
        (None, _) => Err(unauthorized(require, "Unauthorized - missing token", None)),
        (Some(_), Some(_)) => Err(ambiguous(require, "token", "given in more than one place")),
        (Some(Presented::Token(token)), None) if require.accepts(token) => Ok(()),
        (Some(_), None) => Err(unauthorized(
            require,
            "Unauthorized - invalid token",
            Some("invalid_token"),
        )),
    }
}

/// The header's one value, if present; a repeated header is refused.
fn single_header<'a>(
    require: &RequireToken,
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, Rejection> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(ambiguous(
            require,
            name.as_str().to_owned(),
            "given more than once",
        )),
        (value, _) => Ok(value),
    }
}

/// `Bearer <token>`, the scheme in any case (RFC 7235 §2.1).
fn bearer_token(value: &HeaderValue) -> Presented<'_> {
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&byte| byte == b' ') {
        Some(space) => bytes.split_at(space),
        None => (bytes, &[][..]),
    };
    if scheme.eq_ignore_ascii_case(b"bearer") {
        token(rest)
    } else {
        Presented::Unusable
    }
}

fn token(bytes: &[u8]) -> Presented<'_> {
    match bytes.trim_ascii() {
        [] => Presented::Unusable,
        token => Presented::Token(token),
    }
}

fn unauthorized(require: &RequireToken, message: &'static str, error: Option<&str>) -> Rejection {
    Rejection::unauthorized()
        .with_message(message)
        .with_header(WWW_AUTHENTICATE, require.challenge(error))
}

fn ambiguous(
    require: &RequireToken,
    field: impl Into<Cow<'static, str>>,
    error: &'static str,
) -> Rejection {
    Rejection::invalid_request()
        .with_field_error(field, error)
        .with_header(WWW_AUTHENTICATE, require.challenge(Some("invalid_request")))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::Full;
    use std::convert::Infallible;
    use tower::{service_fn, Layer, ServiceExt};

    use super::*;
    use crate::token::ApiTokenLayer;
    use crate::SecretString;

    /// Answers 200 with the URI it received in an `x-uri` header.
    async fn upstream(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let mut response = Response::new(Full::default());
        let uri = HeaderValue::from_str(&request.uri().to_string()).unwrap();
        response.headers_mut().insert("x-uri", uri);
        Ok(response)
    }

    async fn send(
        layer: &ApiTokenLayer,
        request: Request<Full<Bytes>>,
    ) -> Response<ResponseBody<Full<Bytes>>> {
        layer
            .layer(service_fn(upstream))
            .oneshot(request)
            .await
            .unwrap()
    }

    fn inject() -> ApiTokenLayer {
        ApiTokenLayer::inject(InjectSecret::new(SecretString::new("s")).unwrap())
    }

    #[tokio::test]
    async fn scheme_authority_and_path_are_kept_when_the_query_is_rewritten() {
        let request = Request::get("http://electric:3000/v1/shape?secret=x&table=t")
            .body(Full::default())
            .unwrap();
        let response = send(&inject(), request).await;
        assert_eq!(
            response.headers()["x-uri"],
            "http://electric:3000/v1/shape?table=t&secret=s"
        );
    }

    #[tokio::test]
    async fn undecodable_queries_are_refused_whole() {
        for query in ["table=t&secret=%zz", "table=%ff", "se%2cret=%4"] {
            let request = Request::get(format!("/v1/shape?{query}"))
                .body(Full::default())
                .unwrap();
            let response = send(&inject(), request).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            assert!(response.headers().get("x-uri").is_none(), "{query}");
        }
    }

    #[tokio::test]
    async fn over_long_query_is_a_414() {
        let layer = inject().max_query_len(16);
        let request = Request::get("/v1/shape?table=a-rather-long-name")
            .body(Full::default())
            .unwrap();
        assert_eq!(
            send(&layer, request).await.status(),
            StatusCode::URI_TOO_LONG
        );
    }

    #[tokio::test]
    async fn bearer_scheme_is_case_insensitive() {
        let layer = ApiTokenLayer::require(RequireToken::new(["tok"]).unwrap());
        for (value, expected) in [
            ("Bearer tok", StatusCode::OK),
            ("bearer tok", StatusCode::OK),
            ("BEARER  tok", StatusCode::OK),
            ("Bearertok", StatusCode::UNAUTHORIZED),
            ("Bearer", StatusCode::UNAUTHORIZED),
            ("Token tok", StatusCode::UNAUTHORIZED),
            ("tok", StatusCode::UNAUTHORIZED),
        ] {
            let request = Request::get("/internal")
                .header(AUTHORIZATION, value)
                .body(Full::default())
                .unwrap();
            assert_eq!(send(&layer, request).await.status(), expected, "{value}");
        }
    }

    #[tokio::test]
    async fn require_only_without_query_param_leaves_the_uri_alone() {
        let layer = ApiTokenLayer::require(RequireToken::new(["tok"]).unwrap());
        let request = Request::get("/internal?b=1&a=%41")
            .header(AUTHORIZATION, "Bearer tok")
            .body(Full::default())
            .unwrap();
        assert_eq!(
            send(&layer, request).await.headers()["x-uri"],
            "/internal?b=1&a=%41"
        );
    }

    #[tokio::test]
    async fn preflights_can_be_made_to_authenticate() {
        let layer =
            ApiTokenLayer::require(RequireToken::new(["tok"]).unwrap().allow_preflight(false));
        let request = Request::options("/v1/shape").body(Full::default()).unwrap();
        assert_eq!(
            send(&layer, request).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_disabled_bearer_source_leaves_authorization_to_the_app() {
        let layer = ApiTokenLayer::require(
            RequireToken::new(["tok"])
                .unwrap()
                .bearer(false)
                .header(HeaderName::from_static("electric-secret")),
        );
        let service = layer.layer(service_fn(|request: Request<Full<Bytes>>| async move {
            assert_eq!(request.headers()[AUTHORIZATION], "Bearer app-user-jwt");
            assert!(request.headers().get("electric-secret").is_none());
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
        let request = Request::get("/internal")
            .header(AUTHORIZATION, "Bearer app-user-jwt")
            .header("electric-secret", "tok")
            .body(Full::default())
            .unwrap();
        assert_eq!(
            service.oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
