//! Request bodies: `RequestBodyTransformLayer` on write bodies, their limits and rejections.

use super::*;

type BodyFn = fn(&mut Value) -> Result<(), Rejection>;

fn shout() -> EachBody<BodyFn> {
    fn upper_title(body: &mut Value) -> Result<(), Rejection> {
        let Some(title) = body.get_mut("title") else {
            return Err(Rejection::forbidden().with_message("title is required"));
        };
        *title = title.as_str().unwrap_or_default().to_uppercase().into();
        Ok(())
    }
    each_body(upper_title as BodyFn)
}

#[tokio::test]
async fn write_bodies_are_transformed_with_a_true_length() {
    let request = Request::post("/api/todos")
        .header("content-length", "17")
        .body(Full::new(Bytes::from_static(br#"{"title": "milk"}"#)))
        .unwrap();
    let (status, body, length) = write(RequestBodyTransformLayer::new(shout()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"title":"MILK"}"#);
    assert_eq!(length.as_deref(), Some("16"));
}

#[tokio::test]
async fn write_bodies_over_the_limit_are_413() {
    let declared = Request::post("/api/todos")
        .header("content-length", "100000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, _, _) = write(
        RequestBodyTransformLayer::new(shout()).max_body_bytes(64),
        declared,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let streamed = Request::post("/api/todos")
        .body(Full::new(Bytes::from(format!(
            r#"{{"title":"{}"}}"#,
            "x".repeat(100)
        ))))
        .unwrap();
    let (status, body, _) = write(
        RequestBodyTransformLayer::new(shout()).max_body_bytes(64),
        streamed,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, r#"{"message":"Payload too large"}"#);
}

#[tokio::test]
async fn write_bodies_that_are_not_json_are_400_and_transform_rejections_answer() {
    let bad = Request::post("/api/todos")
        .body(Full::new(Bytes::from_static(b"{\"title\":")))
        .unwrap();
    let (status, body, _) = write(RequestBodyTransformLayer::new(shout()), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"errors":{"body":["is not valid JSON"]},"message":"Invalid request"}"#
    );

    let refused = Request::post("/api/todos")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, _, _) = write(RequestBodyTransformLayer::new(shout()), refused).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let empty = Request::post("/api/todos")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body, _) = write(RequestBodyTransformLayer::new(shout()), empty).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
}
