//! Forwarding headers and peer addresses through `IpAllowLayer`.
//!
//! The input's first line is `<source> <peer>`: the source `f` (`Forwarded`), `x`
//! (`X-Forwarded-For`), `h` (`CF-Connecting-IP`) or anything else (the peer only), and the
//! peer as an address or socket address (no peer when it is neither). Every further line is
//! one line of the source's header, raw bytes included.
//!
//! The layer refuses (400 or 403 in Electric's error shape, nothing forwarded) or forwards with
//! a `ClientIp` that is canonical, inside the allow set and outside the deny set (checked here
//! without the crate's CIDR code), and that is the peer itself whenever the peer is not a
//! trusted proxy or no header is read.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_electric::ip::{ClientIpSource, IpAllowLayer, IpLists, PeerAddr};
use tower_electric_fuzz::{assert_refusal, through};

fn layer(source: ClientIpSource) -> IpAllowLayer {
    let lists = IpLists::new()
        .allow("198.51.100.0/24, 2001:db8::/32")
        .and_then(|lists| lists.deny("198.51.100.66, 2001:db8::66"))
        .and_then(|lists| lists.trust_proxies("10.0.0.0/8, fd00::/8"))
        .expect("fixed lists");
    IpAllowLayer::new(lists)
        .client_ip_source(source)
        .max_hops(8)
}

static LAYERS: LazyLock<[(u8, &str, IpAllowLayer); 4]> = LazyLock::new(|| {
    [
        (b'f', "forwarded", layer(ClientIpSource::Forwarded)),
        (
            b'x',
            "x-forwarded-for",
            layer(ClientIpSource::XForwardedFor),
        ),
        (
            b'h',
            "cf-connecting-ip",
            layer(ClientIpSource::Header(HeaderName::from_static(
                "cf-connecting-ip",
            ))),
        ),
        (b'p', "x-forwarded-for", layer(ClientIpSource::Peer)),
    ]
});

/// The allow set minus the deny set, written out without the crate's CIDR code.
fn allowed(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            (a, b, c) == (198, 51, 100) && d != 66
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            segments[..2] == [0x2001, 0x0db8]
                && v6
                    != "2001:db8::66"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("address")
        }
    }
}

fn trusted(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[0] == 10,
        IpAddr::V6(v6) => v6.octets()[0] == 0xfd,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&byte| byte == b'\n');
    let first = lines.next().unwrap_or_default();
    let (source, peer) = match first.split_first() {
        Some((&source, rest)) => (source, rest.strip_prefix(b" ").unwrap_or(rest)),
        None => (b'p', &b""[..]),
    };
    let (_, header, layer) = LAYERS
        .iter()
        .find(|(key, _, _)| *key == source)
        .unwrap_or(&LAYERS[3]);
    let peer = std::str::from_utf8(peer).ok().and_then(|text| {
        text.parse::<SocketAddr>()
            .ok()
            .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 1)))
    });
    let mut request = Request::new(Full::new(Bytes::new()));
    if let Some(peer) = peer {
        request.extensions_mut().insert(PeerAddr(peer));
    }
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            request.headers_mut().append(*header, value);
        }
    }
    let outcome = through(layer, request);
    let Some(forwarded) = &outcome.forwarded else {
        assert_refusal(&outcome);
        assert!(
            matches!(outcome.status.as_u16(), 400 | 403),
            "{}",
            outcome.status
        );
        return;
    };
    let peer = peer.expect("a request without a peer was allowed").ip();
    let client: IpAddr = forwarded
        .headers
        .get("x-fuzz-client-ip")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .expect("an allowed request carries its ClientIp");
    assert_eq!(client, client.to_canonical(), "ClientIp not canonical");
    assert!(allowed(client), "{client} allowed (peer {peer})");
    if source == b'p' || !LAYERS.iter().any(|(key, _, _)| *key == source) || !trusted(peer) {
        assert_eq!(
            client,
            peer.to_canonical(),
            "an untrusted peer chose its address"
        );
    }
});
