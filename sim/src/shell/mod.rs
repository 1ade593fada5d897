//! The commands a learner types "on a node": `kubectl`, `etcdctl`, `docker`,
//! `systemctl`, `rm`, `cat`, `ls` — each run with that node's files and address, and
//! parsed with clap as the real tools parse them. They reach the components only the
//! way the real tools would: kubectl over HTTPS to the server in the node's kubeconfig,
//! etcdctl over gRPC to the members' client URLs, docker to the node's runtime.

pub mod etcdctl;
pub mod kubectl;
pub mod system;

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

/// Runs one command line on `node`. Its output can go through filters, as in a
/// shell pipe: `| head [-n N]`, `| tail [-n N]`, `| grep [-v] WORD`.
pub async fn run(cluster: &Cluster, node: &str, line: &str) -> Output {
    let Some(node) = cluster.node(node) else {
        return Output::fail(format!("no such node: {node}"), 1);
    };
    let mut stages = line.split('|');
    let command = stages.next().unwrap_or("");
    let mut filters = Vec::new();
    for stage in stages {
        match Filter::parse(stage) {
            Ok(f) => filters.push(f),
            Err(out) => return out,
        }
    }
    let argv = words(command);
    let mut out = dispatch(node, &argv).await;
    for filter in filters {
        let lines: Vec<&str> = out.stdout.lines().collect();
        let kept: Vec<&str> = filter.apply(&lines);
        // grep fails when nothing matched, as the real one (exit 1).
        if matches!(filter, Filter::Grep { .. }) && kept.is_empty() && out.code == 0 {
            out.code = 1;
        }
        out.stdout = kept.iter().map(|l| format!("{l}\n")).collect();
    }
    out
}

/// A command a pipe sends output through.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Head(usize),
    Tail(usize),
    /// `grep [-v] [-A N] WORD`: the lines with WORD (or without, `-v`), each with the
    /// `N` lines after it.
    Grep {
        word: String,
        invert: bool,
        after: usize,
    },
}

impl Filter {
    fn parse(stage: &str) -> Result<Filter, Output> {
        let w = words(stage);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let count = |n: &str| n.trim_start_matches('-').parse::<usize>().ok();
        let parsed = match w[..] {
            ["head"] => Some(Filter::Head(10)),
            ["head", "-n", n] | ["head", n] => count(n).map(Filter::Head),
            ["tail"] => Some(Filter::Tail(10)),
            ["tail", "-n", n] | ["tail", n] => count(n).map(Filter::Tail),
            ["grep", word] => Some(Filter::Grep {
                word: word.to_string(),
                invert: false,
                after: 0,
            }),
            ["grep", "-v", word] => Some(Filter::Grep {
                word: word.to_string(),
                invert: true,
                after: 0,
            }),
            ["grep", "-A", n, word] => count(n).map(|after| Filter::Grep {
                word: word.to_string(),
                invert: false,
                after,
            }),
            _ => None,
        };
        parsed.ok_or_else(|| match w.first() {
            Some(&("head" | "tail" | "grep")) => {
                Output::fail(format!("{}: this shell only knows head -n N, tail -n N and grep [-v|-A N] WORD after a pipe", w[0]), 2)
            }
            Some(other) => Output::fail(format!("bash: {other}: command not found"), 127),
            None => Output::fail("bash: syntax error near unexpected token `|'".to_string(), 2),
        })
    }

    fn apply<'a>(&self, lines: &[&'a str]) -> Vec<&'a str> {
        match self {
            Filter::Head(n) => lines.iter().take(*n).copied().collect(),
            Filter::Tail(n) => lines[lines.len().saturating_sub(*n)..].to_vec(),
            Filter::Grep {
                word,
                invert,
                after,
            } => {
                let mut kept = Vec::new();
                let mut context = 0;
                for line in lines {
                    if line.contains(word.as_str()) != *invert {
                        kept.push(*line);
                        context = *after;
                    } else if context > 0 {
                        kept.push(*line);
                        context -= 1;
                    }
                }
                kept
            }
        }
    }
}

async fn dispatch(node: &Node, argv: &[String]) -> Output {
    let Some(program) = argv.first() else {
        return Output::default();
    };
    match program.as_str() {
        "kubectl" => kubectl::run(node, argv).await,
        "etcdctl" => etcdctl::run(node, argv).await,
        "docker" => system::docker(node, argv).await,
        "systemctl" => system::systemctl(node, argv).await,
        "rm" | "cat" | "ls" => system::files(node, argv),
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

    #[test]
    fn pipes_filter_lines_as_head_tail_and_grep_do() {
        let lines = ["a lease", "b", "c lease", "d"];
        let f = |stage: &str| Filter::parse(stage).unwrap().apply(&lines);
        assert_eq!(f(" head -n 3"), ["a lease", "b", "c lease"]);
        assert_eq!(f(" head"), lines);
        assert_eq!(f(" tail -n 1"), ["d"]);
        assert_eq!(f(" tail -2"), ["c lease", "d"]);
        assert_eq!(f(" grep lease"), ["a lease", "c lease"]);
        assert_eq!(f(" grep -v lease"), ["b", "d"]);
        assert_eq!(f(" grep -A 1 lease"), lines);
        assert_eq!(f(" grep -A 1 c"), ["c lease", "d"]);
        assert_eq!(Filter::parse(" sort").unwrap_err().code, 127);
        assert_eq!(Filter::parse(" grep -E x y").unwrap_err().code, 2);
    }
}
