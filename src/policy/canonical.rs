//! The protocol params of the upstream request in one canonical form.
//!
//! An HTTP cache between the gateway and Electric keys on the upstream URL. Two clients allowed
//! the same shape must therefore send Electric the same bytes, however they spelled their own
//! request; the query string is already rendered canonically
//! ([`ShapeRequest::to_query_string`]), and this module removes the remaining differences that
//! mean nothing to Electric. Each rule keeps what Electric, or a cache in front of it, needs.

use crate::protocol::{Identifier, LogMode, Replica, ShapeRequest};

/// The client's protocol params (offset, handle, live, cursor, cache-busters) as they go
/// upstream.
pub(super) fn protocol_params(client: &ShapeRequest) -> ShapeRequest {
    ShapeRequest {
        offset: client.offset,
        handle: client.handle.clone(),
        live: client.live,
        live_sse: client.live_sse,
        // Electric reads `cursor` only on live requests, to pick the next `electric-cursor`
        // (it is the cache-buster of live requests: all clients holding the same poll share
        // it). On any other request it is noise that would split the cache.
        cursor: client.cursor.clone().filter(|_| client.live),
        // Electric ignores `expired_handle`; the TS client adds it after a 409 so that its
        // refetch from `-1`/`now` misses a cached answer that still names the expired shape.
        // Only there does it matter: with any other offset the `handle` already names the new
        // shape, and the client keeps sending `expired_handle` on every later request, which
        // would split one live poll into one cache entry per expired handle a client has seen.
        expired_handle: client
            .expired_handle
            .clone()
            .filter(|_| client.offset.is_start()),
        // Passed as is: the client sends a fresh random value only after a cache served it a
        // response naming a handle it knows to be expired. Replacing it by a shared value
        // would let the cache serve the same stale entry again, and the client would loop.
        cache_buster: client.cache_buster.clone(),
        ..ShapeRequest::default()
    }
}

/// `log` as sent: Electric's default, `full`, is left out, so `log=full` and no `log` are one
/// URL.
pub(super) fn log(mode: LogMode) -> Option<LogMode> {
    (mode != LogMode::Full).then_some(mode)
}

/// A client's `replica`: Electric's default, `default`, is left out. (A replica the policy
/// forces is sent as it is: it is the same for every client of that definition.)
pub(super) fn client_replica(asked: Option<Replica>) -> Option<Replica> {
    asked.filter(|replica| *replica != Replica::Default)
}

/// The client's `columns` in one order, each once: the visible list's order when there is
/// one (so asking for every visible column is the same URL as asking for none), otherwise
/// sorted. Electric returns each row's values as a JSON object keyed by column, so the order
/// changes nothing a client sees.
pub(super) fn column_order(
    asked: &[Identifier],
    visible: Option<&[Identifier]>,
) -> Vec<Identifier> {
    match visible {
        Some(visible) => visible
            .iter()
            .filter(|column| asked.contains(column))
            .cloned()
            .collect(),
        None => {
            let mut columns = asked.to_vec();
            columns.sort_unstable();
            columns.dedup();
            columns
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<Identifier> {
        names
            .iter()
            .map(|name| Identifier::parse(name).unwrap())
            .collect()
    }

    #[test]
    fn columns_follow_the_visible_order_once_each() {
        let visible = ids(&["id", "title", "done"]);
        assert_eq!(
            column_order(&ids(&["done", "id", "done"]), Some(&visible)),
            ids(&["id", "done"])
        );
        assert_eq!(
            column_order(&ids(&["done", "title", "id"]), Some(&visible)),
            visible
        );
        assert_eq!(column_order(&ids(&["b", "a", "b"]), None), ids(&["a", "b"]));
    }

    #[test]
    fn redundant_protocol_params_are_left_out() {
        let parse = |query: &str| ShapeRequest::parse(query).unwrap();
        let later = protocol_params(&parse(
            "offset=3_0&handle=h2&expired_handle=h1&cursor=5&cache-buster=x",
        ));
        assert_eq!(later.expired_handle, None);
        assert_eq!(later.cursor, None);
        assert_eq!(later.cache_buster.as_deref(), Some("x"));
        let refetch = protocol_params(&parse("offset=-1&handle=h2&expired_handle=h1"));
        assert_eq!(refetch.expired_handle.as_deref(), Some("h1"));
        let live = protocol_params(&parse("offset=3_0&handle=h2&live&cursor=5"));
        assert_eq!(live.cursor.as_deref(), Some("5"));
        assert_eq!(log(LogMode::Full), None);
        assert_eq!(log(LogMode::ChangesOnly), Some(LogMode::ChangesOnly));
        assert_eq!(client_replica(Some(Replica::Default)), None);
        assert_eq!(client_replica(Some(Replica::Full)), Some(Replica::Full));
    }
}
