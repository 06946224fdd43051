//! The header names and values of Electric's shape API.

use http::{HeaderName, HeaderValue};

/// The shape's handle (response).
pub const ELECTRIC_HANDLE: HeaderName = HeaderName::from_static("electric-handle");
/// The next offset to request (response).
pub const ELECTRIC_OFFSET: HeaderName = HeaderName::from_static("electric-offset");
/// The shape's column types as JSON (non-live 200 responses).
pub const ELECTRIC_SCHEMA: HeaderName = HeaderName::from_static("electric-schema");
/// The cursor a live client echoes in its next request (live responses).
pub const ELECTRIC_CURSOR: HeaderName = HeaderName::from_static("electric-cursor");
/// Present (empty) when the response ends up to date.
pub const ELECTRIC_UP_TO_DATE: HeaderName = HeaderName::from_static("electric-up-to-date");
/// `true` or `false`: whether the response carries changes.
pub const ELECTRIC_HAS_DATA: HeaderName = HeaderName::from_static("electric-has-data");
/// `true` on subset snapshot responses.
pub const ELECTRIC_SNAPSHOT: HeaderName = HeaderName::from_static("electric-snapshot");
/// Electric's server version.
pub const ELECTRIC_SERVER: HeaderName = HeaderName::from_static("electric-server");
/// Marks errors Electric knows about.
pub const ELECTRIC_INTERNAL_KNOWN_ERROR: HeaderName =
    HeaderName::from_static("electric-internal-known-error");
/// Caching directives for CDNs only.
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The headers Electric exposes to browsers (`access-control-expose-headers`), in its order.
pub const EXPOSE_HEADERS: [&str; 8] = [
    "electric-cursor",
    "electric-handle",
    "electric-has-data",
    "electric-offset",
    "electric-schema",
    "electric-up-to-date",
    "electric-internal-known-error",
    "retry-after",
];

/// [`EXPOSE_HEADERS`] as one header value, exactly as Electric sends it.
pub const EXPOSE_HEADERS_VALUE: &str = "electric-cursor,electric-handle,electric-has-data,electric-offset,electric-schema,electric-up-to-date,electric-internal-known-error,retry-after";

/// The methods Electric's CORS answers allow.
pub const ALLOW_METHODS_VALUE: &str = "GET, POST, HEAD, DELETE, OPTIONS";

/// The `content-type` of shape log and error responses.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The `content-type` of `live_sse` responses.
pub const SSE_CONTENT_TYPE: &str = "text/event-stream";

/// The path of the shape endpoint.
pub const SHAPE_PATH: &str = "/v1/shape";

/// The elements of a comma-separated list header (RFC 9110 §5.6.1) across its `lines`,
/// whitespace trimmed; empty elements included, for the caller to refuse or skip.
pub(crate) fn list_elements<'a>(
    lines: impl IntoIterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = &'a [u8]> {
    lines
        .into_iter()
        .flat_map(|line| line.as_bytes().split(|byte| *byte == b','))
        .map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_span_lines_trimmed_with_empty_ones_kept() {
        let lines = [
            HeaderValue::from_static(" gzip ,, chunked"),
            HeaderValue::from_static("close"),
        ];
        let elements: Vec<&[u8]> = list_elements(&lines).collect();
        assert_eq!(elements, [&b"gzip"[..], b"", b"chunked", b"close"],);
    }

    #[test]
    fn expose_value_is_the_list_joined() {
        assert_eq!(EXPOSE_HEADERS.join(","), EXPOSE_HEADERS_VALUE);
    }
}
