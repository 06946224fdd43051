//! The example gateway: an authorizing proxy in front of Electric, built from this crate's
//! layers on an axum router.
//!
//! ```sh
//! cargo run --example gateway
//! ```
//!
//! Configuration (environment):
//! - `LISTEN_ADDR` (default `127.0.0.1:3001`): where the gateway listens.
//! - `ELECTRIC_URL`: Electric's base URL. Unset, an in-process Electric stand-in is started,
//!   seeded with demo data and requiring a random `ELECTRIC_SECRET`.
//! - `ELECTRIC_SECRET`: Electric's API secret, injected into every upstream request.
//! - `GATEWAY_TOKENS` (default `alice-token=acme,bob-token=globex`): demo bearer tokens and the
//!   tenant each one is. **Demo only**: a real app puts its own authentication here.
//! - `ALLOW_CIDRS` (default `127.0.0.0/8,::1/128`), `TRUSTED_PROXIES` (default empty): the
//!   network rule; forwarding headers are read only from trusted proxies.
//! - `GATEWAY_REQUIRE_TOKEN`: if set, `/internal/v1/shape` serves trusted callers (server-side
//!   sync jobs) that present one of these comma-separated tokens, without the tenant policy.
//!
//! The stack of `/v1/shape`, outermost first:
//! CORS → IpAllowLayer → demo auth (principal into extensions) → ShapeParamPolicyLayer →
//! ApiTokenLayer (inject) → BodyTransformLayer → ElectricUpstream.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::routing::{any_service, get};
use axum::Router;
use http::request::Parts;
use http::{header, HeaderValue, Method, Request};
use tower::{Layer, Service, ServiceBuilder};
use tower_electric::ip::{ClientIpSource, IpAllowLayer, IpLists};
use tower_electric::policy::{ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::protocol::headers::EXPOSE_HEADERS;
use tower_electric::rejection::Rejection;
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{ApiTokenLayer, InjectSecret, RequireToken};
use tower_electric::{ElectricUpstream, SecretString};
use tower_http::cors::{AllowOrigin, CorsLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Who the demo auth says the caller is; the policy reads it from the extensions.
#[derive(Debug, Clone)]
struct Principal {
    tenant: String,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_electric=debug".into()),
        )
        .init();

    let listen: SocketAddr = env_or("LISTEN_ADDR", "127.0.0.1:3001").parse()?;
    let (electric_url, secret, _stand_in) = match std::env::var("ELECTRIC_URL") {
        Ok(url) => (url, InjectSecret::from_env("ELECTRIC_SECRET")?, None),
        Err(_) => {
            let secret = std::env::var("ELECTRIC_SECRET").unwrap_or_else(|_| random_token());
            let server = ElectricStandIn::builder()
                .electric_timing()
                .secret(secret.clone())
                .with_demo_data()
                .build()
                .serve()
                .await?;
            println!("Electric stand-in with demo data at {}", server.url());
            let url = server.url().to_owned();
            (
                url,
                InjectSecret::new(SecretString::new(secret))?,
                Some(server),
            )
        }
    };
    let tokens = parse_tokens(&env_or(
        "GATEWAY_TOKENS",
        "alice-token=acme,bob-token=globex",
    ))?;

    let app = gateway(GatewayConfig {
        electric_url: electric_url.clone(),
        secret,
        tokens: tokens.clone(),
        lists: IpLists::new()
            .allow(env_or("ALLOW_CIDRS", "127.0.0.0/8,::1/128"))?
            .trust_proxies(env_or("TRUSTED_PROXIES", ""))?,
        require_tokens: match std::env::var("GATEWAY_REQUIRE_TOKEN") {
            Ok(_) => Some(RequireToken::from_env("GATEWAY_REQUIRE_TOKEN")?),
            Err(_) => None,
        },
    })?;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    println!("Gateway on http://{local} in front of {electric_url}");
    println!("Demo tokens (demo only): {}", describe_tokens(&tokens));
    println!("Try:");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1' -H 'Authorization: Bearer alice-token'");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1&where=done%20%3D%20false' -H 'Authorization: Bearer bob-token'");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1&columns=id,internal_note' -H 'Authorization: Bearer alice-token'   # 403");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1'   # 401");

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Everything the gateway is built from.
struct GatewayConfig {
    electric_url: String,
    secret: InjectSecret,
    tokens: Arc<HashMap<String, String>>,
    lists: IpLists,
    require_tokens: Option<RequireToken>,
}

/// The gateway's router.
fn gateway(config: GatewayConfig) -> Result<Router, BoxError> {
    let upstream = ElectricUpstream::new(config.electric_url)?;

    let policy = ShapePolicy::builder()
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
        .build()?;

    let shape = ServiceBuilder::new()
        .layer(cors())
        .layer(
            IpAllowLayer::new(config.lists.clone()).client_ip_source(ClientIpSource::XForwardedFor),
        )
        .layer(DemoAuthLayer {
            tokens: config.tokens,
        })
        .layer(ShapeParamPolicyLayer::new(policy))
        .layer(ApiTokenLayer::inject(config.secret.clone()))
        .service(upstream.clone());

    let mut router = Router::new()
        .route("/v1/shape", any_service(shape))
        .route("/health", get(|| async { "ok" }));

    if let Some(require) = config.require_tokens {
        // Trusted callers: their token is checked and removed, Electric's secret injected; no
        // tenant policy, so only give these tokens to infrastructure you trust with all rows.
        let internal = ServiceBuilder::new()
            .layer(IpAllowLayer::new(config.lists).client_ip_source(ClientIpSource::XForwardedFor))
            .layer(ApiTokenLayer::require(require).and_inject(config.secret))
            .service(upstream);
        router = router.route("/internal/v1/shape", any_service(internal));
    }
    Ok(router)
}

/// The row filter's value: the principal's tenant, or no principal (a 401).
fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|principal| vec![principal.tenant.clone()])
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

