//! HTTP/1.1 on the wire: the request head this client writes, the response head it reads
//! (parsed by `httparse`, hyper's own parser), and how a response's body is framed.
//!
//! Framing is where a client that reuses connections can be made to hand one response's bytes
//! to the next request, so it is strict: a length that is not one plain number, or a
//! `Transfer-Encoding` next to a `Content-Length`, is an error, never a guess; and only a
//! response whose end is known exactly leaves its connection fit to be reused.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::Http1Error;
use crate::protocol::headers::{self, list_elements};

/// The largest response head read (status line and headers, each informational head on its
/// own): hyper's default buffer limit is about 400 KiB; Electric's heads are about 1 KiB.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// The most headers one response head may have (hyper's default is 100 as well).
const MAX_HEADERS: usize = 100;

/// How a request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestFraming {
    /// No body and no length: a `GET`, `HEAD`, `DELETE` or `OPTIONS` with an empty body.
    None,
    /// `Content-Length`: the body's exact size is known.
    Length(u64),
    /// `Transfer-Encoding: chunked`: a body of unknown size, streamed as it comes.
    Chunked,
}

impl RequestFraming {
    /// The framing of a body that is at its end already (`empty`), else of its exact size if
    /// known. Methods that carry a body by nature say `Content-Length: 0` when it is empty, as
    /// hyper does.
    pub(super) fn of(method: &Method, empty: bool, exact: Option<u64>) -> Self {
        if empty {
            return if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
                Self::Length(0)
            } else {
                Self::None
            };
        }
        exact.map_or(Self::Chunked, Self::Length)
    }

    /// Whether a request with this framing can be sent again as it was: nothing of its body
    /// is consumed by sending it.
    pub(super) fn replayable(self) -> bool {
        matches!(self, Self::None | Self::Length(0))
    }
}

/// The request head: request line, `Host` first, the other headers as given, then the framing
/// header this client chose. A `Content-Length` or `Transfer-Encoding` among `headers` is left
/// out: the body's framing is this client's to state, once.
pub(super) fn encode_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.len() * 48);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    if let Some(host) = headers.get(HOST) {
        line(b"host", host.as_bytes());
    }
    for (name, value) in headers {
        if name != HOST && name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            line(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(length) => line(b"content-length", length.to_string().as_bytes()),
        RequestFraming::Chunked => line(b"transfer-encoding", b"chunked"),
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

/// Parses one response head from the start of `buf` and takes its bytes off; `None` while
/// the head is not complete yet.
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Http1Error> {
    // Left uninitialised for httparse to fill: zeroing 100 headers cost more than parsing the
    // dozen a response has.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    // httparse's defaults are strict: no obsolete line folding, no space before a colon.
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Http1Error::MalformedHead),
    };
    let version = match response.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(Http1Error::MalformedHead),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Http1Error::MalformedHead)?;
    // Each name, and where its value lies in `buf`, so that the values can share the head's
    // bytes once it is taken off, instead of each being copied into an allocation of its own.
    let start = buf.as_ptr() as usize;
    let span = |part: &[u8]| match part.len() {
        // An empty value may not point into `buf`; it needs no bytes of it anyway.
        0 => 0..0,
        len => {
            let at = (part.as_ptr() as usize).wrapping_sub(start);
            at..at.saturating_add(len)
        }
    };
    // Sized up front: collecting through `Option` would grow the vector from nothing.
    let mut named = Vec::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let name = header_name(header.name.as_bytes()).ok_or(Http1Error::MalformedHead)?;
        named.push((name, span(header.value)));
    }
    let head = buf.split_to(length).freeze();
    let mut map = HeaderMap::with_capacity(named.len());
    for (name, value) in named {
        let value = (value.end <= head.len())
            .then(|| head.slice(value))
            .and_then(|value| HeaderValue::from_maybe_shared(value).ok())
            .ok_or(Http1Error::MalformedHead)?;
        map.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers: map,
    }))
}

