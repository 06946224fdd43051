#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! The gatekeeper pattern through a whole stack (JwtLayer, ShapeParamPolicyLayer with a
//! GatekeeperPolicy, ApiTokenLayer, the Electric stand-in): a valid token for one shape is
//! refused for any other (table, where, params, columns), and what reaches Electric is the
//! token's shape, whatever spelling the client used.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_electric::jwt::{sign_hs256, JwtConfig, JwtKey, JwtLayer};
use tower_electric::policy::{GatekeeperPolicy, ShapeParamPolicyLayer};
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::SecretString;

const SIGNING_KEY: &str = "gatekeeper signing key, 32 bytes or more";
const ELECTRIC_SECRET: &str = "electric-secret";

type Gateway = BoxCloneService<Request<Full<Bytes>>, Response<axum::body::Body>, Infallible>;

fn gateway() -> (Gateway, ElectricStandIn) {
    let electric = ElectricStandIn::builder()
        .secret(ELECTRIC_SECRET)
        .with_demo_data()
        .build();
    let jwt = JwtLayer::new(
        JwtConfig::new().key(JwtKey::hs256(&SecretString::new(SIGNING_KEY)).unwrap()),
    )
    .unwrap();
    let service = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(axum::body::Body::new))
        .layer(jwt)
        .layer(ShapeParamPolicyLayer::new(GatekeeperPolicy::new()))
        .layer(ApiTokenLayer::inject(
            InjectSecret::new(SecretString::new(ELECTRIC_SECRET)).unwrap(),
        ))
        .service(electric.clone());
    (BoxCloneService::new(service), electric)
}

fn token(shape: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "alice", "exp": now + 60, "shape": shape});
    sign_hs256(&SecretString::new(SIGNING_KEY), &claims)
        .unwrap()
        .expose()
        .to_owned()
}

/// acme's open items, without the internal note: what the gatekeeper granted alice.
fn acme_shape() -> Value {
    json!({
        "namespace": null,
        "table": "items",
        "where": "tenant_id = $1 AND done = false",
        "params": ["acme"],
        "columns": ["id", "tenant_id", "title", "done"],
    })
}

/// The query a client that follows the token's shape sends, `extra` appended.
fn acme_query(extra: &str) -> String {
    format!(
        "table=items&offset=-1&where=tenant_id+%3D+%241+AND+done+%3D+false&params%5B1%5D=acme\
         &columns=id,tenant_id,title,done{extra}"
    )
}

struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

