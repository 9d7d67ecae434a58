//! HTTPS with the real binary, on certificates made at test time: a CA, the server's certificate
//! for 127.0.0.1 and localhost, a client certificate from the same CA, and a second CA with a
//! client certificate of its own. The routes and the WebSocket over TLS on both listeners,
//! client certificates required and checked, plain HTTP answered 400 at once, silent and stalled
//! handshakes closed after the header timeout, the connection limit, and the start-up errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::connections::closed_within;
use crate::helpers::{binary_command, free_port};
use crate::process::Server;

/// A certificate authority made for the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { issuer: Issuer::new(params, key), pem }
    }

    /// A certificate for `names` (the first is its common name) signed by this CA, and its key,
    /// both as PEM.
    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

/// The test's certificates, as PEM files in a directory of their own: `ca.pem`, `server.pem` and
/// `server.key`, `client.pem` and `client.key` (signed by the CA), `other-ca.pem`, and
/// `other-client.pem` and `other-client.key` (signed by the other CA).
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).unwrap();
        let (ca, other) = (Ca::new("regserve test CA"), Ca::new("another CA"));
        write("ca.pem", &ca.pem);
        write("other-ca.pem", &other.pem);
        for (name, signer, names, usage) in [
            ("server", &ca, &["localhost", "127.0.0.1"][..], ExtendedKeyUsagePurpose::ServerAuth),
            ("client", &ca, &["a-client"], ExtendedKeyUsagePurpose::ClientAuth),
            ("other-client", &other, &["another-client"], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let (cert, key) = signer.sign(names, usage);
            write(&format!("{name}.pem"), &cert);
            write(&format!("{name}.key"), &key);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The flags that serve HTTPS with the server's certificate, and `more`.
    fn flags(&self, more: &[&str]) -> Vec<String> {
        let (cert, key) = (self.path("server.pem"), self.path("server.key"));
        let files = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
        files.iter().chain(more).map(|flag| flag.to_string()).collect()
    }

    /// A client that trusts the CA and presents the certificate `identity` (`client` or
    /// `other-client`), if any.
    fn client(&self, identity: Option<&str>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(name) => {
                let chain = vec![CertificateDer::from_pem_file(self.path(&format!("{name}.pem"))).unwrap()];
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Starts the binary serving HTTPS with `flags` and the settings `env` gives.
async fn start(data: &Path, flags: &[String], env: &[(&str, &str)]) -> Server {
    // The start-up check asks over plain HTTP: the 400 it gets says the server is up.
    Server::start_with(data, |command| {
        command.args(flags).envs(env.iter().copied());
    })
    .await
}

/// A TLS connection to `addr` for the name `localhost`.
async fn connect(addr: SocketAddr, client: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    client.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// Sends `request` (which asks the server to close) over HTTPS; the whole answer, or the error
/// of the connection, which carries the TLS alert of a refused handshake.
async fn https(addr: SocketAddr, client: &TlsConnector, request: &str) -> std::io::Result<String> {
    let mut stream = connect(addr, client).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8(answer).unwrap())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn post(path: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The JSON body of a 200 answer.
fn ok_json(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {answer}"))
}

#[tokio::test]
async fn https_serves_the_routes_and_the_websocket_on_both_listeners() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let admin = format!("127.0.0.1:{}", free_port());
    let server = start(data.path(), &pki.flags(&[]), &[("REGSERVE_ADMIN_ADDR", &admin)]).await;
    let (main, admin) = (addr(&server.base), admin.parse().unwrap());
    let client = pki.client(None);

    let health = ok_json(&https(main, &client, &get("/healthz")).await.unwrap());
    assert_eq!(health["status"], "ok", "{health}");
    let train = post("/train?wait=true", &json!({ "solver": "least-squares" }));
    assert_eq!(ok_json(&https(admin, &client, &train).await.unwrap())["model"]["version"], 1);
    let refused = https(main, &client, &post("/train?wait=true", &json!({}))).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{refused}");
    let predicted =
        ok_json(&https(main, &client, &post("/predict", &json!({ "x_predict": [10] }))).await.unwrap());
    let y = predicted["y_predict"][0][0].as_f64().unwrap();
    // The least-squares fit of the built-in Income1 data.
    assert!((y - (5.599482874119919 * 10.0 - 39.44625667909617)).abs() < 1e-3, "{predicted}");

    let stream = connect(main, &client).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut socket, _) =
        tokio_tungstenite::client_async("wss://localhost/v1/predict/ws", stream).await.unwrap();
    socket.send(Message::Text(r#"{"id": 7, "x_predict": [10]}"#.into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap();
    let Message::Text(text) = answer.unwrap().unwrap() else { panic!("a text answer") };
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((&answer["id"], answer["y"][0].as_f64()), (&json!(7), Some(y)), "{answer}");
}

#[tokio::test]
async fn with_a_client_ca_only_certificates_it_signed_get_through() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let ca = pki.path("ca.pem");
    let server = start(data.path(), &pki.flags(&["--tls-client-ca", ca.to_str().unwrap()]), &[]).await;
    let main = addr(&server.base);

    let anonymous = https(main, &pki.client(None), &get("/healthz")).await.unwrap_err();
    assert!(anonymous.to_string().contains("CertificateRequired"), "{anonymous}");
    let stranger = https(main, &pki.client(Some("other-client")), &get("/healthz")).await.unwrap_err();
    assert!(stranger.to_string().contains("UnknownCA"), "{stranger}");
    let known = https(main, &pki.client(Some("client")), &get("/healthz")).await.unwrap();
    assert_eq!(ok_json(&known)["status"], "ok");
}

#[tokio::test]
async fn plain_http_to_an_https_port_gets_a_400_at_once() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let server = start(data.path(), &pki.flags(&[]), &[]).await;
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr(&server.base)).unwrap();
    std::io::Write::write_all(&mut stream, get("/healthz").replace("Connection: close\r\n", "").as_bytes())
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(10)).expect("the server closed");
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
    assert_eq!(
        answer,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\n\
         Connection: close\r\n\r\nthis port speaks HTTPS: use https://\n"
    );
    let response = server.get("/predict").await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "this port speaks HTTPS: use https://\n");
}

#[tokio::test]
async fn silent_and_stalled_handshakes_are_closed_after_the_header_timeout() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let server = start(data.path(), &pki.flags(&[]), &[("REGSERVE_HEADER_TIMEOUT", "1s")]).await;
    let main = addr(&server.base);
    let mut silent = std::net::TcpStream::connect(main).unwrap();
    let mut stalled = std::net::TcpStream::connect(main).unwrap();
    // The first bytes of a ClientHello's record, and no more.
    std::io::Write::write_all(&mut stalled, &[0x16, 0x03, 0x01]).unwrap();
    let started = Instant::now();
    for stream in [&mut silent, &mut stalled] {
        let sent = closed_within(stream, Duration::from_secs(10)).expect("the server closed it");
        assert_eq!(sent, "", "nothing is answered to a handshake that never ends");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");
    let health = https(main, &pki.client(None), &get("/healthz")).await.unwrap();
    assert_eq!(ok_json(&health)["status"], "ok");
}

#[tokio::test]
async fn at_the_connection_limit_silent_tls_connections_make_room() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let server = start(data.path(), &pki.flags(&[]), &[("REGSERVE_MAX_CONNECTIONS", "4")]).await;
    let main = addr(&server.base);
    let mut held: Vec<_> = (0..6).map(|_| std::net::TcpStream::connect(main).unwrap()).collect();
    // Idle times are kept in milliseconds: the clients below are newer than every held one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for _ in 0..3 {
        let health = https(main, &pki.client(None), &get("/healthz")).await.unwrap();
        assert_eq!(ok_json(&health)["status"], "ok");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());
    let evicted = held.iter_mut().filter_map(|stream| closed_within(stream, Duration::from_millis(200)));
    assert!(evicted.count() >= 3, "the longest-idle handshakes were closed to make room");
}

