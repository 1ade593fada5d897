//! `etcd`: one kvstore member as a process, with etcd's flags.
//!
//! ```sh
//! cargo run -p kvstore --bin etcd -- --name etcd1 --data-dir /tmp/etcd1 \
//!   --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
//!   --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
//!   --initial-cluster etcd1=http://127.0.0.1:2380,etcd2=http://127.0.0.1:12380,etcd3=http://127.0.0.1:22380 \
//!   --initial-cluster-state new
//! ```

use std::process::ExitCode;

use clap::Parser;
use kvstore::flags::Config;
use kvstore::server;
use kvstore::server::logging::ClockTime;
use seams::clock::SharedClock;
use seams::SystemClock;

fn main() -> ExitCode {
    let flags = Config::parse();
    // The one clock of this process: the member's time, and its log lines'.
    let clock = SystemClock::shared();
    if flags.logger == "zap" {
        tracing_subscriber::fmt()
            .json()
            .with_timer(ClockTime(clock.clone()))
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_timer(ClockTime(clock.clone()))
            .with_writer(std::io::stderr)
            .init();
    }
    // A panic prints one line, where and what, instead of a backtrace; if it was the
    // member's, `run` then ends the process with the reason.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let first = kvstore::error::panic_reason(info.payload());
        eprintln!(
            "etcd: panic in thread {}{location}: {first}",
            thread.name().unwrap_or("?")
        );
    }));
    match run(flags, clock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stopped::Error(e)) => {
            eprintln!("etcd: {e}");
            ExitCode::FAILURE
        }
        Err(Stopped::Fatal(exit)) => {
            eprintln!("etcd: the member stopped: {}", exit.reason);
            ExitCode::from(u8::try_from(exit.code).unwrap_or(1))
        }
    }
}

/// Why `run` ended.
enum Stopped {
    /// The member could not start (bad flags, a data directory it must not open).
    Error(String),
    /// The member failed while serving; the process must end so that it can be
    /// restarted, as etcd's does.
    Fatal(server::Exit),
}

impl From<String> for Stopped {
    fn from(e: String) -> Self {
        Stopped::Error(e)
    }
}

fn run(flags: Config, clock: SharedClock) -> Result<(), Stopped> {
    let mut config = flags.server_config()?;
    config.clock = clock;
    let id = config.id;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let server = server::start(config).await.map_err(|e| e.to_string())?;
        tracing::info!(
            name = %flags.name,
            member_id = %format!("{id:x}"),
            client = %server.client_addr,
            peer = %server.peer_addr,
            "ready to serve client requests"
        );
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => {
                interrupted.map_err(|e| e.to_string())?;
                tracing::info!("received interrupt, stopping");
                server.stop().await;
                Ok(())
            }
            exit = server.exited() => Err(Stopped::Fatal(exit)),
        }
    })
}
