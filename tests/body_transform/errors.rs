//! Errors: oversized, malformed and truncated messages, a failing transform or setup, and
//! compressed upstream responses.

use super::*;

async fn transform_error(
    body: &'static str,
    layer: BodyTransformLayer<impl ShapeTransform>,
) -> TransformError {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::split(
        Bytes::copy_from_slice(body.as_bytes()),
        &[body.len() / 2],
    ));
    let (_, out) = exchange(layer, request, response).await;
    body_of(out).await.unwrap_err()
}

#[tokio::test]
async fn a_message_over_the_cap_errors_the_body() {
    let error = transform_error(
        r#"[{"key":"a","value":{"t":"short"}},{"key":"b","value":{"t":"a value much longer than the cap of sixty-four bytes"}}]"#,
        BodyTransformLayer::new(identity()).max_message_bytes(64),
    )
    .await;
    assert!(
        matches!(error, TransformError::MessageTooLarge { limit: 64 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_and_truncated_bodies_error_the_body() {
    // A malformed first message is a 502 (tests/transform_errors.rs); after one good message
    // the head is gone and the body errors.
    let malformed = transform_error(
        r#"[{"key":"a","value":{"t":"1"}},{"key":"b","value":{"t":"2"}},{"key":"c","value":{"t":1}}]"#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(malformed, TransformError::Malformed { .. }),
        "{malformed:?}"
    );
    let truncated = transform_error(
        r#"[{"key":"a","value":{"t":"1"}},{"key":"b""#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(truncated, TransformError::Truncated),
        "{truncated:?}"
    );
    let cut_after_message = transform_error(
        r#"[{"key":"a","value":{"t":"1"}}"#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(cut_after_message, TransformError::Truncated),
        "{cut_after_message:?}"
    );
}

#[tokio::test]
async fn a_transform_error_mid_stream_errors_the_body() {
    let layer = BodyTransformLayer::new(each_message(|message: &mut Message<'_>| {
        if message.key().as_deref() == Some("b") {
            return Err("cannot decrypt".into());
        }
        Ok(())
    }));
    let error = transform_error(
        r#"[{"key":"a","value":{}},{"key":"b","value":{}},{"key":"c","value":{}}]"#,
        layer,
    )
    .await;
    assert!(matches!(error, TransformError::Transform(_)), "{error:?}");
}

#[tokio::test]
async fn a_setup_error_is_a_502_that_leaks_nothing() {
    let layer = BodyTransformLayer::new(
        |_: &http::request::Parts, _: &http::response::Parts| async {
            Err::<fn(&mut Message<'_>) -> Result<(), BoxError>, BoxError>(
                "key service at 10.0.0.7 refused".into(),
            )
        },
    );
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::new([Bytes::from_static(b"[]")]));
    let (_, out) = exchange(layer, request, response).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(out.headers()["cache-control"], "no-store");
    assert!(out.extensions().get::<Rejection>().is_some());
    assert_eq!(
        body_of(out).await.unwrap(),
        r#"{"message":"Bad gateway: the response body could not be transformed: setup failed"}"#
    );
}

#[tokio::test]
async fn compressed_upstream_responses_are_refused() {
    let fixture = fixture("200_initial_offset_-1.json");
    let (request, mut response) =
        fixture_exchange(&fixture, Bytes::from_static(b"\x1f\x8b\x08\x00gzip"));
    response
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("compressed"),
        "{body}"
    );
}
