//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it for
//! kube-scheduler and kube-controller-manager.
//!
//! Two schedulers run (node1 and node2) but only one may act. Each tries, every
//! `retry_period`, to write its name into the Lease `kube-system/kube-scheduler`:
//! - nobody holds it, or the holder has not renewed it for `lease_duration` → take it
//!   (`leaseTransitions` + 1);
//! - I hold it → renew it (`renewTime` = now);
//! - someone else holds a fresh one → wait.
//!
//! Every write carries the Lease's resourceVersion, so of two candidates racing for an
//! expired lease exactly one wins; the other gets `409 Conflict`. "Fresh" is judged by
//! when *I* last saw the lease change, not by the holder's clock (client-go's rule
//! against clock skew). A leader that cannot renew for `renew_deadline` (say its
//! apiserver died) stops acting: being deposed is noticed on the leader's side first.
//!
//! [`decide`] is the pure rule; [`LeaderElector`] runs it against the API.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use seams::clock::SharedClock;

use crate::client::Client;
use crate::error::Error;
use api::types::{Lease, LeaseSpec};

/// Kubernetes' defaults are 15 s / 10 s / 2 s; the simulator uses short ones.
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// This candidate's name, e.g. `node1_5b1e...` (host plus a unique suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Config {
    /// The Lease `kube-system/<component>` with Kubernetes' default timings.
    pub fn new(component: &str, identity: &str) -> Self {
        Config {
            namespace: "kube-system".into(),
            name: component.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do after looking at the lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No lease yet: create this one.
    Create(LeaseSpec),
    /// Write this spec (renew mine, or take over an expired one).
    Update(LeaseSpec),
    /// Someone else holds a fresh lease.
    Wait { holder: String },
}

/// The leader-election flags every replicated component takes, as Kubernetes'
/// component-base `LeaderElectionConfiguration` gives kube-scheduler and
/// kube-controller-manager the same ones: `--leader-elect`,
/// `--leader-elect-lease-duration`, `--leader-elect-renew-deadline`,
/// `--leader-elect-retry-period` (Go durations).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LeaderElectionFlags {
    /// Elect a leader among the instances before acting.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a lease not renewed stays valid (a Go duration).
    #[arg(long, default_value = "15s", value_parser = seams::duration::parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    #[arg(long, default_value = "10s", value_parser = seams::duration::parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How long to wait between attempts to acquire or renew.
    #[arg(long, default_value = "2s", value_parser = seams::duration::parse_duration)]
    pub leader_elect_retry_period: Duration,
}

impl LeaderElectionFlags {
    /// The election these flags ask for, on the Lease `name`, as `identity` (`None`
    /// with `--leader-elect=false`), or what is wrong with the timings (the checks
    /// kube-scheduler and kube-controller-manager make).
    pub fn config(&self, name: &str, identity: &str) -> Result<Option<Config>, String> {
        if !self.leader_elect {
            return Ok(None);
        }
        if self.leader_elect_lease_duration <= self.leader_elect_renew_deadline {
            return Err(
                "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"
                    .into(),
            );
        }
        if self.leader_elect_retry_period.is_zero() {
            return Err("--leader-elect-retry-period must be greater than zero".into());
        }
        Ok(Some(Config {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
            ..Config::new(name, identity)
        }))
    }
}

/// Lease times are `MicroTime`: RFC 3339 with microseconds.
pub use api::time::micro_time;

/// The rule. `observed_at` is when this candidate last saw the lease's spec change.
pub fn decide(
    config: &Config,
    lease: Option<&LeaseSpec>,
    observed_at: Timestamp,
    now: Timestamp,
) -> Decision {
    let seconds = config.lease_duration.as_secs().max(1) as i32;
    let mine = |acquire: String, transitions: i32| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(acquire),
        renew_time: Some(micro_time(now)),
        lease_transitions: Some(transitions),
    };
    let Some(lease) = lease else {
        return Decision::Create(mine(micro_time(now), 0));
    };
    let holder = lease.holder_identity.clone().unwrap_or_default();
    let transitions = lease.lease_transitions.unwrap_or(0);
    if holder == config.identity {
        let acquired = lease
            .acquire_time
            .clone()
            .unwrap_or_else(|| micro_time(now));
        return Decision::Update(mine(acquired, transitions));
    }
    let duration = lease.lease_duration_seconds.unwrap_or(seconds).max(1);
    let expires = observed_at + SignedDuration::from_secs(i64::from(duration));
    if !holder.is_empty() && now < expires {
        return Decision::Wait { holder };
    }
    Decision::Update(mine(micro_time(now), transitions + 1))
}

/// A running candidate: `is_leader` says whether it may act now.
pub struct LeaderElector {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaderElector {
    /// Starts campaigning.
    pub fn start(client: Client, config: Config, clock: SharedClock) -> LeaderElector {
        let (tx, is_leader) = watch::channel(false);
        let task = tokio::spawn(campaign(client, config, clock, tx));
        LeaderElector { is_leader, task }
    }

    /// Whether this candidate holds the lease now.
    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }
}

