//! One etcd member as a real server: a data directory, a timer, sockets, and the gRPC
//! API the real `etcdctl` speaks.
//!
//! The deterministic [`Member`] does all the thinking. This module only gives it
//! real-world edges, each in its own file:
//!
//! - [`driver`]: the member's one thread, which owns the member, ticks it on a timer
//!   (etcd's heartbeat interval, 100 ms by default) and runs its Ready loop after every
//!   batch of events; the sockets below live on the same thread (see the driver for
//!   why). In the simulator ([`MemberRuntime::Shared`]) the same loop is a task on the
//!   one thread the whole cluster runs on;
//! - [`transport`]: Raft messages to and from the peers, on the peer URL;
//! - [`grpc`]: etcd's KV, Watch, Lease, Cluster and Maintenance services on the
//!   client URL, served by tonic on the connections of [`incoming`];
//! - [`authority`]: a thin wrapper on each client connection that repairs the
//!   `:authority` header etcdctl 3.4 sends when it dials a member by URL.
//! - `local` (feature `testing`): a whole cluster of members in one process, for tests.
//! - [`logging`]: log lines stamped with the member's clock.
//!
//! Every socket of the member — its client port, its peer port, its dials to the
//! peers — comes from one [`Network`](seams::net::Network), given in its
//! [`ServerConfig`]: real TCP ([`seams::Tcp`]) in the `etcd` binary, node addresses
//! mapped to loopback in the simulator.
//!
//! [`start`] wires them together; the `etcd` binary (`src/bin/etcd.rs`) is a thin shell
//! over it with etcd's flags.

pub mod authority;
pub mod driver;
pub mod grpc;
pub mod incoming;
#[cfg(any(test, feature = "testing"))]
pub mod local;
pub mod logging;
pub mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use seams::clock::SharedClock;
use seams::net::{host_port, Listener, SharedNetwork};
use seams::rand::Rng;
use seams::scope::Scope;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::member::{Member, MemberConfig};
use crate::membership::ClusterInfo;
use crate::proto::etcdserverpb::{
    cluster_server, kv_server, lease_server, maintenance_server, watch_server,
};
use crate::storage::sled::SledStorage;
pub use driver::{Exit, Handle};
use incoming::Incoming;
use transport::Outbound;

