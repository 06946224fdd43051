//! Policy definitions: closure policies, a row filter given the wrong number of values, and
//! bad policy text.

use super::*;

#[tokio::test]
async fn a_closure_policy_reads_the_principal_and_the_clients_hints() {
    let projects = TableName::parse("projects").unwrap();
    let filter = RowFilter::parse("owner = $1 AND archived = $2").unwrap();
    let policy = policy_fn(move |parts: &Parts, request: &ShapeRequest| {
        let principal = parts.extensions.get::<Principal>().cloned();
        // A hint the client sent: which view it wants; the policy decides what it means.
        let archived = request.extras.get("view") == Some("archive");
        let definition = principal.map(|p| {
            ShapeDefinition::new(projects.clone())
                .columns(ids(&["id", "name"]))
                .row_filter(&filter, [p.tenant, archived.to_string()])
                .replica(Replica::Default)
        });
        async move { definition.ok_or_else(Rejection::unauthorized) }
    });
    let layer = ShapeParamPolicyLayer::new(policy);
    let outcome = send_with(
        layer.clone(),
        request(
            Method::GET,
            "table=anything&offset=-1&view=archive",
            Some("u1"),
            "",
        ),
    )
    .await;
    let upstream = outcome.upstream();
    assert_eq!(upstream.table, Some(TableName::parse("projects").unwrap()));
    assert_eq!(upstream.params, ["u1", "true"]);
    assert_eq!(upstream.replica, Some(Replica::Default));
    assert!(!outcome.forwarded().uri.contains("view"));
    // The closure's definition allows no client where and forces replica=default.
    send_with(
        layer.clone(),
        request(
            Method::GET,
            "table=projects&offset=-1&where=id+%3D+1",
            Some("u1"),
            "",
        ),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    send_with(
        layer,
        request(
            Method::GET,
            "table=projects&offset=-1&replica=full",
            Some("u1"),
            "",
        ),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_row_filter_given_the_wrong_number_of_values_fails_closed() {
    let filter = RowFilter::parse("tenant_id = $1").unwrap();
    let table = TableName::parse("items").unwrap();
    let policy = policy_fn(move |_: &Parts, _: &ShapeRequest| {
        let definition =
            ShapeDefinition::new(table.clone()).row_filter(&filter, Vec::<String>::new());
        async move { Ok(definition) }
    });
    send_with(
        ShapeParamPolicyLayer::new(policy),
        request(Method::GET, "table=items&offset=-1", Some("t1"), ""),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
}

#[test]
fn bad_policy_text_is_a_build_error() {
    for table in [
        TablePolicy::new("a.b.c"),
        TablePolicy::new("items").columns(["ok", "bad name"]),
        TablePolicy::new("items").row_filter("tenant_id = $2", tenant),
        TablePolicy::new("items").row_filter("tenant_id = $1 --", tenant),
        TablePolicy::new("items").row_filter("x = 1; drop table items", tenant),
        TablePolicy::new("items").fixed_row_filter("tenant_id = $1"),
        TablePolicy::new("items").fixed_row_filter("true) OR (true"),
        TablePolicy::new("items").fixed_row_filter("true UNION SELECT 1"),
    ] {
        assert!(ShapePolicy::builder().table(table).build().is_err());
    }
    assert!(ShapePolicy::builder()
        .table(TablePolicy::new("items"))
        .table(TablePolicy::new("public.items"))
        .build()
        .is_err());
}
