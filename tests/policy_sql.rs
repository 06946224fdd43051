#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Client SQL that Postgres reads otherwise than the parser the gateway used before (sqlparser):
//! escape and unicode strings, dollar quotes, nested comments, quoted and unicode-escaped
//! names, catalog casts, `COLLATE`, schema-qualified operators, system columns, set-returning
//! functions and every form of subquery. Each is sent through `ShapeParamPolicyLayer` and must
//! be refused with nothing forwarded, or forwarded as a where that Postgres reads as the
//! client's own tree ANDed with the row filter, reading only visible columns.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::policy::{RequestBody, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::protocol::query::encode_component;
use tower_electric::protocol::{ShapeRequest, SqlError, SqlExpr, SqlLimits};

#[path = "support/where_clause.rs"]
mod where_clause;
use where_clause::{column_names, node_kinds, parse_order_by, parse_where, split_and};

const VISIBLE: [&str; 4] = ["id", "tenant_id", "title", "done"];

#[derive(Clone)]
struct Tenant(String);

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts.extensions.get::<Tenant>().map(|t| vec![t.0.clone()])
}

fn layer() -> ShapeParamPolicyLayer {
    let policy = ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .build()
        .unwrap();
    ShapeParamPolicyLayer::new(policy)
}

struct Outcome {
    status: StatusCode,
    forwarded: Option<ShapeRequest>,
}