async fn get(gateway: &Gateway, query: &str, token: &str) -> Answer {
    let request = Request::get(format!("/v1/shape?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = gateway.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// Asserts a 403 naming exactly `fields`, leaking neither the token nor the claim's values,
/// and that nothing reached Electric.
async fn assert_other_shape(query: &str, fields: &[&str]) {
    let (gateway, electric) = gateway();
    let token = token(acme_shape());
    let answer = get(&gateway, query, &token).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "{query}: {}",
        answer.text
    );
    assert_eq!(
        answer.body["message"],
        "The request is not the token's shape"
    );
    let named: Vec<&str> = answer.body["errors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(named, fields, "{query}");
    for leak in [token.as_str(), "acme", "tenant_id = $1", "done = false"] {
        assert!(
            !answer.text.contains(leak),
            "{query}: the refusal leaks {leak}"
        );
    }
    assert!(
        electric.requests().is_empty(),
        "{query}: a refused request reached Electric"
    );
}

// ---- a valid token for another shape -------------------------------------------------------

#[tokio::test]
async fn another_table_is_refused() {
    assert_other_shape(
        "table=tenants&offset=-1&where=tenant_id+%3D+%241+AND+done+%3D+false&params%5B1%5D=acme&columns=id,tenant_id,title,done",
        &["table"],
    )
    .await;
    // A quoted name is another table.
    assert_other_shape(
        &acme_query("").replace("table=items", "table=%22Items%22"),
        &["table"],
    )
    .await;
}

#[tokio::test]
async fn another_where_is_refused() {
    // Everyone's rows, done ones too, or a where that only looks alike.
    assert_other_shape(
        "table=items&offset=-1&columns=id,tenant_id,title,done&params%5B1%5D=acme",
        &["where"],
    )
    .await;
    for other in [
        "tenant_id+%3D+%241+OR+done+%3D+false",
        "tenant_id+%3D+%241+AND+done+%3D+true",
        "tenant_id+%3D+%241",
        "tenant_id+%3C%3E+%241+AND+done+%3D+false",
        "tenant_id+%3D+%241+AND+done+%3D+false+OR+true",
        "done+%3D+false+AND+tenant_id+%3D+%241",
    ] {
        assert_other_shape(
            &format!("table=items&offset=-1&where={other}&params%5B1%5D=acme&columns=id,tenant_id,title,done"),
            &["where"],
        )
        .await;
    }
}

#[tokio::test]
async fn other_params_are_refused() {
    assert_other_shape(&acme_query("").replace("=acme", "=globex"), &["params"]).await;
    assert_other_shape(&acme_query("&params%5B2%5D=x"), &["params"]).await;
}

#[tokio::test]
async fn an_extra_or_missing_column_is_refused() {
    assert_other_shape(
        &acme_query("").replace(
            "columns=id,tenant_id,title,done",
            "columns=id,tenant_id,title,done,internal_note",
        ),
        &["columns"],
    )
    .await;
    assert_other_shape(
        &acme_query("").replace("columns=id,tenant_id,title,done", "columns=id,title"),
        &["columns"],
    )
    .await;
    // No columns at all would be every column.
    assert_other_shape(
        &acme_query("").replace("&columns=id,tenant_id,title,done", ""),
        &["columns"],
    )
    .await;
}

#[tokio::test]
async fn every_difference_is_named() {
    assert_other_shape(
        "table=tenants&offset=-1&columns=id",
        &["columns", "params", "table", "where"],
    )
    .await;
}

#[tokio::test]
async fn a_token_without_a_shape_or_without_claims_grants_nothing() {
    let (gateway, electric) = gateway();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bare = sign_hs256(
        &SecretString::new(SIGNING_KEY),
        &json!({"sub": "alice", "exp": now + 60}),
    )
    .unwrap();
    let answer = get(&gateway, &acme_query(""), bare.expose()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    for broken in [
        json!("items"),
        json!({"where": "true"}),
        json!({"table": 1}),
        json!({"table": "items", "where": "tenant_id = $1"}),
        json!({"table": "items", "where": "x = 1; drop table items"}),
    ] {
        let answer = get(&gateway, "table=items&offset=-1", &token(broken.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{broken}: {}",
            answer.text
        );
    }
    let request = Request::get(format!("/v1/shape?{}", acme_query("")))
        .body(Full::default())
        .unwrap();
    let response = gateway.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(electric.requests().is_empty());
}

// ---- the defence: exactly that shape, and only it upstream ---------------------------------

#[tokio::test]
async fn the_tokens_shape_is_served_and_forwarded_from_the_claim() {
    let (gateway, electric) = gateway();
    let token = token(acme_shape());
    // The same shape, spelled otherwise: schema-qualified, quoted and reordered columns,
    // other spacing and keyword case; plus protocol params and a credential of its own.
    let query = "table=public.items&offset=-1&where=tenant_id%3D%241+and+done%3Dfalse\
                 &params%5B1%5D=acme&columns=%22title%22,id,done,tenant_id&log=full&secret=guess";
    let answer = get(&gateway, query, &token).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let rows: Vec<&Value> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|message| message.get("value"))
        .collect();
    assert_eq!(rows.len(), 2, "acme's two open items");
    for row in rows {
        assert_eq!(row["tenant_id"], "acme");
        assert_eq!(row["done"], "false");
        assert!(row.get("internal_note").is_none());
    }

    let seen = electric.requests().pop().unwrap();
    assert_eq!(seen.query_value("table"), Some("public.items"));
    assert_eq!(
        seen.query_value("where"),
        Some("tenant_id = $1 AND done = false")
    );
    assert_eq!(seen.query_value("params[1]"), Some("acme"));
    assert_eq!(seen.query_value("columns"), Some("id,tenant_id,title,done"));
    assert_eq!(seen.query_value("secret"), Some(ELECTRIC_SECRET));
    // Electric's default log mode is left out of the canonical upstream URL (policy/canonical.rs).
    assert_eq!(seen.query_value("log"), None);
    assert!(
        seen.headers.get(header::AUTHORIZATION).is_none(),
        "the token went upstream"
    );
}

#[tokio::test]
async fn electrics_claim_layout_with_a_namespace_and_params_as_an_object() {
    let (gateway, _electric) = gateway();
    let shape = json!({
        "namespace": "public", "table": "items", "where": "tenant_id = $1",
        "params": {"1": "globex"}, "columns": "id,title,tenant_id,done",
    });
    let query = "table=items&offset=-1&where=tenant_id+%3D+%241&params%5B1%5D=globex&columns=id,title,tenant_id,done";
    let answer = get(&gateway, query, &token(shape)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    // A whole-table token (Electric's example: where and columns null).
    let whole = json!({"namespace": null, "table": "tenants", "where": null, "columns": null});
    let answer = get(&gateway, "table=tenants&offset=-1", &token(whole.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = get(
        &gateway,
        "table=tenants&offset=-1&where=true",
        &token(whole),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
}

// ---- replica: Electric's other shape of the same rows --------------------------------------

#[tokio::test]
async fn a_replica_the_claim_does_not_name_is_refused() {
    // The claim names no replica, so it grants Electric's default: `replica=full` is another
    // Electric shape (full rows on every update), not the one signed.
    assert_other_shape(&acme_query("&replica=full"), &["replica"]).await;
}

#[tokio::test]
async fn the_default_replica_spelled_out_is_the_claims_shape() {
    let (gateway, electric) = gateway();
    let answer = get(
        &gateway,
        &acme_query("&replica=default"),
        &token(acme_shape()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let seen = electric.requests().pop().unwrap();
    assert_ne!(seen.query_value("replica"), Some("full"));
}

#[tokio::test]
async fn a_claims_replica_is_the_only_one_served() {
    let mut shape = acme_shape();
    shape["replica"] = json!("full");
    let token = token(shape);
    for (extra, status) in [
        ("&replica=full", StatusCode::OK),
        ("", StatusCode::OK),
        ("&replica=default", StatusCode::FORBIDDEN),
    ] {
        let (gateway, electric) = gateway();
        let answer = get(&gateway, &acme_query(extra), &token).await;
        assert_eq!(answer.status, status, "{extra}: {}", answer.text);
        if status == StatusCode::OK {
            let seen = electric.requests().pop().unwrap();
            assert_eq!(seen.query_value("replica"), Some("full"), "{extra}");
        } else {
            assert!(answer.body["errors"].get("replica").is_some(), "{extra}");
            assert!(electric.requests().is_empty(), "{extra}");
        }
    }
}
