//! One HTTP/1.1 connection, over TCP or TLS: served by hyper (with upgrades), timed out when it
//! idles or sends a request head too slowly, and closable from outside (a shutdown, or an
//! eviction when the server is at its connection limit). [`Activity`] is what the connection's
//! parts share about it: the socket notes bytes that start a request head, the service notes
//! requests starting and ending.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::io::WatchedIo;
use super::{Guarded, Settings};

/// No request head is arriving.
const NO_HEAD: u64 = u64::MAX;

/// What the parts of one connection share about it. Times are milliseconds after the listener's
/// epoch, so that connections can be compared.
pub struct Activity {
    epoch: Instant,
    /// Requests whose answers are not fully sent yet.
    in_flight: AtomicUsize,
    /// When the connection last had nothing to do (the end of an answer, or its opening).
    idle_since_ms: AtomicU64,
    /// When the first byte of a request head still arriving came, or [`NO_HEAD`].
    head_since_ms: AtomicU64,
    /// Signalled to close the connection now (it is being evicted).
    close: Notify,
}

/// Why a connection's own timer ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No request came for the keep-alive timeout.
    Idle,
    /// A request head started but did not end within the header timeout.
    SlowHead,
}

impl Activity {
    /// A connection opened now; `epoch` is the listener's.
    pub fn new(epoch: Instant) -> Self {
        let activity = Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NO_HEAD),
            close: Notify::new(),
        };
        activity.idle_since_ms.store(activity.now_ms(), Ordering::Relaxed);
        activity
    }

    /// Bytes arrived: between requests, they are the start of the next request's head.
    pub fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The connection is ready for its first request (its TLS handshake has ended): the
    /// keep-alive timeout counts from now.
    #[cfg(feature = "tls")]
    pub fn ready(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether the connection can be closed without cutting an answer off, and since when it
    /// has been (for choosing the one idle the longest).
    pub fn idle_since(&self) -> Option<u64> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| self.idle_since_ms.load(Ordering::Relaxed))
    }

    /// Asks the connection to close at once.
    pub fn evict(&self) {
        self.close.notify_one();
    }

    /// Completes once the connection is asked to close at once.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    fn request_ended(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection's own timer would end it, and why; `None` while a request is in
    /// flight (its body, handler and answer have timeouts of their own).
    fn deadline(&self, settings: &Settings) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64| self.epoch + std::time::Duration::from_millis(ms);
        match self.head_since_ms.load(Ordering::Relaxed) {
            NO_HEAD => Some((
                at(self.idle_since_ms.load(Ordering::Relaxed)) + settings.keep_alive_timeout,
                Expiry::Idle,
            )),
            head => Some((at(head) + settings.header_timeout, Expiry::SlowHead)),
        }
    }

    /// Waits until the connection's own timer ends it.
    async fn expiry(&self, settings: &Settings) -> Expiry {
        loop {
            match self.deadline(settings) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => tokio::time::sleep_until(at).await,
                // In flight: look again later (the answer's end resets the clock anyway).
                None => tokio::time::sleep(settings.keep_alive_timeout.min(settings.header_timeout)).await,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Serves one accepted connection (its socket, or the TLS stream over it) until it ends, is
/// evicted, or the server shuts down (then it finishes the request in flight and closes).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    activity: Arc<Activity>,
    router: Router,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(WatchedIo::new(stream, activity.clone(), settings.write_timeout));
    let service = ConnectionService { router, activity: activity.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The head timeout is [`Activity`]'s: hyper's would also count the idle time before a head.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let connection = builder.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            expiry = activity.expiry(&settings), if !closing => match expiry {
                Expiry::Idle => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                Expiry::SlowHead => {
                    tracing::debug!(timeout = ?settings.header_timeout, "closing a connection whose request head did not arrive in time");
                    return;
                }
            },
            () = activity.evicted(), if !closing => return,
            () = shutdown.cancelled(), if !closing => {
                // Nothing in flight (idle, or a head still arriving): nothing to finish.
                if activity.idle_since().is_some() {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// The router as hyper calls it, counting the requests of this connection in flight until their
/// answers are sent.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let in_flight = InFlight(self.activity.clone());
        let answer = self.router.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(Guarded::hold(response, in_flight))
        })
    }
}

/// Counts a request in flight until dropped: with its answer's body once sent, or with the
/// answer if the connection goes first.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> Settings {
        Settings {
            header_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(5),
            ..Settings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timers_start_from_the_last_answer_or_the_first_byte_of_a_head() {
        let epoch = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let activity = Activity::new(epoch);
        let settings = settings();
        let (at, why) = activity.deadline(&settings).unwrap();
        assert_eq!((at - epoch, why), (Duration::from_secs(6), Expiry::Idle));

        tokio::time::advance(Duration::from_secs(2)).await;
        activity.bytes_read();
        let (at, why) = activity.deadline(&settings).unwrap();
        assert_eq!((at - epoch, why), (Duration::from_secs(33), Expiry::SlowHead));

        activity.request_started();
        assert_eq!(activity.deadline(&settings), None, "no connection timer while a request is in flight");
        activity.bytes_read();
        tokio::time::advance(Duration::from_secs(60)).await;
        activity.request_ended();
        let (at, why) = activity.deadline(&settings).unwrap();
        assert_eq!((at - epoch, why), (Duration::from_secs(68), Expiry::Idle), "body bytes start no head");
        assert_eq!(activity.idle_since(), Some(63_000));
    }

    #[cfg(feature = "tls")]
    #[tokio::test(start_paused = true)]
    async fn the_keep_alive_timeout_counts_from_the_end_of_a_handshake() {
        let epoch = Instant::now();
        let activity = Activity::new(epoch);
        tokio::time::advance(Duration::from_secs(4)).await;
        activity.ready();
        let (at, why) = activity.deadline(&settings()).unwrap();
        assert_eq!((at - epoch, why), (Duration::from_secs(9), Expiry::Idle));
    }
}