/// The demo's own authentication: `Authorization: Bearer <token>` → a [`Principal`].
///
/// A real app uses its own (sessions, JWTs); all the policy needs is a principal in the
/// extensions. A wrong token is a 401 here; no token goes on without a principal and the policy
/// answers 401 for the tables that need one.
#[derive(Clone)]
struct DemoAuthLayer {
    tokens: Arc<HashMap<String, String>>,
}

impl<S> Layer<S> for DemoAuthLayer {
    type Service = DemoAuth<S>;
    fn layer(&self, inner: S) -> DemoAuth<S> {
        DemoAuth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Clone)]
struct DemoAuth<S> {
    inner: S,
    tokens: Arc<HashMap<String, String>>,
}

impl<S, ResBody> Service<Request<Body>> for DemoAuth<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>>,
    ResBody: From<bytes::Bytes>,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<http::Response<ResBody>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if let Some(value) = request.headers().get(header::AUTHORIZATION) {
            let tenant = bearer(value).and_then(|token| self.tokens.get(token));
            match tenant {
                Some(tenant) => {
                    let principal = Principal {
                        tenant: tenant.clone(),
                    };
                    request.extensions_mut().insert(principal);
                }
                None => {
                    let refusal = Rejection::unauthorized()
                        .with_message("Unknown bearer token")
                        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return futures_util::future::Either::Right(std::future::ready(Ok(
                        refusal.into_response()
                    )));
                }
            }
        }
        futures_util::future::Either::Left(self.inner.call(request))
    }
}

fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn parse_tokens(text: &str) -> Result<Arc<HashMap<String, String>>, BoxError> {
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

fn describe_tokens(tokens: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = tokens
        .iter()
        .map(|(t, tenant)| format!("{t} → {tenant}"))
        .collect();
    pairs.sort();
    pairs.join(", ")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// 128 random bits from the OS, hex-encoded: the stand-in's secret when none is given.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: fall back to the std hasher's per-process random keys.
        use std::hash::{BuildHasher, RandomState};
        let state = RandomState::new();
        bytes[..8].copy_from_slice(&state.hash_one(1u8).to_le_bytes());
        bytes[8..].copy_from_slice(&state.hash_one(2u8).to_le_bytes());
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
