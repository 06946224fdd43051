//! Deciding the client's address: the socket peer, or a forwarding chain the peer vouches for.

use std::fmt;
use std::net::IpAddr;

use http::header::FORWARDED;
use http::{HeaderMap, HeaderName};

use super::forwarded::{self, Hop, SyntaxError};
use super::lists::IpLists;
use crate::rejection::Rejection;

// Statics, not consts: `ClientIpSource::header` lends them out.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED_NAME: HeaderName = FORWARDED;

/// Where an [`IpAllowLayer`](super::IpAllowLayer) reads the client's address.
///
/// Whatever the source, a forwarding header is read **only when the connection's peer is a
/// trusted proxy** ([`IpLists::trust_proxies`]); from anyone else it is ignored and the peer
/// is the client. In a chain, hops are walked from the right (the hop the trusted peer
/// added), trusted proxies are skipped, and the first address that is not a trusted proxy is
/// the client. If every hop is a trusted proxy, the left-most is the client. Several lines of
/// the header are one list, in order.
///
/// A chain that must be read and cannot be fails closed: a hop that is not an address (400),
/// a hop that hides its address (`unknown`, `_obfuscated`, a `Forwarded` element without
/// `for`; 403), more hops than the limit (403), or a trusted proxy that sent no header (403;
/// it would otherwise make every client look like the proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The connection's peer address; no header is read.
    #[default]
    Peer,
    /// The `for` nodes of `Forwarded` (RFC 7239), quoted IPv6 and ports included. The whole
    /// header must be well-formed (400 otherwise): quoted strings can hold commas, so a broken
    /// value leaves no element boundary to trust.
    Forwarded,
    /// The comma-separated addresses of `X-Forwarded-For` (ports and brackets accepted).
    XForwardedFor,
    /// One header that holds exactly one address, set by a trusted proxy that overwrites
    /// whatever the client sent: `CF-Connecting-IP`, `True-Client-IP`, `X-Real-IP`. More than
    /// one address is refused (400).
    Header(HeaderName),
}

impl ClientIpSource {
    fn header(&self) -> Option<&HeaderName> {
        match self {
            Self::Peer => None,
            Self::Forwarded => Some(&FORWARDED_NAME),
            Self::XForwardedFor => Some(&X_FORWARDED_FOR),
            Self::Header(name) => Some(name),
        }
    }
}

/// A decided client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The client, canonical.
    pub(crate) client: IpAddr,
    /// The connection's peer, canonical.
    pub(crate) peer: IpAddr,
    /// Whether the client was read from a forwarding header.
    pub(crate) forwarded: bool,
}

/// Why no client address could be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// No `PeerAddr` (or `ConnectInfo`) in the request: the server did not say who connected.
    NoPeer,
    /// A trusted proxy sent no address in the header.
    MissingHeader(HeaderName),
    /// More hops than allowed.
    TooManyHops { header: HeaderName, max: usize },
    /// The hop that decides hides its address.
    Undisclosed {
        header: HeaderName,
        from_right: usize,
    },
    /// The hop that decides is not an address.
    MalformedHop {
        header: HeaderName,
        from_right: usize,
    },
    /// The header's syntax is broken.
    MalformedHeader(HeaderName),
    /// A one-address header holds several.
    SeveralAddresses(HeaderName),
}

impl Unresolved {
    fn header(&self) -> Option<&HeaderName> {
        match self {
            Self::NoPeer => None,
            Self::MissingHeader(header)
            | Self::TooManyHops { header, .. }
            | Self::Undisclosed { header, .. }
            | Self::MalformedHop { header, .. }
            | Self::MalformedHeader(header)
            | Self::SeveralAddresses(header) => Some(header),
        }
    }

    /// What was wrong, in words written here: header contents are never repeated.
    fn problem(&self) -> String {
        match self {
            Self::NoPeer => "the connection's peer address is not known".to_owned(),
            Self::MissingHeader(_) => "carries no address from a trusted proxy".to_owned(),
            Self::TooManyHops { max, .. } => format!("has more than {max} hops"),
            Self::Undisclosed { from_right, .. } => {
                format!("hop {from_right} from the right does not disclose its address")
            }
            Self::MalformedHop { from_right, .. } => {
                format!("hop {from_right} from the right is not an IP address")
            }
            Self::MalformedHeader(_) => "is not a well-formed header".to_owned(),
            Self::SeveralAddresses(_) => "holds more than one address".to_owned(),
        }
    }

