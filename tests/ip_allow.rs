#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! `IpAllowLayer` end to end: spoofing attempts, proxy chains, canonicalisation, fail-closed
//! refusals, live list replacement, and a property test over arbitrary header bytes.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_electric::body::ResponseBody;
use tower_electric::ip::{ClientIp, ClientIpSource, IpAllowLayer, IpLists, PeerAddr};
use tower_electric::rejection::{Rejection, RejectionKind};

const ALLOW: &str = "127.0.0.0/8, 198.51.100.0/24, 2001:db8::/32";
const DENY: &str = "198.51.100.66";
const TRUSTED: &str = "10.0.0.0/8, fd00::/8";

fn lists() -> IpLists {
    IpLists::new()
        .allow(ALLOW)
        .unwrap()
        .deny(DENY)
        .unwrap()
        .trust_proxies(TRUSTED)
        .unwrap()
}

/// The inner service: answers 200 with the client address the layer decided.
async fn echo_client(request: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ClientIp(client) = *request
        .extensions()
        .get::<ClientIp>()
        .expect("an allowed request carries its ClientIp");
    Ok(Response::new(Full::new(Bytes::from(client.to_string()))))
}

fn service(
    source: ClientIpSource,
) -> impl Service<Request<()>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible> + Clone
{
    IpAllowLayer::new(lists())
        .client_ip_source(source)
        .layer(service_fn(echo_client))
}

fn request(peer: Option<&str>, headers: &[(&str, &[u8])]) -> Request<()> {
    let mut request = Request::new(());
    if let Some(peer) = peer {
        request
            .extensions_mut()
            .insert(PeerAddr(peer.parse().unwrap()));
    }
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    request
}

struct Answer {
    status: StatusCode,
    body: String,
    rejection: Option<Rejection>,
}

async fn send(source: ClientIpSource, request: Request<()>) -> Answer {
    let response = service(source).oneshot(request).await.unwrap();
    let status = response.status();
    let rejection = response.extensions().get::<Rejection>().cloned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
        rejection,
    }
}

fn assert_allowed_as(answer: &Answer, client: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, client);
}

