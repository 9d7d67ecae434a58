//! How a fit shares the processor: the scheduling priority of training threads, and the
//! [`Pacer`] that pauses a fit while the rest of the server needs the cores.
//!
//! Neither a fixed priority nor `SCHED_IDLE` gives both of what users expect on a small machine.
//! A fit at a lowered priority adds its time slices to the latency of requests that land while it
//! runs; a fit at `SCHED_IDLE` gets no processor at all while any other program is busy, so on a
//! loaded machine a 0.1 ms fit can wait for seconds. And a thread that has lowered its priority
//! cannot raise it again without privileges, so it cannot adapt by changing priority. The default,
//! [`TrainingPriority::Adaptive`], therefore keeps the fit at normal priority (a fair share against
//! other programs) and makes it step aside for the server's own work: every [`WINDOW`] it measures
//! how much processor time the rest of the process used, and while that shows requests wanting the
//! cores, it sleeps instead of competing.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// How often the pacer measures, and how long a pause lasts before it measures again.
const WINDOW: Duration = Duration::from_millis(10);
/// The share of the cores a fit leaves free that the rest of the process must use for the fit
/// to pause: above it, requests are waiting for a core the fit holds.
const BUSY_SHARE: f64 = 0.75;
/// On one core the fit leaves none free: it pauses once the rest uses this much of the core.
const BUSY_FLOOR: f64 = 0.1;
/// How often a paused fit checks for cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(1);

/// The scheduling priority of training threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrainingPriority {
    /// Normal priority among the machine's programs, pausing while the rest of this server is busy
    /// (see the module documentation).
    #[default]
    Adaptive,
    /// Linux `SCHED_IDLE`: the thread runs only when no ordinary thread on the machine wants the
    /// core. Requests preempt it at once, but any busy program starves it.
    Idle,
    /// A fixed Unix nice value, 0 (full priority) to 19, without pauses.
    Nice(i32),
}

impl TrainingPriority {
    /// Parses `adaptive`, `idle` or a nice value from 0 to 19.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "adaptive" => Ok(Self::Adaptive),
            "idle" => Ok(Self::Idle),
            number => match number.parse::<i32>() {
                Ok(niceness @ 0..=19) => Ok(Self::Nice(niceness)),
                _ => Err(format!("expected `adaptive`, `idle` or a nice value from 0 to 19, found {text:?}")),
            },
        }
    }

    /// Applies the priority to the calling thread.
    pub(super) fn apply_to_this_thread(self) {
        // SAFETY: both calls only read their arguments; on Linux `0` names the calling thread.
        #[cfg(target_os = "linux")]
        let changed = match self {
            TrainingPriority::Adaptive => true,
            TrainingPriority::Idle => unsafe {
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &libc::sched_param { sched_priority: 0 }) == 0
            },
            TrainingPriority::Nice(niceness) => unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, niceness) == 0
            },
        };
        #[cfg(not(target_os = "linux"))]
        let changed = self == TrainingPriority::Adaptive;
        if !changed {
            tracing::debug!(priority = ?self, "training runs at normal priority");
        }
    }
}

/// Pauses a fit at its checkpoints while the rest of the process uses the cores the fit leaves
/// free (with [`TrainingPriority::Adaptive`]; otherwise it never pauses). Used on the fit's own
/// thread only.
pub(super) struct Pacer {
    /// The share of a core the rest of the process must use for the fit to pause; `None`: never.
    busy_above: Option<f64>,
    window: Cell<Option<Window>>,
    /// Time spent paused so far.
    paused: Cell<Duration>,
}

/// Where a measuring window started: the wall clock and both processor clocks.
#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    process: Duration,
    thread: Duration,
}

