//! A network made of memory, for a cluster that runs on one thread.
//!
//! [`MemoryNetwork`] is a [`Network`] with no sockets under it. A listener is a queue
//! in a table keyed by its address (`127.0.0.11:2380`); a connection is two byte
//! buffers, one per direction, each holding at most 64 KiB, so a writer that gets
//! ahead of its reader waits for it, as over TCP. Every table is ordered (`BTreeMap`)
//! and every port is counted out in order, so a simulation that does the same things
//! gets the same connections, the same ports and the same wakeups, run after run.
//!
//! Because the network holds every byte in flight, it can also misbehave on purpose:
//!
//! - [`partition`](MemoryNetwork::partition) cuts two hosts apart. Nothing is lost:
//!   bytes sent across the cut wait in their buffer, a dial across it waits for its
//!   SYN to arrive, and [`repair`](MemoryNetwork::repair) lets it all through, as a
//!   real network comes back. (The check is made when a byte is read, so bytes sent
//!   just before the cut wait too.) A one-way cut lets the other direction flow.
//! - [`crash`](MemoryNetwork::crash) is a machine losing power: every connection it
//!   had is reset at both ends and its listeners close.
//!
//! A dial has to say where it comes from for partitions to apply, so each simulated
//! node gets [`MemoryNetwork::host`], the network as seen from its address. The
//! network used directly dials from nowhere in particular and is never cut off.
//!
//! [`bridge_tcp`](MemoryNetwork::bridge_tcp) opens the simulation to the machine's
//! own tools: from then on every listener also accepts real TCP connections on its
//! address (loopback addresses such as `127.0.0.11:6443`), so `curl` or `kubectl` on
//! the laptop reach an apiserver that otherwise lives in memory.
//!
//! The buffers and the two ends of a connection are in `memory/pipe.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::net::{Accepted, BoxFuture, BoxStream, Listener, Network};
use crate::scope::Switch;

mod pipe;
use pipe::{Conn, MemoryStream};

/// How many bytes one direction of a connection holds before its writer waits.
pub const WINDOW: usize = 64 * 1024;
/// Where ports for listeners asked to listen on port 0 start, per host.
const FIRST_LISTEN_PORT: u16 = 40000;
/// Where the ports connections are dialed from start, per host.
const FIRST_EPHEMERAL_PORT: u16 = 50000;
/// How the anonymous host (the network used directly) appears as a peer.
const ANONYMOUS: &str = "0.0.0.0";

/// The in-memory network: every listener, connection and partition.
pub struct MemoryNetwork {
    shared: Arc<Mutex<State>>,
}

/// The network as seen from one host: dials from it are subject to its partitions.
pub struct HostNetwork {
    net: Arc<MemoryNetwork>,
    ip: String,
}

#[derive(Default)]
struct State {
    /// Live listeners by the address they answer to.
    listeners: BTreeMap<String, Listening>,
    /// The next port 0 gives out, per host.
    next_port: BTreeMap<String, u16>,
    /// The next port a connection is dialed from, per host.
    next_ephemeral: BTreeMap<String, u16>,
    /// Cut links: from host → hosts its bytes do not reach.
    blocked: BTreeMap<String, BTreeSet<String>>,
    conns: BTreeMap<u64, Conn>,
    /// Dials waiting for a cut link to be repaired.
    dials: BTreeMap<u64, HeldDial>,
    next_id: u64,
    /// Set by `bridge_tcp`: the runtime bridged listeners' sockets register with.
    bridge: Option<tokio::runtime::Handle>,
    /// The bridged TCP connections of each host, to be cut when it crashes.
    bridged: BTreeMap<String, Arc<Switch>>,
}

struct Listening {
    id: u64,
    host: String,
    queue: VecDeque<Queued>,
    waker: Option<Waker>,
    tcp: Option<tokio::net::TcpListener>,
}

/// A connection made but not yet accepted.
struct Queued {
    stream: MemoryStream,
    peer: String,
}

struct HeldDial {
    from: String,
    to: String,
    waker: Waker,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A free port on `host`, counting up from 40000.
    fn free_port(&mut self, host: &str) -> io::Result<u16> {
        let next = self
            .next_port
            .entry(host.to_string())
            .or_insert(FIRST_LISTEN_PORT);
        for _ in FIRST_LISTEN_PORT..=u16::MAX {
            let port = *next;
            *next = port.checked_add(1).unwrap_or(FIRST_LISTEN_PORT);
            if !self.listeners.contains_key(&format!("{host}:{port}")) {
                return Ok(port);
            }
        }
        Err(error(
            io::ErrorKind::AddrInUse,
            format!("{host}: no free port"),
        ))
    }

