//! The S3 backend against a real S3-compatible server: the conformance suite, on the bucket URL
//! that `REGSERVE_TEST_S3` names (`s3://BUCKET[/PREFIX]`), with the server and credentials
//! given by the standard `AWS_*` variables. scripts/test.sh starts SeaweedFS and sets them.
//!
//! Without `REGSERVE_TEST_S3` the test is skipped with a note, except under CI (`CI` set),
//! where a backend left untested is a failure.

#![cfg(feature = "s3")]

use regserve::storage::conformance;
use regserve::storage::object::S3Store;

fn test_bucket() -> Option<String> {
    let url = std::env::var("REGSERVE_TEST_S3").ok().filter(|url| !url.is_empty());
    let under_ci = std::env::var_os("CI").is_some_and(|ci| !ci.is_empty());
    if url.is_none() && under_ci {
        panic!("REGSERVE_TEST_S3 is not set under CI: scripts/test.sh starts an S3 server and sets it");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_backend_passes_the_conformance_suite() {
    let Some(url) = test_bucket() else {
        eprintln!(
            "note: REGSERVE_TEST_S3 is not set (e.g. s3://regserve-test): the S3 backend is not tested"
        );
        return;
    };
    let store = S3Store::from_url(&url).unwrap_or_else(|e| panic!("opening {url}: {e}"));
    conformance::check(&store).await;
}
