//! `kube-apiserver`: the API server as its own process, with kube-apiserver's flag names.
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

use apiserver::server::{parse_token_file, start, Config};

#[derive(Parser)]
#[command(
    name = "kube-apiserver",
    about = "The Kubernetes API server, in miniature"
)]
struct Args {
    /// etcd members to use, comma-separated client URLs.
    #[arg(long, value_delimiter = ',', required = true)]
    etcd_servers: Vec<String>,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: String,
    /// The port to serve the API on (HTTPS with --tls-cert-file, else plain HTTP).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// The serving certificate (PEM), signed by the cluster CA.
    #[arg(long)]
    tls_cert_file: Option<std::path::PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long)]
    tls_private_key_file: Option<std::path::PathBuf>,
    /// The address clients are told to use (defaults to the bind address).
    #[arg(long, default_value = "")]
    advertise_address: String,
    /// CSV file of bearer tokens: `token,user,uid[,groups]`.
    #[arg(long)]
    token_auth_file: Option<std::path::PathBuf>,
    /// Reads served at once; past it, `429` (0: no limit).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Writes served at once; past it, `429` (0: no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = Config::new(args.etcd_servers);
    config.limits.max_requests_inflight = args.max_requests_inflight;
    config.limits.max_mutating_requests_inflight = args.max_mutating_requests_inflight;
    if let Some(path) = &args.token_auth_file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: reading --token-auth-file {}: {e}", path.display());
                return ExitCode::from(1);
            }
        };
        match parse_token_file(&text) {
            Ok(tokens) => config.tokens = tokens,
            Err(e) => {
                eprintln!("error: --token-auth-file {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            match (std::fs::read_to_string(cert), std::fs::read_to_string(key)) {
                (Ok(cert), Ok(key)) => config.tls = Some((cert, key)),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: reading --tls-cert-file/--tls-private-key-file: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        (None, None) => {}
        _ => {
            eprintln!("error: --tls-cert-file and --tls-private-key-file go together");
            return ExitCode::from(1);
        }
    }
    let addr: SocketAddr = match format!("{}:{}", args.bind_address, args.secure_port).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --bind-address/--secure-port: {e}");
            return ExitCode::from(1);
        }
    };
    if !args.advertise_address.is_empty() {
        config.advertise = format!("{}:{}", args.advertise_address, args.secure_port);
    }
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