    /// The port `host`'s next connection is dialed from, counting up from 50000.
    fn ephemeral_port(&mut self, host: &str) -> u16 {
        let next = self
            .next_ephemeral
            .entry(host.to_string())
            .or_insert(FIRST_EPHEMERAL_PORT);
        let port = *next;
        *next = port.checked_add(1).unwrap_or(FIRST_EPHEMERAL_PORT);
        port
    }

    fn reset(&mut self, id: u64, wakers: &mut Vec<Waker>) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.reset = true;
            for dir in &mut conn.dirs {
                wakers.extend(dir.reader.take());
                wakers.extend(dir.writer.take());
            }
        }
    }

    /// After a repair: wakes the readers and dials that were waiting on a link that
    /// is no longer cut.
    fn release(&mut self, wakers: &mut Vec<Waker>) {
        let State {
            conns,
            blocked,
            dials,
            ..
        } = self;
        for conn in conns.values_mut() {
            for d in 0..2 {
                let dir = &mut conn.dirs[d];
                if dir.held && !is_blocked(blocked, &conn.hosts[d], &conn.hosts[1 - d]) {
                    dir.held = false;
                    wakers.extend(dir.reader.take());
                }
            }
        }
        let waiting = std::mem::take(dials);
        for (id, dial) in waiting {
            if is_blocked(blocked, &dial.from, &dial.to) {
                dials.insert(id, dial);
            } else {
                wakers.push(dial.waker);
            }
        }
    }
}

fn is_blocked(blocked: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    !from.is_empty() && !to.is_empty() && blocked.get(from).is_some_and(|to_| to_.contains(to))
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wake(wakers: Vec<Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

fn error(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

fn reset_error() -> io::Error {
    error(io::ErrorKind::ConnectionReset, "connection reset".into())
}

/// Keeps `waker` in `slot` (unless the one there already wakes the same task).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// `host:port` → host and port.
fn split_addr(addr: &str) -> io::Result<(&str, u16)> {
    addr.rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse().ok()?)))
        .ok_or_else(|| {
            error(
                io::ErrorKind::InvalidInput,
                format!("{addr}: not host:port"),
            )
        })
}

/// A real socket on `host:port` (port 0: the system picks), registered with `runtime`.
fn bind_tcp(
    runtime: &tokio::runtime::Handle,
    host: &str,
    port: u16,
) -> io::Result<tokio::net::TcpListener> {
    let addr = format!("{host}:{port}");
    let bound = std::net::TcpListener::bind(&addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| error(e.kind(), format!("bridging {addr} to TCP: {e}")))?;
    let _runtime = runtime.enter();
    tokio::net::TcpListener::from_std(bound)
}

impl MemoryNetwork {
    /// An empty network: nothing listens, no link is cut.
    pub fn new() -> Arc<MemoryNetwork> {
        Arc::new(MemoryNetwork {
            shared: Arc::new(Mutex::new(State::default())),
        })
    }

    /// The network as seen from `ip`: what it dials comes from `ip`, so the
    /// partitions of `ip` apply to it. (It listens on whatever address it is given.)
    pub fn host(self: &Arc<Self>, ip: &str) -> Arc<HostNetwork> {
        Arc::new(HostNetwork {
            net: self.clone(),
            ip: ip.to_string(),
        })
    }

    /// Cuts hosts `a` and `b` apart, both ways.
    pub fn partition(&self, a: &str, b: &str) {
        self.partition_oneway(a, b);
        self.partition_oneway(b, a);
    }

    /// Holds back whatever `from` sends to `to`; what `to` sends to `from` still flows.
    pub fn partition_oneway(&self, from: &str, to: &str) {
        let mut state = lock(&self.shared);
        let to_ = state.blocked.entry(from.to_string()).or_default();
        to_.insert(to.to_string());
    }

    /// Joins `a` and `b` again (both ways); what was held back is delivered.
    pub fn repair(&self, a: &str, b: &str) {
        let mut state = lock(&self.shared);
        for (from, to) in [(a, b), (b, a)] {
            if let Some(to_) = state.blocked.get_mut(from) {
                to_.remove(to);
                if to_.is_empty() {
                    state.blocked.remove(from);
                }
            }
        }
        let mut wakers = Vec::new();
        state.release(&mut wakers);
        drop(state);
        wake(wakers);
    }

