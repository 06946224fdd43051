//! Making a response whose rows depend on who asked unfit for shared caches.
//!
//! Electric marks shape responses `public` (a week for offset `-1`): right for Electric, whose
//! URL names the whole shape, wrong for a proxy that chooses rows by identity from a header or
//! cookie the URL does not show. A CDN in front of such a proxy would hand one tenant's rows to
//! another. So, for such responses, `public` becomes `private` (`s-maxage` dropped as
//! meaningless for private caches), a `surrogate-control` other than `no-store` is dropped,
//! and `Vary` names the credential headers.
//!
//! Electric's week-long `max-age` (and month-long `stale-while-revalidate`) on an initial
//! snapshot is safe for a CDN that Electric's own handle rotation keeps honest; in a browser's
//! private cache it would replay a handle Electric may have long since retired, and the client
//! then refetches through 409s. So a private response's `max-age`, `stale-while-revalidate` and
//! `stale-if-error` are capped (60 s by default, as proxies in the field ended up doing), and
//! an `Expires` header, which could outlast the cap where no `max-age` stands in for it, is
//! dropped.

use std::time::Duration;

use http::header::{CACHE_CONTROL, EXPIRES, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::headers::{list_elements, SURROGATE_CONTROL};
use crate::protocol::query::push_decimal;

/// How responses whose rows depend on the principal are made safe for shared caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheSafety {
    /// `public` becomes `private` and `Vary` names the credential headers (the default).
    #[default]
    Private,
    /// Only `Vary` is added: for a CDN that keys its cache on the credential headers.
    VaryOnly,
    /// Responses are left as they are: for deployments with no shared cache in front of the
    /// proxy (a CDN behind it, between proxy and Electric, sees the proxy's URLs, which name
    /// the principal's filter values).
    Unchanged,
}

/// How long a browser may keep a response made private by default: [`CacheSafety::Private`]
/// caps `max-age`, `stale-while-revalidate` and `stale-if-error` at this.
pub const DEFAULT_PRIVATE_MAX_AGE: Duration = Duration::from_secs(60);

/// How responses are rewritten: the mode, the headers to vary on, the private cap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheRules<'a> {
    pub(crate) safety: CacheSafety,
    pub(crate) vary_on: &'a VaryOn,
    pub(crate) private_max_age: Duration,
}

/// The request headers a response that depends on the principal varies on, with the `Vary` a
/// response without one gets. Electric sends no `Vary`, so that value is what nearly every
/// response gets: it is made once, with the names, rather than on every response.
#[derive(Debug, Clone)]
pub(crate) struct VaryOn {
    names: Vec<HeaderName>,
    /// `merged_vary` of no `Vary` at all and `names`.
    alone: Option<HeaderValue>,
}

impl VaryOn {
    pub(crate) fn new(names: Vec<HeaderName>) -> Self {
        let alone = merged_vary(&HeaderMap::new(), &names);
        Self { names, alone }
    }

    pub(crate) fn names(&self) -> &[HeaderName] {
        &self.names
    }
}

/// Rewrites `headers` according to `rules`.
pub(crate) fn make_cache_safe(headers: &mut HeaderMap, rules: CacheRules<'_>) {
    match rules.safety {
        CacheSafety::Unchanged => return,
        CacheSafety::Private => make_private(headers, rules.private_max_age.as_secs()),
        CacheSafety::VaryOnly => {}
    }
    add_vary(headers, rules.vary_on);
}

/// The directives whose value is a lifetime a private cache would honour.
const CAPPED_LIFETIMES: [&str; 3] = ["max-age", "stale-while-revalidate", "stale-if-error"];

/// The directives a private response drops: `private` is written first instead, and the others
/// only speak to shared caches.
const DROPPED: [&str; 4] = ["public", "private", "s-maxage", "proxy-revalidate"];

