//! A sleep that needs no async runtime: one thread of its own (started on first use)
//! wakes each sleeper at its deadline, so a follower of a reply can poll its backend at a
//! bounded interval under any executor.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// One sleeper: its deadline, the order it came in (ties), and how to wake it.
struct Sleeper {
    at: Instant,
    n: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.n) == (other.at, other.n)
    }
}

impl Eq for Sleeper {}

impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sleeper {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(other.at, other.n))
    }
}

/// The sleepers, soonest first, and the count that orders equal deadlines.
#[derive(Default)]
struct Sleepers {
    heap: BinaryHeap<Reverse<Sleeper>>,
    next: u64,
}

/// What the timer thread and the sleepers share.
struct Timer {
    sleepers: Mutex<Sleepers>,
    changed: Condvar,
}

/// The timer, its thread started on first use; `None` when the thread could not start.
fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            sleepers: Mutex::new(Sleepers::default()),
            changed: Condvar::new(),
        }));
        let started = std::thread::Builder::new()
            .name("chatvault-timer".into())
            .spawn(move || run(timer));
        match started {
            Ok(_) => Some(timer),
            Err(error) => {
                tracing::warn!(%error, "could not start the chatvault timer thread");
                None
            }
        }
    })
}

/// The timer thread: wakes each sleeper whose deadline has come, and waits for the next.
fn run(timer: &'static Timer) {
    let mut sleepers = timer
        .sleepers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        while sleepers.heap.peek().is_some_and(|s| s.0.at <= now) {
            if let Some(Reverse(due)) = sleepers.heap.pop() {
                // A sleeper that gave up waiting has dropped its receiver: nothing to do.
                let _ = due.wake.send(());
            }
        }
        sleepers = match sleepers.heap.peek().map(|s| s.0.at) {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                timer
                    .changed
                    .wait_timeout(sleepers, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => timer
                .changed
                .wait(sleepers)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// Resolves `true` after `duration` (within a millisecond or so, on any executor), or
/// `false` at once when the timer thread could not be started.
pub(super) async fn sleep(duration: Duration) -> bool {
    let Some(timer) = timer() else {
        return false;
    };
    let (wake, woken) = oneshot::channel();
    {
        let mut sleepers = timer
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = sleepers.next;
        sleepers.next = n.wrapping_add(1);
        let at = Instant::now() + duration;
        sleepers.heap.push(Reverse(Sleeper { at, n, wake }));
    }
    timer.changed.notify_one();
    woken.await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn sleeps_about_as_long_as_asked_in_deadline_order() {
        let start = Instant::now();
        let (long, short) = tokio::join!(
            async {
                assert!(sleep(Duration::from_millis(60)).await);
                start.elapsed()
            },
            async {
                assert!(sleep(Duration::from_millis(20)).await);
                start.elapsed()
            },
        );
        assert!(short >= Duration::from_millis(20), "{short:?}");
        assert!(long >= Duration::from_millis(60), "{long:?}");
        assert!(short < long, "{short:?} {long:?}");
        assert!(long < Duration::from_secs(2), "{long:?}");
    }

    #[test]
    fn works_without_a_tokio_runtime() {
        let start = Instant::now();
        let woke = block_on(sleep(Duration::from_millis(10)));
        assert!(woke);
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    /// A minimal executor: polls `future` on this thread, parking between wake-ups.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }
}
