//! A SeaweedFS server of a test's own (`weed mini`: master, volume, filer and S3 in one process)
//! on free loopback ports, with a bucket, that the test can stop and start again on the same
//! ports and data.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regserve::storage::object::S3Store;
use regserve::storage::{Key, Storage};
use tempfile::TempDir;

pub const BUCKET: &str = "regserve-fleet";
pub const ACCESS_KEY: &str = "regserve-fleet";
pub const SECRET_KEY: &str = "regserve-fleet-secret";

pub struct Weed {
    binary: PathBuf,
    ports: Vec<u16>,
    dir: TempDir,
    child: Option<Child>,
}

impl Weed {
    pub async fn start(binary: PathBuf) -> Self {
        let ports = (0..10).map(|_| crate::helpers::free_port()).collect();
        let mut weed = Self { binary, ports, dir: tempfile::tempdir().unwrap(), child: None };
        weed.resume().await;
        weed
    }

    /// The S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// The variables that point a client at this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    /// Stops the server (SIGKILL: a store that vanishes at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on its ports and data, and waits until its S3 API answers.
    pub async fn resume(&mut self) {
        let p = &self.ports;
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weed.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"])
            .args([format!("-master.port={}", p[0]), format!("-master.port.grpc={}", p[1])])
            .args([format!("-volume.port={}", p[2]), format!("-volume.port.grpc={}", p[3])])
            .args([format!("-filer.port={}", p[4]), format!("-filer.port.grpc={}", p[5])])
            .args([format!("-s3.port={}", p[6]), format!("-s3.port.grpc={}", p[7])])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false"])
            .args([format!("-admin.port={}", p[8]), format!("-admin.port.grpc={}", p[9])])
            .arg(format!("-bucket={BUCKET}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        // The bucket is made a moment after the S3 API first answers.
        while !self.bucket_answers().await {
            let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "SeaweedFS did not answer within 60 s:\n{log}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Weed {
    /// Whether a listing of the bucket succeeds.
    async fn bucket_answers(&self) -> bool {
        let builder = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY);
        let Ok(store) = S3Store::from_builder(&format!("s3://{BUCKET}/probe"), builder) else { return false };
        store.list(&Key::fixed("models")).await.is_ok()
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
