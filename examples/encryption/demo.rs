//! The encryption demo's flow, shared by `cargo run --example encryption` and the acceptance
//! tests (`tests/gateway/`), so that what the example shows is what the tests check.
//!
//! An Electric stand-in holds the demo's `items`, their `title` encrypted at rest with each
//! tenant's key; the gateway router of `examples/gateway/app.rs` sits in front of it. A write
//! through `POST /api/items` is encrypted by the gateway before it reaches the database, and
//! the shape the gateway serves is decrypted on its way to the tenant.

use std::collections::HashMap;
use std::net::SocketAddr;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower_electric::ip::IpLists;
use tower_electric::protocol::query::encode_component;
use tower_electric::testing::{ElectricStandIn, StandInServer};
use tower_electric::token::InjectSecret;
use tower_electric::SecretString;

use crate::app::{self, BoxError, GatewayConfig};
use crate::columns::TenantKeys;

/// The demo's bearer tokens and their tenants.
pub(crate) const DEMO_TOKENS: &str = "alice-token=acme,bob-token=globex";

/// A response read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    #[allow(dead_code)] // read by the tests, not by the example
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// Reads a response's body to the end.
    pub(crate) async fn read<B>(response: Response<B>) -> Result<Self, BoxError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = response.into_parts();
        Ok(Self {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.map_err(Into::into)?.to_bytes(),
        })
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<Value, BoxError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// A header's value as text, if present.
    #[allow(dead_code)] // used by the tests, not by the example
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The values of a shape log's change messages (an array of messages, or a subset's
    /// `{"metadata", "data"}`), in order.
    pub(crate) fn values(&self) -> Result<Vec<Value>, BoxError> {
        let body = self.json()?;
        let messages = match &body {
            Value::Array(messages) => messages.clone(),
            Value::Object(subset) => match subset.get("data") {
                Some(Value::Array(messages)) => messages.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        Ok(messages
            .into_iter()
            .filter_map(|mut message| message.get_mut("value").map(Value::take))
            .collect())
    }
}

/// A small HTTP/1.1 client for the demo's requests.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    pub(crate) fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `method url`, with a bearer token and a JSON body if given.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, BoxError> {
        let mut request = Request::builder().method(method).uri(url);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let response = self.client.request(request.body(Full::new(body))?).await?;
        Reply::read(response).await
    }
}

/// A query string from decoded pairs, each key and value encoded as Electric decodes them.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The stand-in, the gateway in front of it, and the keys the gateway holds.
pub(crate) struct Demo {
    /// The demo's database: rows as stored, at rest.
    #[allow(dead_code)] // read by the tests, not by the example
    pub(crate) database: ElectricStandIn,
    /// The stand-in on TCP, reachable only with its secret.
    pub(crate) electric: StandInServer,
    /// The gateway's base URL.
    pub(crate) gateway: String,
    /// The tenants' keys.
    #[allow(dead_code)] // read by the tests, not by the example
    pub(crate) keys: TenantKeys,
    secret: String,
    serving: JoinHandle<()>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Demo {
    /// Encrypts `database`'s demo titles at rest with random tenant keys, serves it, and
    /// serves the gateway router in front of it on `127.0.0.1`, admitting clients from
    /// `allow` (CIDRs). `database` must require `secret`.
    pub(crate) async fn start(
        database: ElectricStandIn,
        secret: &str,
        allow: &str,
    ) -> Result<Self, BoxError> {
        let tokens = app::parse_tokens(DEMO_TOKENS)?;
        let keys: HashMap<String, [u8; 32]> = tokens
            .values()
            .map(|tenant| {
                let mut key = [0u8; 32];
                OsRng.fill_bytes(&mut key);
                (tenant.clone(), key)
            })
            .collect();
        let keys = TenantKeys::new(keys, app::ENCRYPTED_COLUMNS);
        app::encrypt_at_rest(&database, &keys)?;
        let electric = database.serve().await?;

        let router = app::router(GatewayConfig {
            electric_url: electric.url().to_owned(),
            secret: InjectSecret::new(SecretString::new(secret))?,
            tokens,
            lists: IpLists::new().allow(allow)?,
            require_tokens: None,
            upstream_http2: false,
            upstream_tls: Default::default(),
            keys: Some(keys.clone()),
            writes: Some(database.clone()),
        })?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let gateway = format!("http://{}", listener.local_addr()?);
        let serving = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(error) = axum::serve(listener, service).await {
                tracing::error!(%error, "the demo gateway stopped");
            }
        });
        Ok(Self {
            database,
            electric,
            gateway,
            keys,
            secret: secret.to_owned(),
            serving,
        })
    }

    /// `POST /api/items` with `item` as its JSON body, as the holder of `token`.
    pub(crate) async fn write_item(
        &self,
        client: &HttpClient,
        token: Option<&str>,
        item: &Value,
    ) -> Result<Reply, BoxError> {
        let url = format!("{}/api/items", self.gateway);
        client.send(Method::POST, &url, token, Some(item)).await
    }

    /// The shape URL of the gateway for a query.
    pub(crate) fn shape_url(&self, pairs: &[(&str, &str)]) -> String {
        format!("{}/v1/shape?{}", self.gateway, query(pairs))
    }

    /// The shape URL of the stand-in itself, with its secret: what only the gateway may ask.
    pub(crate) fn electric_url(&self, pairs: &[(&str, &str)]) -> String {
        let mut pairs = pairs.to_vec();
        pairs.push(("secret", &self.secret));
        format!("{}/v1/shape?{}", self.electric.url(), query(&pairs))
    }
}

/// What one write through the gateway looks like on each side.
#[derive(Debug)]
pub(crate) struct WriteOutcome {
    /// The status of `POST /api/items`.
    pub(crate) write_status: StatusCode,
    /// The item's `title` as the database stores it, read from the stand-in directly.
    pub(crate) stored_title: Option<String>,
    /// The item's `title` as alice (tenant `acme`) receives it through the gateway.
    pub(crate) alice_title: Option<String>,
    /// Whether bob (tenant `globex`) receives the item through the gateway.
    pub(crate) bob_sees_it: bool,
}

/// Alice writes item `id` with a plaintext `title` through `POST /api/items`; then the item is
/// read from the stand-in directly (as stored) and through the gateway by alice and by bob.
pub(crate) async fn write_and_read(
    demo: &Demo,
    client: &HttpClient,
    id: u32,
    title: &str,
) -> Result<WriteOutcome, BoxError> {
    let write = demo
        .write_item(
            client,
            Some("alice-token"),
            &json!({"id": id, "title": title, "done": false}),
        )
        .await?;

    let id_text = id.to_string();
    let only_this_item = [
        ("table", "items"),
        ("offset", "-1"),
        ("where", "id = $1"),
        ("params[1]", id_text.as_str()),
    ];
    let mut titles = Vec::new();
    for (url, token) in [
        (demo.electric_url(&only_this_item), None),
        (demo.shape_url(&only_this_item), Some("alice-token")),
        (demo.shape_url(&only_this_item), Some("bob-token")),
    ] {
        let reply = client.send(Method::GET, &url, token, None).await?;
        if reply.status != StatusCode::OK {
            return Err(format!("a shape read answered {}", reply.status).into());
        }
        titles.push(reply.values()?.iter().find_map(|value| {
            value
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }));
    }
    let [stored_title, alice_title, bob_title] =
        <[Option<String>; 3]>::try_from(titles).map_err(|_| "three reads, three answers")?;
    Ok(WriteOutcome {
        write_status: write.status,
        stored_title,
        alice_title,
        bob_sees_it: bob_title.is_some(),
    })
}
