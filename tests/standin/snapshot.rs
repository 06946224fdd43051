//! Shape logs read without waiting: snapshots, offsets, handles, columns, ETags and HEAD.

use super::*;

#[tokio::test]
async fn initial_snapshot_is_the_fixture() {
    let fixture = fixture("200_initial_offset_-1.json");
    let standin = ElectricStandIn::builder().secret("REDACTED").build();
    standin
        .create_table(
            TableSchema::new("serial_ids")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("num", "int4").not_null()),
        )
        .unwrap();
    standin
        .insert("serial_ids", [("id", "1"), ("num", "5")])
        .unwrap();
    standin
        .insert("serial_ids", [("id", "2"), ("num", "10")])
        .unwrap();
    let query = fixture["request"]["query"].as_str().unwrap();
    let answer = get(&standin, &format!("/v1/shape?{query}")).await;
    let response = &fixture["response"];
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_headers_like(&response["headers"], &["etag", "electric-handle"]);
    let handle = answer.header("electric-handle");
    assert_eq!(answer.header("etag"), format!("\"{handle}:-1:0_inf\""));
    let body = answer.json();
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[0], response["body"][0], "the row with num > 5");
    assert_eq!(body[1]["headers"]["control"], "snapshot-end");
    let mut keys: Vec<_> = body[1]["headers"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["control", "xip_list", "xmax", "xmin"]);
}

#[tokio::test]
async fn offset_now_is_the_fixture() {
    let fixture = fixture("200_offset_now.json");
    let standin = ElectricStandIn::new();
    standin
        .create_table(
            TableSchema::new("items")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("value", "text")),
        )
        .unwrap();
    let query = fixture["request"]["query"].as_str().unwrap();
    let answer = get(&standin, &format!("/v1/shape?{query}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_headers_like(
        &fixture["response"]["headers"],
        &["etag", "electric-handle"],
    );
    let handle = answer.header("electric-handle");
    // A suffix makes answers without changes unique, so they never revalidate.
    let etag = answer.header("etag");
    assert!(
        etag.starts_with(&format!("\"{handle}:now:0_inf:")),
        "{etag}"
    );
    assert_eq!(answer.json()[0]["headers"]["control"], "up-to-date");
}

#[tokio::test]
async fn handles_are_per_shape_definition() {
    let standin = items();
    let plain = handle_of(&standin, "table=items").await;
    assert_eq!(handle_of(&standin, "table=public.items").await, plain);
    let filtered = handle_of(&standin, "table=items&where=id+%3E+1").await;
    let full = handle_of(&standin, "table=items&replica=full").await;
    let with_param = handle_of(&standin, "table=items&where=id+%3E+%241&params%5B1%5D=1").await;
    let other_param = handle_of(&standin, "table=items&where=id+%3E+%241&params%5B1%5D=2").await;
    let columns = handle_of(&standin, "table=items&columns=id,title").await;
    let all = [
        &plain,
        &filtered,
        &full,
        &with_param,
        &other_param,
        &columns,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in all.iter().skip(i + 1) {
            assert_ne!(a, b);
        }
    }
}

#[tokio::test]
async fn non_live_reads_changes_after_the_offset_with_default_replica() {
    let standin = items();
    let handle = handle_of(&standin, "table=items").await;
    let offset = standin
        .update("items", [("id", "2"), ("title", "B")])
        .unwrap();
    standin.delete("items", [("id", "3")]).unwrap();
    let answer = get(
        &standin,
        &format!("/v1/shape?table=items&offset=0_inf&handle={handle}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("electric-offset"), "5_0");
    assert_eq!(answer.header("electric-up-to-date"), "");
    assert_eq!(answer.header("electric-has-data"), "true");
    assert_eq!(
        answer.header("cache-control"),
        "public, max-age=60, stale-while-revalidate=300"
    );
    assert!(answer.headers.contains_key("electric-schema"));
    assert!(!answer.headers.contains_key("electric-cursor"));
    let body = answer.json();
    // Default replica: an update carries the key and the changed columns, a delete the key.
    assert_eq!(body[0]["headers"]["operation"], "update");
    assert_eq!(body[0]["value"], json!({"id": "2", "title": "B"}));
    assert_eq!(body[0]["key"], "\"public\".\"items\"/\"2\"");
    assert!(body[0].get("old_value").is_none());
    assert_eq!(body[1]["headers"]["operation"], "delete");
    assert_eq!(body[1]["value"], json!({"id": "3"}));
    assert_eq!(body[2]["headers"]["control"], "up-to-date");
    assert_eq!(body[2]["headers"]["global_last_seen_lsn"], "5");

    // From the first change's offset on, only the delete is new.
    let answer = get(
        &standin,
        &format!("/v1/shape?table=items&offset={offset}&handle={handle}"),
    )
    .await;
    assert_eq!(ids(&answer.json()), ["3"]);
}

#[tokio::test]
async fn columns_project_values_and_schema() {
    let standin = items();
    let answer = get(
        &standin,
        "/v1/shape?offset=-1&table=items&columns=%22id%22,%22title%22",
    )
    .await;
    assert_eq!(answer.json()[0]["value"], json!({"id": "1", "title": "a"}));
    let schema: Value = serde_json::from_str(answer.header("electric-schema")).unwrap();
    assert_eq!(
        schema,
        json!({"id": {"type": "int8", "pk_index": 0, "not_null": true}, "title": {"type": "text"}})
    );
    let answer = get(&standin, "/v1/shape?offset=-1&table=items&columns=title").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["errors"]["columns"][0],
        "The list of columns must include all primary key columns, missing: id"
    );
}

#[tokio::test]
async fn changes_only_snapshot_has_no_rows() {
    let standin = items();
    let answer = get(&standin, "/v1/shape?offset=-1&table=items&log=changes_only").await;
    let body = answer.json();
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["headers"]["control"], "snapshot-end");
    assert_eq!(answer.header("electric-has-data"), "false");
}

#[tokio::test]
async fn etag_revalidation_answers_304_without_a_body() {
    let standin = items();
    let first = get(&standin, "/v1/shape?offset=-1&table=items").await;
    let etag = first.header("etag").to_owned();
    let request = Request::get("/v1/shape?offset=-1&table=items")
        .header("if-none-match", &etag)
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, request).await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("etag"), etag);
    assert_eq!(
        answer.header("electric-handle"),
        first.header("electric-handle")
    );

    let handle = first.header("electric-handle");
    let uri = format!("/v1/shape?offset=0_inf&table=items&handle={handle}");
    let log = get(&standin, &uri).await;
    let request = Request::get(&uri)
        .header(
            "if-none-match",
            format!("\"other\", {}", log.header("etag")),
        )
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&standin, request).await.status,
        StatusCode::NOT_MODIFIED
    );
}

#[tokio::test]
async fn head_is_get_without_a_body() {
    let standin = items();
    let request = Request::head("/v1/shape?offset=-1&table=items")
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert!(answer.headers.contains_key("electric-handle"));
}
