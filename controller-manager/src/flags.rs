//! kube-controller-manager's command line: [`KubeControllerManagerOptions`] (the name of
//! its own options struct) is what `kube-controller-manager --kubeconfig=...` sets, and
//! [`KubeControllerManagerOptions::config`] turns it into the controllers' [`Config`].
//!
//! The `kube-controller-manager` binary parses its arguments with it, and the simulator
//! parses the command line of the kube-controller-manager static pod with it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use client_go::leaderelection;
use seams::duration::parse_duration;

use crate::run::Config;

/// The Kubernetes controllers, in miniature.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "kube-controller-manager",
    about = "The Kubernetes controllers, in miniature"
)]
pub struct KubeControllerManagerOptions {
    /// Kubeconfig with the apiserver's address, CA and this component's token.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// --leader-elect and its timings, shared with the other replicated components.
    #[command(flatten)]
    pub leader_election: leaderelection::LeaderElectionFlags,
    /// How long a node may go without renewing its lease before it is unreachable
    /// (kube-controller-manager 1.32's default, 50 s: raised from 40 s in 1.32 by
    /// kubernetes/kubernetes#126287, so that a kubelet renewing every 10 s has five
    /// tries).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often to look at the nodes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
}

impl KubeControllerManagerOptions {
    /// The controllers these flags describe for the instance `identity`, or what is
    /// wrong with them.
    pub fn config(&self, identity: &str) -> Result<Config, String> {
        let mut config = Config::new(identity);
        config.leader_election = self
            .leader_election
            .config("kube-controller-manager", identity)?;
        if self.node_monitor_period.is_zero() {
            return Err("--node-monitor-period must be greater than zero".into());
        }
        config.node_grace_period = self.node_monitor_grace_period;
        config.monitor_period = self.node_monitor_period;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_a_config_or_say_what_is_wrong() {
        let options = KubeControllerManagerOptions::try_parse_from([
            "kube-controller-manager",
            "--kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--node-monitor-grace-period=4s",
            "--node-monitor-period=500ms",
        ])
        .unwrap();
        let config = options.config("node1_x").unwrap();
        assert_eq!(config.node_grace_period, Duration::from_secs(4));
        assert_eq!(config.monitor_period, Duration::from_millis(500));
        let election = config.leader_election.unwrap();
        assert_eq!(election.lease_duration, Duration::from_secs(15));
        assert_eq!(election.name, "kube-controller-manager");

        let off = KubeControllerManagerOptions::try_parse_from([
            "kube-controller-manager",
            "--kubeconfig=k",
            "--leader-elect=false",
        ])
        .unwrap();
        assert!(off.config("i").unwrap().leader_election.is_none());
        let never = KubeControllerManagerOptions::try_parse_from([
            "kube-controller-manager",
            "--kubeconfig=k",
            "--node-monitor-period=0",
        ])
        .unwrap();
        assert!(never.config("i").is_err());
        assert!(KubeControllerManagerOptions::try_parse_from([
            "kube-controller-manager",
            "--kubeconfig=k",
            "--node-monitor-period=5",
        ])
        .is_err());
    }
}
