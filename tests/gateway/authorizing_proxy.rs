//! Issue 4: the authorizing proxy through the stand-in; refusals, `(client) AND (policy)`,
//! renumbered params, private caches.

use super::*;

both_ways! {
async fn hidden_columns_in_where_columns_or_subsets_are_refused_before_the_stand_in(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    for query in [
        "table=items&offset=-1&where=internal_note+%3D+%27keep+it+quiet%27",
        "table=items&offset=-1&where=internal_note+IS+NOT+NULL+OR+done",
        "table=items&offset=-1&where=%22internal_note%22+LIKE+%27a%25%27",
        "table=items&offset=-1&columns=id,internal_note",
        "table=items&offset=-1&columns=%22id%22,%22internal_note%22",
        "table=items&offset=-1&subset__where=internal_note+IS+NULL",
        "table=items&offset=-1&subset__order_by=internal_note&subset__limit=1",
    ] {
        let reply = through_policy(&electric, Method::GET, query, Some("acme"), "").await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{query}: {:?}",
            reply.body
        );
    }
    assert!(electric.requests().is_empty(), "{:#?}", electric.requests());

    // The column is there to be leaked: the stand-in alone serves it.
    let reply = without_policy(&electric, Method::GET, "table=items&offset=-1", "").await;
    assert!(reply.values().unwrap()[0].get("internal_note").is_some());
    // Through the policy, without `columns`, only the visible ones are asked for.
    electric.clear_requests();
    let reply = through_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1",
        Some("acme"),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        only_request(&electric).query_value("columns"),
        Some("id,tenant_id,title,done")
    );
    for value in reply.values().unwrap() {
        assert!(value.get("internal_note").is_none(), "{value}");
    }
}
}

#[tokio::test]
async fn subqueries_are_refused_before_the_stand_in() {
    let electric = standin(Duration::from_millis(100));
    for client_where in [
        "id IN (SELECT id FROM items)",
        "EXISTS (SELECT 1 FROM tenants WHERE name = 'Globex')",
        "done OR (SELECT true)",
        "title = ANY(SELECT name FROM tenants)",
    ] {
        for key in ["where", "subset__where"] {
            let query = query(&[("table", "items"), ("offset", "-1"), (key, client_where)]);
            let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{query}: {:?}",
                reply.body
            );
        }
    }
    assert!(electric.requests().is_empty(), "{:#?}", electric.requests());
}