    /// The refusal: 400 for text that is not what it must be, 403 for an address that cannot
    /// be known.
    pub(crate) fn into_rejection(self) -> Rejection {
        let rejection = match self {
            Self::MalformedHop { .. } | Self::MalformedHeader(_) | Self::SeveralAddresses(_) => {
                Rejection::invalid_request()
            }
            _ => Rejection::forbidden().with_message("client address unknown"),
        };
        let field = self.header().map_or("client_ip", HeaderName::as_str);
        rejection.with_field_error(field.to_owned(), self.problem())
    }
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header() {
            Some(header) => write!(f, "{header}: {}", self.problem()),
            None => f.write_str(&self.problem()),
        }
    }
}

/// Decides the client's address from the peer and, if the peer is a trusted proxy, the
/// source's header.
pub(crate) fn resolve(
    source: &ClientIpSource,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    lists: &IpLists,
    max_hops: usize,
) -> Result<Resolved, Unresolved> {
    let peer = peer.ok_or(Unresolved::NoPeer)?.to_canonical();
    let from_peer = Resolved {
        client: peer,
        peer,
        forwarded: false,
    };
    let Some(header) = source.header() else {
        return Ok(from_peer);
    };
    if !lists.is_trusted_proxy(peer) {
        return Ok(from_peer);
    }
    let mut walk = Walk {
        lists,
        header,
        max_hops,
        count: 0,
        leftmost: None,
        decider: None,
    };
    for line in headers.get_all(header) {
        let bytes = line.as_bytes();
        match source {
            ClientIpSource::Forwarded => forwarded::forwarded(bytes, |hop| walk.push(hop))
                .map_err(|SyntaxError| Unresolved::MalformedHeader(header.clone()))??,
            _ => forwarded::x_forwarded_for(bytes, |hop| walk.push(hop))?,
        }
    }
    if matches!(source, ClientIpSource::Header(_)) && walk.count > 1 {
        return Err(Unresolved::SeveralAddresses(header.clone()));
    }
    let client = walk.finish()?;
    Ok(Resolved {
        client,
        peer,
        forwarded: true,
    })
}

/// The right-to-left walk, done in one pass left to right without storing the chain: the
/// deciding hop is the last one (so far) that is not a trusted proxy's address.
struct Walk<'a> {
    lists: &'a IpLists,
    header: &'a HeaderName,
    max_hops: usize,
    count: usize,
    leftmost: Option<IpAddr>,
    /// The last hop that is not a trusted proxy, and its index from the left.
    decider: Option<(usize, Hop)>,
}

