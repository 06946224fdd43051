//! The example gateway, whole, on TCP: rows per tenant decrypted, live and SSE, subsets,
//! refusals, writes.

use super::*;

async fn gateway(allow: &str) -> Demo {
    gateway_in(Mode::Plain, allow).await
}

async fn gateway_in(mode: Mode, allow: &str) -> Demo {
    Demo::start(standin_in(mode, Duration::from_millis(300)), SECRET, allow)
        .await
        .unwrap()
}

const ITEMS_SNAPSHOT: [(&str, &str); 2] = [("table", "items"), ("offset", "-1")];

/// The tenant's rows as stored, their titles decrypted with the tenant's key: what the
/// gateway must serve that tenant, and proof that what is stored is not the plaintext.
fn expected_rows(demo: &Demo, tenant: &str) -> Vec<(String, String)> {
    let cipher = demo.keys.cipher_for_tenant(tenant).unwrap();
    demo.database
        .rows("items")
        .unwrap()
        .iter()
        .filter(|row| row.get("tenant_id") == Some(Some(tenant)))
        .map(|row| {
            let stored = row.get("title").unwrap().unwrap();
            let plaintext = cipher.decrypt("title", stored).unwrap();
            assert_ne!(stored, plaintext);
            (row.get("id").unwrap().unwrap().to_owned(), plaintext)
        })
        .collect()
}

