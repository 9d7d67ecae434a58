//! Where regserve keeps what must outlive the process: the dataset, the model versions, the
//! active-model pointer, node heartbeats, appended data. One narrow interface, [`Storage`], with
//! three backends: a local directory ([`local`]: temporary file, fsync, rename, directory fsync;
//! the default), any S3-compatible object store ([`object`], behind the `s3` feature), and memory
//! ([`memory`], for tests). [`conformance`] is the one suite of checks every backend passes.
//!
//! The interface promises what the services above it rely on: a put stores the whole object or
//! nothing; `PutMode::Create` never replaces an object and `PutMode::Update` replaces only the
//! version it names, so that two processes can never silently overwrite each other; a read can be
//! conditional on the version last seen, so that following an object costs one small request.
//! Nothing above this module knows a file path or a bucket.

pub mod conformance;
pub mod health;
pub mod local;
pub mod memory;
#[cfg(feature = "s3")]
pub mod object;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tempfile::NamedTempFile;

/// The future of a storage operation.
pub type Io<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where an object is kept: `/`-separated components of letters, digits, `.`, `_` and `-`, none
/// empty, none `.` or `..` (so a key never escapes the store's root, whatever the backend).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Self, String> {
        let key = key.into();
        let valid_component = |component: &str| {
            !component.is_empty()
                && component != "."
                && component != ".."
                && component.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        match key.split('/').all(valid_component) {
            true => Ok(Self(key)),
            false => {
                Err(format!("{key:?} is not a storage key (components of letters, digits, `.`, `_`, `-`)"))
            }
        }
    }

    /// A key known to be valid at compile time (panics otherwise).
    pub fn fixed(key: &'static str) -> Self {
        Self::new(key).expect("a fixed storage key is valid")
    }

    /// This key followed by `/name`.
    pub fn join(&self, name: &str) -> Result<Self, String> {
        Self::new(format!("{}/{name}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a stored object, as its backend identifies it (an S3 ETag, a digest of the
/// contents, a counter). Opaque: only compared for equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(pub String);

/// A stored object and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Bytes,
    pub tag: Tag,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Found(Object),
    /// The object still has the version the read named.
    NotModified,
    Missing,
}

/// How a put may treat an object already at its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Store only if nothing is there ([`StoreError::AlreadyExists`] otherwise).
    Create,
    /// Replace only the version `Tag` ([`StoreError::Conflict`] if another version, or none, is
    /// there): a compare-and-swap.
    Update(Tag),
}

/// One object found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: Key,
    pub size: u64,
    /// When the store last wrote it, by the store's clock.
    pub modified: SystemTime,
}

/// Why a storage operation did not happen. Nothing stored changes when one fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{key} already exists in the store {store}")]
    AlreadyExists { store: String, key: Key },
    #[error("{key} in the store {store} changed since it was read (another process wrote it)")]
    Conflict { store: String, key: Key },
    #[error("the store {store} is full: {reason}")]
    Full { store: String, reason: String },
    #[error("the store {store} could not {action} {key}: {reason}")]
    Unavailable { store: String, action: &'static str, key: String, reason: String },
}

impl StoreError {
    /// What a failed file operation of the store `store` means: the store is full, or it cannot
    /// be used for now.
    pub fn from_io(store: &str, action: &'static str, key: &str, error: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                Self::Full { store: store.to_owned(), reason: format!("could not {action} {key}: {error}") }
            }
            _ => Self::Unavailable {
                store: store.to_owned(),
                action,
                key: key.to_owned(),
                reason: error.to_string(),
            },
        }
    }
}

