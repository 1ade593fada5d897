//! One clock for everything a component times.
//!
//! Kubernetes components are full of time: Raft ticks, election timeouts, lease
//! durations, resync periods, node heartbeats, request deadlines, `creationTimestamp`.
//! client-go hides it behind `k8s.io/utils/clock` so tests can use a fake; here every
//! component gets a [`Clock`] when it is built, and reads both kinds of time from it:
//!
//! - **monotonic** time, [`Clock::now`] and [`Clock::sleep_until`]: for "how long
//!   since", "wake me at", deadlines and intervals. It never goes backwards.
//! - **wall** time, [`Clock::wall`]: for what is shown to people and stored in objects
//!   (a Pod's `creationTimestamp`, a Lease's `renewTime`, an Event's time, a log
//!   line's `ts`).
//!
//! The helpers on `dyn Clock` — `sleep`, `timeout`,
//! `interval`, `elapsed` — are built only on
//! `now` and `sleep_until`, so a clock that decides how time passes decides it for all
//! of them. That is the point of the trait's shape: a clock that only *reported* time
//! while components slept on tokio's timers directly could not stop time at a
//! breakpoint; one that owns the sleeping can.
//!
//! An [`Interval`] that falls behind (the process was stopped, the machine was busy)
//! does not fire the missed ticks in a burst: the next tick comes one period after
//! the late one, as tokio's `MissedTickBehavior::Delay`. A Raft member that was paused
//! for a second sees one tick, not ten.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A point in monotonic time. tokio's, so a runtime with a paused clock moves it.
pub use tokio::time::Instant;

/// A boxed, sendable future, as the clock's sleeps are.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a component's time comes from. Handed to every component as
/// `Arc<dyn Clock>` ([`SharedClock`]).
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now: what timestamps in objects and logs say.
    fn wall(&self) -> SystemTime;
    /// A future that completes once [`now`](Clock::now) has reached `deadline`
    /// (at once if it already has).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

/// The clock as components hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock: tokio's monotonic time (virtual under a paused runtime) and
/// the system's wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline))
    }
}

/// The simulator's clock: virtual time that can later be paced by the wall clock.
///
/// **Simulated** (how it starts): monotonic time is tokio's, on a runtime whose clock is
/// paused, so time stands still while any task has work and jumps to the next timer
/// when every task waits. Wall time is a fixed `epoch` plus the virtual time passed, so
/// the same run stamps the same `creationTimestamp`s. Nothing here reads the machine's
/// clocks: a breakpoint, a slow machine or a `--step` pause changes nothing in what the
/// cluster does next.
///
/// **Live** ([`SimClock::go_live`]): the runtime's clock is resumed and virtual time
/// follows the wall clock, but never by more than [`MAX_STEP`] between two readings. A
/// process stopped for 30 s (SIGSTOP, a debugger) comes back to a clock that moved
/// by one step, not 30 s: no lease expires, no election starts, no node goes NotReady
/// because the learner was away. A ticker ([`SimClock::pace`]) reads the clock every
/// [`TICK`], so while the process runs, time never lags by more than a tick.
pub struct SimClock {
    origin: Instant,
    epoch: SystemTime,
    paced: Arc<std::sync::Mutex<Option<Paced>>>,
}

/// The live clock's state: the last runtime instant read, and the virtual instant it
/// was turned into.
#[derive(Debug, Clone, Copy)]
struct Paced {
    runtime: Instant,
    virtual_now: Instant,
}

/// The most a live clock moves between two readings.
pub const MAX_STEP: Duration = Duration::from_millis(250);
/// How often [`SimClock::pace`] reads a live clock.
pub const TICK: Duration = Duration::from_millis(20);

impl SimClock {
    /// A simulated clock whose wall time starts at `epoch`. Build it inside the
    /// runtime it runs on (its origin is the runtime's now).
    pub fn new(epoch: SystemTime) -> Arc<SimClock> {
        Arc::new(SimClock {
            origin: Instant::now(),
            epoch,
            paced: Arc::default(),
        })
    }

