//! The data directory: where the active dataset lives, and how a new one replaces it.
//!
//! A replacement is written to a temporary file in the same directory, fsynced, renamed over
//! the active file and the directory fsynced, so a crash at any moment leaves either the old
//! or the new dataset whole. Temporary files left by a crash are removed when the directory is
//! opened. Trained model versions live in `models/` (see [`crate::versions`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{DataError, Dataset, parse_csv};

const DATASET_FILE: &str = "dataset.csv";
const TEMP_PREFIX: &str = ".tmp-";
const MODELS_DIR: &str = "models";

/// Handle on the data directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory if needed and removes temporary files a crash may have left.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(MODELS_DIR))?;
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                // A leftover that cannot go (a read-only disk) must not keep the service down.
                if let Err(error) = std::fs::remove_file(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), %error, "could not remove a leftover temporary file");
                }
            }
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dataset_path(&self) -> PathBuf {
        self.root.join(DATASET_FILE)
    }

    /// A new temporary file in the data directory, removed on drop unless installed.
    pub fn temp_file(&self) -> Result<NamedTempFile, DataError> {
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.root)
            .map_err(DataError::storage("create a temporary file in the data directory"))
    }

    /// Makes a fully written temporary file the active dataset, durably and atomically.
    pub fn install_dataset(&self, file: NamedTempFile) -> Result<(), DataError> {
        self.install(file, &self.dataset_path())
    }

    /// Directory of the stored model versions.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join(MODELS_DIR)
    }

    /// Moves a fully written temporary file to `destination`: fsync the file, rename it (atomic
    /// within one file system), fsync the directory, so a crash leaves the old or the new file.
    pub fn install(&self, file: NamedTempFile, destination: &Path) -> Result<(), DataError> {
        Self::rename_into_place(file, destination)?;
        let directory = destination.parent().unwrap_or(&self.root);
        File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(DataError::storage("flush the data directory"))
    }

    /// Writes `contents` to `destination` atomically (see [`Self::install`]).
    pub fn write_atomically(&self, destination: &Path, contents: &[u8]) -> Result<(), DataError> {
        self.install(self.written_temp_file(contents)?, destination)
    }

    /// Like [`Self::write_atomically`], but leaves the new directory entry to be flushed by the
    /// next `write_atomically` into the same directory (a directory fsync flushes every entry).
    /// For a file nothing refers to until that later write, such as a model version before the
    /// active pointer names it: it saves one fsync per stored model.
    pub fn write_atomically_unflushed(&self, destination: &Path, contents: &[u8]) -> Result<(), DataError> {
        Self::rename_into_place(self.written_temp_file(contents)?, destination)
    }

    fn written_temp_file(&self, contents: &[u8]) -> Result<NamedTempFile, DataError> {
        let mut file = self.temp_file()?;
        file.write_all(contents).map_err(DataError::storage("write a file"))?;
        Ok(file)
    }

    fn rename_into_place(file: NamedTempFile, destination: &Path) -> Result<(), DataError> {
        file.as_file().sync_all().map_err(DataError::storage("flush a file to disk"))?;
        file.persist(destination)
            .map(drop)
            .map_err(|error| DataError::Storage { action: "move a file into place", source: error.error })
    }

    /// The stored dataset, if one was ever uploaded.
    pub fn load_dataset(&self) -> Result<Option<Dataset>, DataError> {
        match File::open(self.dataset_path()) {
            Ok(file) => parse_csv(file).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataError::Storage { action: "open the stored dataset", source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_atomically_and_cleans_stray_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(dir.path()).unwrap();
        assert!(store.load_dataset().unwrap().is_none());

        let mut file = store.temp_file().unwrap();
        file.write_all(b"a,b\n1,2\n3,4\n").unwrap();
        store.install_dataset(file).unwrap();
        assert_eq!(store.load_dataset().unwrap().unwrap().rows(), 2);

        let stray = store.temp_file().unwrap().keep().unwrap().1;
        assert!(stray.exists());
        DataDir::open(dir.path()).unwrap();
        assert!(!stray.exists(), "a stray temporary file survived reopening");
        assert!(store.dataset_path().exists());
    }
}
