//! The file commands of a node: `ls`, `cat`, `rm`, `cp`, `mv`, `sed`, `grep`, `head`,
//! `tail`, `wc -l`, `echo`, `touch`, `mkdir`, `pwd` — with coreutils' messages and exit
//! codes. Every path goes through the node's resolver
//! ([`crate::node::NodeContext::resolve`]): a relative path starts at `/root`, `..`
//! stops at the node's `/`, and a path whose symbolic links lead off the node is
//! refused. `~` is root's home (the shell expands it before the command sees it).
//!
//! `sed` knows the one thing a learner needs it for, `s/OLD/NEW/[g]` (in place with
//! `-i`: editing `~/.kube/config`), and `grep` looks for plain text; both read their
//! pattern literally (no regular expressions: `127.0.0.12` matches only itself).

use std::path::{Path, PathBuf};

use super::pipe::{grep_matches, Filter};
use super::Output;
use crate::cluster::Node;
use crate::node::{reason, Follow, CWD};

/// The commands this file runs.
pub const PROGRAMS: [&str; 14] = [
    "ls", "cat", "rm", "cp", "mv", "sed", "grep", "head", "tail", "wc", "echo", "touch", "mkdir",
    "pwd",
];

/// An error line as coreutils words it, exit 1.
fn fail(text: String) -> Output {
    Output::fail(text, 1)
}

/// Options (`-n`, `-rf`, `-n3`) split from operands; `--` ends the options.
fn options(args: &[String]) -> (Vec<char>, Vec<String>) {
    let mut flags = Vec::new();
    let mut operands = Vec::new();
    let mut rest = false;
    for a in args {
        if rest || !a.starts_with('-') || a == "-" {
            operands.push(a.clone());
        } else if a == "--" {
            rest = true;
        } else {
            flags.extend(a.chars().skip(1));
        }
    }
    (flags, operands)
}

/// Runs a file command (`argv[0]` is one of [`PROGRAMS`]).
pub fn run(node: &Node, argv: &[String]) -> Output {
    let program = argv[0].as_str();
    let args = &argv[1..];
    let at = |path: &str, follow| node.ctx.resolve(path, follow);
    match program {
        "pwd" => Output::ok(format!("{CWD}\n")),
        "echo" => {
            let (newline, words) = match args.first().map(String::as_str) {
                Some("-n") => (false, &args[1..]),
                _ => (true, args),
            };
            let mut text = words.join(" ");
            if newline {
                text.push('\n');
            }
            Output::ok(text)
        }
        "ls" => ls(node, args),
        "cat" => {
            let mut out = Output::default();
            for p in args {
                match at(p, Follow::All).and_then(std::fs::read_to_string) {
                    Ok(text) => out.stdout.push_str(&text),
                    Err(e) => {
                        out.stderr.push_str(&format!("cat: {p}: {}\n", reason(&e)));
                        out.code = 1;
                    }
                }
            }
            out
        }
        "rm" => {
            let (flags, paths) = options(args);
            let force = flags.contains(&'f');
            let recursive = flags.contains(&'r') || flags.contains(&'R');
            let mut out = Output::default();
            for p in &paths {
                // `rm` removes a link, not what it points to: the last name is not followed.
                let removed = at(p, Follow::NotLast).and_then(|host| {
                    if host.is_dir() && !host.is_symlink() {
                        if !recursive {
                            return Err(std::io::Error::other("Is a directory"));
                        }
                        std::fs::remove_dir_all(host)
                    } else {
                        std::fs::remove_file(host)
                    }
                });
                match removed {
                    Err(e) if force && e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        out.stderr
                            .push_str(&format!("rm: cannot remove '{p}': {}\n", reason(&e)));
                        out.code = 1;
                    }
                    Ok(()) => {}
                }
            }
            out
        }
        "cp" | "mv" => copy_or_move(node, program, args),
        "touch" => {
            for p in args {
                let touched = at(p, Follow::All).and_then(|host| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(host)
                        .map(drop)
                });
                if let Err(e) = touched {
                    return fail(format!("touch: cannot touch '{p}': {}", reason(&e)));
                }
            }
            Output::default()
        }
        "mkdir" => {
            let (flags, paths) = options(args);
            for p in &paths {
                let made = at(p, Follow::All).and_then(|host| {
                    if flags.contains(&'p') {
                        std::fs::create_dir_all(host)
                    } else {
                        std::fs::create_dir(host)
                    }
                });
                if let Err(e) = made {
                    return fail(format!(
                        "mkdir: cannot create directory '{p}': {}",
                        reason(&e)
                    ));
                }
            }
            Output::default()
        }
        "sed" => sed(node, args),
        "grep" => grep(node, args),
        "head" | "tail" | "wc" => lines_of(node, program, args),
        other => Output::fail(format!("bash: {other}: command not found"), 127),
    }
}

