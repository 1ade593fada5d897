//! `docker` and `systemctl`: the node's own machinery (the file commands are in `files.rs`).

use clap::{Parser, Subcommand};
use jiff::Timestamp;

use super::Output;
use crate::cluster::Node;
use crate::runtime::State;

#[derive(Parser)]
#[command(name = "docker", no_binary_name = false)]
struct Docker {
    #[command(subcommand)]
    command: DockerCommand,
}

#[derive(Subcommand)]
enum DockerCommand {
    /// List containers.
    Ps {
        /// Show all containers (default shows just running).
        #[arg(short, long)]
        all: bool,
    },
    /// Stop one or more running containers.
    Stop { names: Vec<String> },
    /// Start one or more stopped containers.
    Start { names: Vec<String> },
    /// Create and run a new container (`docker run -d --name NAME IMAGE COMMAND...`).
    Run {
        #[arg(short = 'd', long)]
        detach: bool,
        #[arg(long)]
        name: String,
        image: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Remove one or more containers.
    Rm {
        /// Force the removal of a running container.
        #[arg(short, long)]
        force: bool,
        names: Vec<String>,
    },
    /// Fetch the logs of a container.
    Logs {
        name: String,
        #[arg(long)]
        tail: Option<usize>,
    },
}

fn clap_failure(e: clap::Error) -> Output {
    let code = if e.use_stderr() { 1 } else { 0 };
    let text = e.render().to_string();
    if code == 0 {
        Output::ok(text)
    } else {
        Output::fail(text, code)
    }
}

/// Docker's way of saying how long: `3 seconds`, `About a minute`, `5 minutes`.
pub(super) fn age(t: Timestamp, now: Timestamp) -> String {
    let s = (now.as_second() - t.as_second()).max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        _ => format!("{} hours", s / 3600),
    }
}

/// `docker ps`, `stop`, `start`, `run`, `rm`, `logs`.
pub async fn docker(node: &Node, argv: &[String]) -> Output {
    let cmd = match Docker::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return clap_failure(e),
    };
    let runtime = &node.runtime;
    let now = api::time::now(&*node.ctx.clock);
    match cmd.command {
        DockerCommand::Ps { all } => {
            let mut rows = vec![vec![
                "CONTAINER ID".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "CREATED".into(),
                "STATUS".into(),
                "NAMES".into(),
            ]];
            for c in runtime.list().await {
                let status = match c.state {
                    State::Running { since } => format!("Up {}", age(since, now)),
                    State::Created if all => "Created".into(),
                    State::Created => continue,
                    State::Exited { code, at } if all => {
                        format!("Exited ({code}) {} ago", age(at, now))
                    }
                    State::Exited { .. } => continue,
                };
                let mut command = c.command.clone();
                if command.len() > 20 {
                    command.truncate(19);
                    command.push('…');
                }
                rows.push(vec![
                    c.id,
                    c.image,
                    format!("\"{command}\""),
                    format!("{} ago", age(c.created, now)),
                    status,
                    c.name,
                ]);
            }
            Output::ok(super::columns(&rows))
        }
        DockerCommand::Stop { names } => {
            each(&names, |n| async move { runtime.stop(&n).await.map(|_| n) }).await
        }
        DockerCommand::Start { names } => {
            each(
                &names,
                |n| async move { runtime.start(&n).await.map(|_| n) },
            )
            .await
        }
        DockerCommand::Run {
            name,
            image,
            command,
            ..
        } => {
            let spec = crate::runtime::ContainerSpec {
                name,
                image,
                command,
                ..Default::default()
            };
            match runtime.run(spec).await {
                Ok(id) => Output::ok(format!("{id}\n")),
                Err(e) => Output::fail(format!("docker: Error response from daemon: {e}."), 125),
            }
        }
        DockerCommand::Rm { force, names } => {
            each(&names, |n| async move {
                let running = runtime
                    .info(&n)
                    .await
                    .is_some_and(|c| matches!(c.state, State::Running { .. }));
                if running && !force {
                    return Err(crate::error::Error::Conflict(format!(
                        "Error response from daemon: cannot remove container \"/{n}\": \
                         container is running: stop the container before removing or force remove"
                    )));
                }
                runtime.remove(&n).await.map(|_| n)
            })
            .await
        }
        DockerCommand::Logs { name, tail } => match runtime.logs(&name).await {
            Ok(lines) => {
                let start = tail.map_or(0, |t| lines.len().saturating_sub(t));
                Output::ok(
                    lines[start..]
                        .iter()
                        .map(|l| format!("{l}\n"))
                        .collect::<String>(),
                )
            }
            Err(e) => Output::fail(e.to_string(), 1),
        },
    }
}

/// Runs `f` for each name, printing each name that worked (as docker does).
async fn each<F, Fut>(names: &[String], f: F) -> Output
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<String>>,
{
    let mut out = Output::default();
    for name in names {
        match f(name.clone()).await {
            Ok(n) => out.stdout.push_str(&format!("{n}\n")),
            Err(e) => {
                out.stderr.push_str(&format!("{e}\n"));
                out.code = 1;
            }
        }
    }
    out
}

/// `systemctl status kubelet`, as systemd prints it for kubespray's unit (exit 3 when
/// it is not running).
async fn kubelet_status(node: &Node) -> Output {
    let running = node.kubelet_running().await;
    let now = api::time::now(&*node.ctx.clock);
    let since = node.kubelet_since().map_or(String::new(), |t| {
        let ago = (now.as_second() - t.as_second()).max(0);
        let ago = match ago {
            0..=59 => format!("{ago}s"),
            60..=3599 => format!("{}min {}s", ago / 60, ago % 60),
            _ => format!("{}h {}min", ago / 3600, ago % 3600 / 60),
        };
        let at = t
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%a %Y-%m-%d %H:%M:%S UTC");
        format!(" since {at}; {ago} ago")
    });
    let (dot, active) = if running {
        ("●", "active (running)")
    } else {
        ("○", "inactive (dead)")
    };
    let text = format!(
        "{dot} kubelet.service - Kubernetes Kubelet Server\n\
         \x20    Loaded: loaded (/etc/systemd/system/kubelet.service; enabled; vendor preset: enabled)\n\
         \x20    Active: {active}{since}\n\
         \x20      Docs: https://github.com/GoogleCloudPlatform/kubernetes\n"
    );
    Output {
        stdout: text,
        code: if running { 0 } else { 3 },
        ..Output::default()
    }
}

/// `systemctl start|stop|restart|status kubelet`.
pub async fn systemctl(node: &Node, argv: &[String]) -> Output {
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    match args[..] {
        ["restart", "kubelet"] => {
            node.stop_kubelet().await;
            node.start_kubelet().await;
            Output::default()
        }
        ["stop", "kubelet"] => {
            node.stop_kubelet().await;
            Output::default()
        }
        ["start", "kubelet"] => {
            node.start_kubelet().await;
            Output::default()
        }
        ["status", "kubelet"] => kubelet_status(node).await,
        ["is-active", "kubelet"] => {
            if node.kubelet_running().await {
                Output::ok("active\n")
            } else {
                Output {
                    stdout: "inactive\n".into(),
                    code: 3,
                    ..Output::default()
                }
            }
        }
        [_, unit] => Output::fail(
            format!("Failed to operate on {unit}.service: Unit {unit}.service not found."),
            5,
        ),
        _ => Output::fail("usage: systemctl start|stop|restart|status kubelet", 1),
    }
}