    fn paced(&self) -> std::sync::MutexGuard<'_, Option<Paced>> {
        lock(&self.paced)
    }

    /// Whether time follows the wall clock yet.
    pub fn is_live(&self) -> bool {
        self.paced().is_some()
    }

    /// From now on, time follows the wall clock, one [`MAX_STEP`] at most per reading.
    /// Resumes the runtime's paused clock, so it must be called on that runtime (a
    /// current-thread one, with time paused); a second call does nothing.
    pub fn go_live(&self) {
        let mut paced = self.paced();
        if paced.is_none() {
            let now = Instant::now();
            tokio::time::resume();
            *paced = Some(Paced {
                runtime: now,
                virtual_now: now,
            });
        }
    }

    /// Reads a live clock every [`TICK`] for as long as it runs, so that no reading
    /// ever finds more than a tick passed unless the process was stopped. Spawn it
    /// once, after [`SimClock::go_live`].
    pub async fn pace(self: Arc<Self>) {
        loop {
            let now = self.now();
            self.sleep_until(now + TICK).await;
        }
    }
}

fn lock(paced: &std::sync::Mutex<Option<Paced>>) -> std::sync::MutexGuard<'_, Option<Paced>> {
    paced
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, on a simulated or live clock: a live one moves by what the runtime's clock
/// moved since the last reading, [`MAX_STEP`] at most.
fn read(paced: &std::sync::Mutex<Option<Paced>>) -> Instant {
    let mut paced = lock(paced);
    match paced.as_mut() {
        None => Instant::now(),
        Some(p) => {
            let runtime = Instant::now();
            let step = runtime.saturating_duration_since(p.runtime).min(MAX_STEP);
            p.runtime = runtime;
            p.virtual_now += step;
            p.virtual_now
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        read(&self.paced)
    }

    fn wall(&self) -> SystemTime {
        self.epoch + self.now().saturating_duration_since(self.origin)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        if !self.is_live() {
            return Box::pin(tokio::time::sleep_until(deadline));
        }
        // Live: sleep on the runtime's (now real) clock for what is left, and look
        // again, since a stop in between moved virtual time less than the wall clock.
        let paced = self.paced.clone();
        Box::pin(async move {
            loop {
                let remaining = deadline.saturating_duration_since(read(&paced));
                if remaining.is_zero() {
                    return;
                }
                tokio::time::sleep(remaining).await;
            }
        })
    }
}

/// A `Clock::timeout` whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl dyn Clock {
    /// Completes `duration` from now.
    pub fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(self.now() + duration)
    }

    /// How long since `earlier` (zero if `earlier` is in the future).
    pub fn elapsed(&self, earlier: Instant) -> Duration {
        self.now().saturating_duration_since(earlier)
    }

    /// Runs `future` until it completes or `duration` passes, whichever is first. A
    /// future that is ready when the deadline is also reached wins.
    pub async fn timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let deadline = self.sleep(duration);
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = deadline => Err(Elapsed),
        }
    }

    /// Ticks every `period`, the first tick at once (as `tokio::time::interval`); a
    /// late tick delays the ones after it instead of bunching them.
    pub fn interval(self: Arc<Self>, period: Duration) -> Interval {
        assert!(!period.is_zero(), "an interval needs a period");
        let next = self.now();
        Interval {
            clock: self,
            period,
            next,
        }
    }
}

/// Periodic ticks on a [`Clock`]. See `interval` on `dyn Clock`.
pub struct Interval {
    clock: SharedClock,
    period: Duration,
    next: Instant,
}

