//! Held connections, with the real binary: bodies that trickle, heads that never end, idle
//! keep-alive connections, answers nobody reads, and more connections than the open-file limit
//! allows. None of them locks anyone out, and SIGTERM always ends the process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::process::Server;

fn addr(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection that has sent `head` (and nothing more yet). The server may refuse and close
/// before it has read it all, which is no error here.
fn sent(server: &Server, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr(server)).unwrap();
    let _ = stream.write_all(head.as_bytes());
    stream
}

/// The head of a POST of `length` bytes to `path`.
fn post_head(path: &str, content_type: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Waits (at most `limit`) until the server closes `stream`; returns what it sent before.
pub(crate) fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&received).into_owned())
        }
        Err(_) => None,
    }
}

/// Raises this process's open-file limit, for tests that hold thousands of connections: to
/// 65536 where it may (as root), else to its hard limit.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let wanted = limit.rlim_max.max(65_536);
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: wanted };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// `/predict` and `/healthz` as a new client: both must answer 200; returns the slower time.
async fn a_new_client_is_served(server: &Server) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let predict =
        client.post(server.url("/predict")).json(&json!({ "x_predict": [10] })).send().await.unwrap();
    assert_eq!(predict.status(), StatusCode::OK, "{}", predict.text().await.unwrap());
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_a_byte_now_and_then_is_cut_off_and_holds_no_request_slot() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), |command| {
        command.env("REGSERVE_BODY_IDLE_TIMEOUT", "1s").env("REGSERVE_MAX_CONCURRENT", "4");
    })
    .await;
    server.train(json!({ "solver": "least-squares" })).await;
    let mut trickles: Vec<TcpStream> = (0..20)
        .map(|i| sent(&server, &post_head(["/train", "/predict"][i % 2], "application/json", 1000)))
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(700) {
        for stream in &mut trickles {
            let _ = stream.write_all(b" ");
        }
        // Twenty bodies in flight, four request slots: requests are still served.
        a_new_client_is_served(&server).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for stream in &mut trickles {
        let answer = closed_within(stream, Duration::from_secs(10)).expect("the trickling body was cut off");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("arrived too slowly") || answer.contains("stopped arriving"), "{answer}");
    }
    assert_eq!(server.flag().await, 1, "no training started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_that_never_end_and_idle_connections_are_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), |command| {
        command.env("REGSERVE_HEADER_TIMEOUT", "1s").env("REGSERVE_KEEP_ALIVE_TIMEOUT", "1s");
    })
    .await;
    let mut partial = sent(&server, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let mut idle = sent(&server, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let started = Instant::now();
    let partial_answer =
        closed_within(&mut partial, Duration::from_secs(10)).expect("the partial head was closed");
    assert!(partial_answer.is_empty(), "{partial_answer}");
    let idle_answer =
        closed_within(&mut idle, Duration::from_secs(10)).expect("the idle connection was closed");
    assert!(idle_answer.starts_with("HTTP/1.1 200"), "answered, then closed: {idle_answer}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_nobody_reads_is_cut_off_after_the_write_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), |command| {
        command.env("REGSERVE_WRITE_TIMEOUT", "1s").env("REGSERVE_MAX_STREAMS", "1");
    })
    .await;
    server.upload_ok(crate::helpers::linear_csv(2_000_000)).await;
    let download = "GET /v1/dataset.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut stream = sent(&server, download);
    socket2_receive_buffer(&stream, 4096);
    // Once its answer has begun, the download holds the only stream slot, until the write
    // timeout cuts it off: the client reads no more than this.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let refused = server.get("/v1/dataset.csv").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(refused);
    let started = Instant::now();
    loop {
        let response = server.get("/v1/dataset.csv").await;
        if response.status() == StatusCode::OK {
            assert_eq!(
                response.bytes().await.unwrap().len(),
                std::fs::metadata(data.path().join("dataset.csv")).unwrap().len() as usize
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the unread download still holds its slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(500), "cut off before the write timeout");
    drop(stream);
}

/// Shrinks a socket's receive buffer, so that a client that does not read fills it at once.
fn socket2_receive_buffer(stream: &TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `bytes` for the size of an int.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_file_limit_new_clients_are_still_served() {
    raise_open_file_limit();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and only reads its struct.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    })
    .await;
    server.train(json!({ "solver": "least-squares" })).await;
    // More idle and half-open connections than the server has file descriptors for.
    let held: Vec<TcpStream> = (0..1_500)
        .map(|i| match i % 2 {
            0 => TcpStream::connect(addr(&server)).unwrap(),
            _ => sent(&server, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
        })
        .collect();
    for _ in 0..20 {
        let took = a_new_client_is_served(&server).await;
        assert!(took < Duration::from_secs(2), "a new client waited {took:?}");
    }
    assert!(!server.log().contains("Too many open files"), "{}", server.log());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_hostile_connections_leave_predictions_and_health_answered() {
    raise_open_file_limit();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    server.upload_ok(crate::helpers::linear_csv(100_000)).await;
    server.train(json!({ "solver": "least-squares" })).await;
    // A training that outlasts the test, for event streams to follow.
    let job = server.start_training(json!({ "epochs": 1_000_000, "seed": 1 })).await;
    let big_answer = format!("{{\"x_predict\": [{}]}}", vec!["1.5"; 200_000].join(","));
    let kinds = [
        post_head("/train", "application/json", 1000),
        post_head("/predict", "application/json", 1000),
        post_head("/upload", "multipart/form-data; boundary=x", 100_000),
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_owned(),
        "GET /v1/dataset.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned(),
        format!("GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        format!("{}{big_answer}", post_head("/predict", "application/json", big_answer.len())),
        String::new(),
    ];
    let held: Vec<TcpStream> = (0..2_000)
        .map(|i| {
            let stream = sent(&server, &kinds[i % kinds.len()]);
            socket2_receive_buffer(&stream, 4096);
            stream
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        slowest = slowest.max(a_new_client_is_served(&server).await);
    }
    assert!(slowest < Duration::from_secs(2), "a new client waited {slowest:?}");
    assert!(!server.log().contains("Too many open files"), "{}", server.log());
    drop(held);
    let response = server.client.delete(server.url(&format!("/v1/jobs/{job}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_within_the_shutdown_timeout_whatever_connections_are_held() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(data.path(), |command| {
        command.env("REGSERVE_SHUTDOWN_TIMEOUT", "1s");
    })
    .await;
    server.train(json!({ "solver": "least-squares" })).await;
    server.upload_ok(crate::helpers::linear_csv(1_000_000)).await;
    let partial = sent(&server, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let unread = sent(&server, "GET /v1/dataset.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    socket2_receive_buffer(&unread, 4096);
    let mut upload = sent(&server, &post_head("/upload", "multipart/form-data; boundary=x", 100_000));
    upload
        .write_all(b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nx,y\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.send_sigterm();
    let status = server.exit_status(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(4), "the process took {took:?} to end after SIGTERM");
    drop((partial, unread, upload));
}
