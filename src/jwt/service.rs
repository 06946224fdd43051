//! The [`Jwt`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Response};
use tower_service::Service;

use super::verify::{JwtError, Verifier};
use crate::body::ResponseBody;
use crate::rejection::Rejection;

/// The response future of [`Jwt`]: the verification (which may reload a JWKS), then the inner
/// service's response.
pub type ResponseFuture<B, E> = crate::future::BoxedResponseFuture<crate::body::ResponseBody<B>, E>;

/// Middleware that verifies a bearer JWT and puts its [`JwtClaims`](crate::claims::JwtClaims)
/// in the request extensions. Built by [`JwtLayer`](super::JwtLayer).
#[derive(Clone)]
pub struct Jwt<S> {
    pub(super) inner: S,
    pub(super) verifier: Arc<Verifier>,
}

impl<S> Jwt<S> {
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

impl<S: fmt::Debug> fmt::Debug for Jwt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Jwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone waits its turn; the instance that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = Arc::clone(&self.verifier);
        ResponseFuture {
            inner: Box::pin(async move {
                match authenticate(&verifier, request.method(), request.headers()).await {
                    Ok(Some(claims)) => {
                        request.extensions_mut().insert(claims);
                    }
                    Ok(None) => {}
                    Err(refusal) => {
                        tracing::info!(reason = %refusal.reason(), "bearer token refused");
                        let mut response: Response<ResponseBody<ResBody>> =
                            refusal.rejection().into_response();
                        if let Refusal::Token(error) = refusal {
                            response.extensions_mut().insert(error);
                        }
                        return Ok(response);
                    }
                }
                if !verifier.keep_authorization {
                    request.headers_mut().remove(AUTHORIZATION);
                }
                Ok(inner.call(request).await?.map(ResponseBody::inner))
            }),
        }
    }
}

enum Refusal {
    Token(JwtError),
    /// Two `Authorization` headers: which one the app behind would read is anyone's guess.
    Ambiguous,
}

impl Refusal {
    /// The reason class, for logs (never the token).
    fn reason(&self) -> String {
        match self {
            Self::Token(error) => error.to_string(),
            Self::Ambiguous => "more than one authorization header".to_owned(),
        }
    }

    fn rejection(&self) -> Rejection {
        match self {
            Self::Token(error) => error.rejection(),
            Self::Ambiguous => Rejection::invalid_request()
                .with_field_error("authorization", "given more than once")
                .with_header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer error=\"invalid_request\""),
                ),
        }
    }
}

/// The claims of the request's bearer token; `None` when there is none and none is required.
async fn authenticate(
    verifier: &Verifier,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<crate::claims::JwtClaims>, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (value, again) = (values.next(), values.next());
    if again.is_some() {
        return Err(Refusal::Ambiguous);
    }
    let Some(value) = value else {
        // A CORS preflight never carries credentials (Fetch standard): it goes on without
        // claims, for a CORS layer or Electric to answer; it can authorize nothing.
        return if verifier.optional || method == Method::OPTIONS {
            Ok(None)
        } else {
            Err(Refusal::Token(JwtError::Missing))
        };
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|text| text.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(Refusal::Token(JwtError::Malformed))?;
    verifier
        .verify(token)
        .await
        .map(Some)
        .map_err(Refusal::Token)
}
