//! nginx in front of a cluster, configured as the README's "Running a cluster" shows: the state
//! changes to the trainer, everything else spread over the predictors.

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
        let config = format!(
            r#"daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream regserve_trainer    {{ server 127.0.0.1:{trainer}; }}
    upstream regserve_predictors {{ {servers} keepalive 32; }}
    map $request_method$uri $regserve_pool {{
        ~^POST/upload$                    regserve_trainer;
        ~^POST/train$                     regserve_trainer;
        ~^POST/v1/models/[0-9]+/activate$ regserve_trainer;
        ~^DELETE/v1/jobs/                 regserve_trainer;
        default                           regserve_predictors;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1536m;
        location / {{
            proxy_pass http://$regserve_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#,
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
