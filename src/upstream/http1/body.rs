//! A response body read straight off its connection: by length, chunk by chunk, or until the
//! server closes. The connection goes back to the pool only once the body's exact end has been
//! read and nothing else came after it; dropped before that, the connection is closed (which
//! is how Electric learns that the client went away).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::pool::Pool;
use super::wire::{Framing, MAX_HEAD};
use super::Http1Error;

/// The first read of a connection reserves this much; a read that fills its space doubles
/// the next one's, up to [`MAX_READ`]. A held long-poll reads nothing, so it holds none of it.
pub(super) const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;

/// The longest chunk-size line (size and extensions) read.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// A connection and what has been read from it and not yet handed on.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
    read_size: usize,
}

impl Connection {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            read_size: FIRST_READ,
        }
    }

    /// Reads what the socket has into `buf`: `Ok(0)` at the server's end of the stream. The
    /// buffer grows only once the socket is readable.
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        ready!(self.stream.poll_read_ready(cx))?;
        self.buf.reserve(self.read_size);
        let room = self.buf.capacity() - self.buf.len();
        // Tokio's own read rather than `try_read_buf`: a read shorter than its room clears
        // the socket's readiness, so the next read waits for the reactor instead of asking
        // the socket for nothing, and the pool can tell a quiet idle connection without a
        // system call. Readiness that was stale is cleared and `cx` registered.
        let read = ready!(pin!(self.stream.read_buf(&mut self.buf)).poll(cx))?;
        if read == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        Poll::Ready(Ok(read))
    }

    pub(super) async fn read(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }
}

/// The body of a response read by this client.
#[derive(Debug)]
pub(in crate::upstream) struct Http1Body {
    /// `None` once the body has ended or failed.
    connection: Option<Connection>,
    decoder: Decoder,
    /// Where the connection goes after the body's end, if it may carry another request.
    pool: Option<Arc<Pool>>,
}

impl Http1Body {
    pub(super) fn new(connection: Connection, framing: Framing, pool: Option<Arc<Pool>>) -> Self {
        let decoder = match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(length) => Decoder::Length(length),
            Framing::Chunked => Decoder::Chunked(Chunked::Size),
            Framing::UntilClose => Decoder::UntilClose,
        };
        let mut body = Self {
            connection: Some(connection),
            decoder,
            pool,
        };
        if body.decoder == Decoder::Done {
            body.finish();
        }
        body
    }

    /// The body's end: the connection goes back to the pool if it may carry another request
    /// and nothing came after this response; otherwise it is closed.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let (Some(connection), Some(pool)) = (self.connection.take(), self.pool.take()) {
            if connection.buf.is_empty() {
                pool.put(connection.stream);
            }
        }
    }

    fn fail(&mut self, error: Http1Error) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        self.connection = None;
        self.decoder = Decoder::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = Http1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let this = self.get_mut();
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut connection.buf) {
                Ok(Decoded::Data(data)) => {
                    // A held stream keeps no buffer between frames (the frame holds its bytes).
                    if connection.buf.is_empty() {
                        connection.buf = BytesMut::new();
                    }
                    // Released now, not on the next poll: a server that sees the body at its
                    // end (`is_end_stream`) may never poll it again.
                    if this.decoder == Decoder::Length(0) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => {}
                Err(error) => return this.fail(error),
            }
            match ready!(connection.poll_read(cx)) {
                Ok(0) if this.decoder == Decoder::UntilClose => {
                    this.connection = None;
                    this.decoder = Decoder::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Http1Error::Truncated),
                Ok(_) => {}
                Err(error) => return this.fail(Http1Error::Read(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder == Decoder::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Done => SizeHint::with_exact(0),
            Decoder::Length(length) => SizeHint::with_exact(length),
            Decoder::Chunked(_) | Decoder::UntilClose => SizeHint::default(),
        }
    }
}

/// Where the body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// Where a chunked body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// At a chunk-size line.
    Size,
    /// This many bytes of the chunk's data are still to come.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines (read and left out) up to an empty line; this many
    /// bytes of them read so far.
    Trailers(usize),
}

/// What one step of decoding found in the buffer.
#[derive(Debug)]
enum Decoded {
    Data(Bytes),
    End,
    /// Nothing more can be decoded until more is read.
    More,
}

