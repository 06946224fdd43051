//! Caches kept safe: principal-dependent responses private and varying, Electric's caching
//! kept for the same-for-everyone.

use super::*;

#[tokio::test]
async fn principal_dependent_responses_are_private_and_vary() {
    let outcome = get("table=items&offset=-1", Some("t1")).await;
    assert_eq!(
        outcome.headers["cache-control"],
        "private, max-age=60, stale-while-revalidate=60"
    );
    assert_eq!(outcome.headers["vary"], "authorization, cookie");

    // The same for everyone: Electric's caching stays.
    let outcome = get("table=announcements&offset=-1", Some("t1")).await;
    assert_eq!(
        outcome.headers["cache-control"],
        ELECTRIC_INITIAL_CACHE_CONTROL
    );
    assert!(outcome.headers.get("vary").is_none());
    assert_eq!(
        outcome.upstream().where_clause.as_deref(),
        Some("published")
    );

    let layer = ShapeParamPolicyLayer::new(gateway_policy())
        .cache_safety(CacheSafety::VaryOnly)
        .vary_on([http::header::COOKIE]);
    let outcome = send_with(
        layer,
        request(Method::GET, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(
        outcome.headers["cache-control"],
        ELECTRIC_INITIAL_CACHE_CONTROL
    );
    assert_eq!(outcome.headers["vary"], "cookie");
}

#[tokio::test]
async fn a_private_responses_lifetimes_are_capped_at_the_configured_bound() {
    let capped =
        || ShapeParamPolicyLayer::new(gateway_policy()).private_max_age(Duration::from_secs(10));
    // Electric's week on a snapshot and month of stale-while-revalidate become ten seconds.
    let outcome = send_with(
        capped(),
        request(Method::GET, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(
        outcome.headers["cache-control"],
        "private, max-age=10, stale-while-revalidate=10"
    );
    // The same for everyone is not private, and keeps Electric's lifetimes.
    let outcome = send_with(
        capped(),
        request(Method::GET, "table=announcements&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(
        outcome.headers["cache-control"],
        ELECTRIC_INITIAL_CACHE_CONTROL
    );
}
