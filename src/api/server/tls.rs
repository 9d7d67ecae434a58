//! HTTPS on a listener (feature `tls`): the rustls configuration, built once at start from the
//! certificate, key and client-CA files ([`server_config`]), and the opening of each connection
//! on its own task ([`accept`]). A client that speaks plain HTTP gets a 400 saying to use
//! `https://` and is closed; one that sends nothing, or stalls in the handshake, is closed after
//! the header timeout, and one being evicted or met by the shutdown goes at once. HTTP/1.1 only
//! (ALPN `http/1.1`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::connection::Activity;
use crate::settings::TlsFiles;

/// A listener's TLS configuration, shared by its connections.
pub type Config = Arc<ServerConfig>;

const CERT_FILE: &str = "the certificate file";
const KEY_FILE: &str = "the key file";
const CLIENT_CA_FILE: &str = "the client CA file";
/// The first byte of a TLS record that opens a handshake (a ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;
/// What a client speaking plain HTTP is told before the connection closes.
const PLAIN_HTTP_BODY: &str = "this port speaks HTTPS: use https://\n";
/// How long, after that answer, what the client still sends is read and dropped, so that closing
/// with unread bytes does not reset the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(1);

/// Why the TLS settings cannot be used; each names the flag or the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert and --tls-key go together: {0} is missing")]
    HalfAPair(&'static str),
    #[error("--tls-client-ca needs --tls-cert and --tls-key")]
    ClientCaAlone,
    #[error("cannot use {what} {}: {reason}", path.display())]
    File { what: &'static str, path: PathBuf, reason: String },
}

/// The TLS configuration the files describe, or `None` (plain HTTP) when none is given.
pub fn server_config(files: &TlsFiles) -> Result<Option<Config>, TlsError> {
    let Some((cert, key)) = certificate_and_key(files)? else { return Ok(None) };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match &files.client_ca {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(certificates(CERT_FILE, cert)?, private_key(key)?).map_err(|error| {
            match error {
                rustls::Error::InconsistentKeys(_) => {
                    file_error(KEY_FILE, key, format!("not the key of the certificate in {}", cert.display()))
                }
                error => file_error(KEY_FILE, key, error),
            }
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tracing::info!(client_certificates = files.client_ca.is_some(), "serving HTTPS");
    Ok(Some(Arc::new(config)))
}

/// The certificate and key files, which go together; `None` when neither is given.
fn certificate_and_key(files: &TlsFiles) -> Result<Option<(&Path, &Path)>, TlsError> {
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) if files.client_ca.is_none() => Ok(None),
        (None, None) => Err(TlsError::ClientCaAlone),
        (Some(_), None) => Err(TlsError::HalfAPair("--tls-key")),
        (None, Some(_)) => Err(TlsError::HalfAPair("--tls-cert")),
    }
}

/// Requires client certificates signed by one of the CA certificates of `path`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(CLIENT_CA_FILE, path)? {
        roots.add(certificate).map_err(|error| file_error(CLIENT_CA_FILE, path, error))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| file_error(CLIENT_CA_FILE, path, error))
}

/// The certificates of a PEM file: at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect())
        .map_err(|error| pem_error(what, path, error))?;
    if certificates.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certificates)
}

/// The private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        pem::Error::NoItemsFound => {
            file_error(KEY_FILE, path, "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")
        }
        error => pem_error(KEY_FILE, path, error),
    })
}

fn pem_error(what: &'static str, path: &Path, error: pem::Error) -> TlsError {
    match error {
        pem::Error::Io(error) => file_error(what, path, error),
        error => file_error(what, path, format!("not PEM: {error}")),
    }
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { what, path: path.to_owned(), reason: reason.to_string() }
}

/// What the client's first byte says it speaks.
enum Opening {
    Tls,
    PlainHttp,
    /// It closed, or the socket failed, before sending anything.
    Gone,
}

/// Opens TLS on an accepted connection: the stream to serve HTTP on, or `None` when the client
/// spoke plain HTTP (answered 400), sent nothing or stalled within the header timeout, failed
/// the handshake (no certificate, or one no client CA signed), was evicted, or the server shut
/// down.
pub async fn accept(
    stream: TcpStream,
    config: &Config,
    activity: &Activity,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let opening = async {
        match opening(&stream).await {
            Opening::Tls => {}
            Opening::PlainHttp => return refuse_plain_http(stream).await,
            Opening::Gone => return None,
        }
        match TlsAcceptor::from(config.clone()).accept(stream).await {
            Ok(stream) => {
                activity.ready();
                Some(stream)
            }
            Err(error) => {
                tracing::debug!(%error, "TLS handshake failed");
                None
            }
        }
    };
    tokio::select! {
        opened = tokio::time::timeout(settings.header_timeout, opening) => opened.unwrap_or_else(|_| {
            tracing::debug!(timeout = ?settings.header_timeout, "closing a connection whose TLS handshake did not end in time");
            None
        }),
        () = activity.evicted() => None,
        () = shutdown.cancelled() => None,
    }
}

async fn opening(stream: &TcpStream) -> Opening {
    let mut first = [0];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == HANDSHAKE_RECORD => Opening::Tls,
        Ok(1) => Opening::PlainHttp,
        _ => Opening::Gone,
    }
}

/// Answers a plain HTTP request with 400 and closes, as nginx does; never a stream to serve.
async fn refuse_plain_http(mut stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_ok() && stream.shutdown().await.is_ok() {
        let mut unread = [0; 4096];
        let drain = async { while matches!(stream.read(&mut unread).await, Ok(1..)) {} };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
    None
}
