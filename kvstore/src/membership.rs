//! Who is in the cluster: member IDs, names and URLs, as data.
//!
//! etcd identifies a member by a 64-bit ID and shows it, with its name and URLs, in
//! `etcdctl member list`:
//!
//! ```text
//! 8e9e05c52164694d, started, etcd1, http://10.0.0.11:2380, http://10.0.0.11:2379, false
//! ```
//!
//! Raft only knows the IDs; names and URLs are what humans and the transport use. This
//! module keeps them together. Membership changes (`member add/remove`) come later; for
//! now the set of members is fixed when the cluster is created, like
//! `--initial-cluster etcd1=...,etcd2=...,etcd3=...` with `--initial-cluster-state new`.

/// One etcd member, as `member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Raft ID; never 0 (raft-rs reserves 0 for "nobody").
    pub id: u64,
    /// Human name, `etcd1`, `etcd2`, ...
    pub name: String,
    /// Where peers reach its Raft transport (port 2380 by convention).
    pub peer_urls: Vec<String>,
    /// Where clients reach its API (port 2379 by convention).
    pub client_urls: Vec<String>,
}

/// The fixed membership of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Reported in every response header, like etcd's `cluster_id`.
    pub cluster_id: u64,
    /// The members, in the order they were listed.
    pub members: Vec<MemberInfo>,
}

impl ClusterInfo {
    /// A cluster of the given members; its ID is derived from their IDs, so every
    /// member computes the same one (etcd hashes the sorted member IDs the same way in
    /// spirit; the exact hash differs).
    pub fn new(members: Vec<MemberInfo>) -> Self {
        let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a offset basis
        for id in ids {
            for byte in id.to_be_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        ClusterInfo {
            cluster_id: hash,
            members,
        }
    }

    /// The classic local layout: `n` members `etcd1..etcdn` with IDs `1..=n` and URLs on
    /// the node addresses `10.0.0.11`, `10.0.0.12`, ... (the addresses of the course's
    /// node1..node3).
    pub fn local(n: u64) -> Self {
        let members = (1..=n)
            .map(|i| {
                let ip = format!("10.0.0.{}", 10 + i);
                MemberInfo {
                    id: i,
                    name: format!("etcd{i}"),
                    peer_urls: vec![format!("http://{ip}:2380")],
                    client_urls: vec![format!("http://{ip}:2379")],
                }
            })
            .collect();
        ClusterInfo::new(members)
    }

    /// The Raft IDs of all voting members.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Looks a member up by Raft ID.
    pub fn member(&self, id: u64) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.id == id)
    }

    /// How many members make a majority: the smallest number that any two such groups
    /// must share a member. 2 of 3, 3 of 5.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cluster_has_etcd_names_and_ports() {
        let c = ClusterInfo::local(3);
        assert_eq!(c.voter_ids(), vec![1, 2, 3]);
        let m2 = c.member(2).unwrap();
        assert_eq!(m2.name, "etcd2");
        assert_eq!(m2.peer_urls, vec!["http://10.0.0.12:2380"]);
        assert_eq!(m2.client_urls, vec!["http://10.0.0.12:2379"]);
        assert_eq!(c.quorum(), 2);
        assert_eq!(ClusterInfo::local(5).quorum(), 3);
    }

    #[test]
    fn cluster_id_depends_on_members_not_order() {
        let a = ClusterInfo::local(3);
        let mut reversed = a.members.clone();
        reversed.reverse();
        assert_eq!(ClusterInfo::new(reversed).cluster_id, a.cluster_id);
        assert_ne!(ClusterInfo::local(5).cluster_id, a.cluster_id);
    }
}
