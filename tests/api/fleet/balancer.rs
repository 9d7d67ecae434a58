//! nginx in front of a cluster, with the site of `docs/cluster/nginx.conf`, which the README's
//! "Running a cluster" shows: the state changes to the trainer, everything else spread over the
//! predictors.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Balancer {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Balancer {
    pub async fn start(nginx: &Path, trainer: u16, predictors: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::helpers::free_port();
        let servers: String = predictors.iter().map(|port| format!("server 127.0.0.1:{port}; ")).collect();
        let site = site(&format!("127.0.0.1:{trainer}"), servers.trim_end(), &format!("127.0.0.1:{port}"));
        let config = format!(
            "daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n{site}\n}}\n",
            dir = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let balancer = Self { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while reqwest::get(balancer.url("/healthz")).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        balancer
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default();
            eprintln!("nginx's error log:\n{log}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx site of `docs/cluster/nginx.conf` for these addresses.
fn site(trainer: &str, predictors: &str, listen: &str) -> String {
    SITE.replace("@TRAINER@", trainer).replace("@PREDICTORS@", predictors).replace("@LISTEN@", listen)
}

const SITE: &str = include_str!("../../../docs/cluster/nginx.conf");

#[test]
fn the_readmes_nginx_site_is_the_one_the_tests_run() {
    let readme = include_str!("../../../README.md");
    let section =
        &readme[readme.find("An nginx site in front of them").expect("the README shows the site")..];
    let block = section.split("```nginx\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let filled = site("127.0.0.1:7000", "server 127.0.0.1:7001; server 127.0.0.1:7002;", "8080");
    let without_comments: String =
        filled.lines().filter(|line| !line.starts_with('#')).map(|line| format!("{line}\n")).collect();
    assert_eq!(block, without_comments, "README.md's nginx block and docs/cluster/nginx.conf differ");
}
