//! The control plane's static pod manifests, as kubeadm writes them into
//! `/etc/kubernetes/manifests` on a control-plane node. The kubelet reads these files;
//! deleting one (and restarting the kubelet) stops that component.
//!
//! The commands carry no timing flags: every component runs with the defaults its
//! binary has, the real ones (leader election: leases of 15 s, renew deadline 10 s,
//! retry every 2 s; node monitor grace period 50 s, looked at every 5 s). The
//! simulator's virtual time makes them free: a 15 s lease takeover costs no wall time.

/// The apiserver's audit policy and log, where kubespray puts them.
pub const AUDIT_POLICY: &str = "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml";
pub const AUDIT_LOG: &str = "/var/log/audit/kube-apiserver-audit.log";

/// The audit policy the control-plane nodes get: what people and controllers change
/// is logged (Metadata: who, what, from where); reads, and the writes that repeat
/// every few seconds (lease renewals, events, status heartbeats), are not.
pub fn audit_policy() -> String {
    "apiVersion: audit.k8s.io/v1\n\
     kind: Policy\n\
     rules:\n\
     # Leader election and node heartbeats renew leases every few seconds.\n\
     - level: None\n\
     \x20 resources:\n\
     \x20 - group: coordination.k8s.io\n\
     \x20   resources: [\"leases\"]\n\
     - level: None\n\
     \x20 resources:\n\
     \x20 - group: \"\"\n\
     \x20   resources: [\"events\"]\n\
     # Reads change nothing.\n\
     - level: None\n\
     \x20 verbs: [\"get\", \"list\", \"watch\"]\n\
     # Kubelets report their pods' and node's status as it changes.\n\
     - level: None\n\
     \x20 userGroups: [\"system:nodes\"]\n\
     \x20 resources:\n\
     \x20 - group: \"\"\n\
     \x20   resources: [\"nodes/status\", \"pods/status\"]\n\
     # Everything else: who did what, from where.\n\
     - level: Metadata\n"
        .to_string()
}

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
            format!("--audit-policy-file={AUDIT_POLICY}"),
            format!("--audit-log-path={AUDIT_LOG}"),
            "--audit-log-maxsize=100".into(),
            "--audit-log-maxbackup=10".into(),
        ],
    );
    let command = vec![
        "kube-scheduler".to_string(),
        "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
        "--leader-elect=true".into(),
    ];
    let scheduler = pod(
        "kube-scheduler",
        "registry.k8s.io/kube-scheduler:v1.32.0",
        &command,
    );
    let command = vec![
        "kube-controller-manager".to_string(),
        "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
        "--leader-elect=true".into(),
    ];
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

    /// Each manifest's command is one its component's own parser accepts, and runs
    /// with the real defaults.
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
        assert_eq!(apiserver.etcd_request_timeout, Duration::from_secs(5));
        let scheduler = scheduler::flags::Options::try_parse_from(command(1)).unwrap();
        let election = scheduler.config("i").unwrap().leader_election.unwrap();
        assert_eq!(election.lease_duration, Duration::from_secs(15));
        assert_eq!(election.renew_deadline, Duration::from_secs(10));
        assert_eq!(election.retry_period, Duration::from_secs(2));
        let controllers =
            controller_manager::flags::KubeControllerManagerOptions::try_parse_from(command(2))
                .unwrap();
        let config = controllers.config("i").unwrap();
        assert_eq!(config.node_grace_period, Duration::from_secs(50));
        assert_eq!(config.monitor_period, Duration::from_secs(5));
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
