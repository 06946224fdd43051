#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Revocation through the gatekeeper stack (JwtLayer, RevocationLayer, ShapeParamPolicyLayer
//! with a GatekeeperPolicy, ApiTokenLayer, the Electric stand-in): a token replayed after its
//! subject or its id is revoked is a 401, and the principal's held long-poll and SSE stream end
//! within a second of the revocation (bounded with a real timer; the stand-in would hold them
//! for a minute).

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{json, Value};
use tower::util::BoxCloneService;
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_electric::claims::JwtClaims;
use tower_electric::jwt::{sign_hs256, JwtConfig, JwtKey, JwtLayer};
use tower_electric::policy::{GatekeeperPolicy, ShapeParamPolicyLayer};
use tower_electric::revocation::{Revocations, Revoked};
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::SecretString;

const SIGNING_KEY: &str = "gatekeeper signing key, 32 bytes or more";
const ELECTRIC_SECRET: &str = "electric-secret";
/// The bound the issue sets: a held stream ends within this of a revocation.
const CUT_WITHIN: Duration = Duration::from_secs(1);

type Gateway = BoxCloneService<Request<Full<Bytes>>, Response<axum::body::Body>, Infallible>;

fn gateway(revocations: &Revocations) -> (Gateway, ElectricStandIn) {
    // Held long-polls and SSE streams last a minute here: anything that ends sooner was cut.
    let electric = ElectricStandIn::builder()
        .secret(ELECTRIC_SECRET)
        .long_poll_hold(Duration::from_secs(60))
        .sse_duration(Duration::from_secs(60))
        // No keep-alive within a test either: a held stream sends nothing until it is cut.
        .sse_keep_alive(Duration::from_secs(60))
        .with_demo_data()
        .build();
    let jwt = JwtLayer::new(
        JwtConfig::new().key(JwtKey::hs256(&SecretString::new(SIGNING_KEY)).unwrap()),
    )
    .unwrap();
    let service = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(axum::body::Body::new))
        .layer(jwt)
        .layer(revocations.layer())
        .layer(ShapeParamPolicyLayer::new(GatekeeperPolicy::new()))
        .layer(ApiTokenLayer::inject(
            InjectSecret::new(SecretString::new(ELECTRIC_SECRET)).unwrap(),
        ))
        .service(electric.clone());
    (BoxCloneService::new(service), electric)
}

fn token(subject: &str, token_id: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": subject, "jti": token_id, "exp": now + 600,
        "shape": {"table": "items", "where": "tenant_id = $1", "params": ["acme"],
                  "columns": ["id", "tenant_id", "title", "done"]},
    });
    sign_hs256(&SecretString::new(SIGNING_KEY), &claims)
        .unwrap()
        .expose()
        .to_owned()
}

const SHAPE: &str =
    "table=items&where=tenant_id+%3D+%241&params%5B1%5D=acme&columns=id,tenant_id,title,done";

