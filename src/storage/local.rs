//! The local backend: objects are files below one directory, the object at key `a/b` being the
//! file `ROOT/a/b`. This file owns how a put is made atomic and durable on a POSIX file system,
//! and how processes sharing the directory keep out of each other's way.
//!
//! - Every put first writes a temporary file in `ROOT/staging/` and fsyncs it, then moves it to
//!   its key in one step (a rename, or a hard link for `Create`), then fsyncs the key's
//!   directory: a crash at any moment leaves the old object or the new one, whole, and a put is
//!   durable when it returns.
//! - Every change (put or delete) holds an exclusive `flock` on `ROOT/.lock`, so that the check
//!   and the rename of an `Update` are one step for every process on the directory, not only for
//!   this one.
//! - Each staging file is `flock`ed by the process using it; [`LocalStore::open`] removes the
//!   unlocked ones, which a crash left behind, and keeps those another live process still writes.
//! - A version is the hex SHA-256 of the contents, so it needs no metadata beside the file.
//!
//! The file operations block, so each runs on `tokio::task::spawn_blocking`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::{Fetched, Io, Key, Listed, Object, PutMode, Storage, StoreError, Tag};

/// The directory of staging files, below the root.
const STAGING: &str = "staging";
/// The file whose `flock` serialises the changes of every process on the directory.
const LOCK: &str = ".lock";

/// A store on a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: Arc<Dir>,
}

/// The paths of the store: shared with the blocking tasks, which must own what they use.
#[derive(Debug)]
struct Dir {
    root: PathBuf,
    staging: PathBuf,
    lock: PathBuf,
    name: String,
}

impl LocalStore {
    /// Opens the store on `root`, creating the directory if missing, and removes the staging
    /// files left by a process that crashed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = Dir::new(root.into());
        fs::create_dir_all(&dir.staging).map_err(|e| dir.io_error("create", STAGING, e))?;
        // Left alone when it exists, so that a store on a read-only disk still opens for reading.
        if !dir.lock.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&dir.lock)
                .map_err(|e| dir.io_error("create", LOCK, e))?;
        }
        dir.remove_leftovers();
        Ok(Self { dir: Arc::new(dir) })
    }

    /// The store on `root` as it is, for looking at: nothing is created or removed.
    pub fn inspect(root: impl Into<PathBuf>) -> Self {
        Self { dir: Arc::new(Dir::new(root.into())) }
    }

    /// The names and sizes of the staging files that no live process is writing: what a crash
    /// left behind (for tests: after every operation has returned, there should be none).
    pub fn staging_leftovers(&self) -> Vec<(String, u64)> {
        let mut files = self.staging_files();
        files.retain(|(name, _)| is_unlocked(&self.dir.staging.join(name)));
        files
    }

    /// The names and sizes of the files now in the staging directory, those being written
    /// included.
    pub fn staging_files(&self) -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = match fs::read_dir(&self.dir.staging) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| {
                    let size = entry.metadata().map_or(0, |meta| meta.len());
                    (entry.file_name().to_string_lossy().into_owned(), size)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// Runs `work` on a blocking thread.
    fn blocking<'a, T, F>(&'a self, action: &'static str, key: &'a Key, work: F) -> Io<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> Result<T, StoreError> + Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || work(&dir)).await {
                Ok(result) => result,
                Err(failed) => {
                    Err(self.dir.unavailable(action, key.as_str(), format!("its task failed: {failed}")))
                }
            }
        })
    }
}

impl Storage for LocalStore {
    fn name(&self) -> &str {
        &self.dir.name
    }

    fn get<'a>(&'a self, key: &'a Key, unless: Option<&'a Tag>) -> Io<'a, Fetched> {
        let (owned, unless) = (key.clone(), unless.cloned());
        self.blocking("read", key, move |dir| dir.get(&owned, unless.as_ref()))
    }

    fn put<'a>(&'a self, key: &'a Key, bytes: Bytes, mode: PutMode) -> Io<'a, Tag> {
        let owned = key.clone();
        self.blocking("write", key, move |dir| dir.put(&owned, &bytes, mode))
    }

    fn staging_file(&self) -> Result<NamedTempFile, StoreError> {
        self.dir.staged().map_err(|e| self.dir.io_error("create", "a staging file", e))
    }

    fn put_file<'a>(&'a self, key: &'a Key, file: NamedTempFile) -> Io<'a, Tag> {
        let owned = key.clone();
        self.blocking("write", key, move |dir| dir.put_file(&owned, file))
    }

    fn get_file<'a>(&'a self, key: &'a Key) -> Io<'a, Option<File>> {
        let owned = key.clone();
        self.blocking("read", key, move |dir| dir.get_file(&owned))
    }

    fn delete<'a>(&'a self, key: &'a Key) -> Io<'a, ()> {
        let owned = key.clone();
        self.blocking("delete", key, move |dir| dir.delete(&owned))
    }

    fn list<'a>(&'a self, prefix: &'a Key) -> Io<'a, Vec<Listed>> {
        let owned = prefix.clone();
        self.blocking("list", prefix, move |dir| dir.list(&owned))
    }
}

