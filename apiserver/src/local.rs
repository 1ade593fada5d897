//! A control plane in one process: a kvstore cluster, a cluster CA, an admin token, and
//! as many apiservers over them as wanted. The tests of the scheduler and the
//! controllers start one; so does the simulator.

use std::path::Path;
use std::time::Duration;

use kvstore::server::local::{LocalCluster, Timing};
use seams::Network as _;

use crate::error::{Error, Result};
use crate::pki::Ca;
use crate::server::{start_local, Running};
use client_go::Client;

/// The admin's bearer token in a local control plane.
pub const ADMIN_TOKEN: &str = "admin-token";

pub struct LocalControlPlane {
    pub etcd: LocalCluster,
    pub ca: Ca,
}

impl LocalControlPlane {
    /// `members` kvstore members with data under `root`, and a fresh CA.
    pub async fn start(root: &Path, members: u64) -> Result<Self> {
        let etcd = LocalCluster::start(root, members, Timing::default()).await?;
        Ok(LocalControlPlane {
            etcd,
            ca: Ca::generate()?,
        })
    }

    /// One more apiserver over the kvstore, on a port of its own.
    pub async fn apiserver(&self) -> Result<Running> {
        self.apiserver_on("127.0.0.1:0").await
    }

    /// An apiserver on a given address (to restart one at the same address).
    pub async fn apiserver_on(&self, addr: &str) -> Result<Running> {
        let listener = seams::Tcp
            .listen(addr)
            .map_err(|e| Error::Internal(format!("listen on {addr}: {e}")))?;
        let tokens = [(ADMIN_TOKEN.to_string(), "kubernetes-admin".to_string())].into();
        start_local(listener, self.etcd.endpoints(), &self.ca, &[], tokens).await
    }

    /// A client of these apiservers, as the admin.
    pub fn client(&self, apiservers: &[&Running]) -> client_go::Result<Client> {
        let urls = apiservers
            .iter()
            .map(|a| format!("https://{}", a.addr))
            .collect();
        Client::new(
            &seams::Host::real(),
            urls,
            Some(&self.ca.cert_pem),
            Some(ADMIN_TOKEN.into()),
        )
    }
}

/// Polls `check` until it gives `Some`, for at most `deadline`: how tests (and the
/// simulator's checks) wait for a condition instead of sleeping.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let clock = seams::SystemClock::shared();
    let until = clock.now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(clock.now() < until, "never happened: {what}");
        clock.sleep(Duration::from_millis(50)).await;
    }
}
