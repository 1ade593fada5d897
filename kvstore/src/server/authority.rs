//! etcdctl 3.4's `:authority` quirk, repaired before tonic sees it.
//!
//! HTTP/2 carries a request's host in the `:authority` pseudo-header, and an authority is
//! `host:port` — no scheme, no slashes. When etcdctl 3.4 dials a member by a URL it
//! learned from `MemberList` (`etcdctl endpoint status --cluster`), its gRPC library puts
//! the whole URL there: `:authority: http://127.0.0.1:2379`. etcd's Go server does not
//! mind; the `h2` crate under tonic is strict and resets the stream with `PROTOCOL_ERROR`,
//! and offers no switch to relax that.
//!
//! So the client listener wraps each connection in [`AuthorityFix`], which reads the
//! client's bytes frame by frame until the first request's header block:
//! - if its authority is well formed (every other client: our own, tonic's, etcdctl
//!   without `--cluster`), the bytes go on untouched and the wrapper becomes a plain pipe
//!   for the rest of the connection — no cost after the first request;
//! - if not, the wrapper stays in the path: it decodes every header block (HPACK, whose
//!   dynamic table makes each block depend on the ones before), drops the `scheme://`
//!   from `:authority`, and re-encodes the block as plain literals that do not touch the
//!   server's table. Everything else (settings, data, window updates) passes unchanged.
//!
//! Only the direction towards the server is rewritten; replies go back as they are.
//! Frame layout (RFC 9113 §4.1, §6.2, §6.10) and the literal encoding (RFC 7541 §6.2.2)
//! are the facts used here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest frame size a peer must accept; re-encoded blocks are split to fit it.
const MAX_FRAME: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the client's connection preface.
    Preface,
    /// Reading frames until the first header block decides.
    Deciding,
    /// Every header block is decoded and re-encoded.
    Rewriting,
    /// A plain pipe.
    Passthrough,
}

/// A header block still waiting for its CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as the client sent them, forwarded verbatim if nothing needs fixing.
    original: Vec<u8>,
}

/// A client connection whose request headers get a well-formed `:authority`.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the client and not yet looked at.
    raw: BytesMut,
    /// Bytes ready for the server.
    out: BytesMut,
    pending: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            pending: None,
            decoder: loona_hpack::Decoder::new(),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Looks at everything buffered in `raw`, moving what is ready into `out`.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match self.mode {
                Mode::Passthrough => {
                    let rest = self.raw.split();
                    self.out.extend_from_slice(&rest);
                    return Ok(());
                }
                Mode::Preface => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] {
                        // Not HTTP/2 with prior knowledge: not ours to judge.
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    if n < PREFACE.len() {
                        return Ok(());
                    }
                    let preface = self.raw.split_to(PREFACE.len());
                    self.out.extend_from_slice(&preface);
                    self.mode = Mode::Deciding;
                }
                Mode::Deciding | Mode::Rewriting => {
                    if self.raw.len() < FRAME_HEADER {
                        return Ok(());
                    }
                    let len = u32::from_be_bytes([0, self.raw[0], self.raw[1], self.raw[2]]);
                    let len = len as usize;
                    if self.raw.len() < FRAME_HEADER + len {
                        return Ok(());
                    }
                    let frame = self.raw.split_to(FRAME_HEADER + len);
                    self.frame(&frame)?;
                }
            }
        }
    }

    /// One whole frame from the client.
    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        match kind {
            HEADERS => {
                let (priority, fragment) = headers_payload(flags, payload)?;
                let block = PendingBlock {
                    stream_id,
                    flags,
                    priority,
                    fragment: fragment.to_vec(),
                    original: frame.to_vec(),
                };
                if flags & END_HEADERS != 0 {
                    self.block(block)
                } else {
                    self.pending = Some(block);
                    Ok(())
                }
            }
            CONTINUATION => {
                let Some(mut block) = self.pending.take() else {
                    return Err(malformed("CONTINUATION without HEADERS"));
                };
                block.fragment.extend_from_slice(payload);
                block.original.extend_from_slice(frame);
                if flags & END_HEADERS != 0 {
                    self.block(block)
                } else {
                    self.pending = Some(block);
                    Ok(())
                }
            }
            _ => {
                self.out.extend_from_slice(frame);
                Ok(())
            }
        }
    }

    /// A complete header block: forward it as is, or repaired.
    fn block(&mut self, block: PendingBlock) -> io::Result<()> {
        let mut headers = self
            .decoder
            .decode(&block.fragment)
            .map_err(|e| malformed(&format!("header block: {e}")))?;
        let mut fixed = false;
        for (name, value) in headers.iter_mut() {
            if name == b":authority" {
                if let Some(host) = strip_scheme(value) {
                    *value = host;
                    fixed = true;
                }
            }
        }
        if self.mode == Mode::Deciding && !fixed {
            // A well-formed client: its bytes (and its HPACK table) go through untouched.
            self.out.extend_from_slice(&block.original);
            self.mode = Mode::Passthrough;
            return Ok(());
        }
        self.mode = Mode::Rewriting;
        let encoded = encode_literals(&headers);
        write_header_frames(&mut self.out, &block, &encoded);
        Ok(())
    }
}

