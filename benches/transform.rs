//! Throughput of `BodyTransformLayer` over a generated 50 MB snapshot: the identity transform,
//! a one-column transform (ASCII upper-case of `title`) and a per-value transform (ASCII
//! upper-case of every value), against parsing the whole body into `serde_json::Value`,
//! transforming every value and writing it back.
//!
//! `cargo bench --bench transform -- --warm-up-time 1 --measurement-time 5`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{Layer, ServiceExt};
use tower_electric::transform::{each_message, Message, ShapeTransform};
use tower_electric::BodyTransformLayer;

const SIZE: usize = 50 * 1024 * 1024;

/// Streams `body` through the layer and returns the output's length.
fn through_layer<T: ShapeTransform>(layer: &BodyTransformLayer<T>, body: &Bytes) -> usize {
    let body = body.clone();
    let upstream = tower::service_fn(move |_: Request<()>| {
        let response = Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .body(tower_electric::testing::ChunkedBody::every(
                body.clone(),
                support::CHUNK,
            ))
            .unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(())
        .unwrap();
    async {
        let response = layer
            .clone()
            .layer(upstream)
            .oneshot(request)
            .await
            .unwrap();
        let mut body = response.into_body();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            len += frame.unwrap().into_data().unwrap().len();
        }
        len
    }
    .now_or_never()
    .expect("every body here is always ready")
}

/// The whole-body approach: parse into `Value`, upper-case every value, write back.
fn whole_body_value(body: &Bytes) -> usize {
    let mut messages: Value = serde_json::from_slice(body).unwrap();
    for message in messages.as_array_mut().unwrap() {
        for field in ["value", "old_value"] {
            if let Some(row) = message.get_mut(field).and_then(Value::as_object_mut) {
                for value in row.values_mut() {
                    if let Value::String(text) = value {
                        text.make_ascii_uppercase();
                    }
                }
            }
        }
    }
    serde_json::to_vec(&messages).unwrap().len()
}

fn bench(c: &mut Criterion) {
    let body = support::snapshot(SIZE);
    let identity = BodyTransformLayer::new(each_message(|_: &mut Message<'_>| Ok(())));
    let one_column = BodyTransformLayer::new(each_message(support::upper_title));
    let per_value = BodyTransformLayer::new(each_message(support::upper));
    assert_eq!(through_layer(&identity, &body), body.len());
    // Upper-casing ASCII keeps every length.
    assert_eq!(through_layer(&one_column, &body), body.len());
    // The same messages; the layer also keeps the upstream's newlines between them.
    let newlines = body.iter().filter(|byte| **byte == b'\n').count();
    assert_eq!(
        through_layer(&per_value, &body),
        whole_body_value(&body) + newlines
    );

    let mut group = c.benchmark_group("transform_50MB_snapshot");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(10);
    group.bench_function("layer_identity", |b| {
        b.iter(|| through_layer(&identity, &body))
    });
    group.bench_function("layer_one_column", |b| {
        b.iter(|| through_layer(&one_column, &body))
    });
    group.bench_function("layer_per_value", |b| {
        b.iter(|| through_layer(&per_value, &body))
    });
    group.bench_function("whole_body_serde_value", |b| {
        b.iter(|| whole_body_value(&body))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
