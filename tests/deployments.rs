#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Issue 14: the example gateway (`examples/gateway/app.rs`) in front of real deployments,
//! played by the stand-in on TCP.
//!
//! - Any Electric: data stored as plaintext, no tenant keys given: the gateway decrypts
//!   nothing and serves the values as stored; given keys anyway, the client reads a 502 that
//!   names the reason instead of a closed connection.
//! - Electric Cloud: the stand-in requires `source_id` and `secret` as Cloud does; the gateway
//!   injects both, and the client's own copies, in any spelling, never reach it nor come back
//!   in a refusal.

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[allow(dead_code)]
#[path = "../examples/encryption/demo.rs"]
mod demo;

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceExt};
use tower_electric::ip::IpLists;
use tower_electric::testing::{ElectricStandIn, RecordedRequest, StandInServer};
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::SecretString;

use columns::TenantKeys;
use demo::{query, HttpClient, Reply};

const SECRET: &str = "cloud-source-secret";
/// Electric Cloud's source ids are UUIDs.
const SOURCE_ID: &str = "8ea4e5fb-9217-4ca6-80b7-0a97581c4c10";

const ITEMS_SNAPSHOT: [(&str, &str); 2] = [("table", "items"), ("offset", "-1")];

/// The example gateway's router on `127.0.0.1`, in front of `database` served on TCP.
struct Gateway {
    url: String,
    _electric: StandInServer,
    serving: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Gateway {
    async fn start(
        database: &ElectricStandIn,
        secret: InjectSecret,
        keys: Option<TenantKeys>,
    ) -> Self {
        let electric = database.serve().await.unwrap();
        let router = app::router(app::GatewayConfig {
            electric_url: electric.url().to_owned(),
            upstream_http2: false,
            upstream_tls: Default::default(),
            secret,
            tokens: app::parse_tokens(demo::DEMO_TOKENS).unwrap(),
            lists: IpLists::new().allow("127.0.0.0/8").unwrap(),
            require_tokens: None,
            keys,
            writes: None,
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service).await.unwrap();
        });
        Self {
            url,
            _electric: electric,
            serving,
        }
    }

    fn shape_url(&self, pairs: &[(&str, &str)]) -> String {
        format!("{}/v1/shape?{}", self.url, query(pairs))
    }

    fn raw_shape_url(&self, raw_query: &str) -> String {
        format!("{}/v1/shape?{raw_query}", self.url)
    }
}

fn plain_secret() -> InjectSecret {
    InjectSecret::new(SecretString::new(SECRET)).unwrap()
}

fn cloud_secret() -> InjectSecret {
    plain_secret().with_source_id(SOURCE_ID)
}

/// The demo data as stored: titles in plaintext.
fn plaintext_electric() -> ElectricStandIn {
    ElectricStandIn::builder()
        .secret(SECRET)
        .with_demo_data()
        .build()
}

fn cloud_electric() -> ElectricStandIn {
    ElectricStandIn::builder()
        .cloud_source(SOURCE_ID, SECRET)
        .with_demo_data()
        .build()
}

