#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! JwtLayer under attack: every forged, stale, misdirected or confused token is a 401 naming
//! its reason class and nothing else (never the token); then the defence's good paths: HS256,
//! RS256, ES256, a JWKS reloaded on an interval and on an unknown kid, rate-limited.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower::util::BoxCloneService;
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::claims::JwtClaims;
use tower_electric::jwt::{Jwks, JwtConfig, JwtError, JwtKey, JwtLayer};
use tower_electric::SecretString;

#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;

const SECRET: &str = "test secret: thirty-two bytes or more, as RFC 7518 asks";
const ISSUER: &str = "https://app.example";
const AUDIENCE: &str = "electric-gateway";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass every check, to be spoiled one at a time.
fn good_claims() -> Value {
    json!({"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now()})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn sign(algorithm: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn rs256(private: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&fixture(private)).unwrap();
    sign(Algorithm::RS256, kid, &key, claims)
}

fn es256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    sign(Algorithm::ES256, kid, &key, claims)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// What the inner service saw: the subject of the claims it was given, and whether the
/// `Authorization` header reached it.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Call>>>);

/// One call of the inner service: the claims' subject, and whether `Authorization` came too.
type Call = (Option<String>, bool);

type Service = BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_electric::body::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

fn gateway(config: JwtConfig) -> (Service, Seen) {
    let seen = Seen::default();
    let log = seen.clone();
    let inner = service_fn(move |request: Request<Full<Bytes>>| {
        let subject = request
            .extensions()
            .get::<JwtClaims>()
            .map(|claims| claims.subject().unwrap_or_default().to_owned());
        let authorization = request.headers().contains_key(header::AUTHORIZATION);
        log.0.lock().unwrap().push((subject, authorization));
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    (
        BoxCloneService::new(JwtLayer::new(config).unwrap().layer(inner)),
        seen,
    )
}

fn hs_config() -> JwtConfig {
    JwtConfig::new()
        .key(JwtKey::hs256(&SecretString::new(SECRET)).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

fn rsa_config() -> JwtConfig {
    JwtConfig::new()
        .key(JwtKey::rs256_pem(&fixture("rsa-public.pem")).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
    reason: Option<JwtError>,
}

async fn send(service: &Service, authorization: Option<&str>) -> Answer {
    let mut request = Request::get("/v1/shape?table=items&offset=-1");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = service
        .clone()
        .oneshot(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned());
    let reason = response.extensions().get::<JwtError>().copied();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        body: String::from_utf8(body.to_vec()).unwrap(),
        reason,
    }
}

/// Sends `token` and asserts the refusal: 401, the reason class in the body, the challenge
/// and the extensions, and neither the token nor any of its parts in the body.
async fn assert_refused(service: &Service, seen: &Seen, token: &str, reason: JwtError) {
    let answer = send(service, Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.reason, Some(reason));
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["message"], "Unauthorized - invalid token");
    assert_eq!(body["errors"]["authorization"], json!([reason.to_string()]));
    assert_eq!(
        answer.challenge.as_deref(),
        Some(format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"").as_str())
    );
    for part in token.split('.').filter(|part| part.len() > 8) {
        assert!(!answer.body.contains(part), "the refusal echoes the token");
    }
    assert!(!answer.body.contains("u1"), "the refusal echoes a claim");
    assert!(
        seen.0.lock().unwrap().is_empty(),
        "a refused request reached the inner service"
    );
}

// ---- attacks -------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (service, seen) = gateway(hs_config());
    let token = hs256(&with(good_claims(), "exp", json!(now() - 3600)));
    assert_refused(&service, &seen, &token, JwtError::Expired).await;
}

#[tokio::test]
async fn clock_skew_is_bounded_even_when_configured_larger() {
    // An hour of leeway asked for, five minutes given: a token ten minutes past is refused.
    let (service, seen) = gateway(hs_config().leeway(Duration::from_secs(3600)));
    let token = hs256(&with(good_claims(), "exp", json!(now() - 600)));
    assert_refused(&service, &seen, &token, JwtError::Expired).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let (service, seen) = gateway(hs_config());
    let token = hs256(&with(good_claims(), "nbf", json!(now() + 3600)));
    assert_refused(&service, &seen, &token, JwtError::NotYetValid).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let (service, seen) = gateway(hs_config());
    let token = hs256(&with(good_claims(), "aud", json!("billing")));
    assert_refused(&service, &seen, &token, JwtError::WrongAudience).await;
}

#[tokio::test]
async fn a_token_without_the_configured_audience_is_refused() {
    let (service, seen) = gateway(hs_config());
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("aud");
    assert_refused(&service, &seen, &hs256(&claims), JwtError::BadClaim).await;
}

#[tokio::test]
async fn a_token_with_an_audience_is_refused_where_none_is_configured() {
    let (service, seen) =
        gateway(JwtConfig::new().key(JwtKey::hs256(&SecretString::new(SECRET)).unwrap()));
    assert_refused(
        &service,
        &seen,
        &hs256(&good_claims()),
        JwtError::WrongAudience,
    )
    .await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let (service, seen) = gateway(hs_config());
    let token = hs256(&with(good_claims(), "iss", json!("https://evil.example")));
    assert_refused(&service, &seen, &token, JwtError::WrongIssuer).await;
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let (service, seen) = gateway(hs_config());
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("exp");
    assert_refused(&service, &seen, &hs256(&claims), JwtError::BadClaim).await;
}

#[tokio::test]
async fn alg_none_is_refused_whatever_its_spelling() {
    let (service, seen) = gateway(hs_config());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&good_claims())
        );
        assert_refused(&service, &seen, &token, JwtError::AlgorithmNotAllowed).await;
        // With a signature part that is not empty, too.
        let token = format!("{token}c2ln");
        assert_refused(&service, &seen, &token, JwtError::AlgorithmNotAllowed).await;
    }
}

