//! The S3 backend: objects in a bucket of any S3-compatible object store (`s3://BUCKET/PREFIX`),
//! through the `object_store` crate. This file owns how [`Storage`]'s promises map to S3
//! requests, and how a store that cannot be reached fails fast.
//!
//! - `Create` is a PUT with `If-None-Match: *`, `Update(tag)` a PUT with `If-Match: tag` (the
//!   tag is the ETag), a conditional get a GET with `If-None-Match`: the store itself decides,
//!   so any number of processes can share a bucket. A store that ignored these headers would
//!   break the promises; the conformance suite (`tests/storage.rs`) checks that it does not.
//! - Where the store is, and the credentials, come from the standard `AWS_*` variables
//!   (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_ALLOW_HTTP`, ...).
//! - Requests time out after seconds, with few retries, so that a caller can answer 503 while
//!   the store is down rather than hang. Only `put_file` and `get_file`, which move large
//!   objects, use a second client with a longer request timeout (and the same short connect
//!   timeout). The HTTP client is [`transport`]'s.

use std::error::Error as _;
use std::fs::File;
use std::io::{Seek, Write};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    BackoffConfig, GetOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, UpdateVersion,
};
use tempfile::NamedTempFile;
use tokio::io::AsyncReadExt;

use super::{Fetched, Io, Key, Listed, Object, PutMode, Storage, StoreError, Tag};

mod transport;

/// How long a connection may take to open: a store that does not answer by then is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request for a small object may take, from start to the end of its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request of `put_file` or `get_file`, which carries up to [`PART`] bytes or a
/// whole downloaded object, may take.
const BULK_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a failed request is retried, and until when after the first attempt.
const RETRIES: usize = 2;
const RETRY_WINDOW: Duration = Duration::from_secs(4);
/// `put_file` sends a file of up to this size in one PUT, a larger one as a multipart upload
/// in parts of this size (S3's parts are 5 MiB at least, but for the last).
const PART: usize = 8 * 1024 * 1024;

/// A store on an S3 bucket, below an optional prefix.
#[derive(Debug)]
pub struct S3Store {
    /// `s3://bucket/prefix`, as named in messages.
    name: String,
    /// The prefix of every key, with its trailing `/` (empty without a prefix).
    prefix: String,
    quick: AmazonS3,
    bulk: AmazonS3,
}

