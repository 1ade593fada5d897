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

impl From<&MemberInfo> for crate::proto::etcdserverpb::Member {
    fn from(m: &MemberInfo) -> Self {
        crate::proto::etcdserverpb::Member {
            id: m.id,
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: m.client_urls.clone(),
            is_learner: false,
        }
    }
}

impl From<crate::proto::etcdserverpb::Member> for MemberInfo {
    fn from(m: crate::proto::etcdserverpb::Member) -> Self {
        MemberInfo {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
        }
    }
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

    /// Parses etcd's `--initial-cluster etcd1=http://10.0.0.11:2380,etcd2=...` into
    /// members. IDs are derived from each member's peer URLs and the cluster token, so
    /// every member computes the same ones (etcd hashes the same inputs with SHA-1; we
    /// use FNV-1a). Client URLs are not part of `--initial-cluster`; only this member's
    /// own (`client_urls`) are known here.
    pub fn parse_initial_cluster(
        spec: &str,
        token: &str,
        me: &str,
        client_urls: &[String],
    ) -> Result<Self, String> {
        let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster: {part:?} is not NAME=URL"))?;
            if !url.contains("://") {
                return Err(format!("--initial-cluster: {url:?} is not a URL"));
            }
            match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => by_name.push((name.to_string(), vec![url.to_string()])),
            }
        }
        if !by_name.iter().any(|(n, _)| n == me) {
            return Err(format!(
                "--initial-cluster has no member named {me:?} (--name)"
            ));
        }
        let members = by_name
            .into_iter()
            .map(|(name, mut peer_urls)| {
                peer_urls.sort();
                let id = member_id(&peer_urls, token);
                let client_urls = if name == me {
                    client_urls.to_vec()
                } else {
                    vec![]
                };
                MemberInfo {
                    id,
                    name,
                    peer_urls,
                    client_urls,
                }
            })
            .collect();
        Ok(ClusterInfo::new(members))
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

/// A member's ID from its sorted peer URLs and the cluster token (never 0).
fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in peer_urls.concat().bytes().chain(token.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
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
    fn initial_cluster_is_parsed_like_etcd() {
        let spec =
            "etcd1=http://10.0.0.11:2380,etcd2=http://10.0.0.12:2380,etcd3=http://10.0.0.13:2380";
        let mine = vec!["http://10.0.0.12:2379".to_string()];
        let c = ClusterInfo::parse_initial_cluster(spec, "tok", "etcd2", &mine).unwrap();
        assert_eq!(c.members.len(), 3);
        let again = ClusterInfo::parse_initial_cluster(spec, "tok", "etcd1", &[]).unwrap();
        assert_eq!(
            c.voter_ids(),
            again.voter_ids(),
            "every member derives the same IDs"
        );
        assert_eq!(c.cluster_id, again.cluster_id);
        let other = ClusterInfo::parse_initial_cluster(spec, "other", "etcd1", &[]).unwrap();
        assert_ne!(
            other.voter_ids(),
            c.voter_ids(),
            "the token changes the IDs"
        );
        let etcd2 = c.members.iter().find(|m| m.name == "etcd2").unwrap();
        assert_eq!(etcd2.client_urls, mine);
        assert!(ClusterInfo::parse_initial_cluster(spec, "t", "etcd9", &[]).is_err());
        assert!(ClusterInfo::parse_initial_cluster("etcd1", "t", "etcd1", &[]).is_err());
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
