//! Where clauses and subsets (GET and POST) as Electric evaluates and refuses them.

use super::*;

#[tokio::test]
async fn where_subset_with_params_is_evaluated_by_type() {
    let standin = items();
    standin
        .insert("items", [("id", "10"), ("title", "j"), ("done", "false")])
        .unwrap();
    for (where_clause, params, expected) in [
        ("id > 2", vec![], vec!["3", "10"]),
        ("id >= $1 AND NOT done", vec!["2"], vec!["2", "3", "10"]),
        (
            "title IN ($1, 'c') OR id = 10",
            vec!["a"],
            vec!["1", "3", "10"],
        ),
        (
            "(title <> 'a') AND done = $1",
            vec!["false"],
            vec!["2", "3", "10"],
        ),
        (
            "title IS NOT NULL AND id != 3",
            vec![],
            vec!["1", "2", "10"],
        ),
    ] {
        let mut query = format!(
            "/v1/shape?offset=-1&table=items&where={}",
            tower_electric::protocol::query::encode_component(where_clause)
        );
        for (index, value) in params.iter().enumerate() {
            query.push_str(&format!("&params%5B{}%5D={value}", index + 1));
        }
        let answer = get(&standin, &query).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{where_clause}: {:?}",
            answer.body
        );
        assert_eq!(ids(&answer.json()), expected, "{where_clause}");
    }
}

#[tokio::test]
async fn where_outside_the_subset_is_a_400_in_electrics_shape() {
    let standin = items();
    for (where_clause, message) in [
        (
            "id IN (SELECT id FROM secrets)",
            "a subquery is not supported",
        ),
        ("lower(title) = 'a'", "a function call is not supported"),
        ("secret = 1", "unknown reference secret"),
        ("id = $1", "parameter $1 was not given"),
        ("id = 1; drop table items", "must be a single expression"),
    ] {
        let answer = get(
            &standin,
            &format!(
                "/v1/shape?offset=-1&table=items&where={}",
                tower_electric::protocol::query::encode_component(where_clause)
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{where_clause}");
        let body = answer.json();
        assert_eq!(body["message"], "Invalid request");
        let error = body["errors"]["where"][0].as_str().unwrap();
        assert!(error.contains(message), "{where_clause}: {error}");
    }
}

fn issues() -> ElectricStandIn {
    let standin = ElectricStandIn::new();
    standin
        .create_table(
            TableSchema::new("issues")
                .column(Column::new("id", "text").primary_key())
                .column(Column::new("title", "text"))
                .column(Column::new("status", "text"))
                .column(Column::new("priority", "text"))
                .column(Column::new("created_at", "timestamptz")),
        )
        .unwrap();
    for (id, priority, created) in [
        ("issue-1", "low", "2024-01-01"),
        ("issue-2", "high", "2024-01-02"),
        ("issue-3", "high", "2024-01-03"),
        ("issue-4", "high", "2024-01-04"),
    ] {
        standin
            .insert(
                "issues",
                [
                    ("id", id),
                    ("title", "t"),
                    ("status", "backlog"),
                    ("priority", priority),
                    ("created_at", created),
                ],
            )
            .unwrap();
    }
    standin
}

#[tokio::test]
async fn post_subset_is_the_fixture_shape() {
    let fixture = fixture("200_subset_snapshot.json");
    let standin = issues();
    let handle = handle_of(&standin, "table=issues").await;
    let mut body = fixture["request"]["body"].clone();
    body["limit"] = json!(2);
    let answer = post(
        &standin,
        &format!("/v1/shape?handle={handle}&offset=0_inf&table=issues"),
        &body.to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.assert_has_headers(
        &fixture["response"]["headers"],
        &["electric-handle", "electric-offset"],
    );
    let json = answer.json();
    for key in fixture["response"]["body"]["metadata"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(json["metadata"].get(key).is_some(), "metadata.{key}");
    }
    let data = json["data"].as_array().unwrap();
    let found: Vec<_> = data
        .iter()
        .map(|m| m["value"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["issue-4", "issue-3"], "high, newest first, two");
    assert_eq!(data[0]["headers"]["operation"], "insert");
    assert_eq!(
        data[0]["headers"]["snapshot_mark"],
        json["metadata"]["snapshot_mark"]
    );
}

#[tokio::test]
async fn get_subset_params_and_offset() {
    let standin = issues();
    let answer = get(
        &standin,
        "/v1/shape?offset=-1&table=issues&subset__where=priority+%3D+%241&subset__params=%7B%221%22%3A%22high%22%7D&subset__order_by=id&subset__limit=1&subset__offset=1",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.header("electric-snapshot"), "true");
    assert_eq!(answer.header("cache-control"), "no-cache");
    let data = answer.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1);
    assert_eq!(data[0]["value"]["id"], "issue-3");
}

#[tokio::test]
async fn subset_where_is_anded_with_the_shape_where() {
    let standin = issues();
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=issues&where=id+%3C%3E+%27issue-2%27",
        r#"{"subset": {"where": "priority = 'high'", "order_by": "id"}}"#,
    )
    .await;
    let json = answer.json();
    let found: Vec<_> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["issue-3", "issue-4"]);
}

#[tokio::test]
async fn post_body_keys_are_merged_over_the_url_like_electric() {
    let standin = ElectricStandIn::demo();
    // The URL a proxy built for tenant acme...
    let uri = "/v1/shape?offset=-1&table=items&where=tenant_id+%3D+%241&params%5B1%5D=acme";
    let own = post(&standin, uri, "").await;
    let tenants: Vec<_> = own.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["tenant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tenants, ["acme", "acme", "acme"]);
    // ...is rewritten by body keys: another tenant's rows, or another table.
    let other_tenant = post(&standin, uri, r#"{"params[1]": "globex"}"#).await;
    let json = other_tenant.json();
    assert!(json["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["value"]["tenant_id"] == "globex"));
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    let other_table = post(&standin, uri, r#"{"table": "tenants", "where": "true"}"#).await;
    assert_eq!(
        other_table.status,
        StatusCode::BAD_REQUEST,
        "tenants has no tenant_id"
    );
    let other_table = post(
        &standin,
        "/v1/shape?offset=-1&table=items",
        r#"{"table": "tenants"}"#,
    )
    .await;
    assert_eq!(
        other_table.json()["data"][0]["value"]["keys"],
        "placeholder-keys"
    );
}

#[tokio::test]
async fn post_body_errors_are_the_fixtures() {
    let fixture = fixture("other_errors.json");
    let examples = fixture["examples"].as_array().unwrap();
    let standin = items();
    let not_object = post(&standin, "/v1/shape?offset=-1&table=items", "[1]").await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_object.json(), examples[0]["body"]);
    let bad_json = post(&standin, "/v1/shape?offset=-1&table=items", "{").await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    let json = bad_json.json();
    assert_eq!(json["error"], examples[1]["body"]["error"]);
    assert!(json["details"].is_string());
    let empty = post(&standin, "/v1/shape?offset=-1&table=items", "").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json()["data"].as_array().unwrap().len(), 3);
}
