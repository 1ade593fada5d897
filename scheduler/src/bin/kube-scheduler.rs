//! `kube-scheduler`: the scheduler as its own process, with the real flag names.
//!
//! ```text
//! cargo run -p scheduler --bin kube-scheduler -- --kubeconfig=/etc/kubernetes/scheduler.conf
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use client_go::client::Client;
use client_go::leaderelection;
use scheduler::run::{Config, Scheduler};
use seams::SystemClock;

#[derive(Parser)]
#[command(
    name = "kube-scheduler",
    about = "The Kubernetes scheduler, in miniature"
)]
struct Args {
    /// Kubeconfig with the apiserver's address, CA and this scheduler's token.
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// Elect a leader among the scheduler instances before acting.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Seconds a non-renewed lease stays valid.
    #[arg(long, default_value_t = 15)]
    leader_elect_lease_duration: u64,
    /// Seconds the leader keeps trying to renew before it steps down.
    #[arg(long, default_value_t = 10)]
    leader_elect_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew.
    #[arg(long, default_value_t = 2)]
    leader_elect_retry_period: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client = match Client::from_kubeconfig_file(&seams::Host::real(), &args.kubeconfig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let identity = format!("{host}_{}", seams::Rng::from_entropy().uuid());
    let leader_election = args.leader_elect.then(|| leaderelection::Config {
        lease_duration: Duration::from_secs(args.leader_elect_lease_duration),
        renew_deadline: Duration::from_secs(args.leader_elect_renew_deadline),
        retry_period: Duration::from_secs(args.leader_elect_retry_period),
        ..leaderelection::Config::new("kube-scheduler", &identity)
    });
    let config = Config {
        identity,
        leader_election,
    };
    let _scheduler = Scheduler::start(client, config, Arc::new(SystemClock));
    tracing::info!("scheduling");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
