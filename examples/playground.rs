//! The playground: do the course assignment yourself, then hand it in.
//! `cargo run --example playground`.
//!
//! Builds the assignment's three-node cluster, moves it onto this machine's loopback
//! addresses with time following the clock, and gives you a prompt on node1:
//! `root@node1:~# `. `help` lists what there is; `ssh node2` and `exit` move between
//! nodes; `hint`, `solution`, `status`; `check` hands the work in. Ctrl-D or `exit` on
//! node1 leaves. Options: `--seed N`, `--data-root DIR` (the nodes' files, and the
//! history of what you typed).
//!
//! The terminal (line editing, history, completion of command names) runs on a thread
//! of its own, so the cluster's one thread keeps serving while you type
//! (`sim::playground` has the rest).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use miniplane::sim::cluster::{free_subnet, Cluster, Options, DEFAULT_SEED, NODES};
use miniplane::sim::playground::{Outcome, Playground};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};
use std::io::Write;
use std::os::unix::process::CommandExt;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(about = "Do the Kubernetes course assignment on three simulated nodes")]
struct Args {
    /// Where every ID and token comes from.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Where the nodes' files go (default: a fresh temporary directory).
    #[arg(long)]
    data_root: Option<PathBuf>,
}

/// Completes the word at the cursor: asks the cluster's thread, which knows the node
/// the learner is on and can look at its files and the cluster's objects
/// (`Playground::complete`).
#[derive(Helper, Highlighter, Hinter, Validator)]
struct Words {
    ask: tokio::sync::mpsc::UnboundedSender<Typed>,
}

impl Completer for Words {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (reply, answer) = std::sync::mpsc::channel();
        if self
            .ask
            .send(Typed::Complete(line[..pos].to_string(), reply))
            .is_err()
        {
            return Ok((pos, Vec::new()));
        }
        // No answer in time (a slow apiserver): nothing to complete, never a hang.
        let (start, words) = answer
            .recv_timeout(Duration::from_secs(3))
            .unwrap_or((pos, Vec::new()));
        let candidates = words
            .into_iter()
            .map(|w| Pair {
                // A directory goes on (`/etc/kubernetes/`); a word is done (a space).
                replacement: if w.ends_with('/') {
                    w.clone()
                } else {
                    format!("{w} ")
                },
                display: w,
            })
            .collect();
        Ok((start, candidates))
    }
}

/// What the terminal thread hands the cluster's thread.
enum Typed {
    Line(String),
    /// Tab: the line up to the cursor, and where to send what it can become.
    Complete(String, std::sync::mpsc::Sender<(usize, Vec<String>)>),
    /// Ctrl-D, or the terminal is gone.
    End,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match miniplane::sim::cluster::runtime(args.seed) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let root = args
        .data_root
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let Some(subnet) = free_subnet(0) else {
        eprintln!("error: no loopback subnet 127.0.N.11-13 has its ports free");
        return ExitCode::from(2);
    };
    let options = Options {
        seed: args.seed,
        subnet,
        epoch: SystemTime::now(),
    };
    println!("miniplane playground: building the course's three-node cluster...");
    let cluster = match Cluster::create_with(&root, options).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: could not create the cluster: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cluster.wait_ready(Duration::from_secs(300)).await {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = cluster.go_live() {
        eprintln!("error: the cluster could not listen on this machine: {e}");
        return ExitCode::from(2);
    }
    let kubeconfig = root.join("kubeconfig-for-this-machine");
    let _ = std::fs::write(&kubeconfig, cluster.host_kubeconfig());
    println!(
        "Ready: node1 {}, node2 {}, node3 {}. Type `help` for the task and the commands.",
        cluster.ip("node1"),
        cluster.ip("node2"),
        cluster.ip("node3")
    );
    println!(
        "In another terminal, the real tools: KUBECONFIG={} kubectl get nodes",
        kubeconfig.display()
    );

    // The terminal: its own thread, one line at a time, each answered before the next
    // prompt (the prompt comes back with the answer).
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Typed>();
    let (prompt_tx, prompts) = std::sync::mpsc::channel::<Option<String>>();
    let history = root.join(".playground_history");
    let terminal = std::thread::spawn(move || {
        let Ok(mut editor) = rustyline::Editor::<Words, _>::new() else {
            let _ = lines_tx.send(Typed::End);
            return;
        };
        editor.set_helper(Some(Words {
            ask: lines_tx.clone(),
        }));
        let _ = editor.load_history(&history);
        while let Ok(Some(prompt)) = prompts.recv() {
            match editor.readline(&prompt) {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    let _ = editor.save_history(&history);
                    let _ = lines_tx.send(Typed::Line(line));
                }
                // Ctrl-C at the prompt: a fresh prompt, as bash does.
                Err(ReadlineError::Interrupted) => {
                    let _ = lines_tx.send(Typed::Line(String::new()));
                }
                Err(_) => {
                    let _ = lines_tx.send(Typed::End);
                    return;
                }
            }
        }
    });

    // Ctrl-C while a command runs (the terminal is not in raw mode then, so it is a
    // signal): stop the command, not the playground.
    let mut interrupts = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot catch Ctrl-C: {e}");
            return ExitCode::from(2);
        }
    };
    let mut playground = Playground::new(&cluster);
    let mut reset = false;
    let _ = prompt_tx.send(Some(playground.prompt()));
    loop {
        let line = match lines.recv().await {
            Some(Typed::Line(line)) => line,
            Some(Typed::Complete(line, reply)) => {
                let _ = reply.send(playground.complete(&line).await);
                continue;
            }
            Some(Typed::End) | None => break,
        };
        let run = playground.execute_to(
            &line,
            |text| {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            },
            |text| eprint!("{text}"),
        );
        let outcome = tokio::select! {
            biased;
            _ = interrupts.recv() => {
                println!();
                None
            }
            outcome = run => Some(outcome),
        };
        match outcome {
            Some(Outcome::Leave) => break,
            Some(Outcome::Reset) => {
                reset = true;
                break;
            }
            Some(Outcome::Output(out)) => {
                eprint!("{}", out.stderr);
                if !out.stderr.is_empty() && !out.stderr.ends_with('\n') {
                    eprintln!();
                }
            }
            None => {}
        }
        let _ = prompt_tx.send(Some(playground.prompt()));
    }
    let _ = prompt_tx.send(None);
    let _ = std::fs::write(root.join("typed.txt"), playground.history.join("\n") + "\n");
    let _ = tokio::time::timeout(Duration::from_secs(10), cluster.shutdown()).await;
    drop(terminal);
    if !reset {
        println!("logout");
        return ExitCode::SUCCESS;
    }
    // `reset`: the nodes' files go, and the program starts again from nothing with
    // the same options (a fresh runtime, clock and addresses; the history stays).
    println!("Throwing the cluster away and building a new one...");
    for (node, _) in NODES {
        let _ = std::fs::remove_dir_all(root.join(node));
    }
    let mut again =
        std::process::Command::new(std::env::current_exe().unwrap_or_else(|_| "playground".into()));
    again.args(std::env::args_os().skip(1));
    // The temporary directory goes with this process (exec runs no destructors); the
    // next one makes its own.
    drop(temp);
    let e = again.exec();
    eprintln!("error: could not start again: {e}");
    ExitCode::from(2)
}
