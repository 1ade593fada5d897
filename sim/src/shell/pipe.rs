//! Pipes: `kubectl get pods -w | grep alpine`. A command writes its output into a
//! [`Stdout`]; the filters after its `|` see it line by line as it comes, and what
//! they let through goes to the terminal (the playground) or into a buffer (the
//! replay, the tests). A filter that has what it wanted (`head -n 3`) closes the pipe,
//! and a command that streams (a watch, `logs -f`) ends on the next line it writes,
//! as a real one ends on `SIGPIPE`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{words, Output};

/// A command a pipe sends output through.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Head(usize),
    Tail(usize),
    /// `grep [-v] [-A N] WORD`: the lines with WORD (or without, `-v`), each with the
    /// `N` lines after it.
    Grep {
        word: String,
        invert: bool,
        after: usize,
    },
}

impl Filter {
    /// One stage after a `|`, as typed.
    pub fn parse(stage: &str) -> Result<Filter, Output> {
        let w = words(stage);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let count = |n: &str| n.trim_start_matches('-').parse::<usize>().ok();
        let grep = |word: &str, invert, after| Filter::Grep {
            word: word.to_string(),
            invert,
            after,
        };
        let parsed = match w[..] {
            ["head"] => Some(Filter::Head(10)),
            ["head", "-n", n] | ["head", n] => count(n).map(Filter::Head),
            ["tail"] => Some(Filter::Tail(10)),
            ["tail", "-n", n] | ["tail", n] => count(n).map(Filter::Tail),
            ["grep", word] => Some(grep(word, false, 0)),
            ["grep", "-v", word] => Some(grep(word, true, 0)),
            ["grep", "-A", n, word] => count(n).map(|after| grep(word, false, after)),
            _ => None,
        };
        parsed.ok_or_else(|| match w.first() {
            Some(&("head" | "tail" | "grep")) => Output::fail(
                format!(
                    "{}: this shell only knows head -n N, tail -n N and grep [-v|-A N] WORD after a pipe",
                    w[0]
                ),
                2,
            ),
            Some(other) => Output::fail(format!("bash: {other}: command not found"), 127),
            None => Output::fail("bash: syntax error near unexpected token `|'", 2),
        })
    }

    /// The filter over whole output at once.
    pub fn apply(&self, lines: &[&str]) -> Vec<String> {
        let out = Stdout::buffer(vec![self.clone()]);
        for line in lines {
            out.print(&format!("{line}\n"));
        }
        out.finish().lines().map(String::from).collect()
    }
}

/// Whether `line` has `word` in it (as plain text; `-i`: in any case).
pub fn grep_matches(line: &str, word: &str, ignore_case: bool) -> bool {
    if ignore_case {
        line.to_lowercase().contains(&word.to_lowercase())
    } else {
        line.contains(word)
    }
}

/// A line cut at its pipes: the command, and the filters its output goes through.
pub fn split(line: &str) -> Result<(&str, Vec<Filter>), Output> {
    let mut stages = line.split('|');
    let command = stages.next().unwrap_or("");
    let filters = stages.map(Filter::parse).collect::<Result<_, _>>()?;
    Ok((command, filters))
}

/// What the terminal's side of a pipe is: a function that prints.
type Writer = Box<dyn FnMut(&str) + Send>;

/// Where the lines a filter lets through end up.
enum Sink {
    Buffer(String),
    Write(Writer),
}

/// A filter and what it holds between lines.
enum Stage {
    Head { left: usize },
    Tail { n: usize, kept: VecDeque<String> },
    Grep { filter: Filter, context: usize },
}

struct Inner {
    stages: Vec<Stage>,
    /// Text after the last newline, waiting for the rest of its line.
    partial: String,
    sink: Sink,
    /// Lines that reached the sink.
    emitted: usize,
    /// Where error text goes at once (the terminal); without one it is kept for the
    /// command's [`Output`].
    errors: Option<Writer>,
    kept_errors: String,
}

