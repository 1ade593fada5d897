//! The control plane's static pod manifests, as kubeadm writes them into
//! `/etc/kubernetes/manifests` on a control-plane node. The kubelet reads these files;
//! deleting one (and restarting the kubelet) stops that component.
//!
//! The last flags of each command shorten Kubernetes' timings so that the assignment
//! runs in seconds ([`SHORT_LEADER_ELECTION`], [`SHORT_NODE_MONITOR`],
//! [`SHORT_ETCD_REQUEST`]). They are ordinary flags, parsed by each component's own
//! parser; without them a component runs with the defaults its binary has.

/// Leader election of the scheduler and the controller-manager: leases of 1.5 s
/// instead of 15 s (renew deadline 10 s, retry period 2 s).
pub const SHORT_LEADER_ELECTION: [&str; 3] = [
    "--leader-elect-lease-duration=1500ms",
    "--leader-elect-renew-deadline=1s",
    "--leader-elect-retry-period=250ms",
];

/// The node lifecycle controller: a node is unreachable after 4 s without a lease
/// renewal instead of 40 s, looked at every 500 ms instead of 5 s.
pub const SHORT_NODE_MONITOR: [&str; 2] = [
    "--node-monitor-grace-period=4s",
    "--node-monitor-period=500ms",
];

/// The apiserver gives an etcd call 2 s instead of 5 s, so a lost quorum shows quickly.
pub const SHORT_ETCD_REQUEST: &str = "--etcd-request-timeout=2s";

/// `(file name, YAML)` for the node with address `ip`, given every etcd member's address.
pub fn control_plane(ip: &str, etcd: &[&str]) -> Vec<(String, String)> {
    let etcd_servers: Vec<String> = etcd.iter().map(|e| format!("http://{e}:2379")).collect();
    let apiserver = pod(
        "kube-apiserver",
        "registry.k8s.io/kube-apiserver:v1.32.0",
        &[
            "kube-apiserver".into(),
            format!("--advertise-address={ip}"),
            "--bind-address=0.0.0.0".into(),
            "--secure-port=6443".into(),
            format!("--etcd-servers={}", etcd_servers.join(",")),
            "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".into(),
            "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".into(),
            "--token-auth-file=/etc/kubernetes/tokens.csv".into(),
            SHORT_ETCD_REQUEST.into(),
        ],
    );
    let short = |flags: &[&str]| flags.iter().map(|f| f.to_string()).collect::<Vec<_>>();
    let mut command = vec![
        "kube-scheduler".to_string(),
        "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
        "--leader-elect=true".into(),
    ];
    command.extend(short(&SHORT_LEADER_ELECTION));
    let scheduler = pod(
        "kube-scheduler",
        "registry.k8s.io/kube-scheduler:v1.32.0",
        &command,
    );
    let mut command = vec![
        "kube-controller-manager".to_string(),
        "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
        "--leader-elect=true".into(),
    ];
    command.extend(short(&SHORT_LEADER_ELECTION));
    command.extend(short(&SHORT_NODE_MONITOR));
    let controllers = pod(
        "kube-controller-manager",
        "registry.k8s.io/kube-controller-manager:v1.32.0",
        &command,
    );
    vec![
        ("kube-apiserver.yaml".into(), apiserver),
        ("kube-scheduler.yaml".into(), scheduler),
        ("kube-controller-manager.yaml".into(), controllers),
    ]
}

fn pod(name: &str, image: &str, command: &[String]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\n  labels:\n    component: {name}\n    tier: control-plane\nspec:\n  hostNetwork: true\n  priorityClassName: system-node-critical\n  containers:\n  - name: {name}\n    image: {image}\n    command:\n"
    );
    for arg in command {
        yaml.push_str(&format!("    - {arg}\n"));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::types::Pod;

    /// Each manifest's command is one its component's own parser accepts, with the
    /// short timings the simulator runs on.
    #[test]
    fn each_command_parses_with_its_components_parser() {
        use clap::Parser;
        use std::time::Duration;

        let files = control_plane("10.0.0.11", &["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
        let command = |i: usize| {
            let pod: Pod = serde_yaml_ng::from_str(&files[i].1).unwrap();
            pod.spec.containers[0].command.clone()
        };
        let apiserver = apiserver::flags::ServerRunOptions::try_parse_from(command(0)).unwrap();
        assert_eq!(apiserver.etcd_request_timeout, Duration::from_secs(2));
        let scheduler = scheduler::flags::Options::try_parse_from(command(1)).unwrap();
        let election = scheduler.config("i").unwrap().leader_election.unwrap();
        assert_eq!(election.lease_duration, Duration::from_millis(1500));
        assert_eq!(election.retry_period, Duration::from_millis(250));
        let controllers =
            controller_manager::flags::KubeControllerManagerOptions::try_parse_from(command(2))
                .unwrap();
        let config = controllers.config("i").unwrap();
        assert_eq!(config.node_grace_period, Duration::from_secs(4));
        assert_eq!(config.monitor_period, Duration::from_millis(500));
    }

    #[test]
    fn manifests_are_pods_the_kubelet_can_read() {
        let files = control_plane("10.0.0.11", &["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
        assert_eq!(files.len(), 3);
        let pod: Pod = serde_yaml_ng::from_str(&files[0].1).unwrap();
        assert_eq!(pod.metadata.name, "kube-apiserver");
        let command = &pod.spec.containers[0].command;
        assert_eq!(command[0], "kube-apiserver");
        assert!(command.contains(
            &"--etcd-servers=http://10.0.0.11:2379,http://10.0.0.12:2379,http://10.0.0.13:2379"
                .to_string()
        ));
    }
}