fn request(query: &str, token: &str) -> Request<Full<Bytes>> {
    Request::get(format!("/v1/shape?{SHAPE}&{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

async fn status(gateway: &Gateway, token: &str) -> StatusCode {
    gateway
        .clone()
        .oneshot(request("offset=-1", token))
        .await
        .unwrap()
        .status()
}

/// The initial sync: the handle and offset a live request goes on from.
async fn initial(gateway: &Gateway, token: &str) -> (String, String) {
    let response = gateway
        .clone()
        .oneshot(request("offset=-1", token))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    (header("electric-handle"), header("electric-offset"))
}

async fn assert_revoked_refusal(response: Response<axum::body::Body>, token: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\", error_description=\"token revoked\""
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains(token), "the refusal echoes the token");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["errors"]["authorization"], json!(["token revoked"]));
}

#[tokio::test]
async fn a_token_replayed_after_its_subject_is_revoked_is_refused() {
    let revocations = Revocations::new();
    let (gateway, electric) = gateway(&revocations);
    let alice = token("alice", "t-alice-1");
    let alices_other = token("alice", "t-alice-2");
    let bob = token("bob", "t-bob-1");
    assert_eq!(status(&gateway, &alice).await, StatusCode::OK);

    revocations.revoke_subject("alice");
    let seen = electric.requests().len();
    let response = gateway
        .clone()
        .oneshot(request("offset=-1", &alice))
        .await
        .unwrap();
    assert_revoked_refusal(response, &alice).await;
    // Every token of the subject, not only the one in use.
    assert_eq!(
        status(&gateway, &alices_other).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        electric.requests().len(),
        seen,
        "a revoked principal reached Electric"
    );
    // Others are untouched; and the app can let alice in again.
    assert_eq!(status(&gateway, &bob).await, StatusCode::OK);
    assert!(revocations.restore_subject("alice"));
    assert_eq!(status(&gateway, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn a_token_replayed_after_its_id_is_revoked_is_refused() {
    let revocations = Revocations::new();
    let (gateway, _electric) = gateway(&revocations);
    let leaked = token("alice", "t-leaked");
    let fresh = token("alice", "t-fresh");
    assert_eq!(status(&gateway, &leaked).await, StatusCode::OK);

    revocations.revoke_token("t-leaked");
    assert_eq!(status(&gateway, &leaked).await, StatusCode::UNAUTHORIZED);
    // The subject's other tokens still work.
    assert_eq!(status(&gateway, &fresh).await, StatusCode::OK);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    revocations.revoke_token_until("t-fresh", now + 600);
    assert_eq!(status(&gateway, &fresh).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_held_long_poll_is_answered_401_at_once_on_revocation() {
    let revocations = Revocations::new();
    let (gateway, electric) = gateway(&revocations);
    let alice = token("alice", "t1");
    let (handle, offset) = initial(&gateway, &alice).await;

    let live = format!("offset={offset}&handle={handle}&live=true&cursor=");
    let held = tokio::spawn(gateway.clone().oneshot(request(&live, &alice)));
    electric.wait_for_live_in_flight(1).await;
    assert!(!held.is_finished(), "the long-poll was not held");

    revocations.revoke_subject("alice");
    let response = tokio::time::timeout(CUT_WITHIN, held)
        .await
        .expect("the held long-poll outlived its revocation")
        .unwrap()
        .unwrap();
    assert_revoked_refusal(response, &alice).await;
    // And the request to Electric was dropped, not left to run out its minute.
    tokio::time::timeout(CUT_WITHIN, electric.wait_for_live_cancelled(1))
        .await
        .expect("the upstream long-poll was not cancelled");
}

#[tokio::test]
async fn a_held_sse_stream_ends_at_once_on_revocation() {
    let revocations = Revocations::new();
    let (gateway, electric) = gateway(&revocations);
    let alice = token("alice", "t1");
    let bob = token("bob", "t2");
    let (handle, offset) = initial(&gateway, &alice).await;

    let live = format!("offset={offset}&handle={handle}&live=true&live_sse=true&cursor=");
    let alices = gateway
        .clone()
        .oneshot(request(&live, &alice))
        .await
        .unwrap();
    let bobs = gateway.clone().oneshot(request(&live, &bob)).await.unwrap();
    assert_eq!(alices.status(), StatusCode::OK);
    assert!(alices.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut alices = alices.into_body();
    let mut bobs = bobs.into_body();
    // The stream is live and held open.
    assert!(
        futures_util::FutureExt::now_or_never(alices.frame()).is_none(),
        "the SSE stream was not held open"
    );
    electric.wait_for_live_in_flight(2).await;

    revocations.revoke_subject("alice");
    // Ended cleanly (the client reconnects and meets the 401), within the bound.
    let end = tokio::time::timeout(CUT_WITHIN, alices.frame())
        .await
        .expect("the SSE stream outlived its revocation");
    assert!(end.is_none(), "the SSE stream did not end cleanly");
    tokio::time::timeout(CUT_WITHIN, electric.wait_for_live_cancelled(1))
        .await
        .expect("the upstream SSE stream was not cancelled");
    // Bob's stream is still open.
    assert!(futures_util::FutureExt::now_or_never(bobs.frame()).is_none());
    // Alice reconnecting meets the 401.
    let again = gateway
        .clone()
        .oneshot(request(&live, &alice))
        .await
        .unwrap();
    assert_revoked_refusal(again, &alice).await;
}

#[tokio::test]
async fn a_json_body_mid_way_ends_with_an_error_not_a_clean_end() {
    // A shape log that has sent its first bytes and waits for more: cut, it must not look
    // complete, so it ends with an error (the connection is aborted).
    let revocations = Revocations::new();
    let inner = service_fn(|_request: Request<Full<Bytes>>| async {
        let chunks = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"[{\"headers\":{\"control\":\"up-to-date\"}}"),
        ))])
        .chain(futures_util::stream::pending());
        let mut response = Response::new(StreamBody::new(chunks));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Ok::<_, Infallible>(response)
    });
    let service = revocations.layer().layer(inner);
    let mut request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::default())
        .unwrap();
    request
        .extensions_mut()
        .insert(JwtClaims::new(json!({"sub": "alice"})).unwrap());
    let mut body = service.oneshot(request).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    assert!(futures_util::FutureExt::now_or_never(body.frame()).is_none());

    revocations.revoke_subject("alice");
    let end = tokio::time::timeout(CUT_WITHIN, body.frame())
        .await
        .expect("the body outlived its revocation")
        .expect("the body ended cleanly, as if complete");
    let error = end.expect_err("the body went on after its revocation");
    assert!(error.downcast_ref::<Revoked>().is_some(), "{error}");
    // And stays ended.
    assert!(body.frame().await.is_none());
}

use futures_util::StreamExt as _;
