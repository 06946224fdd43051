//! Refusals: string-built tricks, subqueries, hidden columns, duplicated keys, missing
//! principals, other tables, and what the policy does not allow; and what a refusal says.

use super::*;

#[tokio::test]
async fn string_built_where_tricks_are_refused() {
    for trick in attack_cases::STRING_BUILT_TRICKS {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(trick)
        );
        get(&query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn subqueries_are_refused_in_where_and_subset_where() {
    for attack in attack_cases::SUBQUERIES {
        let encoded = tower_electric::protocol::query::encode_component(attack);
        let outcome = get(
            &format!("table=items&offset=-1&where={encoded}"),
            Some("t1"),
        )
        .await;
        outcome.refused(StatusCode::FORBIDDEN);
        assert!(outcome.body.contains("subqueries"), "{}", outcome.body);
        get(
            &format!("table=items&offset=-1&subset__where={encoded}"),
            Some("t1"),
        )
        .await
        .refused(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn hidden_columns_are_refused_everywhere() {
    for query in attack_cases::HIDDEN_COLUMN_QUERIES {
        get(query, Some("t1")).await.refused(StatusCode::FORBIDDEN);
    }
    for body in attack_cases::HIDDEN_COLUMN_BODIES {
        post("table=items&offset=-1", Some("t1"), body)
            .await
            .refused(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn duplicated_and_encoded_keys_are_refused() {
    for query in attack_cases::DUPLICATED_KEY_QUERIES {
        get(query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn principals_and_tables_are_enforced() {
    get("table=items&offset=-1", None)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    let outcome = get("table=secrets&offset=-1", Some("t1")).await;
    outcome.refused(StatusCode::FORBIDDEN);
    get("offset=-1", Some("t1"))
        .await
        .refused(StatusCode::BAD_REQUEST);
    // Another spelling of an allowed table is the same table.
    let upstream = get("table=%22public%22.%22items%22&offset=-1", Some("t1"))
        .await
        .upstream();
    assert_eq!(upstream.table, Some(TableName::parse("items").unwrap()));
    // A quoted name with other case is another table.
    get("table=%22Items%22&offset=-1", Some("t1"))
        .await
        .refused(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn where_and_subsets_need_the_policy_to_allow_them() {
    get("table=tenants&offset=-1&where=name+%3D+%27a%27", Some("t1"))
        .await
        .refused(StatusCode::FORBIDDEN);
    get(
        "table=tenants&offset=-1&subset__where=name+%3D+%27a%27",
        Some("t1"),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    post(
        "table=tenants&offset=-1",
        Some("t1"),
        r#"{"limit":1,"order_by":"id"}"#,
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    // Without a client where, the row filter alone is the where.
    let upstream = get("table=tenants&offset=-1", Some("t1")).await.upstream();
    assert_eq!(upstream.where_clause.as_deref(), Some("id = $1"));
    assert_eq!(upstream.queryable_columns, None);
}

#[tokio::test]
async fn refusals_name_the_rule_but_never_the_policy_values() {
    let outcome = get(
        "table=items&offset=-1&where=internal_note+IS+NULL",
        Some("tenant-secret-42"),
    )
    .await;
    outcome.refused(StatusCode::FORBIDDEN);
    assert!(outcome.body.contains("where"), "{}", outcome.body);
    assert!(outcome.body.contains("internal_note"), "{}", outcome.body);
    assert!(!outcome.body.contains("tenant-secret-42"));
    assert!(!outcome.body.contains("tenant_id = $1"));
    assert_eq!(outcome.headers["cache-control"], "no-store");
}
