//! The guard every deterministic simulator needs: the same seed run twice with the
//! TRACE log of every crate on (hyper, h2, rustls, tonic, tower and ours), the two logs
//! compared byte for byte. A `HashMap` iterated, a `select!` without `biased`, a task
//! woken from another thread, a read of the machine's clock anywhere in the stack
//! shows up here first, long before it changes a transcript.
//!
//! It is a test binary of its own, with one test: `tracing` decides once per call site
//! whether anyone listens, for every thread of the process, so a test running beside
//! it without a subscriber would make events go missing from this one's log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use sim::cluster::DEFAULT_SEED;

#[path = "support/replay.rs"]
mod replay;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The run's TRACE log, every crate's, with the data root written as `<root>`.
fn trace_log(root: &Path) -> (String, String) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Every task of the cluster runs on this thread, so a thread-local subscriber
    // sees every event of the run.
    let text =
        tracing::subscriber::with_default(subscriber, || replay::transcript(root, DEFAULT_SEED));
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (text, log.replace(&root.display().to_string(), "<root>"))
}

#[test]
fn one_seed_twice_gives_the_same_trace_log() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (text_a, log_a) = trace_log(a.path());
    let (text_b, log_b) = trace_log(b.path());
    assert_eq!(text_a, text_b);
    assert!(
        log_a.lines().count() > 10_000,
        "a TRACE log of {} lines",
        log_a.lines().count()
    );
    if let Some(dir) = std::env::var_os("TRACE_DUMP") {
        std::fs::write(Path::new(&dir).join("a.log"), &log_a).unwrap();
        std::fs::write(Path::new(&dir).join("b.log"), &log_b).unwrap();
    }
    if log_a != log_b {
        let first = log_a
            .lines()
            .zip(log_b.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(log_a.lines().count().min(log_b.lines().count()));
        panic!(
            "the two TRACE logs differ at line {} of {}:\n  first:  {:?}\n  second: {:?}",
            first + 1,
            log_a.lines().count(),
            log_a.lines().nth(first),
            log_b.lines().nth(first),
        );
    }
}