impl Walk<'_> {
    fn push(&mut self, hop: Hop) -> Result<(), Unresolved> {
        if self.count >= self.max_hops {
            return Err(Unresolved::TooManyHops {
                header: self.header.clone(),
                max: self.max_hops,
            });
        }
        let index = self.count;
        self.count += 1;
        if let Hop::Addr(addr) = hop {
            if index == 0 {
                self.leftmost = Some(addr);
            }
            if self.lists.is_trusted_proxy(addr) {
                return Ok(());
            }
        }
        self.decider = Some((index, hop));
        Ok(())
    }

    fn finish(self) -> Result<IpAddr, Unresolved> {
        let header = self.header.clone();
        match self.decider {
            Some((_, Hop::Addr(addr))) => Ok(addr),
            Some((index, Hop::Undisclosed)) => Err(Unresolved::Undisclosed {
                header,
                from_right: self.count - index,
            }),
            Some((index, Hop::Malformed)) => Err(Unresolved::MalformedHop {
                header,
                from_right: self.count - index,
            }),
            // Every hop is a trusted proxy (or there is none).
            None => self.leftmost.ok_or(Unresolved::MissingHeader(header)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn lists() -> IpLists {
        IpLists::new()
            .allow_all()
            .trust_proxies("10.0.0.0/8, 2001:db8:ffff::/48")
            .unwrap()
    }

    fn headers(name: &str, lines: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(line).unwrap(),
            );
        }
        map
    }

    fn client(source: ClientIpSource, peer: &str, map: &HeaderMap) -> Result<IpAddr, Unresolved> {
        resolve(&source, Some(ip(peer)), map, &lists(), 16).map(|resolved| resolved.client)
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let map = headers("x-forwarded-for", &[b"127.0.0.1"]);
        assert_eq!(
            client(ClientIpSource::XForwardedFor, "203.0.113.9", &map),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn peer_source_never_reads_headers() {
        let map = headers("x-forwarded-for", &[b"127.0.0.1"]);
        assert_eq!(
            client(ClientIpSource::Peer, "10.0.0.1", &map),
            Ok(ip("10.0.0.1"))
        );
    }

    #[test]
    fn right_most_untrusted_hop_wins_after_two_trusted_hops() {
        let map = headers(
            "x-forwarded-for",
            &[b"127.0.0.1, 198.51.100.4, 10.0.0.2, 10.0.0.3"],
        );
        assert_eq!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Ok(ip("198.51.100.4"))
        );
    }

    #[test]
    fn several_lines_are_one_list_in_order() {
        let map = headers(
            "x-forwarded-for",
            &[b"198.51.100.4", b"203.0.113.5, 10.0.0.3"],
        );
        assert_eq!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Ok(ip("203.0.113.5"))
        );
    }

    #[test]
    fn malformed_hop_left_of_the_decider_is_not_read() {
        let map = headers(
            "x-forwarded-for",
            &[b"\xff garbage, 198.51.100.4, 10.0.0.2"],
        );
        assert_eq!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Ok(ip("198.51.100.4"))
        );
    }

    #[test]
    fn malformed_or_undisclosed_decider_fails_closed() {
        let map = headers("x-forwarded-for", &[b"198.51.100.4, nope, 10.0.0.2"]);
        assert!(matches!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Err(Unresolved::MalformedHop { from_right: 2, .. })
        ));
        let map = headers("forwarded", &[b"for=198.51.100.4, for=unknown"]);
        assert!(matches!(
            client(ClientIpSource::Forwarded, "10.0.0.1", &map),
            Err(Unresolved::Undisclosed { from_right: 1, .. })
        ));
        let map = headers("forwarded", &[b"for=198.51.100.4, proto=https"]);
        assert!(matches!(
            client(ClientIpSource::Forwarded, "10.0.0.1", &map),
            Err(Unresolved::Undisclosed { from_right: 1, .. })
        ));
    }

    #[test]
    fn all_trusted_chain_gives_the_left_most() {
        let map = headers("x-forwarded-for", &[b"10.9.9.9, 10.0.0.2"]);
        assert_eq!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Ok(ip("10.9.9.9"))
        );
    }

    #[test]
    fn trusted_peer_without_the_header_fails_closed() {
        let empty = HeaderMap::new();
        assert!(matches!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &empty),
            Err(Unresolved::MissingHeader(_))
        ));
        let blank = headers("x-forwarded-for", &[b" , "]);
        assert!(matches!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &blank),
            Err(Unresolved::MissingHeader(_))
        ));
    }

    #[test]
    fn hop_limit_counts_every_line() {
        let long = ["198.51.100.4"; 9].join(",");
        let map = headers("x-forwarded-for", &[long.as_bytes(), long.as_bytes()]);
        assert!(matches!(
            client(ClientIpSource::XForwardedFor, "10.0.0.1", &map),
            Err(Unresolved::TooManyHops { max: 16, .. })
        ));
    }

    #[test]
    fn forwarded_with_quoted_ipv6_and_trusted_ipv6_proxy() {
        let map = headers(
            "forwarded",
            &[br#"for="[2001:db8::1]:4711", for="[2001:db8:ffff::7]""#],
        );
        assert_eq!(
            client(ClientIpSource::Forwarded, "::ffff:10.0.0.1", &map),
            Ok(ip("2001:db8::1"))
        );
        let broken = headers("forwarded", &[br#"for="[2001:db8::1]:4711"#]);
        assert!(matches!(
            client(ClientIpSource::Forwarded, "10.0.0.1", &broken),
            Err(Unresolved::MalformedHeader(_))
        ));
    }

    #[test]
    fn one_address_header_refuses_lists() {
        let source = ClientIpSource::Header(HeaderName::from_static("cf-connecting-ip"));
        let map = headers("cf-connecting-ip", &[b"198.51.100.4"]);
        assert_eq!(
            client(source.clone(), "10.0.0.1", &map),
            Ok(ip("198.51.100.4"))
        );
        let two = headers("cf-connecting-ip", &[b"198.51.100.4", b"203.0.113.5"]);
        assert!(matches!(
            client(source, "10.0.0.1", &two),
            Err(Unresolved::SeveralAddresses(_))
        ));
    }

    #[test]
    fn no_peer_is_unresolved() {
        assert_eq!(
            resolve(&ClientIpSource::Peer, None, &HeaderMap::new(), &lists(), 16),
            Err(Unresolved::NoPeer)
        );
    }

    #[test]
    fn refusals_name_the_header_and_status() {
        let rejection = Unresolved::MalformedHop {
            header: X_FORWARDED_FOR.clone(),
            from_right: 2,
        }
        .into_rejection();
        assert_eq!(rejection.status(), 400);
        let (field, errors) = rejection.field_errors().next().unwrap();
        assert_eq!(field, "x-forwarded-for");
        assert_eq!(errors, ["hop 2 from the right is not an IP address"]);
        assert_eq!(Unresolved::NoPeer.into_rejection().status(), 403);
    }
}
