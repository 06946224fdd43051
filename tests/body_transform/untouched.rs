//! Responses that pass untouched: 409 must-refetch, 304 to conditional requests, errors and
//! other content types.

use super::*;

#[tokio::test]
async fn must_refetch_409_passes_untouched() {
    let fixture = fixture("409_must_refetch.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, mut response) = fixture_exchange(&fixture, body.clone());
    response
        .headers_mut()
        .insert("content-length", body.len().into());
    let upstream_headers = response.headers().clone();
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(out.status(), StatusCode::CONFLICT);
    assert_eq!(*out.headers(), upstream_headers);
    assert_eq!(body_of(out).await.unwrap(), body);
}

#[tokio::test]
async fn conditional_requests_get_upstreams_304_untouched() {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .header("if-none-match", "\"h:-1:0_inf\"")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header("etag", "\"h:-1:0_inf\"")
        .body(ChunkedBody::new([]))
        .unwrap();
    let (forwarded, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(forwarded["if-none-match"], "\"h:-1:0_inf\"");
    assert_eq!(out.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(out.headers()["etag"], "\"h:-1:0_inf\"");
    assert!(body_of(out).await.unwrap().is_empty());
}

#[tokio::test]
async fn errors_and_other_content_types_pass_untouched() {
    for (status, content_type, body) in [
        (
            400,
            "application/json; charset=utf-8",
            r#"{"message":"Invalid request","errors":{"offset":["x"]}}"#,
        ),
        (
            503,
            "application/json; charset=utf-8",
            r#"{"code":"x","message":"y"}"#,
        ),
        (200, "text/plain", "not json ["),
    ] {
        let request = Request::get("/v1/shape?table=items&offset=-1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(ChunkedBody::new([Bytes::from_static(body.as_bytes())]))
            .unwrap();
        let (_, out) = exchange(
            BodyTransformLayer::new(each_message(uppercase)),
            request,
            response,
        )
        .await;
        assert_eq!(out.status(), status);
        assert_eq!(body_of(out).await.unwrap(), body);
    }
}