/// A place to keep objects. Every method is one operation on the store; none holds a lock of the
/// caller's across it.
pub trait Storage: Send + Sync + 'static {
    /// Names the store in messages and logs: a directory, `s3://bucket/prefix`, `memory://`.
    fn name(&self) -> &str;

    /// The object at `key`; [`Fetched::NotModified`] when `unless` names its current version,
    /// [`Fetched::Missing`] when there is none.
    fn get<'a>(&'a self, key: &'a Key, unless: Option<&'a Tag>) -> Io<'a, Fetched>;

    /// Stores `bytes` at `key`, whole or not at all, as `mode` allows; returns the new version.
    fn put<'a>(&'a self, key: &'a Key, bytes: Bytes, mode: PutMode) -> Io<'a, Tag>;

    /// A file to write a large object into before [`Storage::put_file`] stores it: on the local
    /// store, in its own directory, so that storing it is a rename.
    fn staging_file(&self) -> Result<NamedTempFile, StoreError>;

    /// Stores a fully written staging file at `key`, replacing any object there, whole or not at
    /// all.
    fn put_file<'a>(&'a self, key: &'a Key, file: NamedTempFile) -> Io<'a, Tag>;

    /// The object at `key` as a file to read (the local store's own file, or a downloaded
    /// copy); `None` when there is none.
    fn get_file<'a>(&'a self, key: &'a Key) -> Io<'a, Option<std::fs::File>>;

    /// Removes the object at `key` (nothing if there is none).
    fn delete<'a>(&'a self, key: &'a Key) -> Io<'a, ()>;

    /// The objects whose keys start with `prefix/`, ordered by key. A listing is the one
    /// expensive read of an object store: nothing that runs often should need one.
    fn list<'a>(&'a self, prefix: &'a Key) -> Io<'a, Vec<Listed>>;
}

/// Which store to use (`--store`): `PATH` or `file://PATH` for a local directory,
/// `s3://BUCKET[/PREFIX]` for an S3-compatible object store (configured by the standard `AWS_*`
/// variables), `memory://` for one that lives only as long as the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(String),
    Memory,
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "memory://" {
            return Ok(Self::Memory);
        }
        if text.starts_with("s3://") {
            return match cfg!(feature = "s3") {
                true => Ok(Self::S3(text.to_owned())),
                false => Err(format!(
                    "{text}: this build has no S3 support (it was built without the `s3` feature)"
                )),
            };
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        let other_scheme = text.contains("://") && !text.starts_with("file://");
        match path.is_empty() || other_scheme {
            true => Err(format!(
                "{text:?} is not a store: use a directory (or file://DIR), s3://BUCKET[/PREFIX] or memory://"
            )),
            false => Ok(Self::Local(PathBuf::from(path))),
        }
    }

    /// Opens the store: creates a local directory if missing (and clears a crash's staging
    /// files); an object store is only configured here, and first asked by the first request.
    pub fn open(&self) -> Result<Arc<dyn Storage>, StoreError> {
        Ok(match self {
            Self::Local(root) => Arc::new(local::LocalStore::open(root)?),
            #[cfg(feature = "s3")]
            Self::S3(url) => Arc::new(object::S3Store::from_url(url)?),
            #[cfg(not(feature = "s3"))]
            Self::S3(url) => {
                unreachable!("{url}: an S3 location is refused when parsed in a build without S3")
            }
            Self::Memory => Arc::new(memory::MemoryStore::new()),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(root) => write!(f, "{}", root.display()),
            Self::S3(url) => f.write_str(url),
            Self::Memory => f.write_str("memory://"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_from_paths_and_urls() {
        assert_eq!(Location::parse("/var/lib/regserve"), Ok(Location::Local("/var/lib/regserve".into())));
        assert_eq!(Location::parse("file:///srv/data"), Ok(Location::Local("/srv/data".into())));
        assert_eq!(Location::parse("memory://"), Ok(Location::Memory));
        #[cfg(feature = "s3")]
        assert_eq!(Location::parse("s3://bucket/prefix"), Ok(Location::S3("s3://bucket/prefix".into())));
        for bad in ["", "http://example.com/bucket", "file://"] {
            let error = Location::parse(bad).unwrap_err();
            assert!(error.contains("is not a store"), "{bad}: {error}");
        }
    }
}
