//! `kube-controller-manager`: the controllers as their own process, with the real flag
//! names ([`controller_manager::flags::KubeControllerManagerOptions`]).
//!
//! ```text
//! cargo run -p controller-manager --bin kube-controller-manager -- \
//!   --kubeconfig=/etc/kubernetes/controller-manager.conf
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use client_go::client::Client;
use controller_manager::flags::KubeControllerManagerOptions;
use controller_manager::run::ControllerManager;
use seams::SystemClock;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let options = KubeControllerManagerOptions::parse();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let config = match options.config(&format!("{host}_{}", seams::Rng::from_entropy().uuid())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let client = match Client::from_kubeconfig_file(&seams::Host::real(), &options.kubeconfig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let _controllers = ControllerManager::start(client, config, Arc::new(SystemClock));
    tracing::info!("controllers running");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
