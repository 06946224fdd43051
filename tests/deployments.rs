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
//! - An Electric over HTTPS with a private CA (`ELECTRIC_CA_FILE`): the stand-in behind TLS
//!   (`tests/support/tls.rs`), HTTP/1.1 or h2 as ALPN chooses; without the CA, the client
//!   reads the TLS 502.

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[allow(dead_code)]
#[path = "../examples/encryption/demo.rs"]
mod demo;
#[path = "support/rows.rs"]
mod rows;
#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

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
use rows::received_rows;

const SECRET: &str = "cloud-source-secret";
/// Electric Cloud's source ids are UUIDs.
const SOURCE_ID: &str = "8ea4e5fb-9217-4ca6-80b7-0a97581c4c10";

const ITEMS_SNAPSHOT: [(&str, &str); 2] = [("table", "items"), ("offset", "-1")];

/// The example gateway's router on `127.0.0.1`, in front of an Electric stand-in.
struct Gateway {
    url: String,
    /// The stand-in on TCP, when [`Gateway::start`] served it.
    _electric: Option<StandInServer>,
    serving: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Gateway {
    /// In front of `database` served on TCP.
    async fn start(
        database: &ElectricStandIn,
        secret: InjectSecret,
        keys: Option<TenantKeys>,
    ) -> Self {
        let electric = database.serve().await.unwrap();
        let mut gateway =
            Self::in_front_of(electric.url(), app::UpstreamTls::default(), secret, keys).await;
        gateway._electric = Some(electric);
        gateway
    }

    /// In front of the Electric at `electric_url`.
    async fn in_front_of(
        electric_url: &str,
        upstream_tls: app::UpstreamTls,
        secret: InjectSecret,
        keys: Option<TenantKeys>,
    ) -> Self {
        let router = app::router(app::GatewayConfig {
            electric_url: electric_url.to_owned(),
            upstream_http2: false,
            upstream_tls,
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
            _electric: None,
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

/// The demo data as stored: titles in plaintext. Long-polls are held until the test's
/// insert, however slow the machine.
fn plaintext_electric() -> ElectricStandIn {
    ElectricStandIn::builder()
        .secret(SECRET)
        .long_poll_hold(Duration::from_secs(60))
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

// ---------------------------------------------------------------------------------------------
// An Electric over HTTPS with a private CA

#[cfg(feature = "tls")]
mod https {
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;

    use http::Version;

    use super::tls::{Ca, ServerTls, TempDir, TlsStandIn};
    use super::*;

    /// A guard against a hang, never an assertion about speed.
    const HANG_GUARD: Duration = Duration::from_secs(20);

    const TLS_FAILED_JSON: &str = r#"{"message":"Bad gateway: TLS with the upstream failed"}"#;

    async fn hang_guard<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(HANG_GUARD, future).await.unwrap()
    }

    /// The gateway in front of `server`, trusting the CA in `ca_file` beside the web roots, as
    /// `ELECTRIC_CA_FILE` sets it.
    async fn gateway(server: &TlsStandIn, ca_file: Option<PathBuf>) -> Gateway {
        let upstream_tls = app::UpstreamTls {
            ca_file,
            client_identity: None,
        };
        Gateway::in_front_of(&server.url(), upstream_tls, plain_secret(), None).await
    }

    /// alice's snapshot through `gateway`, only acme's rows; then her live long-poll, held
    /// until an acme row is inserted and answered with it.
    async fn alices_snapshot_then_live(gateway: &Gateway, database: &ElectricStandIn) {
        let client = HttpClient::new();
        let snapshot = client
            .send(
                Method::GET,
                &gateway.shape_url(&ITEMS_SNAPSHOT),
                Some("alice-token"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(snapshot.status, StatusCode::OK, "{:?}", snapshot.body);
        let expected = stored_rows(database, "acme");
        assert!(!expected.is_empty());
        assert_eq!(received_rows(&snapshot, "acme"), expected);

        let live = gateway.shape_url(&[
            ("table", "items"),
            ("offset", snapshot.header("electric-offset").unwrap()),
            ("handle", snapshot.header("electric-handle").unwrap()),
            ("live", "true"),
        ]);
        let live = tokio::spawn(async move {
            client
                .send(Method::GET, &live, Some("alice-token"), None)
                .await
                .unwrap()
        });
        hang_guard(database.wait_for_live_in_flight(1)).await;
        database
            .insert(
                "items",
                [
                    ("id", "71"),
                    ("tenant_id", "acme"),
                    ("title", "Inserted while held"),
                    ("done", "false"),
                ],
            )
            .unwrap();
        let live = hang_guard(live).await.unwrap();
        assert_eq!(live.status, StatusCode::OK, "{:?}", live.body);
        assert_eq!(
            received_rows(&live, "acme"),
            [("71".to_owned(), "Inserted while held".to_owned())]
        );
    }

    /// The stand-in over TLS with `alpn`, a gateway trusting its CA from a file, and alice's
    /// snapshot and long-poll through both.
    async fn alice_over_https(alpn: &[&'static [u8]]) -> TlsStandIn {
        let database = plaintext_electric();
        let ca = Ca::new("Electric CA");
        let tls = ServerTls::new(ca.server(&["localhost"])).alpn(alpn);
        let server = TlsStandIn::serve(&database, &tls).await;
        let dir = TempDir::new("gateway-ca");
        let gateway = gateway(&server, Some(dir.write("ca.pem", &ca.pem))).await;
        alices_snapshot_then_live(&gateway, &database).await;
        server
    }

    #[tokio::test]
    async fn the_gateway_serves_alice_over_https_with_http1_chosen_by_alpn() {
        let server = alice_over_https(&[b"http/1.1"]).await;
        assert_eq!(server.versions(), [Version::HTTP_11, Version::HTTP_11]);
        let negotiated = server.negotiated();
        assert!(!negotiated.is_empty());
        assert!(
            negotiated
                .iter()
                .all(|alpn| alpn.as_deref() == Some("http/1.1")),
            "{negotiated:?}"
        );
    }

    #[tokio::test]
    async fn the_gateway_serves_alice_over_https_with_h2_chosen_by_alpn() {
        // The stand-in prefers h2 and the gateway offers both: h2 it is, one connection for
        // the snapshot and the held long-poll.
        let server = alice_over_https(&[b"h2", b"http/1.1"]).await;
        assert_eq!(server.versions(), [Version::HTTP_2, Version::HTTP_2]);
        assert_eq!(server.negotiated(), [Some("h2".to_owned())]);
    }

    #[tokio::test]
    async fn a_gateway_without_the_electric_ca_answers_the_tls_502_without_its_secret() {
        let database = plaintext_electric();
        let ca = Ca::new("Electric CA");
        let server = TlsStandIn::serve(&database, &ServerTls::new(ca.server(&["localhost"]))).await;
        let dir = TempDir::new("gateway-other-ca");
        let other_ca = dir.write("ca.pem", &Ca::new("Someone else's CA").pem);
        // No CA file (the web roots alone), and the CA file of another CA.
        for ca_file in [None, Some(other_ca)] {
            let gateway = gateway(&server, ca_file.clone()).await;
            let reply = HttpClient::new()
                .send(
                    Method::GET,
                    &gateway.shape_url(&ITEMS_SNAPSHOT),
                    Some("alice-token"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{ca_file:?}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/json; charset=utf-8")
            );
            assert_eq!(reply.body, TLS_FAILED_JSON, "{ca_file:?}");
            let mut seen = reply.body.to_vec();
            for (name, value) in &reply.headers {
                seen.extend_from_slice(name.as_str().as_bytes());
                seen.extend_from_slice(value.as_bytes());
            }
            assert!(!contains(&seen, SECRET), "{ca_file:?}");
        }
        assert_eq!(server.handshakes.load(Ordering::SeqCst), 0);
        assert!(database.requests().is_empty());
    }
}