/// Electric's own response headers, on every response (the crate's names of them): named from
/// these, a header name needs no allocation of its own (`HeaderName::from_bytes` copies every
/// name it does not know).
static ELECTRIC_HEADERS: [HeaderName; 9] = [
    headers::ELECTRIC_CURSOR,
    headers::ELECTRIC_HANDLE,
    headers::ELECTRIC_HAS_DATA,
    headers::ELECTRIC_OFFSET,
    headers::ELECTRIC_SCHEMA,
    headers::ELECTRIC_UP_TO_DATE,
    headers::ELECTRIC_INTERNAL_KNOWN_ERROR,
    headers::ELECTRIC_SERVER,
    headers::ELECTRIC_SNAPSHOT,
];

/// The header name `raw` spells (any case), `None` when it is not a valid one.
fn header_name(raw: &[u8]) -> Option<HeaderName> {
    const PREFIX: &[u8] = b"electric-";
    let electric = raw
        .get(..PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PREFIX));
    if electric {
        let suffix = raw.get(PREFIX.len()..).unwrap_or_default();
        if let Some(known) = ELECTRIC_HEADERS.iter().find(|known| {
            let known = known.as_str().as_bytes();
            known
                .get(PREFIX.len()..)
                .unwrap_or_default()
                .eq_ignore_ascii_case(suffix)
        }) {
            return Some(known.clone());
        }
    }
    HeaderName::from_bytes(raw).ok()
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: a response to `HEAD`, a 204 or a 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// The framing of a final (non-1xx) response to a `method` request, and whether the
/// connection may carry another request after this response's end.
pub(super) fn response_framing(
    method: &Method,
    head: &Head,
) -> Result<(Framing, bool), Http1Error> {
    let keep_alive = head.version == Version::HTTP_11 && !names_close(&head.headers);
    if *method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, keep_alive));
    }
    if head.headers.contains_key(TRANSFER_ENCODING) {
        // Both is how responses are split (RFC 9112 §6.1: "ought to be handled as an error").
        if head.headers.contains_key(CONTENT_LENGTH) {
            return Err(Http1Error::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last = list_elements(head.headers.get_all(TRANSFER_ENCODING))
            .last()
            .unwrap_or_default();
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            (Framing::Chunked, keep_alive)
        } else {
            // Another coding last: the body ends when the connection does.
            (Framing::UntilClose, false)
        });
    }
    match content_length(&head.headers)? {
        Some(length) => Ok((Framing::Length(length), keep_alive)),
        None => Ok((Framing::UntilClose, false)),
    }
}

