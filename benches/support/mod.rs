//! Shared pieces of the transform benchmarks: a generated snapshot and the transform measured
//! (bodies are cut with `tower_electric::testing::ChunkedBody`).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use tower_electric::transform::{BoxError, Message};

/// Electric writes shape logs in chunks of up to about this size.
pub(crate) const CHUNK: usize = 256 * 1024;

/// One insert message of a generated `public.items` snapshot, as Electric renders it.
pub(crate) fn message(id: u64) -> String {
    format!(
        concat!(
            r#"{{"headers":{{"operation":"insert","relation":["public","items"]}},"#,
            r#""key":"\"public\".\"items\"/\"{id}\"","#,
            r#""value":{{"id":"{id}","title":"Item number {id}","status":"backlog","#,
            r#""owner":"user-{owner}@example.com","notes":"Some free text, with \"quotes\" and commas, for row {id}.","#,
            r#""created_at":"2024-07-24 10:{minute:02}:00+00","priority":"{priority}","archived":null}}}}"#
        ),
        id = id,
        owner = id % 97,
        minute = id % 60,
        priority = id % 5,
    )
}

/// A generated snapshot body of about `size` bytes: a JSON array of inserts and the
/// closing `snapshot-end` control message.
pub(crate) fn snapshot(size: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(size + 1024);
    body.extend_from_slice(b"[");
    let mut id = 0;
    while body.len() < size {
        if id > 0 {
            body.extend_from_slice(b",\n");
        }
        body.extend_from_slice(message(id).as_bytes());
        id += 1;
    }
    body.extend_from_slice(
        br#",
{"headers":{"control":"snapshot-end","xmin":"1000","xmax":"1050","xip_list":[]}}]"#,
    );
    body.freeze()
}

/// The per-value transform measured: ASCII upper-case of every value and old value.
pub(crate) fn upper(message: &mut Message<'_>) -> Result<(), BoxError> {
    for row in message.rows_mut() {
        for (_, value) in row.values_mut() {
            if let Some(text) = value {
                *text = Cow::Owned(text.to_ascii_uppercase());
            }
        }
    }
    Ok(())
}

/// The one-column transform measured (the issue's "one column rewritten"): ASCII upper-case of
/// `title` in every value and old value; the other columns pass as they are.
pub(crate) fn upper_title(message: &mut Message<'_>) -> Result<(), BoxError> {
    for row in message.rows_mut() {
        if let Some(Some(title)) = row.get_mut("title") {
            *title = Cow::Owned(title.to_ascii_uppercase());
        }
    }
    Ok(())
}
