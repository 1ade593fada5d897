//! # Limits: what keeps one client from wedging the server
//!
//! An API server faces clients it does not control: a kubelet behind a flaky link, a
//! script stuck in a retry loop, someone typing into `nc`. Every connection and every
//! request holds something while it lasts (a file descriptor, a task, a buffer, a core),
//! so a server without bounds can be held forever by clients that simply do not finish.
//! kube-apiserver bounds each of those, and so does this one:
//!
//! | what is bounded | kube-apiserver | here ([`Limits`]) |
//! |---|---|---|
//! | `accept()` failing (out of file descriptors: EMFILE, ENFILE) | Go's `http.Server` logs, sleeps 5 ms, doubling up to 1 s, and accepts again | [`AcceptBackoff`], the same numbers |
//! | the TLS handshake, the request head, an idle keep-alive connection | `ReadHeaderTimeout: 32s` on its `http.Server` ("just shy of `requestTimeoutUpperBound`", 34 s) | `header_read_timeout`, 32 s |
//! | the request body's arrival | `--request-timeout` (60 s), for the whole request | `body_read_timeout`, 60 s: then `408 Timeout` |
//! | the body's size | `maxRequestBodyBytes`, 3 MiB: `413 RequestEntityTooLarge` | `max_request_body_bytes`, 3 MiB, refused from `Content-Length` before a byte is read |
//! | requests being served at once | `--max-requests-inflight` 400, `--max-mutating-requests-inflight` 200: `429` with `Retry-After: 1` | [`InFlight`], the same numbers |
//! | connections | none of its own: Go serves whatever the OS hands it | `max_connections`, 1 000: a connection past it is closed at once |
//! | heavy requests | API Priority and Fairness counts a heavy request as several "seats" | one request with a body over [`LARGE_BODY_BYTES`] handled at a time ([`InFlight::large_body_turn`]) |
//!
//! Why each one:
//!
//! - **Accept errors are weather, not the end.** When the process has no file
//!   descriptor left, `accept()` fails with EMFILE and the connection stays in the
//!   kernel's queue. Giving up leaves a process that is up but refuses everything
//!   (nothing restarts it: it is not dead). Retrying at once spins a core, because the
//!   queue is still readable. So: log, wait a little longer each time, try again; the
//!   first success resets the wait.
//! - **A client that sends slowly holds a connection.** One header line every few
//!   seconds is always "progress", so only a deadline for the *whole* head helps. hyper
//!   counts it from the moment it starts waiting for a request, so the same deadline
//!   also closes a keep-alive connection that sits idle (Go has a separate 90 s
//!   `IdleTimeout`; hyper has the one timer). The TLS handshake gets the same deadline,
//!   as Go gives it.
//! - **A body that stops short** (`Content-Length: 100`, five bytes sent) would keep the
//!   handler waiting for the other 95 forever; the body read has its own deadline.
//! - **A body is bounded before it is read**: a declared `Content-Length` over the
//!   limit is refused at once, and a chunked body is read only up to the limit.
//! - **In-flight limits turn overload into a fast, retryable answer.** A request past
//!   the limit is not queued: it gets `429 TooManyRequests` at once, which client-go
//!   (and so kubectl, the scheduler and the controllers) retries after `Retry-After`.
//!   Long-running requests (watches, `kubectl logs`) are not counted, as in
//!   kube-apiserver, and neither are the health checks: a load balancer must see a busy
//!   server as alive.
//! - **The connection cap keeps the server under the file-descriptor limit.** A
//!   connection costs a descriptor and a task even while it does nothing. kube-apiserver
//!   relies on the OS limit (and on the deadlines above) alone; the cap here is the
//!   same idea made explicit: room for every request the in-flight limits let run
//!   (400 + 200), plus watches and idle keep-alive connections, and below the usual
//!   soft limit of 1 024 descriptors a process starts with.
//! - **A large body costs whole seconds of a core.** Decoding, defaulting and
//!   validating an object of 3 MiB (the same for JSON and YAML; YAML's parse itself is
//!   slow too) took 1 to 3 s here (debug build; measured). Two at once held both worker
//!   threads of a 2-core machine, and `/healthz` then took 3 s and failed its etcd
//!   check. So requests with a body over 256 KiB take turns: one is handled at a time,
//!   the others wait (each holding its in-flight place, so the wait is bounded too),
//!   and every other request finds a worker free. kube-apiserver's fairness does the
//!   same in its own terms, charging a heavy request more of the server's seats.
//!
//! Body *nesting depth* is bounded too; that is [`crate::body`]'s business.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use seams::clock::SharedClock;

use crate::error::{Error, Result};

/// kube-apiserver's `maxRequestBodyBytes`: the largest request body (3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A body larger than this makes a request heavy: heavy requests are handled one at a
/// time. (An object of this size is decoded in well under 0.3 s.)
pub const LARGE_BODY_BYTES: usize = 256 * 1024;

/// The bounds on connections and requests, as [`crate::server::Config`] sets them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; one past it is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a client may take to finish the TLS handshake and to send a request's
    /// head (also how long a keep-alive connection may sit idle).
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// The largest request body, in bytes.
    pub max_request_body_bytes: usize,
    /// `--max-requests-inflight`: reads (GET that is not a watch) served at once; 0 is
    /// no limit.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`: writes (POST, PUT, PATCH, DELETE) served at
    /// once; 0 is no limit.
    pub max_mutating_requests_inflight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            header_read_timeout: Duration::from_secs(32),
            body_read_timeout: Duration::from_secs(60),
            max_request_body_bytes: MAX_REQUEST_BODY_BYTES,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
        }
    }
}

