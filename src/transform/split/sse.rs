//! The server-sent-events framing (`live_sse`): each `data:` line is one message, every
//! other line passes on as soon as it ends, and a dropped message's event is left out.

use bytes::Bytes;

use super::{OnMessage, Outcome, Splitter, Whole};
use crate::transform::TransformError;

impl Splitter {
    pub(super) fn push_sse<F>(
        &mut self,
        chunk: &Bytes,
        on_message: &mut F,
    ) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let bytes: &[u8] = chunk;
        let mut at = 0;
        while at < bytes.len() {
            let rest = bytes.get(at..).unwrap_or_default();
            let Some(offset) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                // A last `\r` may be the start of the line ending, which a whole line's size
                // leaves out.
                let ending = usize::from(self.partial.ends_with(b"\r"));
                self.check_size(self.partial.len() - ending)?;
                break;
            };
            let end = at + offset + 1;
            let line = if self.partial.is_empty() {
                Whole::InChunk(at, end)
            } else {
                self.partial
                    .extend_from_slice(bytes.get(at..end).unwrap_or_default());
                Whole::Gathered(self.partial.split().freeze())
            };
            self.sse_line(chunk, line, on_message)?;
            at = end;
        }
        Ok(())
    }

    /// One complete SSE line, with its line ending.
    fn sse_line<F>(
        &mut self,
        chunk: &Bytes,
        line: Whole,
        on_message: &mut F,
    ) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let text = line.bytes(chunk);
        let content_len = text.len() - if text.ends_with(b"\r\n") { 2 } else { 1 };
        let content = text.get(..content_len).unwrap_or_default();
        self.check_size(content_len)?;
        let outcome = if content.is_empty() {
            // The blank line that ends an event: left out with the event it ends.
            if std::mem::take(&mut self.skip_event) {
                Outcome::Dropped
            } else {
                Outcome::Unchanged
            }
        } else if self.skip_event {
            Outcome::Dropped
        } else if let Some(data) = content.strip_prefix(b"data:") {
            let payload = data.strip_prefix(b" ").unwrap_or(data);
            self.scratch.clear();
            let outcome = on_message.whole(payload, &mut self.scratch)?;
            if outcome == Outcome::Dropped {
                self.skip_event = true;
            } else if outcome == Outcome::Replaced {
                let prefix_len = content_len - payload.len();
                self.output
                    .copy(chunk, text.get(..prefix_len).unwrap_or_default());
                self.output.copy(chunk, &self.scratch);
                self.output
                    .copy(chunk, text.get(content_len..).unwrap_or_default());
            }
            outcome
        } else {
            // Comments (`: keep-alive`) and other fields pass as they come.
            Outcome::Unchanged
        };
        if outcome == Outcome::Unchanged {
            match line {
                Whole::InChunk(start, end) => self.output.range(chunk, start, end),
                Whole::Gathered(bytes) => self.output.frame(chunk, bytes),
            }
        }
        Ok(())
    }
}