impl Decoder {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Http1Error> {
        loop {
            *self = match *self {
                Self::Done => return Ok(Decoded::End),
                Self::Length(0) => {
                    *self = Self::Done;
                    return Ok(Decoded::End);
                }
                Self::Length(mut remaining) => {
                    let decoded = take(buf, &mut remaining);
                    *self = Self::Length(remaining);
                    return Ok(decoded);
                }
                Self::UntilClose if buf.is_empty() => return Ok(Decoded::More),
                Self::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
                Self::Chunked(Chunked::Size) => {
                    // `httparse` reads the size line; it would take an empty one as 0.
                    if buf.first().is_some_and(|byte| !byte.is_ascii_hexdigit()) {
                        return Err(Http1Error::Chunked("a chunk size that is not hex"));
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((line, size))) => {
                            let size_line = buf.get(..line).unwrap_or_default();
                            if line > MAX_CHUNK_LINE {
                                return Err(Http1Error::Chunked("a chunk-size line too long"));
                            }
                            // httparse lets a bare LF into an extension; hyper refuses it.
                            if memchr::memchr(b'\n', size_line) != Some(line - 1)
                                || !size_line.ends_with(b"\r\n")
                            {
                                return Err(Http1Error::Chunked("a bare LF in a chunk-size line"));
                            }
                            buf.advance(line);
                            Self::Chunked(if size == 0 {
                                Chunked::Trailers(0)
                            } else {
                                Chunked::Data(size)
                            })
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                            return Err(Http1Error::Chunked("a chunk-size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(Decoded::More),
                        Err(_) => return Err(Http1Error::Chunked("a malformed chunk size")),
                    }
                }
                Self::Chunked(Chunked::Data(0)) => Self::Chunked(Chunked::DataEnd),
                Self::Chunked(Chunked::Data(mut remaining)) => {
                    let decoded = take(buf, &mut remaining);
                    *self = Self::Chunked(Chunked::Data(remaining));
                    return Ok(decoded);
                }
                Self::Chunked(Chunked::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if buf.get(..2) != Some(&b"\r\n"[..]) {
                        return Err(Http1Error::Chunked("chunk data longer than its size"));
                    }
                    buf.advance(2);
                    Self::Chunked(Chunked::Size)
                }
                Self::Chunked(Chunked::Trailers(read)) => {
                    let Some(end) = memchr::memchr(b'\n', buf) else {
                        if read + buf.len() > MAX_HEAD {
                            return Err(Http1Error::Chunked("trailers too large"));
                        }
                        return Ok(Decoded::More);
                    };
                    if end == 0 || buf.get(end - 1) != Some(&b'\r') {
                        return Err(Http1Error::Chunked("a trailer line without CRLF"));
                    }
                    buf.advance(end + 1);
                    if end == 1 {
                        *self = Self::Done;
                        return Ok(Decoded::End);
                    }
                    if read + end + 1 > MAX_HEAD {
                        return Err(Http1Error::Chunked("trailers too large"));
                    }
                    Self::Chunked(Chunked::Trailers(read + end + 1))
                }
            };
        }
    }
}

/// Up to `remaining` bytes from `buf`, as one frame.
fn take(buf: &mut BytesMut, remaining: &mut u64) -> Decoded {
    if buf.is_empty() {
        return Decoded::More;
    }
    let length = usize::try_from(*remaining).map_or(buf.len(), |left| left.min(buf.len()));
    *remaining -= length as u64;
    Decoded::Data(buf.split_to(length).freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; the data, and whether the end was read.
    fn decode_in_steps(
        mut decoder: Decoder,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool, BytesMut), Http1Error> {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::End => return Ok((data, true, buf)),
                    Decoded::More => break,
                }
            }
        }
        Ok((data, false, buf))
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n1;ext=\"a b\"\r\n,\r\nA \r\n world [1]\r\n0\r\nx-sum: 1\r\n\r\n";

    #[test]
    fn chunked_bodies_decode_whatever_the_reads_cut() {
        for step in [1, 2, 3, 7, CHUNKED.len()] {
            let (data, ended, rest) =
                decode_in_steps(Decoder::Chunked(Chunked::Size), CHUNKED, step).unwrap();
            assert_eq!(data, b"hello, world [1]", "step {step}");
            assert!(ended, "step {step}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn bytes_after_the_end_stay_in_the_buffer() {
        let mut input = CHUNKED.to_vec();
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let (_, ended, rest) =
            decode_in_steps(Decoder::Chunked(Chunked::Size), &input, input.len()).unwrap();
        assert!(ended);
        assert_eq!(&rest[..], b"HTTP/1.1 200 OK\r\n");
        let (data, ended, rest) = decode_in_steps(Decoder::Length(3), b"abcdef", 6).unwrap();
        assert_eq!(
            (&data[..], ended, &rest[..]),
            (&b"abc"[..], true, &b"def"[..])
        );
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for input in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"5\r\nhello!\r\n",
            b"5\nhello\r\n",
            b"5\r\nhello\r\n0\r\nx-sum: 1\n\n",
            b"10000000000000000\r\n",
        ] {
            assert!(
                matches!(
                    decode_in_steps(Decoder::Chunked(Chunked::Size), input, input.len()),
                    Err(Http1Error::Chunked(_))
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long_extension = format!("5;{}", "e".repeat(MAX_CHUNK_LINE));
        assert!(decode_in_steps(
            Decoder::Chunked(Chunked::Size),
            long_extension.as_bytes(),
            1024
        )
        .is_err());
        let endless_trailers = "0\r\n".to_owned() + &"x: y\r\n".repeat(MAX_HEAD / 6 + 1);
        assert!(decode_in_steps(
            Decoder::Chunked(Chunked::Size),
            endless_trailers.as_bytes(),
            4096
        )
        .is_err());
    }

    #[test]
    fn a_length_is_read_exactly_and_until_close_reads_everything() {
        let (data, ended, _) = decode_in_steps(Decoder::Length(5), b"hello", 2).unwrap();
        assert_eq!((&data[..], ended), (&b"hello"[..], true));
        let (data, ended, _) = decode_in_steps(Decoder::Length(6), b"hello", 2).unwrap();
        assert_eq!((&data[..], ended), (&b"hello"[..], false));
        let (data, ended, _) = decode_in_steps(Decoder::UntilClose, b"hello", 2).unwrap();
        assert_eq!((&data[..], ended), (&b"hello"[..], false));
    }
}
