//! Rewriting and dropping messages: values and old values, controls left alone, subset
//! snapshots, and the schema header.

use super::*;

#[tokio::test]
async fn values_and_old_values_are_rewritten_and_controls_left_alone() {
    let fixture = fixture("200_live_update_replica_full.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, response) = fixture_exchange(&fixture, body.clone());
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    let out = String::from_utf8(body_of(out).await.unwrap().to_vec()).unwrap();
    let messages: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(messages[0]["value"]["value1"], "TEST VALUE 1");
    assert_eq!(messages[0]["old_value"]["value2"], "TEST VALUE 1");
    assert_eq!(
        messages[0]["headers"],
        fixture["response"]["body"][0]["headers"]
    );
    // The control message is the upstream's bytes, not a re-rendering.
    let control = serde_json::to_string(&fixture["response"]["body"][1]).unwrap();
    assert!(out.ends_with(&format!(",{control}]")), "{out}");
}

#[tokio::test]
async fn messages_can_be_dropped_and_the_array_stays_valid() {
    let messages = json!([
        {"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"2\"","value":{"id":"2"}},
        {"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"3\"","value":{"id":"3","t":"x"}},
        {"headers":{"operation":"delete","relation":["public","items"]},"key":"drop-me","value":{"id":"4"}},
        {"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}
    ]);
    let body = Bytes::from(serde_json::to_string_pretty(&messages).unwrap());
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::new([body]));
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(upper_and_drop)),
        request,
        response,
    )
    .await;
    let out: Vec<Value> = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out, upper_and_drop_expected(messages.as_array().unwrap()));
    assert_eq!(out.len(), 2);
}

#[tokio::test]
async fn subset_snapshot_data_is_transformed_and_metadata_kept() {
    let fixture = fixture("200_subset_snapshot.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, response) = fixture_exchange(&fixture, body);
    let relations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&relations);
    let transform = each_message(move |message: &mut Message<'_>| {
        let relation = message.relation().unwrap();
        seen.lock().unwrap().push(format!(
            "{}.{} {:?}",
            relation.schema,
            relation.table,
            message.operation()
        ));
        uppercase(message)
    });
    let (_, out) = exchange(BodyTransformLayer::new(transform), request, response).await;
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out["metadata"], fixture["response"]["body"]["metadata"]);
    assert_eq!(out["data"][0]["value"]["title"], "HIGH PRIORITY");
    // The subset's messages name no relation: the shape's table (the query's `table`) stands in.
    assert_eq!(
        *relations.lock().unwrap(),
        [format!("public.issues {:?}", Some(Operation::Insert))]
    );
}

#[tokio::test]
async fn schema_header_is_rewritten_only_when_changed() {
    #[derive(Clone)]
    struct Retype;
    impl MessageTransform for Retype {
        fn transform(&mut self, _: &mut Message<'_>) -> Result<(), BoxError> {
            Ok(())
        }
        fn rewrite_schema(
            &mut self,
            schema: &mut serde_json::Map<String, Value>,
        ) -> Result<(), BoxError> {
            if let Some(column) = schema.get_mut("num") {
                column["type"] = "text".into();
            }
            Ok(())
        }
    }
    let fixture = fixture("200_initial_offset_-1.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let original = fixture["response"]["headers"]["electric-schema"]
        .as_str()
        .unwrap();

    let (request, response) = fixture_exchange(&fixture, body.clone());
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(|_: &mut Message<'_>| Ok(()))),
        request,
        response,
    )
    .await;
    assert_eq!(out.headers()["electric-schema"], original);

    let (request, response) = fixture_exchange(&fixture, body);
    let layer = BodyTransformLayer::new(
        |_: &http::request::Parts, _: &http::response::Parts| async { Ok::<_, BoxError>(Retype) },
    );
    let (_, out) = exchange(layer, request, response).await;
    let schema: Value =
        serde_json::from_slice(out.headers()["electric-schema"].as_bytes()).unwrap();
    assert_eq!(schema["num"], json!({"type": "text", "not_null": true}));
    assert_eq!(schema["id"]["type"], "int8");
}
