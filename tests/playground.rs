//! The playground as a person uses it: in a terminal (tmux, installed by
//! `scripts/test`; without it the test skips, saying so), typing the assignment with
//! `ssh` between nodes, a Tab to complete a command, a path, a watch and `logs -f`
//! stopped with Ctrl-C, ↑ for the history, then `check` and the hand-in; `reset`, and a
//! wrong solution that `check` fails with its reasons. The cluster is live:
//! time follows the clock while the keys arrive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The example's binary, which `cargo test` builds next to the test binaries (alone,
/// `cargo test --test playground` does not rebuild examples: `cargo build --example
/// playground` first).
fn playground() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join("examples").join("playground")
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmux session running the playground; killed when dropped.
struct Terminal {
    session: String,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.session]);
    }
}

impl Terminal {
    fn screen(&self) -> String {
        // -J joins the lines the terminal wrapped (and keeps trailing blanks, which go).
        tmux(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-2000",
            "-t",
            &self.session,
        ])
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
    }

    /// Waits (deadline `within`) until the screen holds `text` more than `seen` times.
    fn wait_for(&self, text: &str, seen: usize, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            let screen = self.screen();
            if screen.matches(text).count() > seen {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "no {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends keys as tmux names them (`Enter`, `C-c`, `Up`) or text.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        tmux(&args);
    }

    /// Waits (a minute at most) until the screen satisfies `ok`.
    fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "{what}: not on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The screen ends at `prompt`, with nothing typed after it.
    fn at_prompt(&self, prompt: &str) {
        self.wait_until("the prompt", |s| s.trim_end().ends_with(prompt));
    }

    /// Types `line` and Enter at the prompt `prompt`, and waits for the next prompt.
    fn run(&self, prompt: &str, line: &str, next: &str) -> String {
        let before = self.screen().matches(next).count();
        assert!(
            self.screen().trim_end().ends_with(prompt.trim_end()),
            "not at {prompt:?}:\n{}",
            self.screen()
        );
        tmux(&["send-keys", "-t", &self.session, "-l", line]);
        tmux(&["send-keys", "-t", &self.session, "Enter"]);
        self.wait_for(next, before, Duration::from_secs(60))
    }
}

