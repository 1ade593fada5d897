//! The commands a learner types "on a node": `kubectl`, `etcdctl`, `docker`,
//! `systemctl`, `rm`, `cat`, `ls` — each run with that node's files and address, and
//! parsed with clap as the real tools parse them. They reach the components only the
//! way the real tools would: kubectl over HTTPS to the server in the node's kubeconfig,
//! etcdctl over gRPC to the members' client URLs, docker to the node's runtime.

pub mod crictl;
mod describe;
pub mod etcdctl;
pub mod files;
pub mod kubectl;
pub mod pipe;
mod stream;
pub mod system;

pub use pipe::Stdout;

use crate::cluster::{Cluster, Node};

/// What a command printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    pub fn ok(stdout: impl Into<String>) -> Self {
        Output {
            stdout: stdout.into(),
            ..Output::default()
        }
    }

    pub fn fail(stderr: impl Into<String>, code: i32) -> Self {
        let mut stderr = stderr.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Output {
            stderr,
            code,
            ..Output::default()
        }
    }
}

/// Columns three spaces apart, each as wide as its widest cell, trailing blanks
/// trimmed: how `kubectl get` and `docker ps` lay out their tables.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Splits a command line into words, honouring single and double quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// Runs one command line on `node` and returns all it printed. Its output can go
/// through filters, as in a shell pipe: `| head [-n N]`, `| tail [-n N]`,
/// `| grep [-v|-A N] WORD`.
pub async fn run(cluster: &Cluster, node: &str, line: &str) -> Output {
    let (command, filters) = match pipe::split(line) {
        Ok(split) => split,
        Err(out) => return out,
    };
    let stdout = Stdout::buffer(filters);
    let mut out = run_to(cluster, node, command, &stdout).await;
    out.stdout = stdout.finish();
    if stdout.grep_found_nothing() && out.code == 0 {
        out.code = 1;
    }
    out
}

/// Runs one command (no pipe) on `node`, writing what it prints into `stdout` as it
/// comes; the [`Output`] has its error text and exit code. A command that streams
/// (`kubectl get -w`, `kubectl logs -f`, `etcdctl watch`) runs until its source ends,
/// the pipe closes, or the caller drops the future (Ctrl-C).
pub async fn run_to(cluster: &Cluster, node: &str, command: &str, stdout: &Stdout) -> Output {
    let Some(node) = cluster.node(node) else {
        return Output::fail(format!("no such node: {node}"), 1);
    };
    // `~` is root's home, as bash expands it.
    let argv: Vec<String> = words(command)
        .into_iter()
        .map(|w| match w.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", crate::node::CWD)
            }
            _ => w,
        })
        .collect();
    let mut out = dispatch(node, &argv, stdout).await;
    stdout.print(&std::mem::take(&mut out.stdout));
    let mut stderr = stdout.take_errors();
    stderr.push_str(&out.stderr);
    out.stderr = stderr;
    out
}

async fn dispatch(node: &Node, argv: &[String], stdout: &Stdout) -> Output {
    let Some(program) = argv.first() else {
        return Output::default();
    };
    match program.as_str() {
        "kubectl" => kubectl::run(node, argv, stdout).await,
        "etcdctl" => etcdctl::run(node, argv, stdout).await,
        "docker" => system::docker(node, argv).await,
        "systemctl" => system::systemctl(node, argv).await,
        "crictl" => crictl::run(node, argv).await,
        p if files::PROGRAMS.contains(&p) => files::run(node, argv),
        other => Output::fail(format!("bash: {other}: command not found"), 127),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_like_a_shell() {
        assert_eq!(
            words("kubectl run alpine --image=alpine -- ping 8.8.8.8"),
            [
                "kubectl",
                "run",
                "alpine",
                "--image=alpine",
                "--",
                "ping",
                "8.8.8.8"
            ]
        );
        assert_eq!(words("echo 'a b' \"c d\" e"), ["echo", "a b", "c d", "e"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }
}