/// The non-empty elements of the list header `name` on its lines that are text. A line that is
/// not text cannot be understood, so none of it is kept.
fn text_elements<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    let text_lines = headers
        .get_all(name)
        .into_iter()
        .filter(|line| line.to_str().is_ok());
    list_elements(text_lines)
        .filter(|element| !element.is_empty())
        // Visible ASCII, as the line is: always UTF-8.
        .filter_map(|element| std::str::from_utf8(element).ok())
}

/// `value` as a header value, without copying it.
fn header_value(value: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
}

fn make_private(headers: &mut HeaderMap, cap_secs: u64) {
    // The directives kept, written into one value as they are read: on every response that
    // depends on the principal, so no list of strings is built.
    let mut kept = String::with_capacity(64);
    let mut no_store = false;
    for directive in text_elements(headers, &CACHE_CONTROL) {
        let name = before_equals(directive).trim();
        if DROPPED
            .iter()
            .any(|dropped| name.eq_ignore_ascii_case(dropped))
        {
            continue;
        }
        if !kept.is_empty() {
            kept.push_str(", ");
        }
        match CAPPED_LIFETIMES
            .iter()
            .find(|lifetime| name.eq_ignore_ascii_case(lifetime))
        {
            Some(lifetime) => push_capped(&mut kept, lifetime, directive, cap_secs),
            None => kept.push_str(directive),
        }
        no_store |= directive.eq_ignore_ascii_case("no-store");
    }
    if !no_store {
        kept.insert_str(
            0,
            if kept.is_empty() {
                "private"
            } else {
                "private, "
            },
        );
    }
    let value = header_value(kept).unwrap_or(HeaderValue::from_static("private, no-store"));
    // `insert` replaces every line of the header.
    headers.insert(CACHE_CONTROL, value);
    let surrogate_no_store = headers
        .get(SURROGATE_CONTROL)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"no-store"));
    if !surrogate_no_store {
        headers.remove(SURROGATE_CONTROL);
    }
    headers.remove(EXPIRES);
}

/// `directive` up to its first `=` (all of it without one). A byte search: `split` sets up a
/// searcher per call, and this runs for every directive of every private response.
fn before_equals(directive: &str) -> &str {
    match directive.bytes().position(|byte| byte == b'=') {
        Some(at) => directive.get(..at).unwrap_or(directive),
        None => directive,
    }
}

/// Writes `name=<seconds>`, no longer than `cap_secs`. A value that is not a number of seconds
/// (RFC 9111 allows it quoted) is read as longer than any cap: the cap is what a browser gets.
fn push_capped(out: &mut String, name: &str, directive: &str, cap_secs: u64) {
    let seconds = directive
        .get(before_equals(directive).len() + 1..)
        .map(|value| value.trim().trim_matches('"'))
        .and_then(|value| value.parse::<u64>().ok())
        .map_or(cap_secs, |seconds| seconds.min(cap_secs));
    out.push_str(name);
    out.push('=');
    push_decimal(out, seconds);
}

fn add_vary(headers: &mut HeaderMap, vary_on: &VaryOn) {
    let value = match headers.contains_key(VARY) {
        true => merged_vary(headers, &vary_on.names),
        false => vary_on.alone.clone(),
    };
    if let Some(value) = value {
        headers.insert(VARY, value);
    }
}

