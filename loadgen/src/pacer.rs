//! Precise wake-ups for the open-loop schedule. Tokio's timers round a
//! deadline up to the next millisecond, which would add up to 1 ms of the
//! generator's own delay to every corrected latency; a timerfd per
//! connection wakes within microseconds, for one syscall per wait. It is
//! armed a little early and the rest is waited by yielding, because waking
//! an idle CPU (a VM's most of all) takes tens of microseconds that would
//! otherwise count as latency of the server.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timer::Expiration;
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How much earlier than the due time the timerfd fires; the pacer yields
/// to the other connections until the due time itself.
const EARLY: Duration = Duration::from_micros(50);

/// Waits until an instant, precisely when a timerfd is available, with
/// tokio's millisecond timer otherwise.
#[derive(Debug)]
pub struct Pacer {
    timer: Option<AsyncFd<Fd>>,
}

#[derive(Debug)]
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Pacer {
    /// A pacer for the current runtime; falls back to tokio's timer if the
    /// timerfd cannot be made or registered.
    pub fn new() -> Self {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(|t| {
            #[allow(unsafe_code)]
            // SAFETY: `Fd` owns the timerfd, so the descriptor stays open and
            // `as_raw_fd` returns the same one for as long as the AsyncFd
            // holds it.
            let registered = unsafe { AsyncFd::register_with_interest(Fd(t), Interest::READABLE) };
            registered.ok()
        });
        Pacer { timer }
    }

    /// Returns at `due` (at once when it has passed).
    pub async fn sleep_until(&mut self, due: Instant) {
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            let Some(timer) = &self.timer else {
                tokio::time::sleep_until(due.into()).await;
                return;
            };
            if due - now <= EARLY {
                tokio::task::yield_now().await;
                continue;
            }
            // Arming resets the expiration count, so the fd is readable
            // again only when this deadline passes.
            let left = TimeSpec::from_duration(due - now - EARLY);
            if timer
                .get_ref()
                .0
                .set(Expiration::OneShot(left), TimerSetTimeFlags::empty())
                .is_err()
            {
                self.timer = None;
                continue;
            }
            match timer.readable().await {
                Ok(mut guard) => guard.clear_ready(),
                Err(_) => self.timer = None,
            }
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_at_the_due_time_not_before() {
        let mut pacer = Pacer::new();
        assert!(pacer.timer.is_some(), "timerfd is available on Linux");
        for step_us in [300u64, 1_700, 50] {
            let due = Instant::now() + Duration::from_micros(step_us);
            pacer.sleep_until(due).await;
            assert!(Instant::now() >= due);
        }
    }
}
