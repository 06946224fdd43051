//! Which headers cross the proxy.

use http::header::{
    AUTHORIZATION, CONNECTION, COOKIE, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::protocol::headers::list_elements;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1, plus the
/// non-standard `Keep-Alive` and `Proxy-Connection`): a proxy must not pass them on.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Which of the client's own credentials and routing headers go upstream.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Forwarding {
    pub(super) authorization: bool,
    pub(super) cookie: bool,
    pub(super) host: bool,
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (and no `Connection`, so none that it names): one pass over
    // the names costs less than nine lookups.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = list_elements(headers.get_all(CONNECTION))
        .filter_map(|name| HeaderName::from_bytes(name).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// The client's headers as they go upstream: hop-by-hop headers gone, the client's
/// credentials gone unless forwarding them was asked for, `Host` naming the upstream (or, when
/// asked, the host the client addressed).
pub(super) fn upstream_request_headers(
    mut headers: HeaderMap,
    client_uri: &Uri,
    forwarding: Forwarding,
    upstream_host: &HeaderValue,
) -> HeaderMap {
    remove_hop_by_hop(&mut headers);
    // The client wrote these: only a well-formed trace context goes on (W3C Trace Context).
    crate::observe::trace::sanitize(&mut headers);
    if !forwarding.authorization {
        headers.remove(AUTHORIZATION);
    }
    if !forwarding.cookie {
        headers.remove(COOKIE);
    }
    let client_host = forwarding
        .host
        .then(|| {
            headers.get(HOST).cloned().or_else(|| {
                // An HTTP/2 client names the host in the URI (`:authority`), not in `Host`.
                client_uri
                    .authority()
                    .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            })
        })
        .flatten();
    headers.insert(HOST, client_host.unwrap_or_else(|| upstream_host.clone()));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn connection_named_headers_go_with_the_hop_by_hop_ones() {
        let mut map = headers(&[
            ("connection", "X-Private , keep-alive,,"),
            ("connection", "x-other"),
            ("x-private", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("electric-handle", "h"),
            ("etag", "\"e\""),
        ]);
        remove_hop_by_hop(&mut map);
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["electric-handle", "etag"]);
    }

    #[test]
    fn unparsable_connection_tokens_are_skipped_not_fatal() {
        let mut map = headers(&[("connection", "bad name, x-gone"), ("x-gone", "1")]);
        remove_hop_by_hop(&mut map);
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn credentials_stay_behind_and_host_names_the_upstream_by_default() {
        let map = headers(&[
            ("authorization", "Bearer t"),
            ("cookie", "session=s"),
            ("host", "gateway.example"),
            ("accept", "*/*"),
        ]);
        let upstream = HeaderValue::from_static("electric:3000");
        let out = upstream_request_headers(
            map,
            &Uri::from_static("/v1/shape"),
            Forwarding::default(),
            &upstream,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[HOST], "electric:3000");
        assert_eq!(out["accept"], "*/*");
    }

    #[test]
    fn forwarded_host_falls_back_to_the_uri_authority_of_http2_clients() {
        let upstream = HeaderValue::from_static("electric:3000");
        let forwarding = Forwarding {
            host: true,
            ..Forwarding::default()
        };
        let out = upstream_request_headers(
            HeaderMap::new(),
            &Uri::from_static("https://gateway.example/v1/shape"),
            forwarding,
            &upstream,
        );
        assert_eq!(out[HOST], "gateway.example");
    }
}
