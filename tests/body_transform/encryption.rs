//! Encryption: the example's column cipher (`examples/encryption/columns.rs`) on the write
//! and read paths.

use super::*;

fn tenant_keys() -> columns::TenantKeys {
    let keys = HashMap::from([
        ("acme".to_owned(), [7u8; 32]),
        ("globex".to_owned(), [9u8; 32]),
    ]);
    columns::TenantKeys::new(keys, &["title", "notes"])
}

fn as_tenant(tenant: &str, mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(columns::Tenant(tenant.to_owned()));
    request
}

#[tokio::test]
async fn encrypted_columns_round_trip_through_write_and_read_paths() {
    let keys = tenant_keys();
    // Write path: the app's API (and so Postgres, and so Electric) only sees ciphertext.
    let request = as_tenant(
        "acme",
        Request::post("/api/todos")
            .body(Full::new(Bytes::from_static(
                br#"{"id":"1","title":"secret plan","notes":null}"#,
            )))
            .unwrap(),
    );
    let (status, stored, _) = write(RequestBodyTransformLayer::new(keys.clone()), request).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    let ciphertext = stored["title"].as_str().unwrap().to_owned();
    assert_ne!(ciphertext, "secret plan");
    assert_eq!(stored["id"], "1");
    assert_eq!(stored["notes"], Value::Null);

    // Read path: Electric syncs the ciphertext; the gateway decrypts for the tenant.
    let acme = columns::ColumnCipher::new(&[7u8; 32], Arc::from(vec!["title".to_owned()]));
    let old = acme.encrypt("title", "old plan").unwrap();
    let messages = json!([
        {"headers":{"operation":"update","relation":["public","todos"]},"key":"\"public\".\"todos\"/\"1\"",
         "value":{"id":"1","title":ciphertext,"notes":null},"old_value":{"title":old}},
        {"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}
    ]);
    let body = Bytes::from(serde_json::to_string(&messages).unwrap());
    let response = || {
        Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .body(ChunkedBody::split(body.clone(), &[10, 100, 101]))
            .unwrap()
    };
    let request = |tenant| {
        as_tenant(
            tenant,
            Request::get("/v1/shape?table=todos&offset=-1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    let (_, out) = exchange(
        BodyTransformLayer::new(keys.clone()),
        request("acme"),
        response(),
    )
    .await;
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(
        out[0]["value"],
        json!({"id":"1","title":"secret plan","notes":null})
    );
    assert_eq!(out[0]["old_value"], json!({"title":"old plan"}));
    assert_eq!(out[1], messages[1]);

    // Another tenant's key does not open it: the first message fails, so the answer is a 502
    // instead of ciphertext passed as if it were data (nor the plaintext).
    let (_, out) = exchange(
        BodyTransformLayer::new(keys.clone()),
        request("globex"),
        response(),
    )
    .await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        body_of(out).await.unwrap(),
        r#"{"message":"Bad gateway: the response body could not be transformed: transform failed"}"#
    );

    // No tenant, no key: 502 before the first byte.
    let anonymous = Request::get("/v1/shape?table=todos&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, out) = exchange(BodyTransformLayer::new(keys), anonymous, response()).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
}

#[test]
fn ciphertexts_are_bound_to_their_column_and_key() {
    let cipher = columns::ColumnCipher::new(&[1u8; 32], Arc::from(vec!["a".to_owned()]));
    let sealed = cipher.encrypt("a", "x").unwrap();
    assert_eq!(cipher.decrypt("a", &sealed).unwrap(), "x");
    assert_ne!(
        cipher.encrypt("a", "x").unwrap(),
        sealed,
        "nonces are random"
    );
    assert_eq!(
        cipher.decrypt("b", &sealed),
        Err(columns::CipherError::Authentication)
    );
    assert_eq!(
        cipher.decrypt("a", "not base64!"),
        Err(columns::CipherError::Encoding)
    );
    let other = columns::ColumnCipher::new(&[2u8; 32], Arc::from(vec!["a".to_owned()]));
    assert_eq!(
        other.decrypt("a", &sealed),
        Err(columns::CipherError::Authentication)
    );
    assert!(format!("{cipher:?}").contains("columns"));
    assert!(!format!("{:?}", tenant_keys()).contains("[7"));
}
