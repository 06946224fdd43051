//! Reading forwarding headers: `Forwarded` (RFC 7239), `X-Forwarded-For`, and one-address
//! headers such as `CF-Connecting-IP`.
//!
//! Everything here works on the raw header bytes: a value that is not UTF-8, holds obs-text or
//! is huge is parsed (and refused where it must be read) like any other, never panicked on.
//! Nothing allocates: hops are handed to a callback as they are found, and a quoted
//! `Forwarded` node is unescaped into a small stack buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest node (address, zone and port) read: `[` 39 hex-and-colon characters, a zone,
/// `]:65535`. Longer is not an address.
const MAX_NODE_LEN: usize = 96;

/// One hop of a forwarding chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// An address, canonicalised: IPv4-mapped IPv6 as IPv4, zone and port dropped.
    Addr(IpAddr),
    /// A hop that hides its address: `unknown`, an obfuscated `_name`, or a `Forwarded`
    /// element without `for`.
    Undisclosed,
    /// Text that is not a node.
    Malformed,
}

/// Why a header could not be read at all (as opposed to a hop in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError;

/// Calls `on_hop` for each address of an `X-Forwarded-For` line (or of a one-address header
/// such as `CF-Connecting-IP`), left to right. Empty list elements are skipped, as the HTTP
/// list rule asks.
pub(crate) fn x_forwarded_for<E>(
    line: &[u8],
    mut on_hop: impl FnMut(Hop) -> Result<(), E>,
) -> Result<(), E> {
    for item in line.split(|&byte| byte == b',') {
        let item = trim_ows(item);
        if !item.is_empty() {
            on_hop(parse_node(item))?;
        }
    }
    Ok(())
}