both_ways! {
async fn a_post_body_cannot_replace_the_shape_that_the_stand_in_would_merge(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    // What a proxy that only sets the URL would forward for acme.
    let acme_url = query(&[
        ("table", "items"),
        ("offset", "-1"),
        ("columns", "id,tenant_id,title,done"),
        ("where", "tenant_id = $1"),
        ("params[1]", "acme"),
    ]);
    let naive = without_policy(&electric, Method::POST, &acme_url, "{}").await;
    assert_eq!(naive.status, StatusCode::OK);
    assert!(naive
        .values()
        .unwrap()
        .iter()
        .all(|v| v["tenant_id"] == "acme"));

    // Electric merges any other body key over the URL; the stand-in does too. (A proxy that
    // pins only the table is enough to show `table` replaced.)
    let smuggled = [
        (
            "table=items&offset=-1",
            r#"{"table": "tenants"}"#,
            "id",
            "globex",
        ),
        (
            &acme_url,
            r#"{"params[1]": "globex"}"#,
            "tenant_id",
            "globex",
        ),
        (
            &acme_url,
            r#"{"columns": "id,internal_note"}"#,
            "internal_note",
            "ask legal first",
        ),
    ];
    for (naive_url, body, column, leaked) in smuggled {
        let naive = without_policy(&electric, Method::POST, naive_url, body).await;
        assert_eq!(naive.status, StatusCode::OK, "{body}: {:?}", naive.body);
        assert!(
            naive.values().unwrap().iter().any(|v| v[column] == leaked),
            "without the policy, {body} would not leak: {:?}",
            naive.body
        );

        electric.clear_requests();
        let refused = through_policy(
            &electric,
            Method::POST,
            "table=items&offset=-1",
            Some("acme"),
            body,
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            refused.body
        );
        assert!(
            electric.requests().is_empty(),
            "{body}: {:#?}",
            electric.requests()
        );
        // Smuggled next to real subset keys, just the same.
        let mixed = body.replacen('{', r#"{"where": "done = false", "#, 1);
        let refused = through_policy(
            &electric,
            Method::POST,
            "table=items&offset=-1",
            Some("acme"),
            &mixed,
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{mixed}");
        assert!(electric.requests().is_empty(), "{mixed}");
    }

    // A subset body of subset keys is checked, re-serialised, and answered for acme only.
    let body = r#"{"where": "tenant_id <> $1", "params": {"1": "nobody"}, "order_by": "id DESC", "limit": 2}"#;
    let reply = through_policy(
        &electric,
        Method::POST,
        "table=items&offset=-1",
        Some("acme"),
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(ids(&reply), [3, 2]);
    let received = only_request(&electric);
    assert_eq!(received.method, Method::POST);
    let forwarded: Value = serde_json::from_slice(received.body.as_ref().unwrap()).unwrap();
    let mut keys: Vec<&str> = forwarded
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["limit", "order_by", "params", "where"]);
}
}

both_ways! {
async fn the_stand_in_evaluates_client_and_policy_for_every_accepted_where(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    for client_where in [
        "done = false",
        "tenant_id = 'globex' OR true",
        "NOT done OR id > 0",
        "true) OR (1 = 1",
        "tenant_id IN ('acme', 'globex')",
    ] {
        electric.clear_requests();
        let query = query(&[
            ("table", "items"),
            ("offset", "-1"),
            ("where", client_where),
        ]);
        let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
        if reply.status != StatusCode::OK {
            // A where that is not one expression never reaches the stand-in.
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{client_where}");
            assert!(electric.requests().is_empty());
            continue;
        }
        let received = only_request(&electric);
        let (client, policy) = split_and(received.query_value("where").unwrap());
        assert_eq!(client.to_string(), parse_where(client_where).to_string());
        assert_eq!(policy, parse_where("tenant_id = $1"));
        assert_eq!(received.query_value("params[1]"), Some("acme"));
        let values = reply.values().unwrap();
        assert!(!values.is_empty(), "{client_where}");
        assert!(
            values.iter().all(|v| v["tenant_id"] == "acme"),
            "{values:?}"
        );
    }
}
}

both_ways! {
async fn policy_params_are_renumbered_after_the_clients(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    let query = query(&[
        ("table", "items"),
        ("offset", "-1"),
        ("where", "id >= $1 AND title <> $2"),
        ("params[1]", "2"),
        ("params[2]", "Book the offsite"),
    ]);
    let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let received = only_request(&electric);
    assert_eq!(
        parse_where(received.query_value("where").unwrap()),
        parse_where("(id >= $1 AND title <> $2) AND (tenant_id = $3)")
    );
    assert_eq!(received.query_value("params[1]"), Some("2"));
    assert_eq!(received.query_value("params[2]"), Some("Book the offsite"));
    assert_eq!(received.query_value("params[3]"), Some("acme"));
    // The stand-in bound each value to its own placeholder: acme's rows from 2 on, but 3.
    assert_eq!(ids(&reply), [2]);
}
}

#[tokio::test]
async fn responses_from_the_stand_in_are_made_private_and_vary() {
    let electric = standin(Duration::from_millis(100));
    let direct = without_policy(&electric, Method::GET, "table=items&offset=-1", "").await;
    assert_eq!(
        direct.header("cache-control"),
        Some("public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746")
    );
    assert_eq!(direct.header("vary"), None);

    let initial = through_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1",
        Some("acme"),
        "",
    )
    .await;
    assert_eq!(
        initial.header("cache-control"),
        Some("private, max-age=60, stale-while-revalidate=60")
    );
    assert_eq!(initial.header("vary"), Some("authorization, cookie"));

    let handle = initial.header("electric-handle").unwrap();
    let offset = initial.header("electric-offset").unwrap();
    let follow_up = query(&[("table", "items"), ("offset", offset), ("handle", handle)]);
    let reply = through_policy(&electric, Method::GET, &follow_up, Some("acme"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.header("cache-control"),
        Some("private, max-age=60, stale-while-revalidate=60")
    );
    assert_eq!(reply.header("vary"), Some("authorization, cookie"));
}
