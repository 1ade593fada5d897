//! kube-scheduler's command line: [`Options`] (kube-scheduler's own options struct is
//! `options.Options`) is what `kube-scheduler --kubeconfig=... --leader-elect=true`
//! sets, and [`Options::config`] turns it into the scheduler's [`Config`].
//!
//! The `kube-scheduler` binary parses its arguments with it, and the simulator parses
//! the command line of the kube-scheduler static pod with it.

use std::path::PathBuf;

use clap::Parser;
use client_go::leaderelection;

use crate::run::Config;

/// The Kubernetes scheduler, in miniature.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "kube-scheduler",
    about = "The Kubernetes scheduler, in miniature"
)]
pub struct Options {
    /// Kubeconfig with the apiserver's address, CA and this scheduler's token.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// --leader-elect and its timings, shared with the other replicated components.
    #[command(flatten)]
    pub leader_election: leaderelection::LeaderElectionFlags,
}

impl Options {
    /// The scheduler these flags describe for the instance `identity`, or what is
    /// wrong with them (kube-scheduler's checks of the leader election timings).
    pub fn config(&self, identity: &str) -> Result<Config, String> {
        let leader_election = self.leader_election.config("kube-scheduler", identity)?;
        Ok(Config {
            identity: identity.into(),
            leader_election,
            log: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flags_make_a_config_or_say_what_is_wrong() {
        let options = Options::try_parse_from([
            "kube-scheduler",
            "--kubeconfig=/etc/kubernetes/scheduler.conf",
            "--leader-elect-lease-duration=1500ms",
            "--leader-elect-renew-deadline=1s",
        ])
        .unwrap();
        let config = options.config("node1_x").unwrap();
        let election = config.leader_election.unwrap();
        assert_eq!(election.lease_duration, Duration::from_millis(1500));
        assert_eq!(election.retry_period, Duration::from_secs(2));
        assert_eq!(election.name, "kube-scheduler");
        assert_eq!(election.identity, "node1_x");

        let off =
            Options::try_parse_from(["kube-scheduler", "--kubeconfig=k", "--leader-elect=false"])
                .unwrap();
        assert!(off.config("i").unwrap().leader_election.is_none());
        let inverted = Options::try_parse_from([
            "kube-scheduler",
            "--kubeconfig=k",
            "--leader-elect-lease-duration=5s",
        ])
        .unwrap();
        assert!(inverted.config("i").err().unwrap().contains("greater than"));
        assert!(Options::try_parse_from(["kube-scheduler"]).is_err());
    }
}
