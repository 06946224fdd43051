//! Methods: GET, HEAD, POST and a bare OPTIONS, and a GET body that does not go on.

use super::*;

#[tokio::test]
async fn methods_are_get_head_post_and_a_bare_options() {
    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::DELETE, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    outcome.refused(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(outcome.headers["allow"], "GET, HEAD, POST, OPTIONS");

    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::HEAD, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(outcome.forwarded().method, Method::HEAD);

    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::OPTIONS, "table=whatever&x=1", None, "preflight"),
    )
    .await;
    // A preflight no CORS layer answered goes on for Electric to answer from its headers,
    // without the client's unchecked query and body.
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::OPTIONS);
    assert_eq!(forwarded.uri, "/v1/shape");
    assert!(forwarded.body.is_empty());

    // A GET body was never checked, so it does not go on.
    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(
            Method::GET,
            "table=items&offset=-1",
            Some("t1"),
            r#"{"table":"x"}"#,
        ),
    )
    .await;
    assert!(outcome.forwarded().body.is_empty());
}
