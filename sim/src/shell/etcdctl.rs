//! `etcdctl` (v3 API), talking gRPC to the members' client URLs. By default it uses the
//! member on this node (`--endpoints=http://<node ip>:2379`), as kubespray's
//! `/usr/local/bin/etcdctl.sh` wrapper does.

use std::time::Duration;

use clap::{Parser, Subcommand};
use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::{
    cluster_client::ClusterClient, DeleteRangeRequest, MemberListRequest, PutRequest, RangeRequest,
};
use kvstore::request::prefix_end;
use kvstore::tools::printer::{self, MEMBER_HEADS, STATUS_HEADS};

use super::{Output, Stdout};
use crate::cluster::Node;
use crate::node::{reason, Follow};

#[derive(Parser)]
#[command(name = "etcdctl")]
struct Etcdctl {
    #[arg(long, global = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// simple, table or json.
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple"
    )]
    write_out: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Member {
        #[command(subcommand)]
        what: MemberCmd,
    },
    Endpoint {
        #[command(subcommand)]
        what: EndpointCmd,
    },
    Get {
        key: String,
        #[arg(long)]
        prefix: bool,
        #[arg(long)]
        keys_only: bool,
    },
    Put {
        key: String,
        value: String,
    },
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    Snapshot {
        #[command(subcommand)]
        what: SnapshotCmd,
    },
    /// Watches a key (or a prefix) and prints each change, until Ctrl-C.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
}

#[derive(Subcommand)]
enum MemberCmd {
    List,
}

#[derive(Subcommand)]
enum EndpointCmd {
    Status {
        #[arg(long)]
        cluster: bool,
    },
    Health {
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCmd {
    Save {
        file: String,
    },
    Status {
        file: String,
    },
    /// Builds a fresh member data directory from a snapshot, for a new cluster.
    Restore {
        file: String,
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long)]
        data_dir: Option<String>,
        #[arg(long)]
        initial_cluster: Option<String>,
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
    },
}

/// Runs `etcdctl ...` on `node`.
pub async fn run(node: &Node, argv: &[String], stdout: &Stdout) -> Output {
    let cli = match Etcdctl::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return Output::fail(e.render().to_string(), 1),
    };
    let endpoints = if cli.endpoints.is_empty() {
        vec![format!("http://{}:2379", node.ctx.ip)]
    } else {
        cli.endpoints.clone()
    };
    let ctl = Ctl {
        node,
        endpoints,
        format: cli.write_out.clone(),
    };
    if let Command::Watch { key, prefix } = &cli.command {
        let client = match ctl.client(&ctl.endpoints) {
            Ok(c) => c,
            Err(e) => return e,
        };
        return super::stream::etcd_watch(&client, key, *prefix, stdout)
            .await
            .unwrap_or_else(|e| e);
    }
    ctl.run(cli.command).await.unwrap_or_else(|e| e)
}

struct Ctl<'a> {
    node: &'a Node,
    endpoints: Vec<String>,
    format: String,
}

fn error(e: impl std::fmt::Display) -> Output {
    Output::fail(format!("Error: {e}"), 1)
}

/// `Error: PATH: REASON` for a file etcdctl could not read or write.
fn file_error(path: &str, e: &std::io::Error) -> Output {
    error(format!("{path}: {}", reason(e)))
}

