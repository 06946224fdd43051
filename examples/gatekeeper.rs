//! Electric's gatekeeper pattern: the app checks once who may see which shape and hands out a
//! short-lived token naming it; the proxy only checks that each request is that shape.
//!
//! ```sh
//! cargo run --example gatekeeper
//! ```
//!
//! Routes:
//! - `POST /gatekeeper/{table}`: the app's own check (demo users, `Authorization: Bearer
//!   alice-token`), then an HS256 token for that user's shape of `table` (`items`: the user's
//!   tenant's items without `internal_note`; `tenants`: its own row), valid for
//!   `GATEKEEPER_TOKEN_TTL_SECS` (default 300). The answer is the options Electric's
//!   TypeScript client takes: `{"url", "headers": {"authorization"}, "params": {table, where,
//!   params, columns}}`, so `new ShapeStream({...answer})` syncs.
//! - `GET /v1/shape`: CORS → [`JwtLayer`] (the signing key, issuer and audience of these tokens)
//!   → [`RevocationLayer`](tower_electric::revocation::RevocationLayer) →
//!   [`ShapeParamPolicyLayer`] with [`GatekeeperPolicy`] → [`ApiTokenLayer`] (Electric's secret)
//!   → [`ElectricUpstream`]. No session or database lookup on this path.
//! - `POST /admin/revoke/{sub}`, `POST /admin/restore/{sub}` with `Authorization: Bearer
//!   <ADMIN_TOKEN>`: cut a user off (their held long-polls and SSE streams end at once, their
//!   next request is a 401), or let them in again.
//!
//! Environment: `LISTEN_ADDR` (default `127.0.0.1:3002`); `ELECTRIC_URL` and
//! `ELECTRIC_SECRET` (unset: an in-process stand-in with demo data); `GATEKEEPER_SIGNING_KEY`
//! (default: random for this run); `GATEKEEPER_USERS` (default
//! `alice-token=alice@acme,bob-token=bob@globex`: demo bearer token = user @ tenant, **demo
//! only**); `ADMIN_TOKEN` (default: random, printed).
#![allow(clippy::print_stdout, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any_service, post};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_electric::jwt::{sign_hs256, JwtConfig, JwtKey, JwtLayer};
use tower_electric::policy::{GatekeeperPolicy, ShapeParamPolicyLayer};
use tower_electric::protocol::headers::EXPOSE_HEADERS;
use tower_electric::rejection::Rejection;
use tower_electric::revocation::Revocations;
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::{ElectricUpstream, SecretString};
use tower_http::cors::{AllowOrigin, CorsLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `iss` of the tokens this app issues, and the only one its proxy accepts.
pub(crate) const ISSUER: &str = "tower-electric-gatekeeper-example";
/// The `aud` of those tokens: this proxy.
pub(crate) const AUDIENCE: &str = "electric-shape-proxy";

/// A demo user: who they are and which tenant's data they may see.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) subject: String,
    pub(crate) tenant: String,
}

/// Everything the gatekeeper app is built from.
pub(crate) struct GatekeeperConfig {
    /// Electric's base URL.
    pub(crate) electric_url: String,
    /// Electric's secret, injected upstream.
    pub(crate) secret: InjectSecret,
    /// The HS256 key tokens are signed and verified with.
    pub(crate) signing_key: SecretString,
    /// Demo bearer tokens → users (the app's own login, stood in for).
    pub(crate) users: Arc<HashMap<String, User>>,
    /// The token for `/admin/*`.
    pub(crate) admin_token: SecretString,
    /// How long an issued token is valid.
    pub(crate) token_ttl: Duration,
    /// Who is cut off.
    pub(crate) revocations: Revocations,
}

#[derive(Clone)]
struct Issuer {
    signing_key: SecretString,
    users: Arc<HashMap<String, User>>,
    admin_token: SecretString,
    token_ttl: Duration,
    revocations: Revocations,
}