impl Interval {
    /// Waits for the next tick and returns when it was due. Cancel-safe: a tick
    /// whose wait is dropped is still the next one.
    pub async fn tick(&mut self) -> Instant {
        let due = self.next;
        self.clock.sleep_until(due).await;
        let now = self.clock.now();
        self.next = if now >= due + self.period {
            now + self.period // late: start counting again from now
        } else {
            due + self.period
        };
        due
    }

    /// Makes the next tick one period from now.
    pub fn reset(&mut self) {
        self.next = self.clock.now() + self.period;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.next)
            .finish()
    }
}

impl fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleep_and_timeout_follow_the_clock() {
        let clock = SystemClock::shared();
        let start = clock.now();
        clock.sleep(Duration::from_secs(5)).await;
        assert_eq!(clock.elapsed(start), Duration::from_secs(5));

        let slow = clock.sleep(Duration::from_secs(10));
        assert_eq!(
            clock.timeout(Duration::from_secs(1), slow).await,
            Err(Elapsed)
        );
        let fast = clock.sleep(Duration::from_secs(1));
        assert_eq!(clock.timeout(Duration::from_secs(2), fast).await, Ok(()));
        assert_eq!(clock.elapsed(start), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interval_that_falls_behind_does_not_burst() {
        let clock = SystemClock::shared();
        let start = clock.now();
        let mut ticks = clock.clone().interval(Duration::from_millis(100));
        assert_eq!(ticks.tick().await, start, "the first tick is at once");
        assert_eq!(ticks.tick().await, start + Duration::from_millis(100));

        // Stopped for a second (a breakpoint): one late tick, then a period apart.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(ticks.tick().await, start + Duration::from_millis(200));
        let late = clock.now();
        assert_eq!(ticks.tick().await, late + Duration::from_millis(100));
        assert_eq!(clock.now(), late + Duration::from_millis(100));
    }

    /// Simulated: time stands still while the thread works and wall time is the
    /// epoch plus the virtual time slept.
    #[tokio::test(start_paused = true)]
    async fn a_simulated_clock_is_virtual_and_stamps_from_its_epoch() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_600_000);
        let clock: SharedClock = SimClock::new(epoch);
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(50)); // real work takes no virtual time
        assert_eq!(clock.now(), start);
        assert_eq!(clock.wall(), epoch);
        clock.sleep(Duration::from_secs(40)).await;
        assert_eq!(clock.elapsed(start), Duration::from_secs(40));
        assert_eq!(clock.wall(), epoch + Duration::from_secs(40));
    }

    /// Live: time follows the runtime's real clock, but a stop of the whole thread
    /// (what SIGSTOP or a debugger does) counts as one step at most.
    #[tokio::test(start_paused = true)]
    async fn a_live_clock_does_not_count_a_stop() {
        let sim = SimClock::new(SystemTime::UNIX_EPOCH);
        let clock: SharedClock = sim.clone();
        clock.sleep(Duration::from_secs(100)).await; // simulated time first
        let before = clock.now();
        sim.go_live();
        assert!(sim.is_live());
        assert!(clock.now() - before <= MAX_STEP, "no jump at the switch");
        let mark = clock.now();
        std::thread::sleep(Duration::from_secs(1)); // the process stopped for 1 s
        let after = clock.now();
        assert!(
            after - mark <= MAX_STEP,
            "a 1 s stop moved the clock by {:?}",
            after - mark
        );
        // ...and a live sleep still takes its time in virtual terms.
        let start = clock.now();
        clock.sleep(Duration::from_millis(60)).await;
        assert!(clock.elapsed(start) >= Duration::from_millis(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_tick_is_still_the_next_one() {
        let clock = SystemClock::shared();
        let start = clock.now();
        let mut ticks = clock.clone().interval(Duration::from_secs(1));
        ticks.tick().await;
        let cut = clock
            .timeout(Duration::from_millis(500), ticks.tick())
            .await;
        assert_eq!(cut, Err(Elapsed));
        assert_eq!(ticks.tick().await, start + Duration::from_secs(1));
    }
}
