//! The kubelet's Node: registering it, and the heartbeat — renewing its Lease in
//! `kube-node-lease`, which the node lifecycle controller watches, and reporting it
//! Ready again if the controller marked it unreachable.

use api::types::{Lease, Node, NodeAddress, NodeCondition, Taint};
use client_go::client::Client;
use client_go::Error as ApiError;
use serde_json::json;

use super::KUBELET_PORT;
use crate::error::Result;
use crate::node::NodeContext;

fn now(node: &NodeContext) -> String {
    super::status::time(api::time::now(&*node.clock))
}

fn node_object(node: &NodeContext, control_plane: bool) -> Node {
    let mut n = Node::default();
    n.metadata.name = node.name.clone();
    let labels = &mut n.metadata.labels;
    for (k, v) in [
        ("kubernetes.io/hostname", node.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ] {
        labels.insert(k.into(), v.into());
    }
    if control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        n.spec.taints.push(Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    for (k, v) in [
        ("cpu", "2"),
        ("memory", "4023596Ki"),
        ("pods", "110"),
        ("ephemeral-storage", "30Gi"),
    ] {
        n.status.capacity.insert(k.into(), v.into());
        n.status.allocatable.insert(k.into(), v.into());
    }
    n.status.conditions = ready_conditions(node);
    n.status.addresses = vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: node.ip.clone(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: node.name.clone(),
        },
    ];
    n.status.daemon_endpoints.kubelet_endpoint.port = KUBELET_PORT;
    let info = &mut n.status.node_info;
    info.kubelet_version = "v1.32.0".into();
    info.os_image = "Ubuntu 22.04.4 LTS".into();
    info.kernel_version = "5.15.0-miniplane".into();
    info.container_runtime_version = "docker://24.0.7".into();
    info.operating_system = "linux".into();
    info.architecture = "amd64".into();
    n
}

fn ready_conditions(node: &NodeContext) -> Vec<NodeCondition> {
    let t = now(node);
    let c = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        last_heartbeat_time: Some(t.clone()),
        last_transition_time: Some(t.clone()),
        reason: reason.into(),
        message: message.into(),
    };
    vec![
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// Creates the Node, or (after a restart) reports it Ready again.
pub async fn register(node: &NodeContext, client: &Client, control_plane: bool) -> Result<()> {
    let object = node_object(node, control_plane);
    match client.create(&object).await {
        Ok(_) => Ok(()),
        Err(ApiError::AlreadyExists(_)) => {
            let patch = json!({"status": {"conditions": object.status.conditions}});
            client.patch_status::<Node>("", &node.name, &patch).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Renews `kube-node-lease/<node>`; reports Ready if the node was marked Unknown.
pub async fn heartbeat(node: &NodeContext, client: &Client) -> Result<()> {
    // A Lease's times are MicroTime: microseconds.
    let renew = api::time::micro_time(api::time::now(&*node.clock));
    match client.get::<Lease>("kube-node-lease", &node.name).await {
        Ok(mut lease) => {
            lease.spec.renew_time = Some(renew);
            client.update(&lease).await?;
        }
        Err(ApiError::NotFound(_)) => {
            let mut lease = Lease::default();
            lease.metadata.name = node.name.clone();
            lease.metadata.namespace = "kube-node-lease".into();
            lease.spec.holder_identity = Some(node.name.clone());
            lease.spec.lease_duration_seconds = Some(40);
            lease.spec.renew_time = Some(renew);
            client.create(&lease).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let current: Node = client.get("", &node.name).await?;
    let ready = current
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        let patch = json!({"status": {"conditions": ready_conditions(node)}});
        client.patch_status::<Node>("", &node.name, &patch).await?;
    }
    Ok(())
}
