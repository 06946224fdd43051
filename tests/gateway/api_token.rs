//! Issue 5: Electric's API token; client credentials never reach the stand-in, the server's
//! secret does, once.

use super::*;

#[tokio::test]
async fn client_secrets_never_reach_the_stand_in_and_the_real_one_does_once() {
    let electric = standin(Duration::from_millis(100));
    for attack in [
        "secret=guess-1",
        "api_secret=guess-2",
        "%73ecret=guess-3",
        "secret=guess-4&secret=guess-5",
        "api_secret=guess-6&%73ecret=guess-7&secret=guess-8&api%5Fsecret=guess-9",
    ] {
        electric.clear_requests();
        let reply = without_policy(
            &electric,
            Method::GET,
            &format!("table=items&offset=-1&{attack}"),
            "",
        )
        .await;
        // The stand-in refuses a repeated key: a 200 also says nothing was sent twice.
        assert_eq!(reply.status, StatusCode::OK, "{attack}: {:?}", reply.body);
        let received = only_request(&electric);
        let credentials: Vec<(&str, &str)> = received
            .query
            .iter()
            .filter(|(key, _)| key == "secret" || key == "api_secret")
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(credentials, [("secret", SECRET)], "{attack}");
        assert!(
            !received
                .query
                .iter()
                .any(|(_, value)| value.starts_with("guess")),
            "{attack}: {:?}",
            received.query
        );
    }
}

#[tokio::test]
async fn the_stand_in_answers_200_through_inject_and_401_without_it() {
    let electric = standin(Duration::from_millis(100));
    let direct = |query: &'static str| {
        let electric = electric.clone();
        async move {
            let request = Request::get(format!("/v1/shape?{query}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            Reply::read(electric.oneshot(request).await.unwrap())
                .await
                .unwrap()
        }
    };
    for query in [
        "table=items&offset=-1",
        "table=items&offset=-1&secret=guess",
    ] {
        let reply = direct(query).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(
            reply.json().unwrap()["message"],
            "Unauthorized - Invalid API secret"
        );
    }
    let reply = without_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1&secret=guess",
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), [1, 2, 3, 4, 5]);

    // The same over TCP, with the upstream the gateway uses.
    let server = electric.serve().await.unwrap();
    let upstream = ElectricUpstream::new(server.url()).unwrap();
    let get = || {
        Request::get("/v1/shape?table=items&offset=-1&api_secret=guess")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let reply = Reply::read(bounded(upstream.clone().oneshot(get())).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    electric.clear_requests();
    let reply = Reply::read(
        bounded(inject().layer(upstream).oneshot(get()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), [1, 2, 3, 4, 5]);
    let received = only_request(&electric);
    assert_eq!(received.query_value("secret"), Some(SECRET));
    assert_eq!(received.query_value("api_secret"), None);
}
