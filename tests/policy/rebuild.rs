//! An accepted request is rebuilt from scratch: only the policy's table, visible columns and
//! the protocol's own params go upstream.

use super::*;

#[tokio::test]
async fn an_accepted_request_is_rebuilt_from_scratch() {
    let outcome = get(
        "table=items&offset=-1&log=full&where=done&secret=guess&api_secret=x&source_id=s\
         &queryable_columns=internal_note&hint=1&columns=id,title",
        Some("t1"),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::GET);
    assert!(forwarded.uri.starts_with("/v1/shape?"));
    for leaked in ["secret", "source_id", "hint", "internal_note", "guess"] {
        assert!(
            !forwarded.uri.contains(leaked),
            "{leaked} in {}",
            forwarded.uri
        );
    }
    let upstream = outcome.upstream();
    assert_eq!(upstream.table, Some(TableName::parse("items").unwrap()));
    assert_eq!(upstream.columns, Some(ids(&["id", "title"])));
    assert_eq!(
        upstream.queryable_columns,
        Some(ids(&["id", "tenant_id", "title", "done"]))
    );
    assert_eq!(upstream.params, ["t1"]);
    assert!(upstream.extras.is_empty());
    assert!(upstream.secret.is_none() && upstream.api_secret.is_none());
    assert!(forwarded.body.is_empty());
}

#[tokio::test]
async fn without_client_columns_only_the_visible_ones_are_asked_for() {
    let upstream = get("table=items&offset=-1", Some("t1")).await.upstream();
    assert_eq!(
        upstream.columns,
        Some(ids(&["id", "tenant_id", "title", "done"]))
    );
    assert_eq!(upstream.where_clause.as_deref(), Some("tenant_id = $1"));
}

#[tokio::test]
async fn protocol_params_go_through() {
    let upstream = get(
        "table=items&offset=12_3&handle=h1&live=true&live_sse=true&cursor=c\
         &expired_handle=h0&cache-buster=cb&log=changes_only&replica=full",
        Some("t1"),
    )
    .await
    .upstream();
    assert_eq!(upstream.offset.to_string(), "12_3");
    assert_eq!(upstream.handle.as_deref(), Some("h1"));
    assert!(upstream.live && upstream.live_sse);
    assert_eq!(upstream.cursor.as_deref(), Some("c"));
    // Past `-1` the handle names the shape; `expired_handle` would only split a cache.
    assert_eq!(upstream.expired_handle, None);
    assert_eq!(upstream.cache_buster.as_deref(), Some("cb"));
    assert_eq!(upstream.replica, Some(Replica::Full));
}
