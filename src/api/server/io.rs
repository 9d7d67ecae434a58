//! The socket of one connection, watched: bytes that arrive are noted in the connection's
//! [`Activity`] (the start of a request head, when none is in flight), and a write that makes no
//! progress for the write timeout fails, so a client that stops reading its answer cannot hold the
//! connection and the answer's memory.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::connection::Activity;

pub struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Armed while a write waits for the socket; fires after `write_timeout` without progress.
    stalled_write: Pin<Box<Sleep>>,
    write_waiting: bool,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, write_timeout: Duration) -> Self {
        Self {
            inner,
            activity,
            write_timeout,
            stalled_write: Box::pin(tokio::time::sleep(write_timeout)),
            write_waiting: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> WatchedIo<T> {
    /// Runs a write-side operation; while it waits, the write timeout runs, and progress resets it.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        operation: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match operation(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.write_waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.write_waiting {
                    self.write_waiting = true;
                    self.stalled_write.as_mut().reset(Instant::now() + self.write_timeout);
                }
                ready!(self.stalled_write.as_mut().poll(cx));
                let message = format!("the client read nothing of the answer for {:?}", self.write_timeout);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().watch_write(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().watch_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch_write(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch_write(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}