/// Splits a HEADERS payload into its priority fields and header block fragment.
fn headers_payload(flags: u8, payload: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        let Some((&n, rest)) = p.split_first() else {
            return Err(malformed("padded HEADERS without a pad length"));
        };
        pad = n as usize;
        p = rest;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        if p.len() < 5 {
            return Err(malformed("HEADERS too short for its priority"));
        }
        priority = Some([p[0], p[1], p[2], p[3], p[4]]);
        p = &p[5..];
    }
    if pad > p.len() {
        return Err(malformed("HEADERS padding longer than the frame"));
    }
    Ok((priority, &p[..p.len() - pad]))
}

/// `http://host:port` → `host:port`; `None` when the value is already an authority.
fn strip_scheme(value: &[u8]) -> Option<Vec<u8>> {
    let at = value.windows(3).position(|w| w == b"://")?;
    let host = &value[at + 3..];
    let host = host.split(|&b| b == b'/').next().unwrap_or_default();
    Some(host.to_vec())
}

/// Each header as a "literal header field without indexing, new name" (RFC 7541
/// §6.2.2) with raw (not Huffman) strings: the server's dynamic table stays empty.
fn encode_literals(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0x00);
        for s in [name, value] {
            // A 7-bit prefix length with the Huffman bit clear.
            out.extend(loona_hpack::encoder::encode_integer(s.len(), 7));
            out.extend_from_slice(s);
        }
    }
    out
}

