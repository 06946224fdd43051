//! The Electric stand-in (`testing` feature) against Electric's fixtures and protocol.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_electric::testing::{Column, ElectricStandIn, Row, StandInBody, TableSchema};

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/electric/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A guard against a hung test, not a timing assertion.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the stand-in did not answer")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// Every header the fixture lists is present, with the same value unless `illustrative`
    /// (handles, offsets, cursors, etags).
    fn assert_has_headers(&self, expected: &Value, illustrative: &[&str]) {
        let expected = expected.as_object().unwrap();
        for (name, value) in expected {
            if name == "transfer-encoding" {
                continue;
            }
            let actual = self.header(name);
            if !illustrative.contains(&name.as_str()) {
                assert_eq!(actual, value.as_str().unwrap(), "header {name}");
            }
        }
    }

    /// [`Answer::assert_has_headers`], and no Electric or caching header the fixture does not
    /// list (the fixtures list those completely; CORS and content headers not always).
    fn assert_headers_like(&self, expected: &Value, illustrative: &[&str]) {
        self.assert_has_headers(expected, illustrative);
        let expected = expected.as_object().unwrap();
        for name in self.headers.keys() {
            let name = name.as_str();
            let protocol = name.starts_with("electric-")
                || ["cache-control", "etag", "surrogate-control"].contains(&name);
            if protocol && name != "electric-server" {
                assert!(
                    expected.contains_key(name),
                    "unexpected header {name}: {:?}",
                    self.headers[name]
                );
            }
        }
    }
}

