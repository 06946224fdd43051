//! The stand-in's HTTP service: the `tower` service, routing, the request log, auth
//! (`secret`, Cloud's `source_id`), CORS and preflight, and the shape endpoint's dispatch to
//! its answers.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    CACHE_CONTROL, CONNECTION, ORIGIN,
};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::json;

use crate::protocol::headers::{
    ALLOW_METHODS_VALUE, ELECTRIC_SERVER, EXPOSE_HEADERS_VALUE, SHAPE_PATH,
};
use crate::protocol::query::decode_component;
use crate::protocol::{Offset, QueryPairs, ShapeRequest};
use crate::rejection::Rejection;

use super::answer::{json_response, put, Answer, Early, StandInBody};
use super::shape::{log, now, shape_view, snapshot};
use super::sse::sse;
use super::subset::{merge_body, serve_subset};
use super::{ElectricStandIn, RecordedRequest, Shared};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest `POST` body read, as Electric's own limit is for a real server.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const SERVER_VALUE: &str = "ElectricSQL/1.7.12";
/// The request headers Electric's preflight allows.
const PREFLIGHT_HEADERS: [&str; 2] = ["if-none-match", "traceparent"];

impl<B> tower_service::Service<Request<B>> for ElectricStandIn
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            inner: Box::pin(async move { Ok(handle(shared, request).await) }),
        }
    }
}

/// The future of [`ElectricStandIn`]'s responses.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Answer, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pub(super) enum BodyError {
    TooLarge,
    Unreadable,
}

async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Answer
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        Some(read_body(body).await)
    } else {
        None
    };
    shared.record(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: lenient_pairs(parts.uri.query().unwrap_or_default()),
        headers: parts.headers.clone(),
        body: body.as_ref().and_then(|body| body.as_ref().ok()).cloned(),
    });
    let mut response = match parts.uri.path() {
        "/v1/health" => health(&parts),
        SHAPE_PATH => shape_endpoint(&shared, &parts, body).await,
        _ => {
            let mut response = Response::new(StandInBody::full("Not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    put(response.headers_mut(), ELECTRIC_SERVER, SERVER_VALUE);
    if parts.method == Method::HEAD {
        *response.body_mut() = StandInBody::empty();
    }
    response
}

async fn read_body<B>(body: B) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// The query's pairs for the request log: decoded where possible, raw otherwise, repeats kept.
fn lenient_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            let decode = |text: &str| decode_component(text).unwrap_or_else(|_| text.to_owned());
            (decode(key), decode(value))
        })
        .collect()
}

fn health(parts: &Parts) -> Answer {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        json_response(StatusCode::OK, &json!({"status": "active"}))
    } else {
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": format!("{} not allowed", parts.method)}),
        )
    }
}

async fn shape_endpoint(
    shared: &Arc<Shared>,
    parts: &Parts,
    body: Option<Result<Bytes, BodyError>>,
) -> Answer {
    let mut response = match parts.method {
        Method::OPTIONS => preflight(parts),
        Method::GET | Method::HEAD | Method::POST | Method::DELETE => {
            match QueryPairs::parse(parts.uri.query().unwrap_or_default()) {
                Err(error) => Rejection::from(error).into_response(),
                Ok(pairs) => {
                    if !authorized(shared, &pairs) {
                        // Electric answers before its CORS plug runs: no CORS headers.
                        return unauthorized();
                    }
                    if parts.method == Method::DELETE {
                        json_response(
                            StatusCode::METHOD_NOT_ALLOWED,
                            &json!({"message": "DELETE not allowed"}),
                        )
                    } else {
                        serve_shape(shared, parts, pairs, body)
                            .await
                            .unwrap_or_else(|refusal| *refusal)
                    }
                }
            }
        }
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": format!("{} not allowed", parts.method)}),
        ),
    };
    let headers = response.headers_mut();
    let origin = parts
        .headers
        .get(ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    put(headers, ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS_VALUE);
    put(headers, ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS_VALUE);
    response
}

/// Electric's check: `secret`, else `api_secret`, equal to the configured secret; for a Cloud
/// source, `source_id` equal to its id too. Plain equality, as Electric compares; this is a
/// test double, not a gate.
fn authorized(shared: &Shared, pairs: &QueryPairs) -> bool {
    let source = match &shared.config.source_id {
        Some(source_id) => pairs.get("source_id") == Some(source_id.as_str()),
        None => true,
    };
    let Some(secret) = &shared.config.secret else {
        return source;
    };
    source
        && pairs
            .get("secret")
            .or_else(|| pairs.get("api_secret"))
            .is_some_and(|given| given == secret.expose())
}

fn unauthorized() -> Answer {
    let mut response = Response::new(StandInBody::full(
        json!({"message": "Unauthorized - Invalid API secret"}).to_string(),
    ));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    put(
        response.headers_mut(),
        CACHE_CONTROL,
        "max-age=0, private, must-revalidate",
    );
    response
}

fn preflight(parts: &Parts) -> Answer {
    let mut response = Response::new(StandInBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    put(headers, ACCESS_CONTROL_MAX_AGE, "86400");
    let allowed: Vec<String> = parts
        .headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| PREFLIGHT_HEADERS.contains(&name.as_str()))
        .collect();
    if !allowed.is_empty() {
        put(headers, ACCESS_CONTROL_ALLOW_HEADERS, allowed.join(", "));
    }
    put(headers, CONNECTION, "keep-alive");
    response
}

/// `GET`/`HEAD`/`POST /v1/shape` once authorized.
async fn serve_shape(
    shared: &Arc<Shared>,
    parts: &Parts,
    pairs: QueryPairs,
    body: Option<Result<Bytes, BodyError>>,
) -> Result<Answer, Early> {
    let is_post = body.is_some();
    let pairs = match body {
        Some(body) => merge_body(pairs, body)?,
        None => pairs,
    };
    let request =
        ShapeRequest::from_pairs(pairs).map_err(|e| Rejection::from(e).into_response())?;
    let view = shape_view(shared, &request)?;
    if is_post || request.subset.is_present() {
        return serve_subset(shared, &request, &view);
    }
    match request.offset {
        Offset::BeforeAll => Ok(snapshot(shared, parts, &request, &view)),
        Offset::Now => Ok(now(shared, &view)),
        Offset::At(offset) if request.live_sse => Ok(sse(shared, &request, &view, offset)),
        Offset::At(offset) => Ok(log(shared, parts, &request, &view, offset).await),
    }
}