/// A HEADERS frame (and CONTINUATIONs if needed) carrying `encoded` for `block`'s stream.
fn write_header_frames(out: &mut BytesMut, block: &PendingBlock, encoded: &[u8]) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first = encoded.len().min(MAX_FRAME - priority_len);
    let (head, mut rest) = encoded.split_at(first);
    let mut flags = block.flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(
        out,
        priority_len + head.len(),
        HEADERS,
        flags,
        block.stream_id,
    );
    if let Some(p) = block.priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let flags = if n == rest.len() { END_HEADERS } else { 0 };
        frame_header(out, n, CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id);
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("HTTP/2 from client: {what}"),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Passthrough && this.raw.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of stream: whatever is half a frame goes as it is.
                    let rest = this.raw.split();
                    if rest.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    this.out.extend_from_slice(&rest);
                    this.mode = Mode::Passthrough;
                }
                Poll::Ready(Ok(())) => {
                    this.raw.extend_from_slice(read.filled());
                    this.process()?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFix<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The frames a client would send: preface, an empty SETTINGS, one request's headers
    /// (HPACK-encoded by a real encoder, with its dynamic table), then a DATA frame.
    fn client_bytes(encoder: &mut loona_hpack::Encoder, authority: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(PREFACE);
        frame_header(&mut out, 0, 0x4, 0, 0);
        out.extend_from_slice(&request(encoder, 1, authority));
        frame_header(&mut out, 3, 0x0, END_STREAM, 1);
        out.extend_from_slice(b"abc");
        out.to_vec()
    }

    fn request(encoder: &mut loona_hpack::Encoder, stream: u32, authority: &str) -> Vec<u8> {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
        ];
        let block = encoder.encode(headers);
        let mut out = BytesMut::new();
        frame_header(&mut out, block.len(), HEADERS, END_HEADERS, stream);
        out.extend_from_slice(&block);
        out.to_vec()
    }

    /// Reads everything the server side would see, feeding the input in small pieces.
    async fn through_fix(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in input.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
        });
        let mut fixed = AuthorityFix::new(server);
        let mut seen = Vec::new();
        fixed.read_to_end(&mut seen).await.unwrap();
        writer.await.unwrap();
        seen
    }

    /// Decodes every header block in `bytes` (after the preface) with a fresh decoder.
    fn header_blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut p = &bytes[PREFACE.len()..];
        while p.len() >= FRAME_HEADER {
            let len = u32::from_be_bytes([0, p[0], p[1], p[2]]) as usize;
            if p[3] == HEADERS {
                let (_, fragment) = headers_payload(p[4], &p[FRAME_HEADER..FRAME_HEADER + len])
                    .expect("a valid HEADERS frame");
                blocks.push(decoder.decode(fragment).expect("a valid header block"));
            }
            p = &p[FRAME_HEADER + len..];
        }
        blocks
    }

    fn authority(block: &[(Vec<u8>, Vec<u8>)]) -> String {
        let (_, v) = block
            .iter()
            .find(|(n, _)| n == b":authority")
            .expect(":authority");
        String::from_utf8(v.clone()).unwrap()
    }

    #[tokio::test]
    async fn a_well_formed_connection_passes_byte_for_byte() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = client_bytes(&mut encoder, "127.0.0.1:2379");
        input.extend(request(&mut encoder, 3, "127.0.0.1:2379"));
        assert_eq!(through_fix(input.clone()).await, input);
    }

    #[tokio::test]
    async fn a_url_authority_becomes_host_and_port_in_every_request() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = client_bytes(&mut encoder, "http://127.0.0.1:2379");
        // The second request's headers lean on the encoder's dynamic table.
        input.extend(request(&mut encoder, 3, "http://127.0.0.1:2379"));
        let seen = through_fix(input).await;
        let blocks = header_blocks(&seen);
        assert_eq!(blocks.len(), 2);
        for block in &blocks {
            assert_eq!(authority(block), "127.0.0.1:2379");
            assert!(block
                .iter()
                .any(|(n, v)| n == b":path" && v.ends_with(b"/Status")));
        }
        // The DATA frame after the first request is still there, unchanged.
        assert!(seen.windows(3).any(|w| w == b"abc"));
    }

    #[test]
    fn a_continuation_without_headers_is_refused() {
        let mut fix = AuthorityFix::new(());
        fix.mode = Mode::Deciding;
        let mut frame = BytesMut::new();
        frame_header(&mut frame, 0, CONTINUATION, END_HEADERS, 1);
        assert!(fix.frame(&frame).is_err());
    }

    #[test]
    fn padding_and_priority_are_stripped_from_the_block() {
        let payload = [2u8, 0, 0, 0, 1, 16, 0xAA, 0xBB, 0, 0];
        let (priority, fragment) = headers_payload(PADDED | PRIORITY, &payload).unwrap();
        assert_eq!(priority, Some([0, 0, 0, 1, 16]));
        assert_eq!(fragment, &[0xAA, 0xBB]);
        assert!(headers_payload(PADDED, &[9, 1]).is_err());
    }
}