impl Dir {
    fn new(root: PathBuf) -> Self {
        Self { staging: root.join(STAGING), lock: root.join(LOCK), name: root.display().to_string(), root }
    }

    fn get(&self, key: &Key, unless: Option<&Tag>) -> Result<Fetched, StoreError> {
        let path = self.path("read", key)?;
        let Some(bytes) = read_object(&path).map_err(|e| self.io_error("read", key.as_str(), e))? else {
            return Ok(Fetched::Missing);
        };
        let tag = tag_of(&bytes);
        match unless == Some(&tag) {
            true => Ok(Fetched::NotModified),
            false => Ok(Fetched::Found(Object { bytes, tag })),
        }
    }

    fn put(&self, key: &Key, bytes: &[u8], mode: PutMode) -> Result<Tag, StoreError> {
        let path = self.path("write", key)?;
        let fail = |e| self.io_error("write", key.as_str(), e);
        let mut staged = self.staged().map_err(fail)?;
        staged.write_all(bytes).map_err(fail)?;
        staged.as_file().sync_all().map_err(fail)?;
        self.create_parents(&path).map_err(fail)?;

        let _lock = self.lock().map_err(fail)?;
        match mode {
            PutMode::Overwrite => staged.persist(&path).map(drop).map_err(|e| fail(e.error))?,
            // A hard link, unlike a rename, fails if the key exists, and does so atomically.
            PutMode::Create => match fs::hard_link(staged.path(), &path) {
                Ok(()) => drop(staged),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(StoreError::AlreadyExists { store: self.name.clone(), key: key.clone() });
                }
                Err(e) => return Err(fail(e)),
            },
            PutMode::Update(expected) => {
                let current = read_object(&path).map_err(fail)?;
                if current.map(|bytes| tag_of(&bytes)) != Some(expected) {
                    return Err(StoreError::Conflict { store: self.name.clone(), key: key.clone() });
                }
                staged.persist(&path).map(drop).map_err(|e| fail(e.error))?;
            }
        }
        // Still under the lock, so that no process acts on a change a crash could undo.
        sync_parent(&path).map_err(fail)?;
        Ok(tag_of(bytes))
    }

    fn put_file(&self, key: &Key, file: NamedTempFile) -> Result<Tag, StoreError> {
        let path = self.path("write", key)?;
        let fail = |e| self.io_error("write", key.as_str(), e);
        // A file staged elsewhere (another store's) may be on another file system: copy it here
        // first, so that storing it is still a rename.
        let file = match file.path().parent() == Some(self.staging.as_path()) {
            true => file,
            false => self.restage(&file).map_err(fail)?,
        };
        file.as_file().sync_all().map_err(fail)?;
        let tag = tag_of_file(file.path()).map_err(fail)?;
        self.create_parents(&path).map_err(fail)?;

        let _lock = self.lock().map_err(fail)?;
        file.persist(&path).map_err(|e| fail(e.error))?;
        sync_parent(&path).map_err(fail)?;
        Ok(tag)
    }

    fn get_file(&self, key: &Key) -> Result<Option<File>, StoreError> {
        let path = self.path("read", key)?;
        let fail = |e| self.io_error("read", key.as_str(), e);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        // Opening a directory succeeds; a key that is only a directory holds no object.
        match file.metadata().map_err(fail)?.is_dir() {
            true => Ok(None),
            false => Ok(Some(file)),
        }
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path("delete", key)?;
        let fail = |e| self.io_error("delete", key.as_str(), e);
        let _lock = self.lock().map_err(fail)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_parent(&path).map_err(fail),
            Err(e) if is_absent(&e) || e.kind() == ErrorKind::IsADirectory => Ok(()),
            Err(e) => Err(fail(e)),
        }
    }

    fn list(&self, prefix: &Key) -> Result<Vec<Listed>, StoreError> {
        // `path` refuses the prefix `staging`, so the walk never enters the staging directory.
        let dir = self.path("list", prefix)?;
        let mut found = Vec::new();
        self.walk(&dir, &mut found).map_err(|e| self.io_error("list", prefix.as_str(), e))?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// Adds the files below `dir` to `found`. Entries that vanish meanwhile (a concurrent
    /// delete) are skipped, not errors.
    fn walk(&self, dir: &Path, found: &mut Vec<Listed>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e),
            };
            let path = entry.path();
            if metadata.is_dir() {
                self.walk(&path, found)?;
            } else if let (true, Some(key)) = (metadata.is_file(), self.key_of(&path)) {
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push(Listed { key, size: metadata.len(), modified });
            }
        }
        Ok(())
    }

    /// The key of a file below the root; `None` for a name no key can have (a file put there
    /// by hand), which is then not an object of the store.
    fn key_of(&self, path: &Path) -> Option<Key> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
        Key::new(parts?.join("/")).ok()
    }

    /// The file of `key`. Key already keeps every path below the root; the names the store uses
    /// itself are refused, so that no object can replace the lock file or sit among staging files.
    fn path(&self, action: &'static str, key: &Key) -> Result<PathBuf, StoreError> {
        let first = key.as_str().split('/').next().unwrap_or_default();
        if first == STAGING || first == LOCK {
            return Err(self.unavailable(
                action,
                key.as_str(),
                format!("{first} is reserved by the local store"),
            ));
        }
        Ok(self.root.join(key.as_str()))
    }

    /// A new staging file, locked so that another process opening the store leaves it alone.
    fn staged(&self) -> io::Result<NamedTempFile> {
        let file = tempfile::Builder::new().prefix("put-").tempfile_in(&self.staging)?;
        file.as_file().lock()?;
        Ok(file)
    }

    /// A copy of `file` in this store's staging directory.
    fn restage(&self, file: &NamedTempFile) -> io::Result<NamedTempFile> {
        let mut copy = self.staged()?;
        io::copy(&mut File::open(file.path())?, copy.as_file_mut())?;
        Ok(copy)
    }

    /// Holds the store's lock until the returned file is dropped.
    fn lock(&self) -> io::Result<File> {
        let file = OpenOptions::new().write(true).create(true).truncate(false).open(&self.lock)?;
        file.lock()?;
        Ok(file)
    }

    /// Creates the missing directories between the root and `path`, fsyncing the directory
    /// each was created in, so that the path of a durable object is durable too.
    fn create_parents(&self, path: &Path) -> io::Result<()> {
        let Some(parent) = path.parent() else { return Ok(()) };
        if parent.is_dir() {
            return Ok(());
        }
        let relative = parent.strip_prefix(&self.root).map_err(io::Error::other)?;
        let mut dir = self.root.clone();
        for component in relative.components() {
            let Component::Normal(name) = component else { continue };
            let next = dir.join(name);
            match fs::create_dir(&next) {
                Ok(()) => sync_dir(&dir)?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            dir = next;
        }
        Ok(())
    }

    /// Removes the staging files no live process holds (left by a crash). One that cannot be
    /// removed is only logged: it takes some space but does no harm.
    fn remove_leftovers(&self) {
        let entries = match fs::read_dir(&self.staging) {
            Ok(entries) => entries,
            Err(e) => {
                return tracing::warn!(dir = %self.staging.display(), "cannot list the staging files: {e}");
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Err(e) = remove_if_unlocked(&path) {
                tracing::warn!(file = %path.display(), "cannot remove a leftover staging file: {e}");
            }
        }
    }

    fn unavailable(&self, action: &'static str, key: &str, reason: String) -> StoreError {
        StoreError::Unavailable { store: self.name.clone(), action, key: key.to_owned(), reason }
    }

    fn io_error(&self, action: &'static str, key: &str, error: io::Error) -> StoreError {
        StoreError::from_io(&self.name, action, key, &error)
    }
}

/// Whether `path` is a file that no live process holds the lock of.
fn is_unlocked(path: &Path) -> bool {
    File::open(path).is_ok_and(|file| file.try_lock().is_ok())
}

/// Removes `path` unless a live process holds its lock.
fn remove_if_unlocked(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    match file.try_lock() {
        Ok(()) => fs::remove_file(path),
        Err(TryLockError::WouldBlock) => Ok(()),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The contents of the object file at `path`; `None` when there is none (no file, a directory,
/// or a file where a directory of the path should be).
fn read_object(path: &Path) -> io::Result<Option<Bytes>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(Bytes::from(bytes))),
        Err(e) if is_absent(&e) || e.kind() == ErrorKind::IsADirectory => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_absent(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    path.parent().map_or(Ok(()), sync_dir)
}

/// Makes the entries of `dir` (a rename, a link, an unlink) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn tag_of(bytes: &[u8]) -> Tag {
    Tag(crate::digest::sha256_hex(bytes))
}

/// The tag of a file too large to read at once.
fn tag_of_file(path: &Path) -> io::Result<Tag> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(Tag(crate::digest::hex(&hasher.finalize()))),
            n => hasher.update(&buffer[..n]),
        }
    }
}

#[cfg(test)]
mod tests;
