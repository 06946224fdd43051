//! The `(id, title)` rows a client received through the example gateway, each value checked:
//! the tenant's own, without the hidden column. Shared by `tests/gateway/` and
//! `tests/deployments.rs`.

use crate::demo::Reply;

/// `(id, title)` of every value received, each checked to be `tenant`'s and without the hidden
/// column.
pub(crate) fn received_rows(reply: &Reply, tenant: &str) -> Vec<(String, String)> {
    reply
        .values()
        .unwrap()
        .iter()
        .map(|value| {
            assert!(value.get("internal_note").is_none(), "{value}");
            assert_eq!(value["tenant_id"], tenant, "{value}");
            (
                value["id"].as_str().unwrap().to_owned(),
                value["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
