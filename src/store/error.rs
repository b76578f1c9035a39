//! What can go wrong with the store, worded so that the caller can log it
//! as is and carry on.

use std::path::PathBuf;

/// An error from the store.
///
/// Every variant names the database, because a daemon may run with more
/// than one (a local file and, later, a shared backend) and the log line is
/// all an administrator sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The disk is full, or the database reached its size limit. Nothing of
    /// the failed operation was written; the store stays usable.
    #[error(
        "database {path} is full (disk full or size limit reached), change not saved: {source}"
    )]
    Full {
        /// The database file.
        path: PathBuf,
        /// SQLite's own error.
        source: rusqlite::Error,
    },
    /// The database file is damaged. At open this is handled by moving the
    /// file aside; afterwards it is reported here.
    #[error("database {path} is corrupt: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's own error, or the first complaint of its integrity check.
        source: rusqlite::Error,
    },
    /// The file is a valid SQLite database of another program (fail2ban's
    /// own, for instance); it is left untouched.
    #[error("database {path} is not a fail3ban database (it holds tables of another program); not touching it")]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer fail3ban whose schema this one
    /// does not know; it is left untouched rather than downgraded.
    #[error("database {path} has schema version {found}, newer than the {supported} this fail3ban knows")]
    FutureVersion {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this build can migrate to.
        supported: u32,
    },
    /// A corrupt database could not be moved out of the way.
    #[error("cannot move corrupt database {path} aside to {to}: {source}")]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// Why the rename failed.
        source: std::io::Error,
    },
    /// The database file could not be created.
    #[error("cannot create database {path}: {source}")]
    Create {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's own error.
        source: rusqlite::Error,
    },
}

impl Error {
    /// Sorts a SQLite error into the variants a caller may want to act on.
    pub(crate) fn from_sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::Full { path, source },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                Error::Corrupt { path, source }
            }
            _ => Error::Sqlite { path, source },
        }
    }

    /// True when the write failed for lack of space: the caller may log it
    /// and go on, the ban itself still being in force in memory.
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Full { .. })
    }

    /// True when the database is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}
