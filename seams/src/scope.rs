//! The sockets of one process, closed all at once when it dies.
//!
//! When `docker stop` kills a container, the kernel closes every socket the process
//! had: its listeners stop answering and free their ports, and the other end of each
//! connection sees it close. Nothing in the process gets a say, because the process is
//! gone. A simulated process is only a set of tasks in a runtime shared with everything
//! else, and many of its connections belong to tasks it never sees: hyper and tonic
//! spawn one per connection and keep no handle a component could use to close them.
//!
//! [`Scope`] gives a process that kernel's view. It wraps the network the process is
//! handed, and keeps, for every listener and connection made through it, the real
//! one inside a slot it can empty. [`Scope::kill`] empties them all at once: each
//! listener and stream is dropped there and then (a TCP socket is closed, an
//! in-memory pipe ends at its peer), and every task waiting to read, write or accept
//! is woken to find `ConnectionReset` (or `ConnectionAborted` for an accept or a
//! dial), so the task ends as it would when its socket failed.
//!
//! A listener that has reported the kill once does not report it again: its next
//! accept waits forever. Accept loops retry after an error, and one that got an
//! error at once, every time, would spin and keep a one-thread simulation's clock
//! from ever moving on.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{ready, Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::{Accepted, BoxFuture, BoxStream, Listener, Network, SharedNetwork};

/// Why a killed scope's sockets fail.
const EXITED: &str = "the process has exited";

/// One process's network: everything made through it closes on [`Scope::kill`].
pub struct Scope {
    inner: SharedNetwork,
    switch: Arc<Switch>,
}

impl Scope {
    /// The sockets of a new process, on `inner`.
    pub fn new(inner: SharedNetwork) -> Arc<Scope> {
        Arc::new(Scope {
            inner,
            switch: Switch::new(EXITED),
        })
    }

    /// The process dies: every listener and connection made through the scope is
    /// closed now, and every task waiting on one is woken to an error. Listening and
    /// dialing through it fail from now on.
    pub fn kill(&self) {
        self.switch.kill();
    }

    /// Whether [`kill`](Scope::kill) was called.
    pub fn killed(&self) -> bool {
        lock(&self.switch.state).killed
    }
}

impl Network for Scope {
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        if self.killed() {
            return Err(aborted(EXITED));
        }
        let inner = self.inner.listen(addr)?;
        let local = inner.local_addr();
        match self.switch.enroll(Accept::Idle(inner)) {
            Ok(slot) => Ok(Box::new(ScopedListener {
                slot,
                local,
                reported: false,
            })),
            Err(inner) => {
                drop(inner);
                Err(aborted(EXITED))
            }
        }
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        if self.killed() {
            return Box::pin(std::future::ready(Err(aborted(EXITED))));
        }
        match self.switch.enroll(self.inner.connect(addr)) {
            Ok(slot) => Box::pin(ScopedDial { slot }),
            Err(dial) => {
                drop(dial);
                Box::pin(std::future::ready(Err(aborted(EXITED))))
            }
        }
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("killed", &self.killed())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn aborted(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, reason.to_string())
}

fn reset(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, reason.to_string())
}

/// What a kill closes: the slots of every live socket, and whether it has happened.
/// (The in-memory network keeps one per host for its bridged TCP connections.)
pub(crate) struct Switch {
    reason: &'static str,
    state: Mutex<SwitchState>,
}

struct SwitchState {
    killed: bool,
    next: u64,
    /// By enrolment order, so a kill wakes tasks in the same order every run.
    victims: BTreeMap<u64, Weak<dyn Victim>>,
}

/// A slot a kill can empty: it hands back what was inside, to be dropped, and the
/// wakers of the tasks waiting on it.
trait Victim: Send + Sync {
    fn empty(&self, wakers: &mut Vec<Waker>) -> Option<Box<dyn Send>>;
}

/// A socket (or a dial) that a kill can take away. `wakers[READ]` and `wakers[WRITE]`
/// are the tasks waiting on it, one per direction (a stream split in two is polled
/// from two tasks).
struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

struct SlotState<T> {
    value: Option<T>,
    wakers: [Option<Waker>; 2],
}

const READ: usize = 0;
const WRITE: usize = 1;

impl<T: Send + 'static> Victim for Slot<T> {
    fn empty(&self, wakers: &mut Vec<Waker>) -> Option<Box<dyn Send>> {
        let mut state = lock(&self.state);
        wakers.extend(state.wakers.iter_mut().filter_map(Option::take));
        let value = state.value.take()?;
        Some(Box::new(value))
    }
}

