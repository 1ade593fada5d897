//! The control plane's static pod manifests, as kubeadm writes them into
//! `/etc/kubernetes/manifests` on a control-plane node. The kubelet reads these files;
//! deleting one (and restarting the kubelet) stops that component.

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
        ],
    );
    let scheduler = pod(
        "kube-scheduler",
        "registry.k8s.io/kube-scheduler:v1.32.0",
        &[
            "kube-scheduler".into(),
            "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
            "--leader-elect=true".into(),
        ],
    );
    let controllers = pod(
        "kube-controller-manager",
        "registry.k8s.io/kube-controller-manager:v1.32.0",
        &[
            "kube-controller-manager".into(),
            "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
            "--leader-elect=true".into(),
        ],
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
