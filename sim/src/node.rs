//! What every component on a node shares: its name and address, its directory in the
//! data root (its "disk"), the simulated network, the clock, and the cluster's timings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apiserver::clock::Clock;
use apiserver::leaderelection;

use crate::error::{Error, Result};
use crate::network::Network;

/// Timings, short so the assignment runs in seconds (Kubernetes' defaults in comments).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Lease duration / renew deadline / retry period (15 s / 10 s / 2 s).
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// How often a kubelet renews its node lease (10 s).
    pub node_lease_renew: Duration,
    /// A node lease older than this makes the node unreachable (40 s).
    pub node_grace_period: Duration,
    /// How often the node lifecycle controller looks (5 s).
    pub node_monitor_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(1000),
            retry_period: Duration::from_millis(250),
            node_lease_renew: Duration::from_millis(500),
            node_grace_period: Duration::from_secs(4),
            node_monitor_period: Duration::from_millis(500),
        }
    }
}

impl Timing {
    /// Leader election for `component` with these timings.
    pub fn election(&self, component: &str, identity: &str) -> leaderelection::Config {
        leaderelection::Config {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            ..leaderelection::Config::new(component, identity)
        }
    }
}

pub struct NodeContext {
    pub name: String,
    pub ip: String,
    /// The node's `/`.
    pub root: PathBuf,
    pub network: Arc<Network>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
}

impl NodeContext {
    /// A path on this node: `/etc/kubernetes/manifests` → `<root>/etc/kubernetes/manifests`.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Reads a file on this node.
    pub fn read(&self, path: &str) -> Result<String> {
        std::fs::read_to_string(self.path(path)).map_err(|e| Error::Io(format!("{path}: {e}")))
    }

    /// Writes a file on this node, creating its directory.
    pub fn write(&self, path: &str, text: &str) -> Result<()> {
        let full = self.path(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(full, text)?;
        Ok(())
    }
}