    /// Repairs every cut link.
    pub fn repair_all(&self) {
        let mut state = lock(&self.shared);
        state.blocked.clear();
        let mut wakers = Vec::new();
        state.release(&mut wakers);
        drop(state);
        wake(wakers);
    }

    /// `host` loses power: every connection with an end on it is reset at both ends,
    /// and every listener on it closes: its address is free, its next accept fails
    /// (and the ones after wait forever, so an accept loop that retries does not spin).
    pub fn crash(&self, host: &str) {
        let mut state = lock(&self.shared);
        let mut wakers = Vec::new();
        let ids: Vec<u64> = (state.conns.iter())
            .filter(|(_, c)| c.hosts.iter().any(|h| h == host))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            state.reset(id, &mut wakers);
        }
        let addrs: Vec<String> = (state.listeners.iter())
            .filter(|(_, l)| l.host == host)
            .map(|(addr, _)| addr.clone())
            .collect();
        let mut closed = Vec::new();
        for addr in addrs {
            if let Some(mut listening) = state.listeners.remove(&addr) {
                wakers.extend(listening.waker.take());
                closed.push(listening);
            }
        }
        let bridged = state.bridged.remove(host);
        drop(state);
        drop(closed); // their queued connections were reset above
        if let Some(switch) = bridged {
            switch.kill();
        }
        wake(wakers);
    }

    /// Live mode: every listener, now and later, also accepts real TCP connections
    /// on its own address. Call it inside a tokio runtime. Bridged connections are
    /// real sockets: partitions do not apply to them, a crash of their host closes
    /// them. Dials through the network itself stay in memory.
    ///
    /// An address that cannot be bound is an error (after the others are bridged);
    /// for listeners made later, `listen` returns it.
    pub fn bridge_tcp(self: &Arc<Self>) -> io::Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            error(
                io::ErrorKind::Other,
                "bridge_tcp must be called inside a tokio runtime".into(),
            )
        })?;
        let mut state = lock(&self.shared);
        let mut failed = None;
        let mut wakers = Vec::new();
        for (addr, listening) in &mut state.listeners {
            if listening.tcp.is_some() {
                continue;
            }
            let bound = split_addr(addr).and_then(|(host, port)| bind_tcp(&runtime, host, port));
            match bound {
                Ok(tcp) => {
                    listening.tcp = Some(tcp);
                    // An accept already waiting looks again, at the TCP socket too.
                    wakers.extend(listening.waker.take());
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        state.bridge = Some(runtime);
        drop(state);
        wake(wakers);
        failed.map_or(Ok(()), Err)
    }

    fn listen_at(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        let (host, port) = split_addr(addr)?;
        let mut state = lock(&self.shared);
        let in_use = |addr: &str| {
            error(
                io::ErrorKind::AddrInUse,
                format!("{addr}: address already in use"),
            )
        };
        if port != 0 && state.listeners.contains_key(addr) {
            return Err(in_use(addr));
        }
        let tcp = match &state.bridge {
            Some(runtime) => Some(bind_tcp(runtime, host, port)?),
            None => None,
        };
        let port = match &tcp {
            Some(tcp) if port == 0 => tcp.local_addr()?.port(),
            None if port == 0 => state.free_port(host)?,
            _ => port,
        };
        let addr = format!("{host}:{port}");
        if state.listeners.contains_key(&addr) {
            return Err(in_use(&addr));
        }
        let id = state.id();
        state.listeners.insert(
            addr.clone(),
            Listening {
                id,
                host: host.to_string(),
                queue: VecDeque::new(),
                waker: None,
                tcp,
            },
        );
        Ok(Box::new(MemoryListener {
            shared: self.shared.clone(),
            addr,
            id,
            closed: false,
        }))
    }

    fn dial(&self, from: &str, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(Dial {
            shared: self.shared.clone(),
            from: from.to_string(),
            addr: addr.to_string(),
            held: None,
        })
    }
}

impl Network for MemoryNetwork {
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        self.listen_at(addr)
    }

    /// Dials from the anonymous host, which no partition cuts off.
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.dial("", addr)
    }
}

impl HostNetwork {
    /// The host this view dials from.
    pub fn ip(&self) -> &str {
        &self.ip
    }
}

impl Network for HostNetwork {
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        self.net.listen_at(addr)
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.net.dial(&self.ip, addr)
    }
}

impl fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("MemoryNetwork")
            .field("listeners", &state.listeners.keys().collect::<Vec<_>>())
            .field("connections", &state.conns.len())
            .field("cut", &state.blocked)
            .finish()
    }
}