/// Calls `on_hop` with the `for` node of each element of a `Forwarded` line, left to right.
///
/// The whole line must be well-formed: quoted strings may hold commas and semicolons, so a
/// line whose syntax is broken anywhere has no trustworthy element boundaries at all.
/// Optional whitespace is accepted around `,` and `;`; a parameter given twice in an element
/// is a syntax error only for `for` (the one read here, so it must not be ambiguous).
pub(crate) fn forwarded<E>(
    line: &[u8],
    mut on_hop: impl FnMut(Hop) -> Result<(), E>,
) -> Result<Result<(), E>, SyntaxError> {
    let mut cursor = Cursor {
        bytes: line,
        pos: 0,
    };
    loop {
        cursor.skip_ows();
        match cursor.peek() {
            None => return Ok(Ok(())),
            Some(b',') => {
                cursor.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let hop = cursor.element()?;
        if let Err(error) = on_hop(hop) {
            return Ok(Err(error));
        }
        cursor.skip_ows();
        match cursor.peek() {
            None => return Ok(Ok(())),
            Some(b',') => cursor.pos += 1,
            Some(_) => return Err(SyntaxError),
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `pair *( OWS ";" OWS pair )`, returning the element's `for` hop.
    fn element(&mut self) -> Result<Hop, SyntaxError> {
        let mut hop = None;
        loop {
            let name = self.token()?;
            if self.peek() != Some(b'=') {
                return Err(SyntaxError);
            }
            self.pos += 1;
            if name.eq_ignore_ascii_case(b"for") {
                if hop.is_some() {
                    return Err(SyntaxError);
                }
                hop = Some(self.node_value()?);
            } else {
                self.skip_value()?;
            }
            self.skip_ows();
            if self.peek() == Some(b';') {
                self.pos += 1;
                self.skip_ows();
            } else {
                return Ok(hop.unwrap_or(Hop::Undisclosed));
            }
        }
    }

    fn token(&mut self) -> Result<&'a [u8], SyntaxError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.bytes.get(start..self.pos) {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(SyntaxError),
        }
    }

    fn skip_value(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some(b'"') {
            self.quoted(|_| ())
        } else {
            self.token().map(drop)
        }
    }

    /// A `for` value: a token, or a quoted string unescaped into a stack buffer.
    fn node_value(&mut self) -> Result<Hop, SyntaxError> {
        if self.peek() != Some(b'"') {
            return self.token().map(parse_node);
        }
        let mut buffer = [0u8; MAX_NODE_LEN];
        let mut len = 0usize;
        let mut overflow = false;
        self.quoted(|byte| match buffer.get_mut(len) {
            Some(slot) => {
                *slot = byte;
                len += 1;
            }
            None => overflow = true,
        })?;
        Ok(match buffer.get(..len) {
            Some(node) if !overflow => parse_node(node),
            _ => Hop::Malformed,
        })
    }

    /// A quoted string (RFC 9110 5.6.4), each unescaped byte handed to `push`.
    fn quoted(&mut self, mut push: impl FnMut(u8)) -> Result<(), SyntaxError> {
        self.pos += 1; // the opening quote
        loop {
            let byte = self.peek().ok_or(SyntaxError)?;
            self.pos += 1;
            match byte {
                b'"' => return Ok(()),
                b'\\' => {
                    let escaped = self.peek().ok_or(SyntaxError)?;
                    if !(escaped == b'\t' || (0x20..=0x7e).contains(&escaped) || escaped >= 0x80) {
                        return Err(SyntaxError);
                    }
                    self.pos += 1;
                    push(escaped);
                }
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => push(byte),
                _ => return Err(SyntaxError),
            }
        }
    }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// One node (RFC 7239 section 6, read leniently where that is unambiguous): `1.2.3.4`,
/// `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:4711`, a bare `2001:db8::1`, zone ids
/// (`%eth0`) dropped; `unknown` and obfuscated `_names` are undisclosed.
pub(crate) fn parse_node(node: &[u8]) -> Hop {
    if node.len() > MAX_NODE_LEN {
        return Hop::Malformed;
    }
    let Ok(text) = std::str::from_utf8(node) else {
        return Hop::Malformed;
    };
    if text.eq_ignore_ascii_case("unknown") || is_obfuscated(text) {
        return Hop::Undisclosed;
    }
    let addr = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Hop::Malformed;
        };
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return Hop::Malformed;
        }
        ipv6_with_zone(inside).map(IpAddr::V6)
    } else {
        match text.split_once(':') {
            None => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            Some((host, port)) if !port.contains(':') => {
                if is_port(port) {
                    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
                } else {
                    None
                }
            }
            Some(_) => ipv6_with_zone(text).map(IpAddr::V6),
        }
    };
    addr.map_or(Hop::Malformed, |addr| Hop::Addr(addr.to_canonical()))
}

fn ipv6_with_zone(text: &str) -> Option<Ipv6Addr> {
    let (addr, zone) = match text.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (text, None),
    };
    let zone_ok = zone.is_none_or(|zone| {
        !zone.is_empty()
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
    });
    zone_ok.then(|| addr.parse().ok()).flatten()
}

fn is_port(port: &str) -> bool {
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    (digits && port.parse::<u32>().is_ok_and(|port| port <= 65535)) || is_obfuscated(port)
}

