//! The splitter's output: slices of the input chunks where bytes pass unchanged, and owned
//! blocks for what was rewritten, in order.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Copies under this many bytes go into the owned output buffer instead of becoming a frame
/// of their own, so a transformed chunk becomes a few frames, not one per separator.
const SMALL_COPY: usize = 4096;

/// The owned buffer grows in blocks of this size, each shared by the frames cut from it.
const OWNED_BLOCK: usize = 64 * 1024;

/// The output of one chunk: slices of the chunk where bytes pass unchanged, one owned buffer
/// for what was rewritten, in order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    frames: VecDeque<Bytes>,
    owned: BytesMut,
    /// A range of the current chunk to pass on, not yet turned into a frame. At most one of
    /// `pending` and `owned` holds bytes at any time, which keeps the order.
    pending: Option<(usize, usize)>,
}

impl Output {
    /// The next frame ready to be sent.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        self.frames.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The bytes queued in frames ready to be sent.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    pub(super) fn range(&mut self, chunk: &Bytes, start: usize, end: usize) {
        if start >= end {
            return;
        }
        if !self.owned.is_empty() {
            if end - start < SMALL_COPY {
                self.append(chunk.get(start..end).unwrap_or_default());
                return;
            }
            self.frames.push_back(self.owned.split().freeze());
        }
        match self.pending {
            Some((pending_start, pending_end)) if pending_end == start => {
                self.pending = Some((pending_start, end));
            }
            _ => {
                self.flush_pending(chunk);
                self.pending = Some((start, end));
            }
        }
    }

    pub(super) fn copy(&mut self, chunk: &Bytes, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some((start, end)) = self.pending {
            if end - start < SMALL_COPY {
                self.pending = None;
                self.append(chunk.get(start..end).unwrap_or_default());
            } else {
                self.flush_pending(chunk);
            }
        }
        self.append(bytes);
    }

    /// Appends to the owned buffer without moving what it holds: when its block is full,
    /// that becomes a frame and a new block is started (growing in place would copy it).
    fn append(&mut self, bytes: &[u8]) {
        if self.owned.capacity() - self.owned.len() < bytes.len() {
            if !self.owned.is_empty() {
                self.frames.push_back(self.owned.split().freeze());
            }
            self.owned.reserve(bytes.len().max(OWNED_BLOCK));
        }
        self.owned.extend_from_slice(bytes);
    }

    pub(super) fn frame(&mut self, chunk: &Bytes, frame: Bytes) {
        self.flush(chunk);
        if !frame.is_empty() {
            self.frames.push_back(frame);
        }
    }

    fn flush_pending(&mut self, chunk: &Bytes) {
        if let Some((start, end)) = self.pending.take() {
            self.frames.push_back(chunk.slice(start..end));
        }
    }

    pub(super) fn flush(&mut self, chunk: &Bytes) {
        self.flush_pending(chunk);
        if !self.owned.is_empty() {
            self.frames.push_back(self.owned.split().freeze());
        }
    }
}