impl Ctl<'_> {
    /// A file or directory named on the command line, as a host path on this node
    /// (confined to the node: see [`crate::node::NodeContext::resolve`]).
    fn on_node(&self, path: &str) -> Result<std::path::PathBuf, Output> {
        self.node
            .ctx
            .resolve(path, Follow::All)
            .map_err(|e| file_error(path, &e))
    }

    /// An endpoint as a URL (`10.0.0.11:2379` → `http://10.0.0.11:2379`), dialed
    /// through the cluster's network.
    fn url(&self, endpoint: &str) -> String {
        if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        }
    }

    fn client(&self, endpoints: &[String]) -> Result<Client, Output> {
        let mut config = ClientConfig::new(endpoints.iter().map(|e| self.url(e)).collect());
        config.network = self.node.ctx.network.clone();
        config.clock = self.node.ctx.clock.clone();
        // One endpoint (status, health): a dead member should not hold the answer up.
        config.timeout = if endpoints.len() == 1 {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        };
        Client::new(config).map_err(error)
    }

    async fn run(&self, command: Command) -> Result<Output, Output> {
        match command {
            Command::Member {
                what: MemberCmd::List,
            } => self.member_list().await,
            Command::Endpoint {
                what: EndpointCmd::Status { cluster },
            } => self.endpoint_status(cluster).await,
            Command::Endpoint {
                what: EndpointCmd::Health { cluster },
            } => self.endpoint_health(cluster).await,
            Command::Get {
                key,
                prefix,
                keys_only,
            } => {
                let (key, range_end) = range(key, prefix);
                let request = RangeRequest {
                    key,
                    range_end,
                    keys_only,
                    ..Default::default()
                };
                let r = self
                    .client(&self.endpoints)?
                    .range(request)
                    .await
                    .map_err(error)?;
                let mut out = String::new();
                for kv in r.kvs {
                    out.push_str(&format!(
                        "{}\n{}\n",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value)
                    ));
                }
                Ok(Output::ok(out))
            }
            Command::Put { key, value } => {
                let request = PutRequest {
                    key: key.into_bytes(),
                    value: value.into_bytes(),
                    ..Default::default()
                };
                self.client(&self.endpoints)?
                    .put(request)
                    .await
                    .map_err(error)?;
                Ok(Output::ok("OK\n"))
            }
            Command::Del { key, prefix } => {
                let (key, range_end) = range(key, prefix);
                let request = DeleteRangeRequest {
                    key,
                    range_end,
                    ..Default::default()
                };
                let r = self
                    .client(&self.endpoints)?
                    .delete_range(request)
                    .await
                    .map_err(error)?;
                Ok(Output::ok(format!("{}\n", r.deleted)))
            }
            Command::Snapshot {
                what: SnapshotCmd::Save { file },
            } => self.snapshot_save(&file).await,
            Command::Snapshot {
                what:
                    SnapshotCmd::Restore {
                        file,
                        name,
                        data_dir,
                        initial_cluster,
                        initial_cluster_token,
                        initial_advertise_peer_urls,
                    },
            } => {
                let dir = data_dir.unwrap_or_else(|| format!("{name}.etcd"));
                // Both paths are checked before anything is read or written.
                let source = self.on_node(&file)?;
                let target = self.on_node(&dir)?;
                let bytes = std::fs::read(source).map_err(|e| file_error(&file, &e))?;
                let status = kvstore::tools::restore_member(
                    &bytes,
                    &name,
                    initial_cluster.as_deref(),
                    &initial_cluster_token,
                    &initial_advertise_peer_urls,
                    &target,
                )
                .map_err(error)?;
                let now = api::time::now(&*self.node.ctx.clock).strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
                let line = |msg: &str, extra: String| {
                    format!("{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go\",\"msg\":\"{msg}\",\"path\":\"{file}\",\"data-dir\":\"{dir}\"{extra}}}\n")
                };
                let out = line("restoring snapshot", String::new())
                    + &line(
                        "restored snapshot",
                        format!(",\"revision\":{}", status.revision),
                    );
                Ok(Output::ok(out))
            }
            Command::Snapshot {
                what: SnapshotCmd::Status { file },
            } => {
                let bytes =
                    std::fs::read(self.on_node(&file)?).map_err(|e| file_error(&file, &e))?;
                let status = kvstore::snapshot::status(&bytes).map_err(error)?;
                printer::format_status(&status, &self.format)
                    .map(Output::ok)
                    .map_err(error)
            }
            // Streams into the line's output: `run` takes it before this match.
            Command::Watch { .. } => Ok(Output::default()),
        }
    }

    async fn members(&self) -> Result<Vec<kvstore::proto::etcdserverpb::Member>, Output> {
        let mut last = String::from("no endpoints");
        for e in &self.endpoints {
            let url = self.url(e);
            let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url) else {
                continue;
            };
            let endpoint = endpoint.timeout(Duration::from_secs(3));
            // The dialer gives up a connection after 1 s of the node's clock.
            let dialer = kvstore::client::Dialer::new(
                self.node.ctx.network.clone(),
                self.node.ctx.clock.clone(),
                Duration::from_secs(1),
            );
            match endpoint.connect_with_connector(dialer).await {
                Ok(channel) => match ClusterClient::new(channel)
                    .member_list(MemberListRequest::default())
                    .await
                {
                    Ok(r) => return Ok(r.into_inner().members),
                    Err(s) => last = s.message().to_string(),
                },
                Err(e) => last = format!("context deadline exceeded ({e})"),
            }
        }
        Err(error(last))
    }

    async fn member_list(&self) -> Result<Output, Output> {
        let rows: Vec<Vec<String>> = self
            .members()
            .await?
            .iter()
            .map(printer::member_row)
            .collect();
        Ok(Output::ok(match self.format.as_str() {
            "table" => printer::table(&MEMBER_HEADS, &rows),
            _ => rows.iter().map(|r| format!("{}\n", r.join(", "))).collect(),
        }))
    }

    /// The endpoints to ask: the given ones, or (`--cluster`) every member's client URL.
    async fn targets(&self, cluster: bool) -> Result<Vec<String>, Output> {
        if !cluster {
            return Ok(self.endpoints.clone());
        }
        Ok(self
            .members()
            .await?
            .into_iter()
            .flat_map(|m| m.client_ur_ls)
            .collect())
    }

    async fn endpoint_status(&self, cluster: bool) -> Result<Output, Output> {
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        for ep in self.targets(cluster).await? {
            match self.client(std::slice::from_ref(&ep))?.status().await {
                Ok(s) => rows.push(printer::status_row(&ep, &s)),
                Err(_) => failed.push(format!(
                    "Failed to get the status of endpoint {ep} (context deadline exceeded)"
                )),
            }
        }
        let stdout = match self.format.as_str() {
            "table" => printer::table(&STATUS_HEADS, &rows),
            _ => rows.iter().map(|r| format!("{}\n", r.join(", "))).collect(),
        };
        let stderr: String = failed
            .iter()
            .map(|f| format!("{{\"level\":\"warn\",\"msg\":\"{f}\"}}\n"))
            .collect();
        Ok(Output {
            stdout,
            stderr,
            code: 0,
        })
    }

    async fn endpoint_health(&self, cluster: bool) -> Result<Output, Output> {
        let mut out = Output::default();
        for ep in self.targets(cluster).await? {
            let clock = self.node.ctx.clock.clone();
            let started = clock.now();
            let request = RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            };
            match self.client(std::slice::from_ref(&ep))?.range(request).await {
                Ok(_) => out.stderr.push_str(&format!(
                    "{ep} is healthy: successfully committed proposal: took = {:?}\n",
                    clock.elapsed(started)
                )),
                Err(e) => {
                    out.stderr.push_str(&format!(
                        "{ep} is unhealthy: failed to commit proposal: {e}\n"
                    ));
                    out.code = 1;
                }
            }
        }
        if out.code != 0 {
            out.stderr.push_str("Error: unhealthy cluster\n");
        }
        Ok(out)
    }

    async fn snapshot_save(&self, file: &str) -> Result<Output, Output> {
        // Where it goes is checked before the download: the file, and `FILE.part`
        // (etcdctl writes there first, then renames), either of which may be a link.
        let path = self.on_node(file)?;
        let part_name = format!("{file}.part");
        let part = self.on_node(&part_name)?;
        let client = self.client(&self.endpoints[..1])?;
        let ep = &self.endpoints[0];
        let bytes = client.snapshot().await.map_err(error)?;
        kvstore::snapshot::status(&bytes)
            .map_err(|e| error(format!("the member sent a bad snapshot: {e}")))?;
        std::fs::write(&part, &bytes).map_err(|e| file_error(&part_name, &e))?;
        std::fs::rename(&part, &path).map_err(|e| file_error(file, &e))?;
        let now = api::time::now(&*self.node.ctx.clock)
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let stdout = format!(
            "{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:119\",\"msg\":\"created temporary db file\",\"path\":\"{file}.part\"}}\n\
             {{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:127\",\"msg\":\"fetching snapshot\",\"endpoint\":\"{ep}\"}}\n\
             {{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:140\",\"msg\":\"fetched snapshot\",\"endpoint\":\"{ep}\",\"size\":\"{}\"}}\n\
             {{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:152\",\"msg\":\"saved\",\"path\":\"{file}\"}}\n\
             Snapshot saved at {file}\n",
            printer::humanize(bytes.len() as u64)
        );
        Ok(Output::ok(stdout))
    }
}

/// The key and range end of `get`/`del KEY [--prefix]`, as clientv3's `WithPrefix`
/// makes them: an empty key with `--prefix` is every key (`\0` to the end).
fn range(key: String, prefix: bool) -> (Vec<u8>, Vec<u8>) {
    match (prefix, key.is_empty()) {
        (true, true) => (vec![0], vec![0]),
        (true, false) => {
            let end = prefix_end(key.as_bytes());
            (key.into_bytes(), end)
        }
        (false, _) => (key.into_bytes(), vec![]),
    }
}