/// The app: the gatekeeper endpoint, the admin endpoints and the shape proxy.
pub(crate) fn router(config: GatekeeperConfig) -> Result<Router, BoxError> {
    let jwt = JwtLayer::new(
        JwtConfig::new()
            .key(JwtKey::hs256(&config.signing_key)?)
            .issuer(ISSUER)
            .audience(AUDIENCE),
    )?;
    let shape = ServiceBuilder::new()
        .layer(cors())
        .map_response(|response: Response<_>| without_upstream_cors(response.map(Body::new)))
        .layer(jwt)
        .layer(config.revocations.layer())
        .layer(ShapeParamPolicyLayer::new(GatekeeperPolicy::new()))
        .layer(ApiTokenLayer::inject(config.secret))
        .service(ElectricUpstream::new(config.electric_url)?);
    let issuer = Issuer {
        signing_key: config.signing_key,
        users: config.users,
        admin_token: config.admin_token,
        token_ttl: config.token_ttl,
        revocations: config.revocations,
    };
    let app = Router::new()
        .route("/gatekeeper/{table}", post(gatekeeper))
        .route("/admin/{action}/{subject}", post(admin))
        .layer(cors())
        .with_state(issuer);
    Ok(app.route("/v1/shape", any_service(shape)))
}

/// CORS for browser clients: `Authorization` allowed, Electric's headers exposed.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers(EXPOSE_HEADERS.map(http::HeaderName::from_static))
}

/// Electric's own CORS headers removed, so that the app's CORS layer, just outside, is the
/// only CORS policy a browser sees.
fn without_upstream_cors(mut response: Response<Body>) -> Response<Body> {
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        response.headers_mut().remove(name);
    }
    response
}

/// The shape a user may see of a table: the app's authorization decision, made here once
/// instead of on every shape request.
struct Grant {
    table: &'static str,
    where_clause: &'static str,
    params: Vec<String>,
    columns: &'static [&'static str],
}

impl Grant {
    fn of(user: &User, table: &str) -> Option<Self> {
        match table {
            "items" => Some(Self {
                table: "items",
                where_clause: "tenant_id = $1",
                params: vec![user.tenant.clone()],
                columns: &["id", "tenant_id", "title", "done"],
            }),
            "tenants" => Some(Self {
                table: "tenants",
                where_clause: "id = $1",
                params: vec![user.tenant.clone()],
                columns: &["id", "name"],
            }),
            _ => None,
        }
    }

    /// The `shape` claim, laid out as Electric's gatekeeper example signs it.
    fn claim(&self) -> Value {
        json!({
            "namespace": null,
            "table": self.table,
            "where": self.where_clause,
            "params": self.params,
            "columns": self.columns,
        })
    }

    /// The TS client's `params` option for the same shape: it sends `params` as `params[n]`
    /// and `columns` quoted and comma-separated; the policy compares them with the claim as
    /// parsed forms.
    fn client_params(&self) -> Value {
        let params: serde_json::Map<String, Value> = self
            .params
            .iter()
            .enumerate()
            .map(|(index, value)| ((index + 1).to_string(), value.clone().into()))
            .collect();
        json!({
            "table": self.table,
            "where": self.where_clause,
            "params": params,
            "columns": self.columns,
        })
    }
}

/// `POST /gatekeeper/{table}`: the app's own check, then a token for that shape.
async fn gatekeeper(
    State(issuer): State<Issuer>,
    Path(table): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let Some(user) = bearer(&headers).and_then(|token| issuer.users.get(token)) else {
        return Rejection::unauthorized()
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            .into_response();
    };
    let Some(grant) = Grant::of(user, &table) else {
        return Rejection::forbidden()
            .with_message("table is not allowed")
            .into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.subject,
        "jti": random_hex(16),
        "iat": now,
        "nbf": now,
        "exp": now + issuer.token_ttl.as_secs(),
        "shape": grant.claim(),
    });
    let token = match sign_hs256(&issuer.signing_key, &claims) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "could not sign a gatekeeper token");
            return Rejection::bad_gateway().into_response();
        }
    };
    // Where the client reached this app is where the proxy is (demo: from `Host`).
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    let options = json!({
        "url": format!("http://{host}/v1/shape"),
        "headers": {"authorization": format!("Bearer {}", token.expose())},
        "params": grant.client_params(),
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            // A token is a credential: no cache may keep it.
            (header::CACHE_CONTROL, "no-store"),
        ],
        options.to_string(),
    )
        .into_response()
}