/// How to run one member (etcd's flags, parsed).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// This member's ID in `cluster`.
    pub id: u64,
    /// Every member, with names and URLs.
    pub cluster: ClusterInfo,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--listen-client-urls` (one address).
    pub listen_client: String,
    /// `--listen-peer-urls` (one address).
    pub listen_peer: String,
    /// `--heartbeat-interval`: the tick.
    pub heartbeat: Duration,
    /// `--election-timeout`, a multiple of the heartbeat.
    pub election_timeout: Duration,
    /// How long a request may take before it fails. etcd uses 5 s plus two election
    /// timeouts; see [`ServerConfig::etcd_request_timeout`].
    pub request_timeout: Duration,
    /// `--snapshot-count`: entries between snapshots, 0 for never (etcd 3.4's
    /// default: 100 000).
    pub snapshot_count: u64,
    /// `--max-request-bytes`: the largest request a client may send (etcd: 1.5 MiB).
    /// The gRPC server takes messages up to this plus 512 KiB, as etcd's does.
    pub max_request_bytes: usize,
    /// Where every socket comes from: the client and peer listeners, and the dials to
    /// the peers. [`seams::Tcp`] for a real member; the simulator routes its node
    /// addresses (`10.0.0.12:2380`) to loopback sockets.
    pub network: SharedNetwork,
    /// Where every time of the member comes from: its Raft ticks (so its election and
    /// heartbeat timeouts, request deadlines and lease expiry, all counted in ticks),
    /// its reconnect backoff, its store's write batches, its request IDs' start time.
    pub clock: SharedClock,
    /// Where the member's randomness comes from: each start draws the seed of its
    /// election timeouts from it (`member/elections.rs`). Member IDs are not random:
    /// they are derived from the peer URLs and the cluster token, as etcd's are.
    pub rng: Rng,
    /// Where the member runs: a thread of its own, or the caller's runtime.
    pub runtime: MemberRuntime,
}

/// Where a member's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberRuntime {
    /// A thread of its own with its own runtime, which holds the member, its sockets
    /// and their tasks; stopping the member drops that runtime, closing everything at
    /// once as a process exit would. The `etcd` binary and the tests run this way.
    #[default]
    OwnThread,
    /// Tasks on the runtime that starts it, with no other thread at all (the store's
    /// batches are written inline too): the simulator runs a whole cluster on one
    /// thread under a paused clock. Every socket comes from a [`Scope`] over the
    /// configured network, killed when the member stops, so its connections close as
    /// a process's do even where tonic spawned them.
    Shared,
}

impl ServerConfig {
    /// etcd's request timeout for these timings: 5 s plus two election timeouts.
    pub fn etcd_request_timeout(election_timeout: Duration) -> Duration {
        Duration::from_secs(5) + 2 * election_timeout
    }
}

/// What etcd's gRPC server allows a message beyond `--max-request-bytes` (etcd's
/// `grpcOverheadBytes`): the framing and fields around the largest request.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// A running member.
pub struct Server {
    /// Talks to the member directly.
    pub handle: Handle,
    /// Where the gRPC API listens (`host:port`, as the network names it).
    pub client_addr: String,
    /// Where peers connect.
    pub peer_addr: String,
    /// Ends the member's thread, whose runtime holds its sockets, connections and
    /// streams: stopping the member closes all of them at once, as a process exit would.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<Running>,
    exit: tokio::sync::watch::Receiver<Option<Exit>>,
}

/// Where a starting member's tasks go.
enum Place {
    Thread(tokio::runtime::Runtime),
    Tasks(Arc<Scope>),
}

/// What runs a member, as [`MemberRuntime`] says.
enum Running {
    Thread(std::thread::JoinHandle<()>),
    Tasks {
        /// Ends once the member is dropped (stopped) or failed.
        member: tokio::task::JoinHandle<()>,
        /// Its servers: the gRPC API and the peer listener.
        servers: Vec<tokio::task::AbortHandle>,
        /// Every socket it has.
        sockets: Arc<Scope>,
    },
}

impl Running {
    /// Closes every socket and ends the servers (the member itself is told by `stop`).
    fn close(&self) {
        if let Running::Tasks {
            servers, sockets, ..
        } = self
        {
            close(servers, sockets);
        }
    }
}

fn close(servers: &[tokio::task::AbortHandle], sockets: &Scope) {
    sockets.kill();
    for server in servers {
        server.abort();
    }
}

impl Server {
    /// Why the member ended by itself, once it has (`None` while it runs, and after
    /// [`Server::stop`]).
    pub fn exit(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    /// Waits until the member ends by itself, and says why; a member that is only
    /// ever stopped never gets here.
    pub fn exited(&self) -> impl std::future::Future<Output = Exit> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            loop {
                if let Some(exit) = exit.borrow_and_update().clone() {
                    return exit;
                }
                if exit.changed().await.is_err() {
                    return std::future::pending().await; // stopped: no exit to report
                }
            }
        }
    }

    /// Stops the member: every connection and stream closes, and its data directory
    /// is closed (it can be opened again).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(Running::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(Running::Tasks {
                member,
                servers,
                sockets,
            }) => {
                // The member is dropped (its storage closed) before its sockets.
                let _ = member.await;
                close(&servers, &sockets);
            }
            None => {}
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = &self.thread {
            running.close();
        }
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Opens the data directory, listens on both URLs through the config's network, starts
/// the member and serves.
pub async fn start(mut config: ServerConfig) -> Result<Server> {
    let scope = scoped(&mut config);
    let peer_listener = config
        .network
        .listen(host_port(&config.listen_peer))
        .map_err(io)?;
    let client_listener = config
        .network
        .listen(host_port(&config.listen_client))
        .map_err(io)?;
    serve(config, peer_listener, client_listener, scope).await
}

/// [`start`] on listeners made already (tests listen on port 0 first, to learn the
/// ports every member's configuration must name). In [`MemberRuntime::Shared`], only
/// the member's dials are closed when it stops: the listeners are the caller's.
pub async fn start_on(
    mut config: ServerConfig,
    peer_listener: Box<dyn Listener>,
    client_listener: Box<dyn Listener>,
) -> Result<Server> {
    let scope = scoped(&mut config);
    serve(config, peer_listener, client_listener, scope).await
}

/// For a member on the caller's runtime, a [`Scope`] over its network, which the
/// member then uses for every socket, so that stopping it closes them all.
fn scoped(config: &mut ServerConfig) -> Option<Arc<Scope>> {
    (config.runtime == MemberRuntime::Shared).then(|| {
        let scope = Scope::new(config.network.clone());
        config.network = scope.clone();
        scope
    })
}

/// Opens the store and serves on the listeners; `scope` holds the member's sockets
/// when it runs on the caller's runtime.
async fn serve(
    config: ServerConfig,
    peer_listener: Box<dyn Listener>,
    client_listener: Box<dyn Listener>,
    scope: Option<Arc<Scope>>,
) -> Result<Server> {
    let writer = match config.runtime {
        MemberRuntime::OwnThread => crate::storage::backend::Writer::Thread,
        MemberRuntime::Shared => crate::storage::backend::Writer::Inline,
    };
    let storage = SledStorage::open_with(
        &config.data_dir,
        &config.cluster,
        config.clock.clone(),
        writer,
    )?;
    let ticks =
        (config.election_timeout.as_millis() / config.heartbeat.as_millis().max(1)) as usize;
    let election_tick = ticks.max(2);
    let member_config = MemberConfig {
        id: config.id,
        election_tick,
        heartbeat_tick: 1,
        // raft-rs's randomised window [election, 2 * election).
        min_election_tick: election_tick,
        max_election_tick: 2 * election_tick,
        election_seed: config.rng.next_u64(),
        request_timeout_ticks: (config.request_timeout.as_millis()
            / config.heartbeat.as_millis().max(1)) as u64,
        read_retry_ticks: (election_tick as u64 / 2).max(1),
        publish_attributes: true,
        ticks_per_second: (1000 / config.heartbeat.as_millis().max(1)) as u64,
        snapshot_count: config.snapshot_count,
        max_request_bytes: config.max_request_bytes,
    };
    let member = Member::start(member_config, config.cluster.clone(), storage);
    let peer_addr = peer_listener.local_addr();
    let client_addr = client_listener.local_addr();
    let peers: BTreeMap<u64, String> = config
        .cluster
        .members
        .iter()
        .filter(|m| m.id != config.id)
        .filter_map(|m| Some((m.id, host_port(m.peer_urls.first()?).to_string())))
        .collect();

    // Own thread: a runtime of the member's own, entered while its tasks are made.
    let place = match scope {
        None => Place::Thread(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io)?,
        ),
        Some(sockets) => Place::Tasks(sockets),
    };
    let inside = match &place {
        Place::Thread(runtime) => Some(runtime.enter()),
        Place::Tasks(_) => None,
    };
    let outbound = Outbound::start(config.network.clone(), config.clock.clone(), peers);
    let (handle, inbox) = driver::channel();

    let api = grpc::Api::new(handle.clone());
    // etcd's gRPC server takes messages up to --max-request-bytes plus 512 KiB of
    // headroom; a larger one is refused before it is decoded (ResourceExhausted).
    let max = config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let routes = tonic::service::Routes::new(
        kv_server::KvServer::new(api.clone()).max_decoding_message_size(max),
    )
    .add_service(watch_server::WatchServer::new(api.clone()).max_decoding_message_size(max))
    .add_service(lease_server::LeaseServer::new(api.clone()).max_decoding_message_size(max))
    .add_service(cluster_server::ClusterServer::new(api.clone()).max_decoding_message_size(max))
    .add_service(maintenance_server::MaintenanceServer::new(api).max_decoding_message_size(max));
    let grpc = incoming::serve(Incoming::new(client_listener), routes);
    let servers = vec![
        tokio::spawn(transport::serve_peers(peer_listener, handle.clone())).abort_handle(),
        tokio::spawn(grpc).abort_handle(),
    ];
    drop(inside);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (exit_tx, exit) = tokio::sync::watch::channel(None);
    let timing = (config.clock.clone(), config.heartbeat);
    let thread = match place {
        Place::Thread(runtime) => Running::Thread(driver::spawn(
            runtime, inbox, member, timing, outbound, stopped, exit_tx,
        )),
        Place::Tasks(sockets) => Running::Tasks {
            member: driver::spawn_task(inbox, member, timing, outbound, stopped, exit_tx),
            servers,
            sockets,
        },
    };
    Ok(Server {
        handle,
        client_addr,
        peer_addr,
        stop: Some(stop),
        thread: Some(thread),
        exit,
    })
}
