//! The two buffers of one in-memory connection, and its ends.
//!
//! Each direction of a connection is a buffer of at most [`WINDOW`] bytes. A write
//! copies into it (as much as fits; a full buffer makes the writer wait), a read copies
//! out of it and wakes a writer that was waiting for room. Closing an end marks its
//! direction closed, so the peer reads what is left and then EOF. A cut link is
//! checked at each read: the bytes stay in the buffer until the link is repaired.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{error, is_blocked, lock, park, reset_error, wake, State, WINDOW};

/// One connection. Side 0 dialed, side 1 was accepted; `dirs[d]` carries bytes from
/// `hosts[d]` to `hosts[1 - d]`, written by side `d` and read by the other.
pub(super) struct Conn {
    pub(super) hosts: [String; 2],
    pub(super) dirs: [Dir; 2],
    pub(super) reset: bool,
    pub(super) halves: u8,
}

#[derive(Default)]
pub(super) struct Dir {
    pub(super) buf: VecDeque<u8>,
    /// The writer shut down or went away: once `buf` is read, the reader sees EOF.
    pub(super) closed: bool,
    pub(super) reader_gone: bool,
    /// The reader is waiting because the link is cut (wake it on repair).
    pub(super) held: bool,
    pub(super) reader: Option<Waker>,
    pub(super) writer: Option<Waker>,
}

/// One end of an in-memory connection.
pub(super) struct MemoryStream {
    pub(super) shared: Arc<Mutex<State>>,
    pub(super) id: u64,
    /// 0: the end that dialed; 1: the end that was accepted.
    pub(super) side: usize,
}

impl AsyncRead for MemoryStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared);
        let State { conns, blocked, .. } = &mut *state;
        let Some(conn) = conns.get_mut(&self.id).filter(|c| !c.reset) else {
            return Poll::Ready(Err(reset_error()));
        };
        let d = 1 - self.side;
        let held = is_blocked(blocked, &conn.hosts[d], &conn.hosts[1 - d]);
        let dir = &mut conn.dirs[d];
        if held {
            dir.held = true;
            park(&mut dir.reader, cx);
            return Poll::Pending;
        }
        if dir.buf.is_empty() {
            if dir.closed {
                return Poll::Ready(Ok(())); // EOF
            }
            park(&mut dir.reader, cx);
            return Poll::Pending;
        }
        let n = dir.buf.len().min(buf.remaining());
        let (front, back) = dir.buf.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..n - from_front]);
        dir.buf.drain(..n);
        let writer = if n > 0 { dir.writer.take() } else { None };
        drop(state);
        wake(writer.into_iter().collect());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemoryStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.shared);
        let State { conns, blocked, .. } = &mut *state;
        let Some(conn) = conns.get_mut(&self.id).filter(|c| !c.reset) else {
            return Poll::Ready(Err(reset_error()));
        };
        let s = self.side;
        let held = is_blocked(blocked, &conn.hosts[s], &conn.hosts[1 - s]);
        let dir = &mut conn.dirs[s];
        if dir.closed || dir.reader_gone {
            let msg = if dir.closed {
                "write after shutdown"
            } else {
                "the peer closed the connection"
            };
            return Poll::Ready(Err(error(io::ErrorKind::BrokenPipe, msg.into())));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = WINDOW.saturating_sub(dir.buf.len());
        if room == 0 {
            park(&mut dir.writer, cx);
            return Poll::Pending;
        }
        let n = room.min(data.len());
        dir.buf.extend(&data[..n]);
        // Across a cut link the reader is not woken now, but when the link is
        // repaired: mark the bytes as held, so the repair knows to wake it (a reader
        // parked before the cut would otherwise sleep through the repair).
        dir.held |= held;
        let reader = if held { None } else { dir.reader.take() };
        drop(state);
        wake(reader.into_iter().collect());
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let state = lock(&self.shared);
        match state.conns.get(&self.id).filter(|c| !c.reset) {
            Some(_) => Poll::Ready(Ok(())),
            None => Poll::Ready(Err(reset_error())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared);
        let Some(conn) = state.conns.get_mut(&self.id).filter(|c| !c.reset) else {
            return Poll::Ready(Err(reset_error()));
        };
        let dir = &mut conn.dirs[self.side];
        dir.closed = true;
        let reader = dir.reader.take();
        drop(state);
        wake(reader.into_iter().collect());
        Poll::Ready(Ok(()))
    }
}

impl Drop for MemoryStream {
    /// Closes this end: the peer reads what was sent, then EOF, and its writes fail.
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        let Some(conn) = state.conns.get_mut(&self.id) else {
            return;
        };
        let mut wakers = Vec::new();
        let (mine, theirs) = (self.side, 1 - self.side);
        conn.dirs[mine].closed = true;
        wakers.extend(conn.dirs[mine].reader.take());
        conn.dirs[theirs].reader_gone = true;
        conn.dirs[theirs].buf = VecDeque::new();
        wakers.extend(conn.dirs[theirs].writer.take());
        conn.halves -= 1;
        if conn.halves == 0 {
            state.conns.remove(&self.id);
        }
        drop(state);
        wake(wakers);
    }
}
