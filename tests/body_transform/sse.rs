//! SSE streaming: each frame is emitted as its upstream frame arrives.

use super::*;

/// A body fed frame by frame through a channel.
struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[tokio::test]
async fn sse_frames_are_emitted_as_their_upstream_frames_arrive() {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let request =
        Request::get("/v1/shape?table=issues&live=true&live_sse=true&handle=h&offset=0_0")
            .body(Full::new(Bytes::new()))
            .unwrap();
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ChannelBody(receiver))
        .unwrap();
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(upper_and_drop)),
        request,
        response,
    )
    .await;
    let mut body = out.into_body();

    let frames = [
        (
            "data: {\"headers\":{\"operation\":\"insert\"},\"key\":\"issue-1\",\"value\":{\"title\":\"electric\"}}\n\n",
            "data: {\"headers\":{\"operation\":\"insert\"},\"key\":\"issue-1\",\"value\":{\"title\":\"ELECTRIC\"}}\n\n",
        ),
        ("data: {\"headers\":{\"operation\":\"delete\"},\"key\":\"drop\",\"value\":{\"id\":\"2\"}}\n\n", ""),
        (": keep-alive\n\n", ": keep-alive\n\n"),
        (
            "data: {\"headers\":{\"control\":\"up-to-date\",\"global_last_seen_lsn\":\"0/1234567\"}}\n\n",
            "data: {\"headers\":{\"control\":\"up-to-date\",\"global_last_seen_lsn\":\"0/1234567\"}}\n\n",
        ),
    ];
    for (input, expected) in frames {
        sender.send(Bytes::from_static(input.as_bytes())).unwrap();
        // Everything this frame produces is available now, before the next frame is sent.
        let mut output = Vec::new();
        while let Some(frame) = body.frame().now_or_never() {
            output.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
        }
        assert_eq!(String::from_utf8(output).unwrap(), expected);
    }
    drop(sender);
    assert!(body.frame().await.is_none());
}