async fn send(query: &str) -> Outcome {
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let inner = service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        *recorder.lock().unwrap() = Some(request.uri().to_string());
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"[]")))) }
    });
    let mut request = Request::get(format!("/v1/shape?{query}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    request.extensions_mut().insert(Tenant("t1".into()));
    let response = layer().layer(inner).oneshot(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    let forwarded = seen.lock().unwrap().take().map(|uri| {
        let uri: http::Uri = uri.parse().unwrap();
        ShapeRequest::parse(uri.query().unwrap_or_default()).unwrap()
    });
    Outcome { status, forwarded }
}

async fn send_where(client: &str) -> Outcome {
    send(&format!(
        "table=items&offset=-1&where={}",
        encode_component(client)
    ))
    .await
}

/// What a forwarded client part may hold: visible columns, no subquery, no function but the
/// harmless ones (read off Postgres's tree, not the layer's).
fn assert_client_safe(tree: &serde_json::Value, context: &str) {
    for name in column_names(tree) {
        assert!(VISIBLE.contains(&name.as_str()), "{name} in {context}");
    }
    for kind in node_kinds(tree) {
        assert!(
            !matches!(
                kind.as_str(),
                "SubLink" | "SelectStmt" | "RangeVar" | "CollateClause" | "SqlvalueFunction"
            ),
            "{kind} in {context}"
        );
    }
}

/// Forwarded: the where Postgres reads is the client's tree ANDed with the row filter.
async fn assert_forwarded_as_written(client: &str) {
    let outcome = send_where(client).await;
    assert_eq!(outcome.status, StatusCode::OK, "{client}");
    let upstream = outcome.forwarded.unwrap();
    let forwarded = upstream.where_clause.unwrap();
    let (client_part, policy_part) = split_and(&forwarded);
    assert_eq!(
        client_part,
        parse_where(client),
        "{client} went as {forwarded}"
    );
    assert_eq!(policy_part, parse_where("tenant_id = $1"), "{forwarded}");
    assert_client_safe(&client_part, &forwarded);
    assert_eq!(upstream.params, ["t1"]);
}

async fn assert_refused(client: &str, status: StatusCode) {
    let outcome = send_where(client).await;
    assert_eq!(outcome.status, status, "{client}");
    assert!(outcome.forwarded.is_none(), "{client} was forwarded");
}

/// The bypass of 35d26a9: sqlparser read `title = 'x\'') OR true --'` as one string and printed
/// it as `'x\') OR true --'`, which Postgres ends after the backslash, leaving `OR true` as SQL
/// and a comment swallowing the row filter. With Postgres's parser on both sides, text that
/// Postgres reads as a string ending early and a comment is refused, and a string holding
/// backslashes and quotes goes as a string that Postgres reads back as that same value.
#[tokio::test]
async fn the_backslash_before_a_quote_bypass_cannot_come_back() {
    // Postgres reads `'a\'` as the string `a\`, then `OR true` as SQL and `--'` as a comment.
    for client in [
        r"title = 'a\' OR true --'",
        r"title = 'a\' OR tenant_id <> 't1' --'",
        r"title = '\' OR true) OR (true --'",
        r"title = E'\'' OR true --'",
    ] {
        assert_refused(client, StatusCode::BAD_REQUEST).await;
    }
    // One string each, holding quotes, backslashes and would-be SQL.
    for client in [
        r"title = '\'') OR true --'",
        r"title = 'x\''' OR true",
        r"title = E'\\'') OR true --'",
        r"title LIKE '%\_%' ESCAPE '\' OR title = '\\'",
    ] {
        assert_forwarded_as_written(client).await;
    }
    // What the old printer forwarded for `title = 'x\'') OR true --'` is text the read-back
    // now refuses: Postgres sees its comment.
    assert_eq!(
        SqlExpr::parse(
            r"(title = 'x\') OR true --') AND (tenant_id = $1)",
            SqlLimits::default()
        ),
        Err(SqlError::Comment)
    );
}

/// Every spelling of a string Postgres has is data, forwarded in a spelling that reads back as
/// the same value.
#[tokio::test]
async fn escape_unicode_and_dollar_quoted_strings_stay_data() {
    for client in [
        r"title = E'\''",
        r"title = E'\\' OR title = E'\x41'",
        r"title = U&'d\0061t\+000061'",
        r"title = U&'\0027) OR (true' OR done",
        "title = U&'d!0061t' UESCAPE '!'",
        "title = $$a' OR true --$$",
        "title = $$ /* $$ OR done",
        "title = $tag$a$$ OR true $tag$",
        "title = $x$'$x$ AND id = $y$0$y$::int",
        "title = N'abc'",
    ] {
        assert_forwarded_as_written(client).await;
    }
}

#[tokio::test]
async fn comments_are_found_as_postgres_finds_them() {
    for client in [
        "title = 'a' /* /* */ OR true */",
        "title = 'a' /* /* */ */ OR true",
        "title = 'a' /* unterminated",
        "title = 'a' --",
        "title = $$a$$ --$$",
        "title = $a$ x $a$ /* $a$ */",
    ] {
        assert_refused(client, StatusCode::BAD_REQUEST).await;
    }
}

/// Names are what Postgres makes of them: quotes keep case, `U&"..."` escapes spell the name.
#[tokio::test]
async fn quoted_and_unicode_names_are_checked_as_postgres_reads_them() {
    for client in [
        "\"internal_note\" = 'x'",
        "U&\"internal\\005fnote\" = 'x'",
        "U&\"internal!005fnote\" UESCAPE '!' = 'x'",
        "\"Title\" = 'x'",
        "\"title \" = 'x'",
        "items.internal_note = 'x'",
        "\"items\".\"title\" = 'x'",
        "internal_note IS NULL OR title = 'a'",
    ] {
        assert_refused(client, StatusCode::FORBIDDEN).await;
    }
    for client in ["\"title\" = 'x'", "U&\"t\\0069tle\" = 'x'", "TITLE = 'x'"] {
        assert_forwarded_as_written(client).await;
    }
}

#[tokio::test]
async fn postgres_only_constructs_are_refused() {
    for client in [
        // System columns: every table has them.
        "ctid = '(0,1)'",
        "xmin::text = '1'",
        "tableoid > 0",
        // Catalog casts look things up.
        "'items'::regclass IS NOT NULL",
        "title::pg_catalog.regproc IS NULL",
        "CAST('pg_sleep' AS regproc) IS NULL",
        // Collations and schema-qualified or custom operators.
        "title COLLATE \"C\" = 'a'",
        "title = 'a' COLLATE \"default\"",
        "id OPERATOR(pg_catalog.=) 1",
        "id OPERATOR(public.=) 1",
        // Functions, set-returning or reading the server.
        "generate_series(1, 10) = id",
        "id IN (generate_series(1, 10))",
        "pg_sleep(1) IS NULL",
        "current_setting('is_superuser') = 'on'",
        "current_user = 'postgres'",
        "pg_catalog.lower(title) = 'a'",
        "nullif(title, 'a') IS NULL",
        // Subqueries in every form.
        "(SELECT 1) = 1",
        "id = ANY(ARRAY(SELECT id FROM items))",
        "ARRAY(SELECT internal_note FROM items) IS NOT NULL",
        "ROW((SELECT internal_note FROM items LIMIT 1)) = ROW('x')",
        "EXISTS (SELECT 1 FROM items WHERE tenant_id <> 't1')",
        "id IN (SELECT id FROM items)",
        "title = (SELECT internal_note FROM items LIMIT 1)",
        "lower((SELECT 'a')) = 'a'",
    ] {
        assert_refused(client, StatusCode::FORBIDDEN).await;
    }
}

/// Text that would make Electric's `SELECT 1 WHERE <where>` another statement.
#[tokio::test]
async fn text_that_extends_the_statement_is_refused() {
    for client in [
        "true UNION SELECT internal_note FROM items",
        "true) UNION (SELECT 1",
        "true ORDER BY 1",
        "true LIMIT 1",
        "true FOR UPDATE",
        "true; SELECT 1",
        "true) OR (true",
    ] {
        assert_refused(client, StatusCode::BAD_REQUEST).await;
    }
    let outcome = send("table=items&offset=-1&where=id+%3D+%2401&params[1]=1").await;
    assert_eq!(outcome.status, StatusCode::BAD_REQUEST);
    assert!(outcome.forwarded.is_none());
}

#[tokio::test]
async fn an_order_by_is_columns_only_as_postgres_reads_them() {
    for order in [
        "ctid",
        "internal_note",
        "U&\"internal\\005fnote\"",
        "id COLLATE \"C\"",
        "id USING OPERATOR(pg_catalog.<)",
        "(SELECT 1)",
        "id LIMIT 1",
        "id) UNION (SELECT 1",
        "id --",
        "1",
    ] {
        let outcome = send(&format!(
            "table=items&offset=-1&subset__order_by={}&subset__limit=1",
            encode_component(order)
        ))
        .await;
        assert!(
            outcome.status.is_client_error(),
            "{order}: {}",
            outcome.status
        );
        assert!(outcome.forwarded.is_none(), "{order} was forwarded");
    }
    let outcome = send(
        "table=items&offset=-1&subset__order_by=%22title%22+DESC+NULLS+LAST%2C+ID&subset__limit=1",
    )
    .await;
    let sent = outcome.forwarded.unwrap().subset.order_by.unwrap();
    assert_eq!(sent, "title DESC NULLS LAST, id");
    assert_eq!(
        parse_order_by(&sent),
        parse_order_by("\"title\" DESC NULLS LAST, ID")
    );
}

/// A row filter is server text and may hold subqueries; its `$n` are renumbered after the
/// client's on the tree, and a filter whose `$n` sit where the renumbering walk does not go is
/// refused when it is built, not mis-numbered on a request.
#[tokio::test]
async fn a_row_filters_placeholders_are_all_renumbered_or_it_is_refused() {
    use tower_electric::policy::RowFilter;
    assert!(RowFilter::parse(
        "tenant_id = $1 OR id IN (SELECT item FROM shares WHERE member = $1)"
    )
    .is_ok());
    assert!(RowFilter::parse("tenant_id = $1 OR JSON_OBJECT('k': $1) IS NULL").is_err());
    assert!(RowFilter::parse("tenant_id = $1 OR JSON_OBJECT('k': 'v') IS NULL").is_ok());

    let policy = ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter(
                    "tenant_id = $1 OR id IN (SELECT item FROM shares WHERE member = $1)",
                    tenant,
                )
                .client_where(true),
        )
        .build()
        .unwrap();
    let inner = service_fn(|request: Request<RequestBody<Full<Bytes>>>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
            request.uri().query().unwrap_or_default().to_owned(),
        ))))
    });
    let mut request = Request::get("/v1/shape?table=items&offset=-1&where=id+%3D+%241&params[1]=7")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request.extensions_mut().insert(Tenant("t1".into()));
    let response = ShapeParamPolicyLayer::new(policy)
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    let query = response.into_body().collect().await.unwrap().to_bytes();
    let upstream = ShapeRequest::parse(std::str::from_utf8(&query).unwrap()).unwrap();
    assert_eq!(
        upstream.where_clause.as_deref(),
        Some("id = $1 AND (tenant_id = $2 OR id IN (SELECT item FROM shares WHERE member = $2))")
    );
    assert_eq!(upstream.params, ["7", "t1"]);
}
