//! `(client) AND (policy)`: the row filter ANDed at the top, client strings kept literal,
//! params renumbered, and the where memo serving only requests with the same inputs.

use super::*;

#[tokio::test]
async fn the_row_filter_is_anded_at_the_top_whatever_the_client_writes() {
    for client in attack_cases::ROW_FILTER_WIDENERS {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let (client_part, policy_part) = split_and(upstream.where_clause.as_deref().unwrap());
        assert_eq!(client_part, parse_where(client));
        assert_eq!(policy_part, parse_where("tenant_id = $1"));
        assert_eq!(upstream.params, ["t1"]);
    }
}

/// sqlparser renders a quote that follows a backslash without doubling it, while Postgres
/// reads a backslash in `'...'` as a plain character: rendered with sqlparser's `Display`,
/// `title = '\'') OR true --'` went upstream as `(title = '\') OR true --') AND (...)`, which
/// Postgres reads as `(title = '\') OR true` with the row filter commented out.
#[tokio::test]
async fn quotes_and_backslashes_in_client_strings_cannot_end_the_literal_early() {
    for client in attack_cases::QUOTES_AND_BACKSLASHES {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let forwarded = upstream.where_clause.as_deref().unwrap();
        let (client_part, policy_part) = split_and(forwarded);
        assert_eq!(
            client_part,
            parse_where(client),
            "{client} went as {forwarded}"
        );
        assert_eq!(policy_part, parse_where("tenant_id = $1"));

        let query = format!(
            "table=items&offset=-1&subset__where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let forwarded = upstream.subset.where_clause.as_deref().unwrap();
        assert_eq!(
            parse_where(forwarded),
            parse_where(client),
            "{client} went as {forwarded}"
        );
    }
}

#[tokio::test]
async fn client_params_keep_their_numbers_and_the_policys_follow() {
    let upstream = get(attack_cases::PARAMETERISED_QUERIES[0], Some("t1"))
        .await
        .upstream();
    assert_eq!(
        upstream.where_clause.as_deref(),
        Some("(id = $1 OR title = $2) AND tenant_id = $3")
    );
    assert_eq!(upstream.params, ["7", "a b", "t1"]);
}

#[tokio::test]
async fn client_params_must_match_its_placeholders() {
    for query in attack_cases::MISMATCHED_PARAMS_QUERIES {
        get(query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

/// One service, many requests: the where memo must give each request exactly what composing it
/// afresh would, whatever the requests before it kept.
#[tokio::test]
async fn a_kept_where_serves_only_requests_with_the_same_inputs() {
    // The admin tenant may see (and filter on) `internal_note`; the others may not. The
    // auditor has another row filter.
    let policy = policy_fn(|parts: &Parts, _: &ShapeRequest| {
        let tenant = parts
            .extensions
            .get::<Principal>()
            .map(|p| p.tenant.clone());
        async move {
            let tenant = tenant.ok_or_else(Rejection::unauthorized)?;
            let mut columns = ids(&["id", "tenant_id", "title"]);
            if tenant == "admin" {
                columns.extend(ids(&["internal_note"]));
            }
            let filter = if tenant == "auditor" {
                RowFilter::parse("tenant_id = $1 OR tenant_id IS NULL").unwrap()
            } else {
                RowFilter::parse("tenant_id = $1").unwrap()
            };
            Ok(ShapeDefinition::new(TableName::parse("items").unwrap())
                .columns(columns)
                .row_filter(&filter, [tenant])
                .allow_client_where(true)
                .allow_subsets(true))
        }
    });
    let (service, log) = gateway(ShapeParamPolicyLayer::new(policy));
    let send = |query: &str, tenant: &str| {
        let service = service.clone();
        let log = Arc::clone(&log);
        let request = request(Method::GET, query, Some(tenant), "");
        async move {
            let response = service.oneshot(request).await.unwrap();
            let status = response.status();
            (status, log.lock().unwrap().pop())
        }
    };
    let upstream = |recorded: Option<Recorded>| {
        let uri: http::Uri = recorded.unwrap().uri.parse().unwrap();
        ShapeRequest::parse(uri.query().unwrap()).unwrap()
    };

    let note = "table=items&offset=-1&where=internal_note+%3D+%27x%27";
    let (status, forwarded) = send(note, "admin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream(forwarded).where_clause.as_deref(),
        Some("internal_note = 'x' AND tenant_id = $1")
    );
    // The same text from a tenant who may not see the column: refused, not served from the memo.
    let (status, forwarded) = send(note, "t1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(forwarded.is_none());

    let done = "table=items&offset=-1&where=id+%3D+1";
    for (tenant, filter) in [
        ("t1", "tenant_id = $1"),
        ("auditor", "(tenant_id = $1 OR tenant_id IS NULL)"),
        ("t2", "tenant_id = $1"),
    ] {
        let (status, forwarded) = send(done, tenant).await;
        assert_eq!(status, StatusCode::OK);
        let upstream = upstream(forwarded);
        assert_eq!(
            upstream.where_clause.as_deref(),
            Some(format!("id = 1 AND {filter}").as_str())
        );
        // The clause is shared; the values are each principal's own.
        assert_eq!(upstream.params, [tenant]);
    }

    // Same text, one more client param: the filter's placeholder moves.
    let with_param = "table=items&offset=-1&where=id+%3D+%241&params[1]=5";
    let (_, forwarded) = send(with_param, "t1").await;
    let (_, forwarded_again) = send(with_param, "t2").await;
    let (first, again) = (upstream(forwarded), upstream(forwarded_again));
    assert_eq!(
        first.where_clause.as_deref(),
        Some("id = $1 AND tenant_id = $2")
    );
    assert_eq!(first.where_clause, again.where_clause);
    assert_eq!(first.params, ["5", "t1"]);
    assert_eq!(again.params, ["5", "t2"]);
}