/// `POST /admin/{revoke|restore}/{subject}`: cut a user off, or let them in again.
async fn admin(
    State(issuer): State<Issuer>,
    Path((action, subject)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response<Body> {
    let admin = bearer(&headers).is_some_and(|token| {
        constant_time_eq(token.as_bytes(), issuer.admin_token.expose().as_bytes())
    });
    if !admin {
        return Rejection::unauthorized().into_response();
    }
    match action.as_str() {
        "revoke" => issuer.revocations.revoke_subject(subject),
        "restore" => {
            issuer.revocations.restore_subject(&subject);
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    sha2::Sha256::digest(a)
        .ct_eq(&sha2::Sha256::digest(b))
        .into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Demo users from `token=user@tenant,...`.
pub(crate) fn parse_users(text: &str) -> Result<Arc<HashMap<String, User>>, BoxError> {
    let mut users = HashMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (token, user) = entry
            .split_once('=')
            .ok_or("GATEKEEPER_USERS entries are token=user@tenant")?;
        let (subject, tenant) = user
            .split_once('@')
            .ok_or("GATEKEEPER_USERS entries are token=user@tenant")?;
        users.insert(
            token.trim().to_owned(),
            User {
                subject: subject.trim().to_owned(),
                tenant: tenant.trim().to_owned(),
            },
        );
    }
    Ok(Arc::new(users))
}

/// `len` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(len: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; len];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_electric=debug".into()),
        )
        .init();
    let listen: SocketAddr = env_or("LISTEN_ADDR", "127.0.0.1:3002").parse()?;
    let users = parse_users(&env_or(
        "GATEKEEPER_USERS",
        "alice-token=alice@acme,bob-token=bob@globex",
    ))?;
    let signing_key = SecretString::new(
        std::env::var("GATEKEEPER_SIGNING_KEY").unwrap_or_else(|_| random_hex(32)),
    );
    let admin_token = env_or("ADMIN_TOKEN", &random_hex(16));
    let token_ttl = Duration::from_secs(env_or("GATEKEEPER_TOKEN_TTL_SECS", "300").parse()?);

    let (electric_url, secret, _stand_in) = match std::env::var("ELECTRIC_URL") {
        Ok(url) => (url, InjectSecret::from_env("ELECTRIC_SECRET")?, None),
        Err(_) => {
            let secret = random_hex(16);
            let database = ElectricStandIn::builder()
                .electric_timing()
                .secret(secret.clone())
                .with_demo_data()
                .build();
            let server = database.serve().await?;
            println!("Electric stand-in with demo data at {}", server.url());
            let url = server.url().to_owned();
            (
                url,
                InjectSecret::new(SecretString::new(secret))?,
                Some(server),
            )
        }
    };
    let router = router(GatekeeperConfig {
        electric_url: electric_url.clone(),
        secret,
        signing_key,
        users,
        admin_token: SecretString::new(admin_token.clone()),
        token_ttl,
        revocations: Revocations::new(),
    })?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    println!("Gatekeeper on http://{local} in front of {electric_url}");
    println!("Admin token (demo only): {admin_token}");
    println!("Try:");
    println!(
        "  curl -s -X POST http://{local}/gatekeeper/items -H 'Authorization: Bearer alice-token'"
    );
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1&where=tenant_id%20%3D%20%241&params%5B1%5D=acme&columns=id,tenant_id,title,done' -H 'Authorization: Bearer <token>'");
    println!("  curl -i -X POST http://{local}/admin/revoke/alice -H 'Authorization: Bearer {admin_token}'");
    axum::serve(listener, router).await?;
    Ok(())
}
