//! Query strings decoded the way Electric (Plug) decodes them, and encoded back.
//!
//! Keys and values are split on `&` and at the first `=`, `+` becomes a space, and `%XX`
//! escapes are decoded in keys as well as values, so `params%5B1%5D` *is* `params[1]` and
//! `%73ecret` *is* `secret`. A malformed escape or bytes that are not UTF-8 are refused, as
//! Plug refuses them. Unlike Electric, which keeps the last copy of a repeated key, a key given
//! twice is a refusal here: a proxy that checked one copy while Electric used another would be
//! bypassed.

use std::borrow::Cow;

use super::ProtocolError;

mod encode;

pub use self::encode::encode_component;
pub(crate) use self::encode::{encode_into, push_decimal, push_pair};
use self::encode::{Bare, BARE_IN_KEY, UNRESERVED};

/// The longest query string accepted by default, in bytes.
pub const DEFAULT_MAX_QUERY_LEN: usize = 16 * 1024;

/// A decoded query string: its pairs in order, each key present once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPairs {
    pairs: Vec<(String, String)>,
}

impl QueryPairs {
    /// Decodes a raw query string (without the leading `?`), refusing repeated keys.
    pub fn parse(raw: &str) -> Result<Self, ProtocolError> {
        Self::parse_taking(raw, |_| false).map(|(pairs, _)| pairs)
    }

    /// Decodes like [`QueryPairs::parse`], but first takes out every pair whose *decoded* key
    /// `take` selects: those come back separately, in order, repeats included, and only the
    /// remaining keys must be unique. Used to strip credentials however the client spelled or
    /// repeated them. The whole query must still decode: nothing is returned half-cleaned.
    pub fn parse_taking(
        raw: &str,
        mut take: impl FnMut(&str) -> bool,
    ) -> Result<(Self, Vec<(String, String)>), ProtocolError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut taken = Vec::new();
        for (key, value) in raw_pairs(raw) {
            let key = decode_component(key)?;
            let value = decode_component(value)?;
            if take(&key) {
                taken.push((key, value));
                continue;
            }
            pairs.push((key, value));
        }
        if let Some(key) = repeated_key(pairs.iter().map(|(key, _)| key.as_str())) {
            return Err(ProtocolError::DuplicateKey { key });
        }
        Ok((Self { pairs }, taken))
    }

    /// Like [`QueryPairs::parse`], refusing a raw query longer than `max_len` bytes first.
    pub fn parse_limited(raw: &str, max_len: usize) -> Result<Self, ProtocolError> {
        if raw.len() > max_len {
            return Err(ProtocolError::QueryTooLong { max_len });
        }
        Self::parse(raw)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(name, _)| name == key)?;
        Some(self.pairs.remove(index).1)
    }

    /// Keeps only the pairs for which `keep(key, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.pairs.retain(|(key, value)| keep(key, value));
    }

    /// Appends a pair; a pair with the same key is replaced, so keys stay unique.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.pairs.retain(|(name, _)| *name != key);
        self.pairs.push((key, value.into()));
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Encodes the pairs back into a query string, in their order: every byte but RFC 3986's
    /// unreserved ones percent-encoded, except a key's `[` and `]`, which stay as they are.
    pub fn to_query_string(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.pairs {
            push_pair(&mut out, key, value);
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for QueryPairs {
    /// Collects pairs; a later pair with an already seen key replaces the earlier one.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let all: Vec<(String, String)> = iter
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        // Keep each key's last pair, in the order of those last pairs: linear, not a scan of
        // the pairs so far for every pair.
        let mut seen = std::collections::HashSet::with_capacity(all.len());
        let mut pairs: Vec<(String, String)> = all
            .into_iter()
            .rev()
            .filter(|(key, _)| seen.insert(key.clone()))
            .collect();
        pairs.reverse();
        Self { pairs }
    }
}

/// A key that `pairs` holds more than once, if any. Sorting makes this `n log n`: a 16 KiB
/// query of thousands of tiny keys must not cost a comparison of every pair with every other.
fn repeated_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.windows(2).find_map(|window| match window {
        [first, second] if first == second => Some((*first).to_owned()),
        _ => None,
    })
}

