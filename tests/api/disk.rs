//! The disk under a local store, with the real binary: a full disk, a read-only or a vanished
//! data directory give clear JSON errors while the current model keeps being served. (Local
//! stores only: these are faults of a file system.)

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::faults::{server_error, start_slow_upload};
use crate::helpers::linear_csv;
use crate::process::Server;
use crate::stores::{assert_no_staging_files, model_objects, stored_dataset, wait_for_staging_file};

/// A tmpfs mounted on a fresh directory for the length of a test, unmounted on drop (also when
/// the test fails).
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `1m`), or says why it cannot and returns `None`; under CI
    /// (the `CI` variable set) not being able to is a failure.
    fn mount(size: &str) -> Option<Self> {
        if !crate::stores::is_local() {
            eprintln!("skipped: a file-system fault, and the tests run on an object store");
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return unavailable("mounting a small file system needs root");
        }
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => unavailable(&format!("mount failed: {}", String::from_utf8_lossy(&output.stderr))),
            Err(error) => unavailable(&format!("cannot run mount: {error}")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the mount's options, e.g. `ro` or `rw`.
    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount,{options} failed");
    }

    /// Fills the file system with a file `name` until it has no room left.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join(name)).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // A last byte-sized write, so no partial page is left free either.
        while file.write(&[0]).is_ok_and(|written| written == 1) {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

fn unavailable(why: &str) -> Option<Tmpfs> {
    if std::env::var_os("CI").is_some() {
        panic!("this test needs a small tmpfs, and under CI it must run: {why}");
    }
    eprintln!("skipped: {why} (set CI to make this a failure)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_and_the_current_model_keeps_being_served() {
    let Some(disk) = Tmpfs::mount("1m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    let small = linear_csv(100);
    server.upload_ok(small.clone()).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([1.0, 2.0])).await;

    // Twice the size of the whole file system.
    let big = linear_csv(150_000);
    assert!(big.len() > 2 << 20);
    let response = server.upload_alone(big).await;
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(server.json("/v1/dataset").await, dataset, "the old dataset is still served");
    assert_eq!(stored_dataset(&dir).await.unwrap(), small);
    assert_eq!(server.predict_ok(json!([1.0, 2.0])).await, probe);
    assert_no_staging_files(&dir);

    disk.fill("filler");
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("could not be stored") && error.contains("No space left on device"), "{error}");
    let response = server.post("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    // Even re-activating the active version needs room for the pointer file.
    let response =
        server.client.post(server.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    let response = server.upload_alone(small.clone()).await;
    assert_eq!(server_error(response).await.0, StatusCode::INSUFFICIENT_STORAGE);

    assert_eq!(server.json("/v1/model").await, model, "the previous model stays active");
    assert_eq!(server.json("/v1/models").await.as_array().unwrap().len(), 1);
    assert_eq!(server.predict_ok(json!([1.0, 2.0])).await, probe);
    assert_eq!(server.flag().await, 1);
    assert_eq!(server.json("/readyz").await["model_version"], 1, "still ready: it serves predictions");
    assert_no_staging_files(&dir);
    assert_eq!(model_objects(&dir).await, ["active", "v000001.json"]);

    // Room again: the server carries on without a restart.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let second = server.train(json!({ "epochs": 3, "seed": 2 })).await;
    assert_eq!(second["version"], 2);
    assert_eq!(server.json("/v1/model").await, second);
    server.upload_ok(linear_csv(120)).await;
    assert_no_staging_files(&dir);

    // A restart on the full disk serves what is stored.
    disk.fill("filler");
    server.kill().await;
    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, second);
    assert_eq!(server.json("/v1/dataset").await["rows"], 120);
    server.predict_ok(json!([1.0, 2.0])).await;
    let response = server.post("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    assert_eq!(server_error(response).await.0, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(server.json("/v1/model").await, second);
    assert_no_staging_files(&dir);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_data_directory_is_a_clear_error_and_the_current_model_keeps_being_served() {
    if !crate::stores::is_local() {
        return eprintln!("skipped: a file-system fault, and the tests run on an object store");
    }
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([3.0])).await;

    // Root ignores permission bits, so the models directory becomes a regular file instead.
    std::fs::rename(dir.join("models"), data.path().join("models-moved")).unwrap();
    std::fs::write(dir.join("models"), "not a directory").unwrap();
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("could not be stored") && error.contains("Not a directory"), "{error}");
    let response =
        server.client.post(server.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    let (_, message) = server_error(response).await;
    assert!(message.contains("model version 1 is unreadable: its file is missing"), "{message}");
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    assert_eq!(server.flag().await, 1);
    assert_no_staging_files(&dir);
    std::fs::remove_file(dir.join("models")).unwrap();
    std::fs::rename(data.path().join("models-moved"), dir.join("models")).unwrap();

    // The whole data directory replaced by a file.
    std::fs::rename(&dir, data.path().join("data-moved")).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    let names_the_store = message.contains(&format!("the store {}", dir.display()));
    assert!(names_the_store && message.contains("Not a directory"), "{message}");
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    assert_eq!(server.finished_job(id).await["state"], "failed");
    assert_eq!(server.json("/v1/model").await, model);
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(data.path().join("data-moved"), &dir).unwrap();

    // Put back, everything works again without a restart.
    server.upload_ok(linear_csv(50)).await;
    assert_eq!(server.train(json!({ "epochs": 3, "seed": 3 })).await["version"], 2);
    assert_no_staging_files(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_a_clear_error_and_the_current_model_keeps_being_served() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([3.0])).await;

    disk.remount("ro");
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    assert!(message.contains("Read-only file system"), "{message}");
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("Read-only file system"), "{job}");
    let response =
        server.client.post(server.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    let (_, message) = server_error(response).await;
    assert!(message.contains("Read-only file system"), "{message}");
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    assert_eq!(server.flag().await, 1);

    // A restart on the read-only directory serves what is stored.
    server.kill().await;
    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    assert!(message.contains("Read-only file system"), "{message}");

    disk.remount("rw");
    assert_eq!(server.train(json!({ "epochs": 3, "seed": 3 })).await["version"], 2);
    server.upload_ok(linear_csv(50)).await;
    assert_no_staging_files(&dir);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leftover_on_a_read_only_data_directory_does_not_stop_a_restart() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    // Killed in the middle of an upload, and the disk then remounted read-only (as ext4 does
    // after an I/O error with errors=remount-ro).
    let _upload = start_slow_upload(&server, 10_000, Duration::from_millis(20));
    wait_for_staging_file(&dir, 16 * 1024).await;
    server.kill().await;
    disk.remount("ro");

    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, model);
    server.predict_ok(json!([3.0])).await;
    drop(server);
}
