//! Starting an apiserver: its configuration (kube-apiserver's flags), the system
//! namespaces it creates at start, and a handle to stop it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seams::net::Listener;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::http::{serve, ApiServer};
use crate::pki;
use crate::registry;
use crate::rest::{Registry, Scope};
use crate::store::Store;

/// The namespaces kube-apiserver makes sure exist.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// What `kube-apiserver --etcd-servers=... --token-auth-file=...` is told.
#[derive(Clone)]
pub struct Config {
    pub etcd_servers: Vec<String>,
    /// How long one etcd call may take, failovers included.
    pub etcd_timeout: Duration,
    /// `host:port` clients are told to use.
    pub advertise: String,
    /// Bearer token → user; empty means no authentication.
    pub tokens: HashMap<String, String>,
    /// The network it listens and dials on, its clock, its randomness (UIDs, names).
    pub host: seams::Host,
    /// Serving certificate and key (PEM), as `--tls-cert-file`/`--tls-private-key-file`;
    /// without them the API is plain HTTP (and kubectl will not send tokens).
    pub tls: Option<(String, String)>,
    /// Bounds on connections and requests (timeouts, sizes, in-flight requests).
    pub limits: crate::limits::Limits,
    /// `--audit-policy-file` and `--audit-log-path`: requests logged as audit events.
    pub audit: Option<crate::audit::AuditConfig>,
}

impl Config {
    pub fn new(etcd_servers: Vec<String>) -> Self {
        Config {
            etcd_servers,
            etcd_timeout: Duration::from_secs(5),
            advertise: String::new(),
            tokens: HashMap::new(),
            host: seams::Host::real(),
            tls: None,
            limits: crate::limits::Limits::default(),
            audit: None,
        }
    }
}

/// Reads a `--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`.
pub fn parse_token_file(text: &str) -> Result<HashMap<String, String>> {
    let mut tokens = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, ',').collect();
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            return Err(Error::BadRequest(format!(
                "token file line {}: want `token,user,uid[,groups]`",
                n + 1
            )));
        }
        tokens.insert(fields[0].to_string(), fields[1].to_string());
    }
    Ok(tokens)
}

/// A running apiserver.
pub struct Running {
    /// The address it listens on (`127.0.0.1:41234`).
    pub addr: String,
    task: JoinHandle<()>,
    accept_errors: Arc<AtomicU64>,
}

impl Running {
    /// How many times `accept()` has failed (out of file descriptors, most often); the
    /// server waits a little and accepts again.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Stops the server like a killed process: the listener and every open
    /// connection (watches included) close.
    pub fn stop_serving(&self) {
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the API on `listener` and creates the system namespaces in the background
/// (retrying until etcd answers, as kube-apiserver's bootstrap controller does).
pub async fn start(listener: Box<dyn Listener>, config: Config) -> Result<Running> {
    let addr = listener.local_addr();
    let store = Store::new(
        config.etcd_servers.clone(),
        config.etcd_timeout,
        &config.host,
    )?;
    let registry = Registry {
        store,
        clock: config.host.clock.clone(),
        rng: config.host.rng.clone(),
    };
    let advertise = if config.advertise.is_empty() {
        addr.clone()
    } else {
        config.advertise.clone()
    };
    let server = Arc::new(ApiServer {
        registry: registry.clone(),
        advertise,
        tokens: config.tokens.clone(),
        network: config.host.network.clone(),
        limits: config.limits.clone(),
        inflight: crate::limits::InFlight::new(&config.limits),
        audit: config
            .audit
            .clone()
            .map(|a| Arc::new(crate::audit::AuditLog::new(a))),
    });
    let tls = match &config.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(pki::server_config(
            cert, key,
        )?)),
        None => None,
    };
    let accept_errors = Arc::new(AtomicU64::new(0));
    let errors = accept_errors.clone();
    let task = tokio::spawn(async move {
        tokio::spawn(bootstrap(registry));
        serve(listener, server, tls, errors).await;
    });
    Ok(Running {
        addr,
        task,
        accept_errors,
    })
}

/// An apiserver for a cluster made in one process (tests, the simulator): HTTPS with a
/// serving certificate from `ca` for 127.0.0.1 and `hosts`, these bearer tokens, and a
/// short etcd timeout (2 s) so a lost quorum shows quickly.
pub async fn start_local(
    listener: Box<dyn Listener>,
    etcd_servers: Vec<String>,
    ca: &crate::pki::Ca,
    hosts: &[String],
    tokens: HashMap<String, String>,
) -> Result<Running> {
    let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    names.extend(hosts.iter().cloned());
    let mut config = Config::new(etcd_servers);
    config.etcd_timeout = Duration::from_secs(2);
    config.tls = Some(ca.issue_serving("kube-apiserver", &names)?);
    config.tokens = tokens;
    start(listener, config).await
}

async fn bootstrap(registry: Registry) {
    let namespaces = registry::find("", "v1", "namespaces").expect("namespaces are served");
    for ns in SYSTEM_NAMESPACES {
        loop {
            let scope = Scope {
                rt: namespaces,
                namespace: "",
                name: "",
            };
            let body = json!({"metadata": {"name": ns}});
            match registry.create(scope, body, false).await {
                Ok(_) | Err(Error::AlreadyExists(_)) => break,
                Err(e) => {
                    tracing::info!(error = %e, namespace = ns, "waiting for etcd to create a namespace");
                    registry.clock.sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_read_like_kube_apiservers() {
        let t = parse_token_file("# admin\nabc,admin,1,\"system:masters\"\n\nk1,kubelet-node1,2\n")
            .unwrap();
        assert_eq!(t["abc"], "admin");
        assert_eq!(t["k1"], "kubelet-node1");
        assert!(parse_token_file("lonely").is_err());
    }
}
