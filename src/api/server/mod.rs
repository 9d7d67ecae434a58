//! The HTTP server under the routes: accepting connections on a listener, serving each on its
//! own task ([`connection`]), over TLS when the listener has it ([`tls`], feature `tls`), and
//! the limits that keep held connections from locking anyone out: a connection limit below the
//! process's file-descriptor limit (at the limit, the connection idle the longest makes room for
//! the new one), a timeout for request heads and for idle keep-alive connections, a write timeout
//! for answers nobody reads ([`io`]), and a shutdown that waits for requests in flight at most
//! `shutdown_timeout`, then drops what is left.

mod connection;
mod guarded;
mod io;
#[cfg(feature = "tls")]
pub mod tls;

pub use guarded::Guarded;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::connection::Activity;

/// File descriptors kept back from connections: data files, model files, parsing, logging.
const RESERVED_FILES: u64 = 64;
/// The connection limit when the file-descriptor limit leaves room for more.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Limits and timeouts of the connections of one listener.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest time from the first byte of a request head to its end, and with TLS, from a
    /// connection's opening to the end of its handshake.
    pub header_timeout: Duration,
    /// Longest time a connection may wait for its next request.
    pub keep_alive_timeout: Duration,
    /// Longest time a write of an answer may make no progress.
    pub write_timeout: Duration,
    /// Longest time a shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// Serve HTTPS with this configuration instead of plain HTTP.
    #[cfg(feature = "tls")]
    pub tls: Option<tls::Config>,
}

impl Default for Settings {
    fn default() -> Self {
        // The defaults of the settings, in one place.
        let limits = crate::settings::ConnectionLimits::default();
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: limits.header_timeout,
            keep_alive_timeout: limits.keep_alive_timeout,
            write_timeout: limits.write_timeout,
            shutdown_timeout: limits.shutdown_timeout,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Raises the soft limit on open files to the hard limit (where the system has one), and
/// returns the limit now in force. Each connection takes a file descriptor.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit read and write only the struct they are given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// The most connections that fit in `open_files` descriptors beside `other_files` (streamed
/// downloads, which hold a file each) and the [`RESERVED_FILES`].
pub fn connection_limit_for(open_files: Option<u64>, other_files: u64) -> usize {
    let Some(open_files) = open_files else { return DEFAULT_MAX_CONNECTIONS };
    let room = open_files.saturating_sub(RESERVED_FILES + other_files).max(16);
    usize::try_from(room).unwrap_or(usize::MAX).min(DEFAULT_MAX_CONNECTIONS)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish for at most `settings.shutdown_timeout` and drops the rest.
pub async fn serve(listener: TcpListener, router: Router, settings: Settings, shutdown: CancellationToken) {
    let settings = Arc::new(settings);
    let open = Connections::default();
    let mut tasks = JoinSet::new();
    loop {
        if tasks.len() >= settings.max_connections && !make_room(&open, &mut tasks, &shutdown).await {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let (id, activity) = open.add();
                    let (open, router, settings, shutdown) = (open.clone(), router.clone(), settings.clone(), shutdown.clone());
                    tasks.spawn(async move {
                        serve_connection(stream, activity, router, settings, shutdown).await;
                        open.remove(id);
                    });
                }
                Err(error) => accept_failed(error).await,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(settings.shutdown_timeout, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            timeout = ?settings.shutdown_timeout,
            "closing the connections still open at the shutdown deadline (--shutdown-timeout)"
        );
        tasks.shutdown().await;
    }
}

/// Serves one accepted connection on its own task, opening TLS first when the listener has it.
async fn serve_connection(
    stream: TcpStream,
    activity: Arc<Activity>,
    router: Router,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
) {
    #[cfg(feature = "tls")]
    if let Some(config) = &settings.tls {
        if let Some(stream) = tls::accept(stream, config, &activity, &settings, &shutdown).await {
            connection::serve(stream, activity, router, settings, shutdown).await;
        }
        return;
    }
    connection::serve(stream, activity, router, settings, shutdown).await;
}

/// At the connection limit: closes the connection idle the longest, or, when every connection
/// has a request in flight, waits for one to end. `false` if the server shuts down meanwhile.
async fn make_room(open: &Connections, tasks: &mut JoinSet<()>, shutdown: &CancellationToken) -> bool {
    if !open.evict_idlest() {
        tracing::debug!(connections = tasks.len(), "at the connection limit, every connection busy; waiting");
    }
    tokio::select! {
        _ = tasks.join_next() => true,
        () = shutdown.cancelled() => false,
    }
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything else
/// (out of file descriptors) is logged, and accepting pauses a moment rather than spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The open connections of a listener, so that one can be chosen to make room.
#[derive(Clone, Default)]
struct Connections {
    inner: Arc<ConnectionsInner>,
}

struct ConnectionsInner {
    /// What the connections' times count from.
    epoch: tokio::time::Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Default for ConnectionsInner {
    fn default() -> Self {
        Self { epoch: tokio::time::Instant::now(), next_id: AtomicU64::new(0), open: Mutex::default() }
    }
}

impl Connections {
    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.inner.epoch));
        self.inner.open.lock().unwrap_or_else(PoisonError::into_inner).insert(id, activity.clone());
        (id, activity)
    }

    fn remove(&self, id: u64) {
        self.inner.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    /// Closes the connection that has had nothing to do for the longest; `false` if every one
    /// has a request in flight.
    fn evict_idlest(&self) -> bool {
        let open = self.inner.open.lock().unwrap_or_else(PoisonError::into_inner);
        let idlest = open
            .values()
            .filter_map(|activity| Some((activity.idle_since()?, activity)))
            .min_by_key(|(since, _)| *since);
        match idlest {
            Some((_, activity)) => {
                activity.evict();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_leaves_room_for_files() {
        assert_eq!(connection_limit_for(Some(1024), 128), 1024 - 64 - 128);
        assert_eq!(connection_limit_for(Some(1 << 20), 128), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_limit_for(Some(100), 128), 16);
        assert_eq!(connection_limit_for(None, 128), DEFAULT_MAX_CONNECTIONS);
    }
}
