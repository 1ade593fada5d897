//! The assignment's transcript is a golden file: the whole cluster runs on one thread
//! in virtual time, so one seed prints the same bytes on every run, on any machine,
//! under any load. After changing behaviour on purpose, regenerate and review the diff:
//!
//! ```sh
//! UPDATE_GOLDENFILES=1 cargo test -p sim --test transcript
//! ```
//!
//! `determinism.rs` runs the same seed twice with every crate's TRACE log compared.

use std::path::Path;

use sim::cluster::DEFAULT_SEED;

#[path = "support/replay.rs"]
mod replay;
use replay::transcript;

/// One claim: seed 1 replays the assignment and both lessons exactly as recorded.
#[test]
fn the_assignment_with_the_default_seed_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let text = transcript(dir.path(), DEFAULT_SEED);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/assignment_seed_1");
    if std::env::var_os("UPDATE_GOLDENFILES").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &text).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&golden).expect("the golden file (UPDATE_GOLDENFILES=1 writes it)");
    if text != expected {
        let first = text
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(text.lines().count().min(expected.lines().count()));
        panic!(
            "the transcript differs from {} at line {}:\n  now:      {:?}\n  recorded: {:?}\n\
             (UPDATE_GOLDENFILES=1 regenerates it; review the diff)",
            golden.display(),
            first + 1,
            text.lines().nth(first),
            expected.lines().nth(first),
        );
    }
}

/// Another seed draws other IDs, so the transcript differs, and still passes.
#[test]
fn another_seed_draws_other_ids_and_still_passes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = transcript(a.path(), DEFAULT_SEED);
    let two = transcript(b.path(), DEFAULT_SEED + 1);
    assert_ne!(one, two);
}