impl Pacer {
    pub(super) fn new(priority: TrainingPriority) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
        let busy_above = (priority == TrainingPriority::Adaptive && cpu_clocks().is_some())
            .then(|| ((cores - 1.0) * BUSY_SHARE).max(BUSY_FLOOR));
        Self { busy_above, window: Cell::new(None), paused: Cell::new(Duration::ZERO) }
    }

    /// How long the fit has paused so far.
    pub(super) fn paused(&self) -> Duration {
        self.paused.get()
    }

    /// Returns once the fit may go on: at once, or after pausing while the rest of the process
    /// is busy. `Break` if `cancelled` turns true during a pause.
    pub(super) fn pace(&self, cancelled: impl Fn() -> bool) -> ControlFlow<()> {
        let Some(busy_above) = self.busy_above else { return ControlFlow::Continue(()) };
        let Some(mut window) = self.window.get() else {
            self.window.set(Window::now());
            return ControlFlow::Continue(());
        };
        // The common case: one clock read, well inside the window.
        if window.started.elapsed() < WINDOW {
            return ControlFlow::Continue(());
        }
        loop {
            let Some(now) = Window::now() else { return ControlFlow::Continue(()) };
            let rest_of_process = (now.process - window.process).saturating_sub(now.thread - window.thread);
            let share = rest_of_process.as_secs_f64() / (now.started - window.started).as_secs_f64();
            window = now;
            self.window.set(Some(window));
            if share <= busy_above {
                return ControlFlow::Continue(());
            }
            let pause_started = Instant::now();
            while pause_started.elapsed() < WINDOW {
                if cancelled() {
                    return ControlFlow::Break(());
                }
                std::thread::sleep(CANCEL_POLL);
            }
            self.paused.set(self.paused.get() + pause_started.elapsed());
        }
    }
}

impl Window {
    fn now() -> Option<Self> {
        let (process, thread) = cpu_clocks()?;
        Some(Self { started: Instant::now(), process, thread })
    }
}

/// Processor time used so far by the whole process and by the calling thread.
fn cpu_clocks() -> Option<(Duration, Duration)> {
    #[cfg(unix)]
    {
        let read = |clock: libc::clockid_t| {
            let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `time` is a valid timespec for the call to fill in.
            let status = unsafe { libc::clock_gettime(clock, &mut time) };
            (status == 0).then(|| Duration::new(time.tv_sec as u64, time.tv_nsec as u32))
        };
        Some((read(libc::CLOCK_PROCESS_CPUTIME_ID)?, read(libc::CLOCK_THREAD_CPUTIME_ID)?))
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_from_their_names_and_nice_values() {
        assert_eq!(TrainingPriority::parse("adaptive"), Ok(TrainingPriority::Adaptive));
        assert_eq!(TrainingPriority::parse("idle"), Ok(TrainingPriority::Idle));
        assert_eq!(TrainingPriority::parse("19"), Ok(TrainingPriority::Nice(19)));
        for bad in ["20", "-1", "low", ""] {
            assert!(TrainingPriority::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn training_threads_run_at_the_configured_priority() {
        fn on_a_new_thread<T: Send + 'static>(priority: TrainingPriority, read: fn() -> T) -> T {
            std::thread::spawn(move || {
                priority.apply_to_this_thread();
                read()
            })
            .join()
            .unwrap()
        }
        // SAFETY: both calls only read their integer arguments.
        let policy = on_a_new_thread(TrainingPriority::Idle, || unsafe { libc::sched_getscheduler(0) });
        assert_eq!(policy, libc::SCHED_IDLE);
        let niceness = on_a_new_thread(TrainingPriority::Nice(10), || unsafe {
            libc::getpriority(libc::PRIO_PROCESS, 0)
        });
        assert_eq!(niceness, 10);
        let policy = on_a_new_thread(TrainingPriority::Adaptive, || unsafe { libc::sched_getscheduler(0) });
        assert_eq!(policy, libc::SCHED_OTHER);
    }

    /// Busy threads of the same process make an adaptive fit pause; with a fixed priority the
    /// fit goes straight on. (Whether it goes on when the process is quiet is not tested here:
    /// the other tests of this binary run beside it.)
    #[cfg(unix)]
    #[test]
    fn an_adaptive_fit_pauses_while_the_rest_of_the_process_is_busy() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        // A paused fit goes on pausing while the process stays busy: the test's deadline
        // cancels it.
        let time_paced = |pacer: &Pacer, for_how_long: Duration| {
            let started = Instant::now();
            while started.elapsed() < for_how_long {
                let _ = pacer.pace(|| started.elapsed() >= for_how_long);
            }
            pacer.paused()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let spinners: Vec<_> = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop()
                    }
                })
            })
            .collect();
        let busy = time_paced(&Pacer::new(TrainingPriority::Adaptive), Duration::from_millis(300));
        let fixed = time_paced(&Pacer::new(TrainingPriority::Nice(0)), Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        spinners.into_iter().for_each(|spinner| spinner.join().unwrap());
        assert!(busy > Duration::from_millis(150), "paused only {busy:?} of 300 ms beside busy threads");
        assert_eq!(fixed, Duration::ZERO, "a fixed priority never pauses");
    }
}
