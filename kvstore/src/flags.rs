//! etcd's command line: [`Config`] is what `etcd --name etcd1 --data-dir ...` sets (etcd's
//! `embed.Config`, filled from its flags), and [`Config::server_config`] turns it into
//! the member's [`ServerConfig`] (etcd's own `config.ServerConfig`).
//!
//! One parser for every way a member is started: the `etcd` binary parses its
//! arguments with it, and the simulator parses the command line of an etcd container
//! with it, so both get the same flags, the same defaults and the same errors.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::server::ServerConfig;
use crate::ClusterInfo;

/// A kvstore member: etcd's v3 API over Raft and sled.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(name = "etcd", version)]
pub struct Config {
    /// Human-readable name of this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// URL to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// This member's client URL, as advertised to the cluster.
    #[arg(long)]
    pub advertise_client_urls: Option<String>,
    /// URL to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// This member's peer URL, as advertised to the cluster.
    #[arg(long)]
    pub initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration: NAME=PEER_URL,...
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// `new` for a new cluster (`existing` is not supported yet).
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,
    /// Distinguishes clusters made from the same --initial-cluster.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot (and compact the log).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = crate::request::MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// How long a request may wait for its answer (a Go duration: `2s`, `500ms`).
    /// Not one of etcd's flags: etcd derives it, 5 s plus two election timeouts, which
    /// is the default here too.
    #[arg(long, value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// `zap` for etcd-style JSON log lines, `capnslog` for plain text.
    #[arg(long, default_value = "capnslog")]
    pub logger: String,
}

impl Config {
    /// This member's client URL: `--advertise-client-urls`, else the one it listens on.
    pub fn advertise_client(&self) -> &str {
        self.advertise_client_urls
            .as_deref()
            .unwrap_or(&self.listen_client_urls)
    }

    /// The member these flags describe, or what is wrong with them. The data
    /// directory defaults to `<name>.etcd`, as etcd's does; its sockets are TCP, its
    /// time the machine's clock and its election timeouts seeded by the OS (`network`,
    /// `clock` and `rng` are the caller's to replace).
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        if self.initial_cluster_state != "new" {
            return Err(format!(
                "--initial-cluster-state {} is not supported (only new)",
                self.initial_cluster_state
            ));
        }
        if self.heartbeat_interval == 0 || self.election_timeout < 2 * self.heartbeat_interval {
            return Err("--election-timeout must be at least twice --heartbeat-interval".into());
        }
        let advertise_peer = self
            .initial_advertise_peer_urls
            .clone()
            .unwrap_or_else(|| self.listen_peer_urls.clone());
        let spec = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={advertise_peer}", self.name));
        let cluster = ClusterInfo::parse_initial_cluster(
            &spec,
            &self.initial_cluster_token,
            &self.name,
            &[self.advertise_client().to_string()],
        )?;
        let id = cluster
            .members
            .iter()
            .find(|m| m.name == self.name)
            .map(|m| m.id)
            .ok_or("this member is not in --initial-cluster")?;
        let election_timeout = Duration::from_millis(self.election_timeout);
        Ok(ServerConfig {
            id,
            cluster,
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name))),
            listen_client: self.listen_client_urls.clone(),
            listen_peer: self.listen_peer_urls.clone(),
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_timeout,
            request_timeout: self
                .request_timeout
                .unwrap_or_else(|| ServerConfig::etcd_request_timeout(election_timeout)),
            snapshot_count: self.snapshot_count,
            max_request_bytes: self.max_request_bytes,
            network: seams::Tcp::shared(),
            clock: seams::SystemClock::shared(),
            rng: seams::Rng::from_entropy(),
            runtime: crate::server::MemberRuntime::default(),
        })
    }
}

pub use seams::duration::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_a_server_config_or_say_what_is_wrong() {
        let config = Config::try_parse_from([
            "etcd",
            "--name=etcd2",
            "--initial-cluster=etcd1=http://10.0.0.11:2380,etcd2=http://10.0.0.12:2380",
            "--listen-client-urls=http://10.0.0.12:2379",
            "--election-timeout=250",
            "--heartbeat-interval=25",
        ])
        .unwrap();
        let server = config.server_config().unwrap();
        assert_eq!(server.data_dir, PathBuf::from("etcd2.etcd"));
        assert_eq!(server.election_timeout, Duration::from_millis(250));
        // etcd's request timeout: 5 s plus two election timeouts, unless set.
        assert_eq!(server.request_timeout, Duration::from_millis(5500));
        assert_eq!(config.advertise_client(), "http://10.0.0.12:2379");
        let short = Config::try_parse_from(["etcd", "--request-timeout=2s"]).unwrap();
        assert_eq!(
            short.server_config().unwrap().request_timeout,
            Duration::from_secs(2)
        );

        let bad = Config::try_parse_from(["etcd", "--election-timeout=10"]).unwrap();
        assert!(bad.server_config().unwrap_err().contains("twice"));
        let stranger =
            Config::try_parse_from(["etcd", "--initial-cluster=other=http://x:2380"]).unwrap();
        assert!(stranger.server_config().is_err());
        assert!(Config::try_parse_from(["etcd", "--request-timeout=2"]).is_err());
    }
}