impl<T> Slot<T> {
    /// Polls what is in the slot with `poll`, remembering the task if it has to wait;
    /// `None` if a kill emptied the slot. The lock is held across the poll, so a kill
    /// comes either before it (`None`) or after it (and wakes the task).
    fn poll<R>(
        &self,
        which: usize,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut T, &mut Context<'_>) -> Poll<R>,
    ) -> Option<Poll<R>> {
        let mut state = lock(&self.state);
        let SlotState { value, wakers } = &mut *state;
        let polled = poll(value.as_mut()?, cx);
        if polled.is_pending()
            && !wakers[which]
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            wakers[which] = Some(cx.waker().clone());
        }
        Some(polled)
    }
}

/// A slot and its place in the switch, which it leaves when dropped.
struct Enrolled<T> {
    slot: Arc<Slot<T>>,
    id: u64,
    switch: Arc<Switch>,
}

impl<T> Drop for Enrolled<T> {
    fn drop(&mut self) {
        lock(&self.switch.state).victims.remove(&self.id);
    }
}

impl Switch {
    /// A switch whose sockets fail with `reason` once it is killed.
    pub(crate) fn new(reason: &'static str) -> Arc<Switch> {
        Arc::new(Switch {
            reason,
            state: Mutex::new(SwitchState {
                killed: false,
                next: 0,
                victims: BTreeMap::new(),
            }),
        })
    }

