//! Time and randomness reach a component only through the seams (`seams::Clock`,
//! `seams::Rng`): no library code outside the clock reads the machine's clocks or
//! sleeps on tokio's timers directly, and none draws unseeded random numbers. This
//! test reads every library source file of the workspace and names each line that
//! breaks the rule. Binaries (`src/bin/`) may build the real clock in `main`; test
//! modules (`tests.rs`, and everything after a file's `#[cfg(test)]`) are exempt.

use std::path::{Path, PathBuf};

/// What only the seams may call.
const FORBIDDEN: &[&str] = &[
    "Instant::now(",
    "SystemTime::now(",
    "Timestamp::now(",
    "tokio::time::sleep",
    "tokio::time::interval",
    "tokio::time::timeout",
    "time::sleep_until",
    "thread_rng",
    "Uuid::new_v4",
];

/// The files that *are* the seams.
const SEAMS: &[&str] = &["seams/src/clock.rs"];

/// `(line number, line)` of each use of a forbidden call in `source`, up to the
/// file's test module.
fn violations(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            FORBIDDEN.iter().any(|f| code.contains(f))
        })
        .map(|(n, line)| (n + 1, line.trim().to_string()))
        .collect()
}

fn library_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                library_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn the_scanner_finds_what_it_looks_for() {
    let planted = "fn f() {\n    let t = std::time::Instant::now();\n}\n// Instant::now() in a comment\n#[cfg(test)]\nmod tests { fn g() { tokio::time::sleep(d); } }\n";
    assert_eq!(
        violations(planted),
        vec![(2, "let t = std::time::Instant::now();".to_string())]
    );
}

#[test]
fn time_and_randomness_come_only_through_the_seams() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let src = entry.path().join("src");
        if entry.path().join("Cargo.toml").exists() && src.is_dir() {
            library_sources(&src, &mut files);
        }
    }
    library_sources(&root.join("src"), &mut files);
    assert!(files.len() > 50, "found only {} library files", files.len());
    let mut found = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if SEAMS.contains(&relative.as_str()) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        for (n, line) in violations(&source) {
            found.push(format!("{relative}:{n}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "time or randomness around the seams (use the component's seams::Clock / seams::Rng):\n{}",
        found.join("\n")
    );
}
