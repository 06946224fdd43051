//! The shape endpoint's `live_sse` answer: changes as `data:` frames as they happen,
//! `: keep-alive` comments in silence, closed after the configured duration.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, ETAG};
use http::Response;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::headers::{
    ELECTRIC_CURSOR, ELECTRIC_HANDLE, ELECTRIC_OFFSET, SSE_CONTENT_TYPE,
};
use crate::protocol::{LogOffset, ShapeRequest};

use super::answer::{put, Answer, BodyKind, StandInBody};
use super::messages::{self, ShapeView};
use super::shape::{cursor, must_refetch, read_shape, LiveGuard};
use super::Shared;

/// `live_sse`: changes as `data:` frames as they happen, keep-alive comments in silence,
/// closed after the configured duration.
pub(super) fn sse(
    shared: &Arc<Shared>,
    request: &ShapeRequest,
    view: &ShapeView,
    offset: LogOffset,
) -> Answer {
    let read = read_shape(shared, view, offset);
    if request.handle.as_deref() != Some(read.handle.as_str()) {
        return must_refetch(&read.handle, request.offset);
    }
    let config = &shared.config;
    let state = SseState {
        shared: Arc::clone(shared),
        view: view.clone(),
        handle: read.handle.clone(),
        offset,
        changes: shared.changes.subscribe(),
        deadline: Instant::now() + config.sse_duration,
        pending: VecDeque::new(),
        done: false,
        guard: LiveGuard::new(shared),
    };
    let stream = futures_util::stream::unfold(state, next_sse_frame);
    let mut response = Response::new(StandInBody {
        kind: BodyKind::Stream(Box::pin(stream)),
    });
    let headers = response.headers_mut();
    put(headers, CONTENT_TYPE, SSE_CONTENT_TYPE);
    put(headers, CONNECTION, "keep-alive");
    let max_age = config.sse_duration.as_secs().saturating_sub(1).max(1);
    put(headers, CACHE_CONTROL, format!("public, max-age={max_age}"));
    put(headers, ELECTRIC_CURSOR, cursor(shared, request));
    put(
        headers,
        ETAG,
        format!(
            "\"{}:{}:{}\"",
            read.handle,
            request.offset,
            read.end_offset()
        ),
    );
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_OFFSET, read.last_offset.to_string());
    response
}

struct SseState {
    shared: Arc<Shared>,
    view: ShapeView,
    handle: String,
    offset: LogOffset,
    changes: watch::Receiver<u64>,
    deadline: Instant,
    pending: VecDeque<Bytes>,
    done: bool,
    guard: LiveGuard,
}

fn sse_frame(message: &Value) -> Bytes {
    Bytes::from(format!("data: {message}\n\n"))
}

async fn next_sse_frame(mut state: SseState) -> Option<(Bytes, SseState)> {
    loop {
        if let Some(frame) = state.pending.pop_front() {
            return Some((frame, state));
        }
        if state.done {
            state.guard.finish();
            return None;
        }
        state.changes.borrow_and_update();
        let read = read_shape(&state.shared, &state.view, state.offset);
        if read.handle != state.handle {
            state
                .pending
                .push_back(sse_frame(&messages::must_refetch()));
            state.done = true;
            continue;
        }
        if !read.messages.is_empty() {
            state.offset = read.end_offset();
            for (_, message) in &read.messages {
                state.pending.push_back(sse_frame(message));
            }
            state
                .pending
                .push_back(sse_frame(&messages::up_to_date(state.offset.tx)));
            continue;
        }
        let silence_ends =
            (Instant::now() + state.shared.config.sse_keep_alive).min(state.deadline);
        tokio::select! {
            changed = state.changes.changed() => {
                if changed.is_err() {
                    state.done = true;
                }
            }
            () = tokio::time::sleep_until(silence_ends) => {
                if Instant::now() >= state.deadline {
                    state.done = true;
                } else {
                    state.pending.push_back(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}
