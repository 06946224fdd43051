//! `ApiTokenLayer`: Electric's secret injected and never leaked; caller tokens required.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::body::ResponseBody;
use tower_electric::protocol::QueryPairs;
use tower_electric::rejection::{Rejection, RejectionKind};
use tower_electric::token::{secret_from_file, ApiToken, InjectSecret, RequireToken, TokenError};
use tower_electric::{ApiTokenLayer, SecretString};

/// Electric's secret as the server holds it: characters that must be percent-encoded.
const SERVER_SECRET: &str = "p@ss w&rd=+%/ü#?";
const TOKEN_NEW: &str = "caller-token-new-0123456789";
const TOKEN_OLD: &str = "caller-token-old-9876543210";
const CUSTOM_HEADER: HeaderName = HeaderName::from_static("electric-secret");

/// What the inner service was given, decoded the way Electric decodes it.
#[derive(Clone, Debug)]
struct Received {
    raw_query: String,
    query: QueryPairs,
    headers: HeaderMap,
}

/// The inner service: answers 200 and records what it received in the response extensions.
/// Any `Service<Request<_>>` works here, an Electric stand-in included.
async fn recording_upstream(
    request: Request<Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let query = QueryPairs::parse(&raw_query).expect("the layer forwards a decodable query");
    let mut response = Response::new(Full::from("upstream body"));
    response.extensions_mut().insert(Received {
        raw_query,
        query,
        headers: request.headers().clone(),
    });
    Ok(response)
}

fn inject() -> InjectSecret {
    InjectSecret::new(SecretString::new(SERVER_SECRET)).unwrap()
}

fn require() -> RequireToken {
    RequireToken::new([TOKEN_NEW, TOKEN_OLD])
        .unwrap()
        .header(CUSTOM_HEADER)
        .query_param(true)
}

async fn send(
    layer: &ApiTokenLayer,
    request: Request<Full<Bytes>>,
) -> Response<ResponseBody<Full<Bytes>>> {
    layer
        .layer(service_fn(recording_upstream))
        .oneshot(request)
        .await
        .unwrap()
}

fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

fn empty(builder: http::request::Builder) -> Request<Full<Bytes>> {
    builder.body(Full::default()).unwrap()
}

/// The request the inner service got; fails if the layer refused instead.
fn forwarded<B>(response: &Response<B>) -> Received {
    match response.extensions().get::<Received>() {
        Some(received) => received.clone(),
        None => panic!("refused with {}, expected forwarding", response.status()),
    }
}

/// Keys Electric (or anything case-folding or bracket-parsing in between) could read as a
/// credential.
fn credential_keys(query: &QueryPairs) -> Vec<String> {
    query
        .iter()
        .map(|(key, _)| key)
        .filter(|key| {
            let base = key.split('[').next().unwrap().trim().to_ascii_lowercase();
            ["secret", "api_secret", "source_id", "source_secret"].contains(&base.as_str())
        })
        .map(str::to_owned)
        .collect()
}

// ----- inject mode -------------------------------------------------------------------------

#[tokio::test]
async fn client_secrets_in_every_spelling_are_replaced_by_exactly_one_server_secret() {
    let layer = ApiTokenLayer::inject(inject());
    for client_query in [
        "secret=client",
        "api_secret=client",
        "%73ecret=client",
        "%73%65%63%72%65%74=client",
        "secret%5B%5D=client",
        "secret[]=client",
        "secret[x]=client",
        "api_secret[]=client&api_secret[]=again",
        "SECRET=client",
        "Api_Secret=client",
        "secret=a&secret=b",
        "%73ecret=a&secret=b",
        "secret=a&api_secret=b&secret[]=c&%61pi_secret=d",
        "secret",
        "secret=",
    ] {
        let request = empty(get(&format!(
            "/v1/shape?table=items&{client_query}&offset=-1"
        )));
        let response = send(&layer, request).await;
        assert_eq!(response.status(), StatusCode::OK, "{client_query}");
        let received = forwarded(&response);
        assert_eq!(
            credential_keys(&received.query),
            ["secret"],
            "{client_query} -> {}",
            received.raw_query
        );
        assert_eq!(
            received.query.get("secret"),
            Some(SERVER_SECRET),
            "{client_query}"
        );
        assert_eq!(received.query.get("table"), Some("items"), "{client_query}");
        assert_eq!(received.query.get("offset"), Some("-1"), "{client_query}");
        assert!(
            !received.raw_query.contains("client"),
            "{client_query} -> {}",
            received.raw_query
        );
    }
}

