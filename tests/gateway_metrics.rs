#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Issue 18: the example gateway's Prometheus `/metrics` (`examples/gateway/metrics.rs`), read
//! over HTTP after real requests through its router.
//!
//! A test binary of its own: the Prometheus recorder is installed process-wide, so no other
//! test may count into it.

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[allow(dead_code)]
#[path = "../examples/encryption/demo.rs"]
mod demo;
#[allow(dead_code)] // serve_from_env is main.rs's
#[path = "../examples/gateway/metrics.rs"]
mod metrics;

use std::net::SocketAddr;

use http::{Method, StatusCode};
use tower_electric::ip::IpLists;
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::InjectSecret;
use tower_electric::SecretString;

const SECRET: &str = "metrics-test-secret-0123456789";

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test]
async fn the_metrics_listener_shows_the_requests_refusals_and_upstream_latency_it_saw() {
    let metrics_addr = metrics::serve(Some("127.0.0.1:0".to_owned()))
        .await
        .unwrap()
        .expect("a listener for an address that was asked for");

    let database = ElectricStandIn::builder()
        .secret(SECRET)
        .with_demo_data()
        .build();
    let electric = database.serve().await.unwrap();
    let router = app::router(app::GatewayConfig {
        electric_url: electric.url().to_owned(),
        upstream_http2: false,
        upstream_tls: app::UpstreamTls::default(),
        secret: InjectSecret::new(SecretString::new(SECRET)).unwrap(),
        tokens: app::parse_tokens(demo::DEMO_TOKENS).unwrap(),
        lists: IpLists::new().allow("127.0.0.0/8").unwrap(),
        require_tokens: None,
        keys: None,
        writes: None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap();
    });

    let client = demo::HttpClient::new();
    let snapshot = format!("{gateway}/v1/shape?table=items&offset=-1");
    for _ in 0..2 {
        let reply = client
            .send(Method::GET, &snapshot, Some("alice-token"), None)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let hidden = format!("{gateway}/v1/shape?table=items&offset=-1&columns=id,internal_note");
    let reply = client
        .send(Method::GET, &hidden, Some("alice-token"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let scraped = client
        .send(
            Method::GET,
            &format!("http://{metrics_addr}/metrics"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(scraped.status, StatusCode::OK);
    let text = String::from_utf8(scraped.body.to_vec()).unwrap();
    assert_eq!(
        sample(
            &text,
            r#"tower_electric_requests_total{outcome="forwarded"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"tower_electric_requests_total{outcome="refused"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tower_electric_refusals_total{reason="forbidden",status="403"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tower_electric_upstream_duration_seconds_count{status_class="2xx",live="false"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // Described for the scraper, and nothing of the secret or the client's query in it.
    assert!(
        text.contains("# TYPE tower_electric_requests_total counter"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains("internal_note"),
        "{text}"
    );

    // The public port does not serve it.
    let public = client
        .send(Method::GET, &format!("{gateway}/metrics"), None, None)
        .await
        .unwrap();
    assert_eq!(public.status, StatusCode::NOT_FOUND);
    serving.abort();
}
