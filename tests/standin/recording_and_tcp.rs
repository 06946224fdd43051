//! The request log, the data API, and serving over TCP.

use super::*;

#[tokio::test]
async fn requests_are_recorded_decoded() {
    let standin = items();
    let request =
        Request::post("/v1/shape?table=items&offset=-1&where=id+%3E+%241&params%5B1%5D=1")
            .header("authorization", "Bearer x")
            .body(Full::new(Bytes::from_static(
                b"{\"limit\":1,\"order_by\":\"id\"}",
            )))
            .unwrap();
    send(&standin, request).await;
    get(&standin, "/nowhere?a=1&a=2").await;
    let requests = standin.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(first.path, "/v1/shape");
    assert_eq!(first.query_value("where"), Some("id > $1"));
    assert_eq!(first.query_value("params[1]"), Some("1"));
    assert_eq!(first.headers["authorization"], "Bearer x");
    assert_eq!(
        first.body.as_deref(),
        Some(&b"{\"limit\":1,\"order_by\":\"id\"}"[..])
    );
    assert_eq!(
        requests[1].query,
        [
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(requests[1].query_value("a"), Some("2"));
    standin.clear_requests();
    assert!(standin.requests().is_empty());
}

#[test]
fn data_api_keeps_rows_and_refuses_bad_changes() {
    let standin = items();
    let rows = standin.rows("items").unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get("title"), Some(Some("a")));
    standin
        .update("items", Row::new().with("id", "1").with_null("title"))
        .unwrap();
    assert_eq!(standin.rows("items").unwrap()[0].get("title"), Some(None));
    assert!(standin
        .insert("items", [("id", "1"), ("done", "t")])
        .is_err());
    assert!(standin.insert("nope", [("id", "1")]).is_err());
    assert!(standin.delete("items", [("id", "99")]).is_err());
    assert_eq!(standin.last_offset().to_string(), "4_0");
    let demo = ElectricStandIn::demo();
    assert_eq!(demo.rows("items").unwrap().len(), 5);
    assert_eq!(
        demo.rows("tenants").unwrap()[1].get("id"),
        Some(Some("globex"))
    );
}

async fn http1_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    (sender, tokio::spawn(connection))
}

#[tokio::test]
async fn serves_http1_and_h2c_over_tcp_and_stops_on_shutdown() {
    let standin = items();
    let server = standin.serve().await.unwrap();
    assert_eq!(server.url(), format!("http://{}", server.addr()));

    let (mut http1, _connection) = http1_client(server.addr()).await;
    let response = bounded(
        http1.send_request(
            Request::get(format!("{}/v1/shape?offset=-1&table=items", server.url()))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut h2, connection) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let response = bounded(
        h2.send_request(
            Request::get(format!("{}/v1/health", server.url()))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);

    let url = server.url().to_owned();
    server.shutdown().await;
    // Stopping closes the open connections. (That the freed port refuses a new connection is
    // not asserted: a test running beside this one may bind that port the moment it is free,
    // as one did on a loaded CI run.)
    let after = bounded(
        h2.send_request(
            Request::get(format!("{url}/v1/health"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await;
    assert!(after.is_err(), "the h2 connection outlived the server");
}

#[tokio::test]
async fn client_disconnect_over_tcp_is_counted() {
    let standin = items();
    let handle = handle_of(&standin, "table=items").await;
    let server = standin.serve().await.unwrap();
    let (mut http1, connection) = http1_client(server.addr()).await;
    let pending = tokio::spawn(
        http1.send_request(
            Request::get(format!(
                "{}/v1/shape?offset=0_inf&table=items&live=true&handle={handle}",
                server.url()
            ))
            .body(Full::default())
            .unwrap(),
        ),
    );
    bounded(standin.wait_for_live_in_flight(1)).await;
    // The client goes away: its request and its connection end.
    pending.abort();
    connection.abort();
    drop(http1);
    bounded(standin.wait_for_live_cancelled(1)).await;
    assert_eq!(standin.live_in_flight(), 0);
}