/// Leadership as a component holds it: campaigned for on a Lease, or — without
/// `--leader-elect` — held from the start.
pub enum Leadership {
    Elected(LeaderElector),
    /// The sender lives as long as the component, so the receiver never closes.
    Always(watch::Sender<bool>),
}

impl Leadership {
    pub fn start(client: Client, config: Option<Config>, clock: SharedClock) -> Leadership {
        match config {
            Some(c) => Leadership::Elected(LeaderElector::start(client, c, clock)),
            None => Leadership::Always(watch::channel(true).0),
        }
    }

    /// Follows leadership changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        match self {
            Leadership::Elected(e) => e.is_leader.clone(),
            Leadership::Always(tx) => tx.subscribe(),
        }
    }
}

async fn campaign(client: Client, config: Config, clock: SharedClock, tx: watch::Sender<bool>) {
    let mut observed: Option<(LeaseSpec, Timestamp)> = None;
    let mut last_renewal: Option<Timestamp> = None;
    loop {
        let now = api::time::now(&*clock);
        let renewed = try_acquire_or_renew(&client, &config, &mut observed, now).await;
        match renewed {
            Ok(true) => {
                last_renewal = Some(now);
                tx.send_if_modified(|leader| !std::mem::replace(leader, true));
            }
            Ok(false) => {
                last_renewal = None;
                tx.send_if_modified(|leader| std::mem::replace(leader, false));
            }
            Err(e) => {
                // Could not reach the API: a leader keeps acting until its renew
                // deadline passes, then steps down.
                let deadline = SignedDuration::try_from(config.renew_deadline).unwrap_or_default();
                if last_renewal.is_some_and(|t| api::time::now(&*clock) >= t + deadline) {
                    tracing::warn!(lease = %config.name, error = %e, "failed to renew the lease; stepping down");
                    last_renewal = None;
                    tx.send_if_modified(|leader| std::mem::replace(leader, false));
                }
            }
        }
        clock.sleep(config.retry_period).await;
    }
}

/// One round: read the lease, decide, write. `Ok(true)` if I hold it afterwards.
async fn try_acquire_or_renew(
    client: &Client,
    config: &Config,
    observed: &mut Option<(LeaseSpec, Timestamp)>,
    now: Timestamp,
) -> Result<bool, Error> {
    let current = match client.get::<Lease>(&config.namespace, &config.name).await {
        Ok(lease) => Some(lease),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    if let Some(lease) = &current {
        if observed
            .as_ref()
            .is_none_or(|(spec, _)| *spec != lease.spec)
        {
            *observed = Some((lease.spec.clone(), now));
        }
    }
    let observed_at = observed.as_ref().map(|(_, t)| *t).unwrap_or(now);
    let decision = decide(config, current.as_ref().map(|l| &l.spec), observed_at, now);
    let written = match decision {
        Decision::Wait { .. } => return Ok(false),
        Decision::Create(spec) => {
            let mut lease = Lease::default();
            lease.metadata.name = config.name.clone();
            lease.metadata.namespace = config.namespace.clone();
            lease.spec = spec;
            client.create(&lease).await
        }
        Decision::Update(spec) => {
            let mut lease = current.expect("an update follows a read lease");
            lease.spec = spec;
            client.update(&lease).await
        }
    };
    match written {
        Ok(lease) => {
            *observed = Some((lease.spec, now));
            Ok(true)
        }
        // Another candidate wrote first: it won this round.
        Err(Error::Conflict(_)) | Err(Error::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(me: &str) -> Config {
        Config::new("kube-scheduler", me)
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn the_first_candidate_creates_the_lease() {
        let Decision::Create(spec) = decide(&config("node1"), None, at(0), at(0)) else {
            panic!()
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("node1"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn a_fresh_lease_makes_others_wait_and_the_holder_renew() {
        let Decision::Create(held) = decide(&config("node1"), None, at(0), at(0)) else {
            panic!()
        };
        let d = decide(&config("node2"), Some(&held), at(0), at(14));
        assert_eq!(
            d,
            Decision::Wait {
                holder: "node1".into()
            }
        );
        let Decision::Update(renewed) = decide(&config("node1"), Some(&held), at(0), at(2)) else {
            panic!()
        };
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert_eq!(renewed.renew_time, Some(micro_time(at(2))));
        assert_eq!(renewed.lease_transitions, Some(0));
    }

    #[test]
    fn an_expired_lease_is_taken_over_with_a_transition() {
        let Decision::Create(held) = decide(&config("node1"), None, at(0), at(0)) else {
            panic!()
        };
        // node2 first saw this lease at t=3; it expires 15 s after that.
        assert!(matches!(
            decide(&config("node2"), Some(&held), at(3), at(17)),
            Decision::Wait { .. }
        ));
        let Decision::Update(taken) = decide(&config("node2"), Some(&held), at(3), at(18)) else {
            panic!()
        };
        assert_eq!(taken.holder_identity.as_deref(), Some("node2"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(micro_time(at(18))));
    }
}
