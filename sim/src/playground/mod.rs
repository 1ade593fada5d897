//! The playground: the learner does the assignment on the cluster, and hands it in.
//!
//! `cargo run --example playground` builds the same three-node cluster as the
//! replayed assignment, moves it onto this machine (live mode: loopback addresses,
//! time following the wall clock), and drops the learner at a prompt on node1,
//! `root@node1:~# `. Everything typed there goes through [`Playground::execute`]:
//!
//! - the commands of the course run on the node they are typed on, as in the replay
//!   ([`crate::shell`]: kubectl, etcdctl, docker, systemctl, rm, cat, ls, pipes into
//!   head, tail and grep);
//! - `ssh node2` moves to another node and `exit` comes back (on node1 it leaves);
//! - `hint` says what the next unmet requirement is about, without the command;
//!   `solution` prints the commands; `status` lists the requirements met so far;
//!   `check` hands the work in: the checker's verdict on the cluster's real state;
//! - `env` prints what points this machine's real `kubectl` and `etcdctl` at the
//!   node, for a second terminal; `hostname`, `history`, `help`.
//!
//! This module is the part that decides; the example is the terminal around it (line
//! editing and history with rustyline, on a thread of its own so the cluster keeps
//! running while the learner types).
//!
//! Tab completes a line's words from what each command takes ([`complete`]): command
//! names, subcommands, resource kinds, node names after `ssh`.
//!
//! Left out, for now: completion of object names and paths, Ctrl-C of a running
//! command (the shell's commands all end by themselves), `reset`, and the finer
//! checks of issue 15 (which node a pod was created from, when the backup was taken).

use crate::checker::{self, Check};
use crate::cluster::Cluster;
use crate::shell::{self, Output};

mod complete;
pub use complete::complete;

/// What the learner can type, for `help` and completion.
pub const BUILTINS: [&str; 12] = [
    "ssh", "exit", "hint", "solution", "status", "check", "env", "hostname", "history", "help",
    "ip", "clear",
];

/// Commands a real node has that this one does not (yet): said plainly, not as
/// `command not found`.
pub const ELSEWHERE: [&str; 14] = [
    "cp",
    "mv",
    "sed",
    "vi",
    "vim",
    "nano",
    "crictl",
    "journalctl",
    "curl",
    "ping",
    "apt",
    "apt-get",
    "top",
    "ps",
];

/// The commands the shell runs on a node (see [`crate::shell`]).
pub const COMMANDS: [&str; 7] = [
    "kubectl",
    "etcdctl",
    "docker",
    "systemctl",
    "rm",
    "cat",
    "ls",
];

/// What a line did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Print this and prompt again.
    Output(Output),
    /// The learner left the playground (`exit` on node1).
    Leave,
}

/// A learner at the cluster's console.
pub struct Playground<'a> {
    cluster: &'a Cluster,
    /// The nodes the learner is logged into, the first one being node1's console:
    /// `ssh` pushes, `exit` pops.
    path: Vec<String>,
    /// Every line typed, for `history` and the hand-in.
    pub history: Vec<String>,
}

