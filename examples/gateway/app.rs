//! The gateway's router, shared by `cargo run --example gateway`, the encryption example and
//! the end-to-end tests.
//!
//! `/v1/shape`, outermost first: [`TelemetryLayer`] (a span per request, the request
//! metrics) → CORS (the only CORS policy: Electric's own CORS headers are removed from its
//! responses) → [`IpAllowLayer`] → demo auth (a [`Tenant`] into the extensions) →
//! [`ShapeParamPolicyLayer`] → [`CompressionLayer`] (gzip or br to clients that accept them) →
//! [`BodyTransformLayer`] (decrypt the tenant's encrypted columns; left out when the gateway
//! has no tenant keys, so that values pass as stored) → [`ApiTokenLayer`] (inject Electric's
//! secret, and Electric Cloud's `source_id`) → [`ElectricUpstream`].
//! The secret is added innermost, so no layer (nor a transform's setup, which sees the request)
//! ever holds a URI with Electric's secret in it.
//!
//! `POST /api/items` (only when the gateway fronts the in-process stand-in, with keys): the demo app's
//! write API. The same auth, then [`RequestBodyTransformLayer`] encrypts the protected columns
//! with the tenant's key before the row reaches the database (the stand-in).
//!
//! Several example and test crates include this file; not every one uses every item.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::routing::{any_service, get, post_service};
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use http::request::Parts;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::util::{Either, MapResponseLayer};
use tower::{Layer, Service, ServiceBuilder};
use tower_electric::ip::{ClientIpSource, IpAllowLayer, IpLists};
use tower_electric::policy::{PolicyError, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::protocol::headers::EXPOSE_HEADERS;
use tower_electric::rejection::Rejection;
use tower_electric::testing::{ElectricStandIn, Row};
use tower_electric::token::{ApiTokenLayer, InjectSecret, RequireToken};
use tower_electric::transform::JsonBody;
use tower_electric::{
    BodyTransformLayer, ElectricUpstream, RequestBodyTransformLayer, TelemetryLayer,
};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::columns::{Tenant, TenantKeys};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The columns the demo keeps encrypted at rest.
pub(crate) const ENCRYPTED_COLUMNS: &[&str] = &["title"];

/// Everything the gateway is built from.
#[derive(Clone)]
pub(crate) struct GatewayConfig {
    /// Electric's base URL.
    pub(crate) electric_url: String,
    /// Talk to Electric over h2c instead of HTTP/1.1.
    pub(crate) upstream_http2: bool,
    /// PEM files for an `https://` Electric.
    pub(crate) upstream_tls: UpstreamTls,
    /// Electric's secret (and Electric Cloud's source id), injected upstream.
    pub(crate) secret: InjectSecret,
    /// Demo bearer tokens → tenant.
    pub(crate) tokens: Arc<HashMap<String, String>>,
    /// The network rule.
    pub(crate) lists: IpLists,
    /// Tokens of trusted callers for `/internal/v1/shape`, if that route is wanted.
    pub(crate) require_tokens: Option<RequireToken>,
    /// The tenants' keys for the encrypted columns. `None`: nothing is decrypted, values pass
    /// as Electric stores them (a gateway in front of an Electric whose data is not the
    /// demo's ciphertext), and there is no write route.
    pub(crate) keys: Option<TenantKeys>,
    /// The demo app's database for `POST /api/items`, when it is the in-process stand-in.
    pub(crate) writes: Option<ElectricStandIn>,
}

/// PEM files for an `https://` Electric: a CA trusted beside the web roots (a self-hosted
/// Electric with a private CA), and a client certificate and key (mTLS).
#[derive(Debug, Default, Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) ca_file: Option<std::path::PathBuf>,
    pub(crate) client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The gateway's router.
pub(crate) fn router(config: GatewayConfig) -> Result<Router, BoxError> {
    let mut upstream =
        ElectricUpstream::builder(config.electric_url).http2_only(config.upstream_http2);
    if let Some(ca) = &config.upstream_tls.ca_file {
        upstream = upstream.ca_pem_file(ca);
    }
    if let Some((cert, key)) = &config.upstream_tls.client_identity {
        upstream = upstream.client_identity_pem_files(cert, key);
    }
    let upstream = upstream.build()?;
    let policy = policy()?;

    let ip_allow = IpAllowLayer::new(config.lists).client_ip_source(ClientIpSource::XForwardedFor);
    let auth = DemoAuthLayer {
        tokens: config.tokens,
        required: false,
    };
    // Both arms answer `Response<Body>`, so the stack has one type with or without decryption.
    let decrypt = match config.keys.clone() {
        Some(keys) => Either::Left(
            ServiceBuilder::new()
                // Boxed: an `Either`'s future is as large as its larger arm's, and the
                // transform's is 1.7 KiB, which every request would otherwise carry through
                // the layers outside, decrypting or not.
                .map_future(FutureExt::boxed)
                .map_response(into_body)
                .layer(BodyTransformLayer::new(keys))
                .into_inner(),
        ),
        None => Either::Right(MapResponseLayer::new(into_body)),
    };
    let shape = ServiceBuilder::new()
        .layer(TelemetryLayer::new())
        .layer(cors())
        .map_response(without_upstream_cors)
        .layer(ip_allow.clone())
        .layer(auth.clone())
        .layer(ShapeParamPolicyLayer::new(policy))
        // tower-http's compressing body holds its encoders inline (5.8 KiB); boxed here, the
        // response types of every layer outside stay small, and so does what each held
        // long-poll keeps (an inline one cost 7 KiB per poll: benches/longpoll.sh).
        .map_response(into_body)
        .layer(compression())
        .layer(decrypt)
        .layer(ApiTokenLayer::inject(config.secret.clone()))
        .service(upstream.clone());

    let mut router = Router::new()
        .route("/v1/shape", any_service(shape))
        .route("/health", get(|| async { "ok" }));

    if let (Some(database), Some(keys)) = (config.writes, config.keys) {
        let write = ServiceBuilder::new()
            .layer(cors())
            .layer(ip_allow.clone())
            // A write without a tenant has no key: refuse it here, not as a 502 of the
            // encryption layer.
            .layer(DemoAuthLayer {
                required: true,
                ..auth
            })
            .layer(RequestBodyTransformLayer::new(keys))
            .service(InsertItem { database });
        router = router.route("/api/items", post_service(write));
    }

    if let Some(require) = config.require_tokens {
        // Trusted callers: their token is checked and removed, Electric's secret injected; no
        // tenant policy, so only give these tokens to infrastructure you trust with all rows.
        let internal = ServiceBuilder::new()
            .layer(ip_allow)
            .layer(ApiTokenLayer::require(require).and_inject(config.secret))
            .service(upstream);
        router = router.route("/internal/v1/shape", any_service(internal));
    }
    Ok(router)
}

/// The shape policy: each tenant sees its own `items` (never `internal_note`), with its own
/// where and subsets, and its own `tenants` row; no other table.
pub(crate) fn policy() -> Result<ShapePolicy, PolicyError> {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(["id", "tenant_id", "title", "done"])
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .table(
            TablePolicy::new("tenants")
                .columns(["id", "name", "keys"])
                .row_filter("id = $1", tenant),
        )
        .build()
}

/// The row filter's value: the caller's tenant, or none (the policy answers 401).
fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Tenant>()
        .map(|tenant| vec![tenant.0.clone()])
}

