//! A request body that must keep arriving: one that sends nothing for the idle timeout, or
//! less than the minimum rate over any window of that length, ends with [`TooSlow`], which the
//! handlers answer with 408. A client that sends a byte now and then can so hold a request for at
//! most one window, however long its body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// How often a body must deliver, and how much.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest time without a byte, and the length of the window the rate is measured over.
    pub idle: Duration,
    /// Least bytes per second.
    pub min_rate: u64,
}

/// Why a body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooSlow {
    #[error(
        "the request body stopped arriving: nothing came within the body idle timeout of {} (--body-idle-timeout)",
        crate::units::short_duration(*idle)
    )]
    Idle { idle: Duration },
    #[error(
        "the request body arrived too slowly: {bytes} bytes in {}, below the least rate of {min_rate} bytes/s (--min-body-rate)",
        crate::units::short_duration(*window)
    )]
    Rate { bytes: u64, window: Duration, min_rate: u64 },
}

pin_project! {
    pub struct PacedBody {
        #[pin]
        inner: Body,
        pace: Pace,
        window_started: Instant,
        window_bytes: u64,
        #[pin]
        idle: Sleep,
    }
}

impl PacedBody {
    pub fn new(inner: Body, pace: Pace) -> Self {
        let now = Instant::now();
        Self {
            inner,
            pace,
            window_started: now,
            window_bytes: 0,
            idle: tokio::time::sleep_until(now + pace.idle),
        }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Pending => {
                ready!(this.idle.poll(cx));
                return Poll::Ready(Some(Err(axum::Error::new(TooSlow::Idle { idle: this.pace.idle }))));
            }
            other => return other,
        };
        *this.window_bytes += frame.data_ref().map_or(0, |data| data.len() as u64);
        let now = Instant::now();
        let window = now - *this.window_started;
        if window >= this.pace.idle {
            let least = (this.pace.min_rate as f64 * window.as_secs_f64()) as u64;
            if *this.window_bytes < least {
                let slow = TooSlow::Rate { bytes: *this.window_bytes, window, min_rate: this.pace.min_rate };
                return Poll::Ready(Some(Err(axum::Error::new(slow))));
            }
            *this.window_started = now;
            *this.window_bytes = 0;
        }
        this.idle.reset(now + this.pace.idle);
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`TooSlow`] somewhere in an error's chain of sources, if any.
pub fn too_slow(error: &(dyn std::error::Error + 'static)) -> Option<TooSlow> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(slow) = error.downcast_ref::<TooSlow>() {
            return Some(*slow);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn pace() -> Pace {
        Pace { idle: Duration::from_secs(10), min_rate: 1024 }
    }

    /// A body that sends `chunk` bytes every `every`, `count` times.
    fn trickle(chunk: usize, every: Duration, count: usize) -> Body {
        let stream = futures_util::stream::unfold(0, move |sent| async move {
            if sent == count {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; chunk])), sent + 1))
        });
        Body::from_stream(stream)
    }

    async fn outcome(body: Body) -> Result<usize, Option<TooSlow>> {
        let collected = PacedBody::new(body, pace()).collect().await;
        collected.map(|body| body.to_bytes().len()).map_err(|error| too_slow(&error))
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_now_and_then_is_cut_off_after_one_window() {
        let slow = outcome(trickle(1, Duration::from_secs(5), 1000)).await;
        assert!(matches!(slow, Err(Some(TooSlow::Rate { bytes: 2, .. }))), "{slow:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_cut_off_after_the_idle_timeout() {
        let silent = outcome(trickle(1, Duration::from_secs(11), 2)).await;
        assert_eq!(silent, Err(Some(TooSlow::Idle { idle: Duration::from_secs(10) })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_least_rate_or_faster_arrives_whole() {
        assert_eq!(outcome(trickle(5 * 1024, Duration::from_secs(5), 10)).await, Ok(50 * 1024));
        assert_eq!(
            outcome(trickle(10, Duration::from_millis(1), 100)).await,
            Ok(1000),
            "short bodies end before a window"
        );
    }
}