#[tokio::test]
async fn secret_is_added_when_the_client_sent_none_and_to_a_policy_rebuilt_query() {
    let layer = ApiTokenLayer::inject(inject());
    // The canonical rendering a policy layer forwards (`ShapeRequest::to_query_string`).
    let request = empty(get(
        "/v1/shape?offset=-1&params[1]=5&table=public.items&where=id%20%3E%20%241",
    ));
    let received = forwarded(&send(&layer, request).await);
    let pairs: Vec<(&str, &str)> = received.query.iter().collect();
    assert_eq!(
        pairs,
        [
            ("offset", "-1"),
            ("params[1]", "5"),
            ("table", "public.items"),
            ("where", "id > $1"),
            ("secret", SERVER_SECRET),
        ]
    );

    let request = empty(get("/v1/shape"));
    let received = forwarded(&send(&layer, request).await);
    assert_eq!(received.query.len(), 1);
    assert_eq!(received.query.get("secret"), Some(SERVER_SECRET));
}

#[tokio::test]
async fn secret_value_is_percent_encoded_in_the_upstream_query() {
    let layer = ApiTokenLayer::inject(inject());
    let received = forwarded(&send(&layer, empty(get("/v1/shape?table=t"))).await);
    assert_eq!(
        received.raw_query,
        "table=t&secret=p%40ss%20w%26rd%3D%2B%25%2F%C3%BC%23%3F"
    );
}

#[tokio::test]
async fn a_query_reaches_upstream_as_one_text_however_the_client_spelled_it() {
    let layer = ApiTokenLayer::inject(inject());
    // Written as the layer writes (as a policy layer forwards it), then the same pairs spelled
    // three other ways: `+`, lowercase and needless escapes, escaped brackets.
    let spellings = [
        "table=items&where=done%20%3D%20false&params[1]=%C3%BC&secret=client",
        "table=it%65ms&where=done+%3d+false&params%5B1%5D=%c3%bc&secret=client",
        "%73ecret=client&table=items&where=done%20%3D%20false&params[1]=%C3%BC",
        "table=items&where=done%20=%20false&params%5b1%5d=%C3%BC&SECRET=client&secret=again",
    ];
    for query in spellings {
        let received = forwarded(&send(&layer, empty(get(&format!("/v1/shape?{query}")))).await);
        assert_eq!(
            received.raw_query,
            "table=items&where=done%20%3D%20false&params[1]=%C3%BC\
             &secret=p%40ss%20w%26rd%3D%2B%25%2F%C3%BC%23%3F",
            "{query}"
        );
    }
}

/// Electric Cloud's source, as the server holds it: characters that must be percent-encoded.
const SOURCE_ID: &str = "8ea4e5fb-src&id=1 ü";

