//! A client for a kvstore (or etcd) cluster: a list of endpoints, typed operations,
//! deadlines, and failover — what kube-apiserver's `--etcd-servers` gives it.
//!
//! The client talks to one member at a time. When that member cannot be reached, or
//! answers that it has no leader, the client moves on to the next endpoint and tries
//! again, until its deadline. What it may retry depends on what it knows of the
//! request (see `Failure`):
//!
//! - a request that **never left** the client (no connection could be made, or the
//!   connection was found closed before the request was handed to it) goes to the
//!   next member, whatever it is;
//! - a **read** changes nothing, so it is also retried after any transient failure,
//!   even one that came after it was sent;
//! - a **write** that was sent is retried only when the member said it certainly did
//!   not happen (no leader: never proposed). A write whose outcome is unknown — it
//!   timed out, or its connection broke before the answer — may have committed;
//!   retrying it could apply it twice, so the error goes back to the caller as an
//!   indeterminate one ([`Error::is_indeterminate`]), who can read and decide
//!   (Kubernetes does: an update carries the resourceVersion it expects).
//!
//! Errors come back as the crate's [`Error`], decoded from etcd's gRPC messages, so a
//! caller can tell `request timed out` from `no leader` from `compacted`.
//!
//! Connections are dialed through the [`Network`](seams::net::Network) in the config
//! ([`Dialer`]): real TCP by default, the simulator's node addresses when it says so.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use seams::net::{BoxFuture, BoxStream, SharedNetwork};
use seams::Tcp;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    kv_client::KvClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
    watch_request, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, SnapshotRequest, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};

/// Decodes an etcd gRPC status into the crate's error: the message says which.
pub fn from_status(status: &Status) -> Error {
    let message = status.message();
    let known = [
        Error::Timeout,
        Error::NoLeader,
        Error::LeaderChanged,
        Error::FutureRevision,
        Error::EmptyKey,
        Error::KeyNotFound,
        Error::ValueProvided,
        Error::DuplicateKey,
        Error::TooManyOps,
        Error::LeaseNotFound,
        Error::LeaseExists,
        Error::Stopped,
    ];
    if let Some(e) = known.into_iter().find(|e| e.to_string() == message) {
        return e;
    }
    // The client's own deadline passed before any member answered.
    let deadline = status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && message.contains("Timeout expired"));
    if deadline {
        return Error::Timeout;
    }
    if message == "etcdserver: mvcc: required revision has been compacted" {
        return Error::Compacted {
            compact_revision: 0,
        };
    }
    Error::Unavailable(format!("{}: {message}", status.code()))
}

/// What a failed call tells about the request it carried. The line that matters is
/// whether the request left this client: one that never did may go to another member,
/// whatever it is; one that did may have been applied, and only a read may be repeated.
#[derive(Debug)]
enum Failure {
    /// The request never left this client: no connection could be made (refused, or no
    /// answer within the connect timeout), or the connection was found closed before the
    /// request was handed to it. On a busy machine the second is common: the member went
    /// away, and the client's connection task had not yet run to notice when the next
    /// request was queued on it. hyper then gives the request back unsent ("operation
    /// was canceled"), which tonic reports as `Cancelled`.
    NotSent(Error),
    /// The request was handed to a connection, which broke before an answer came (a
    /// reset, a broken pipe, our own deadline): the member may have applied it.
    Lost(Error),
    /// A member answered with an error status (etcd's message, decoded).
    Answered(Error, Code),
}

impl Failure {
    /// Sorts out a failed call. A status a member sent arrives in the response's
    /// trailers and carries no source; one that tonic made here, from a failure of the
    /// connection, carries that failure as its source.
    fn of(status: &Status) -> Failure {
        let Some(cause) = std::error::Error::source(status) else {
            return Failure::Answered(from_status(status), status.code());
        };
        let mut next = Some(cause);
        while let Some(e) = next {
            if e.is::<tonic::ConnectError>() {
                return Failure::NotSent(from_status(status));
            }
            if e.is::<tonic::TimeoutExpired>() {
                // Our own deadline passed: the request may be in flight still.
                return Failure::Lost(Error::Timeout);
            }
            next = e.source();
        }
        if status.code() == Code::Cancelled {
            return Failure::NotSent(Error::Unavailable(format!(
                "the connection closed before the request was sent ({})",
                causes(status)
            )));
        }
        Failure::Lost(Error::ConnectionLost(causes(status)))
    }

