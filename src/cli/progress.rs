//! The progress of a fit on stderr: a progress bar (epoch, loss, ETA) on a terminal, plain lines
//! otherwise.

use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::Observer;

/// How often the plain progress lines (stderr not a terminal) may appear, besides the first and
/// the last epoch: often enough to show life in a log, rarely enough not to flood it.
const LINE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the progress bar is updated; the fit runs much faster than anyone can read, and
/// formatting the loss every epoch would slow a fit of tiny epochs.
const BAR_INTERVAL: Duration = Duration::from_millis(50);

/// Reports a fit's progress on stderr: a progress bar (epoch, loss, ETA) on a terminal, and plain
/// lines otherwise (about one a second, plus the first and the last epoch), so a log or a CI run
/// shows the fit is alive without control characters or a line per epoch.
pub struct Progress {
    epochs: usize,
    started: Instant,
    /// When the display was last updated; `None` before the first epoch.
    shown_at: Option<Instant>,
    /// The latest epoch and its loss, and whether the display shows it.
    latest: Option<(usize, f64)>,
    latest_shown: bool,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines(Box<dyn Write>),
    Nothing,
}

impl Progress {
    /// A reporter for a fit of at most `epochs` epochs (0 for the exact solver, which shows nothing).
    pub fn new(epochs: usize) -> Self {
        let display = if epochs == 0 {
            Display::Nothing
        } else if io::stderr().is_terminal() {
            Display::Bar(progress_bar(epochs))
        } else {
            Display::Lines(Box::new(io::stderr()))
        };
        Self::with_display(epochs, display)
    }

    fn with_display(epochs: usize, display: Display) -> Self {
        Self { epochs, started: Instant::now(), shown_at: None, latest: None, latest_shown: false, display }
    }

    /// Shows the last epoch the fit ran (a fit may stop early or fail), and leaves the bar on
    /// screen with the time taken in place of the ETA.
    pub fn finish(&mut self) {
        if !self.latest_shown {
            self.show(Instant::now());
        }
        if let Display::Bar(bar) = &self.display {
            bar.set_style(bar_style("[{bar:30}] epoch {pos}/{len}  loss {msg}  took {elapsed}"));
            bar.abandon();
        }
    }

    fn show(&mut self, now: Instant) {
        let Some((epoch, loss)) = self.latest else { return };
        self.shown_at = Some(now);
        self.latest_shown = true;
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_message(format_loss(loss));
                bar.set_position(epoch as u64);
            }
            Display::Lines(out) => {
                let elapsed = now.duration_since(self.started);
                let remaining = elapsed.mul_f64((self.epochs - epoch) as f64 / epoch as f64);
                let eta = format_duration(remaining);
                // A progress line that cannot be written is not worth stopping the fit for.
                let _ = writeln!(out, "epoch {epoch}/{} loss {} eta {eta}", self.epochs, format_loss(loss));
            }
            Display::Nothing => {}
        }
    }
}

impl Observer for Progress {
    fn epoch_end(&mut self, epoch: usize, loss: f64) -> ControlFlow<()> {
        self.latest = Some((epoch, loss));
        self.latest_shown = false;
        let interval = match self.display {
            Display::Bar(_) => BAR_INTERVAL,
            Display::Lines(_) => LINE_INTERVAL,
            Display::Nothing => return ControlFlow::Continue(()),
        };
        let now = Instant::now();
        let due = self.shown_at.is_none_or(|shown| now.duration_since(shown) >= interval);
        if due || epoch == self.epochs {
            self.show(now);
        }
        ControlFlow::Continue(())
    }
}

fn progress_bar(epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    bar.set_style(bar_style("[{bar:30}] epoch {pos}/{len}  loss {msg}  eta {eta}"));
    bar
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the progress templates are valid").progress_chars("=> ")
}

/// A loss (or a percentage) with enough digits to watch it fall, in plain notation where that
/// stays readable.
pub(super) fn format_loss(loss: f64) -> String {
    if loss == 0.0 || (1e-3..1e9).contains(&loss.abs()) {
        format!("{loss:.4}")
    } else {
        format!("{loss:.4e}")
    }
}

/// `0.42ms` for a fit too quick for [`format_duration`]'s tenths of a second.
pub(super) fn format_took(took: Duration) -> String {
    if took < Duration::from_secs(1) {
        format!("{:.2}ms", took.as_secs_f64() * 1e3)
    } else {
        format_duration(took)
    }
}

/// `0.8s`, `42.0s`, `3m07s`, `2h05m`.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    let whole = duration.as_secs();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn loss_and_durations_stay_readable() {
        assert_eq!(format_loss(1234.56789), "1234.5679");
        assert_eq!(format_loss(1.5e-7), "1.5000e-7");
        assert_eq!(format_duration(Duration::from_millis(800)), "0.8s");
        assert_eq!(format_duration(Duration::from_secs(187)), "3m07s");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h05m");
    }

    /// A writer whose output a test can read after handing it to the reporter.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_progress_shows_the_first_and_last_epoch_and_throttles_the_rest() {
        let out = Shared::default();
        let mut progress = Progress::with_display(1000, Display::Lines(Box::new(out.clone())));
        for epoch in 1..=1000 {
            let _ = progress.epoch_end(epoch, 1000.0 / epoch as f64);
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("epoch 1/1000 loss 1000.0000 eta "), "{text}");
        assert_eq!(lines[1], "epoch 1000/1000 loss 1.0000 eta 0.0s");
    }

    #[test]
    fn plain_progress_shows_where_an_early_stop_ended() {
        let out = Shared::default();
        let mut progress = Progress::with_display(1000, Display::Lines(Box::new(out.clone())));
        for epoch in 1..=40 {
            let _ = progress.epoch_end(epoch, 2.0);
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.lines().last().unwrap().starts_with("epoch 40/1000 loss 2.0000 eta "), "{text}");
    }
}
