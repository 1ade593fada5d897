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
use kvstore::snapshot::{self, SnapshotStatus};
use kvstore::ClusterInfo;

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
            let spec =
                initial_cluster.unwrap_or_else(|| format!("{name}={initial_advertise_peer_urls}"));
            let cluster =
                ClusterInfo::parse_initial_cluster(&spec, &initial_cluster_token, &name, &[])?;
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
            let status =
                snapshot::restore(&read(&file)?, &data_dir, &cluster).map_err(|e| e.to_string())?;
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

/// go-humanize's `Bytes`, which etcdctl uses: SI units, one decimal below 10.
fn humanize(bytes: u64) -> String {
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (bytes as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", units[e])
    } else {
        format!("{value:.0} {}", units[e])
    }
}

fn format_status(s: &SnapshotStatus, format: &str) -> Result<String, String> {
    let size = humanize(s.total_size);
    match format {
        "simple" => Ok(format!(
            "{:x}, {}, {}, {size}\n",
            s.hash, s.revision, s.total_keys
        )),
        "json" => Ok(format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        )),
        "table" => {
            let cells = [
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                size,
            ];
            let heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
            let widths: Vec<usize> = heads
                .iter()
                .zip(&cells)
                .map(|(h, c)| h.len().max(c.len()))
                .collect();
            let rule: String = widths
                .iter()
                .map(|w| format!("+{}", "-".repeat(w + 2)))
                .collect::<String>()
                + "+\n";
            let head: String = heads
                .iter()
                .zip(&widths)
                .map(|(h, w)| format!("| {h:^w$} "))
                .collect::<String>()
                + "|\n";
            let row: String = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("| {c:>w$} "))
                .collect::<String>()
                + "|\n";
            Ok(format!("{rule}{head}{rule}{row}{rule}"))
        }
        other => Err(format!("{other} not supported as output format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_etcdctl() {
        assert_eq!(humanize(5), "5 B");
        assert_eq!(humanize(544), "544 B");
        assert_eq!(humanize(24576), "25 kB");
        assert_eq!(humanize(1_234_567), "1.2 MB");
    }

    #[test]
    fn status_table_matches_etcdctl_layout() {
        let s = SnapshotStatus {
            hash: 0x9774a3b0,
            revision: 11,
            total_keys: 14,
            total_size: 24576,
        };
        assert_eq!(
            format_status(&s, "simple").unwrap(),
            "9774a3b0, 11, 14, 25 kB\n"
        );
        let table = format_status(&s, "table").unwrap();
        assert_eq!(
            table,
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | 9774a3b0 |       11 |         14 |      25 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert!(format_status(&s, "yaml").is_err());
    }
}
