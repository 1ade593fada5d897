//! `kvctl`: what the real `etcdctl` does offline, for kvstore's snapshot format —
//! `snapshot status` and `snapshot restore` — plus `snapshot save` through our client.
//! Output formats follow etcdctl 3.4's.
//!
//! ```sh
//! kvctl snapshot save /tmp/node1.etcd.backup --endpoints http://127.0.0.1:2379
//! kvctl snapshot status /tmp/node1.etcd.backup -w table
//! kvctl snapshot restore /tmp/node1.etcd.backup --name etcd1 --data-dir /tmp/etcd1 \
//!     --initial-cluster etcd1=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvstore::client::{Client, ClientConfig};
use kvstore::snapshot;

#[derive(Parser, Debug)]
#[command(
    name = "kvctl",
    version,
    about = "kvstore's offline tools (etcdctl's snapshot commands)"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// Manages snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Stores a snapshot of a member's store to FILE.
    Save {
        file: PathBuf,
        /// One member's client URL.
        #[arg(long, default_value = "http://127.0.0.1:2379")]
        endpoints: String,
    },
    /// Checks a snapshot file and prints its hash, revision, keys and size.
    Status {
        file: PathBuf,
        /// Output format: simple, table or json.
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Builds a new member's data directory from a snapshot.
    Restore {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        initial_cluster: Option<String>,
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(file: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

use kvstore::tools::printer::format_status;

fn run(cli: Cli) -> Result<(), String> {
    let Top::Snapshot(command) = cli.command;
    match command {
        SnapshotCommand::Save { file, endpoints } => save(&file, &endpoints),
        SnapshotCommand::Status { file, write_out } => {
            let status = snapshot::status(&read(&file)?).map_err(|e| e.to_string())?;
            print!("{}", format_status(&status, &write_out)?);
            Ok(())
        }
        SnapshotCommand::Restore {
            file,
            name,
            data_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
            let status = kvstore::tools::restore_member(
                &read(&file)?,
                &name,
                initial_cluster.as_deref(),
                &initial_cluster_token,
                &initial_advertise_peer_urls,
                &data_dir,
            )?;
            eprintln!(
                "restored snapshot {} into {} (revision {}, {} stored versions)",
                file.display(),
                data_dir.display(),
                status.revision,
                status.total_keys
            );
            Ok(())
        }
    }
}

fn save(file: &PathBuf, endpoint: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let bytes = runtime.block_on(async {
        let client = Client::new(ClientConfig::new(vec![endpoint.to_string()]))
            .map_err(|e| e.to_string())?;
        client.snapshot().await.map_err(|e| e.to_string())
    })?;
    snapshot::status(&bytes).map_err(|e| format!("the member sent a bad snapshot: {e}"))?;
    let part = file.with_extension("part");
    std::fs::write(&part, &bytes).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    std::fs::rename(&part, file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    println!("Snapshot saved at {}", file.display());
    Ok(())
}
