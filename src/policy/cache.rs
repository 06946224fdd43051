//! Making a response whose rows depend on who asked unfit for shared caches.
//!
//! Electric marks shape responses `public` (a week for offset `-1`): right for Electric, whose
//! URL names the whole shape, wrong for a proxy that chooses rows by identity from a header or
//! cookie the URL does not show. A CDN in front of such a proxy would hand one tenant's rows to
//! another. So, for such responses, `public` becomes `private` (`max-age` and the rest kept,
//! `s-maxage` dropped as meaningless for private caches), a `surrogate-control` other than
//! `no-store` is dropped, and `Vary` names the credential headers.

use http::header::{CACHE_CONTROL, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::headers::SURROGATE_CONTROL;

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

/// Rewrites `headers` according to `safety`, varying on `vary_on`.
pub(crate) fn make_cache_safe(
    headers: &mut HeaderMap,
    safety: CacheSafety,
    vary_on: &[HeaderName],
) {
    match safety {
        CacheSafety::Unchanged => return,
        CacheSafety::Private => make_private(headers),
        CacheSafety::VaryOnly => {}
    }
    add_vary(headers, vary_on);
}

fn make_private(headers: &mut HeaderMap) {
    let mut directives: Vec<String> = Vec::new();
    for value in headers.get_all(CACHE_CONTROL) {
        // A value that is not text cannot be understood, so it is not kept.
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let name = directive
                .split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match name.as_str() {
                "public" | "private" | "s-maxage" | "proxy-revalidate" => {}
                _ => directives.push(directive.to_owned()),
            }
        }
    }
    let no_store = directives
        .iter()
        .any(|directive| directive.eq_ignore_ascii_case("no-store"));
    if !no_store {
        directives.insert(0, "private".to_owned());
    }
    let value = directives.join(", ");
    headers.remove(CACHE_CONTROL);
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(CACHE_CONTROL, value);
    } else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
    let surrogate_no_store = headers
        .get(SURROGATE_CONTROL)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"no-store"));
    if !surrogate_no_store {
        headers.remove(SURROGATE_CONTROL);
    }
}

fn add_vary(headers: &mut HeaderMap, vary_on: &[HeaderName]) {
    let mut names: Vec<String> = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else { continue };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                // Varies on everything already: no cache will reuse it.
                return;
            }
            if !names.iter().any(|seen| seen.eq_ignore_ascii_case(name)) {
                names.push(name.to_owned());
            }
        }
    }
    for name in vary_on {
        if !names
            .iter()
            .any(|seen| seen.eq_ignore_ascii_case(name.as_str()))
        {
            names.push(name.as_str().to_owned());
        }
    }
    if names.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
        headers.remove(VARY);
        headers.insert(VARY, value);
    }
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

    #[test]
    fn electrics_public_initial_response_becomes_private_without_s_maxage() {
        let mut map = headers(&[(
            "cache-control",
            "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746",
        )]);
        make_cache_safe(&mut map, CacheSafety::Private, &[AUTHORIZATION, COOKIE]);
        assert_eq!(
            map[CACHE_CONTROL],
            "private, max-age=604800, stale-while-revalidate=2629746"
        );
        assert_eq!(map[VARY], "authorization, cookie");
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
    fn vary_star_is_left_alone() {
        let mut map = headers(&[("vary", "*")]);
        make_cache_safe(&mut map, CacheSafety::VaryOnly, &[COOKIE]);
        assert_eq!(map[VARY], "*");
    }
}