fn ls(node: &Node, args: &[String]) -> Output {
    let (flags, paths) = options(args);
    let long = flags.contains(&'l');
    let paths = if paths.is_empty() {
        vec![CWD.to_string()]
    } else {
        paths
    };
    let mut out = Output::default();
    for p in &paths {
        match node.ctx.resolve(p, Follow::All) {
            Ok(host) if host.is_file() => {
                out.stdout.push_str(&entry(&host, p, long));
            }
            Ok(host) => match std::fs::read_dir(&host) {
                Ok(entries) => {
                    let mut names: Vec<String> = entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| flags.contains(&'a') || !n.starts_with('.'))
                        .collect();
                    names.sort();
                    if paths.len() > 1 {
                        out.stdout.push_str(&format!("{p}:\n"));
                    }
                    for n in names {
                        out.stdout.push_str(&entry(&host.join(&n), &n, long));
                    }
                }
                Err(e) => {
                    out.stderr
                        .push_str(&format!("ls: cannot access '{p}': {}\n", reason(&e)));
                    out.code = 2;
                }
            },
            Err(e) => {
                out.stderr
                    .push_str(&format!("ls: cannot access '{p}': {}\n", reason(&e)));
                out.code = 2;
            }
        }
    }
    out
}

/// One line of `ls` (`-l`: kind, size and name; the rest of `ls -l` — owners,
/// modes, dates — is the same on every simulated file, and left out).
fn entry(host: &Path, name: &str, long: bool) -> String {
    if !long {
        return format!("{name}\n");
    }
    let meta = std::fs::symlink_metadata(host).ok();
    let kind = match &meta {
        Some(m) if m.is_dir() => 'd',
        Some(m) if m.file_type().is_symlink() => 'l',
        _ => '-',
    };
    let size = meta.map_or(0, |m| m.len());
    format!("{kind} {size:>8} {name}\n")
}

/// `cp [-r] SRC DST`, `mv SRC DST`: DST may be a directory to put SRC into.
fn copy_or_move(node: &Node, program: &str, args: &[String]) -> Output {
    let (flags, paths) = options(args);
    let [src, dst] = &paths[..] else {
        return fail(match paths.len() {
            0 => format!("{program}: missing file operand"),
            1 => format!(
                "{program}: missing destination file operand after '{}'",
                paths[0]
            ),
            _ => format!("{program}: this shell copies one file at a time: {program} SRC DST"),
        });
    };
    let from = match node.ctx.resolve(src, Follow::All) {
        Ok(p) if p.exists() => p,
        Ok(_) => {
            return fail(format!(
                "{program}: cannot stat '{src}': No such file or directory"
            ))
        }
        Err(e) => return fail(format!("{program}: cannot stat '{src}': {}", reason(&e))),
    };
    let mut to = match node.ctx.resolve(dst, Follow::All) {
        Ok(p) => p,
        Err(e) => {
            return fail(format!(
                "{program}: cannot create regular file '{dst}': {}",
                reason(&e)
            ))
        }
    };
    if to.is_dir() {
        to.push(from.file_name().unwrap_or_default());
    }
    let done = if program == "mv" {
        std::fs::rename(&from, &to)
    } else if from.is_dir() {
        if !(flags.contains(&'r') || flags.contains(&'R') || flags.contains(&'a')) {
            return fail(format!("cp: -r not specified; omitting directory '{src}'"));
        }
        copy_dir(&from, &to)
    } else {
        std::fs::copy(&from, &to).map(drop)
    };
    match done {
        Ok(()) => Output::default(),
        Err(e) => fail(format!(
            "{program}: cannot {} '{src}' to '{dst}': {}",
            if program == "mv" { "move" } else { "copy" },
            reason(&e)
        )),
    }
}