/// A command's standard output: the pipe's filters, then the terminal or a buffer.
/// Cheap to clone (each clone writes into the same pipe).
#[derive(Clone)]
pub struct Stdout {
    inner: Arc<Mutex<Inner>>,
}

impl Stdout {
    fn new(filters: Vec<Filter>, sink: Sink) -> Stdout {
        let stages = filters
            .into_iter()
            .map(|f| match f {
                Filter::Head(n) => Stage::Head { left: n },
                Filter::Tail(n) => Stage::Tail {
                    n,
                    kept: VecDeque::new(),
                },
                grep @ Filter::Grep { .. } => Stage::Grep {
                    filter: grep,
                    context: 0,
                },
            })
            .collect();
        Stdout {
            inner: Arc::new(Mutex::new(Inner {
                stages,
                partial: String::new(),
                sink,
                emitted: 0,
                errors: None,
                kept_errors: String::new(),
            })),
        }
    }

    /// Output kept in memory, read back with [`Stdout::finish`].
    pub fn buffer(filters: Vec<Filter>) -> Stdout {
        Stdout::new(filters, Sink::Buffer(String::new()))
    }

    /// Output handed to `write` as it comes (the playground prints it).
    pub fn to(filters: Vec<Filter>, write: impl FnMut(&str) + Send + 'static) -> Stdout {
        Stdout::new(filters, Sink::Write(Box::new(write)))
    }

    /// Error text goes to `write` as it comes, not through the pipe (a terminal shows
    /// stderr at once: `kubectl get pods -w` says "No resources found" and goes on).
    pub fn with_stderr(self, write: impl FnMut(&str) + Send + 'static) -> Stdout {
        self.lock().errors = Some(Box::new(write));
        self
    }

    /// Writes error text: at once to the terminal, or kept for the command's result.
    pub fn eprint(&self, text: &str) {
        let mut inner = self.lock();
        match &mut inner.errors {
            Some(write) => write(text),
            None => inner.kept_errors.push_str(text),
        }
    }

    /// The error text kept so far (none when it went to a terminal).
    pub fn take_errors(&self) -> String {
        std::mem::take(&mut self.lock().kept_errors)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `text`. With no filter it passes at once; through filters, line by
    /// line. Returns false once the pipe is closed (the reader has what it wanted):
    /// a command that streams should stop.
    pub fn print(&self, text: &str) -> bool {
        let mut inner = self.lock();
        if inner.stages.is_empty() {
            inner.emit(text);
            return true;
        }
        inner.partial.push_str(text);
        while let Some(end) = inner.partial.find('\n') {
            let line: String = inner.partial.drain(..=end).collect();
            inner.push(0, line);
        }
        !inner.closed()
    }

    /// Whether the reader has gone (`head` has its lines).
    pub fn is_closed(&self) -> bool {
        self.lock().closed()
    }

    /// The command has ended: the last partial line goes through, `tail` lets its
    /// lines out. Returns what a buffer holds (empty for a terminal).
    pub fn finish(&self) -> String {
        let mut inner = self.lock();
        if !inner.partial.is_empty() {
            let mut line = std::mem::take(&mut inner.partial);
            line.push('\n');
            inner.push(0, line);
        }
        for i in 0..inner.stages.len() {
            if let Stage::Tail { kept, .. } = &mut inner.stages[i] {
                let lines: Vec<String> = kept.drain(..).collect();
                for line in lines {
                    inner.push(i + 1, line);
                }
            }
        }
        match &mut inner.sink {
            Sink::Buffer(text) => std::mem::take(text),
            Sink::Write(_) => String::new(),
        }
    }

    /// A pipe ending in `grep` that let nothing through fails, as the real one does
    /// (exit 1). Call after [`Stdout::finish`].
    pub fn grep_found_nothing(&self) -> bool {
        let inner = self.lock();
        matches!(inner.stages.last(), Some(Stage::Grep { .. })) && inner.emitted == 0
    }
}

impl Inner {
    fn emit(&mut self, text: &str) {
        self.emitted += text.matches('\n').count();
        match &mut self.sink {
            Sink::Buffer(buffer) => buffer.push_str(text),
            Sink::Write(write) => write(text),
        }
    }