/// What [`QueryPairs::parse_taking`] keeps of `raw`, written as
/// [`QueryPairs::to_query_string`] writes it, in one pass that decodes no value: for a query
/// whose every key and value is already written that way ([`is_canonical`]), as any query this
/// crate composes is (Electric's TypeScript client writes spaces as `+`, which is not). Encoding what such a component decodes to gives it
/// back, so each kept pair is copied as it is, and the result, the pairs `take` selects and a
/// repeated key's refusal are the same as the general path's. `None` when some key or value
/// is written otherwise (`+`, lowercase or needless escapes, no valid UTF-8): the caller then
/// takes the general path. The pairs `take` selects are left out, not returned.
pub(crate) fn canonical_taking(
    raw: &str,
    mut take: impl FnMut(&str) -> bool,
) -> Option<Result<String, ProtocolError>> {
    let mut out = String::with_capacity(raw.len());
    // Room for the keys of a composed query without growing (the policy writes about eight).
    let mut keys: Vec<Cow<'_, str>> = Vec::with_capacity(16);
    for (key, value) in raw_pairs(raw) {
        if !is_canonical(key, &BARE_IN_KEY) || !is_canonical(value, &UNRESERVED) {
            return None;
        }
        // Only an escape makes the decoded key differ from the raw one (`my%20key`).
        let key_text = match key.contains('%') {
            true => Cow::Owned(decode_component(key).ok()?),
            false => Cow::Borrowed(key),
        };
        if take(&key_text) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        keys.push(key_text);
    }
    Some(match repeated_key(keys.iter().map(|key| &**key)) {
        Some(key) => Err(ProtocolError::DuplicateKey { key }),
        None => Ok(out),
    })
}

/// Whether `component` is what [`push_pair`] writes for the text it decodes to: the bytes
/// `bare` keeps as they are, every other byte as `%` and two uppercase hex digits, and the
/// decoded bytes UTF-8.
fn is_canonical(component: &str, bare: &Bare) -> bool {
    let bytes = component.as_bytes();
    // Most keys and values have no escape at all: one tight pass answers for them.
    if bytes.iter().all(|&byte| bare.keeps(byte)) {
        return true;
    }
    let mut escaped_non_ascii = false;
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let upper_hex = |at: usize| {
                bytes
                    .get(at)
                    .filter(|digit| matches!(digit, b'0'..=b'9' | b'A'..=b'F'))
                    .and_then(|&digit| hex_value(digit))
            };
            match (upper_hex(index + 1), upper_hex(index + 2)) {
                (Some(high), Some(low)) if !bare.keeps(high << 4 | low) => {
                    escaped_non_ascii |= high >= 8;
                }
                _ => return false,
            }
            index += 3;
        } else if bare.keeps(byte) {
            index += 1;
        } else {
            return false;
        }
    }
    // Escaped bytes past ASCII may not make UTF-8; only then is there anything to decode (an
    // escaped ASCII byte is a character of its own, whatever surrounds it).
    !escaped_non_ascii || decode_component(component).is_ok()
}

/// `uri` with its query replaced by `query` (already encoded; empty for none), path, scheme
/// and authority kept. `None` when the result is not a valid URI; callers refuse the request
/// without repeating the text, which may hold a secret.
///
/// Takes the URI rather than cloning it: a clone of a URI whose text this crate wrote (it is
/// held in a vector until shared) would allocate to share it, only to be dropped here.
pub(crate) fn with_query(uri: http::Uri, query: &str) -> Option<http::Uri> {
    let path_and_query = if query.is_empty() {
        http::uri::PathAndQuery::try_from(uri.path())
    } else {
        http::uri::PathAndQuery::try_from(path_with_query(uri.path(), query))
    };
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(path_and_query.ok()?);
    http::Uri::from_parts(parts).ok()
}

/// `path?query`, in one allocation of the exact size.
pub(crate) fn path_with_query(path: &str, query: &str) -> String {
    let mut text = String::with_capacity(path.len() + 1 + query.len());
    text.push_str(path);
    text.push('?');
    text.push_str(query);
    text
}

/// The still-encoded `(key, value)` pairs of a raw query: split on `&`, empty segments
/// skipped, a segment without `=` a key with an empty value.
fn raw_pairs(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = raw;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        // A byte loop, not `str::split`: its searcher's setup per call cost more than the
        // scan itself on queries of a few short pairs. `&` and `=` are ASCII, so every cut
        // is on a character boundary (`get` never answers `None`).
        let end = rest
            .bytes()
            .position(|byte| byte == b'&')
            .unwrap_or(rest.len());
        let segment = rest.get(..end).unwrap_or_default();
        rest = rest.get(end + 1..).unwrap_or_default();
        if segment.is_empty() {
            continue;
        }
        return Some(match segment.bytes().position(|byte| byte == b'=') {
            Some(at) => (
                segment.get(..at).unwrap_or_default(),
                segment.get(at + 1..).unwrap_or_default(),
            ),
            None => (segment, ""),
        });
    })
}

/// The decoded value of `key` in a raw query, decoding no other value: `None` when the key is
/// missing, repeated, or its value does not decode. For readers of one param of a query that
/// was checked whole before (the other keys are decoded only when they hold an escape).
pub(crate) fn single_value(raw: &str, key: &str) -> Option<String> {
    let mut values = raw_pairs(raw)
        .filter(|(name, _)| match has_escape(name) {
            true => decode_component(name).is_ok_and(|name| name == key),
            false => *name == key,
        })
        .map(|(_, value)| value);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    decode_component(value).ok()
}

