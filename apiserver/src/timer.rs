//! hyper's own timers (the request-head deadline) on the server's clock: an adapter
//! from [`seams::Clock`] to `hyper::rt::Timer`, so no deadline of the HTTP edge reads
//! tokio's timers behind the clock's back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use seams::clock::{BoxFuture, Instant, SharedClock};

/// A `hyper::rt::Timer` whose sleeps are the clock's.
#[derive(Clone)]
pub struct ClockTimer(pub SharedClock);

/// One of the clock's sleeps. hyper wants its sleeps `Sync`; the future is only ever
/// polled through `&mut`, so the mutex is never contended.
struct ClockSleep(Mutex<BoxFuture<'static, ()>>);

impl Future for ClockSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for ClockSleep {}

impl hyper::rt::Timer for ClockTimer {
    /// hyper reckons its deadlines from this (`now() + header_read_timeout`); left to
    /// its default it would read the machine's clock, which under the simulator's
    /// virtual time is another clock altogether: a connection made a minute into a
    /// run (virtual) would get a deadline 32 s after the run began (real).
    fn now(&self) -> std::time::Instant {
        self.0.now().into_std()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ClockSleep(Mutex::new(self.0.sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = Instant::from_std(deadline);
        Box::pin(ClockSleep(Mutex::new(self.0.sleep_until(deadline))))
    }
}