fn assert_refused(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let rejection = answer
        .rejection
        .as_ref()
        .expect("a Rejection in the extensions");
    assert_eq!(rejection.status(), status);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn spoofed_x_forwarded_for_from_an_untrusted_peer_is_refused() {
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(
            Some("203.0.113.9:40000"),
            &[("x-forwarded-for", b"127.0.0.1")],
        ),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
    assert_eq!(answer.rejection.unwrap().kind(), RejectionKind::Forbidden);
}

#[tokio::test]
async fn spoofed_forwarded_and_cdn_headers_from_an_untrusted_peer_are_refused() {
    let answer = send(
        ClientIpSource::Forwarded,
        request(Some("203.0.113.9:1"), &[("forwarded", b"for=127.0.0.1")]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
    let cdn = ClientIpSource::Header(HeaderName::from_static("cf-connecting-ip"));
    let answer = send(
        cdn,
        request(Some("203.0.113.9:1"), &[("cf-connecting-ip", b"127.0.0.1")]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn right_most_untrusted_hop_after_two_trusted_hops_is_the_client() {
    // The client forged the left-most entry; the CDN edge and the load balancer are trusted.
    let chain = b"127.0.0.1, 198.51.100.7, 10.1.1.1, 10.2.2.2";
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[("x-forwarded-for", chain)]),
    )
    .await;
    assert_allowed_as(&answer, "198.51.100.7");

    // The same forgery from a client outside the allow list: the forged entry does not help.
    let chain = b"127.0.0.1, 203.0.113.9, 10.1.1.1, 10.2.2.2";
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[("x-forwarded-for", chain)]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn header_lines_are_one_list_in_order() {
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(
            Some("10.0.0.1:1"),
            &[
                ("x-forwarded-for", b"203.0.113.9"),
                ("x-forwarded-for", b"198.51.100.7, 10.2.2.2"),
            ],
        ),
    )
    .await;
    assert_allowed_as(&answer, "198.51.100.7");
}

#[tokio::test]
async fn forwarded_quoted_ipv6_with_port() {
    let answer = send(
        ClientIpSource::Forwarded,
        request(
            Some("[fd00::1]:443"),
            &[(
                "forwarded",
                br#"for="[2001:db8::1]:4711";proto=https, for=10.2.2.2;by="[fd00::9]""#,
            )],
        ),
    )
    .await;
    assert_allowed_as(&answer, "2001:db8::1");
}

#[tokio::test]
async fn ipv4_mapped_peers_and_hops_match_ipv4_rules() {
    let answer = send(
        ClientIpSource::Peer,
        request(Some("[::ffff:127.0.0.1]:5000"), &[]),
    )
    .await;
    assert_allowed_as(&answer, "127.0.0.1");

    // A mapped trusted proxy, and a mapped hop: both are IPv4 addresses.
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(
            Some("[::ffff:10.0.0.1]:5000"),
            &[("x-forwarded-for", b"::ffff:198.51.100.7")],
        ),
    )
    .await;
    assert_allowed_as(&answer, "198.51.100.7");

    // A mapped address does not escape the deny list either.
    let answer = send(
        ClientIpSource::Peer,
        request(Some("[::ffff:198.51.100.66]:5000"), &[]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deny_inside_allow_wins() {
    let answer = send(ClientIpSource::Peer, request(Some("198.51.100.65:1"), &[])).await;
    assert_allowed_as(&answer, "198.51.100.65");
    let answer = send(ClientIpSource::Peer, request(Some("198.51.100.66:1"), &[])).await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[("x-forwarded-for", b"198.51.100.66")]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_chains_are_refused_without_echoing_them() {
    let payload = format!(
        "198.51.100.7, <script>{}</script>, 10.2.2.2",
        "x".repeat(200)
    );
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(
            Some("10.0.0.1:1"),
            &[("x-forwarded-for", payload.as_bytes())],
        ),
    )
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST);
    assert!(!answer.body.contains("script"), "{}", answer.body);
    assert!(answer.body.contains("x-forwarded-for"), "{}", answer.body);
    assert!(
        answer.body.contains("hop 2 from the right"),
        "{}",
        answer.body
    );

    // Not UTF-8, obs-text: refused where read, not a panic.
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[("x-forwarded-for", b"\xff\xfe\x80")]),
    )
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST);

    // An unterminated quote swallows every later element: no boundary can be trusted.
    let answer = send(
        ClientIpSource::Forwarded,
        request(
            Some("10.0.0.1:1"),
            &[("forwarded", br#"for="198.51.100.7, for=10.2.2.2"#)],
        ),
    )
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST);

    // IPv6 must be quoted and bracketed in Forwarded.
    let answer = send(
        ClientIpSource::Forwarded,
        request(Some("10.0.0.1:1"), &[("forwarded", b"for=2001:db8::1")]),
    )
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hidden_hops_missing_headers_and_long_chains_are_forbidden() {
    let answer = send(
        ClientIpSource::Forwarded,
        request(
            Some("10.0.0.1:1"),
            &[("forwarded", b"for=198.51.100.7, for=unknown")],
        ),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);

    // A trusted proxy that says nothing would make every client look like the proxy.
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);

    let long = ["10.3.3.3"; 17].join(",");
    let answer = send(
        ClientIpSource::XForwardedFor,
        request(Some("10.0.0.1:1"), &[("x-forwarded-for", long.as_bytes())]),
    )
    .await;
    assert_refused(&answer, StatusCode::FORBIDDEN);
    assert!(answer.body.contains("more than 16 hops"), "{}", answer.body);
}

#[tokio::test]
async fn the_hop_limit_is_configurable() {
    let service = IpAllowLayer::new(lists())
        .client_ip_source(ClientIpSource::XForwardedFor)
        .max_hops(2)
        .layer(service_fn(echo_client));
    let response = service
        .clone()
        .oneshot(request(
            Some("10.0.0.1:1"),
            &[("x-forwarded-for", b"198.51.100.7, 10.2.2.2")],
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = service
        .oneshot(request(
            Some("10.0.0.1:1"),
            &[("x-forwarded-for", b"198.51.100.7, 10.2.2.2, 10.3.3.3")],
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn no_peer_address_is_forbidden() {
    for source in [
        ClientIpSource::Peer,
        ClientIpSource::XForwardedFor,
        ClientIpSource::Forwarded,
    ] {
        let answer = send(
            source,
            request(
                None,
                &[
                    ("x-forwarded-for", b"127.0.0.1"),
                    ("forwarded", b"for=127.0.0.1"),
                ],
            ),
        )
        .await;
        assert_refused(&answer, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn lists_are_replaced_while_the_service_runs() {
    let layer = IpAllowLayer::new(IpLists::new().allow("198.51.100.0/24").unwrap());
    let handle = layer.handle();
    let mut service = layer.layer(service_fn(echo_client));

    let status = |response: Response<ResponseBody<Full<Bytes>>>| response.status();
    let first = service.ready().await.unwrap();
    let response = first
        .call(request(Some("198.51.100.7:1"), &[]))
        .await
        .unwrap();
    assert_eq!(status(response), StatusCode::OK);

    handle.replace(IpLists::new().allow("203.0.113.0/24").unwrap());

    let ready = service.ready().await.unwrap();
    let response = ready
        .call(request(Some("198.51.100.7:1"), &[]))
        .await
        .unwrap();
    assert_eq!(status(response), StatusCode::FORBIDDEN);
    let ready = service.ready().await.unwrap();
    let response = ready
        .call(request(Some("203.0.113.9:1"), &[]))
        .await
        .unwrap();
    assert_eq!(status(response), StatusCode::OK);

    // Trusted proxies are part of the lists: a CDN range reload takes effect the same way.
    let mut forwarded = IpAllowLayer::new(IpLists::new().allow("198.51.100.0/24").unwrap())
        .client_ip_source(ClientIpSource::XForwardedFor);
    let handle = forwarded.handle();
    forwarded = forwarded.max_hops(4);
    let service = forwarded.layer(service_fn(echo_client));
    let via_cdn = || request(Some("10.0.0.1:1"), &[("x-forwarded-for", b"198.51.100.7")]);
    let response = service.clone().oneshot(via_cdn()).await.unwrap();
    assert_eq!(status(response), StatusCode::FORBIDDEN);
    handle.replace(
        IpLists::new()
            .allow("198.51.100.0/24")
            .unwrap()
            .trust_proxies("10.0.0.0/8")
            .unwrap(),
    );
    let response = service.oneshot(via_cdn()).await.unwrap();
    assert_eq!(status(response), StatusCode::OK);
}

#[tokio::test]
async fn empty_allow_set_is_closed_unless_opened_explicitly() {
    let closed = IpAllowLayer::new(IpLists::new()).layer(service_fn(echo_client));
    let response = closed
        .oneshot(request(Some("127.0.0.1:1"), &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let open = IpAllowLayer::new(IpLists::new().allow_all()).layer(service_fn(echo_client));
    let response = open
        .oneshot(request(Some("203.0.113.9:1"), &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn bad_cidr_text_is_an_error() {
    for bad in [
        "10.0.0.0/33",
        "nope",
        "10.1.0.0/8",
        "::/129",
        "10.0.0.0/8,,::1",
    ] {
        assert!(IpLists::new().allow(bad).is_err(), "{bad}");
        assert!(IpLists::new().trust_proxies(bad).is_err(), "{bad}");
    }
}

// ---- property: arbitrary header bytes never panic and never let in an unlisted address ----

/// The allow rules, written out by hand: an independent check of what the layer decides.
fn independently_allowed(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            a == 127 || ([a, b, c] == [198, 51, 100] && d != 66)
        }
        IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
    }
}

fn independently_trusted(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[0] == 10,
        IpAddr::V6(v6) => v6.segments()[0] >> 8 == 0xfd,
    }
}

/// One header line: a well-formed chain of addresses that are allowed, denied, trusted or
/// anything (written in the spelling of the header it lands in, so the property reaches
/// allowed clients through headers), or arbitrary bytes.
#[derive(Debug, Clone)]
enum Line {
    Chain(Vec<String>),
    Noise(Vec<u8>),
}

impl Line {
    fn render(&self, header: &str) -> Vec<u8> {
        match self {
            Line::Noise(bytes) => bytes.clone(),
            Line::Chain(hops) => match header {
                "forwarded" => hops
                    .iter()
                    .map(|hop| format!("for=\"{hop}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
                    .into_bytes(),
                "cf-connecting-ip" => hops.first().cloned().unwrap_or_default().into_bytes(),
                _ => hops.join(", ").into_bytes(),
            },
        }
    }
}

fn line() -> impl Strategy<Value = Line> {
    let address = prop_oneof![
        Just("127.0.0.1".to_owned()),
        Just("198.51.100.7".to_owned()),
        Just("198.51.100.66".to_owned()),
        Just("10.0.0.7".to_owned()),
        Just("[fd00::1]:80".to_owned()),
        Just("::ffff:127.0.0.9".to_owned()),
        Just("[2001:db8::5]".to_owned()),
        Just("unknown".to_owned()),
        any::<[u8; 4]>().prop_map(|octets| Ipv4Addr::from(octets).to_string()),
        any::<u128>().prop_map(|bits| format!("[{}]", Ipv6Addr::from(bits))),
    ];
    prop_oneof![
        3 => prop::collection::vec(address, 1..4).prop_map(Line::Chain),
        1 => noise_bytes().prop_map(Line::Noise),
    ]
}

fn noise_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b" ".to_vec()),
        Just(b"for=".to_vec()),
        Just(b"by=".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b":".to_vec()),
        Just(b"%".to_vec()),
        Just(b"unknown".to_vec()),
        Just(b"_hidden".to_vec()),
        Just(b"127.0.0.1".to_vec()),
        Just(b"198.51.100.66".to_vec()),
        Just(b"10.0.0.7".to_vec()),
        Just(b"::ffff:127.0.0.1".to_vec()),
        Just(b"2001:db8::1".to_vec()),
        Just(b"fd00::1".to_vec()),
        Just(b"4711".to_vec()),
        any::<[u8; 4]>().prop_map(|octets| Ipv4Addr::from(octets).to_string().into_bytes()),
        any::<u128>().prop_map(|bits| Ipv6Addr::from(bits).to_string().into_bytes()),
        // Any byte a header value may hold: HTAB, visible ASCII, space, obs-text.
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff], 0..8),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn peer() -> impl Strategy<Value = SocketAddr> {
    // Trusted proxies are weighted up so that chains are read in most cases.
    let ip = prop_oneof![
        1 => any::<u32>().prop_map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        1 => any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
        3 => any::<[u8; 3]>().prop_map(|[b, c, d]| IpAddr::V4(Ipv4Addr::new(10, b, c, d))),
        2 => any::<[u8; 3]>()
            .prop_map(|[b, c, d]| IpAddr::V6(Ipv4Addr::new(10, b, c, d).to_ipv6_mapped())),
        2 => any::<u16>()
            .prop_map(|low| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, low))),
        1 => any::<u8>().prop_map(|d| IpAddr::V4(Ipv4Addr::new(203, 0, 113, d))),
        1 => any::<u8>().prop_map(|d| IpAddr::V4(Ipv4Addr::new(198, 51, 100, d))),
        1 => any::<u8>().prop_map(|d| IpAddr::V6(Ipv4Addr::new(127, 0, 0, d).to_ipv6_mapped())),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn source() -> impl Strategy<Value = ClientIpSource> {
    prop_oneof![
        Just(ClientIpSource::Peer),
        Just(ClientIpSource::Forwarded),
        Just(ClientIpSource::XForwardedFor),
        Just(ClientIpSource::Header(HeaderName::from_static(
            "cf-connecting-ip"
        ))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_headers_never_panic_nor_let_in_an_unlisted_address(
        source in source(),
        peer in peer(),
        lines in prop::collection::vec(
            (any::<bool>(),
             prop_oneof![Just("forwarded"), Just("x-forwarded-for"), Just("cf-connecting-ip")],
             line()),
            0..3,
        ),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut request = Request::new(());
        request.extensions_mut().insert(PeerAddr(peer));
        for (use_source_header, name, line) in &lines {
            // Half the lines are the header the source reads, so chains are read often.
            let name = match (&source, use_source_header) {
                (ClientIpSource::Forwarded, true) => "forwarded",
                (ClientIpSource::XForwardedFor, true) => "x-forwarded-for",
                (ClientIpSource::Header(_), true) => "cf-connecting-ip",
                _ => name,
            };
            let bytes = line.render(name);
            request.headers_mut().append(name, HeaderValue::from_bytes(&bytes).unwrap());
        }
        let answer = runtime.block_on(send(source.clone(), request));
        if answer.status == StatusCode::OK {
            let client: IpAddr = answer.body.parse().unwrap();
            prop_assert!(independently_allowed(client), "let in {client}");
            if source == ClientIpSource::Peer || !independently_trusted(peer.ip()) {
                prop_assert_eq!(client, peer.ip().to_canonical());
            }
        } else {
            prop_assert!(
                answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::BAD_REQUEST,
                "{}", answer.status
            );
            prop_assert!(answer.rejection.is_some());
            // A refusal never repeats a header's bytes at length.
            prop_assert!(answer.body.len() < 200, "{}", answer.body);
        }
    }
}