/// The wait after a failed `accept()`: 5 ms, doubled on every failure in a row up to
/// 1 s, back to nothing after a success (Go's `http.Server.Serve`).
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failure; returns how long to wait before the next `accept()`.
    pub fn failed(&mut self) -> Duration {
        let next = match self.delay {
            None => Self::FIRST,
            Some(d) => (d * 2).min(Self::MAX),
        };
        self.delay = Some(next);
        next
    }

    /// Records a success: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.delay = None;
    }
}

/// Which in-flight budget a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Not counted: watches, logs and health checks.
    Exempt,
    ReadOnly,
    Mutating,
}

/// kube-apiserver's max-in-flight filter: two budgets of requests being served, one for
/// reads and one for writes. A request that finds its budget spent is not queued; it
/// is refused with `429`, to be retried.
pub struct InFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    /// The one turn for a request with a large body.
    large: Arc<Semaphore>,
}

impl InFlight {
    pub fn new(limits: &Limits) -> Self {
        let budget = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        InFlight {
            read_only: budget(limits.max_requests_inflight),
            mutating: budget(limits.max_mutating_requests_inflight),
            large: Arc::new(Semaphore::new(1)),
        }
    }

    /// For a request with a body of `len` bytes: nothing if it is small; for a large one,
    /// the turn of the one large request handled at a time (waiting for it), held
    /// until the returned permit is dropped.
    pub async fn large_body_turn(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        if len <= LARGE_BODY_BYTES {
            return None;
        }
        self.large.clone().acquire_owned().await.ok()
    }

    /// A place in the budget, held until the returned permit is dropped (when the
    /// request has been answered), or `429 TooManyRequests`.
    pub fn admit(&self, budget: Budget) -> Result<Option<OwnedSemaphorePermit>> {
        let semaphore = match budget {
            Budget::Exempt => return Ok(None),
            Budget::ReadOnly => &self.read_only,
            Budget::Mutating => &self.mutating,
        };
        match semaphore {
            None => Ok(None),
            Some(s) => s
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| Error::TooManyRequests),
        }
    }
}

/// Reads a request body within the limits: one that announces more than
/// `max_request_body_bytes` is refused before a byte of it is read, one that grows past
/// it (chunked) as soon as it does, and one that has not arrived after
/// `body_read_timeout` is `408 Timeout`.
pub async fn read_body(mut body: Incoming, limits: &Limits, clock: &SharedClock) -> Result<Bytes> {
    let max = limits.max_request_body_bytes;
    // For a `Content-Length` body, hyper's lower bound is that length.
    if body.size_hint().lower() > max as u64 {
        drain(body, limits.clone(), clock.clone());
        return Err(Error::TooLarge(max));
    }
    let limit = limits.body_read_timeout;
    let read = async {
        let mut bytes = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max {
                    return Ok(None); // too large: the rest is drained below
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Some(bytes.freeze()))
    };
    match clock.timeout(limit, read).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => {
            drain(body, limits.clone(), clock.clone());
            Err(Error::TooLarge(max))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Timeout(format!(
            "the request body did not arrive within {}s",
            limit.as_secs_f64()
        ))),
    }
}

/// Reads the rest of a refused body and drops it, while the `413` goes back. A client
/// still sending then reads the answer; were the connection closed with its bytes
/// unread, the kernel would reset it, and the client would see a broken connection
/// instead. Bounded like any body read: at most 16 times the size limit, within the
/// body timeout; past either the connection is closed.
fn drain(mut body: Incoming, limits: Limits, clock: SharedClock) {
    let cap = limits.max_request_body_bytes.saturating_mul(16);
    tokio::spawn(async move {
        let read = async move {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > cap {
                    return;
                }
            }
        };
        let _ = clock.timeout(limits.body_read_timeout, read).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u128> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(5));
    }

    #[tokio::test]
    async fn large_bodies_take_turns_and_small_ones_do_not_wait() {
        let inflight = InFlight::new(&Limits::default());
        let first = inflight.large_body_turn(LARGE_BODY_BYTES + 1).await;
        assert!(first.is_some());
        assert!(inflight.large_body_turn(10).await.is_none());
        // A second large one waits for the first...
        let waiting = tokio::time::timeout(
            Duration::ZERO,
            inflight.large_body_turn(MAX_REQUEST_BODY_BYTES),
        );
        assert!(waiting.await.is_err());
        // ...and goes once it is done.
        drop(first);
        assert!(inflight
            .large_body_turn(MAX_REQUEST_BODY_BYTES)
            .await
            .is_some());
    }

    #[test]
    fn each_budget_refuses_past_its_size_and_frees_with_the_permit() {
        let limits = Limits {
            max_requests_inflight: 1,
            max_mutating_requests_inflight: 2,
            ..Limits::default()
        };
        let inflight = InFlight::new(&limits);
        let read = inflight.admit(Budget::ReadOnly).unwrap();
        assert_eq!(
            inflight.admit(Budget::ReadOnly).err(),
            Some(Error::TooManyRequests)
        );
        // Writes have their own budget; exempt requests are never counted.
        let w1 = inflight.admit(Budget::Mutating).unwrap();
        let _w2 = inflight.admit(Budget::Mutating).unwrap();
        assert!(inflight.admit(Budget::Mutating).is_err());
        assert!(inflight.admit(Budget::Exempt).unwrap().is_none());
        drop(read);
        drop(w1);
        assert!(inflight.admit(Budget::ReadOnly).is_ok());
        assert!(inflight.admit(Budget::Mutating).is_ok());
        // 0 means no limit, as for kube-apiserver's flags.
        let unlimited = InFlight::new(&Limits {
            max_requests_inflight: 0,
            ..Limits::default()
        });
        let held: Vec<_> = (0..1000)
            .map(|_| unlimited.admit(Budget::ReadOnly).unwrap())
            .collect();
        assert_eq!(held.len(), 1000);
    }
}
