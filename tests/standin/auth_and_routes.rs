//! Validation errors, the secret (auth), CORS, and routes and methods.

use super::*;

#[tokio::test]
async fn validation_errors_are_the_fixtures() {
    let fixture = fixture("400_invalid_request.json");
    let standin = ElectricStandIn::new();
    standin
        .create_table(
            TableSchema::new("users")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("name", "text")),
        )
        .unwrap();
    standin
        .create_table(
            TableSchema::new("queryable_users")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("name", "text"))
                .column(Column::new("secret_token", "text")),
        )
        .unwrap();
    for example in fixture["examples"].as_array().unwrap() {
        let query = example["query"].as_str().unwrap();
        let answer = get(&standin, &format!("/v1/shape?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json(), example["body"], "{query}");
        for (name, value) in fixture["response_headers"].as_object().unwrap() {
            assert_eq!(
                answer.header(name),
                value.as_str().unwrap(),
                "{query}: {name}"
            );
        }
        assert_eq!(answer.header("access-control-allow-origin"), "*");
    }
    for (query, field) in [
        ("offset=-1", "table"),
        ("table=users", "offset"),
        ("offset=-1&table=users&table=items", "table"),
    ] {
        let answer = get(&standin, &format!("/v1/shape?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.json()["errors"][field].is_array(), "{query}");
    }
}

#[tokio::test]
async fn secret_is_required_when_configured_with_electrics_401() {
    let fixture = fixture("401_invalid_secret.json");
    let standin = ElectricStandIn::builder().secret("s3cr3t").build();
    standin.create_table(items_table()).unwrap();
    for query in [
        "offset=-1&table=items",
        "offset=-1&table=items&secret=wrong",
        "offset=-1&table=items&api_secret=wrong",
    ] {
        let request = Request::get(format!("/v1/shape?{query}"))
            .header("origin", "https://app.example")
            .body(Full::default())
            .unwrap();
        let answer = send(&standin, request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(answer.json(), fixture["response"]["body"]);
        answer.assert_headers_like(&fixture["response"]["headers"], &[]);
        assert!(!answer.headers.contains_key("access-control-allow-origin"));
    }
    for query in [
        "offset=-1&table=items&secret=s3cr3t",
        "offset=-1&table=items&api_secret=s3cr3t",
    ] {
        assert_eq!(
            get(&standin, &format!("/v1/shape?{query}")).await.status,
            StatusCode::OK
        );
    }
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/shape")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&standin, preflight).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn preflight_is_the_fixture() {
    let fixture = fixture("204_options_preflight.json");
    let standin = ElectricStandIn::new();
    let mut request = Request::builder().method(Method::OPTIONS).uri("/v1/shape");
    for (name, value) in fixture["request"]["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let answer = send(&standin, request.body(Full::default()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    answer.assert_headers_like(&fixture["response"]["headers"], &[]);
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let standin = items();
    for path in ["/v1/shape/", "/v1//shape", "/v1/%73hape", "/", "/v2/shape"] {
        let answer = get(&standin, &format!("{path}?offset=-1&table=items")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body, "Not found");
    }
    let health = get(&standin, "/v1/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "active"}));
    let delete = Request::delete("/v1/shape?offset=-1&table=items")
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, delete).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json(), json!({"message": "DELETE not allowed"}));
    let put = Request::put("/v1/shape?offset=-1&table=items")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&standin, put).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn cors_origin_is_echoed() {
    let standin = items();
    let request = Request::get("/v1/shape?offset=-1&table=items")
        .header("origin", "https://app.example")
        .body(Full::default())
        .unwrap();
    let answer = send(&standin, request).await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(
        answer.header("access-control-expose-headers"),
        tower_electric::protocol::headers::EXPOSE_HEADERS_VALUE
    );
}