    /// Sends one line (with its newline) through the stages from `from` on.
    fn push(&mut self, from: usize, line: String) {
        for stage in &mut self.stages[from..] {
            match stage {
                Stage::Head { left: 0 } => return,
                Stage::Head { left } => *left -= 1,
                Stage::Tail { n, kept } => {
                    kept.push_back(line);
                    if kept.len() > *n {
                        kept.pop_front();
                    }
                    return;
                }
                Stage::Grep { filter, context } => {
                    let Filter::Grep {
                        word,
                        invert,
                        after,
                    } = filter
                    else {
                        return;
                    };
                    if grep_matches(line.trim_end_matches('\n'), word, false) != *invert {
                        *context = *after;
                    } else if *context > 0 {
                        *context -= 1;
                    } else {
                        return;
                    }
                }
            }
        }
        self.emit(&line);
    }

    /// A `head` that has its lines, with no `tail` before it holding lines back.
    fn closed(&self) -> bool {
        for stage in &self.stages {
            match stage {
                Stage::Head { left: 0 } => return true,
                Stage::Tail { .. } => return false,
                _ => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_filter_lines_as_head_tail_and_grep_do() {
        let lines = ["a lease", "b", "c lease", "d"];
        let f = |stage: &str| Filter::parse(stage).unwrap().apply(&lines);
        assert_eq!(f(" head -n 3"), ["a lease", "b", "c lease"]);
        assert_eq!(f(" head"), lines);
        assert_eq!(f(" tail -n 1"), ["d"]);
        assert_eq!(f(" tail -2"), ["c lease", "d"]);
        assert_eq!(f(" grep lease"), ["a lease", "c lease"]);
        assert_eq!(f(" grep -v lease"), ["b", "d"]);
        assert_eq!(f(" grep -A 1 lease"), lines);
        assert_eq!(f(" grep -A 1 c"), ["c lease", "d"]);
        assert_eq!(Filter::parse(" sort").unwrap_err().code, 127);
        assert_eq!(Filter::parse(" grep -E x y").unwrap_err().code, 2);
    }

    #[test]
    fn output_streams_through_the_filters_and_head_closes_the_pipe() {
        let seen = Arc::new(Mutex::new(String::new()));
        let into = seen.clone();
        let (_, filters) = split("kubectl get pods -w | grep alpine | head -n 2").unwrap();
        let out = Stdout::to(filters, move |t| into.lock().unwrap().push_str(t));
        assert!(out.print("NAME STATUS\nalpine Pend"));
        assert_eq!(*seen.lock().unwrap(), "", "half a line waits for its end");
        assert!(out.print("ing\nweb Running\n"));
        assert_eq!(*seen.lock().unwrap(), "alpine Pending\n");
        assert!(!out.print("alpine Running\n"), "head has its two lines");
        assert!(out.is_closed());
        out.print("alpine Terminating\n");
        out.finish();
        assert_eq!(*seen.lock().unwrap(), "alpine Pending\nalpine Running\n");
        assert!(!out.grep_found_nothing());
    }

    #[test]
    fn tail_lets_its_lines_out_at_the_end_and_unfiltered_text_passes_at_once() {
        let (_, filters) = split("x | tail -n 1 | grep b").unwrap();
        let out = Stdout::buffer(filters);
        out.print("b\na");
        assert!(!out.is_closed());
        assert_eq!(out.finish(), "", "the last line, `a`, has no b");
        assert!(out.grep_found_nothing());
        let out = Stdout::buffer(Vec::new());
        out.print("no newline");
        assert_eq!(out.finish(), "no newline");
        assert_eq!(split("a | sort").unwrap_err().code, 127);
    }
}