impl fmt::Debug for HostNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostNetwork").field("ip", &self.ip).finish()
    }
}

/// A dial in progress: it completes at its first poll, unless the link to the
/// listener's host is cut, when it waits for a repair.
struct Dial {
    shared: Arc<Mutex<State>>,
    from: String,
    addr: String,
    /// Its entry among the held dials, while it waits.
    held: Option<u64>,
}

impl Future for Dial {
    type Output = io::Result<BoxStream>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let to = match split_addr(&this.addr) {
            Ok((host, _)) => host,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let mut state = lock(&this.shared);
        if is_blocked(&state.blocked, &this.from, to) {
            let id = match this.held {
                Some(id) => id,
                None => *this.held.insert(state.id()),
            };
            let dial = HeldDial {
                from: this.from.clone(),
                to: to.to_string(),
                waker: cx.waker().clone(),
            };
            state.dials.insert(id, dial);
            return Poll::Pending;
        }
        if let Some(id) = this.held.take() {
            state.dials.remove(&id);
        }
        if !state.listeners.contains_key(&this.addr) {
            let msg = format!("{}: connection refused", this.addr);
            return Poll::Ready(Err(error(io::ErrorKind::ConnectionRefused, msg)));
        }
        let id = state.id();
        let port = state.ephemeral_port(&this.from);
        state.conns.insert(
            id,
            Conn {
                hosts: [this.from.clone(), to.to_string()],
                dirs: Default::default(),
                reset: false,
                halves: 2,
            },
        );
        let half = |side| MemoryStream {
            shared: this.shared.clone(),
            id,
            side,
        };
        let from = if this.from.is_empty() {
            ANONYMOUS
        } else {
            &this.from
        };
        let queued = Queued {
            stream: half(1),
            peer: format!("{from}:{port}"),
        };
        let mut waker = None;
        if let Some(listening) = state.listeners.get_mut(&this.addr) {
            listening.queue.push_back(queued);
            waker = listening.waker.take();
        }
        drop(state);
        wake(waker.into_iter().collect());
        Poll::Ready(Ok(Box::new(half(0))))
    }
}

impl Drop for Dial {
    fn drop(&mut self) {
        if let Some(id) = self.held {
            lock(&self.shared).dials.remove(&id);
        }
    }
}

/// A listener's handle; dropping it frees the address (and resets connections it
/// never accepted, as closing a listening socket does).
struct MemoryListener {
    shared: Arc<Mutex<State>>,
    addr: String,
    id: u64,
    /// A crash closed it and an accept has said so.
    closed: bool,
}

impl MemoryListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted>> {
        if self.closed {
            // Said once; a loop that accepts again must not spin.
            return Poll::Pending;
        }
        let mut state = lock(&self.shared);
        let State {
            listeners, bridged, ..
        } = &mut *state;
        let Some(listening) = listeners.get_mut(&self.addr).filter(|l| l.id == self.id) else {
            self.closed = true;
            let msg = format!("{}: the listener closed: the host crashed", self.addr);
            return Poll::Ready(Err(error(io::ErrorKind::ConnectionAborted, msg)));
        };
        if let Some(queued) = listening.queue.pop_front() {
            return Poll::Ready(Ok(Accepted {
                stream: Box::new(queued.stream),
                peer: queued.peer,
            }));
        }
        if let Some(tcp) = &listening.tcp {
            if let Poll::Ready(accepted) = tcp.poll_accept(cx) {
                let (stream, peer) = accepted?;
                stream.set_nodelay(true)?;
                let switch = bridged
                    .entry(listening.host.clone())
                    .or_insert_with(|| Switch::new("the host crashed"));
                let stream = switch.guard_stream(Box::new(stream))?;
                let peer = peer.to_string();
                return Poll::Ready(Ok(Accepted { stream, peer }));
            }
        }
        park(&mut listening.waker, cx);
        Poll::Pending
    }
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(std::future::poll_fn(move |cx| self.poll_accept(cx)))
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        let mine = state
            .listeners
            .get(&self.addr)
            .is_some_and(|l| l.id == self.id);
        let Some(listening) = mine.then(|| state.listeners.remove(&self.addr)).flatten() else {
            return;
        };
        let mut wakers = Vec::new();
        for queued in &listening.queue {
            state.reset(queued.stream.id, &mut wakers);
        }
        drop(state);
        drop(listening);
        wake(wakers);
    }
}

#[cfg(test)]
mod tests;
