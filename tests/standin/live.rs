//! Live long-polls and their timeouts, rows moving across the where, and 409 must-refetch.

use super::*;

#[tokio::test]
async fn live_long_poll_is_woken_by_a_change_like_the_fixture() {
    let fixture = fixture("200_live_update_replica_full.json");
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .build();
    let text = |name: &str| Column::new(name, "text");
    standin
        .create_table(
            TableSchema::new("wide_table")
                .column(Column::new("id", "int8").primary_key())
                .column(text("value1"))
                .column(text("value2"))
                .column(text("value3")),
        )
        .unwrap();
    standin
        .insert(
            "wide_table",
            [
                ("id", "1"),
                ("value1", "test value 1"),
                ("value2", "test value 1"),
                ("value3", "test value 1"),
            ],
        )
        .unwrap();
    let handle = handle_of(&standin, "table=wide_table&replica=full").await;
    let query = fixture["request"]["query"]
        .as_str()
        .unwrap()
        .replace("3833821-1721812114261", &handle);
    let request = Request::get(format!("/v1/shape?{query}"))
        .body(Full::default())
        .unwrap();
    let pending = tokio::spawn(standin.clone().oneshot(request));
    bounded(standin.wait_for_live_in_flight(1)).await;
    let offset = standin
        .update("wide_table", [("id", "1"), ("value2", "test value 2")])
        .unwrap();
    let answer = answer(bounded(pending).await.unwrap().unwrap()).await;
    assert_eq!(standin.live_in_flight(), 0);
    assert_eq!(standin.live_cancelled(), 0);
    assert_eq!(answer.status, StatusCode::OK);
    let response = &fixture["response"];
    answer.assert_headers_like(
        &response["headers"],
        &[
            "etag",
            "electric-handle",
            "electric-cursor",
            "electric-offset",
        ],
    );
    assert_eq!(answer.header("electric-offset"), offset.to_string());
    assert_eq!(
        answer.header("etag"),
        format!("\"{handle}:0_inf:{offset}\"")
    );
    assert!(answer.header("electric-cursor").parse::<u64>().is_ok());
    let body = answer.json();
    let expected = &response["body"][0];
    for field in ["key", "value", "old_value"] {
        assert_eq!(body[0][field], expected[field], "{field}");
    }
    let mut header_keys: Vec<_> = body[0]["headers"].as_object().unwrap().keys().collect();
    let mut expected_keys: Vec<_> = expected["headers"].as_object().unwrap().keys().collect();
    header_keys.sort();
    expected_keys.sort();
    assert_eq!(header_keys, expected_keys);
    assert_eq!(body[0]["headers"]["operation"], "update");
    assert_eq!(body[1]["headers"]["control"], "up-to-date");
    assert_eq!(
        body[1]["headers"]["global_last_seen_lsn"],
        offset.tx.to_string()
    );
}

#[tokio::test]
async fn long_poll_timeout_answers_up_to_date_without_data_like_the_fixture() {
    let fixture = fixture("200_live_timeout_no_changes.json");
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_millis(50))
        .build();
    standin.create_table(items_table()).unwrap();
    let handle = handle_of(&standin, "table=items").await;
    let answer = get(
        &standin,
        &format!("/v1/shape?cursor=&handle={handle}&live=true&offset=0_inf&table=items"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_headers_like(
        &fixture["response"]["headers"],
        &[
            "etag",
            "electric-handle",
            "electric-cursor",
            "electric-offset",
        ],
    );
    assert_eq!(answer.header("electric-offset"), "0_inf");
    let etag = answer.header("etag");
    assert!(
        etag.starts_with(&format!("\"{handle}:0_inf:0_inf:")),
        "{etag}"
    );
    let body = answer.json();
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["headers"]["control"], "up-to-date");
    assert_eq!(standin.live_cancelled(), 0);
}

#[tokio::test]
async fn updates_moving_rows_across_the_where_become_inserts_and_deletes() {
    let standin = items();
    let query = "table=items&where=done+%3D+%241&params%5B1%5D=false";
    let snapshot = get(&standin, &format!("/v1/shape?offset=-1&{query}")).await;
    assert_eq!(ids(&snapshot.json()), ["2", "3"]);
    let handle = snapshot.header("electric-handle").to_owned();
    standin
        .update("items", [("id", "1"), ("done", "f")])
        .unwrap();
    standin
        .update("items", [("id", "2"), ("done", "t")])
        .unwrap();
    standin
        .update("items", [("id", "1"), ("title", "z")])
        .unwrap();
    let answer = get(
        &standin,
        &format!("/v1/shape?offset=0_inf&handle={handle}&{query}"),
    )
    .await;
    let body = answer.json();
    let operations: Vec<_> = body.as_array().unwrap()[..3]
        .iter()
        .map(|m| m["headers"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["insert", "delete", "update"]);
    assert_eq!(
        body[0]["value"],
        json!({"id": "1", "title": "a", "done": "f"})
    );
    assert_eq!(body[1]["value"], json!({"id": "2"}));
}

#[tokio::test]
async fn unknown_handle_is_a_409_like_the_fixture() {
    let fixture = fixture("409_must_refetch.json");
    let standin = items();
    let query = fixture["request"]["query"].as_str().unwrap();
    let answer = get(&standin, &format!("/v1/shape?{query}")).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let response = &fixture["response"];
    answer.assert_headers_like(&response["headers"], &["etag", "electric-handle"]);
    assert_eq!(answer.body, response["body"].to_string());
    let handle = answer.header("electric-handle");
    assert_eq!(answer.header("etag"), format!("\"{handle}:0_0:\""));
    // The new handle is the shape's: a refetch from -1 gets it.
    assert_eq!(handle_of(&standin, "table=items").await, handle);
}

#[tokio::test]
async fn rotation_gives_409_with_a_new_handle_to_waiting_and_later_requests() {
    let standin = items();
    let old = handle_of(&standin, "table=items").await;
    let uri = format!("/v1/shape?table=items&offset=0_inf&handle={old}&live=true");
    let pending = tokio::spawn(
        standin
            .clone()
            .oneshot(Request::get(&uri).body(Full::default()).unwrap()),
    );
    bounded(standin.wait_for_live_in_flight(1)).await;
    standin.rotate("items").unwrap();
    let waiting = answer(bounded(pending).await.unwrap().unwrap()).await;
    assert_eq!(waiting.status, StatusCode::CONFLICT);
    let new = waiting.header("electric-handle").to_owned();
    assert_ne!(new, old);
    assert_eq!(
        waiting.json(),
        json!([{"headers": {"control": "must-refetch"}}])
    );

    let later = get(
        &standin,
        &format!("/v1/shape?table=items&offset=0_inf&handle={old}"),
    )
    .await;
    assert_eq!(later.status, StatusCode::CONFLICT);
    assert_eq!(later.header("electric-handle"), new);
    assert_eq!(
        later.header("cache-control"),
        "public, max-age=60, must-revalidate"
    );
    let refetch = get(
        &standin,
        &format!("/v1/shape?table=items&offset=-1&handle={new}&expired_handle={old}"),
    )
    .await;
    assert_eq!(refetch.status, StatusCode::OK);
    assert_eq!(refetch.header("electric-handle"), new);
}
