//! W3C Trace Context (`traceparent`, `tracestate`) as a client sends it: checked before it is
//! recorded or forwarded, since a client writes these headers.
//!
//! <https://www.w3.org/TR/trace-context/>: a receiver that cannot parse `traceparent` must
//! not parse `tracestate` either, and starts a new trace; so a malformed `traceparent` is
//! dropped together with `tracestate`, and a `tracestate` over the limits (or malformed, or
//! without a `traceparent`) is dropped alone.

use http::header::{HeaderMap, HeaderName};

/// `traceparent`.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The most `tracestate` characters passed on: the spec's recommended propagation limit.
pub(crate) const MAX_TRACESTATE_LEN: usize = 512;
/// The most `tracestate` list members (the spec's limit).
pub(crate) const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The trace id of the request's one valid `traceparent` (32 lowercase hex digits).
pub(crate) fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    valid_traceparent(text).then(|| text.get(3..35)).flatten()
}

/// Drops a malformed `traceparent` (with `tracestate`) and a `tracestate` that is malformed,
/// over the limits, or without a valid `traceparent`.
pub(crate) fn sanitize(headers: &mut HeaderMap) {
    if trace_id(headers).is_none() {
        if headers.contains_key(TRACEPARENT) || headers.contains_key(TRACESTATE) {
            tracing::debug!("malformed or missing traceparent: trace context not forwarded");
        }
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        return;
    }
    if !valid_tracestate(headers) {
        tracing::debug!("malformed or oversized tracestate: not forwarded");
        headers.remove(TRACESTATE);
    }
}

/// `version-traceid-parentid-flags`, lowercase hex: version `ff` is invalid, all-zero ids are
/// invalid; version `00` is exactly 55 characters, a later version may append `-...`.
fn valid_traceparent(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 55 {
        return false;
    }
    let (Some(version), Some(trace), Some(parent), Some(flags)) = (
        text.get(0..2),
        text.get(3..35),
        text.get(36..52),
        text.get(53..55),
    ) else {
        return false;
    };
    let dashes = [2, 35, 52].iter().all(|&at| bytes.get(at) == Some(&b'-'));
    let hex = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    if !(dashes && hex(version) && hex(trace) && hex(parent) && hex(flags)) {
        return false;
    }
    if version == "ff" || !nonzero(trace) || !nonzero(parent) {
        return false;
    }
    match version {
        "00" => bytes.len() == 55,
        // A later version: what follows the known fields starts with '-'.
        _ => bytes.len() == 55 || bytes.get(55) == Some(&b'-'),
    }
}

/// Every `tracestate` header together (they are one comma-separated list): at most
/// [`MAX_TRACESTATE_LEN`] characters, [`MAX_TRACESTATE_MEMBERS`] members, each `key=value` as
/// the spec writes them (empty members allowed).
fn valid_tracestate(headers: &HeaderMap) -> bool {
    let mut len = 0;
    let mut members = 0;
    for value in headers.get_all(TRACESTATE) {
        // Headers are joined with ", " when combined: count that too.
        len += value.len() + if len > 0 { 2 } else { 0 };
        if len > MAX_TRACESTATE_LEN {
            return false;
        }
        let Ok(text) = value.to_str() else {
            return false;
        };
        for member in text.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            members += 1;
            if members > MAX_TRACESTATE_MEMBERS || !valid_member(member) {
                return false;
            }
        }
    }
    true
}

/// `key=value`: key `[a-z0-9][a-z0-9_\-*/]*` (optionally `tenant@system`, 256 at most), value
/// 1 to 256 printable ASCII characters but `,` and `=`, not ending in a space.
fn valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b);
    let key_ok = |part: &str, max: usize| {
        let mut bytes = part.bytes();
        part.len() <= max
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes.all(key_char)
    };
    let key_valid = match key.split_once('@') {
        None => key_ok(key, 256),
        Some((tenant, system)) => key_ok(tenant, 241) && key_ok(system, 14),
    };
    let value_valid = !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    key_valid && value_valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with(parent: &[&str], state: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in parent {
            headers.append(TRACEPARENT, HeaderValue::from_str(value).unwrap());
        }
        for value in state {
            headers.append(TRACESTATE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn traceparent_follows_the_w3c_syntax() {
        assert!(valid_traceparent(VALID));
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert!(!valid_traceparent(invalid), "{invalid}");
        }
        // A later version may carry more fields after a dash.
        assert!(valid_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
        ));
    }

    #[test]
    fn the_trace_id_is_read_from_one_valid_traceparent_only() {
        assert_eq!(
            trace_id(&with(&[VALID], &[])),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id(&with(&[VALID, VALID], &[])), None);
        assert_eq!(trace_id(&with(&[], &[])), None);
    }

    #[test]
    fn a_malformed_traceparent_takes_tracestate_with_it() {
        let mut headers = with(&["00-zz"], &["vendor=1"]);
        sanitize(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
        let mut orphan = with(&[], &["vendor=1"]);
        sanitize(&mut orphan);
        assert!(orphan.is_empty(), "{orphan:?}");
    }

    #[test]
    fn tracestate_is_kept_within_the_limits_and_dropped_past_them() {
        let mut headers = with(
            &[VALID],
            &["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "a@b=c"],
        );
        sanitize(&mut headers);
        assert_eq!(headers.get_all(TRACESTATE).iter().count(), 2);
        assert_eq!(headers[TRACEPARENT], VALID);

        let many = (0..33)
            .map(|n| format!("k{n}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let long = format!("k={}", "v".repeat(256));
        let longer = [long.as_str(), long.as_str(), "x=1"];
        for state in [
            vec![many.as_str()],
            longer.to_vec(),
            vec!["Upper=1"],
            vec!["k=a,b"],
            vec!["k==1"],
            vec!["nokey"],
        ] {
            let mut headers = with(&[VALID], &state);
            sanitize(&mut headers);
            assert!(!headers.contains_key(TRACESTATE), "{state:?}");
            assert_eq!(headers[TRACEPARENT], VALID);
        }
    }
}