    /// Puts `value` in a slot the switch can empty; gives it back if it was killed.
    fn enroll<T: Send + 'static>(self: &Arc<Self>, value: T) -> Result<Enrolled<T>, T> {
        let mut state = lock(&self.state);
        if state.killed {
            return Err(value);
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                value: Some(value),
                wakers: [None, None],
            }),
        });
        state.next += 1;
        let id = state.next;
        let weak: Weak<Slot<T>> = Arc::downgrade(&slot);
        state.victims.insert(id, weak);
        Ok(Enrolled {
            slot,
            id,
            switch: self.clone(),
        })
    }

    /// `stream`, closed when the switch is killed.
    pub(crate) fn guard_stream(self: &Arc<Self>, stream: BoxStream) -> io::Result<BoxStream> {
        match self.enroll(stream) {
            Ok(slot) => Ok(Box::new(ScopedStream { slot })),
            Err(stream) => {
                drop(stream);
                Err(reset(self.reason))
            }
        }
    }

    /// Closes every socket in the switch, then wakes their tasks, in enrolment order.
    pub(crate) fn kill(&self) {
        let victims = {
            let mut state = lock(&self.state);
            state.killed = true;
            std::mem::take(&mut state.victims)
        };
        let mut wakers = Vec::new();
        let mut closed = Vec::new();
        for victim in victims.values().filter_map(Weak::upgrade) {
            closed.extend(victim.empty(&mut wakers));
        }
        drop(closed);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A stream in a scope.
struct ScopedStream {
    slot: Enrolled<BoxStream>,
}

impl ScopedStream {
    fn poll<R>(
        &self,
        which: usize,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut BoxStream>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let polled = self
            .slot
            .slot
            .poll(which, cx, |s, cx| poll(Pin::new(s), cx));
        polled.unwrap_or_else(|| Poll::Ready(Err(reset(self.slot.switch.reason))))
    }
}

impl AsyncRead for ScopedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll(READ, cx, |s, cx| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ScopedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll(WRITE, cx, |s, cx| s.poll_write(cx, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll(WRITE, cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        let state = lock(&self.slot.slot.state);
        state.value.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll(WRITE, cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll(WRITE, cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// A dial in a scope: a kill drops the inner dial and wakes the task.
struct ScopedDial {
    slot: Enrolled<BoxFuture<'static, io::Result<BoxStream>>>,
}

impl Future for ScopedDial {
    type Output = io::Result<BoxStream>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let switch = &self.slot.switch;
        match self
            .slot
            .slot
            .poll(READ, cx, |dial, cx| dial.as_mut().poll(cx))
        {
            None => Poll::Ready(Err(aborted(switch.reason))),
            Some(Poll::Pending) => Poll::Pending,
            Some(Poll::Ready(dialed)) => Poll::Ready(switch.guard_stream(dialed?)),
        }
    }
}

/// A listener's state: waiting for an accept, or accepting. The accept owns the
/// listener while it runs, so that a kill can drop both together.
enum Accept {
    Idle(Box<dyn Listener>),
    Busy(BoxFuture<'static, (Box<dyn Listener>, io::Result<Accepted>)>),
}

impl Accept {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted>> {
        loop {
            match self {
                Accept::Idle(_) => {
                    let placeholder = Accept::Busy(Box::pin(std::future::pending()));
                    if let Accept::Idle(mut listener) = std::mem::replace(self, placeholder) {
                        *self = Accept::Busy(Box::pin(async move {
                            let accepted = listener.accept().await;
                            (listener, accepted)
                        }));
                    }
                }
                Accept::Busy(accepting) => {
                    let (listener, accepted) = ready!(accepting.as_mut().poll(cx));
                    *self = Accept::Idle(listener);
                    return Poll::Ready(accepted);
                }
            }
        }
    }
}

/// A listener in a scope. An accept that is dropped before it completes (as in a
/// `select!`) keeps going inside the slot, and the next accept picks it up, so no
/// connection is lost.
struct ScopedListener {
    slot: Enrolled<Accept>,
    local: String,
    /// A kill closed it and an accept has said so.
    reported: bool,
}

impl ScopedListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted>> {
        if self.reported {
            return Poll::Pending;
        }
        match self.slot.slot.poll(READ, cx, Accept::poll) {
            Some(Poll::Ready(Ok(accepted))) => {
                let stream = self.slot.switch.guard_stream(accepted.stream)?;
                Poll::Ready(Ok(Accepted {
                    stream,
                    peer: accepted.peer,
                }))
            }
            Some(polled) => polled,
            None => {
                self.reported = true;
                Poll::Ready(Err(aborted(self.slot.switch.reason)))
            }
        }
    }
}

impl Listener for ScopedListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(std::future::poll_fn(move |cx| self.poll_accept(cx)))
    }

    fn local_addr(&self) -> String {
        self.local.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryNetwork;
    use crate::net::Tcp;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `fut`'s output, or a failure (not a hang) if nothing ever wakes it.
    async fn soon<F: Future>(fut: F) -> F::Output {
        let waited = tokio::time::timeout(Duration::from_secs(60), fut).await;
        waited.expect("never woken")
    }

    /// Whether `fut` is still waiting after a second (at once, on a paused clock).
    async fn still_pending<F: Future>(fut: F) -> bool {
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .is_err()
    }

    /// A connection between a dialer and a listener.
    async fn pair(
        dialer: &dyn Network,
        listener: &mut Box<dyn Listener>,
    ) -> (BoxStream, BoxStream) {
        let addr = listener.local_addr();
        let (dialed, accepted) = tokio::join!(dialer.connect(&addr), listener.accept());
        (dialed.unwrap(), accepted.unwrap().stream)
    }

    fn kind<T>(result: io::Result<T>) -> Option<io::ErrorKind> {
        result.err().map(|e| e.kind())
    }

    /// A killed server: its accepted connection fails on its side and ends at the
    /// client's, its listener's address is free, a task waiting to read is woken.
    async fn kill_closes_a_servers_sockets(net: SharedNetwork, addr: &str) {
        let server = Scope::new(net.clone());
        let mut listener = server.listen(addr).unwrap();
        let addr = listener.local_addr();
        let (mut client, accepted) = pair(&*net, &mut listener).await;
        let (mut accepted, _idle) = tokio::io::split(accepted);
        let (_dialed, waiting) = pair(&*net, &mut listener).await;
        let reader = tokio::spawn(async move {
            let mut buf = [0; 1];
            let mut waiting = waiting;
            waiting.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());

        server.kill();
        assert!(server.killed());
        assert_eq!(
            kind(soon(reader).await.unwrap()),
            Some(io::ErrorKind::ConnectionReset)
        );
        let mut buf = [0; 1];
        assert_eq!(
            kind(accepted.read(&mut buf).await),
            Some(io::ErrorKind::ConnectionReset)
        );
        let n = soon(client.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "the client sees the connection end");
        assert_eq!(
            kind(listener.accept().await),
            Some(io::ErrorKind::ConnectionAborted)
        );
        assert_eq!(
            kind(net.connect(&addr).await),
            Some(io::ErrorKind::ConnectionRefused)
        );
        drop(net.listen(&addr).expect("the address is free"));
        assert_eq!(
            kind(server.listen(&addr)),
            Some(io::ErrorKind::ConnectionAborted)
        );
        assert_eq!(
            kind(server.connect(&addr).await),
            Some(io::ErrorKind::ConnectionAborted)
        );
    }

    /// A killed client: its dialed connection fails on its side and ends at the server.
    async fn kill_closes_a_clients_sockets(net: SharedNetwork, addr: &str) {
        let mut listener = net.listen(addr).unwrap();
        let client = Scope::new(net.clone());
        let (dialed, mut server) = pair(&*client, &mut listener).await;
        let (mut read, mut write) = tokio::io::split(dialed);
        let reader = tokio::spawn(async move {
            let mut buf = [0; 1];
            read.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        client.kill();
        assert_eq!(
            kind(soon(reader).await.unwrap()),
            Some(io::ErrorKind::ConnectionReset)
        );
        assert_eq!(
            kind(write.write_all(b"x").await),
            Some(io::ErrorKind::ConnectionReset)
        );
        assert_eq!(
            kind(write.flush().await),
            Some(io::ErrorKind::ConnectionReset)
        );
        let mut buf = [0; 1];
        assert_eq!(soon(server.read(&mut buf)).await.unwrap_or(0), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn kill_closes_a_servers_in_memory_sockets() {
        kill_closes_a_servers_sockets(MemoryNetwork::new(), "10.0.0.11:6443").await;
    }

    #[tokio::test(start_paused = true)]
    async fn kill_closes_a_clients_in_memory_sockets() {
        kill_closes_a_clients_sockets(MemoryNetwork::new(), "10.0.0.11:6443").await;
    }

    #[tokio::test]
    async fn kill_closes_a_servers_tcp_sockets() {
        kill_closes_a_servers_sockets(Tcp::shared(), "127.0.0.1:0").await;
    }

    #[tokio::test]
    async fn kill_closes_a_clients_tcp_sockets() {
        kill_closes_a_clients_sockets(Tcp::shared(), "127.0.0.1:0").await;
    }

    #[tokio::test(start_paused = true)]
    async fn kill_wakes_a_waiting_accept_and_a_waiting_dial() {
        let net = MemoryNetwork::new();
        let scope = Scope::new(net.host("10.0.0.12"));
        let mut listener = scope.listen("10.0.0.12:10250").unwrap();
        let accepting = tokio::spawn(async move {
            let first = listener.accept().await.map(|_| ());
            assert!(
                still_pending(listener.accept()).await,
                "reported once, then quiet"
            );
            first
        });
        let _far = net.listen("10.0.0.11:6443").unwrap();
        net.partition("10.0.0.11", "10.0.0.12");
        let dialing = tokio::spawn(scope.connect("10.0.0.11:6443"));
        tokio::task::yield_now().await;
        assert!(!accepting.is_finished() && !dialing.is_finished());

        scope.kill();
        assert_eq!(
            kind(soon(accepting).await.unwrap()),
            Some(io::ErrorKind::ConnectionAborted)
        );
        assert_eq!(
            kind(soon(dialing).await.unwrap()),
            Some(io::ErrorKind::ConnectionAborted)
        );
        assert!(net.listen("10.0.0.12:10250").is_ok(), "the address is free");
    }

    /// An accept given up halfway (as a `select!` does) loses no connection.
    #[tokio::test(start_paused = true)]
    async fn an_abandoned_accept_keeps_its_connection() {
        let net = MemoryNetwork::new();
        let scope = Scope::new(net.clone());
        let mut listener = scope.listen("10.0.0.11:6443").unwrap();
        assert!(still_pending(listener.accept()).await);
        let mut client = net.connect("10.0.0.11:6443").await.unwrap();
        let mut server = soon(listener.accept()).await.unwrap().stream;
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_sockets_leave_the_scope() {
        let net = MemoryNetwork::new();
        let scope = Scope::new(net.clone());
        let mut listener = scope.listen("10.0.0.11:6443").unwrap();
        let (a, b) = pair(&*scope, &mut listener).await;
        let enrolled = lock(&scope.switch.state).victims.len();
        assert_eq!(
            enrolled, 3,
            "the listener and both ends (the finished dial left)"
        );
        drop((a, b, listener));
        assert!(lock(&scope.switch.state).victims.is_empty());
    }
}
