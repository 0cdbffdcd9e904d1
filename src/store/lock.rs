//! One writing mailfeed per database: an exclusive lock (flock) on a file
//! beside it, `<database>.lock`, held for as long as `run` or `sync` runs.
//! Two processes syncing into one database by mistake would both act on the
//! server and race each other's cursors; the second now refuses at once.
//! Read-only commands (`status`, `search`, `export`, `tail`) take no lock.
//! The kernel drops the lock when the process ends, however it ends, so a
//! crash leaves nothing to clean up (no pidfile).

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held while this process writes the database; dropping it unlocks.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// Takes the lock without waiting, or says who holds it.
    pub fn acquire(database: &Path) -> Result<DatabaseLock, StoreError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
                path: path.clone(),
                source,
            })?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|source| StoreError::Create {
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(DatabaseLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                database: database.to_owned(),
                lock: path,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Create { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("mail.db");
        let first = DatabaseLock::acquire(&db).expect("first");
        let err = DatabaseLock::acquire(&db).expect_err("second must be refused");
        let text = err.to_string();
        assert!(
            text.contains("mail.db") && text.contains("another mailfeed"),
            "{text}"
        );
        drop(first);
        DatabaseLock::acquire(&db).expect("free again");
    }
}
