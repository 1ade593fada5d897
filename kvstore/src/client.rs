//! A client for a kvstore (or etcd) cluster: a list of endpoints, typed operations,
//! deadlines, and failover — what kube-apiserver's `--etcd-servers` gives it.
//!
//! The client talks to one member at a time. When that member cannot be reached, or
//! answers that it has no leader, the client moves on to the next endpoint and tries
//! again, until its deadline. Which failures it may retry on depends on the request:
//!
//! - a **read** changes nothing, so it is retried after any "unavailable" failure;
//! - a **write** is retried only when it certainly did not happen: the member could not
//!   be reached at all, or it had no leader (the request was never proposed). A write
//!   that *timed out* may have committed; retrying it could apply it twice, so the
//!   error goes back to the caller, who can read and decide (Kubernetes does: an
//!   update carries the resourceVersion it expects).
//!
//! Errors come back as the crate's [`Error`], decoded from etcd's gRPC messages, so a
//! caller can tell `request timed out` from `no leader` from `compacted`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};
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

/// Whether the request certainly never took effect, so a write may be retried: the
/// member had no leader (never proposed), was stopping, or could not be connected to.
/// A connection that broke *after* the request was sent is not in the list: the write
/// may have happened.
fn never_happened(status: &Status) -> bool {
    match from_status(status) {
        Error::NoLeader | Error::Stopped => true,
        Error::Unavailable(text) => text.contains("connect"),
        _ => false,
    }
}

/// Whether a read may be retried elsewhere after this failure.
fn retry_read(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded
    )
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
}

impl ClientConfig {
    /// Defaults close to kube-apiserver's: 5 s per call, 1 s to connect.
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        }
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
                Endpoint::from_shared(url.clone())
                    .map(|e| e.connect_timeout(config.connect_timeout).connect_lazy())
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
    /// that `retry` allows, until the deadline.
    async fn with_failover<T, F, Fut>(&self, retry: fn(&Status) -> bool, call: F) -> Result<T>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Status>>,
    {
        let deadline = Instant::now() + self.config.timeout;
        let mut last = None;
        // Try every member at least once, and keep cycling while time remains.
        let mut attempts = 0;
        while attempts < self.channels.len() || Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let current = self.current.load(Ordering::Relaxed) % self.channels.len();
            match call(self.channels[current].clone(), left).await {
                Ok(value) => return Ok(value),
                Err(status) if retry(&status) => {
                    // Keep what a member said over "could not connect": with one member
                    // left of three, "no leader" is the news, not the dead ones.
                    let e = from_status(&status);
                    let unreachable =
                        |e: &Error| matches!(e, Error::Unavailable(t) if t.contains("connect"));
                    if last.as_ref().is_none_or(unreachable) || !unreachable(&e) {
                        last = Some(e);
                    }
                    // Move on, unless another clone already did.
                    let next = (current + 1) % self.channels.len();
                    let _ = self.current.compare_exchange(
                        current,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    attempts += 1;
                    if attempts % self.channels.len() == 0 {
                        // A whole round failed: give an election a moment.
                        tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                    }
                }
                Err(status) => return Err(from_status(&status)),
            }
        }
        Err(last.unwrap_or(Error::Timeout))
    }

    /// Reads keys.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.with_failover(retry_read, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).range(request).await?.into_inner()) }
        })
        .await
    }

    /// Writes a key.
    pub async fn put(&self, request: PutRequest) -> Result<PutResponse> {
        self.with_failover(never_happened, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).put(request).await?.into_inner()) }
        })
        .await
    }

    /// Deletes a key or a range.
    pub async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.with_failover(never_happened, |channel, left| {
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
        self.with_failover(never_happened, |channel, left| {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(left);
            async move { Ok(KvClient::new(channel).txn(request).await?.into_inner()) }
        })
        .await
    }

    /// Compacts history.
    pub async fn compact(&self, revision: i64) -> Result<CompactionResponse> {
        self.with_failover(never_happened, |channel, left| {
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
        self.with_failover(retry_read, |channel, left| {
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
        self.with_failover(retry_read, |channel, _| async move {
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
        self.with_failover(retry_read, |channel, _| {
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