/// gzip or br, as the client accepts, of what the transform wrote: inside it the body is the
/// identity bytes the transform asked Electric for (`accept-encoding: identity`). Inside the
/// policy, so that its `Vary` (the credential headers) and this layer's `accept-encoding` end
/// up in one merged `Vary`. A held long-poll costs nothing here: the encoder is made when
/// Electric answers.
///
/// tower-http's default predicate leaves `text/event-stream` alone, and it must: a compressor
/// holds bytes back until it has enough to compress, and an SSE frame has to go out as it is
/// written (and so do Electric's keep-alive comments). It also skips tiny bodies and responses
/// Electric compressed itself (a gateway without keys forwards the client's `accept-encoding`).
fn compression() -> CompressionLayer {
    // gzip and br: the codecs of the features this example enables.
    CompressionLayer::new()
}

/// CORS for browser clients: any origin, `Authorization` allowed, Electric's headers exposed.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            http::HeaderName::from_static("traceparent"),
        ])
        .expose_headers(EXPOSE_HEADERS.map(http::HeaderName::from_static))
}

/// A response with its body boxed as axum's.
fn into_body<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(Body::new)
}

/// Removes the CORS headers Electric sets itself (`*` without an `Origin`, its own method
/// list), so that the gateway's CORS layer, just outside, is the only CORS policy a browser
/// sees.
fn without_upstream_cors<B>(mut response: Response<B>) -> Response<B> {
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        response.headers_mut().remove(name);
    }
    response
}

