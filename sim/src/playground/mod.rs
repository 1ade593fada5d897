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
//! A line's output goes to the terminal as it comes ([`Playground::execute_to`]
//! writes into a [`Stdout`], through the line's pipe): `kubectl get pods -w`,
//! `kubectl logs -f alpine` and `etcdctl watch --prefix /registry/pods` print each
//! change until Ctrl-C, which the terminal turns into dropping the command's future —
//! its connections close, as a killed process's do. `reset` asks the terminal for a
//! new cluster.

use std::sync::{Arc, Mutex};

use crate::checker::{self, Check};
use crate::cluster::Cluster;
use crate::shell::{self, pipe, Output, Stdout};

mod complete;
pub use complete::complete;

/// What the learner can type, for `help` and completion.
pub const BUILTINS: [&str; 13] = [
    "ssh", "exit", "hint", "solution", "status", "check", "reset", "env", "hostname", "history",
    "help", "ip", "clear",
];

/// The file in the data root a passing `check` writes: the verdict and what was typed.
pub const HANDIN: &str = "handin.txt";

/// Commands a real node has that this one does not (yet): said plainly, not as
/// `command not found`.
pub const ELSEWHERE: [&str; 10] = [
    "vi",
    "vim",
    "nano",
    "journalctl",
    "curl",
    "ping",
    "apt",
    "apt-get",
    "top",
    "ps",
];

/// The commands the shell runs on a node (see [`crate::shell`]).
pub const COMMANDS: [&str; 19] = [
    "kubectl",
    "etcdctl",
    "docker",
    "crictl",
    "systemctl",
    "ls",
    "cat",
    "rm",
    "cp",
    "mv",
    "sed",
    "grep",
    "head",
    "tail",
    "wc",
    "echo",
    "touch",
    "mkdir",
    "pwd",
];

/// What a line did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Print this and prompt again.
    Output(Output),
    /// The learner left the playground (`exit` on node1).
    Leave,
    /// `reset`: build the cluster again, from nothing.
    Reset,
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

    /// Runs one line as typed and returns all it printed (the tests' way in).
    pub async fn execute(&mut self, line: &str) -> Outcome {
        let printed = Arc::new(Mutex::new(String::new()));
        let into = printed.clone();
        let errors = Arc::new(Mutex::new(String::new()));
        let errors_into = errors.clone();
        let outcome = self
            .execute_to(
                line,
                move |text| {
                    into.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(text)
                },
                move |text| {
                    errors_into
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(text)
                },
            )
            .await;
        match outcome {
            Outcome::Output(mut out) => {
                out.stdout =
                    std::mem::take(&mut *printed.lock().unwrap_or_else(|p| p.into_inner()));
                let mut stderr =
                    std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner()));
                stderr.push_str(&out.stderr);
                out.stderr = stderr;
                Outcome::Output(out)
            }
            other => other,
        }
    }

    /// Runs one line as typed, handing what it prints to `write` and the error text a
    /// streaming command writes on its way to `ewrite`, as they come (the terminal
    /// prints them at once: a watch shows each change). The [`Output`] that comes back
    /// has the rest of the error text and the exit code. Dropping the future stops the
    /// command: that is Ctrl-C.
    pub async fn execute_to(
        &mut self,
        line: &str,
        write: impl FnMut(&str) + Send + 'static,
        ewrite: impl FnMut(&str) + Send + 'static,
    ) -> Outcome {
        let line = line.trim();
        if line.is_empty() {
            return Outcome::Output(Output::default());
        }
        self.history.push(line.to_string());
        let (command, filters) = match pipe::split(line) {
            Ok(split) => split,
            Err(out) => return Outcome::Output(out),
        };
        let stdout = Stdout::to(filters, write).with_stderr(ewrite);
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut out = match words.as_slice() {
            ["exit"] | ["logout"] => {
                if self.path.len() == 1 {
                    return Outcome::Leave;
                }
                let left = self.path.pop().unwrap_or_default();
                Output::ok(format!("logout\nConnection to {left} closed.\n"))
            }
            ["reset"] => return Outcome::Reset,
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
            ["check"] => self.check().await,
            _ => shell::run_to(self.cluster, self.node(), command, &stdout).await,
        };
        stdout.print(&std::mem::take(&mut out.stdout));
        stdout.finish();
        if stdout.grep_found_nothing() && out.code == 0 {
            out.code = 1;
        }
        Outcome::Output(out)
    }

    /// `check`: the checker's verdict; when every requirement is met, the hand-in —
    /// the verdict and what the learner typed — is saved in the data root.
    async fn check(&self) -> Output {
        let checks = checker::grade(self.cluster).await;
        let verdict = checker::verdict(&checks);
        if !checks.iter().all(|c| c.passed) {
            return Output {
                stdout: verdict,
                stderr: String::new(),
                code: 1,
            };
        }
        let typed: String = self.history.iter().map(|l| format!("  {l}\n")).collect();
        let handin = format!("{verdict}\nWhat was typed:\n{typed}");
        let path = self.cluster.root.join(HANDIN);
        match std::fs::write(&path, &handin) {
            Ok(()) => Output::ok(format!("{handin}\nHanded in: {}\n", path.display())),
            Err(e) => Output {
                stdout: handin,
                stderr: format!("could not save the hand-in to {}: {e}\n", path.display()),
                code: 1,
            },
        }
    }

    /// Tab on `line` (up to the cursor), on the node the learner is on.
    pub async fn complete(&self, line: &str) -> (usize, Vec<String>) {
        complete::complete_on(self.cluster, self.node(), line).await
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
    out.push_str(
        " (output can go through | head, | tail, | grep)\n\
         kubectl get -w, kubectl logs -f and etcdctl watch run until Ctrl-C.\n\
         Tab completes commands, subcommands, kinds and node names; ↑/↓ go through the history.\n\
         `reset` throws the cluster away and builds a new one; Ctrl-D or `exit` on node1 leaves.\n",
    );
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
        r if r.contains("reaches node1") => "kubectl on node2 reads its server from the kubeconfig in root's home; node1's apiserver listens on its own address, port 6443.",
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
