//! The query string: decoding, `ShapeRequest` parsing and canonical rendering.
//!
//! For any text: decoding never panics; decoded pairs render to a query that decodes to the
//! same pairs; a request that parses renders to a query without repeated keys (decoded with
//! `QueryPairs::parse`, which refuses them) that parses back to an equal request and renders
//! the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_electric::protocol::{QueryPairs, ShapeRequest};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pairs) = QueryPairs::parse(raw) {
        let rendered = pairs.to_query_string();
        assert_eq!(
            QueryPairs::parse(&rendered).as_ref(),
            Ok(&pairs),
            "pairs of {raw:?} rendered as {rendered:?}"
        );
    }
    let Ok(request) = ShapeRequest::parse(raw) else {
        return;
    };
    let rendered = request.to_query_string();
    let pairs = QueryPairs::parse(&rendered)
        .unwrap_or_else(|error| panic!("{raw:?} rendered as {rendered:?}: {error}"));
    let reparsed = ShapeRequest::from_pairs(pairs)
        .unwrap_or_else(|error| panic!("{raw:?} rendered as {rendered:?}: {error}"));
    assert_eq!(reparsed, request, "{raw:?} rendered as {rendered:?}");
    assert_eq!(reparsed.to_query_string(), rendered, "{raw:?}");
});