/// The one length every `Content-Length` value states (repeats of the same number are allowed,
/// RFC 9110 §8.6), or an error for anything else.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Http1Error> {
    let mut length = None;
    for part in list_elements(headers.get_all(CONTENT_LENGTH)) {
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(Http1Error::Framing("a Content-Length that is not a number"));
        }
        let parsed = std::str::from_utf8(part)
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
            .ok_or(Http1Error::Framing("a Content-Length out of range"))?;
        if length.is_some_and(|length| length != parsed) {
            return Err(Http1Error::Framing("Content-Length values that differ"));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Whether `Connection` names `close`.
fn names_close(headers: &HeaderMap) -> bool {
    list_elements(headers.get_all(CONNECTION)).any(|token| token.eq_ignore_ascii_case(b"close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        let mut buf = BytesMut::from(raw);
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "the head's bytes are taken off");
        head
    }

    fn framing(raw: &str) -> Result<(Framing, bool), Http1Error> {
        response_framing(&Method::GET, &head(raw))
    }

    #[test]
    fn the_request_head_states_host_first_and_its_own_framing_once() {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert(HOST, HeaderValue::from_static("electric:3000"));
        // The client's own framing headers never go out next to this client's.
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let head = encode_head(
            &Method::POST,
            "/v1/shape?table=items",
            &headers,
            RequestFraming::Length(12),
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/shape?table=items HTTP/1.1\r\nhost: electric:3000\r\naccept: */*\r\n\
             content-length: 12\r\n\r\n"
        );
        let head = encode_head(&Method::GET, "/v1/shape", &headers, RequestFraming::None);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /v1/shape HTTP/1.1\r\nhost: electric:3000\r\naccept: */*\r\n\r\n"
        );
        let head = encode_head(
            &Method::POST,
            "/",
            &HeaderMap::new(),
            RequestFraming::Chunked,
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn request_framing_follows_the_body() {
        assert_eq!(
            RequestFraming::of(&Method::GET, true, Some(0)),
            RequestFraming::None
        );
        assert_eq!(
            RequestFraming::of(&Method::POST, true, Some(0)),
            RequestFraming::Length(0)
        );
        assert_eq!(
            RequestFraming::of(&Method::POST, false, Some(5)),
            RequestFraming::Length(5)
        );
        assert_eq!(
            RequestFraming::of(&Method::POST, false, None),
            RequestFraming::Chunked
        );
        assert!(RequestFraming::None.replayable() && RequestFraming::Length(0).replayable());
        assert!(!RequestFraming::Length(1).replayable() && !RequestFraming::Chunked.replayable());
    }

    #[test]
    fn a_head_is_parsed_only_once_complete() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
        assert!(parse_head(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"electric-handle: h-1\r\n\r\n[]");
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["electric-handle"], "h-1");
        assert_eq!(&buf[..], b"[]", "the body's bytes stay");
    }

    #[test]
    fn every_value_is_read_in_order_empty_and_repeated_ones_too() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nx-empty:\r\nvary: a\r\nx-spaced:  v w \r\nvary: b\r\n\r\nrest",
        );
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.headers["x-empty"], "");
        assert_eq!(head.headers["x-spaced"], "v w");
        let vary: Vec<_> = head.headers.get_all("vary").iter().collect();
        assert_eq!(vary, ["a", "b"]);
        assert_eq!(head.headers.len(), 4);
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn electrics_header_names_are_read_in_any_case_and_others_as_they_are() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nElectric-Handle: h\r\nELECTRIC-OFFSET: 0_0\r\n\
             electric-server: e\r\nelectric-future: f\r\nElectric: g\r\nX-Other: x\r\n\r\n",
        );
        let head = parse_head(&mut buf).unwrap().unwrap();
        let names: Vec<_> = head.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "electric-handle",
                "electric-offset",
                "electric-server",
                "electric-future",
                "electric",
                "x-other"
            ]
        );
        for name in &ELECTRIC_HEADERS {
            let upper = name.as_str().to_uppercase();
            assert_eq!(header_name(upper.as_bytes()).unwrap(), name);
        }
        assert_eq!(header_name(b"electric-bad name"), None);
        assert_eq!(header_name(b""), None);
    }

    #[test]
    fn malformed_heads_are_errors() {
        for raw in [
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nname : value\r\n\r\n",
            "HTTP/1.1 200 OK\r\nfolded: a\r\n b\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(raw);
            assert!(
                matches!(parse_head(&mut buf), Err(Http1Error::MalformedHead)),
                "{raw:?}"
            );
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(parse_head(&mut BytesMut::from(&many[..])).is_err());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap(),
            (Framing::Length(5), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n")
                .unwrap(),
            (Framing::Length(5), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n").unwrap(),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n").unwrap(),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n").unwrap(),
            (Framing::Empty, true)
        );
        let answer = head("HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n");
        assert_eq!(
            response_framing(&Method::HEAD, &answer).unwrap(),
            (Framing::Empty, true)
        );
    }

    #[test]
    fn only_http_1_1_without_connection_close_keeps_the_connection() {
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n"
            )
            .unwrap(),
            (Framing::Length(0), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap(),
            (Framing::Length(0), false)
        );
    }

    #[test]
    fn ambiguous_lengths_are_errors_not_guesses() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(
                matches!(framing(raw), Err(Http1Error::Framing(_))),
                "{raw:?}"
            );
        }
    }
}
