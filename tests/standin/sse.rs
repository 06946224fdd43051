//! Server-sent events: frames, keep-alives, closing, and cancelled streams.

use super::*;

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