#[test]
fn tls_settings_that_cannot_be_used_stop_the_start_naming_the_flag_or_file() {
    let (pki, data) = (Pki::new(), tempfile::tempdir().unwrap());
    let path = |name: &str| pki.path(name).to_str().unwrap().to_owned();
    let missing = path("missing.pem");
    for (flags, expected) in [
        (
            vec!["--tls-cert", &path("server.pem")],
            "--tls-cert and --tls-key go together: --tls-key is missing".to_owned(),
        ),
        (
            vec!["--tls-client-ca", &path("ca.pem")],
            "--tls-client-ca needs --tls-cert and --tls-key".to_owned(),
        ),
        (
            vec!["--tls-cert", &missing, "--tls-key", &path("server.key")],
            format!("cannot use the certificate file {missing}: No such file or directory"),
        ),
        (
            vec!["--tls-cert", &path("server.pem"), "--tls-key", &path("server.pem")],
            format!("cannot use the key file {}: no PEM private key", path("server.pem")),
        ),
        (
            vec!["--tls-cert", &path("server.pem"), "--tls-key", &path("client.key")],
            format!(
                "cannot use the key file {}: not the key of the certificate in {}",
                path("client.key"),
                path("server.pem")
            ),
        ),
    ] {
        let output =
            binary_command(data.path()).args(&flags).env("REGSERVE_ADDR", "127.0.0.1:0").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(&expected), "{flags:?}: {stderr}");
    }
}
