//! The real command-line tools some tests drive (`kubectl`, `etcdctl`, `etcd`), found on
//! PATH —
//! or the test skips, saying so in one line.
//!
//! A newcomer's machine may have nothing but Rust. A test that needs kubectl starts with
//! `if tools::skip_unless_installed(&tools::KUBECTL) { return; }`: when kubectl is on
//! PATH and new enough the test runs as always; when it is missing (or too old to stand
//! in, as Debian's own `kubernetes-client` 1.20 is) the test returns at once, and
//! passes, after printing
//!
//! ```text
//! SKIPPED: real_kubectl_works_against_our_apiserver: kubectl not found on PATH; install kubectl 1.32 (https://kubernetes.io/docs/tasks/tools/) to run the kubectl tests
//! ```
//!
//! Rust's test harness has no "skipped" result, and it hides what a passing test prints
//! with `eprintln!`. So the line is written to the process's stderr directly, which the
//! harness does not capture: `cargo test` shows it above the test's `ok`. And when
//! `MINIPLANE_SKIPPED` names a file, the line is appended there too: `scripts/test` reads
//! it to report the skipped tests in its summary ("K skipped (kubectl not found ...)").
//!
//! One copy serves the whole workspace: kvstore's, apiserver's and the sim's tests
//! include this file.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tool some tests need: how to ask its version, the oldest that can stand in for
/// the one the tests are written against, and how to get that one.
pub struct Tool {
    pub name: &'static str,
    /// Arguments that print the version (and contact nothing).
    pub version_args: &'static [&'static str],
    /// The oldest `(major, minor)` accepted.
    pub oldest: (u32, u32),
    /// What to do about it, for the skip line.
    pub install: &'static str,
}

/// kubectl: the tests are written against 1.32; kubectl supports servers one minor
/// version either side, so anything much older prints other columns and flags.
pub const KUBECTL: Tool = Tool {
    name: "kubectl",
    version_args: &["version", "--client"],
    oldest: (1, 29),
    install:
        "install kubectl 1.32 (https://kubernetes.io/docs/tasks/tools/) to run the kubectl tests",
};

/// etcdctl 3.4, Debian's `etcd-client` (`scripts/test` installs it when it can).
pub const ETCDCTL: Tool = Tool {
    name: "etcdctl",
    version_args: &["version"],
    oldest: (3, 4),
    install: "install etcdctl 3.4 (Debian: apt-get install etcd-client; or https://github.com/etcd-io/etcd/releases) to run the etcdctl tests",
};

/// The real etcd 3.4, Debian's `etcd-server`, to compare with (`scripts/test` installs it
/// when it can).
pub const ETCD: Tool = Tool {
    name: "etcd",
    version_args: &["--version"],
    oldest: (3, 4),
    install: "install etcd 3.4 (Debian: apt-get install etcd-server; or https://github.com/etcd-io/etcd/releases) to run the tests that compare with it",
};

/// True when the calling test must skip because `tool` is missing or too old; the
/// reason has been printed and recorded. False when the tool is there: run the test.
pub fn skip_unless_installed(tool: &Tool) -> bool {
    match check(tool) {
        Ok(()) => false,
        Err(why) => {
            let test = std::thread::current()
                .name()
                .map_or_else(|| "a test".to_string(), str::to_string);
            let line = format!("SKIPPED: {test}: {why}; {}", tool.install);
            // Straight to the process's stderr: libtest captures `eprintln!`.
            let _ = writeln!(std::io::stderr(), "{line}");
            if let Some(file) = std::env::var_os("MINIPLANE_SKIPPED") {
                let appended = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .and_then(|mut f| writeln!(f, "{}\t{test}\t{why}", tool.name));
                if let Err(e) = appended {
                    let _ = writeln!(std::io::stderr(), "(MINIPLANE_SKIPPED: {e})");
                }
            }
            true
        }
    }
}

/// Whether `tool` is on PATH and new enough; if not, why not (without the advice).
fn check(tool: &Tool) -> Result<(), String> {
    let Some(path) = on_path(tool.name) else {
        return Err(format!("{} not found on PATH", tool.name));
    };
    let out = Command::new(&path)
        .args(tool.version_args)
        .env("ETCDCTL_API", "3")
        .output()
        .map_err(|e| format!("{} ({}) does not run: {e}", tool.name, path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = first_version(&text) else {
        return Err(format!(
            "{} ({}) printed no version for `{} {}`",
            tool.name,
            path.display(),
            tool.name,
            tool.version_args.join(" ")
        ));
    };
    if version < tool.oldest {
        return Err(format!(
            "{} {}.{} ({}) is too old to stand in (need {}.{} or newer)",
            tool.name,
            version.0,
            version.1,
            path.display(),
            tool.oldest.0,
            tool.oldest.1
        ));
    }
    Ok(())
}

/// The first executable file called `name` in a directory of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first `MAJOR.MINOR` in a version banner: `Client Version: v1.32.0`,
/// `...GitVersion:"v1.20.11"...` (kubectl before 1.28), `etcdctl version: 3.4.30`.
pub fn first_version(text: &str) -> Option<(u32, u32)> {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('.') {
        let major_start = bytes[..i]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let minor_end = bytes[i + 1..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |p| i + 1 + p);
        if major_start < i && i + 1 < minor_end {
            let major = text[major_start..i].parse().ok()?;
            let minor = text[i + 1..minor_end].parse().ok()?;
            return Some((major, minor));
        }
    }
    None
}
