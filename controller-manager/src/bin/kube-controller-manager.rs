//! `kube-controller-manager`: the controllers as their own process.
//!
//! ```text
//! cargo run -p controller-manager --bin kube-controller-manager -- \
//!   --kubeconfig=/etc/kubernetes/controller-manager.conf
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use client_go::client::Client;
use controller_manager::run::{Config, ControllerManager};
use seams::SystemClock;

#[derive(Parser)]
#[command(
    name = "kube-controller-manager",
    about = "The Kubernetes controllers, in miniature"
)]
struct Args {
    /// Kubeconfig with the apiserver's address, CA and this component's token.
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// Elect a leader among the instances before acting.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Seconds without a node lease renewal before the node is unreachable.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds between looks at the nodes.
    #[arg(long, default_value_t = 5)]
    node_monitor_period: u64,
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
    let mut config = Config::new(&format!("{host}_{}", seams::Rng::from_entropy().uuid()));
    if !args.leader_elect {
        config.leader_election = None;
    }
    config.node_grace_period = Duration::from_secs(args.node_monitor_grace_period);
    config.monitor_period = Duration::from_secs(args.node_monitor_period);
    let _controllers = ControllerManager::start(client, config, Arc::new(SystemClock));
    tracing::info!("controllers running");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
