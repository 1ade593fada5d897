//! Simulated images: what a pod's container "does". Only the behaviour a learner looks
//! at is simulated: `ping HOST` prints a reply line every second, `sleep N` ends after N
//! seconds, `nginx` serves forever, and an unknown command fails like a missing binary
//! (the kubelet then restarts it with a growing back-off: `CrashLoopBackOff`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seams::clock::SharedClock;

use crate::runtime::{log as push, BoxFuture, Logs, Process};

/// A running workload: a task, and its exit code once it ends by itself.
pub struct Task {
    handle: tokio::task::JoinHandle<()>,
    exit: Arc<Mutex<Option<i32>>>,
}

impl Process for Task {
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.handle.abort();
        Box::pin(async {})
    }

    fn exit_code(&self) -> Option<i32> {
        *self.exit.lock().expect("exit lock")
    }
}

/// Starts the workload `command` (entrypoint plus arguments) describes.
pub fn start(command: Vec<String>, logs: Logs, clock: SharedClock) -> Task {
    let exit = Arc::new(Mutex::new(None));
    let done = exit.clone();
    let handle = tokio::spawn(async move {
        let code = run(&command, &logs, &clock).await;
        *done.lock().expect("exit lock") = Some(code);
    });
    Task { handle, exit }
}

/// Runs until the workload ends; returns its exit code.
async fn run(command: &[String], logs: &Logs, clock: &SharedClock) -> i32 {
    let program = command.first().map(String::as_str).unwrap_or("");
    let program = program.rsplit('/').next().unwrap_or(program);
    match program {
        "ping" => {
            let host = command
                .last()
                .filter(|_| command.len() > 1)
                .cloned()
                .unwrap_or_default();
            if host.is_empty() {
                push(logs, "ping: usage error: Destination address required");
                return 1;
            }
            push(logs, format!("PING {host} ({host}): 56 data bytes"));
            let mut seq = 0u64;
            loop {
                // Deterministic, plausible round-trip times.
                let ms = 10.0 + ((seq * 7919) % 50) as f64 / 10.0;
                push(
                    logs,
                    format!("64 bytes from {host}: seq={seq} ttl=117 time={ms:.3} ms"),
                );
                seq += 1;
                clock.sleep(Duration::from_secs(1)).await;
            }
        }
        "sleep" => {
            let seconds: f64 = command.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            clock.sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
            0
        }
        "nginx" | "docker-entrypoint.sh" => {
            push(
                logs,
                "/docker-entrypoint.sh: Configuration complete; ready for start up",
            );
            push(logs, "nginx: [notice] start worker processes");
            std::future::pending::<()>().await;
            0
        }
        // A shell without a terminal has nothing to read and exits at once.
        "sh" | "true" => 0,
        "echo" => {
            push(logs, command[1..].join(" "));
            0
        }
        other => {
            push(
                logs,
                format!("exec: \"{other}\": executable file not found in $PATH"),
            );
            127
        }
    }
}

/// What a container runs, as Docker decides: the pod's `command` (or else the image's
/// entrypoint), followed by the pod's `args` (or else the image's default arguments).
/// `kubectl run alpine --image=alpine -- ping 8.8.8.8` gives args only, and alpine has
/// no entrypoint, so the container runs `ping 8.8.8.8`.
pub fn effective_command(image: &str, command: &[String], args: &[String]) -> Vec<String> {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (entrypoint, cmd) = match name {
        "nginx" => (
            strings(&["/docker-entrypoint.sh"]),
            strings(&["nginx", "-g", "daemon off;"]),
        ),
        "alpine" => (vec![], strings(&["/bin/sh"])),
        "busybox" => (vec![], strings(&["sh"])),
        other => (vec![], vec![other.to_string()]),
    };
    let mut out = if command.is_empty() {
        entrypoint
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        out.extend(args.iter().cloned());
    } else if command.is_empty() {
        out.extend(cmd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_rules_for_command_and_args() {
        assert_eq!(
            effective_command("alpine", &[], &v(&["ping", "8.8.8.8"])),
            v(&["ping", "8.8.8.8"])
        );
        assert_eq!(
            effective_command("alpine", &v(&["sleep"]), &v(&["10"])),
            v(&["sleep", "10"])
        );
        assert_eq!(effective_command("alpine:3.20", &[], &[]), v(&["/bin/sh"]));
        assert_eq!(
            effective_command("nginx", &[], &[]),
            v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
    }

    #[tokio::test]
    async fn ping_prints_replies_and_unknown_commands_fail() {
        let logs: Logs = Arc::default();
        assert_eq!(
            run(&v(&["nope"]), &logs, &seams::SystemClock::shared()).await,
            127
        );
        let logs: Logs = Arc::default();
        let ping = tokio::spawn({
            let logs = logs.clone();
            async move {
                run(
                    &v(&["ping", "8.8.8.8"]),
                    &logs,
                    &seams::SystemClock::shared(),
                )
                .await
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while logs.lock().unwrap().len() < 2 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ping.abort();
        let lines = logs.lock().unwrap().clone();
        assert_eq!(lines[0], "PING 8.8.8.8 (8.8.8.8): 56 data bytes");
        assert!(lines[1].starts_with("64 bytes from 8.8.8.8: seq=0 ttl=117 time="));
    }
}