/// Whether a raw query asks for a live response (long-poll or SSE) as Electric reads `live`:
/// any value but the literal `false` is true (`?live`, `live=0` are live). A copy whose value
/// does not decode, or any live copy among repeated ones, counts as live: a reader that holds
/// back non-live responses then never holds back one Electric would keep open.
pub(crate) fn asks_live(raw: &str) -> bool {
    asks_flag(raw, "live")
}

/// Whether a raw query sets the boolean `key` (`live`, `live_sse`) as Electric reads it: any
/// value but the literal `false` is true; an undecodable or repeated live copy counts as true.
pub(crate) fn asks_flag(raw: &str, key: &str) -> bool {
    raw_pairs(raw)
        .filter(|(name, _)| match has_escape(name) {
            true => decode_component(name).is_ok_and(|name| name == key),
            false => *name == key,
        })
        .any(|(_, value)| match has_escape(value) {
            true => decode_component(value).map_or(true, |value| value != "false"),
            // No escape: compared as it is, without decoding into a new string.
            false => value != "false",
        })
}

/// Whether a raw key or value holds anything that decoding changes (`+` or an escape).
fn has_escape(raw: &str) -> bool {
    raw.bytes().any(|byte| byte == b'%' || byte == b'+')
}

/// Decodes one key or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode_component(raw: &str) -> Result<String, ProtocolError> {
    if !has_escape(raw) {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(index + 1).copied().and_then(hex_value);
                let low = bytes.get(index + 2).copied().and_then(hex_value);
                match (high, low) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => return Err(ProtocolError::MalformedEscape),
                }
                index += 2;
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8(out).map_err(|_| ProtocolError::NotUtf8)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_value_reads_one_key_in_any_spelling_and_refuses_repeats() {
        assert_eq!(
            single_value("a=%ZZ&table=it%65ms", "table").as_deref(),
            Some("items")
        );
        assert_eq!(single_value("%74able=a+b", "table").as_deref(), Some("a b"));
        assert_eq!(single_value("table=a&%74able=b", "table"), None);
        assert_eq!(single_value("tables=a", "table"), None);
        assert_eq!(single_value("table=%ZZ", "table"), None);
    }

    #[test]
    fn live_is_any_value_but_false_as_electric_reads_it() {
        for live in [
            "live=true",
            "live",
            "live=",
            "live=0",
            "%6Cive=true",
            "live=%ZZ",
            "live=false&live=true",
            "offset=0_0&live=true&live_sse=true",
        ] {
            assert!(asks_live(live), "{live}");
        }
        for not_live in ["", "live=false", "%6Cive=fals%65", "lives=true", "alive=1"] {
            assert!(!asks_live(not_live), "{not_live}");
        }
    }

    #[test]
    fn raw_pairs_split_on_ampersands_then_the_first_equals_sign() {
        let reference = |raw: &str| -> Vec<(String, String)> {
            raw.split('&')
                .filter(|segment| !segment.is_empty())
                .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect()
        };
        for raw in [
            "",
            "&",
            "&&a",
            "a&&b=1&=x&c==d&",
            "é=ü&日本=語&x",
            "=",
            "a=&=b&&",
            "k=v=w&k2",
        ] {
            let pairs: Vec<_> = raw_pairs(raw)
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            assert_eq!(pairs, reference(raw), "{raw:?}");
        }
    }

    #[test]
    fn plus_is_space_and_escapes_decode_in_keys_and_values() {
        let pairs = QueryPairs::parse("where=id+%3E%3D+%241&params%5B1%5D=5&%73ecret=x").unwrap();
        assert_eq!(pairs.get("where"), Some("id >= $1"));
        assert_eq!(pairs.get("params[1]"), Some("5"));
        assert_eq!(pairs.get("secret"), Some("x"));
    }

    #[test]
    fn key_without_equals_has_empty_value_and_empty_segments_are_skipped() {
        let pairs = QueryPairs::parse("live&&offset=-1&").unwrap();
        assert_eq!(pairs.get("live"), Some(""));
        assert_eq!(pairs.get("offset"), Some("-1"));
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn repeated_key_is_refused_even_when_spelled_differently() {
        for raw in [
            "table=a&table=b",
            "secret=x&%73ecret=y",
            "params[1]=a&params%5B1%5D=b",
            "where=a&where=a",
        ] {
            let error = QueryPairs::parse(raw).unwrap_err();
            assert!(
                matches!(error, ProtocolError::DuplicateKey { .. }),
                "{raw}: {error:?}"
            );
        }
    }

    #[test]
    fn taken_pairs_may_repeat_and_are_kept_out_of_the_rest() {
        let (pairs, taken) =
            QueryPairs::parse_taking("secret=a&table=t&%73ecret=b", |key| key == "secret").unwrap();
        assert_eq!(pairs.iter().collect::<Vec<_>>(), [("table", "t")]);
        assert_eq!(
            taken,
            [("secret".into(), "a".into()), ("secret".into(), "b".into())]
        );
        assert!(matches!(
            QueryPairs::parse_taking("secret=a&table=t&table=u", |key| key == "secret"),
            Err(ProtocolError::DuplicateKey { .. })
        ));
        assert_eq!(
            QueryPairs::parse_taking("secret=%zz", |_| true).unwrap_err(),
            ProtocolError::MalformedEscape
        );
    }

    #[test]
    fn malformed_escapes_and_non_utf8_are_refused() {
        assert_eq!(
            QueryPairs::parse("table=%zz").unwrap_err(),
            ProtocolError::MalformedEscape
        );
        assert_eq!(
            QueryPairs::parse("table=%4").unwrap_err(),
            ProtocolError::MalformedEscape
        );
        assert_eq!(
            QueryPairs::parse("table=%ff").unwrap_err(),
            ProtocolError::NotUtf8
        );
    }

    #[test]
    fn over_long_query_is_refused() {
        let raw = format!("table={}", "a".repeat(100));
        assert!(matches!(
            QueryPairs::parse_limited(&raw, 50),
            Err(ProtocolError::QueryTooLong { max_len: 50 })
        ));
    }

    #[test]
    fn encoding_round_trips_awkward_text() {
        let text = "a b+c&d=e%f\"g\"[1] ünï ;#";
        let encoded = encode_component(text);
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        assert_eq!(decode_component(&encoded).unwrap(), text);
    }

    /// The general path [`canonical_taking`] stands in for.
    fn general_taking(raw: &str, take: impl FnMut(&str) -> bool) -> Result<String, ProtocolError> {
        QueryPairs::parse_taking(raw, take).map(|(pairs, _)| pairs.to_query_string())
    }

    fn is_secret(key: &str) -> bool {
        key.eq_ignore_ascii_case("secret")
    }

    #[test]
    fn canonical_queries_are_copied_less_what_is_taken() {
        let raw = "table=items&secret=client&offset=-1&where=done%20%3D%20false&params[1]=%C3%BC";
        assert_eq!(
            canonical_taking(raw, is_secret).unwrap().unwrap(),
            "table=items&offset=-1&where=done%20%3D%20false&params[1]=%C3%BC"
        );
        assert_eq!(
            canonical_taking("a=1&b=2&%61=3", |_| false),
            None,
            "a needless escape is not canonical"
        );
        assert_eq!(
            canonical_taking("a=1&b=2&a=3", |_| false).unwrap(),
            Err(ProtocolError::DuplicateKey { key: "a".into() })
        );
        assert_eq!(
            canonical_taking("params[1]=a&params[1]=b", |_| false).unwrap(),
            Err(ProtocolError::DuplicateKey {
                key: "params[1]".into()
            })
        );
    }

    #[test]
    fn anything_written_otherwise_goes_the_general_way() {
        for raw in [
            "a=b+c",
            "a=%3d",
            "a=%41",
            "a=%FF",
            "a=b c",
            "a=b=c",
            "a=%",
            "a=%4",
            "a=[1]",
            "ü=1",
            "params%5B1%5D=a",
        ] {
            assert_eq!(canonical_taking(raw, |_| false), None, "{raw}");
        }
        // A key without `=` is written with one, by both paths.
        assert_eq!(
            canonical_taking("a&b=1", |_| false).unwrap().unwrap(),
            "a=&b=1"
        );
    }

    proptest::proptest! {
        #[test]
        fn canonical_taking_agrees_with_the_general_path(
            raw in "[aAB0-9%+=&\\[\\] üfFdDsecrtSECRT._~-]{0,40}",
        ) {
            if let Some(result) = canonical_taking(&raw, is_secret) {
                proptest::prop_assert_eq!(result, general_taking(&raw, is_secret));
            }
        }

        #[test]
        fn what_this_crate_writes_is_always_canonical(
            pairs in proptest::collection::vec(("[a-zA-Z\\[\\]0-9 %+=&ü]{0,6}", ".{0,8}"), 0..6),
        ) {
            let mut raw = String::new();
            for (key, value) in &pairs {
                push_pair(&mut raw, key, value);
            }
            let result = canonical_taking(&raw, is_secret);
            proptest::prop_assert!(result.is_some(), "{raw}");
            proptest::prop_assert_eq!(result.unwrap(), general_taking(&raw, is_secret));
        }
    }
}
