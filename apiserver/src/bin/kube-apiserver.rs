//! `kube-apiserver`: the API server as its own process, with kube-apiserver's flag names
//! ([`apiserver::flags::ServerRunOptions`]).
//!
//! ```text
//! cargo run -p apiserver --bin kube-apiserver -- \
//!   --etcd-servers=http://127.0.0.1:12379,http://127.0.0.1:22379 \
//!   --bind-address=127.0.0.1 --secure-port=6443 \
//!   --tls-cert-file=apiserver.crt --tls-private-key-file=apiserver.key \
//!   --token-auth-file=tokens.csv
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

use apiserver::flags::ServerRunOptions;
use apiserver::server::start;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let options = ServerRunOptions::parse();
    let config = match options.config(|path| std::fs::read_to_string(path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let addr: SocketAddr = match options.listen_address().parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --bind-address/--secure-port: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match config.host.network.listen(&addr.to_string()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listening on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let running = match start(listener, config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(address = %running.addr, "serving the Kubernetes API");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