#[tokio::test]
async fn electric_cloud_source_id_and_secret_replace_every_client_copy() {
    let layer = ApiTokenLayer::inject(inject().with_source_id(SOURCE_ID));
    for client_query in [
        "source_id=client",
        "%73ource_id=client",
        "source%5Fid=client",
        "%73%6F%75%72%63%65%5F%69%64=client",
        "source_id[]=client",
        "source_id%5B0%5D=client",
        "SOURCE_ID=client",
        "Source_Id=client",
        "source_id=client-1&source_id=client-2",
        "source_id=client-1&%73ource_id=client-2&secret=client-3&api_secret=client-4",
        "source_secret=client",
        "%73ource_secret=client&SOURCE_SECRET=client-2",
        "source_id",
        "source_id=",
    ] {
        let request = empty(get(&format!(
            "/v1/shape?table=items&{client_query}&offset=-1"
        )));
        let response = send(&layer, request).await;
        assert_eq!(response.status(), StatusCode::OK, "{client_query}");
        let received = forwarded(&response);
        let mut keys = credential_keys(&received.query);
        keys.sort();
        assert_eq!(
            keys,
            ["secret", "source_id"],
            "{client_query} -> {}",
            received.raw_query
        );
        assert_eq!(received.query.get("source_id"), Some(SOURCE_ID));
        assert_eq!(received.query.get("secret"), Some(SERVER_SECRET));
        assert!(
            !received.raw_query.contains("client"),
            "{client_query} -> {}",
            received.raw_query
        );
    }
}

#[tokio::test]
async fn the_source_id_is_encoded_and_follows_the_secret() {
    let layer = ApiTokenLayer::inject(inject().with_source_id(SOURCE_ID));
    let received = forwarded(&send(&layer, empty(get("/v1/shape?table=items&offset=-1"))).await);
    assert_eq!(
        received.raw_query,
        "table=items&offset=-1&secret=p%40ss%20w%26rd%3D%2B%25%2F%C3%BC%23%3F\
         &source_id=8ea4e5fb-src%26id%3D1%20%C3%BC"
    );
}

#[tokio::test]
async fn a_client_source_id_is_removed_even_without_electric_cloud() {
    // `source_id` belongs to the server (PROTOCOL.md): a deployment that forgot to configure
    // one must not let the client pick the source its secret is presented for.
    let layer = ApiTokenLayer::inject(inject());
    let request = empty(get(
        "/v1/shape?table=items&source_id=client&%73ource_id[]=client-2&offset=-1",
    ));
    let received = forwarded(&send(&layer, request).await);
    assert_eq!(credential_keys(&received.query), ["secret"]);
    assert!(
        !received.raw_query.contains("client"),
        "{}",
        received.raw_query
    );
}

#[tokio::test]
async fn a_source_id_given_to_require_mode_only_stays_in_the_query() {
    // Require mode alone injects nothing: only the caller's token is taken out.
    let layer = ApiTokenLayer::require(require());
    let request = empty(get(&format!(
        "/v1/shape?table=items&source_id=kept&secret={TOKEN_NEW}"
    )));
    let received = forwarded(&send(&layer, request).await);
    assert_eq!(received.query.get("source_id"), Some("kept"));
    assert_eq!(received.query.get("secret"), None);
}

#[tokio::test]
async fn a_query_that_cannot_be_decoded_is_refused_not_forwarded_half_cleaned() {
    let layer = ApiTokenLayer::inject(inject());
    for query in [
        "secret=x&table=%zz",
        "%73ecret=x&where=%e9",
        "secret=%",
        "table=a&table=b&secret=x",
    ] {
        let response = send(&layer, empty(get(&format!("/v1/shape?{query}")))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(response.extensions().get::<Received>().is_none(), "{query}");
        let rejection = response.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::InvalidRequest, "{query}");
    }
}

// ----- require mode ------------------------------------------------------------------------

#[tokio::test]
async fn each_rotated_token_is_accepted_from_every_enabled_place() {
    let layer = ApiTokenLayer::require(require());
    for token in [TOKEN_NEW, TOKEN_OLD] {
        let requests = [
            empty(get("/internal").header(AUTHORIZATION, format!("Bearer {token}"))),
            empty(get("/internal").header(AUTHORIZATION, format!("bEaReR {token}"))),
            empty(get("/internal").header(CUSTOM_HEADER, token)),
            empty(get(&format!("/internal?secret={token}"))),
            empty(get(&format!("/internal?%73ecret={token}"))),
        ];
        for request in requests {
            let shown = format!("{:?}", request.headers());
            let response = send(&layer, request).await;
            assert_eq!(response.status(), StatusCode::OK, "{shown}");
        }
    }
}