/// The demo's own authentication: `Authorization: Bearer <token>` → a [`Tenant`].
///
/// A real app uses its own (sessions, JWTs); all the policy needs is a principal in the
/// extensions. A wrong token is a 401 here; no token is a 401 here too when `required`, and
/// otherwise goes on without a principal (the policy answers 401 for the tables that need one).
#[derive(Clone)]
pub(crate) struct DemoAuthLayer {
    tokens: Arc<HashMap<String, String>>,
    required: bool,
}

impl<S> Layer<S> for DemoAuthLayer {
    type Service = DemoAuth<S>;
    fn layer(&self, inner: S) -> DemoAuth<S> {
        DemoAuth {
            inner,
            tokens: self.tokens.clone(),
            required: self.required,
        }
    }
}

#[derive(Clone)]
pub(crate) struct DemoAuth<S> {
    inner: S,
    tokens: Arc<HashMap<String, String>>,
    required: bool,
}

impl<S, ResBody> Service<Request<Body>> for DemoAuth<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<Response<ResBody>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let tenant = match request.headers().get(header::AUTHORIZATION) {
            Some(value) => bearer(value)
                .and_then(|token| self.tokens.get(token))
                .map(|tenant| Some(tenant.clone()))
                .ok_or("Unknown bearer token"),
            None if self.required => Err("A bearer token is required"),
            None => Ok(None),
        };
        match tenant {
            Ok(tenant) => {
                if let Some(tenant) = tenant {
                    request.extensions_mut().insert(Tenant(tenant));
                }
                futures_util::future::Either::Left(self.inner.call(request))
            }
            Err(message) => {
                let refusal = Rejection::unauthorized()
                    .with_message(message)
                    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                futures_util::future::Either::Right(std::future::ready(Ok(refusal.into_response())))
            }
        }
    }
}

fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `POST /api/items`: the demo app's write API. The body is `{"id": .., "title": .., "done": ..}`
/// with `title` already encrypted by the layer in front; the row is written for the caller's
/// tenant, whatever the body says.
#[derive(Clone)]
struct InsertItem {
    database: ElectricStandIn,
}

impl Service<Request<JsonBody>> for InsertItem {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<JsonBody>) -> Self::Future {
        let database = self.database.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Some(Tenant(tenant)) = parts.extensions.get::<Tenant>().cloned() else {
                return Ok(Rejection::unauthorized().into_response());
            };
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let row = match item_row(&bytes, &tenant) {
                Ok(row) => row,
                Err(field) => {
                    return Ok(Rejection::invalid_request()
                        .with_field_error(field, "is missing or not a string/number/bool")
                        .into_response())
                }
            };
            match database.insert("items", row) {
                Ok(_) => Ok(Response::builder()
                    .status(StatusCode::CREATED)
                    .body(Body::empty())
                    .unwrap_or_default()),
                Err(_) => Ok(Rejection::invalid_request()
                    .with_message("The item could not be written")
                    .into_response()),
            }
        })
    }
}

/// The row to insert: `id`, `title`, `done` from the body as Postgres text, `tenant_id` from
/// the caller; `Err(field)` names the first field that is missing or of the wrong kind.
fn item_row(body: &[u8], tenant: &str) -> Result<Row, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "body")?;
    let text = |field: &'static str| match value.get(field) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
        Some(serde_json::Value::Bool(flag)) => Ok(flag.to_string()),
        _ => Err(field),
    };
    Ok(Row::new()
        .with("id", text("id")?)
        .with("tenant_id", tenant)
        .with("title", text("title")?)
        .with("done", text("done").unwrap_or_else(|_| "false".into())))
}