#[tokio::test]
async fn an_algorithm_outside_the_pinned_ones_is_refused() {
    let (service, seen) = gateway(hs_config());
    let token = sign(
        Algorithm::HS512,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &good_claims(),
    );
    assert_refused(&service, &seen, &token, JwtError::AlgorithmNotAllowed).await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker knows the public key and uses its PEM bytes as an
    // HMAC secret, hoping the verifier feeds "its key" to whatever `alg` says.
    let public_pem = fixture("rsa-public.pem");
    let forged = |kid: Option<&str>| {
        sign(
            Algorithm::HS256,
            kid,
            &EncodingKey::from_secret(&public_pem),
            &good_claims(),
        )
    };
    let (service, seen) = gateway(rsa_config());
    assert_refused(
        &service,
        &seen,
        &forged(None),
        JwtError::AlgorithmNotAllowed,
    )
    .await;

    let (service, seen) = gateway(
        JwtConfig::new()
            .key(JwtKey::rs256_pem(&public_pem).unwrap().kid("rsa-1"))
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    assert_refused(
        &service,
        &seen,
        &forged(Some("rsa-1")),
        JwtError::AlgorithmNotAllowed,
    )
    .await;

    // The same through a JWKS holding that RSA key.
    let (service, seen) = gateway(
        JwtConfig::new()
            .jwks(Jwks::from_file(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt/jwks-rsa.json"),
            ))
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    assert_refused(
        &service,
        &seen,
        &forged(Some("rsa-1")),
        JwtError::AlgorithmNotAllowed,
    )
    .await;

    // Beside an HS256 key of its own, the forged token meets only that key: a bad signature.
    let (service, seen) = gateway(hs_config().key(JwtKey::rs256_pem(&public_pem).unwrap()));
    assert_refused(&service, &seen, &forged(None), JwtError::BadSignature).await;
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let (service, seen) = gateway(hs_config());
    let other = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another secret of thirty-two bytes or more"),
        &good_claims(),
    );
    assert_refused(&service, &seen, &other, JwtError::BadSignature).await;

    // A payload swapped under a genuine signature (another subject).
    let genuine = hs256(&good_claims());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let swapped = b64(&with(good_claims(), "sub", json!("admin")));
    parts[1] = &swapped;
    assert_refused(&service, &seen, &parts.join("."), JwtError::BadSignature).await;

    // RS256 signed by another RSA key.
    let (service, seen) = gateway(rsa_config());
    let token = rs256("rsa2-private.pem", None, &good_claims());
    assert_refused(&service, &seen, &token, JwtError::BadSignature).await;
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (service, seen) = gateway(hs_config());
    for token in ["x", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.e30"] {
        assert_refused(&service, &seen, token, JwtError::Malformed).await;
    }
    // A header naming a critical extension this layer does not know, validly signed.
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".to_owned()]);
    let critical = jsonwebtoken::encode(
        &header,
        &good_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_refused(&service, &seen, &critical, JwtError::Malformed).await;
    for value in ["Basic dTpw", "Bearer", "Bearer   ", "bearer"] {
        let answer = send(&service, Some(value)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(answer.reason, Some(JwtError::Malformed), "{value}");
    }
    assert!(seen.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let (service, seen) = gateway(
        JwtConfig::new()
            .key(
                JwtKey::rs256_pem(&fixture("rsa-public.pem"))
                    .unwrap()
                    .kid("rsa-1"),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    let token = rs256("rsa-private.pem", Some("rsa-9"), &good_claims());
    assert_refused(&service, &seen, &token, JwtError::UnknownKey).await;
}

#[tokio::test]
async fn no_token_is_a_bare_challenge_and_two_are_a_400() {
    let (service, seen) = gateway(hs_config());
    let answer = send(&service, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge.as_deref(), Some("Bearer"));
    assert_eq!(answer.reason, Some(JwtError::Missing));

    let token = hs256(&good_claims());
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&body).contains(&token));
    assert!(seen.0.lock().unwrap().is_empty());
}

#[test]
fn short_hmac_secrets_and_no_keys_are_refused_when_building() {
    assert!(JwtKey::hs256(&SecretString::new("too short")).is_err());
    assert!(JwtLayer::new(JwtConfig::new()).is_err());
    let key = JwtKey::hs256(&SecretString::new(SECRET)).unwrap();
    assert!(
        !format!("{key:?}").contains("thirty-two"),
        "Debug shows the secret"
    );
}

// ---- the defence's good paths --------------------------------------------------------------

async fn assert_accepted(service: &Service, seen: &Seen, token: &str) {
    let answer = send(service, Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let last = seen
        .0
        .lock()
        .unwrap()
        .pop()
        .expect("the inner service was called");
    // The claims are the principal; the token itself goes no further.
    assert_eq!(last, (Some("u1".to_owned()), false));
}

#[tokio::test]
async fn valid_hs256_rs256_and_es256_tokens_are_accepted_as_claims() {
    let (service, seen) = gateway(
        hs_config()
            .key(JwtKey::rs256_pem(&fixture("rsa-public.pem")).unwrap())
            .key(JwtKey::es256_pem(&fixture("ec-public.pem")).unwrap()),
    );
    assert_accepted(&service, &seen, &hs256(&good_claims())).await;
    assert_accepted(
        &service,
        &seen,
        &rs256("rsa-private.pem", None, &good_claims()),
    )
    .await;
    assert_accepted(&service, &seen, &es256(None, &good_claims())).await;
    // Within the default 30 s of skew.
    assert_accepted(
        &service,
        &seen,
        &hs256(&with(good_claims(), "exp", json!(now() - 10))),
    )
    .await;
}

#[tokio::test]
async fn optional_lets_a_request_without_a_token_through_without_claims() {
    let (service, seen) = gateway(hs_config().optional(true));
    assert_eq!(send(&service, None).await.status, StatusCode::OK);
    assert_eq!(seen.0.lock().unwrap().pop(), Some((None, false)));
    // A token that is sent is still checked.
    let token = hs256(&with(good_claims(), "exp", json!(now() - 3600)));
    assert_eq!(
        send(&service, Some(&format!("Bearer {token}")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// A JWKS endpoint on loopback serving whichever document it is told to, counting fetches.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    document: Arc<Mutex<Vec<u8>>>,
}

async fn jwks_server(initial: &str) -> JwksServer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let document = Arc::new(Mutex::new(fixture(initial)));
    let (count, served) = (Arc::clone(&fetches), Arc::clone(&document));
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let body = served.lock().unwrap().clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer {
        url,
        fetches,
        document,
    }
}

#[tokio::test]
async fn an_unknown_kid_reloads_the_jwks_at_most_once_per_interval() {
    let server = jwks_server("jwks-rsa.json").await;
    let (service, seen) = service_with_jwks(&server.url, Duration::from_secs(3600));
    // The first request loads the set.
    assert_accepted(
        &service,
        &seen,
        &rs256("rsa-private.pem", Some("rsa-1"), &good_claims()),
    )
    .await;
    assert_accepted(&service, &seen, &es256(Some("ec-1"), &good_claims())).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // Made-up kids cannot make the gateway hammer the issuer: within the interval after the
    // last load, an unknown kid is refused without a fetch...
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let token = rs256("rsa-private.pem", Some(kid), &good_claims());
        assert_refused_quietly(&service, &token, JwtError::UnknownKey).await;
    }
    // ...and so is a key rotated in at the issuer, until the interval has passed.
    *server.document.lock().unwrap() = fixture("jwks-rotated.json");
    let rotated = rs256("rsa2-private.pem", Some("rsa-2"), &good_claims());
    assert_refused_quietly(&service, &rotated, JwtError::UnknownKey).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

fn service_with_jwks(url: &str, min_refresh: Duration) -> (Service, Seen) {
    gateway(
        JwtConfig::new()
            .jwks(
                Jwks::from_url(url)
                    .unwrap()
                    .min_refresh_interval(min_refresh),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE),
    )
}

async fn assert_refused_quietly(service: &Service, token: &str, reason: JwtError) {
    let answer = send(service, Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.reason, Some(reason));
}

#[tokio::test]
async fn an_unknown_kid_reloads_the_jwks_and_then_verifies() {
    let server = jwks_server("jwks-rsa.json").await;
    let (service, seen) = service_with_jwks(&server.url, Duration::ZERO);
    assert_accepted(
        &service,
        &seen,
        &rs256("rsa-private.pem", Some("rsa-1"), &good_claims()),
    )
    .await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    *server.document.lock().unwrap() = fixture("jwks-rotated.json");
    assert_accepted(
        &service,
        &seen,
        &rs256("rsa2-private.pem", Some("rsa-2"), &good_claims()),
    )
    .await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_jwks_file_is_reloaded_on_its_interval_and_a_removed_key_stops_working() {
    let dir = std::env::temp_dir().join(format!("tower-electric-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, fixture("jwks-rotated.json")).unwrap();
    let (service, seen) = gateway(
        JwtConfig::new()
            .jwks(
                Jwks::from_file(&path)
                    .refresh_every(Duration::ZERO)
                    .min_refresh_interval(Duration::ZERO),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    let old = rs256("rsa-private.pem", Some("rsa-1"), &good_claims());
    assert_accepted(&service, &seen, &old).await;

    // The issuer retires rsa-1: the next reload drops it.
    let only_new: Value = serde_json::from_slice(&fixture("jwks-rotated.json")).unwrap();
    let kept: Vec<Value> = only_new["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["kid"] != "rsa-1")
        .cloned()
        .collect();
    std::fs::write(&path, json!({ "keys": kept }).to_string()).unwrap();
    assert_refused_quietly(&service, &old, JwtError::UnknownKey).await;
    assert_accepted(
        &service,
        &seen,
        &rs256("rsa2-private.pem", Some("rsa-2"), &good_claims()),
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_preflight_without_credentials_goes_on_without_claims() {
    let (service, seen) = gateway(hs_config());
    let request = Request::options("/v1/shape?table=items&offset=-1")
        .body(Full::default())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.0.lock().unwrap().pop(), Some((None, false)));
    // A GET without credentials is still refused.
    assert_eq!(send(&service, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_jwks_url_is_reloaded_on_its_interval_and_a_failed_load_keeps_the_keys() {
    let server = jwks_server("jwks-rsa.json").await;
    let (service, seen) = gateway(
        JwtConfig::new()
            .jwks(
                Jwks::from_url(&server.url)
                    .unwrap()
                    .refresh_every(Duration::ZERO)
                    .min_refresh_interval(Duration::ZERO),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    let token = rs256("rsa-private.pem", Some("rsa-1"), &good_claims());
    assert_accepted(&service, &seen, &token).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // The issuer answers garbage for a while: the keys loaded before stay in use.
    *server.document.lock().unwrap() = b"<html>maintenance</html>".to_vec();
    assert_accepted(&service, &seen, &token).await;
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "no reload on the interval"
    );

    // Then it retires rsa-1: the next reload drops it.
    *server.document.lock().unwrap() =
        json!({"keys": [serde_json::from_slice::<Value>(&fixture("jwks-rotated.json")).unwrap()["keys"][1]]})
            .to_string()
            .into_bytes();
    assert_refused_quietly(&service, &token, JwtError::UnknownKey).await;
    let rotated = rs256("rsa2-private.pem", Some("rsa-2"), &good_claims());
    assert_accepted(&service, &seen, &rotated).await;
}

#[tokio::test]
async fn a_jwks_with_no_usable_key_is_a_failed_load_and_keeps_the_keys() {
    let server = jwks_server("jwks-rsa.json").await;
    let (service, seen) = gateway(
        JwtConfig::new()
            .jwks(
                Jwks::from_url(&server.url)
                    .unwrap()
                    .refresh_every(Duration::ZERO)
                    .min_refresh_interval(Duration::ZERO),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE),
    );
    let token = rs256("rsa-private.pem", Some("rsa-1"), &good_claims());
    assert_accepted(&service, &seen, &token).await;

    // A document that parses but holds no key (or none this layer can use) is not a rotation
    // to nothing: it is a broken issuer, and the keys loaded before stay in use.
    for empty in [
        json!({"keys": []}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}),
    ] {
        *server.document.lock().unwrap() = empty.to_string().into_bytes();
        let before = server.fetches.load(Ordering::SeqCst);
        assert_accepted(&service, &seen, &token).await;
        assert!(
            server.fetches.load(Ordering::SeqCst) > before,
            "no reload on the interval"
        );
    }
}

/// [`jwks_server`] behind TLS with `identity`, addressed as `https://localhost:<port>`.
#[cfg(feature = "tls")]
async fn jwks_server_tls(initial: &str, identity: tls_support::Identity) -> JwksServer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let document = Arc::new(Mutex::new(fixture(initial)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        tls_support::ServerTls::new(identity)
            .alpn(&[b"http/1.1"])
            .config(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        listener.local_addr().unwrap().port()
    );
    let (count, served) = (Arc::clone(&fetches), Arc::clone(&document));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, count, served) = (acceptor.clone(), count.clone(), served.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let body = Bytes::from(served.lock().unwrap().clone());
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "application/json")
                                    .body(Full::new(body))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    JwksServer {
        url,
        fetches,
        document,
    }
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn a_jwks_url_over_https_is_fetched_with_verification_and_its_keys_verify() {
    let ca = tls_support::Ca::new("tower-electric JWKS test CA");
    let server = jwks_server_tls("jwks-rsa.json", ca.server(&["localhost"])).await;
    let token = rs256("rsa-private.pem", Some("rsa-1"), &good_claims());
    let config = |jwks: Jwks| {
        JwtConfig::new()
            .jwks(jwks.min_refresh_interval(Duration::ZERO))
            .issuer(ISSUER)
            .audience(AUDIENCE)
    };

    // Mozilla's roots (the default) do not trust the test CA: no handshake, no keys.
    let (untrusting, _) = gateway(config(Jwks::from_url(&server.url).unwrap()));
    assert_refused_quietly(&untrusting, &token, JwtError::UnknownKey).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 0);

    // Trusting the CA, as PEM bytes or as a file: the set is fetched over TLS and verifies.
    let (service, seen) = gateway(config(
        Jwks::from_url(&server.url).unwrap().ca_pem(ca.pem.clone()),
    ));
    assert_accepted(&service, &seen, &token).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    let dir = tls_support::TempDir::new("jwks-ca");
    let ca_file = dir.write("ca.pem", &ca.pem);
    let (service, seen) = gateway(config(
        Jwks::from_url(&server.url).unwrap().ca_pem_file(&ca_file),
    ));
    assert_accepted(&service, &seen, &token).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[cfg(feature = "tls")]
#[test]
fn jwks_tls_settings_are_checked_when_building() {
    let build = |jwks: Jwks| JwtLayer::new(JwtConfig::new().jwks(jwks));
    let https = || Jwks::from_url("https://issuer.example/.well-known/jwks.json").unwrap();
    assert!(build(https()).is_ok());
    assert!(build(https().ca_pem("not a certificate")).is_err());
    assert!(build(https().ca_pem_file("/nonexistent/ca.pem")).is_err());
    // A CA for a URL that makes no handshake is refused, not ignored.
    let http = Jwks::from_url("http://127.0.0.1:1/jwks.json").unwrap();
    assert!(build(http.ca_pem(tls_support::Ca::new("unused").pem)).is_err());
}