#[tokio::test]
async fn wrong_prefix_empty_other_scheme_and_missing_tokens_are_refused_with_a_challenge() {
    let layer = ApiTokenLayer::require(require());
    let wrong_same_length = "caller-token-new-0123456780";
    assert_eq!(wrong_same_length.len(), TOKEN_NEW.len());
    let prefix = &TOKEN_NEW[..10];
    let refused = [
        empty(get("/internal").header(AUTHORIZATION, format!("Bearer {wrong_same_length}"))),
        empty(get("/internal").header(AUTHORIZATION, format!("Bearer {prefix}"))),
        empty(get("/internal").header(AUTHORIZATION, "Bearer ")),
        empty(get("/internal").header(AUTHORIZATION, format!("Basic {TOKEN_NEW}"))),
        empty(get("/internal").header(AUTHORIZATION, TOKEN_NEW)),
        empty(get("/internal").header(CUSTOM_HEADER, wrong_same_length)),
        empty(get("/internal").header(CUSTOM_HEADER, "")),
        empty(get(&format!("/internal?secret={prefix}"))),
        empty(get("/internal?secret=")),
        empty(get(&format!("/internal?other={TOKEN_NEW}"))),
        empty(get(&format!("/internal?api_secret={TOKEN_NEW}"))),
        empty(get(&format!("/internal?secret[]={TOKEN_NEW}"))),
        empty(get("/internal")),
    ];
    for request in refused {
        let shown = format!("{} {:?}", request.uri(), request.headers());
        let response = send(&layer, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{shown}");
        assert!(response.extensions().get::<Received>().is_none(), "{shown}");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{shown}: {challenge}");
        let body = body_json(response).await;
        assert!(body["message"]
            .as_str()
            .unwrap()
            .starts_with("Unauthorized"));
    }
}

#[tokio::test]
async fn query_param_and_custom_header_are_only_read_when_enabled() {
    let layer = ApiTokenLayer::require(RequireToken::new([TOKEN_NEW]).unwrap());
    for request in [
        empty(get(&format!("/internal?secret={TOKEN_NEW}"))),
        empty(get("/internal").header(CUSTOM_HEADER, TOKEN_NEW)),
    ] {
        assert_eq!(
            send(&layer, request).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn the_token_is_removed_before_the_inner_service() {
    let layer = ApiTokenLayer::require(require());
    let requests = [
        empty(get("/internal?keep=1").header(AUTHORIZATION, format!("Bearer {TOKEN_NEW}"))),
        empty(get("/internal?keep=1").header(CUSTOM_HEADER, TOKEN_NEW)),
        empty(get(&format!("/internal?keep=1&secret={TOKEN_NEW}"))),
        empty(get(&format!(
            "/internal?keep=1&secret={TOKEN_NEW}&SECRET={TOKEN_OLD}&api_secret={TOKEN_OLD}"
        ))),
    ];
    for request in requests {
        let received = forwarded(&send(&layer, request).await);
        assert!(received.headers.get(AUTHORIZATION).is_none());
        assert!(received.headers.get(CUSTOM_HEADER).is_none());
        assert_eq!(received.query.iter().collect::<Vec<_>>(), [("keep", "1")]);
        let everything = format!("{} {:?}", received.raw_query, received.headers);
        assert!(!everything.contains(TOKEN_NEW) && !everything.contains(TOKEN_OLD));
    }
}

#[tokio::test]
async fn options_preflights_pass_without_a_token_and_still_lose_any_token() {
    let layer = ApiTokenLayer::require(require());
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/shape?table=items")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .body(Full::default())
        .unwrap();
    let received = forwarded(&send(&layer, request).await);
    assert_eq!(received.query.get("table"), Some("items"));

    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/shape")
        .header(AUTHORIZATION, "Bearer wrong")
        .body(Full::default())
        .unwrap();
    let received = forwarded(&send(&layer, request).await);
    assert!(received.headers.get(AUTHORIZATION).is_none());
}

#[tokio::test]
async fn ambiguous_credentials_are_a_400_never_first_one_wins() {
    let layer = ApiTokenLayer::require(require());
    let bearer_new = format!("Bearer {TOKEN_NEW}");
    let ambiguous = [
        // The valid one first, then the valid one last: neither order gets through.
        empty(
            get("/internal")
                .header(AUTHORIZATION, &bearer_new)
                .header(AUTHORIZATION, "Bearer wrong"),
        ),
        empty(
            get("/internal")
                .header(AUTHORIZATION, "Bearer wrong")
                .header(AUTHORIZATION, &bearer_new),
        ),
        empty(
            get("/internal")
                .header(CUSTOM_HEADER, TOKEN_NEW)
                .header(CUSTOM_HEADER, TOKEN_OLD),
        ),
        empty(get(&format!(
            "/internal?secret={TOKEN_NEW}&%73ecret={TOKEN_OLD}"
        ))),
        empty(
            get("/internal")
                .header(AUTHORIZATION, &bearer_new)
                .header(CUSTOM_HEADER, TOKEN_NEW),
        ),
        empty(get(&format!("/internal?secret={TOKEN_NEW}")).header(AUTHORIZATION, &bearer_new)),
    ];
    for request in ambiguous {
        let shown = format!("{} {:?}", request.uri(), request.headers());
        let response = send(&layer, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
        assert!(response.extensions().get::<Received>().is_none(), "{shown}");
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_request\"",
            "{shown}"
        );
    }
}

// ----- both modes --------------------------------------------------------------------------

#[tokio::test]
async fn combined_layer_and_two_stacked_layers_behave_alike() {
    let combined = ApiTokenLayer::require(require()).and_inject(inject());
    let outer = ApiTokenLayer::require(require());
    let inner = ApiTokenLayer::inject(inject());
    let stacked = |request| {
        outer
            .layer(inner.layer(service_fn(recording_upstream)))
            .oneshot(request)
    };

    let query = format!("/v1/shape?table=t&secret={TOKEN_OLD}&api_secret=client");
    let combined_response = send(&combined, empty(get(&query))).await;
    let stacked_response = stacked(empty(get(&query))).await.unwrap();
    for received in [forwarded(&combined_response), forwarded(&stacked_response)] {
        assert_eq!(
            received.query.iter().collect::<Vec<_>>(),
            [("table", "t"), ("secret", SERVER_SECRET)]
        );
    }

    let wrong = "/v1/shape?table=t&secret=wrong";
    let combined_status = send(&combined, empty(get(wrong))).await.status();
    let stacked_status = stacked(empty(get(wrong))).await.unwrap().status();
    assert_eq!(combined_status, StatusCode::UNAUTHORIZED);
    assert_eq!(stacked_status, StatusCode::UNAUTHORIZED);
}

// ----- secrets never shown -----------------------------------------------------------------

#[test]
fn debug_of_every_type_holding_a_secret_shows_none() {
    let inject = inject();
    let require = require();
    let layer = ApiTokenLayer::require(require.clone()).and_inject(inject.clone());
    let service: ApiToken<()> = layer.layer(());
    let secret = SecretString::new(SERVER_SECRET);
    let shown = format!(
        "{inject:?} {require:?} {layer:?} {service:?} {secret:?} {secret} {inject:#?} {layer:#?}"
    );
    for secret in [SERVER_SECRET, TOKEN_NEW, TOKEN_OLD] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn loading_errors_name_the_source_never_the_value() {
    let path =
        std::env::temp_dir().join(format!("tower-electric-api-token-{}", std::process::id()));
    std::fs::write(&path, format!("{SERVER_SECRET}\n")).unwrap();
    assert_eq!(secret_from_file(&path).unwrap().expose(), SERVER_SECRET);
    std::fs::remove_file(&path).unwrap();

    std::env::set_var("TOWER_ELECTRIC_API_TOKEN_TEST_EMPTY", "");
    let error = InjectSecret::from_env("TOWER_ELECTRIC_API_TOKEN_TEST_EMPTY").unwrap_err();
    assert!(matches!(error, TokenError::EnvEmpty { .. }));
    assert!(format!("{error} {error:?}").contains("TOWER_ELECTRIC_API_TOKEN_TEST_EMPTY"));

    std::env::set_var(
        "TOWER_ELECTRIC_API_TOKEN_TEST_LIST",
        format!("{TOKEN_NEW},{TOKEN_OLD}"),
    );
    let require = RequireToken::from_env("TOWER_ELECTRIC_API_TOKEN_TEST_LIST").unwrap();
    assert!(!format!("{require:?}").contains(TOKEN_NEW));
}

/// Every refusal this layer can give, from requests that carry the server's secret's look-alike
/// and the callers' tokens, scanned for those bytes in the body and every header.
#[tokio::test]
async fn no_refusal_carries_a_secret_or_a_caller_token() {
    let combined = ApiTokenLayer::require(require().realm("gateway").unwrap())
        .and_inject(inject().with_source_id(SOURCE_ID))
        .max_query_len(512);
    let bearer_new = format!("Bearer {TOKEN_NEW}");
    let long = "x".repeat(600);
    let refusals = [
        empty(get("/v1/shape")),
        empty(get("/v1/shape").header(AUTHORIZATION, format!("Basic {TOKEN_NEW}"))),
        empty(get("/v1/shape").header(AUTHORIZATION, format!("Bearer {}", &TOKEN_NEW[..12]))),
        empty(get(&format!("/v1/shape?secret={TOKEN_OLD}x"))),
        empty(
            get("/v1/shape")
                .header(AUTHORIZATION, &bearer_new)
                .header(AUTHORIZATION, format!("Bearer {TOKEN_OLD}")),
        ),
        empty(
            get("/v1/shape")
                .header(CUSTOM_HEADER, TOKEN_NEW)
                .header(CUSTOM_HEADER, TOKEN_OLD),
        ),
        empty(get(&format!(
            "/v1/shape?secret={TOKEN_NEW}&secret={TOKEN_OLD}"
        ))),
        empty(get(&format!("/v1/shape?secret={TOKEN_NEW}")).header(CUSTOM_HEADER, TOKEN_OLD)),
        empty(get(&format!("/v1/shape?secret={TOKEN_NEW}&table=%zz"))),
        empty(
            get(&format!("/v1/shape?secret={TOKEN_NEW}&table=%ff"))
                .header(AUTHORIZATION, &bearer_new),
        ),
        empty(
            get(&format!("/v1/shape?secret={TOKEN_OLD}&table=a&table=b"))
                .header(AUTHORIZATION, &bearer_new),
        ),
        empty(get(&format!("/v1/shape?secret={TOKEN_NEW}&pad={long}"))),
    ];
    let mut statuses = Vec::new();
    for request in refusals {
        let shown = format!("{} {:?}", request.uri(), request.headers());
        let response = send(&combined, request).await;
        assert!(response.extensions().get::<Received>().is_none(), "{shown}");
        statuses.push(response.status().as_u16());
        let mut seen = Vec::new();
        for (name, value) in response.headers() {
            seen.extend_from_slice(name.as_str().as_bytes());
            seen.extend_from_slice(value.as_bytes());
        }
        seen.extend_from_slice(
            format!("{:?}", response.extensions().get::<Rejection>()).as_bytes(),
        );
        seen.extend_from_slice(&response.into_body().collect().await.unwrap().to_bytes());
        for secret in [
            SERVER_SECRET,
            SOURCE_ID,
            TOKEN_NEW,
            TOKEN_OLD,
            &TOKEN_NEW[..12],
        ] {
            assert!(
                !contains(&seen, secret.as_bytes()),
                "{shown} leaked {secret}: {}",
                String::from_utf8_lossy(&seen)
            );
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(
        statuses,
        [400, 401, 414],
        "every kind of refusal was exercised"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn body_json(response: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}
