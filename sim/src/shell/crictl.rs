//! `crictl`: the kubelet's view of a node's containers. crictl talks to the container
//! runtime through the CRI, the interface the kubelet uses, so it lists the containers
//! the kubelet runs for pods — the static pods and the scheduled ones — and not the
//! containers started by hand with `docker run`. In this course etcd is such a plain
//! docker container: `docker ps` shows etcd2 on node2, `crictl ps` does not.
//!
//! `crictl ps [-a]`, `crictl pods`, `crictl logs ID`, with crictl 1.32's columns.

use std::collections::BTreeMap;

use super::system::age;
use super::{columns, Output};
use crate::cluster::Node;
use crate::kubelet::types::{
    CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL,
};
use crate::runtime::{ContainerInfo, State};

/// An ID as crictl prints it: its first 13 characters.
fn short(id: &str) -> String {
    id.chars().filter(|c| *c != '-').take(13).collect()
}

fn label<'a>(c: &'a ContainerInfo, key: &str) -> &'a str {
    c.labels.get(key).map_or("", String::as_str)
}

/// The kubelet's containers: the ones with a pod's labels.
async fn pod_containers(node: &Node) -> Vec<ContainerInfo> {
    node.runtime
        .list()
        .await
        .into_iter()
        .filter(|c| c.labels.contains_key(POD_UID_LABEL))
        .collect()
}

/// Runs `crictl ...` on `node`.
pub async fn run(node: &Node, argv: &[String]) -> Output {
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let now = api::time::now(&*node.ctx.clock);
    match args[..] {
        ["ps"] | ["ps", "-a"] | ["ps", "--all"] => {
            let all = args.len() == 2;
            let mut rows = vec![[
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID",
                "POD",
            ]
            .map(String::from)
            .to_vec()];
            for c in pod_containers(node).await {
                let state = match c.state {
                    State::Running { .. } => "Running",
                    State::Exited { .. } if all => "Exited",
                    State::Created if all => "Created",
                    _ => continue,
                };
                rows.push(vec![
                    short(&c.id),
                    c.image.clone(),
                    format!("{} ago", age(c.created, now)),
                    state.into(),
                    label(&c, CONTAINER_NAME_LABEL).into(),
                    c.restarts.to_string(),
                    short(label(&c, POD_UID_LABEL)),
                    label(&c, POD_NAME_LABEL).into(),
                ]);
            }
            Output::ok(columns(&rows))
        }
        ["pods"] => {
            let mut pods: BTreeMap<String, (ContainerInfo, bool)> = BTreeMap::new();
            for c in pod_containers(node).await {
                let running = matches!(c.state, State::Running { .. });
                let uid = label(&c, POD_UID_LABEL).to_string();
                pods.entry(uid)
                    .and_modify(|(_, ready)| *ready &= running)
                    .or_insert((c, running));
            }
            let mut rows = vec![[
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME",
            ]
            .map(String::from)
            .to_vec()];
            for (uid, (c, ready)) in &pods {
                rows.push(vec![
                    short(uid),
                    format!("{} ago", age(c.created, now)),
                    if *ready { "Ready" } else { "NotReady" }.into(),
                    label(c, POD_NAME_LABEL).into(),
                    label(c, POD_NAMESPACE_LABEL).into(),
                    "0".into(),
                    "(default)".into(),
                ]);
            }
            Output::ok(columns(&rows))
        }
        ["logs", id] => {
            let found: Vec<ContainerInfo> = pod_containers(node)
                .await
                .into_iter()
                .filter(|c| c.id.starts_with(id))
                .collect();
            match found.as_slice() {
                [c] => match node.runtime.logs(&c.name).await {
                    Ok(lines) => {
                        Output::ok(lines.iter().map(|l| format!("{l}\n")).collect::<String>())
                    }
                    Err(e) => Output::fail(format!("E: {e}"), 1),
                },
                [] => Output::fail(
                    format!(
                        "E: rpc error: code = NotFound desc = could not find container \"{id}\""
                    ),
                    1,
                ),
                _ => Output::fail(format!("E: container ID prefix \"{id}\" is ambiguous"), 1),
            }
        }
        _ => Output::fail(
            "crictl: this node's crictl knows ps [-a], pods and logs ID".to_string(),
            1,
        ),
    }
}
