//! The tools' side of etcd: what `etcdctl` does with a member's answers and with
//! snapshot files, shared by our command-line tools — `kvctl` (`src/bin/kvctl.rs`) and
//! the simulator's `etcdctl` (`sim/src/shell/etcdctl.rs`).
//!
//! Nothing of a member uses this module. A member serves requests and writes its data
//! directory; printing tables and turning `snapshot restore`'s flags into a new data
//! directory are the tools' business, as they are etcdctl's (and, since etcd 3.5,
//! etcdutl's) in etcd.
//!
//! - [`printer`]: etcdctl's output — sizes, ASCII tables, `snapshot status`, `member
//!   list`, `endpoint status`;
//! - [`restore_member`]: `snapshot restore` with etcdctl's flags.

pub mod printer;

use std::path::Path;

use crate::membership::ClusterInfo;
use crate::snapshot::SnapshotStatus;
use crate::storage::sled::SledStorage;

/// `etcdctl snapshot restore` with its flags: the member `name` of a new cluster
/// (`--initial-cluster`, or just this member at `--initial-advertise-peer-urls`,
/// `--initial-cluster-token`), its data in `--data-dir`. Member IDs are derived from
/// the peer URLs and the token, as etcd's are, so every member restored with the same
/// flags agrees on them.
pub fn restore_member(
    bytes: &[u8],
    name: &str,
    initial_cluster: Option<&str>,
    token: &str,
    peer_urls: &str,
    data_dir: &Path,
) -> Result<SnapshotStatus, String> {
    let spec = initial_cluster.map_or_else(|| format!("{name}={peer_urls}"), str::to_string);
    let cluster = ClusterInfo::parse_initial_cluster(&spec, token, name, &[])?;
    // A one-shot tool, not a member: the machine's clock times the store's batches.
    SledStorage::restore(bytes, data_dir, &cluster, seams::SystemClock::shared())
        .map_err(|e| e.to_string())
}