/// The tenant's rows as the database stores them: `(id, title)`.
fn stored_rows(database: &ElectricStandIn, tenant: &str) -> Vec<(String, String)> {
    database
        .rows("items")
        .unwrap()
        .iter()
        .filter(|row| row.get("tenant_id") == Some(Some(tenant)))
        .map(|row| {
            (
                row.get("id").unwrap().unwrap().to_owned(),
                row.get("title").unwrap().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The `(id, title)` of every value received; no value may hold the hidden column.
fn received_rows(reply: &Reply, tenant: &str) -> Vec<(String, String)> {
    reply
        .values()
        .unwrap()
        .iter()
        .map(|value| {
            assert!(value.get("internal_note").is_none(), "{value}");
            assert_eq!(value["tenant_id"], tenant, "{value}");
            (
                value["id"].as_str().unwrap().to_owned(),
                value["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The values of one key in a recorded request, as the stand-in decoded them.
fn values_of<'a>(request: &'a RecordedRequest, key: &str) -> Vec<&'a str> {
    request
        .query
        .iter()
        .filter(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Any Electric: plaintext as stored

#[tokio::test]
async fn without_keys_the_gateway_serves_a_plaintext_electric_as_stored() {
    let database = plaintext_electric();
    let gateway = Gateway::start(&database, plain_secret(), None).await;
    let client = HttpClient::new();
    for (token, tenant) in [("alice-token", "acme"), ("bob-token", "globex")] {
        let reply = client
            .send(
                Method::GET,
                &gateway.shape_url(&ITEMS_SNAPSHOT),
                Some(token),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let expected = stored_rows(&database, tenant);
        assert!(!expected.is_empty());
        assert_eq!(received_rows(&reply, tenant), expected);
    }
    let reply = client
        .send(
            Method::GET,
            &gateway.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .unwrap();
    assert!(received_rows(&reply, "acme")
        .contains(&("1".to_owned(), "Draft the launch plan".to_owned())));
}

#[tokio::test]
async fn keys_for_data_that_is_not_encrypted_answer_a_readable_502() {
    let database = plaintext_electric();
    let keys = TenantKeys::new(
        HashMap::from([
            ("acme".to_owned(), [0x11; 32]),
            ("globex".to_owned(), [0x22; 32]),
        ]),
        app::ENCRYPTED_COLUMNS,
    );
    let gateway = Gateway::start(&database, plain_secret(), Some(keys)).await;
    let reply = HttpClient::new()
        .send(
            Method::GET,
            &gateway.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .expect("an answer, not a closed connection");
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let message = reply.json().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("could not be transformed") && message.contains("transform failed"),
        "{message}"
    );
    for (_, title) in stored_rows(&database, "acme") {
        assert!(!contains(&reply.body, &title), "{title}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Electric Cloud

#[tokio::test]
async fn the_cloud_stand_in_requires_its_source_id_and_its_secret() {
    let database = cloud_electric();
    for (credentials, status) in [
        (
            format!("source_id={SOURCE_ID}&secret={SECRET}"),
            StatusCode::OK,
        ),
        (
            format!("source_id={SOURCE_ID}&api_secret={SECRET}"),
            StatusCode::OK,
        ),
        (String::new(), StatusCode::UNAUTHORIZED),
        (format!("secret={SECRET}"), StatusCode::UNAUTHORIZED),
        (format!("source_id={SOURCE_ID}"), StatusCode::UNAUTHORIZED),
        (
            format!("source_id=other-source&secret={SECRET}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            format!("source_id={SOURCE_ID}&secret=wrong"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            format!("source_id=&secret={SECRET}"),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let request = Request::get(format!("/v1/shape?table=items&offset=-1&{credentials}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let reply = Reply::read(database.clone().oneshot(request).await.unwrap())
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{credentials}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                reply.json().unwrap(),
                serde_json::json!({"message": "Unauthorized - Invalid API secret"}),
                "{credentials}"
            );
        }
    }
}

/// Client copies of Cloud's credentials: every spelling Electric's decoder (or a case-folding
/// or bracket-parsing hop) could read as one, repeated, percent-encoded.
const CLIENT_CREDENTIALS: &[&str] = &[
    "source_id=client-source",
    "%73ource_id=client-source",
    "source%5Fid=client-source",
    "%73%6F%75%72%63%65%5F%69%64=client-source",
    "source_id[]=client-source",
    "SOURCE_ID=client-source",
    "source_id=client-source-1&source_id=client-source-2",
    "secret=client-secret",
    "%73ecret=client-secret&api_secret=client-secret-2",
    "secret=client-secret-1&secret=client-secret-2&Secret=client-secret-3",
    "source_secret=client-secret",
    "source_id=client-source&secret=client-secret&%73ource_id=client-source-2&api%5Fsecret=client-secret-2",
];

/// Asserts that every request the stand-in received carried exactly the server's source id
/// and secret, once each, and nothing the client chose.
fn assert_only_server_credentials(database: &ElectricStandIn, attack: &str) {
    let received = database.requests();
    assert!(
        !received.is_empty(),
        "{attack}: nothing reached the stand-in"
    );
    for request in &received {
        assert_eq!(values_of(request, "source_id"), [SOURCE_ID], "{attack}");
        assert_eq!(values_of(request, "secret"), [SECRET], "{attack}");
        assert!(
            !request
                .query
                .iter()
                .any(|(key, value)| (key.to_ascii_lowercase().contains("secret")
                    && key != "secret")
                    || value.starts_with("client")),
            "{attack}: {:?}",
            request.query
        );
    }
}

#[tokio::test]
async fn the_token_layer_alone_keeps_the_clients_cloud_credentials_from_cloud() {
    let database = cloud_electric();
    // No policy in front: the layer is all that stands between the client's query and Cloud.
    let service = ApiTokenLayer::inject(cloud_secret()).layer(database.clone());
    for attack in CLIENT_CREDENTIALS {
        database.clear_requests();
        let request = Request::get(format!("/v1/shape?table=items&offset=-1&{attack}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let reply = Reply::read(service.clone().oneshot(request).await.unwrap())
            .await
            .unwrap();
        // The stand-in refuses a repeated key: a 200 also says nothing was sent twice.
        assert_eq!(reply.status, StatusCode::OK, "{attack}: {:?}", reply.body);
        assert_only_server_credentials(&database, attack);
    }
}

#[tokio::test]
async fn the_example_gateway_injects_clouds_source_id_and_secret_and_nothing_of_the_clients() {
    let database = cloud_electric();
    let gateway = Gateway::start(&database, cloud_secret(), None).await;
    let client = HttpClient::new();

    let reply = client
        .send(
            Method::GET,
            &gateway.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        received_rows(&reply, "acme"),
        stored_rows(&database, "acme")
    );

    let mut refusals = Vec::new();
    let mut forwarded = 0;
    for attack in CLIENT_CREDENTIALS {
        database.clear_requests();
        let url = gateway.raw_shape_url(&format!("table=items&offset=-1&{attack}"));
        let reply = client
            .send(Method::GET, &url, Some("alice-token"), None)
            .await
            .unwrap();
        if reply.status == StatusCode::OK {
            forwarded += 1;
            assert_only_server_credentials(&database, attack);
            assert_eq!(
                received_rows(&reply, "acme"),
                stored_rows(&database, "acme")
            );
        } else {
            assert!(database.requests().is_empty(), "{attack}");
            refusals.push((attack, reply));
        }
    }
    // The policy refuses repeated keys itself; the other attacks went through to the stand-in.
    assert!(forwarded > 0 && !refusals.is_empty(), "{forwarded}");
    // Refusals of every kind the gateway gives, scanned for the server's and the client's
    // credential values.
    for (url, token) in [
        (gateway.shape_url(&ITEMS_SNAPSHOT), None),
        (gateway.shape_url(&ITEMS_SNAPSHOT), Some("mallory-token")),
        (
            gateway.raw_shape_url("table=secrets&offset=-1&source_id=client-source"),
            Some("alice-token"),
        ),
        (
            gateway.raw_shape_url("table=items&offset=-1&secret=client-secret&where=%zz"),
            Some("alice-token"),
        ),
    ] {
        let reply = client.send(Method::GET, &url, token, None).await.unwrap();
        assert!(reply.status.is_client_error(), "{url}: {}", reply.status);
        refusals.push((&"refusal", reply));
    }
    for (attack, reply) in &refusals {
        assert!(reply.json().unwrap()["message"].is_string(), "{attack}");
        let mut seen = reply.body.to_vec();
        for (name, value) in &reply.headers {
            seen.extend_from_slice(name.as_str().as_bytes());
            seen.extend_from_slice(value.as_bytes());
        }
        for value in [SOURCE_ID, SECRET, "client-source", "client-secret"] {
            assert!(
                !contains(&seen, value),
                "{attack}: {value} in {}",
                String::from_utf8_lossy(&seen)
            );
        }
    }
}

#[tokio::test]
async fn a_gateway_with_the_wrong_source_passes_clouds_401_without_either_value() {
    let database = cloud_electric();
    let wrong = plain_secret().with_source_id("0000aaaa-wrong-source");
    let gateway = Gateway::start(&database, wrong, None).await;
    let reply = HttpClient::new()
        .send(
            Method::GET,
            &gateway.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(
        reply.json().unwrap()["message"],
        "Unauthorized - Invalid API secret"
    );
    for value in [SOURCE_ID, SECRET, "0000aaaa-wrong-source"] {
        assert!(!contains(&reply.body, value), "{value}");
    }
    assert_eq!(
        values_of(&database.requests()[0], "source_id"),
        ["0000aaaa-wrong-source"]
    );
}
