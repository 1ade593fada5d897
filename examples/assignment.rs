//! The course assignment, replayed: `cargo run --example assignment`.
//!
//! Builds a three-node cluster in a data directory (every node's files are real files
//! there), then runs the assignment's steps as a learner would type them, and ends
//! with the checker's verdict. Exits non-zero if a requirement is not met.
//!
//! Options: `--step` pauses before each step; `--data-root DIR` keeps the files in DIR;
//! `--keep` leaves the cluster running and prints a kubeconfig for the real kubectl.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use miniplane::sim::cluster::Cluster;
use miniplane::sim::scenario::Scenario;

#[derive(Parser)]
#[command(about = "Replay the Kubernetes course assignment on three simulated nodes")]
struct Args {
    /// Pause before each step until Enter is pressed.
    #[arg(long)]
    step: bool,
    /// Where the nodes' files go (default: a fresh temporary directory).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Keep the cluster running at the end, for the real kubectl.
    #[arg(long)]
    keep: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let temp = tempfile::tempdir().expect("a temporary directory");
    let root = args
        .data_root
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!("miniplane: the Kubernetes course assignment, replayed on three simulated nodes");
    println!("data root (every node's files): {}", root.display());
    let started = Instant::now();
    let cluster = match Cluster::create(&root).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: could not create the cluster: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cluster.wait_ready(Duration::from_secs(60)).await {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    println!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
    let mut scenario = Scenario::new(&cluster, std::io::stdout());
    if args.step {
        scenario.pause = Box::new(|| {
            println!("\n[press Enter for the next step]");
            let _ = std::io::stdin().lock().read_line(&mut String::new());
        });
    }
    let mut checks = match scenario.assignment().await {
        Ok(checks) => checks,
        Err(e) => {
            eprintln!("error: the scenario stopped: {e}");
            return ExitCode::from(1);
        }
    };
    match scenario.lessons().await {
        Ok(more) => checks.extend(more),
        Err(e) => {
            eprintln!("error: the lessons stopped: {e}");
            return ExitCode::from(1);
        }
    }
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    if args.keep {
        let kubeconfig = root.join("kubeconfig-for-this-machine");
        if std::fs::write(&kubeconfig, cluster.host_kubeconfig()).is_ok() {
            println!(
                "\nThe cluster keeps running. Try: KUBECONFIG={} kubectl get pods -A",
                kubeconfig.display()
            );
            println!("Press Ctrl-C to stop it.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    cluster.shutdown().await;
    if checks.iter().all(|c| c.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
