//! Leases, the replicated half: which leases exist, their TTLs, and which keys are
//! attached to each.
//!
//! A lease is a promise with a time limit: "keep these keys while I am alive". A client
//! grants one (`etcdctl lease grant 60`), attaches keys to it (`put --lease=ID`), and
//! keeps it alive; when it stops doing so, the lease expires and its keys are deleted
//! — one delete event each, like any other delete. Kubernetes' apiserver puts its
//! events under a lease, so they vanish by themselves after an hour.
//!
//! Everything here is replicated state, changed only by applying log entries: grant,
//! revoke, keep-alive. *When* a lease expires is not: time is not replicated. The
//! leader keeps each lease's deadline in memory (see `Member`'s lessor) and, when one
//! passes, proposes a revoke like any client would. A new leader gives every lease a
//! fresh TTL, since it cannot know how long the old leader had let them run.

use std::collections::{BTreeMap, BTreeSet};

use super::{txn, Mutation, MvccStore};
use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use crate::proto::mvccpb::{Event, KeyValue};

/// The leases of a store: ID → granted TTL in seconds, and ID → attached keys.
#[derive(Debug, Clone, Default)]
pub(super) struct Leases {
    pub ttl: BTreeMap<i64, i64>,
    pub keys: BTreeMap<i64, BTreeSet<Vec<u8>>>,
}

impl Leases {
    /// Moves `key` from the lease of its old version (if any) to that of its new one.
    pub fn reattach(&mut self, key: &[u8], old_lease: i64, new: Option<&KeyValue>) {
        if old_lease != 0 {
            if let Some(keys) = self.keys.get_mut(&old_lease) {
                keys.remove(key);
            }
        }
        if let Some(new) = new.filter(|kv| kv.lease != 0) {
            self.keys.entry(new.lease).or_default().insert(key.to_vec());
        }
    }
}

impl MvccStore {
    /// Whether a lease exists.
    pub fn lease_exists(&self, id: i64) -> bool {
        self.leases.ttl.contains_key(&id)
    }

    /// Every lease and its granted TTL, in ID order.
    pub fn leases(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.ttl.iter().map(|(&id, &ttl)| (id, ttl))
    }

    pub(super) fn grant(&mut self, g: &LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if g.id <= 0 {
            return Err(Error::LeaseNotFound); // the proposer always picks a positive ID
        }
        if self.lease_exists(g.id) {
            return Err(Error::LeaseExists);
        }
        self.leases.ttl.insert(g.id, g.ttl);
        self.unsaved.push(Mutation::LeaseGranted {
            id: g.id,
            ttl: g.ttl,
        });
        Ok(LeaseGrantResponse {
            header: None,
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        })
    }

    /// Ends a lease: its keys are deleted at one new revision.
    pub(super) fn revoke(
        &mut self,
        r: &LeaseRevokeRequest,
    ) -> Result<(LeaseRevokeResponse, Vec<Event>)> {
        if !self.lease_exists(r.id) {
            return Err(Error::LeaseNotFound);
        }
        let keys: Vec<Vec<u8>> = self
            .leases
            .keys
            .remove(&r.id)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut tx = txn::Tx::new(self);
        for key in &keys {
            tx.delete_key(key);
        }
        let changes = tx.into_changes();
        let events = self.commit(changes);
        self.leases.ttl.remove(&r.id);
        self.unsaved.push(Mutation::LeaseRevoked(r.id));
        Ok((LeaseRevokeResponse { header: None }, events))
    }

    pub(super) fn keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        let ttl = *self.leases.ttl.get(&id).ok_or(Error::LeaseNotFound)?;
        Ok(LeaseKeepAliveResponse {
            header: None,
            id,
            ttl,
        })
    }

    /// A lease's granted TTL and keys; `TTL` is the granted one (the member, which
    /// knows the deadline, replaces it with what is left). An unknown lease answers
    /// TTL -1, as etcd does ("already expired").
    pub fn time_to_live(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let Some(&granted) = self.leases.ttl.get(&r.id) else {
            return LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: vec![],
            };
        };
        let keys = if r.keys {
            self.leases
                .keys
                .get(&r.id)
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default()
        } else {
            vec![]
        };
        LeaseTimeToLiveResponse {
            header: None,
            id: r.id,
            ttl: granted,
            granted_ttl: granted,
            keys,
        }
    }

    /// Every lease ID.
    pub fn lease_list(&self) -> LeaseLeasesResponse {
        LeaseLeasesResponse {
            header: None,
            leases: self
                .leases
                .ttl
                .keys()
                .map(|&id| LeaseStatus { id })
                .collect(),
        }
    }
}
