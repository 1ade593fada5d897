//! Tab: what the word at the cursor can become, from what the command before it takes.

use super::{BUILTINS, COMMANDS};

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
        assert!(complete("cat /etc/").1.is_empty(), "no paths yet");
        assert!(complete("x").1.is_empty());
    }
}
