//! The writers: concurrent clients that put unique keys and write down what the
//! cluster answered.
//!
//! A write's outcome is one of three, and the difference is the whole point:
//!
//! - **acknowledged**: the member said OK, with the revision of the write. The
//!   cluster promised it; losing it later is a durability bug.
//! - **not applied**: the member said so for certain — it had no leader and never
//!   proposed it, or the connection could not even be made. It must *not* appear.
//! - **indeterminate**: anything else (a timeout, a connection that broke after the
//!   request went out, "leader changed"). It may or may not have been applied; if it
//!   was, its value must be the one written.
//!
//! Each writer sends each request to the next endpoint in turn, so followers forward
//! proposals and every member is a client's member some of the time. Writer 0 writes
//! two keys per request in a transaction (one revision, sub-revisions 0 and 1).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvstore::proto::etcdserverpb::kv_client::KvClient;
use kvstore::proto::etcdserverpb::{request_op, PutRequest, RequestOp, ResponseHeader, TxnRequest};
use tonic::transport::{Channel, Endpoint};

/// Every key the harness writes starts with this.
pub const PREFIX: &str = "torture/";

/// One write request: its key-value pairs, and for an acknowledged one its revision.
#[derive(Debug, Clone)]
pub struct Write {
    pub pairs: Vec<(String, String)>,
    pub revision: i64,
}

/// What the writers saw, shared by them all.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acked: Vec<Write>,
    pub maybe: Vec<Write>,
    pub not_applied: Vec<Write>,
    /// How often each error text came back (the first 90 characters).
    pub errors: BTreeMap<String, u64>,
}

/// How a failed request ended.
fn certainly_not_applied(status: &tonic::Status) -> bool {
    let m = status.message();
    m == "etcdserver: no leader"
        || m == "etcdserver: server stopped"
        // The TCP connection was never made, so nothing was sent.
        || m.contains("tcp connect error")
        || m.contains("Connection refused")
}

/// A client of one endpoint (it reconnects by itself after the member restarts).
pub fn kv_client(url: &str) -> KvClient<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .expect("a valid URL")
        .connect_timeout(Duration::from_secs(2))
        // Above the member's own request timeout (7 s), so the member decides.
        .timeout(Duration::from_secs(10));
    KvClient::new(endpoint.connect_lazy())
}

/// Runs writer `w` until `stop` is set.
pub async fn run(
    w: usize,
    seed: u64,
    endpoints: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let clients: Vec<KvClient<Channel>> = endpoints.iter().map(|e| kv_client(e)).collect();
    let keys_per_write = if w == 0 { 2 } else { 1 };
    let mut seq = 0usize;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let pairs: Vec<(String, String)> = (0..keys_per_write)
            .map(|k| {
                let key = format!("{PREFIX}w{w}/{seq:07}/{k}");
                // Unique per seed, writer, request and key: a value from elsewhere
                // (another run, another key) cannot be mistaken for this one.
                let value = format!("{seed:016x}-w{w}-{seq}-{k}-{}", "x".repeat(40));
                (key, value)
            })
            .collect();
        let mut client = clients[(w + seq) % clients.len()].clone();
        let result = if pairs.len() == 1 {
            let request = PutRequest {
                key: pairs[0].0.clone().into_bytes(),
                value: pairs[0].1.clone().into_bytes(),
                ..Default::default()
            };
            client.put(request).await.map(|r| r.into_inner().header)
        } else {
            let success = pairs
                .iter()
                .map(|(k, v)| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: k.clone().into_bytes(),
                        value: v.clone().into_bytes(),
                        ..Default::default()
                    })),
                })
                .collect();
            let request = TxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            };
            client.txn(request).await.map(|r| r.into_inner().header)
        };
        let failed = result.is_err();
        record(&ledger, pairs, result);
        if failed {
            // Do not spin while a member is down: try again (elsewhere) shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes a request's outcome into the ledger.
fn record(
    ledger: &Mutex<Ledger>,
    pairs: Vec<(String, String)>,
    result: Result<Option<ResponseHeader>, tonic::Status>,
) {
    let mut ledger = ledger.lock().expect("no writer panics holding the ledger");
    match result {
        Ok(header) => {
            let revision = header.map_or(0, |h| h.revision);
            ledger.acked.push(Write { pairs, revision });
        }
        Err(status) => {
            let text: String = status.message().chars().take(90).collect();
            *ledger.errors.entry(text).or_default() += 1;
            let write = Write { pairs, revision: 0 };
            if certainly_not_applied(&status) {
                ledger.not_applied.push(write);
            } else {
                ledger.maybe.push(write);
            }
        }
    }
}