impl S3Store {
    /// The store at `url` (`s3://BUCKET` or `s3://BUCKET/PREFIX`), configured by the standard
    /// `AWS_*` environment variables.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::from_builder(url, AmazonS3Builder::from_env())
    }

    /// The store at `url`, configured by `builder` (whose bucket is replaced by the URL's).
    /// Its HTTP client is replaced by one with this module's timeouts.
    pub fn from_builder(url: &str, builder: AmazonS3Builder) -> Result<Self, StoreError> {
        let (bucket, prefix) = parse_url(url)?;
        let name = match &prefix {
            Some(prefix) => format!("s3://{bucket}/{prefix}"),
            None => format!("s3://{bucket}"),
        };
        let builder = builder
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: RETRIES,
                retry_timeout: RETRY_WINDOW,
            });
        let build = |builder: AmazonS3Builder, request_timeout| {
            let connector = transport::Connector { connect_timeout: CONNECT_TIMEOUT, request_timeout };
            builder.with_http_connector(connector).build().map_err(|e| StoreError::Unavailable {
                store: name.clone(),
                action: "open",
                key: String::new(),
                reason: reason(&e),
            })
        };
        let quick = build(builder.clone(), REQUEST_TIMEOUT)?;
        let bulk = build(builder, BULK_TIMEOUT)?;
        let prefix = prefix.map(|prefix| format!("{prefix}/")).unwrap_or_default();
        Ok(Self { name, prefix, quick, bulk })
    }

    fn path(&self, key: &Key) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    /// The key of a listed object; `None` for one outside the prefix or whose name no key can
    /// have (written by something else), which is then not an object of this store.
    fn key_of(&self, path: &Path) -> Option<Key> {
        Key::new(path.as_ref().strip_prefix(&self.prefix)?).ok()
    }

    fn unavailable(&self, action: &'static str, key: &Key, error: &object_store::Error) -> StoreError {
        StoreError::Unavailable {
            store: self.name.clone(),
            action,
            key: key.to_string(),
            reason: reason(error),
        }
    }

    /// The version a put or get reported. Every S3 store sends an ETag; one that did not could
    /// not keep the promises of `Update`, so that is an error, not a guess.
    fn tag(&self, action: &'static str, key: &Key, e_tag: Option<String>) -> Result<Tag, StoreError> {
        e_tag.map(Tag).ok_or_else(|| StoreError::Unavailable {
            store: self.name.clone(),
            action,
            key: key.to_string(),
            reason: "the store sent no ETag".to_owned(),
        })
    }

    async fn fetch(&self, key: &Key, unless: Option<&Tag>) -> Result<Fetched, StoreError> {
        let options = GetOptions::new().with_if_none_match(unless.map(|tag| tag.0.clone()));
        let result = match self.quick.get_opts(&self.path(key), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(e) => return Err(self.unavailable("read", key, &e)),
        };
        let tag = self.tag("read", key, result.meta.e_tag.clone())?;
        let bytes = result.bytes().await.map_err(|e| self.unavailable("read", key, &e))?;
        Ok(Fetched::Found(Object { bytes, tag }))
    }

    async fn store(&self, key: &Key, bytes: Bytes, mode: PutMode) -> Result<Tag, StoreError> {
        let (create, update) = (mode == PutMode::Create, matches!(mode, PutMode::Update(_)));
        let mode = match mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => object_store::PutMode::Create,
            PutMode::Update(tag) => {
                object_store::PutMode::Update(UpdateVersion { e_tag: Some(tag.0), version: None })
            }
        };
        match self.quick.put_opts(&self.path(key), PutPayload::from(bytes), mode.into()).await {
            Ok(result) => self.tag("write", key, result.e_tag),
            // object_store reports a create-only PUT that found an object as AlreadyExists (412
            // or 409), and an If-Match PUT that found another version, or none, as Precondition
            // (a 409 of concurrent writers, retried, ends as AlreadyExists).
            Err(object_store::Error::AlreadyExists { .. }) if create => {
                Err(StoreError::AlreadyExists { store: self.name.clone(), key: key.clone() })
            }
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. })
                if update =>
            {
                Err(StoreError::Conflict { store: self.name.clone(), key: key.clone() })
            }
            Err(e) => Err(self.unavailable("write", key, &e)),
        }
    }

    /// Sends the file in one PUT, or as a multipart upload when it is larger than a part, so
    /// that no more than a part is ever in memory.
    async fn upload(&self, key: &Key, file: NamedTempFile) -> Result<Tag, StoreError> {
        let fail = |e: std::io::Error| StoreError::Unavailable {
            store: self.name.clone(),
            action: "write",
            key: key.to_string(),
            reason: format!("reading the staged file: {e}"),
        };
        let mut reader = tokio::fs::File::from_std(file.reopen().map_err(fail)?);
        let first = read_part(&mut reader).await.map_err(fail)?;
        if first.len() < PART {
            let put = self.bulk.put(&self.path(key), PutPayload::from(first)).await;
            let result = put.map_err(|e| self.unavailable("write", key, &e))?;
            return self.tag("write", key, result.e_tag);
        }
        let path = self.path(key);
        let mut upload =
            self.bulk.put_multipart(&path).await.map_err(|e| self.unavailable("write", key, &e))?;
        let mut part = first;
        let sent: Result<(), StoreError> = async {
            while !part.is_empty() {
                upload
                    .put_part(PutPayload::from(part))
                    .await
                    .map_err(|e| self.unavailable("write", key, &e))?;
                part = read_part(&mut reader).await.map_err(fail)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent {
            // Without an abort, the store keeps the parts sent (and bills them) indefinitely.
            if let Err(abort) = upload.abort().await {
                tracing::warn!(store = %self.name, %key, "cannot abort a failed multipart upload: {abort}");
            }
            return Err(e);
        }
        let result = upload.complete().await.map_err(|e| self.unavailable("write", key, &e))?;
        self.tag("write", key, result.e_tag)
    }

    /// Downloads the object into an unnamed temporary file, in pieces as they arrive.
    async fn download(&self, key: &Key) -> Result<Option<File>, StoreError> {
        let result = match self.bulk.get(&self.path(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.unavailable("read", key, &e)),
        };
        let local = |e: std::io::Error| StoreError::Unavailable {
            store: self.name.clone(),
            action: "read",
            key: key.to_string(),
            reason: format!("writing the downloaded copy: {e}"),
        };
        let mut file = tempfile::tempfile().map_err(local)?;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unavailable("read", key, &e))?;
            // The chunks are those of the network (kilobytes): a write of one to a fresh file
            // is too short to be worth a blocking thread.
            file.write_all(&chunk).map_err(local)?;
        }
        file.rewind().map_err(local)?;
        Ok(Some(file))
    }

    async fn remove(&self, key: &Key) -> Result<(), StoreError> {
        match self.quick.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.unavailable("delete", key, &e)),
        }
    }

    async fn listing(&self, prefix: &Key) -> Result<Vec<Listed>, StoreError> {
        // object_store lists below `prefix/`, whole components: never `models2` for `models`.
        let metas: Vec<_> = self
            .quick
            .list(Some(&self.path(prefix)))
            .try_collect()
            .await
            .map_err(|e| self.unavailable("list", prefix, &e))?;
        let mut listed: Vec<Listed> = metas
            .into_iter()
            .filter_map(|meta| {
                let key = self.key_of(&meta.location)?;
                Some(Listed { key, size: meta.size, modified: SystemTime::from(meta.last_modified) })
            })
            .collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }
}

