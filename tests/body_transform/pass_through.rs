//! Byte-exact pass-through: transforms that change nothing return the upstream's bytes (JSON
//! and SSE), and a transformed response's headers.

use super::*;

const SHAPE_FIXTURES: [&str; 5] = [
    "200_initial_offset_-1.json",
    "200_live_update_replica_full.json",
    "200_live_timeout_no_changes.json",
    "200_offset_now.json",
    "200_subset_snapshot.json",
];

#[tokio::test]
async fn identity_and_read_only_transforms_return_the_fixtures_bytes() {
    for name in SHAPE_FIXTURES {
        let fixture = fixture(name);
        let body = &fixture["response"]["body"];
        for rendering in [
            serde_json::to_string(body).unwrap(),
            serde_json::to_string_pretty(body).unwrap(),
        ] {
            let bytes = Bytes::from(rendering);
            let (request, response) = fixture_exchange(&fixture, bytes.clone());
            let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
            assert_eq!(out.status(), StatusCode::OK);
            assert_eq!(body_of(out).await.unwrap(), bytes, "{name}");

            let (request, response) = fixture_exchange(&fixture, bytes.clone());
            let (_, out) = exchange(BodyTransformLayer::new(reader()), request, response).await;
            assert_eq!(body_of(out).await.unwrap(), bytes, "{name}");
        }
    }
}

#[tokio::test]
async fn sse_fixture_passes_byte_for_byte() {
    let path = format!(
        "{}/tests/fixtures/electric/sse_live_stream.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let stream = Bytes::from(std::fs::read(path).unwrap());
    let request =
        Request::get("/v1/shape?table=issues&live=true&live_sse=true&handle=h&offset=0_0")
            .body(Full::new(Bytes::new()))
            .unwrap();
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ChunkedBody::split(
            Bytes::copy_from_slice(&stream),
            &[3, 50, 51, 200],
        ))
        .unwrap();
    let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
    assert_eq!(body_of(out).await.unwrap(), stream);
}

#[tokio::test]
async fn transformed_response_drops_content_length_and_keeps_etag() {
    let fixture = fixture("200_initial_offset_-1.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, mut response) = fixture_exchange(&fixture, body.clone());
    response
        .headers_mut()
        .insert("content-length", body.len().into());
    let (forwarded, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(forwarded["accept-encoding"], "identity");
    assert!(out.headers().get("content-length").is_none());
    assert_eq!(
        out.headers()["etag"],
        fixture["response"]["headers"]["etag"].as_str().unwrap()
    );
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out[0]["value"], json!({"id": "2", "num": "10"}));
}
