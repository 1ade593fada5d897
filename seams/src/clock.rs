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