/// The holder of `token` takes the items snapshot, then sends a live request from its end
/// (`mode`: `("cursor", "")` for a long-poll, `("live_sse", "true")` for SSE), in the
/// background.
async fn start_live(
    demo: &Demo,
    client: &HttpClient,
    token: &'static str,
    mode: (&str, &str),
) -> tokio::task::JoinHandle<Reply> {
    let snapshot = client
        .send(
            Method::GET,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some(token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(snapshot.status, StatusCode::OK);
    let url = demo.shape_url(&[
        ("table", "items"),
        ("offset", snapshot.header("electric-offset").unwrap()),
        ("handle", snapshot.header("electric-handle").unwrap()),
        ("live", "true"),
        mode,
    ]);
    let client = client.clone();
    tokio::spawn(async move {
        client
            .send(Method::GET, &url, Some(token), None)
            .await
            .unwrap()
    })
}

both_ways! {
async fn each_tenant_gets_its_own_rows_decrypted_while_the_stand_in_holds_ciphertext(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();

    let stored = client
        .send(Method::GET, &demo.electric_url(&ITEMS_SNAPSHOT), None, None)
        .await
        .unwrap();
    assert_eq!(stored.status, StatusCode::OK);
    let stored_text = String::from_utf8_lossy(&stored.body).into_owned();
    let url = demo.shape_url(&ITEMS_SNAPSHOT);

    for (token, tenant, other) in [
        ("alice-token", "acme", "globex"),
        ("bob-token", "globex", "acme"),
    ] {
        let reply = client
            .send(Method::GET, &url, Some(token), None)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let expected = expected_rows(&demo, tenant);
        assert!(!expected.is_empty());
        assert_eq!(received_rows(&reply, tenant), expected);
        for value in reply.values().unwrap() {
            assert_eq!(value["tenant_id"], tenant);
        }
        for (_, title) in expected_rows(&demo, other) {
            assert!(!String::from_utf8_lossy(&reply.body).contains(&title));
        }
        for (_, title) in &expected {
            assert!(
                !stored_text.contains(title.as_str()),
                "plaintext at rest: {title}"
            );
        }
        assert_eq!(
            reply.header("cache-control"),
            Some("private, max-age=60, stale-while-revalidate=60")
        );
    }
    assert!(received_rows(
        &client
            .send(Method::GET, &url, Some("alice-token"), None)
            .await
            .unwrap(),
        "acme"
    )
    .contains(&("1".to_owned(), "Draft the launch plan".to_owned())));
}
}

both_ways! {
async fn a_live_long_poll_woken_by_an_insert_for_acme_reaches_alice_and_not_bob(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();
    let alice = start_live(&demo, &client, "alice-token", ("cursor", "")).await;
    let bob = start_live(&demo, &client, "bob-token", ("cursor", "")).await;
    bounded(demo.database.wait_for_live_in_flight(2)).await;
    let cipher = demo.keys.cipher_for_tenant("acme").unwrap();
    demo.database
        .insert(
            "items",
            Row::new()
                .with("id", "50")
                .with("tenant_id", "acme")
                .with(
                    "title",
                    cipher.encrypt("title", "Fresh from the database").unwrap(),
                )
                .with("done", "false")
                .with("internal_note", "not for clients"),
        )
        .unwrap();

    let bob = bounded(bob).await.unwrap();
    let alice = bounded(alice).await.unwrap();
    assert_eq!(alice.status, StatusCode::OK, "{:?}", alice.body);
    assert_eq!(
        received_rows(&alice, "acme"),
        [("50".to_owned(), "Fresh from the database".to_owned())]
    );
    assert_eq!(alice.header("electric-has-data"), Some("true"));
    assert_eq!(bob.status, StatusCode::OK, "{:?}", bob.body);
    assert!(bob.values().unwrap().is_empty(), "{:?}", bob.body);
    assert_eq!(bob.header("electric-has-data"), Some("false"));
}
}

#[tokio::test]
async fn the_gateway_refuses_before_the_stand_in() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    demo.database.clear_requests();
    let items = demo.shape_url(&ITEMS_SNAPSHOT);
    for (url, token, status) in [
        (&items, None, StatusCode::UNAUTHORIZED),
        (&items, Some("mallory-token"), StatusCode::UNAUTHORIZED),
        (&items, Some(""), StatusCode::UNAUTHORIZED),
        (
            &demo.shape_url(&[("table", "secrets"), ("offset", "-1")]),
            Some("alice-token"),
            StatusCode::FORBIDDEN,
        ),
        (
            &demo.shape_url(&[("table", "tenants"), ("offset", "-1"), ("where", "true")]),
            Some("alice-token"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let reply = client.send(Method::GET, url, token, None).await.unwrap();
        assert_eq!(reply.status, status, "{url} {token:?}: {:?}", reply.body);
        assert!(reply.json().unwrap()["message"].is_string());
    }
    assert!(
        demo.database.requests().is_empty(),
        "{:#?}",
        demo.database.requests()
    );
}

both_ways! {
async fn subsets_and_sse_through_the_gateway_are_decrypted_for_the_tenant(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();
    let subset = json!({"where": "done = $1", "params": {"1": "false"}, "order_by": "id"});
    let reply = client
        .send(
            Method::POST,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some("bob-token"),
            Some(&subset),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let globex_open: Vec<(String, String)> = expected_rows(&demo, "globex")
        .into_iter()
        .filter(|(id, _)| {
            demo.database.rows("items").unwrap().iter().any(|row| {
                row.get("id") == Some(Some(id.as_str())) && row.get("done") == Some(Some("false"))
            })
        })
        .collect();
    assert!(!globex_open.is_empty());
    assert_eq!(received_rows(&reply, "globex"), globex_open);

    let sse = start_live(&demo, &client, "alice-token", ("live_sse", "true")).await;
    bounded(demo.database.wait_for_live_in_flight(1)).await;
    for (id, tenant, title) in [
        ("70", "globex", "not for alice"),
        ("71", "acme", "streamed to alice"),
    ] {
        let cipher = demo.keys.cipher_for_tenant(tenant).unwrap();
        demo.database
            .insert(
                "items",
                Row::new()
                    .with("id", id)
                    .with("tenant_id", tenant)
                    .with("title", cipher.encrypt("title", title).unwrap())
                    .with("done", "false"),
            )
            .unwrap();
    }
    let reply = bounded(sse).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let values: Vec<Value> = String::from_utf8_lossy(&reply.body)
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| {
            serde_json::from_str::<Value>(data)
                .unwrap()
                .get("value")
                .cloned()
        })
        .collect();
    assert_eq!(
        values,
        [json!({"id": "71", "tenant_id": "acme", "title": "streamed to alice", "done": "false"})]
    );
}
}

/// Without a token the write has no tenant and so no key: that is the caller's 401, not a
/// gateway failure (502).
#[tokio::test]
async fn a_write_without_a_token_is_401() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    let write = demo
        .write_item(&client, None, &json!({"id": 60, "title": "anonymous"}))
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::UNAUTHORIZED, "{:?}", write.body);
    assert_eq!(write.header("www-authenticate"), Some("Bearer"));
    assert!(write.json().unwrap()["message"].is_string());
    assert_eq!(demo.database.rows("items").unwrap().len(), 5);
}

#[tokio::test]
async fn a_client_outside_the_allow_list_is_refused() {
    // 127.0.0.1 is not in the list.
    let demo = gateway("10.0.0.0/8").await;
    let client = HttpClient::new();
    demo.database.clear_requests();
    let reply = client
        .send(
            Method::GET,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let write = demo
        .write_item(
            &client,
            Some("alice-token"),
            &json!({"id": 61, "title": "from outside"}),
        )
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert!(demo.database.requests().is_empty());
    assert_eq!(demo.database.rows("items").unwrap().len(), 5);
}

/// The flow of `cargo run --example encryption` (`examples/encryption/demo.rs`).
#[tokio::test]
async fn the_encryption_example_stores_ciphertext_and_serves_plaintext_to_the_tenant() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    let title = "Written through the gateway";
    let outcome = demo::write_and_read(&demo, &client, 10, title)
        .await
        .unwrap();
    assert_eq!(outcome.write_status, StatusCode::CREATED);
    let stored = outcome.stored_title.unwrap();
    assert_ne!(stored, title);
    let acme = demo.keys.cipher_for_tenant("acme").unwrap();
    assert_eq!(acme.decrypt("title", &stored).unwrap(), title);
    let globex = demo.keys.cipher_for_tenant("globex").unwrap();
    assert!(globex.decrypt("title", &stored).is_err());
    assert_eq!(outcome.alice_title.as_deref(), Some(title));
    assert!(!outcome.bob_sees_it);

    // The row is the writer's tenant's, whatever the body claims.
    let write = demo
        .write_item(
            &client,
            Some("alice-token"),
            &json!({"id": 11, "title": "mine", "tenant_id": "globex", "internal_note": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::CREATED);
    let row = demo
        .database
        .rows("items")
        .unwrap()
        .into_iter()
        .find(|row| row.get("id") == Some(Some("11")))
        .unwrap();
    assert_eq!(row.get("tenant_id"), Some(Some("acme")));
    assert_eq!(row.get("internal_note"), Some(None));
    assert_eq!(
        acme.decrypt("title", row.get("title").unwrap().unwrap())
            .unwrap(),
        "mine"
    );
}