    /// Whether the call may be sent to another member after this failure.
    fn may_retry(&self, kind: Kind) -> bool {
        match (self, kind) {
            (Failure::NotSent(_), _) => true,
            (Failure::Lost(_), Kind::Read) => true,
            (Failure::Lost(_), Kind::Write) => false,
            // No leader: never proposed. Stopped: never reached the member's Raft.
            (Failure::Answered(e, _), Kind::Write) => {
                matches!(e, Error::NoLeader | Error::Stopped)
            }
            (Failure::Answered(_, code), Kind::Read) => matches!(
                code,
                Code::Unavailable | Code::Unknown | Code::DeadlineExceeded
            ),
        }
    }

    /// How much this failure says, to pick the one to report when every try failed:
    /// what a member said ("no leader", with one member left of three) is the news,
    /// more than a broken connection, which is more than a member that could not be
    /// reached at all.
    fn weight(&self) -> u8 {
        match self {
            Failure::NotSent(_) => 0,
            Failure::Lost(_) => 1,
            Failure::Answered(..) => 2,
        }
    }

    fn into_error(self) -> Error {
        match self {
            Failure::NotSent(e) | Failure::Lost(e) | Failure::Answered(e, _) => e,
        }
    }
}

/// A local status's message and the chain of errors under it, for a message that says
/// what broke: `transport error: connection error: stream closed because of a broken
/// pipe` rather than `transport error`.
fn causes(status: &Status) -> String {
    let mut text = status.message().to_string();
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        let line = e.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        next = e.source();
    }
    text
}

/// Whether a call changes the store, which decides what may be retried.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Changes nothing: retried after any transient failure.
    Read,
    /// Put, delete, txn, compact: retried only when it certainly did not happen.
    Write,
}

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Member client URLs (`http://host:port`), tried in order.
    pub endpoints: Vec<String>,
    /// How long one call may take, failovers included.
    pub timeout: Duration,
    /// How long to wait for a TCP connection to one member.
    pub connect_timeout: Duration,
    /// Where connections come from (real TCP by default).
    pub network: SharedNetwork,
}

impl ClientConfig {
    /// Defaults close to kube-apiserver's: 5 s per call, 1 s to connect, over TCP.
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            network: Tcp::shared(),
        }
    }
}

/// tonic's connector over the client's network: dials the `host:port` of an endpoint's
/// URL (port 80, or 443 for `https`, when the URL names none, as an HTTP client would).
/// A failed dial is a `tonic::ConnectError` to the caller, which is how a request that
/// never left is told from one that was lost (`Failure::of`).
#[derive(Clone)]
pub struct Dialer {
    network: SharedNetwork,
}

impl Dialer {
    /// Dials through `network`.
    pub fn new(network: SharedNetwork) -> Self {
        Dialer { network }
    }
}

/// The `host:port` an endpoint's URL names.
fn dial_address(uri: &Uri) -> io::Result<String> {
    let authority = uri
        .authority()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host")))?;
    if authority.port().is_some() {
        return Ok(authority.as_str().to_string());
    }
    let port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Ok(format!("{}:{port}", authority.host()))
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<BoxStream>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<TokioIo<BoxStream>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let network = self.network.clone();
        Box::pin(async move {
            let addr = dial_address(&uri)?;
            Ok(TokioIo::new(network.connect(&addr).await?))
        })
    }
}

/// A connection to a cluster, failing over between its members.
#[derive(Clone)]
pub struct Client {
    config: ClientConfig,
    channels: Vec<Channel>,
    /// The member in use, shared by every clone of this client so that one caller's
    /// failover spares the others the dead member.
    current: Arc<AtomicUsize>,
}