impl<'a> Playground<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        Playground {
            cluster,
            path: vec!["node1".into()],
            history: Vec::new(),
        }
    }

    /// The node the learner is on.
    pub fn node(&self) -> &str {
        self.path.last().map_or("node1", String::as_str)
    }

    /// `root@node1:~# `.
    pub fn prompt(&self) -> String {
        format!("root@{}:~# ", self.node())
    }

    /// Runs one line as typed.
    pub async fn execute(&mut self, line: &str) -> Outcome {
        let line = line.trim();
        if line.is_empty() {
            return Outcome::Output(Output::default());
        }
        self.history.push(line.to_string());
        let words: Vec<&str> = line.split_whitespace().collect();
        let out = match words.as_slice() {
            ["exit"] | ["logout"] => {
                if self.path.len() == 1 {
                    return Outcome::Leave;
                }
                let left = self.path.pop().unwrap_or_default();
                Output::ok(format!("logout\nConnection to {left} closed.\n"))
            }
            ["ssh", target] => self.ssh(target),
            ["ssh", ..] => Output::fail("usage: ssh NODE (node1, node2 or node3)", 255),
            ["hostname"] => Output::ok(format!("{}\n", self.node())),
            ["ip", "a" | "addr" | "address", ..] => Output::ok(self.ip_a()),
            ["clear"] => Output::ok("\x1b[H\x1b[2J"),
            [program, ..] if ELSEWHERE.contains(program) => Output::fail(
                format!(
                    "{program}: a real node has it; this playground does not (yet). `help` lists what there is."
                ),
                127,
            ),
            ["help"] => Output::ok(help()),
            ["history"] => Output::ok(
                self.history
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{:>5}  {l}\n", i + 1))
                    .collect::<String>(),
            ),
            ["env"] => Output::ok(self.env()),
            ["hint"] => Output::ok(hint(&checker::grade(self.cluster).await)),
            ["solution"] => Output::ok(solution(self.cluster)),
            ["status"] => Output::ok(status(&checker::grade(self.cluster).await)),
            ["check"] => {
                let checks = checker::grade(self.cluster).await;
                Output {
                    stdout: checker::verdict(&checks),
                    stderr: String::new(),
                    code: i32::from(!checks.iter().all(|c| c.passed)),
                }
            }
            _ => shell::run(self.cluster, self.node(), line).await,
        };
        Outcome::Output(out)
    }

    fn ssh(&mut self, target: &str) -> Output {
        let name = target.strip_prefix("root@").unwrap_or(target);
        let found = self
            .cluster
            .nodes
            .iter()
            .find(|n| n.name() == name || n.ctx.ip == name);
        match found {
            Some(node) => {
                self.path.push(node.name().to_string());
                Output::ok(format!(
                    "Welcome to {} ({}), a node of the course's cluster.\n",
                    node.name(),
                    node.ctx.ip
                ))
            }
            None => Output::fail(
                format!("ssh: Could not resolve hostname {name}: Name or service not known"),
                255,
            ),
        }
    }

    /// `ip a`: the loopback and the node's address, as `ip` prints them.
    fn ip_a(&self) -> String {
        let ip = self.cluster.ip(self.node());
        format!(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n             \x20   link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n             \x20   inet 127.0.0.1/8 scope host lo\n             2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n             \x20   inet {ip}/24 brd {} scope global eth0\n",
            ip.rsplit_once('.').map_or(String::new(), |(net, _)| format!("{net}.255"))
        )
    }

    /// What points this machine's real tools at the node the learner is on.
    fn env(&self) -> String {
        let ip = self.cluster.ip(self.node());
        let kubeconfig = self.cluster.root.join("kubeconfig-for-this-machine");
        format!(
            "HOSTNAME={}\nHOME=/root\nKUBECONFIG={}\nETCDCTL_API=3\nETCDCTL_ENDPOINTS=http://{ip}:2379\n",
            self.node(),
            kubeconfig.display()
        )
    }
}

fn help() -> String {
    let mut out = String::from(
        "The course assignment, on a live three-node cluster:\n\
         1. back up etcd on node1 to /tmp/node1.etcd.backup\n\
         2. stop kube-apiserver on node2 (for good: the kubelet restarts what it runs)\n\
         3. point kubectl on node2 at node1's apiserver\n\
         4. stop etcd on node2\n\
         5. from node2: kubectl run alpine --image=alpine -- ping 8.8.8.8\n\
         then `check` to hand it in.\n\n",
    );
    out.push_str("playground: ");
    out.push_str(&BUILTINS.join(", "));
    out.push_str("\non the nodes: ");
    out.push_str(&COMMANDS.join(", "));
    out.push_str(" (output can go through | head, | tail, | grep)\nTab completes commands, subcommands, kinds and node names; ↑/↓ go through the history.\n");
    out
}

/// What the next unmet requirement is about, without the command.
pub fn hint(checks: &[Check]) -> String {
    let Some(next) = checks.iter().find(|c| !c.passed) else {
        return "Every requirement is met: type `check` to hand it in.\n".into();
    };
    let about = match next.requirement {
        r if r.contains("backup") => "etcd keeps the whole cluster: save a snapshot of it with etcd's own tool, on node1, to the path the task names.",
        r if r.contains("kube-apiserver stopped") => "The apiserver on node2 is a static pod: the kubelet runs whatever its manifest directory holds, and starts a stopped container again.",
        r if r.contains("points at node1") => "kubectl on node2 reads its server from the kubeconfig in root's home; node1's apiserver listens on its own address, port 6443.",
        r if r.contains("etcd on node2") => "etcd runs in docker on every node, as a plain container (not a static pod).",
        r if r.contains("alpine") => "Create the pod from node2, with the image and command the task gives.",
        _ => "Read the requirement and what the checker found:",
    };
    format!(
        "Next: {}\n{about}\n(now: {})\n",
        next.requirement, next.detail
    )
}

/// The requirements met so far.
pub fn status(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            let mark = if c.passed { "done" } else { "todo" };
            format!("[{mark}] {}\n", c.requirement)
        })
        .collect()
}

/// The commands that solve the assignment, node by node.
pub fn solution(cluster: &Cluster) -> String {
    let node1 = cluster.ip("node1");
    format!(
        "root@node1:~# etcdctl snapshot save {}\n\
         root@node1:~# ssh node2\n\
         root@node2:~# rm /etc/kubernetes/manifests/kube-apiserver.yaml\n\
         root@node2:~# systemctl restart kubelet\n\
         root@node2:~# kubectl config set-cluster cluster.local --server=https://{node1}:6443\n\
         root@node2:~# docker stop etcd2\n\
         root@node2:~# kubectl run alpine --image=alpine -- ping 8.8.8.8\n\
         root@node2:~# exit\n\
         root@node1:~# check\n",
        checker::BACKUP
    )
}