/// `_` followed by `ALPHA / DIGIT / "." / "_" / "-"` (RFC 7239 obfnode and obfport).
fn is_obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn ip(text: &str) -> Hop {
        Hop::Addr(text.parse().unwrap())
    }

    fn xff(line: &[u8]) -> Vec<Hop> {
        let mut hops = Vec::new();
        x_forwarded_for(line, |hop| {
            hops.push(hop);
            Ok::<_, Infallible>(())
        })
        .unwrap();
        hops
    }

    fn fwd(line: &[u8]) -> Result<Vec<Hop>, SyntaxError> {
        let mut hops = Vec::new();
        forwarded(line, |hop| {
            hops.push(hop);
            Ok::<_, Infallible>(())
        })?
        .unwrap();
        Ok(hops)
    }

    #[test]
    fn nodes_in_every_spelling() {
        assert_eq!(parse_node(b"10.1.2.3"), ip("10.1.2.3"));
        assert_eq!(parse_node(b"10.1.2.3:8080"), ip("10.1.2.3"));
        assert_eq!(parse_node(b"2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(parse_node(b"[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_node(b"[2001:db8::1]:4711"), ip("2001:db8::1"));
        assert_eq!(parse_node(b"fe80::1%eth0"), ip("fe80::1"));
        assert_eq!(parse_node(b"[fe80::1%25eth0]:80"), ip("fe80::1"));
        assert_eq!(parse_node(b"::ffff:10.1.2.3"), ip("10.1.2.3"));
        assert_eq!(parse_node(b"[::ffff:10.1.2.3]:1"), ip("10.1.2.3"));
        assert_eq!(parse_node(b"10.1.2.3:_hidden"), ip("10.1.2.3"));
    }

    #[test]
    fn undisclosed_nodes() {
        assert_eq!(parse_node(b"unknown"), Hop::Undisclosed);
        assert_eq!(parse_node(b"UNKNOWN"), Hop::Undisclosed);
        assert_eq!(parse_node(b"_gazonk"), Hop::Undisclosed);
    }

    #[test]
    fn malformed_nodes() {
        for bad in [
            &b""[..],
            b"nope",
            b"10.1.2",
            b"010.1.2.3",
            b"10.1.2.3:",
            b"10.1.2.3:65536",
            b"10.1.2.3:-1",
            b"[10.1.2.3]",
            b"[2001:db8::1",
            b"[2001:db8::1]4711",
            b"[2001:db8::1]:",
            b"fe80::1%",
            b"fe80::1%e th0",
            b"_",
            b"10.1.2.3\xff",
            b"\xff\xfe",
            b"1.2.3.4 5.6.7.8",
        ] {
            assert_eq!(
                parse_node(bad),
                Hop::Malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_node(&[b'1'; 4096]), Hop::Malformed);
    }

    #[test]
    fn x_forwarded_for_is_a_comma_list_with_empty_elements_skipped() {
        assert_eq!(
            xff(b" 203.0.113.7 ,, 10.0.0.1,\t[2001:db8::1]:80 , "),
            vec![ip("203.0.113.7"), ip("10.0.0.1"), ip("2001:db8::1")]
        );
        assert_eq!(xff(b"nope, 10.0.0.1"), vec![Hop::Malformed, ip("10.0.0.1")]);
    }

    #[test]
    fn forwarded_elements_and_quoted_ipv6_with_port() {
        assert_eq!(
            fwd(br#"for="[2001:db8::1]:4711";proto=https;by=203.0.113.43, for=192.0.2.60"#)
                .unwrap(),
            vec![ip("2001:db8::1"), ip("192.0.2.60")]
        );
        assert_eq!(
            fwd(br#"For="\[2001:db8::1\]""#).unwrap(),
            vec![ip("2001:db8::1")]
        );
        assert_eq!(
            fwd(b"for=unknown, proto=http, for=_hidden").unwrap(),
            vec![Hop::Undisclosed, Hop::Undisclosed, Hop::Undisclosed]
        );
        // A quoted comma belongs to the value, not the list.
        assert_eq!(
            fwd(br#"host="a,for=10.0.0.1";for=192.0.2.1"#).unwrap(),
            vec![ip("192.0.2.1")]
        );
        assert_eq!(
            fwd(b" , for=192.0.2.1 ; proto=http ,").unwrap(),
            vec![ip("192.0.2.1")]
        );
    }

    #[test]
    fn forwarded_syntax_errors() {
        for bad in [
            &br#"for="192.0.2.1"#[..],
            b"for",
            b"for=",
            b"=192.0.2.1",
            b"for=192.0.2.1;",
            b"for=192.0.2.1 for=10.0.0.1",
            b"for=192.0.2.1;for=10.0.0.1",
            b"for=[2001:db8::1]",
            b"for=\xff",
            b"for=\"\\",
        ] {
            assert_eq!(
                fwd(bad),
                Err(SyntaxError),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn forwarded_unquoted_port_is_a_syntax_error_and_overlong_quoted_node_malformed() {
        assert_eq!(fwd(b"for=192.0.2.1:80"), Err(SyntaxError));
        let long = format!("for=\"{}\"", "1".repeat(500));
        assert_eq!(fwd(long.as_bytes()).unwrap(), vec![Hop::Malformed]);
    }
}
