//! etcd's v3 gRPC API over the driver: the services `etcdctl` calls.
//!
//! Each unary call becomes a [`Request`] sent to the member's driver and awaited; the
//! member's typed [`Error`] becomes a gRPC status with the code and message etcd uses,
//! so `etcdctl` prints what it would print against etcd. The Watch call is a
//! bidirectional stream that can carry many watches; each gets an ID local to the
//! stream, as in etcd.

use std::collections::BTreeMap;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Code, Request as GrpcRequest, Response as GrpcResponse, Status};

use super::driver::Handle;
use crate::error::Error;
use crate::proto::etcdserverpb::{
    cluster_server, kv_server, maintenance_server, watch_request, watch_server, AlarmRequest,
    AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    HashKvRequest, HashKvResponse, Member, MemberListRequest, MemberListResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusRequest, StatusResponse,
    TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use crate::proto::etcdserverpb::{
    lease_server, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, SnapshotRequest,
    SnapshotResponse,
};
use crate::request::{Request, Response};
use crate::watch::WatchCreate;

/// The version `endpoint status` reports: the etcd API level we implement.
pub const API_VERSION: &str = "3.4.0";

/// etcd's gRPC code for each error; the message is the error's own text.
pub fn to_status(e: Error) -> Status {
    let code = match e {
        Error::Timeout
        | Error::NoLeader
        | Error::LeaderChanged
        | Error::Stopped
        | Error::Unavailable(_)
        | Error::ConnectionLost(_) => Code::Unavailable,
        Error::Compacted { .. } | Error::FutureRevision | Error::LeaseTtlTooLarge => {
            Code::OutOfRange
        }
        Error::EmptyKey
        | Error::KeyNotFound
        | Error::ValueProvided
        | Error::LeaseProvided
        | Error::RequestTooLarge
        | Error::DuplicateKey
        | Error::TooManyOps => Code::InvalidArgument,
        Error::LeaseNotFound => Code::NotFound,
        Error::LeaseExists => Code::FailedPrecondition,
        Error::DuplicateRequestId(_)
        | Error::Storage(_)
        | Error::Snapshot(_)
        | Error::Malformed(_)
        | Error::LogLost { .. }
        | Error::AlreadyBootstrapped { .. } => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The services of one member.
#[derive(Clone)]
pub struct Api {
    member: Handle,
}

impl Api {
    /// Serves a member's API through its driver.
    pub fn new(member: Handle) -> Self {
        Api { member }
    }

    async fn call(&self, request: Request) -> Result<Response, Status> {
        self.member.request(request).await.map_err(to_status)
    }

    async fn header(&self) -> Result<ResponseHeader, Status> {
        Ok(self.member.status().await.map_err(to_status)?.header)
    }
}

/// A response of the wrong shape means the member broke its own contract.
fn mismatch() -> Status {
    Status::internal("kvstore: response does not match its request")
}

/// Unwraps the response variant a request must produce.
macro_rules! expect {
    ($response:expr, $variant:ident) => {
        match $response {
            Response::$variant(r) => Ok(GrpcResponse::new(r)),
            _ => Err(mismatch()),
        }
    };
}

#[tonic::async_trait]
impl kv_server::Kv for Api {
    async fn range(
        &self,
        r: GrpcRequest<RangeRequest>,
    ) -> Result<GrpcResponse<RangeResponse>, Status> {
        expect!(self.call(Request::Range(r.into_inner())).await?, Range)
    }

    async fn put(&self, r: GrpcRequest<PutRequest>) -> Result<GrpcResponse<PutResponse>, Status> {
        expect!(self.call(Request::Put(r.into_inner())).await?, Put)
    }

    async fn delete_range(
        &self,
        r: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<GrpcResponse<DeleteRangeResponse>, Status> {
        expect!(
            self.call(Request::DeleteRange(r.into_inner())).await?,
            DeleteRange
        )
    }

    async fn txn(&self, r: GrpcRequest<TxnRequest>) -> Result<GrpcResponse<TxnResponse>, Status> {
        expect!(self.call(Request::Txn(r.into_inner())).await?, Txn)
    }

    async fn compact(
        &self,
        r: GrpcRequest<CompactionRequest>,
    ) -> Result<GrpcResponse<CompactionResponse>, Status> {
        expect!(self.call(Request::Compact(r.into_inner())).await?, Compact)
    }
}

#[tonic::async_trait]
impl lease_server::Lease for Api {
    async fn lease_grant(
        &self,
        r: GrpcRequest<LeaseGrantRequest>,
    ) -> Result<GrpcResponse<LeaseGrantResponse>, Status> {
        expect!(
            self.call(Request::LeaseGrant(r.into_inner())).await?,
            LeaseGrant
        )
    }

    async fn lease_revoke(
        &self,
        r: GrpcRequest<LeaseRevokeRequest>,
    ) -> Result<GrpcResponse<LeaseRevokeResponse>, Status> {
        expect!(
            self.call(Request::LeaseRevoke(r.into_inner())).await?,
            LeaseRevoke
        )
    }

    async fn lease_time_to_live(
        &self,
        r: GrpcRequest<LeaseTimeToLiveRequest>,
    ) -> Result<GrpcResponse<LeaseTimeToLiveResponse>, Status> {
        expect!(
            self.call(Request::LeaseTimeToLive(r.into_inner())).await?,
            LeaseTimeToLive
        )
    }

    async fn lease_leases(
        &self,
        r: GrpcRequest<LeaseLeasesRequest>,
    ) -> Result<GrpcResponse<LeaseLeasesResponse>, Status> {
        expect!(
            self.call(Request::LeaseLeases(r.into_inner())).await?,
            LeaseLeases
        )
    }

    async fn lease_keep_alive(
        &self,
        r: GrpcRequest<tonic::Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<GrpcResponse<tonic::codegen::BoxStream<LeaseKeepAliveResponse>>, Status> {
        let mut incoming = r.into_inner();
        let (out, responses) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(request)) = incoming.next().await {
                let id = request.id;
                let answer = match api.call(Request::LeaseKeepAlive(request)).await {
                    Ok(Response::LeaseKeepAlive(r)) => Ok(r),
                    // etcd answers an unknown lease with TTL 0 rather than an error.
                    Err(s) if s.code() == Code::NotFound => Ok(LeaseKeepAliveResponse {
                        header: api.header().await.ok(),
                        id,
                        ttl: 0,
                    }),
                    Ok(_) => Err(mismatch()),
                    Err(s) => Err(s),
                };
                if out.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Ok(GrpcResponse::new(Box::pin(ReceiverStream::new(responses))))
    }
}

#[tonic::async_trait]
impl cluster_server::Cluster for Api {
    async fn member_list(
        &self,
        _: GrpcRequest<MemberListRequest>,
    ) -> Result<GrpcResponse<MemberListResponse>, Status> {
        let report = self.member.status().await.map_err(to_status)?;
        let members = report.members.iter().map(Member::from).collect();
        Ok(GrpcResponse::new(MemberListResponse {
            header: Some(report.header),
            members,
        }))
    }
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for Api {
    async fn alarm(
        &self,
        _: GrpcRequest<AlarmRequest>,
    ) -> Result<GrpcResponse<AlarmResponse>, Status> {
        // No alarms are ever raised (no space quota, no corruption check).
        Ok(GrpcResponse::new(AlarmResponse {
            header: Some(self.header().await?),
            alarms: vec![],
        }))
    }

    async fn snapshot(
        &self,
        _: GrpcRequest<SnapshotRequest>,
    ) -> Result<GrpcResponse<tonic::codegen::BoxStream<SnapshotResponse>>, Status> {
        let file = self.member.snapshot().await.map_err(to_status)?;
        let header = self.header().await?;
        // The body in 32 KiB chunks, then the SHA-256 trailer on its own, as etcd sends.
        let (body, sha) = file.split_at(file.len() - 32);
        let mut messages = Vec::new();
        let mut remaining = body.len();
        for chunk in body.chunks(32 * 1024) {
            remaining -= chunk.len();
            messages.push(Ok(SnapshotResponse {
                header: Some(header),
                remaining_bytes: remaining as u64,
                blob: chunk.to_vec(),
            }));
        }
        messages.push(Ok(SnapshotResponse {
            header: Some(header),
            remaining_bytes: 0,
            blob: sha.to_vec(),
        }));
        Ok(GrpcResponse::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn hash_kv(
        &self,
        r: GrpcRequest<HashKvRequest>,
    ) -> Result<GrpcResponse<HashKvResponse>, Status> {
        let revision = r.into_inner().revision;
        let (h, header) = self.member.hash_kv(revision).await.map_err(to_status)?;
        Ok(GrpcResponse::new(HashKvResponse {
            header: Some(header),
            hash: h.hash,
            compact_revision: h.compact_revision,
        }))
    }

    async fn status(
        &self,
        _: GrpcRequest<StatusRequest>,
    ) -> Result<GrpcResponse<StatusResponse>, Status> {
        let report = self.member.status().await.map_err(to_status)?;
        let s = report.status;
        Ok(GrpcResponse::new(StatusResponse {
            header: Some(report.header),
            version: API_VERSION.to_string(),
            db_size: report.db_size as i64,
            leader: s.leader,
            raft_index: s.commit,
            raft_term: s.term,
            raft_applied_index: s.applied,
            errors: vec![],
            db_size_in_use: report.db_size as i64,
            is_learner: false,
        }))
    }
}

#[tonic::async_trait]
impl watch_server::Watch for Api {
    async fn watch(
        &self,
        r: GrpcRequest<tonic::Streaming<WatchRequest>>,
    ) -> Result<GrpcResponse<tonic::codegen::BoxStream<WatchResponse>>, Status> {
        let mut incoming = r.into_inner();
        let (out, responses) = mpsc::channel::<Result<WatchResponse, Status>>(256);
        let api = self.clone();
        tokio::spawn(async move {
            // This stream's watch IDs (from 0, as etcd numbers them) → the member's.
            let mut ids: BTreeMap<i64, i64> = BTreeMap::new();
            let mut next = 0;
            while let Some(Ok(request)) = incoming.next().await {
                match request.request_union {
                    Some(watch_request::RequestUnion::CreateRequest(c)) => {
                        let id = if c.watch_id > 0 { c.watch_id } else { next };
                        next = next.max(id) + 1;
                        let create = WatchCreate {
                            key: c.key,
                            range_end: c.range_end,
                            start_revision: c.start_revision,
                            prev_kv: c.prev_kv,
                        };
                        if let Some(member_id) = api.open_watch(id, create, out.clone()).await {
                            ids.insert(id, member_id);
                        }
                    }
                    Some(watch_request::RequestUnion::CancelRequest(c)) => {
                        if let Some(member_id) = ids.remove(&c.watch_id) {
                            api.member.cancel_watch(member_id).await;
                        }
                        let header = api.header().await.ok();
                        let _ = out
                            .send(Ok(WatchResponse {
                                header,
                                watch_id: c.watch_id,
                                canceled: true,
                                ..Default::default()
                            }))
                            .await;
                    }
                    Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                        let header = api.header().await.ok();
                        let _ = out
                            .send(Ok(WatchResponse {
                                header,
                                watch_id: -1,
                                ..Default::default()
                            }))
                            .await;
                    }
                    None => {}
                }
            }
            for member_id in ids.into_values() {
                api.member.cancel_watch(member_id).await;
            }
        });
        Ok(GrpcResponse::new(Box::pin(ReceiverStream::new(responses))))
    }
}

impl Api {
    /// Creates one watch and a task that forwards its events to the stream. Returns the
    /// member's watch ID, or `None` if the watch was refused (the client is told why).
    async fn open_watch(
        &self,
        id: i64,
        create: WatchCreate,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
    ) -> Option<i64> {
        let (sink, mut deliveries) = mpsc::unbounded_channel();
        let header = self.header().await.ok();
        let created = WatchResponse {
            header,
            watch_id: id,
            created: true,
            ..Default::default()
        };
        match self.member.watch(create, sink).await {
            Ok(member_id) => {
                let _ = out.send(Ok(created)).await;
                tokio::spawn(async move {
                    while let Some(d) = deliveries.recv().await {
                        let response = WatchResponse {
                            header: Some(d.header),
                            watch_id: id,
                            events: d.events,
                            ..Default::default()
                        };
                        if out.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                    // The member ended the watch (its history was compacted, or the
                    // member stopped): tell the client, which must watch again.
                    let _ = out
                        .send(Ok(WatchResponse {
                            watch_id: id,
                            canceled: true,
                            cancel_reason: Error::Compacted {
                                compact_revision: 0,
                            }
                            .to_string(),
                            ..Default::default()
                        }))
                        .await;
                });
                Some(member_id)
            }
            Err(e) => {
                // etcd answers "created", then cancels with the compaction point.
                let compact_revision = match e {
                    Error::Compacted { compact_revision } => compact_revision,
                    _ => 0,
                };
                let _ = out.send(Ok(created)).await;
                let _ = out
                    .send(Ok(WatchResponse {
                        header,
                        watch_id: id,
                        canceled: true,
                        compact_revision,
                        cancel_reason: e.to_string(),
                        ..Default::default()
                    }))
                    .await;
                None
            }
        }
    }
}
