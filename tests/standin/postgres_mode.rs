//! The Postgres mode (feature `postgres`): where clauses and subsets evaluated by Postgres.

use super::*;

/// [`items`] on a throwaway Postgres cluster, with `tags` (`item_id`, `tag`) beside it.
#[cfg(feature = "postgres")]
fn items_on_postgres() -> ElectricStandIn {
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .postgres(tower_electric::testing::postgres::TestCluster::start().unwrap())
        .build();
    standin.create_table(items_table()).unwrap();
    for (id, title, done) in [("1", "a", "true"), ("2", "b", "false"), ("3", "c", "false")] {
        standin
            .insert("items", [("id", id), ("title", title), ("done", done)])
            .unwrap();
    }
    standin
        .create_table(
            TableSchema::new("tags")
                .column(Column::new("item_id", "int8").primary_key())
                .column(Column::new("tag", "text")),
        )
        .unwrap();
    standin
        .insert("tags", [("item_id", "3"), ("tag", "urgent")])
        .unwrap();
    standin
}

#[cfg(feature = "postgres")]
fn where_query(where_clause: &str) -> String {
    format!(
        "/v1/shape?offset=-1&table=items&where={}",
        tower_electric::protocol::query::encode_component(where_clause)
    )
}

/// What the stand-in's own evaluator refuses, Postgres evaluates: functions, `LIKE`, casts,
/// and a subquery reading a table the stand-in mirrored its writes into.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_where_clauses_get_postgres_semantics() {
    let standin = items_on_postgres();
    for (where_clause, expected) in [
        ("lower(title) = 'a'", vec!["1"]),
        ("title LIKE '_' AND NOT done", vec!["2", "3"]),
        ("id::text || title = '2b'", vec!["2"]),
        (
            "id IN (SELECT item_id FROM tags WHERE tag = 'urgent')",
            vec!["3"],
        ),
        ("done IS DISTINCT FROM true", vec!["2", "3"]),
    ] {
        let answer = get(&standin, &where_query(where_clause)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{where_clause}: {:?}",
            answer.body
        );
        assert_eq!(ids(&answer.json()), expected, "{where_clause}");
    }
    // The plain stand-in refuses the first of them.
    let answer = get(&items(), &where_query("lower(title) = 'a'")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_a_where_postgres_rejects_is_a_400_in_electrics_shape() {
    let standin = items_on_postgres();
    for (where_clause, message) in [
        ("nope = 1", "column \"nope\" does not exist"),
        ("title = 1", "operator does not exist: text = integer"),
        ("id = $1", "the clause reads $1..$1, and 0 params are given"),
        ("title", "argument of WHERE must be type boolean"),
    ] {
        let answer = get(&standin, &where_query(where_clause)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{where_clause}");
        let body = answer.json();
        assert_eq!(body["message"], "Invalid request");
        let error = body["errors"]["where"][0].as_str().unwrap();
        assert!(error.contains(message), "{where_clause}: {error}");
    }
}

/// Live changes are read through the where as Postgres reads it: rows move in and out.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_updates_moving_rows_across_the_where_become_inserts_and_deletes() {
    let standin = items_on_postgres();
    // Typed by Postgres from its use: `$1` is a bool here, so `no` means false.
    let query = "table=items&where=NOT+done+AND+%241+%3D+false&params%5B1%5D=no";
    let snapshot = get(&standin, &format!("/v1/shape?offset=-1&{query}")).await;
    assert_eq!(snapshot.status, StatusCode::OK, "{:?}", snapshot.body);
    assert_eq!(ids(&snapshot.json()), ["2", "3"]);
    let handle = snapshot.header("electric-handle").to_owned();
    standin
        .update("items", [("id", "1"), ("done", "f")])
        .unwrap();
    standin
        .update("items", [("id", "2"), ("done", "t")])
        .unwrap();
    standin.delete("items", [("id", "3")]).unwrap();
    let answer = get(
        &standin,
        &format!("/v1/shape?offset=0_inf&handle={handle}&{query}"),
    )
    .await;
    let body = answer.json();
    let changes: Vec<(&str, &str)> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            Some((
                m["headers"]["operation"].as_str()?,
                m["value"]["id"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(changes, [("insert", "1"), ("delete", "2"), ("delete", "3")]);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_subsets_are_filtered_ordered_and_cut_by_postgres() {
    let standin = items_on_postgres();
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=items&where=id+%3E+1",
        r#"{"where": "title >= $1", "params": {"1": "b"}, "order_by": "title DESC", "limit": 1, "offset": 1}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let data = &answer.json()["data"];
    assert_eq!(ids(data), ["2"]);
    // The shape's where holds for subsets too: row 1 is not in this shape.
    let answer = post(
        &standin,
        "/v1/shape?offset=-1&table=items&where=id+%3E+1",
        r#"{"where": "title = 'a'"}"#,
    )
    .await;
    assert_eq!(ids(&answer.json()["data"]), Vec::<String>::new());
    // A subset reads only the queryable columns.
    let answer = get(
        &standin,
        "/v1/shape?offset=-1&table=items&queryable_columns=id,title&subset__where=done",
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
    assert!(answer.json()["errors"]["subset__where"][0]
        .as_str()
        .unwrap()
        .contains("column \"done\" does not exist"));
}

/// By connection string: the stand-in works in a database of its own, dropped with it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres_by_url_the_stand_in_has_a_database_of_its_own_while_it_lives() {
    let cluster = tower_electric::testing::postgres::TestCluster::start().unwrap();
    let client = cluster.connect().await.unwrap();
    let databases = || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'tower_electric_standin_%'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let standin = ElectricStandIn::builder()
        .postgres(cluster.connection_string())
        .build();
    standin.create_table(items_table()).unwrap();
    standin
        .insert("items", [("id", "1"), ("title", "a"), ("done", "true")])
        .unwrap();
    let answer = get(&standin, &where_query("title ~ '^a$'")).await;
    assert_eq!(ids(&answer.json()), ["1"]);
    assert_eq!(databases().await, 1);
    drop(standin);
    assert_eq!(databases().await, 0);
}
