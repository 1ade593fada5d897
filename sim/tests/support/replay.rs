//! A whole run of the assignment, as the example prints it: shared by the golden
//! transcript test and the determinism test.

use std::path::Path;

use sim::cluster::Options;
use sim::scenario;

/// The transcript of a whole run with `seed`, on the simulator's runtime, the data
/// root written as `<root>`. Fails if a requirement is not met.
pub fn transcript(root: &Path, seed: u64) -> String {
    let mut out = Vec::new();
    let options = Options {
        seed,
        ..Options::default()
    };
    let passed = sim::cluster::runtime(seed).unwrap().block_on(async {
        let (cluster, checks) = scenario::replay(root, options, &mut out, Box::new(|| {}))
            .await
            .expect("the scenario runs to the end");
        cluster.shutdown().await;
        checks.iter().all(|c| c.passed)
    });
    let text = String::from_utf8(out).unwrap();
    assert!(passed, "a requirement failed:\n{text}");
    text.replace(&root.display().to_string(), "<root>")
}