async fn answer(response: http::Response<StandInBody>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn send(standin: &ElectricStandIn, request: Request<Full<Bytes>>) -> Answer {
    answer(bounded(standin.clone().oneshot(request)).await.unwrap()).await
}

async fn get(standin: &ElectricStandIn, uri: &str) -> Answer {
    send(standin, Request::get(uri).body(Full::default()).unwrap()).await
}

async fn post(standin: &ElectricStandIn, uri: &str, body: &str) -> Answer {
    let request = Request::post(uri)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(standin, request).await
}

fn items_table() -> TableSchema {
    TableSchema::new("items")
        .column(Column::new("id", "int8").primary_key())
        .column(Column::new("title", "text"))
        .column(Column::new("done", "bool").not_null())
}

/// `items` with rows 1 (a, done), 2 (b), 3 (c).
fn items() -> ElectricStandIn {
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .build();
    standin.create_table(items_table()).unwrap();
    for (id, title, done) in [("1", "a", "true"), ("2", "b", "false"), ("3", "c", "false")] {
        standin
            .insert("items", [("id", id), ("title", title), ("done", done)])
            .unwrap();
    }
    standin
}

async fn handle_of(standin: &ElectricStandIn, query: &str) -> String {
    let answer = get(standin, &format!("/v1/shape?offset=-1&{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.header("electric-handle").to_owned()
}

fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["headers"]["operation"].is_string())
        .map(|m| m["value"]["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shape logs

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

// ---------------------------------------------------------------------------------------------
// 409 must-refetch

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

// ---------------------------------------------------------------------------------------------
// SSE

#[tokio::test]
async fn sse_sends_one_frame_per_message_then_keep_alives_then_closes() {
    let standin = ElectricStandIn::builder()
        .sse_keep_alive(Duration::from_millis(20))
        .sse_duration(Duration::from_millis(300))
        .build();
    standin.create_table(items_table()).unwrap();
    let handle = handle_of(&standin, "table=items").await;
    let uri = format!("/v1/shape?table=items&offset=0_inf&handle={handle}&live=true&live_sse=true");
    let response = bounded(
        standin
            .clone()
            .oneshot(Request::get(&uri).body(Full::default()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "public, max-age=1");
    assert_eq!(response.headers()["electric-handle"], handle.as_str());
    assert!(response.headers().contains_key("electric-cursor"));
    assert!(!response.headers().contains_key("electric-schema"));
    assert_eq!(standin.live_in_flight(), 1);
    standin
        .insert("items", [("id", "7"), ("title", "new"), ("done", "false")])
        .unwrap();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = bounded(body.frame()).await {
        let data = frame.unwrap().into_data().unwrap();
        frames.push(String::from_utf8(data.to_vec()).unwrap());
    }
    // The fixture's framing: `data: <json>\n\n`, no event or id fields.
    let data_frames: Vec<Value> = frames
        .iter()
        .filter(|frame| frame.starts_with("data: "))
        .map(|frame| {
            assert!(
                frame.ends_with("\n\n") && frame.matches('\n').count() == 2,
                "{frame:?}"
            );
            serde_json::from_str(frame.trim_start_matches("data: ").trim_end()).unwrap()
        })
        .collect();
    assert_eq!(data_frames.len(), 2, "{frames:?}");
    assert_eq!(data_frames[0]["value"]["id"], "7");
    assert_eq!(data_frames[1]["headers"]["control"], "up-to-date");
    let keep_alives = frames.iter().filter(|f| *f == ": keep-alive\n\n").count();
    assert!(keep_alives >= 1, "{frames:?}");
    assert_eq!(keep_alives + 2, frames.len(), "{frames:?}");
    // Stream ended by the stand-in: completed, not cancelled.
    assert_eq!(standin.live_in_flight(), 0);
    assert_eq!(standin.live_cancelled(), 0);

    let fixture_frames = std::fs::read_to_string(format!(
        "{}/tests/fixtures/electric/sse_live_stream.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(fixture_frames.contains("\n\n: keep-alive\n"));
}

#[tokio::test]
async fn dropped_sse_stream_and_long_poll_count_as_cancelled() {
    let standin = items();
    let handle = handle_of(&standin, "table=items").await;
    let base = format!("/v1/shape?table=items&offset=0_inf&handle={handle}&live=true");
    let sse = bounded(
        standin.clone().oneshot(
            Request::get(format!("{base}&live_sse=true"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(standin.live_in_flight(), 1);
    drop(sse);
    assert_eq!(standin.live_cancelled(), 1);

    let poll = tokio::spawn(
        standin
            .clone()
            .oneshot(Request::get(&base).body(Full::default()).unwrap()),
    );
    bounded(standin.wait_for_live_in_flight(1)).await;
    poll.abort();
    bounded(standin.wait_for_live_cancelled(2)).await;
    assert_eq!(standin.live_in_flight(), 0);
}

// ---------------------------------------------------------------------------------------------
// Where clauses

#[tokio::test]
async fn where_subset_with_params_is_evaluated_by_type() {
    let standin = items();
    standin
        .insert("items", [("id", "10"), ("title", "j"), ("done", "false")])
        .unwrap();
    for (where_clause, params, expected) in [
        ("id > 2", vec![], vec!["3", "10"]),
        ("id >= $1 AND NOT done", vec!["2"], vec!["2", "3", "10"]),
        (
            "title IN ($1, 'c') OR id = 10",
            vec!["a"],
            vec!["1", "3", "10"],
        ),
        (
            "(title <> 'a') AND done = $1",
            vec!["false"],
            vec!["2", "3", "10"],
        ),
        (
            "title IS NOT NULL AND id != 3",
            vec![],
            vec!["1", "2", "10"],
        ),
    ] {
        let mut query = format!(
            "/v1/shape?offset=-1&table=items&where={}",
            tower_electric::protocol::query::encode_component(where_clause)
        );
        for (index, value) in params.iter().enumerate() {
            query.push_str(&format!("&params%5B{}%5D={value}", index + 1));
        }
        let answer = get(&standin, &query).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{where_clause}: {:?}",
            answer.body
        );
        assert_eq!(ids(&answer.json()), expected, "{where_clause}");
    }
}

#[tokio::test]
async fn where_outside_the_subset_is_a_400_in_electrics_shape() {
    let standin = items();
    for (where_clause, message) in [
        (
            "id IN (SELECT id FROM secrets)",
            "a subquery is not supported",
        ),
        ("lower(title) = 'a'", "a function call is not supported"),
        ("secret = 1", "unknown reference secret"),
        ("id = $1", "parameter $1 was not given"),
        ("id = 1; drop table items", "must be a single expression"),
    ] {
        let answer = get(
            &standin,
            &format!(
                "/v1/shape?offset=-1&table=items&where={}",
                tower_electric::protocol::query::encode_component(where_clause)
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{where_clause}");
        let body = answer.json();
        assert_eq!(body["message"], "Invalid request");
        let error = body["errors"]["where"][0].as_str().unwrap();
        assert!(error.contains(message), "{where_clause}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Validation, auth, CORS, routes

#[tokio::test]
async fn validation_errors_are_the_fixtures() {
    let fixture = fixture("400_invalid_request.json");
    let standin = ElectricStandIn::new();
    standin
        .create_table(
            TableSchema::new("users")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("name", "text")),
        )
        .unwrap();
    standin
        .create_table(
            TableSchema::new("queryable_users")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("name", "text"))
                .column(Column::new("secret_token", "text")),
        )
        .unwrap();
    for example in fixture["examples"].as_array().unwrap() {
        let query = example["query"].as_str().unwrap();
        let answer = get(&standin, &format!("/v1/shape?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json(), example["body"], "{query}");
        for (name, value) in fixture["response_headers"].as_object().unwrap() {
            assert_eq!(
                answer.header(name),
                value.as_str().unwrap(),
                "{query}: {name}"
            );
        }
        assert_eq!(answer.header("access-control-allow-origin"), "*");
    }
    for (query, field) in [
        ("offset=-1", "table"),
        ("table=users", "offset"),
        ("offset=-1&table=users&table=items", "table"),
    ] {
        let answer = get(&standin, &format!("/v1/shape?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.json()["errors"][field].is_array(), "{query}");
    }
}

#[tokio::test]
async fn secret_is_required_when_configured_with_electrics_401() {
    let fixture = fixture("401_invalid_secret.json");
    let standin = ElectricStandIn::builder().secret("s3cr3t").build();
    standin.create_table(items_table()).unwrap();
    for query in [
        "offset=-1&table=items",
        "offset=-1&table=items&secret=wrong",
        "offset=-1&table=items&api_secret=wrong",
    ] {
        let request = Request::get(format!("/v1/shape?{query}"))
            .header("origin", "https://app.example")
            .body(Full::default())
            .unwrap();
        let answer = send(&standin, request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(answer.json(), fixture["response"]["body"]);
        answer.assert_headers_like(&fixture["response"]["headers"], &[]);
        assert!(!answer.headers.contains_key("access-control-allow-origin"));
    }
    for query in [
        "offset=-1&table=items&secret=s3cr3t",
        "offset=-1&table=items&api_secret=s3cr3t",
    ] {
        assert_eq!(
            get(&standin, &format!("/v1/shape?{query}")).await.status,
            StatusCode::OK
        );
    }
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/shape")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&standin, preflight).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn preflight_is_the_fixture() {
    let fixture = fixture("204_options_preflight.json");
    let standin = ElectricStandIn::new();
    let mut request = Request::builder().method(Method::OPTIONS).uri("/v1/shape");
    for (name, value) in fixture["request"]["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let answer = send(&standin, request.body(Full::default()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    answer.assert_headers_like(&fixture["response"]["headers"], &[]);
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let standin = items();
    for path in ["/v1/shape/", "/v1//shape", "/v1/%73hape", "/", "/v2/shape"] {
        let answer = get(&standin, &format!("{path}?offset=-1&table=items")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body, "Not found");
    }
    let health = get(&standin, "/v1/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "active"}));
    let delete = Request::delete("/v1/shape?offset=-1&table=items")
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, delete).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json(), json!({"message": "DELETE not allowed"}));
    let put = Request::put("/v1/shape?offset=-1&table=items")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&standin, put).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn cors_origin_is_echoed() {
    let standin = items();
    let request = Request::get("/v1/shape?offset=-1&table=items")
        .header("origin", "https://app.example")
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, request).await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(
        answer.header("access-control-expose-headers"),
        tower_electric::protocol::headers::EXPOSE_HEADERS_VALUE
    );
}

// ---------------------------------------------------------------------------------------------
// Subsets

fn issues() -> ElectricStandIn {
    let standin = ElectricStandIn::new();
    standin
        .create_table(
            TableSchema::new("issues")
                .column(Column::new("id", "text").primary_key())
                .column(Column::new("title", "text"))
                .column(Column::new("status", "text"))
                .column(Column::new("priority", "text"))
                .column(Column::new("created_at", "timestamptz")),
        )
        .unwrap();
    for (id, priority, created) in [
        ("issue-1", "low", "2024-01-01"),
        ("issue-2", "high", "2024-01-02"),
        ("issue-3", "high", "2024-01-03"),
        ("issue-4", "high", "2024-01-04"),
    ] {
        standin
            .insert(
                "issues",
                [
                    ("id", id),
                    ("title", "t"),
                    ("status", "backlog"),
                    ("priority", priority),
                    ("created_at", created),
                ],
            )
            .unwrap();
    }
    standin
}

#[tokio::test]
async fn post_subset_is_the_fixture_shape() {
    let fixture = fixture("200_subset_snapshot.json");
    let standin = issues();
    let handle = handle_of(&standin, "table=issues").await;
    let mut body = fixture["request"]["body"].clone();
    body["limit"] = json!(2);
    let answer = post(
        &standin,
        &format!("/v1/shape?handle={handle}&offset=0_inf&table=issues"),
        &body.to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.assert_has_headers(
        &fixture["response"]["headers"],
        &["electric-handle", "electric-offset"],
    );
    let json = answer.json();
    for key in fixture["response"]["body"]["metadata"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(json["metadata"].get(key).is_some(), "metadata.{key}");
    }
    let data = json["data"].as_array().unwrap();
    let found: Vec<_> = data
        .iter()
        .map(|m| m["value"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["issue-4", "issue-3"], "high, newest first, two");
    assert_eq!(data[0]["headers"]["operation"], "insert");
    assert_eq!(
        data[0]["headers"]["snapshot_mark"],
        json["metadata"]["snapshot_mark"]
    );
}

#[tokio::test]
async fn get_subset_params_and_offset() {
    let standin = issues();
    let answer = get(
        &standin,
        "/v1/shape?offset=-1&table=issues&subset__where=priority+%3D+%241&subset__params=%7B%221%22%3A%22high%22%7D&subset__order_by=id&subset__limit=1&subset__offset=1",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.header("electric-snapshot"), "true");
    assert_eq!(answer.header("cache-control"), "no-cache");
    let data = answer.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1);
    assert_eq!(data[0]["value"]["id"], "issue-3");
}

#[tokio::test]
async fn subset_where_is_anded_with_the_shape_where() {
    let standin = issues();
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=issues&where=id+%3C%3E+%27issue-2%27",
        r#"{"subset": {"where": "priority = 'high'", "order_by": "id"}}"#,
    )
    .await;
    let json = answer.json();
    let found: Vec<_> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["issue-3", "issue-4"]);
}

#[tokio::test]
async fn post_body_keys_are_merged_over_the_url_like_electric() {
    let standin = ElectricStandIn::demo();
    // The URL a proxy built for tenant acme...
    let uri = "/v1/shape?offset=-1&table=items&where=tenant_id+%3D+%241&params%5B1%5D=acme";
    let own = post(&standin, uri, "").await;
    let tenants: Vec<_> = own.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["tenant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tenants, ["acme", "acme", "acme"]);
    // ...is rewritten by body keys: another tenant's rows, or another table.
    let other_tenant = post(&standin, uri, r#"{"params[1]": "globex"}"#).await;
    let json = other_tenant.json();
    assert!(json["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["value"]["tenant_id"] == "globex"));
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    let other_table = post(&standin, uri, r#"{"table": "tenants", "where": "true"}"#).await;
    assert_eq!(
        other_table.status,
        StatusCode::BAD_REQUEST,
        "tenants has no tenant_id"
    );
    let other_table = post(
        &standin,
        "/v1/shape?offset=-1&table=items",
        r#"{"table": "tenants"}"#,
    )
    .await;
    assert_eq!(
        other_table.json()["data"][0]["value"]["keys"],
        "placeholder-keys"
    );
}

#[tokio::test]
async fn post_body_errors_are_the_fixtures() {
    let fixture = fixture("other_errors.json");
    let examples = fixture["examples"].as_array().unwrap();
    let standin = items();
    let not_object = post(&standin, "/v1/shape?offset=-1&table=items", "[1]").await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_object.json(), examples[0]["body"]);
    let bad_json = post(&standin, "/v1/shape?offset=-1&table=items", "{").await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    let json = bad_json.json();
    assert_eq!(json["error"], examples[1]["body"]["error"]);
    assert!(json["details"].is_string());
    let empty = post(&standin, "/v1/shape?offset=-1&table=items", "").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json()["data"].as_array().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Request log, data API, TCP

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

    let addr = server.addr();
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
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

// ---------------------------------------------------------------------------------------------
// The Postgres mode (feature `postgres`)

/// [`items`] on a throwaway Postgres cluster, with `tags` (`item_id`, `tag`) beside it.
#[cfg(feature = "postgres")]
fn items_on_postgres() -> ElectricStandIn {
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .postgres(tower_electric::testing::postgres::TestCluster::start().unwrap())
        .build();
    standin.create_table(items_table()).unwrap();
    for (id, title, done) in [("1", "a", "true"), ("2", "b", "false"), ("3", "c", "false")] {
        standin
            .insert("items", [("id", id), ("title", title), ("done", done)])
            .unwrap();
    }
    standin
        .create_table(
            TableSchema::new("tags")
                .column(Column::new("item_id", "int8").primary_key())
                .column(Column::new("tag", "text")),
        )
        .unwrap();
    standin
        .insert("tags", [("item_id", "3"), ("tag", "urgent")])
        .unwrap();
    standin
}

#[cfg(feature = "postgres")]
fn where_query(where_clause: &str) -> String {
    format!(
        "/v1/shape?offset=-1&table=items&where={}",
        tower_electric::protocol::query::encode_component(where_clause)
    )
}

/// What the stand-in's own evaluator refuses, Postgres evaluates: functions, `LIKE`, casts,
/// and a subquery reading a table the stand-in mirrored its writes into.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_where_clauses_get_postgres_semantics() {
    let standin = items_on_postgres();
    for (where_clause, expected) in [
        ("lower(title) = 'a'", vec!["1"]),
        ("title LIKE '_' AND NOT done", vec!["2", "3"]),
        ("id::text || title = '2b'", vec!["2"]),
        (
            "id IN (SELECT item_id FROM tags WHERE tag = 'urgent')",
            vec!["3"],
        ),
        ("done IS DISTINCT FROM true", vec!["2", "3"]),
    ] {
        let answer = get(&standin, &where_query(where_clause)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{where_clause}: {:?}",
            answer.body
        );
        assert_eq!(ids(&answer.json()), expected, "{where_clause}");
    }
    // The plain stand-in refuses the first of them.
    let answer = get(&items(), &where_query("lower(title) = 'a'")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_a_where_postgres_rejects_is_a_400_in_electrics_shape() {
    let standin = items_on_postgres();
    for (where_clause, message) in [
        ("nope = 1", "column \"nope\" does not exist"),
        ("title = 1", "operator does not exist: text = integer"),
        ("id = $1", "the clause reads $1..$1, and 0 params are given"),
        ("title", "argument of WHERE must be type boolean"),
    ] {
        let answer = get(&standin, &where_query(where_clause)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{where_clause}");
        let body = answer.json();
        assert_eq!(body["message"], "Invalid request");
        let error = body["errors"]["where"][0].as_str().unwrap();
        assert!(error.contains(message), "{where_clause}: {error}");
    }
}

/// Live changes are read through the where as Postgres reads it: rows move in and out.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_updates_moving_rows_across_the_where_become_inserts_and_deletes() {
    let standin = items_on_postgres();
    // Typed by Postgres from its use: `$1` is a bool here, so `no` means false.
    let query = "table=items&where=NOT+done+AND+%241+%3D+false&params%5B1%5D=no";
    let snapshot = get(&standin, &format!("/v1/shape?offset=-1&{query}")).await;
    assert_eq!(snapshot.status, StatusCode::OK, "{:?}", snapshot.body);
    assert_eq!(ids(&snapshot.json()), ["2", "3"]);
    let handle = snapshot.header("electric-handle").to_owned();
    standin
        .update("items", [("id", "1"), ("done", "f")])
        .unwrap();
    standin
        .update("items", [("id", "2"), ("done", "t")])
        .unwrap();
    standin.delete("items", [("id", "3")]).unwrap();
    let answer = get(
        &standin,
        &format!("/v1/shape?offset=0_inf&handle={handle}&{query}"),
    )
    .await;
    let body = answer.json();
    let changes: Vec<(&str, &str)> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            Some((
                m["headers"]["operation"].as_str()?,
                m["value"]["id"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(changes, [("insert", "1"), ("delete", "2"), ("delete", "3")]);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_subsets_are_filtered_ordered_and_cut_by_postgres() {
    let standin = items_on_postgres();
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=items&where=id+%3E+1",
        r#"{"where": "title >= $1", "params": {"1": "b"}, "order_by": "title DESC", "limit": 1, "offset": 1}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let data = &answer.json()["data"];
    assert_eq!(ids(data), ["2"]);
    // The shape's where holds for subsets too: row 1 is not in this shape.
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=items&where=id+%3E+1",
        r#"{"where": "title = 'a'"}"#,
    )
    .await;
    assert_eq!(ids(&answer.json()["data"]), Vec::<String>::new());
    // A subset reads only the queryable columns.
    let answer = get(
        &standin,
        "/v1/shape?offset=-1&table=items&queryable_columns=id,title&subset__where=done",
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
    assert!(answer.json()["errors"]["subset__where"][0]
        .as_str()
        .unwrap()
        .contains("column \"done\" does not exist"));
}

/// By connection string: the stand-in works in a database of its own, dropped with it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_by_url_the_stand_in_has_a_database_of_its_own_while_it_lives() {
    let cluster = tower_electric::testing::postgres::TestCluster::start().unwrap();
    let client = cluster.connect().await.unwrap();
    let databases = || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'tower_electric_standin_%'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let standin = ElectricStandIn::builder()
        .postgres(cluster.connection_string())
        .build();
    standin.create_table(items_table()).unwrap();
    standin
        .insert("items", [("id", "1"), ("title", "a"), ("done", "true")])
        .unwrap();
    let answer = get(&standin, &where_query("title ~ '^a$'")).await;
    assert_eq!(ids(&answer.json()), ["1"]);
    assert_eq!(databases().await, 1);
    drop(standin);
    assert_eq!(databases().await, 0);
}
