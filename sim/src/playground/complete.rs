//! Tab: what the word at the cursor can become, from what the command before it takes:
//! a command name, a subcommand or a kind ([`complete`], from fixed lists), and — on
//! the node the learner is on ([`complete_on`]) — a path on that node, the name of an
//! object of that kind (asked of the apiserver with the node's kubeconfig, as kubectl's
//! own completion does), or a container of the node's runtime.

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::{BUILTINS, COMMANDS};
use crate::cluster::{Cluster, Node, ADMIN_CONF};
use crate::node::{Follow, CWD};
use crate::process::client_from_kubeconfig;
use crate::shell::kubectl;

/// Commands whose arguments are paths.
const TAKES_PATHS: [&str; 12] = [
    "ls", "cat", "rm", "cp", "mv", "sed", "grep", "head", "tail", "touch", "wc", "mkdir",
];

/// How long Tab waits for the apiserver before it offers nothing.
const ASK_FOR: Duration = Duration::from_secs(1);

/// Tab on `line` (up to the cursor) on `node`: [`complete`]'s words, and paths,
/// object names and container names. A directory ends with `/` (the word goes on).
pub async fn complete_on(cluster: &Cluster, node: &str, line: &str) -> (usize, Vec<String>) {
    let (start, fixed) = complete(line);
    let Some(node) = cluster.node(node) else {
        return (start, fixed);
    };
    let partial = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    if before.is_empty() {
        return (start, fixed);
    }
    let path_like = partial.starts_with(['/', '~', '.']);
    let found = match before[..] {
        _ if path_like => paths(node, partial),
        ["etcdctl", "snapshot", "save" | "status" | "restore", ..] => paths(node, partial),
        [p, ..] if TAKES_PATHS.contains(&p) && !partial.starts_with('-') => paths(node, partial),
        ["kubectl", "get" | "describe" | "delete", kind] => names(node, kind).await,
        ["kubectl", "logs"] => names(node, "pods").await,
        ["docker", "stop" | "start" | "logs" | "rm", ..] => containers(node).await,
        _ => fixed,
    };
    let found = found
        .into_iter()
        .filter(|w| w.starts_with(partial))
        .collect();
    (start, found)
}

/// The paths on `node` that `partial` can become: the entries of its directory whose
/// names start with what follows its last `/`.
fn paths(node: &Node, partial: &str) -> Vec<String> {
    let dir = partial.rsplit_once('/').map_or("", |(d, _)| d);
    let shown_dir = if partial.contains('/') {
        format!("{dir}/")
    } else {
        String::new()
    };
    let lookup = match dir {
        _ if !partial.contains('/') => CWD.to_string(),
        "" => "/".to_string(),
        d => match d.strip_prefix('~') {
            Some(rest) => format!("{CWD}{rest}"),
            None => d.to_string(),
        },
    };
    let Ok(host) = node.ctx.resolve(&lookup, Follow::All) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(host) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let slash = if e.path().is_dir() { "/" } else { "" };
            format!("{shown_dir}{name}{slash}")
        })
        .collect();
    found.sort();
    found
}

/// The names of the objects of `kind` in the default namespace, as node's kubectl
/// would list them; nothing if the apiserver does not answer within [`ASK_FOR`].
async fn names(node: &Node, kind: &str) -> Vec<String> {
    let Some(rt) = kubectl::find(kind) else {
        return Vec::new();
    };
    let Ok(client) = client_from_kubeconfig(&node.ctx, &node.ctx.host(), ADMIN_CONF) else {
        return Vec::new();
    };
    let namespace = rt.namespaced.then_some("default");
    let url = rt.url(namespace, None);
    let asked = node
        .ctx
        .clock
        .timeout(
            ASK_FOR,
            client.raw(Method::GET, &url, "application/json", None),
        )
        .await;
    let Ok(Ok((200, body))) = asked else {
        return Vec::new();
    };
    let list: Value = serde_json::from_slice(&body).unwrap_or_default();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the node's containers (`docker ps -a`'s NAMES).
async fn containers(node: &Node) -> Vec<String> {
    node.runtime
        .list()
        .await
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// What completes the words after a command, by the words before.
fn next_words(before: &[&str]) -> &'static [&'static str] {
    match before {
        ["ssh"] => &["node1", "node2", "node3"],
        ["kubectl"] => &[
            "get",
            "describe",
            "run",
            "create",
            "scale",
            "delete",
            "logs",
            "config",
            "version",
            "cluster-info",
            "apply",
            "label",
            "annotate",
        ],
        ["kubectl", "get" | "describe" | "delete"] => &[
            "pods",
            "nodes",
            "deployments",
            "replicasets",
            "leases",
            "events",
            "namespaces",
            "services",
            "all",
        ],
        ["kubectl", "config"] => &["set-cluster", "view", "current-context"],
        ["etcdctl"] => &["get", "put", "del", "member", "endpoint", "snapshot"],
        ["etcdctl", "member"] => &["list"],
        ["etcdctl", "endpoint"] => &["status", "health"],
        ["etcdctl", "snapshot"] => &["save", "status", "restore"],
        ["docker"] => &["ps", "stop", "start", "logs", "run", "rm"],
        ["systemctl"] => &["start", "stop", "restart", "status"],
        ["systemctl", _] => &["kubelet"],
        [] => &[],
        _ => &[],
    }
}

/// Tab on `line` (up to the cursor): where the word being completed starts, and the
/// words it can become. The first word is a command; the words after it are what that
/// command takes there.
pub fn complete(line: &str) -> (usize, Vec<String>) {
    let start = line.rfind(' ').map_or(0, |i| i + 1);
    let (done, partial) = line.split_at(start);
    let before: Vec<&str> = done.split_whitespace().collect();
    let words: Vec<&str> = if before.is_empty() {
        BUILTINS.iter().chain(COMMANDS.iter()).copied().collect()
    } else {
        next_words(&before).to_vec()
    };
    let found = words
        .into_iter()
        .filter(|w| w.starts_with(partial))
        .map(String::from)
        .collect();
    (start, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_completes_each_word_from_what_the_command_takes() {
        assert_eq!(complete("hostn"), (0, vec!["hostname".to_string()]));
        assert_eq!(complete("ssh no").1, ["node1", "node2", "node3"]);
        assert_eq!(complete("ssh no").0, 4);
        assert_eq!(complete("kubectl get po").1, ["pods"]);
        assert_eq!(complete("kubectl config set").1, ["set-cluster"]);
        assert_eq!(complete("etcdctl snapshot s").1, ["save", "status"]);
        assert_eq!(complete("systemctl restart k").1, ["kubelet"]);
        assert!(
            complete("cat /etc/").1.is_empty(),
            "paths are complete_on's"
        );
        assert!(complete("x").1.is_empty());
    }
}