impl Storage for S3Store {
    fn name(&self) -> &str {
        &self.name
    }

    fn get<'a>(&'a self, key: &'a Key, unless: Option<&'a Tag>) -> Io<'a, Fetched> {
        Box::pin(self.fetch(key, unless))
    }

    fn put<'a>(&'a self, key: &'a Key, bytes: Bytes, mode: PutMode) -> Io<'a, Tag> {
        Box::pin(self.store(key, bytes, mode))
    }

    fn staging_file(&self) -> Result<NamedTempFile, StoreError> {
        NamedTempFile::new().map_err(|e| StoreError::Unavailable {
            store: self.name.clone(),
            action: "create",
            key: "a staging file".to_owned(),
            reason: e.to_string(),
        })
    }

    fn put_file<'a>(&'a self, key: &'a Key, file: NamedTempFile) -> Io<'a, Tag> {
        Box::pin(self.upload(key, file))
    }

    fn get_file<'a>(&'a self, key: &'a Key) -> Io<'a, Option<File>> {
        Box::pin(self.download(key))
    }

    fn delete<'a>(&'a self, key: &'a Key) -> Io<'a, ()> {
        Box::pin(self.remove(key))
    }

    fn list<'a>(&'a self, prefix: &'a Key) -> Io<'a, Vec<Listed>> {
        Box::pin(self.listing(prefix))
    }
}

/// The bucket and the prefix of `s3://BUCKET[/PREFIX]`.
fn parse_url(url: &str) -> Result<(String, Option<Key>), StoreError> {
    let invalid = |reason: String| StoreError::Unavailable {
        store: url.to_owned(),
        action: "open",
        key: String::new(),
        reason,
    };
    let rest =
        url.strip_prefix("s3://").ok_or_else(|| invalid("the URL is not s3://BUCKET[/PREFIX]".to_owned()))?;
    let (bucket, prefix) = match rest.split_once('/') {
        Some((bucket, prefix)) => (bucket, prefix.trim_end_matches('/')),
        None => (rest, ""),
    };
    if bucket.is_empty() {
        return Err(invalid("the URL names no bucket".to_owned()));
    }
    let prefix = match prefix {
        "" => None,
        prefix => Some(Key::new(prefix).map_err(invalid)?),
    };
    Ok((bucket.to_owned(), prefix))
}

/// Up to [`PART`] bytes, fewer only at the end of the file.
async fn read_part(reader: &mut tokio::fs::File) -> std::io::Result<Bytes> {
    let mut part = Vec::with_capacity(PART);
    reader.take(PART as u64).read_to_end(&mut part).await?;
    Ok(Bytes::from(part))
}

/// The message of an error with its causes, which say what actually failed ("connection
/// refused") where the outer message only says which request did.
fn reason(error: &object_store::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.contains(&cause_message) {
            message = format!("{message}: {cause_message}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(parse_url("s3://bucket").unwrap(), ("bucket".to_owned(), None));
        assert_eq!(parse_url("s3://bucket/").unwrap(), ("bucket".to_owned(), None));
        assert_eq!(parse_url("s3://bucket/a/b").unwrap(), ("bucket".to_owned(), Some(Key::fixed("a/b"))));
        for invalid in ["bucket", "http://bucket", "s3://", "s3:///prefix", "s3://bucket/../up"] {
            assert!(parse_url(invalid).is_err(), "{invalid}");
        }
    }

    fn unreachable_store() -> S3Store {
        // A port just bound and released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let builder = AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("key")
            .with_secret_access_key("secret");
        S3Store::from_builder("s3://regserve/cluster", builder).unwrap()
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_fast_and_says_which_store() {
        let store = unreachable_store();
        assert_eq!(store.name(), "s3://regserve/cluster");
        let started = Instant::now();
        let got = store.get(&Key::fixed("models/active"), None).await;
        assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
        match got {
            Err(StoreError::Unavailable { store, action: "read", key, .. }) => {
                assert_eq!((store.as_str(), key.as_str()), ("s3://regserve/cluster", "models/active"));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let put = store.put(&Key::fixed("a"), Bytes::from_static(b"1"), PutMode::Create).await;
        assert!(matches!(put, Err(StoreError::Unavailable { action: "write", .. })), "{put:?}");
    }

    #[test]
    fn keys_live_below_the_prefix() {
        let store = unreachable_store();
        let key = Key::fixed("models/v1.json");
        assert_eq!(store.path(&key).as_ref(), "cluster/models/v1.json");
        assert_eq!(store.key_of(&store.path(&key)), Some(key));
        assert_eq!(store.key_of(&Path::from("elsewhere/models/v1.json")), None);
    }
}
