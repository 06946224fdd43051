//! Subsets: checked and rendered from their parsed form, in the query and in a POST body.

use super::*;

#[tokio::test]
async fn subsets_are_checked_and_rendered_from_their_parsed_form() {
    let upstream = get(attack_cases::PARAMETERISED_QUERIES[1], Some("t1"))
        .await
        .upstream();
    assert_eq!(
        upstream.subset.where_clause.as_deref(),
        Some("title ILIKE $1")
    );
    assert_eq!(upstream.subset.params, Some(vec!["%a%".to_owned()]));
    assert_eq!(upstream.subset.limit, Some(10));
    assert_eq!(upstream.subset.offset, Some(5));
    assert_eq!(
        upstream.subset.order_by.as_deref(),
        Some("id DESC NULLS LAST")
    );
    assert_eq!(upstream.subset.where_expr, None);
    // The structured form alone is not checked, so not accepted.
    get(
        "table=items&offset=-1&subset__where_expr=%7B%7D",
        Some("t1"),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_post_subset_body_is_limited_checked_and_reserialised() {
    let outcome = post(
        "table=items&offset=-1",
        Some("t1"),
        attack_cases::SUBSET_BODY,
    )
    .await;
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::POST);
    assert!(!forwarded.uri.contains("subset"), "{}", forwarded.uri);
    let body: serde_json::Value = serde_json::from_slice(&forwarded.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"where":"done AND title = $1","params":{"1":"x"},"limit":3,"order_by":"id"})
    );
    assert_eq!(
        forwarded.headers["content-length"],
        forwarded.body.len().to_string()
    );
    assert_eq!(
        outcome.upstream().where_clause.as_deref(),
        Some("tenant_id = $1")
    );

    for body in attack_cases::SMUGGLING_BODIES {
        post("table=items&offset=-1", Some("t1"), body)
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
    let large = format!(r#"{{"where":"title = '{}'"}}"#, "a".repeat(70 * 1024));
    post("table=items&offset=-1", Some("t1"), &large)
        .await
        .refused(StatusCode::PAYLOAD_TOO_LARGE);
    post(
        "table=items&offset=-1&subset__where=done",
        Some("t1"),
        r#"{"where":"done"}"#,
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
}
