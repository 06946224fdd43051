//! Peak memory while streaming a generated 200 MB response through `BodyTransformLayer` with
//! a per-value transform: the process's high-water mark (`VmHWM`) before and after. The
//! response is generated chunk by chunk as it is read, so only the layer's own buffering
//! (and one chunk in flight) can raise the mark.
//!
//! `cargo bench --bench transform_memory`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_electric::transform::each_message;
use tower_electric::BodyTransformLayer;

const SIZE: usize = 200 * 1024 * 1024;

/// A snapshot of `remaining` bytes, generated one chunk at a time.
struct Generated {
    remaining: usize,
    next_id: u64,
    started: bool,
    done: bool,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut chunk = BytesMut::with_capacity(support::CHUNK + 1024);
        if !self.started {
            self.started = true;
            chunk.extend_from_slice(b"[");
        }
        while chunk.len() < support::CHUNK && self.remaining > 0 {
            if self.next_id > 0 {
                chunk.extend_from_slice(b",\n");
            }
            let message = support::message(self.next_id);
            chunk.extend_from_slice(message.as_bytes());
            self.remaining = self.remaining.saturating_sub(message.len() + 2);
            self.next_id += 1;
        }
        if self.remaining == 0 {
            chunk.extend_from_slice(b"]");
            self.done = true;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has nothing to filter.
    let before = vm_hwm_kib();
    let upstream = tower::service_fn(|_: Request<()>| async {
        let body = Generated {
            remaining: SIZE,
            next_id: 0,
            started: false,
            done: false,
        };
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json; charset=utf-8")
                .body(body)
                .unwrap(),
        )
    });
    let layer = BodyTransformLayer::new(each_message(support::upper));
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(())
        .unwrap();
    let streamed = async {
        let response = layer.layer(upstream).oneshot(request).await.unwrap();
        let mut body = response.into_body();
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            len += frame.unwrap().into_data().unwrap().len();
        }
        len
    }
    .now_or_never()
    .expect("the generated body is always ready");
    let after = vm_hwm_kib();
    println!(
        "streamed {:.1} MB through BodyTransformLayer (per-value transform): VmHWM {} KiB before, {} KiB after, peak growth {} KiB",
        streamed as f64 / 1e6,
        before,
        after,
        after.saturating_sub(before)
    );
}
