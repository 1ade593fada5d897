//! The store's writer: applied changes gathered, then written to sled in batches on a
//! thread of its own.
//!
//! etcd's backend does the same with bbolt: a *batch transaction* collects what is
//! applied and a goroutine commits it every 100 ms or 10 000 changes. Nothing waits for
//! that commit, because the Raft log already holds every change durably; a crash only
//! means the last batches are applied again from the log at restart (their applied
//! index is lost with them, in the same atomic sled batch).
//!
//! Writing on another thread keeps the member's Ready loop from stalling for the few
//! milliseconds a sled batch of a thousand changes takes. The batches are shorter
//! than etcd's, 20 ms: a sled write costs about 10 µs of CPU per change, and on two
//! cores shared by three members a 100 ms batch (17 ms of work at 64 clients) took
//! the CPU from the Ready loops in one block. Measured with `etcd-bench` (issue 7):
//! p99 of puts with 1 / 16 / 64 clients 1.1–1.4 / 4.5–5.5 / 8.3–9.6 ms with 100 ms
//! batches, 0.8–1.3 / 2.4–3.8 / 6.2–6.7 ms with 10–20 ms, the same throughput;
//! 2 ms batches were slower (each batch has a fixed cost). The member waits for the
//! writer only when it must: before the log drops entries (everything applied must be
//! on disk first), when a leader's snapshot replaces the store, and when the store is
//! read back.
//!
//! A batch's age is read off the member's clock, like every time of a member.
//!
//! In the simulator's deterministic mode there are no threads besides the one the
//! whole cluster runs on ([`Writer::Inline`]): a batch that is due is written at once,
//! on the member's own thread, which takes no virtual time.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use seams::clock::{Instant, SharedClock};

use crate::mvcc::Mutation;

/// How long applied changes may wait before they are written to sled (etcd: 100 ms;
/// see the module essay for why shorter here).
pub const BATCH_INTERVAL: Duration = Duration::from_millis(20);
/// How many applied changes may wait before they are written to sled.
pub const BATCH_LIMIT: usize = 10_000;

/// Writes one batch: the changes and the applied index they reach, atomically.
pub type Write = Box<dyn Fn(Vec<Mutation>, u64) + Send + Sync>;

enum Job {
    Write {
        mutations: Vec<Mutation>,
        applied_index: u64,
    },
    /// Answer once every earlier job is done.
    Done(mpsc::Sender<()>),
}

/// Where the batches are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writer {
    /// On a thread of the store's own (a real member).
    #[default]
    Thread,
    /// On the thread that saves them, when they are due (the simulator).
    Inline,
}

struct Pending {
    mutations: Vec<Mutation>,
    applied_index: Option<u64>,
    since: Instant,
}

/// Applied changes on their way to sled.
pub struct Backend {
    clock: SharedClock,
    pending: Mutex<Pending>,
    /// Writes batches on the caller's thread ([`Writer::Inline`]).
    inline: Option<Write>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Why the writer stopped, once it has.
    failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

impl Backend {
    /// Starts the writer thread; `write` does the actual sled batch, and batches are
    /// timed on `clock`.
    pub fn start(write: Write, clock: SharedClock) -> Backend {
        Backend::with(write, clock, Writer::Thread)
    }

    /// [`Backend::start`], writing where `writer` says.
    pub fn with(write: Write, clock: SharedClock, writer: Writer) -> Backend {
        if writer == Writer::Inline {
            return Backend {
                pending: Mutex::new(Pending {
                    mutations: Vec::new(),
                    applied_index: None,
                    since: clock.now(),
                }),
                clock,
                inline: Some(write),
                jobs: None,
                writer: None,
                failure: Arc::default(),
            };
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let failure = Arc::new(Mutex::new(None));
        let failed = failure.clone();
        let writer = std::thread::Builder::new()
            .name("kvstore-backend".into())
            .spawn(move || {
                for job in inbox {
                    match job {
                        Job::Write {
                            mutations,
                            applied_index,
                        } => {
                            let wrote = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                write(mutations, applied_index)
                            }));
                            if let Err(panic) = wrote {
                                // The member learns why at its next hand-over. The
                                // database is not dropped: on a failed disk its drop
                                // waits forever for a flush.
                                let why = crate::error::panic_reason(panic.as_ref());
                                *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                                std::mem::forget(write);
                                return;
                            }
                        }
                        Job::Done(answer) => {
                            let _ = answer.send(());
                        }
                    }
                }
            })
            .expect("a thread for the store's writer");
        Backend {
            pending: Mutex::new(Pending {
                mutations: Vec::new(),
                applied_index: None,
                since: clock.now(),
            }),
            clock,
            inline: None,
            jobs: Some(jobs),
            writer: Some(writer),
            failure,
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .expect("no thread panicked holding the pending changes")
    }

    fn send(&self, job: Job) {
        if let Some(write) = &self.inline {
            // A panic here is the member's own, as any other failure in its round.
            if let Job::Write {
                mutations,
                applied_index,
            } = job
            {
                write(mutations, applied_index);
            }
            return;
        }
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        // The writer only ends on a storage failure: fatal here too, with its reason.
        if !matches!(sent, Some(Ok(()))) {
            self.writer_stopped();
        }
    }

    fn writer_stopped(&self) -> ! {
        let why = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        panic!(
            "kvstore: the store's writer stopped: {}",
            why.as_deref().unwrap_or("no reason given")
        )
    }

    /// Hands what is gathered to the writer.
    fn hand_over(&self, pending: &mut Pending) {
        pending.since = self.clock.now();
        if let Some(applied_index) = pending.applied_index.take() {
            let mutations = std::mem::take(&mut pending.mutations);
            self.send(Job::Write {
                mutations,
                applied_index,
            });
        }
    }

    /// Gathers `mutations` (reaching `applied_index`); hands the lot to the writer
    /// when the batch is due.
    pub fn save(&self, applied_index: u64, mutations: Vec<Mutation>) {
        let mut pending = self.pending();
        pending.mutations.extend(mutations);
        pending.applied_index = Some(applied_index);
        let due = self.clock.elapsed(pending.since) >= BATCH_INTERVAL;
        if pending.mutations.len() >= BATCH_LIMIT || due {
            self.hand_over(&mut pending);
        }
    }

    /// Writes everything gathered and waits until the writer has done it all.
    pub fn wait(&self) {
        let mut pending = self.pending();
        self.hand_over(&mut pending);
        drop(pending);
        self.wait_idle();
    }

    /// Forgets what is gathered (a snapshot replaces it) and waits until the writer is
    /// done with what it already had.
    pub fn discard(&self) {
        let mut pending = self.pending();
        pending.mutations.clear();
        pending.applied_index = None;
        drop(pending);
        self.wait_idle();
    }

    fn wait_idle(&self) {
        if self.inline.is_some() {
            return; // every batch handed over is written already
        }
        let (answer, done) = mpsc::channel();
        self.send(Job::Done(answer));
        if done.recv().is_err() {
            self.writer_stopped();
        }
    }
}

impl Drop for Backend {
    /// A clean stop writes what is gathered and lets the writer finish.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.wait();
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
