//! The HTTP client of the S3 backend: hyper with rustls on ring, behind object_store's
//! [`HttpConnector`].
//!
//! Why not object_store's own reqwest client: reqwest without aws-lc (whose C build we avoid)
//! has no crypto provider of its own, and the feature that says so applies to every reqwest
//! client in the build, the tests' included, which would then panic unless each installed a
//! provider first. This client names its provider itself and leaves reqwest alone.
//!
//! It owns the timeouts: a connection must open within the connect timeout, and a request must
//! be answered, body included, within the request timeout, so that a store that is down fails
//! in seconds.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use object_store::ClientConfigKey;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use rustls::ClientConfig;

/// Makes the clients of one store.
#[derive(Debug)]
pub(super) struct Connector {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl HttpConnector for Connector {
    fn connect(&self, options: &object_store::ClientOptions) -> object_store::Result<HttpClient> {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        // AWS_ALLOW_HTTP, as object_store's own client reads it: plain HTTP only when asked for.
        let allow_http = options.get_config_value(&ClientConfigKey::AllowHttp).is_some_and(|v| is_true(&v));
        Ok(HttpClient::new(Service { client, timeout: self.request_timeout, allow_http }))
    }
}

/// TLS with ring and the system's root certificates. Without any (no CA bundle installed),
/// HTTPS fails at the handshake with an unknown-issuer error; plain HTTP still works.
fn tls_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions");
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!("cannot load a system root certificate for S3 over HTTPS: {error}");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: S3 over HTTPS will fail to verify servers");
    }
    builder.with_root_certificates(roots).with_no_client_auth()
}

fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

#[derive(Debug)]
struct Service {
    client: Client<HttpsConnector<TcpConnector>, HttpRequestBody>,
    timeout: Duration,
    allow_http: bool,
}

impl Service {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if request.uri().scheme_str() == Some("http") && !self.allow_http {
            let refused = io::Error::other("plain HTTP is not allowed (set AWS_ALLOW_HTTP=true to allow it)");
            return Err(HttpError::new(HttpErrorKind::Unknown, refused));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(HttpError::new(kind_of_request_error(&e), e)),
            Err(_) => return Err(timed_out()),
        };
        // The body too must arrive before the deadline: a server that sends its head and then
        // stalls is as down as one that never answers.
        Ok(response.map(|body| {
            HttpResponseBody::new(Deadline { body, sleep: Box::pin(tokio::time::sleep_until(deadline)) })
        }))
    }
}

/// object_store's `HttpService` is an `async_trait`; this is what that macro would write.
impl HttpService for Service {
    fn call<'s, 'f>(
        &'s self,
        request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(self.send(request))
    }
}

/// A response body that fails once the request's deadline has passed.
struct Deadline {
    body: hyper::body::Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(
                frame.map(|frame| frame.map_err(|e| HttpError::new(kind_of_body_error(&e), e))),
            );
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(timed_out()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn timed_out() -> HttpError {
    HttpError::new(HttpErrorKind::Timeout, io::Error::new(io::ErrorKind::TimedOut, "the request timed out"))
}

/// Which kind of failure a request's error is: object_store retries a failed connection or a
/// request cut off, and a timeout only where the request may be repeated.
fn kind_of_request_error(error: &hyper_util::client::legacy::Error) -> HttpErrorKind {
    if error.is_connect() {
        // The connect timeout of hyper-util is reported as a connect error.
        return HttpErrorKind::Connect;
    }
    kind_of_cause(error.source())
}

fn kind_of_body_error(error: &hyper::Error) -> HttpErrorKind {
    match error.is_timeout() {
        true => HttpErrorKind::Timeout,
        false => kind_of_cause(Some(error)),
    }
}

/// The kind told by the first hyper or I/O error among `cause` and its sources.
fn kind_of_cause(mut cause: Option<&(dyn std::error::Error + 'static)>) -> HttpErrorKind {
    while let Some(error) = cause {
        if let Some(error) = error.downcast_ref::<hyper::Error>() {
            if error.is_closed() || error.is_incomplete_message() || error.is_body_write_aborted() {
                return HttpErrorKind::Request;
            }
            if error.is_timeout() {
                return HttpErrorKind::Timeout;
            }
        }
        if let Some(error) = error.downcast_ref::<io::Error>() {
            match error.kind() {
                io::ErrorKind::TimedOut => return HttpErrorKind::Timeout,
                io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => return HttpErrorKind::Interrupted,
                _ => {}
            }
        }
        cause = error.source();
    }
    HttpErrorKind::Unknown
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server on loopback that reads a request, sends `answer`, then holds the connection.
    async fn stalling_server(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0; 4096];
                    let _ = stream.read(&mut request).await;
                    let _ = stream.write_all(answer).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        format!("http://{address}/bucket/key")
    }

    fn client(allow_http: bool) -> HttpClient {
        let connector = Connector {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_millis(300),
        };
        let options = object_store::ClientOptions::new().with_allow_http(allow_http);
        connector.connect(&options).unwrap()
    }

    fn get(url: &str) -> HttpRequest {
        hyper::Request::get(url).body(HttpRequestBody::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let url = stalling_server(b"").await;
        let started = Instant::now();
        let error = client(true).execute(get(&url)).await.unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_body_that_stalls_times_out_at_the_same_deadline() {
        let url = stalling_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a start").await;
        let response = client(true).execute(get(&url)).await.unwrap();
        assert_eq!(response.status(), 200);
        let error = response.into_body().bytes().await.unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");
    }

    #[tokio::test]
    async fn plain_http_needs_allow_http() {
        let url = stalling_server(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert!(client(false).execute(get(&url)).await.is_err());
        assert_eq!(client(true).execute(get(&url)).await.unwrap().status(), 204);
    }
}
