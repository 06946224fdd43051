//! CPU per request of each layer, through `oneshot` on a trivial inner service (no network):
//! `IpAllowLayer` resolving a client behind a forwarding chain, `ApiTokenLayer` injecting the
//! secret, `ShapeParamPolicyLayer` with a client `where` (parse, composition with the row
//! filter, rebuild: as every request after a client's first, with its composed where kept by
//! the memo, and with the memo off, as a first request), and the whole `/v1/shape` stack of the
//! example gateway with a small shape log transformed on the way back. `inner_only` is the
//! floor every figure includes.
//!
//! `cargo bench --bench layers -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/encryption/columns.rs"]
mod columns;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_electric::ip::{ClientIpSource, IpAllowLayer, IpLists, PeerAddr};
use tower_electric::policy::ShapeParamPolicyLayer;
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::transform::{each_message, BoxError, Message};
use tower_electric::{BodyTransformLayer, SecretString};

/// What the example gateway's client asks: a first sync of its open items.
const TARGET: &str = "/v1/shape?table=items&offset=-1&where=done%3Dfalse";

/// A small shape log, as Electric answers that request.
const LOG: &str = concat!(
    r#"[{"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"1\"","value":{"done":"false","id":"1","tenant_id":"acme","title":"Draft the launch plan"}},"#,
    r#"{"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"3\"","value":{"done":"false","id":"3","tenant_id":"acme","title":"Book the offsite"}},"#,
    r#"{"headers":{"control":"snapshot-end","xip_list":[],"xmax":"13","xmin":"12"}}]"#
);

/// The example gateway's own policy, so the benchmark measures the rules it serves with.
fn policy() -> ShapeParamPolicyLayer {
    ShapeParamPolicyLayer::new(app::policy().unwrap())
}

fn ip_allow() -> IpAllowLayer {
    let lists = IpLists::new()
        .allow("203.0.113.0/24")
        .unwrap()
        .trust_proxies("10.0.0.0/8")
        .unwrap();
    IpAllowLayer::new(lists).client_ip_source(ClientIpSource::XForwardedFor)
}

fn inject() -> ApiTokenLayer {
    ApiTokenLayer::inject(
        InjectSecret::new(SecretString::new("s3cret-electric".to_owned())).unwrap(),
    )
}

/// The request as the example gateway sees it: behind two proxies, authorised as `acme`.
fn request<B: Default>() -> Request<B> {
    let mut request = Request::get(TARGET)
        .header("x-forwarded-for", "203.0.113.7, 10.0.0.2")
        .header("authorization", "Bearer alice-token")
        .header("accept", "*/*")
        .header("user-agent", "electric-client/1.0")
        .body(B::default())
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([10, 0, 0, 1], 41000))));
    request
        .extensions_mut()
        .insert(columns::Tenant("acme".into()));
    request
}

/// The trivial inner service: answers every request with the shape log.
fn electric<B>(
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|_: Request<B>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json; charset=utf-8")
                .header("cache-control", "public, max-age=604800")
                .header("electric-handle", "43732957-1795853811308007")
                .header("electric-offset", "0_inf")
                .body(Full::new(Bytes::from_static(LOG.as_bytes())))
                .unwrap(),
        )
    })
}

/// Calls `service` once and reads the whole response body; every future here is ready.
fn call<S, B, RB>(service: &S) -> usize
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: std::fmt::Debug,
    B: Default,
    RB: http_body::Body<Data = Bytes>,
    RB::Error: std::fmt::Debug,
{
    async {
        let response = service.clone().oneshot(request::<B>()).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len()
    }
    .now_or_never()
    .expect("every future here is ready")
}

/// A per-value transform of the size the gateway's decryption has: one column rewritten.
fn rewrite_title(message: &mut Message<'_>) -> Result<(), BoxError> {
    for row in message.rows_mut() {
        if let Some(Some(title)) = row.get("title") {
            let upper = title.to_ascii_uppercase();
            row.set("title", Some(upper));
        }
    }
    Ok(())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_request");
    let inner = electric::<Empty<Bytes>>();
    group.bench_function("inner_only", |b| b.iter(|| call(&inner)));

    let ip = ServiceBuilder::new()
        .layer(ip_allow())
        .service(electric::<Empty<Bytes>>());
    group.bench_function("ip_allow_forwarded_chain", |b| b.iter(|| call(&ip)));

    let token = ServiceBuilder::new()
        .layer(inject())
        .service(electric::<Empty<Bytes>>());
    group.bench_function("api_token_inject", |b| b.iter(|| call(&token)));

    let shape = ServiceBuilder::new()
        .layer(policy())
        .service(electric::<_>());
    group.bench_function("shape_policy_client_where", |b| {
        b.iter(|| call::<_, Empty<Bytes>, _>(&shape))
    });
    // The first request of a where: parsed, checked, composed, rendered and read back.
    let unmemoized = ServiceBuilder::new()
        .layer(policy().where_memo_capacity(0))
        .service(electric::<_>());
    group.bench_function("shape_policy_client_where_unmemoized", |b| {
        b.iter(|| call::<_, Empty<Bytes>, _>(&unmemoized))
    });

    let transform = ServiceBuilder::new()
        .layer(BodyTransformLayer::new(each_message(rewrite_title)))
        .service(electric::<Empty<Bytes>>());
    group.bench_function("body_transform_small_log", |b| b.iter(|| call(&transform)));

    let stack = ServiceBuilder::new()
        .layer(ip_allow())
        .layer(policy())
        .layer(inject())
        .layer(BodyTransformLayer::new(each_message(rewrite_title)))
        .service(electric::<_>());
    group.bench_function("whole_stack", |b| {
        b.iter(|| call::<_, Empty<Bytes>, _>(&stack))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