/// Demo tokens from `token=tenant,token=tenant`.
pub(crate) fn parse_tokens(text: &str) -> Result<Arc<HashMap<String, String>>, BoxError> {
    let mut tokens = HashMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (token, tenant) = entry
            .split_once('=')
            .ok_or("GATEWAY_TOKENS entries are token=tenant")?;
        tokens.insert(token.trim().to_owned(), tenant.trim().to_owned());
    }
    Ok(Arc::new(tokens))
}

/// Encrypts the demo rows' protected columns at rest, each with its tenant's key, the way the
/// write path would have stored them.
pub(crate) fn encrypt_at_rest(
    database: &ElectricStandIn,
    keys: &TenantKeys,
) -> Result<(), BoxError> {
    for row in database.rows("items")? {
        if let Some(encrypted) = encrypt_row(&row, keys)? {
            database.update("items", encrypted)?;
        }
    }
    Ok(())
}

/// The row with its protected columns encrypted with its tenant's key; `None` for a row
/// without a tenant.
pub(crate) fn encrypt_row(row: &Row, keys: &TenantKeys) -> Result<Option<Row>, BoxError> {
    let Some(Some(tenant)) = row.get("tenant_id") else {
        return Ok(None);
    };
    let cipher = keys.cipher_for_tenant(tenant)?;
    let mut encrypted = Row::new();
    for (column, value) in row.iter() {
        match value {
            Some(text) if ENCRYPTED_COLUMNS.contains(&column) => {
                encrypted = encrypted.with(column, cipher.encrypt(column, text)?);
            }
            Some(text) => encrypted = encrypted.with(column, text),
            None => encrypted = encrypted.with_null(column),
        }
    }
    Ok(Some(encrypted))
}

/// The tenants' keys from `TENANT_KEYS` (`tenant=<64 hex digits>,...`), if it is set.
pub(crate) fn tenant_keys_from_env() -> Result<Option<TenantKeys>, BoxError> {
    let Ok(text) = std::env::var("TENANT_KEYS") else {
        return Ok(None);
    };
    let mut keys = HashMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (tenant, hex) = entry
            .split_once('=')
            .ok_or("TENANT_KEYS entries are tenant=hex")?;
        keys.insert(tenant.trim().to_owned(), key_from_hex(hex.trim())?);
    }
    Ok(Some(TenantKeys::new(keys, ENCRYPTED_COLUMNS)))
}

/// A random key for each tenant, for this run.
pub(crate) fn random_tenant_keys<'a>(
    tenants: impl Iterator<Item = &'a String>,
) -> Result<TenantKeys, BoxError> {
    let mut keys = HashMap::new();
    for tenant in tenants {
        keys.insert(tenant.clone(), key_from_hex(&random_hex(32))?);
    }
    Ok(TenantKeys::new(keys, ENCRYPTED_COLUMNS))
}

/// Electric Cloud's source id from `ELECTRIC_SOURCE_ID`, if it is set; set but empty is an
/// error rather than a request Cloud would refuse.
pub(crate) fn source_id_from_env() -> Result<Option<String>, BoxError> {
    match std::env::var("ELECTRIC_SOURCE_ID") {
        Ok(id) if id.trim().is_empty() => Err("ELECTRIC_SOURCE_ID is set but empty".into()),
        Ok(id) => Ok(Some(id.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err("ELECTRIC_SOURCE_ID is not Unicode".into()),
    }
}

fn key_from_hex(hex: &str) -> Result<[u8; 32], BoxError> {
    let mut key = [0u8; 32];
    if hex.len() != 64 {
        return Err("a tenant key is 64 hex digits".into());
    }
    for (index, byte) in key.iter_mut().enumerate() {
        let digits = hex
            .get(index * 2..index * 2 + 2)
            .ok_or("a tenant key is 64 hex digits")?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| "a tenant key is 64 hex digits")?;
    }
    Ok(key)
}

/// `len` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(len: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; len];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A duration in milliseconds from the environment, if set.
pub(crate) fn env_millis(name: &str) -> Result<Option<std::time::Duration>, BoxError> {
    match std::env::var(name) {
        Ok(text) => {
            let millis: u64 = text
                .trim()
                .parse()
                .map_err(|_| format!("{name} is a number of milliseconds"))?;
            Ok(Some(std::time::Duration::from_millis(millis)))
        }
        Err(_) => Ok(None),
    }
}
