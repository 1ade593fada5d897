//! The course assignment, replayed: `cargo run --example assignment`.
//!
//! Builds a three-node cluster in a data directory (every node's files are real files
//! there), then runs the assignment's steps as a learner would type them, and ends
//! with the checker's verdict. Exits non-zero if a requirement is not met.
//!
//! The whole cluster runs on one thread in virtual time (see the `sim` crate's essay):
//! the same `--seed` prints the same transcript, byte for byte, and the real timings
//! of Kubernetes and etcd cost no wall time.
//!
//! Options: `--seed N`; `--step` pauses before each step (virtual time stands still
//! meanwhile); `--data-root DIR` keeps the files in DIR; `--keep` leaves the cluster
//! running on this machine's loopback addresses, with time following the wall clock,
//! and prints a kubeconfig for the real kubectl.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use miniplane::sim::cluster::{free_subnet, Options, DEFAULT_SEED, PORTS};
use miniplane::sim::scenario;

#[derive(Parser)]
#[command(about = "Replay the Kubernetes course assignment on three simulated nodes")]
struct Args {
    /// Where every ID, token and election timeout comes from.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Pause before each step until Enter is pressed.
    #[arg(long)]
    step: bool,
    /// Where the nodes' files go (default: a fresh temporary directory).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Keep the cluster running at the end, for the real kubectl and etcdctl.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .with_writer(std::io::stderr)
            .init();
    }
    // One thread, its clock paused: time moves only when every task waits, and then
    // straight to the next timer.
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
    let mut options = Options {
        seed: args.seed,
        ..Options::default()
    };
    if args.keep {
        // A kept cluster is reached by this machine's tools: addresses nobody uses,
        // and timestamps of today, which the real kubectl compares with its clock.
        match free_subnet(0) {
            Some(subnet) => options.subnet = subnet,
            None => {
                eprintln!("error: no loopback subnet 127.0.N.11-13 has ports {PORTS:?} free");
                return ExitCode::from(2);
            }
        }
        options.epoch = SystemTime::now();
    }
    let pause: Box<dyn FnMut()> = if args.step {
        Box::new(|| {
            println!("\n[press Enter for the next step]");
            let _ = std::io::stdin().lock().read_line(&mut String::new());
        })
    } else {
        Box::new(|| {})
    };
    let wall = Instant::now();
    let (cluster, checks) = match scenario::replay(&root, options, std::io::stdout(), pause).await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: the scenario stopped: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("(wall time: {:.2} s)", wall.elapsed().as_secs_f64());
    if args.keep {
        if let Err(e) = cluster.go_live() {
            eprintln!("error: the cluster could not listen on this machine: {e}");
            return ExitCode::from(2);
        }
        let kubeconfig = root.join("kubeconfig-for-this-machine");
        if std::fs::write(&kubeconfig, cluster.host_kubeconfig()).is_ok() {
            let endpoints: Vec<String> = cluster
                .ips()
                .iter()
                .map(|ip| format!("http://{ip}:2379"))
                .collect();
            println!("\nThe cluster keeps running on this machine, time following the clock.");
            println!("  KUBECONFIG={} kubectl get pods -A", kubeconfig.display());
            println!(
                "  etcdctl --endpoints={} endpoint status --cluster -w table",
                endpoints.join(",")
            );
            println!("Press Ctrl-C to stop it.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    // Stopping takes virtual time (members close their connections): bounded.
    let _ = tokio::time::timeout(Duration::from_secs(30), cluster.shutdown()).await;
    if checks.iter().all(|c| c.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