#[test]
fn the_assignment_done_in_the_playground_passes_the_check() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIPPED: the_assignment_done_in_the_playground_passes_the_check: tmux not found on PATH; install tmux (Debian: apt-get install tmux) to run the playground's terminal test");
        return;
    }
    let binary = playground();
    assert!(
        binary.exists(),
        "{} (built by cargo test)",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let session = format!("miniplane-{}", std::process::id());
    let command = format!("{} --data-root {}", binary.display(), dir.path().display());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "50",
        &command,
    ]);
    let t = Terminal { session };
    // (tmux drops the spaces at the end of a line: the prompts without theirs.)
    let (n1, n2) = ("root@node1:~#", "root@node2:~#");
    t.wait_for(n1, 0, Duration::from_secs(180));

    // Tab completes a command name.
    let before = t.screen().matches(n1).count();
    tmux(&["send-keys", "-t", &t.session, "hostn", "Tab", "Enter"]);
    let screen = t.wait_for(n1, before, Duration::from_secs(30));
    assert!(screen.contains("root@node1:~# hostname\nnode1"), "{screen}");

    // ...and a resource kind after `kubectl get`.
    let before = t.screen().matches(n1).count();
    tmux(&[
        "send-keys",
        "-t",
        &t.session,
        "kubectl get no",
        "Tab",
        "Enter",
    ]);
    let screen = t.wait_for(n1, before, Duration::from_secs(30));
    assert!(screen.contains("kubectl get nodes\nNAME"), "{screen}");

    // ...and paths on the node: a directory goes on, with its `/`.
    let before = t.screen().matches(n1).count();
    t.keys(&["ls /etc/kub", "Tab", "man", "Tab", "Enter"]);
    let screen = t.wait_for(n1, before, Duration::from_secs(30));
    assert!(
        screen.contains("root@node1:~# ls /etc/kubernetes/manifests/\nkube-apiserver.yaml"),
        "{screen}"
    );

    t.run(n1, "etcdctl snapshot save /tmp/node1.etcd.backup", n1);
    t.run(n1, "ssh node2", n2);
    t.run(n2, "rm /etc/kubernetes/manifests/kube-apiserver.yaml", n2);
    t.run(n2, "systemctl restart kubelet", n2);
    let env = t.run(n2, "env", n2);
    let ip = env
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ETCDCTL_ENDPOINTS=http://"))
        .and_then(|l| l.strip_suffix(":2379"))
        .expect("env names node2's etcd")
        .to_string();
    let node1 = ip
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.11"))
        .unwrap();
    t.run(
        n2,
        &format!("kubectl config set-cluster cluster.local --server=https://{node1}:6443"),
        n2,
    );
    t.run(n2, "docker stop etcd2", n2);
    let screen = t.run(n2, "kubectl run alpine --image=alpine -- ping 8.8.8.8", n2);
    assert!(screen.contains("pod/alpine created"), "{screen}");
    // Live: the pod starts in real time.
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let screen = t.run(n2, "kubectl get pods", n2);
        let last = screen.rsplit("kubectl get pods").next().unwrap_or("");
        if last.contains("Running") {
            break;
        }
        assert!(Instant::now() < until, "alpine never ran:\n{screen}");
        std::thread::sleep(Duration::from_secs(1));
    }

    // A watch prints the pod and runs until Ctrl-C, which stops it, not the playground.
    let rows = t.screen().matches("alpine ").count();
    t.keys(&["kubectl get pods -w", "Enter"]);
    t.wait_for("alpine ", rows, Duration::from_secs(30));
    let prompts = t.screen().matches(n2).count();
    t.keys(&["C-c"]);
    t.wait_for(n2, prompts, Duration::from_secs(30));
    t.at_prompt(n2);
    // ↑ brings the line back; Ctrl-C at the prompt gives a fresh one.
    t.keys(&["Up"]);
    t.wait_until("↑ recalls the watch", |s| {
        s.trim_end().ends_with("root@node2:~# kubectl get pods -w")
    });
    let prompts = t.screen().matches(n2).count();
    t.keys(&["C-c"]);
    t.wait_for(n2, prompts, Duration::from_secs(30));
    t.at_prompt(n2);
    // `kubectl logs -f` follows ping's lines as they come, until Ctrl-C.
    let lines = t.screen().matches("seq=").count();
    t.keys(&["kubectl logs -f alpine", "Enter"]);
    t.wait_for("seq=", lines + 3, Duration::from_secs(30));
    let prompts = t.screen().matches(n2).count();
    t.keys(&["C-c"]);
    t.wait_for(n2, prompts, Duration::from_secs(30));
    t.at_prompt(n2);

    t.run(n2, "exit", n1);
    let screen = t.run(n1, "check", n1);
    assert!(screen.contains("5/5 requirements met: PASSED"), "{screen}");
    // The hand-in: the verdict and what was typed, in the data root.
    let handin = std::fs::read_to_string(dir.path().join("handin.txt")).unwrap();
    assert!(
        handin.contains("PASSED") && handin.contains("  kubectl logs -f alpine\n"),
        "{handin}"
    );
    // `reset`: a new cluster from nothing — alpine is gone, node2's apiserver is back.
    let builds = t.screen().matches("Ready: node1").count();
    t.keys(&["reset", "Enter"]);
    t.wait_for("Ready: node1", builds, Duration::from_secs(180));
    t.at_prompt(n1);
    let screen = t.run(n1, "kubectl get pods", n1);
    let last = screen.rsplit("kubectl get pods").next().unwrap_or("");
    assert!(
        last.contains("No resources found in default namespace."),
        "{screen}"
    );
    let screen = t.run(
        n1,
        "kubectl get pods -n kube-system | grep apiserver-node2",
        n1,
    );
    let last = screen.rsplit("grep apiserver-node2").next().unwrap_or("");
    assert!(last.contains("Running"), "{screen}");
    // A wrong way on the new cluster: the pod from node1, the apiserver only
    // `docker stop`ped. `check` fails both, saying why.
    t.run(n1, "kubectl run alpine --image=alpine -- ping 8.8.8.8", n1);
    t.run(n1, "ssh node2", n2);
    t.run(
        n2,
        "docker stop k8s_kube-apiserver_kube-apiserver-node2_kube-system",
        n2,
    );
    t.run(n2, "exit", n1);
    let screen = t.run(n1, "check", n1);
    let verdict = screen.rsplit("root@node1:~# check").next().unwrap_or("");
    assert!(verdict.contains("requirements met: FAILED"), "{screen}");
    assert!(
        verdict.contains(
            "the kubelet runs the apiserver (a stopped container comes back): remove the manifest"
        ),
        "{screen}"
    );
    assert!(
        verdict.contains("pod alpine was created from node1 (") && verdict.contains("not node2"),
        "{screen}"
    );
    // What was typed is kept, for the next session and for the hand-in.
    let history = std::fs::read_to_string(dir.path().join(".playground_history")).unwrap();
    assert!(history.contains("ssh node2"), "{history}");
}
