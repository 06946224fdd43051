//! Chunking: however the upstream's body is cut, the result is the same.

use super::*;

fn sample_body() -> Vec<u8> {
    let mut messages = Vec::new();
    for name in [
        "200_initial_offset_-1.json",
        "200_live_update_replica_full.json",
    ] {
        messages.extend(
            fixture(name)["response"]["body"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
    }
    messages.push(json!({"headers":{"operation":"insert"},"key":"esc","value":{"q":"a \"quoted\" \\ back]}{slash","u":"ünïcödé ✓","n":null,"nl":"line\nbreak"}}));
    messages.push(json!({"headers":{"event":"move-in"},"key":"drop-not-applied"}));
    messages.push(json!({"headers":{"operation":"delete"},"key":"drop","value":{"id":"9"}}));
    let mut body = serde_json::to_vec_pretty(&messages).unwrap();
    body.extend_from_slice(b"\n");
    body
}

fn transform_in_chunks(body: &[u8], cuts: &[usize]) -> Bytes {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::split(Bytes::copy_from_slice(body), cuts));
    async {
        let (_, out) = exchange(
            BodyTransformLayer::new(each_message(upper_and_drop)),
            request,
            response,
        )
        .await;
        body_of(out).await.unwrap()
    }
    .now_or_never()
    .unwrap()
}

#[test]
fn one_byte_chunks_give_the_same_result() {
    let body = sample_body();
    let whole = transform_in_chunks(&body, &[]);
    let cuts: Vec<usize> = (1..body.len()).collect();
    assert_eq!(transform_in_chunks(&body, &cuts), whole);
    let messages: Vec<Value> = serde_json::from_slice(&body).unwrap();
    let out: Vec<Value> = serde_json::from_slice(&whole).unwrap();
    assert_eq!(out, upper_and_drop_expected(&messages));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_result(cuts in proptest::collection::btree_set(1usize..2000, 0..40)) {
        let body = sample_body();
        let cuts: Vec<usize> = cuts.into_iter().filter(|&cut| cut < body.len()).collect();
        prop_assert_eq!(transform_in_chunks(&body, &cuts), transform_in_chunks(&body, &[]));
    }
}