/// The names of the response's `Vary`, then `vary_on`, each once (ASCII case ignored), as one
/// value. `None`: `Vary` stays as it is (no names at all, or `*` already).
fn merged_vary(headers: &HeaderMap, vary_on: &[HeaderName]) -> Option<HeaderValue> {
    let mut names = String::with_capacity(64);
    // The names are trimmed list elements, without commas, so ", " only ever separates them;
    // searched by byte (`split(", ")` set up a substring searcher for every name).
    let mut add = |name: &str| {
        let seen = names.as_bytes().split(|&byte| byte == b',').any(|seen| {
            seen.trim_ascii_start()
                .eq_ignore_ascii_case(name.as_bytes())
        });
        if !seen {
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(name);
        }
    };
    for name in text_elements(headers, &VARY) {
        if name == "*" {
            // Varies on everything already: no cache will reuse it.
            return None;
        }
        add(name);
    }
    vary_on.iter().map(HeaderName::as_str).for_each(&mut add);
    if names.is_empty() {
        return None;
    }
    header_value(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{AUTHORIZATION, COOKIE};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn make_cache_safe(headers: &mut HeaderMap, safety: CacheSafety, vary_on: &[HeaderName]) {
        super::make_cache_safe(
            headers,
            CacheRules {
                safety,
                vary_on: &VaryOn::new(vary_on.to_vec()),
                private_max_age: DEFAULT_PRIVATE_MAX_AGE,
            },
        );
    }

    #[test]
    fn electrics_public_initial_response_becomes_private_for_a_minute_without_s_maxage() {
        let mut map = headers(&[(
            "cache-control",
            "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746",
        )]);
        make_cache_safe(&mut map, CacheSafety::Private, &[AUTHORIZATION, COOKIE]);
        assert_eq!(
            map[CACHE_CONTROL],
            "private, max-age=60, stale-while-revalidate=60"
        );
        assert_eq!(map[VARY], "authorization, cookie");
    }

    #[test]
    fn shorter_lifetimes_stay_and_the_cap_is_configurable() {
        let mut map = headers(&[(
            "cache-control",
            "public, max-age=5, stale-while-revalidate=5",
        )]);
        make_cache_safe(&mut map, CacheSafety::Private, &[]);
        assert_eq!(
            map[CACHE_CONTROL],
            "private, max-age=5, stale-while-revalidate=5"
        );
        let mut map = headers(&[(
            "cache-control",
            "public, Max-Age=\"604800\", stale-if-error=86400, must-revalidate",
        )]);
        super::make_cache_safe(
            &mut map,
            CacheRules {
                safety: CacheSafety::Private,
                vary_on: &VaryOn::new(Vec::new()),
                private_max_age: Duration::from_secs(10),
            },
        );
        assert_eq!(
            map[CACHE_CONTROL],
            "private, max-age=10, stale-if-error=10, must-revalidate"
        );
    }

    #[test]
    fn an_unreadable_lifetime_is_capped_and_expires_is_dropped() {
        let mut map = headers(&[
            (
                "cache-control",
                "public, max-age=forever, stale-while-revalidate=-1",
            ),
            ("expires", "Wed, 01 Jan 2099 00:00:00 GMT"),
        ]);
        make_cache_safe(&mut map, CacheSafety::Private, &[]);
        assert_eq!(
            map[CACHE_CONTROL],
            "private, max-age=60, stale-while-revalidate=60"
        );
        assert!(map.get(EXPIRES).is_none());
    }

    #[test]
    fn vary_only_keeps_electrics_lifetimes() {
        let mut map = headers(&[
            ("cache-control", "public, max-age=604800"),
            ("expires", "x"),
        ]);
        make_cache_safe(&mut map, CacheSafety::VaryOnly, &[COOKIE]);
        assert_eq!(map[CACHE_CONTROL], "public, max-age=604800");
        assert_eq!(map[EXPIRES], "x");
    }

    #[test]
    fn existing_vary_is_merged_case_insensitively() {
        let mut map = headers(&[
            ("cache-control", "public, max-age=60"),
            ("vary", "Accept-Encoding, Authorization"),
            ("vary", "origin"),
        ]);
        make_cache_safe(&mut map, CacheSafety::Private, &[AUTHORIZATION, COOKIE]);
        assert_eq!(map.get_all(VARY).iter().count(), 1);
        assert_eq!(map[VARY], "Accept-Encoding, Authorization, origin, cookie");
    }

    #[test]
    fn no_store_stays_and_a_missing_cache_control_becomes_private() {
        let mut map = headers(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "no-store"),
        ]);
        make_cache_safe(&mut map, CacheSafety::Private, &[]);
        assert_eq!(map[CACHE_CONTROL], "no-store");
        assert_eq!(map[SURROGATE_CONTROL], "no-store");
        let mut map = headers(&[("surrogate-control", "max-age=3600")]);
        make_cache_safe(&mut map, CacheSafety::Private, &[]);
        assert_eq!(map[CACHE_CONTROL], "private");
        assert!(map.get(SURROGATE_CONTROL).is_none());
    }

    #[test]
    fn vary_only_keeps_public_and_unchanged_touches_nothing() {
        let mut map = headers(&[("cache-control", "public, max-age=60")]);
        make_cache_safe(&mut map, CacheSafety::VaryOnly, &[COOKIE]);
        assert_eq!(map[CACHE_CONTROL], "public, max-age=60");
        assert_eq!(map[VARY], "cookie");
        let mut map = headers(&[("cache-control", "public, max-age=60")]);
        make_cache_safe(&mut map, CacheSafety::Unchanged, &[COOKIE]);
        assert_eq!(map[CACHE_CONTROL], "public, max-age=60");
        assert!(map.get(VARY).is_none());
    }

    #[test]
    fn cache_control_lines_merge_into_one_and_a_line_that_is_not_text_is_dropped() {
        let mut map = headers(&[
            ("cache-control", "public, max-age=600"),
            ("cache-control", " , must-revalidate,"),
        ]);
        map.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=9, \xff-directive").unwrap(),
        );
        make_cache_safe(&mut map, CacheSafety::Private, &[COOKIE]);
        assert_eq!(map.get_all(CACHE_CONTROL).iter().count(), 1);
        assert_eq!(map[CACHE_CONTROL], "private, max-age=60, must-revalidate");
    }

    #[test]
    fn vary_star_is_left_alone() {
        let mut map = headers(&[("vary", "*")]);
        make_cache_safe(&mut map, CacheSafety::VaryOnly, &[COOKIE]);
        assert_eq!(map[VARY], "*");
    }

    #[test]
    fn the_vary_made_once_is_the_vary_made_per_response() {
        let custom = HeaderName::from_static("x-tenant");
        for vary_on in [
            &[][..],
            &[AUTHORIZATION],
            &[AUTHORIZATION, COOKIE],
            &[COOKIE, AUTHORIZATION, COOKIE, custom.clone()],
        ] {
            let mut once = HeaderMap::new();
            add_vary(&mut once, &VaryOn::new(vary_on.to_vec()));
            let each_time = merged_vary(&HeaderMap::new(), vary_on);
            assert_eq!(once.get(VARY), each_time.as_ref(), "{vary_on:?}");
        }
        let mut map = HeaderMap::new();
        add_vary(&mut map, &VaryOn::new(vec![COOKIE, AUTHORIZATION, COOKIE]));
        assert_eq!(map[VARY], "cookie, authorization");
        let mut map = HeaderMap::new();
        add_vary(&mut map, &VaryOn::new(Vec::new()));
        assert!(map.is_empty());
        // A response with its own Vary is merged with, not replaced.
        let mut map = headers(&[("vary", "Accept-Encoding")]);
        add_vary(&mut map, &VaryOn::new(vec![COOKIE]));
        assert_eq!(map[VARY], "Accept-Encoding, cookie");
    }

    #[test]
    fn capped_lifetimes_are_written_in_decimal() {
        for (directive, cap, written) in [
            ("max-age=0", 60, "max-age=0"),
            ("max-age=7", 60, "max-age=7"),
            ("max-age=604800", 60, "max-age=60"),
            ("max-age=604800", 3_600_000, "max-age=604800"),
            ("max-age=10", u64::MAX, "max-age=10"),
            (
                "max-age=18446744073709551615",
                u64::MAX,
                "max-age=18446744073709551615",
            ),
            ("max-age=soon", 100, "max-age=100"),
        ] {
            let mut out = String::new();
            push_capped(&mut out, "max-age", directive, cap);
            assert_eq!(out, written);
        }
    }
}