fn copy_dir(from: &Path, to: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// `s/OLD/NEW/[g]`, any delimiter after the `s`; `\D` is a delimiter in a part.
fn substitution(script: &str) -> Option<(String, String, bool)> {
    let mut chars = script.strip_prefix('s')?.chars();
    let delimiter = chars.next()?;
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in chars {
        match (escaped, c) {
            (true, c) => {
                // `\.` in a pattern means a literal dot: the text is literal anyway.
                if c != delimiter && c != '.' && c != '\\' {
                    parts.last_mut()?.push('\\');
                }
                parts.last_mut()?.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, c) if c == delimiter => parts.push(String::new()),
            (false, c) => parts.last_mut()?.push(c),
        }
    }
    match &parts[..] {
        [old, new, flags] if !old.is_empty() && flags.chars().all(|f| f == 'g') => {
            Some((old.clone(), new.clone(), flags.contains('g')))
        }
        _ => None,
    }
}

/// `sed [-i] 's/OLD/NEW/[g]' FILE...`: each line's first OLD (every one, with `g`)
/// becomes NEW (`&` in NEW is the matched text); printed, or written back with `-i`.
fn sed(node: &Node, args: &[String]) -> Output {
    let (flags, operands) = options(args);
    let Some((script, files)) = operands.split_first() else {
        return fail("Usage: sed [-i] 's/OLD/NEW/[g]' FILE...".into());
    };
    let Some((old, new, global)) = substitution(script) else {
        return fail(format!(
            "sed: -e expression #1: this shell's sed knows only s/OLD/NEW/ and s/OLD/NEW/g, not `{script}`"
        ));
    };
    if files.is_empty() {
        return fail("sed: no input files".into());
    }
    let new = new.replace('&', &old);
    let mut out = Output::default();
    for f in files {
        let host = match node.ctx.resolve(f, Follow::All) {
            Ok(h) => h,
            Err(e) => return fail(format!("sed: can't read {f}: {}", reason(&e))),
        };
        let text = match std::fs::read_to_string(&host) {
            Ok(t) => t,
            Err(e) => return fail(format!("sed: can't read {f}: {}", reason(&e))),
        };
        let edited: String = text
            .split_inclusive('\n')
            .map(|line| {
                if global {
                    line.replace(&old, &new)
                } else {
                    line.replacen(&old, &new, 1)
                }
            })
            .collect();
        if flags.contains(&'i') {
            // Written whole to a new file, then renamed over: never half an edit.
            let temp = host.with_extension("sed-tmp");
            if let Err(e) =
                std::fs::write(&temp, &edited).and_then(|_| std::fs::rename(&temp, &host))
            {
                return fail(format!("sed: couldn't edit {f}: {}", reason(&e)));
            }
        } else {
            out.stdout.push_str(&edited);
        }
    }
    out
}

/// `grep [-v] [-i] [-n] [-c] PATTERN FILE...`: the lines with PATTERN (plain text),
/// `FILE:` before each when there are several files; exit 1 when none matched.
fn grep(node: &Node, args: &[String]) -> Output {
    let (flags, operands) = options(args);
    let Some((pattern, files)) = operands.split_first() else {
        return Output::fail("Usage: grep [-v] [-i] [-n] [-c] PATTERN FILE...", 2);
    };
    if files.is_empty() {
        return Output::fail(
            "grep: this shell's grep reads files, or a pipe: grep PATTERN FILE",
            2,
        );
    }
    let has = |f: char| flags.contains(&f);
    let mut out = Output::default();
    let mut found = 0;
    for f in files {
        let text = match node
            .ctx
            .resolve(f, Follow::All)
            .and_then(std::fs::read_to_string)
        {
            Ok(t) => t,
            Err(e) => {
                out.stderr.push_str(&format!("grep: {f}: {}\n", reason(&e)));
                out.code = 2;
                continue;
            }
        };
        let prefix = if files.len() > 1 {
            format!("{f}:")
        } else {
            String::new()
        };
        let mut count = 0;
        for (i, line) in text.lines().enumerate() {
            if grep_matches(line, pattern, has('i')) != has('v') {
                count += 1;
                if !has('c') {
                    let number = if has('n') {
                        format!("{}:", i + 1)
                    } else {
                        String::new()
                    };
                    out.stdout.push_str(&format!("{prefix}{number}{line}\n"));
                }
            }
        }
        if has('c') {
            out.stdout.push_str(&format!("{prefix}{count}\n"));
        }
        found += count;
    }
    if out.code == 0 && found == 0 {
        out.code = 1;
    }
    out
}

/// `head [-n N] FILE`, `tail [-n N] FILE` (the same filters as after a pipe),
/// `wc -l FILE`.
fn lines_of(node: &Node, program: &str, args: &[String]) -> Output {
    let mut n = 10;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) => n = v,
                None => return fail(format!("{program}: invalid number of lines")),
            },
            "-l" if program == "wc" => {}
            a if a.starts_with('-') && a[1..].parse::<usize>().is_ok() => {
                n = a[1..].parse().unwrap_or(n)
            }
            a => files.push(a.to_string()),
        }
    }
    let mut out = Output::default();
    for f in &files {
        let text = match node
            .ctx
            .resolve(f, Follow::All)
            .and_then(std::fs::read_to_string)
        {
            Ok(t) => t,
            Err(e) => {
                let verb = if program == "wc" { "" } else { "cannot open " };
                out.stderr.push_str(&format!(
                    "{program}: {verb}'{f}' for reading: {}\n",
                    reason(&e)
                ));
                out.code = 1;
                continue;
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        match program {
            "wc" => out.stdout.push_str(&format!("{} {f}\n", lines.len())),
            "head" => push_lines(&mut out.stdout, Filter::Head(n).apply(&lines)),
            _ => push_lines(&mut out.stdout, Filter::Tail(n).apply(&lines)),
        }
    }
    if files.is_empty() {
        return fail(format!(
            "{program}: this shell's {program} reads a file, or a pipe"
        ));
    }
    out
}

fn push_lines(out: &mut String, lines: Vec<String>) {
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sed_scripts_read_as_sed_reads_them() {
        let s = |t: &str| substitution(t);
        assert_eq!(
            s("s/127.0.0.12/127.0.0.11/"),
            Some(("127.0.0.12".into(), "127.0.0.11".into(), false))
        );
        assert_eq!(s("s#a/b#c#g"), Some(("a/b".into(), "c".into(), true)));
        assert_eq!(s("s/a\\/b/c/"), Some(("a/b".into(), "c".into(), false)));
        assert_eq!(s("s/127\\.0/x/"), Some(("127.0".into(), "x".into(), false)));
        assert_eq!(s("s/a/b"), None, "unterminated");
        assert_eq!(s("s//b/"), None, "empty pattern");
        assert_eq!(s("s/a/b/p"), None, "flags other than g");
        assert_eq!(s("y/a/b/"), None);
    }

    #[test]
    fn options_and_operands_split() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            options(&v(&["-rf", "x", "--", "-y"])),
            (vec!['r', 'f'], v(&["x", "-y"]))
        );
    }
}