impl Client {
    /// Prepares channels to every endpoint (connections are made lazily, so a member
    /// that is down now does not stop the client from starting).
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Unavailable("no endpoints given".into()));
        }
        let channels = config
            .endpoints
            .iter()
            .map(|url| {
                let url = if url.contains("://") {
                    url.clone()
                } else {
                    format!("http://{url}")
                };
                let dialer = Dialer::new(config.network.clone());
                Endpoint::from_shared(url.clone())
                    .map(|e| {
                        e.connect_timeout(config.connect_timeout)
                            .connect_with_connector_lazy(dialer)
                    })
                    .map_err(|e| Error::Unavailable(format!("bad endpoint {url}: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Client {
            config,
            channels,
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The endpoint the client is using now.
    pub fn current_endpoint(&self) -> &str {
        &self.config.endpoints[self.current.load(Ordering::Relaxed) % self.channels.len()]
    }

    /// Runs `call` against the current member, moving to the next one after a failure
    /// that a call of this `kind` may be retried after, until the deadline.
    async fn with_failover<T, F, Fut>(&self, kind: Kind, call: F) -> Result<T>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Status>>,
    {
        let deadline = Instant::now() + self.config.timeout;
        let mut last: Option<Failure> = None;
        // Try every member at least once, and keep cycling while time remains.
        let mut attempts = 0;
        while attempts < self.channels.len() || Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let current = self.current.load(Ordering::Relaxed) % self.channels.len();
            let failure = match call(self.channels[current].clone(), left).await {
                Ok(value) => return Ok(value),
                Err(status) => Failure::of(&status),
            };
            if !failure.may_retry(kind) {
                return Err(failure.into_error());
            }
            if last.as_ref().is_none_or(|l| failure.weight() >= l.weight()) {
                last = Some(failure);
            }
            // Move on, unless another clone already did.
            let next = (current + 1) % self.channels.len();
            let _ =
                self.current
                    .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed);
            attempts += 1;
            if attempts % self.channels.len() == 0 {
                // A whole round failed: give an election a moment.
                tokio::time::sleep(Duration::from_millis(50).min(left)).await;
            }
        }
        Err(last.map_or(Error::Timeout, Failure::into_error))
    }

    /// Reads keys.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.with_failover(Kind::Read, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).range(request).await?.into_inner()) }
        })
        .await
    }

    /// Writes a key.
    pub async fn put(&self, request: PutRequest) -> Result<PutResponse> {
        self.with_failover(Kind::Write, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).put(request).await?.into_inner()) }
        })
        .await
    }

    /// Deletes a key or a range.
    pub async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.with_failover(Kind::Write, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move {
                Ok(KvClient::new(channel)
                    .delete_range(request)
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    /// Runs a transaction.
    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse> {
        self.with_failover(Kind::Write, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).txn(request).await?.into_inner()) }
        })
        .await
    }

    /// Compacts history.
    pub async fn compact(&self, revision: i64) -> Result<CompactionResponse> {
        self.with_failover(Kind::Write, |channel, left| {
            let mut request = tonic::Request::new(CompactionRequest {
                revision,
                physical: false,
            });
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).compact(request).await?.into_inner()) }
        })
        .await
    }

    /// The status of the member the client is using.
    pub async fn status(&self) -> Result<StatusResponse> {
        self.with_failover(Kind::Read, |channel, left| {
            let mut request = tonic::Request::new(StatusRequest {});
            request.set_timeout(left);
            async move {
                Ok(MaintenanceClient::new(channel)
                    .status(request)
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    /// Downloads a snapshot of one member's store: the body and its SHA-256 trailer,
    /// exactly the bytes `etcdctl snapshot save` writes.
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        self.with_failover(Kind::Read, |channel, _| async move {
            let mut stream = MaintenanceClient::new(channel)
                .snapshot(SnapshotRequest {})
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(part) = stream.message().await? {
                bytes.extend(part.blob);
            }
            Ok(bytes)
        })
        .await
    }

    /// Opens a watch on the current member (failing over to reach one). The stream
    /// ends when the member goes away; a caller resumes from the last revision it saw
    /// (`start_revision = last + 1`), which is what an informer does.
    pub async fn watch(
        &self,
        create: WatchCreateRequest,
    ) -> Result<tonic::Streaming<WatchResponse>> {
        self.with_failover(Kind::Read, |channel, _| {
            let create = create.clone();
            async move {
                let request = WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
                };
                let outbound = tokio_stream::iter([request]).chain(tokio_stream::pending());
                let mut stream = WatchClient::new(channel)
                    .watch(outbound)
                    .await?
                    .into_inner();
                // The first message confirms the watch exists (or says why it does not).
                match stream.message().await? {
                    Some(first) if first.canceled => Err(Status::out_of_range(first.cancel_reason)),
                    Some(_) => Ok(stream),
                    None => Err(Status::unavailable("watch stream closed")),
                }
            }
        })
        .await
    }
}
