//! The store's errors: opening and writing ([`StoreError`]) and answering ([`QueryError`]).

use std::path::PathBuf;

pub use crate::codec::CodecError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use database directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {why}")]
    Open { path: PathBuf, why: String },
    /// A link could aim the daemon (root) at any file, and keep that file's owner and mode.
    #[error(
        "database {path} is a symbolic link: give the path of the file itself (ebpfstatd does \
         not follow a link to its database)"
    )]
    Link { path: PathBuf },
    /// Another program's SQLite file: our tables are not added to it.
    #[error(
        "database {path} is not an ebpfstat history database ({why}): ebpfstatd leaves it alone; \
         give another path"
    )]
    Foreign { path: PathBuf, why: String },
    #[error("cannot move the damaged database {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the size of {path}: {source}")]
    Size {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk holding the database is full ({0})")]
    DiskFull(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("a stored value is out of range: {0}")]
    OutOfRange(String),
    #[error(
        "the byte cap ({cap} bytes) is too small: {used} bytes are in use and only data not yet \
         rolled up is left"
    )]
    CapTooSmall { cap: u64, used: u64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            Self::DiskFull(e)
        } else {
            Self::Sqlite(e)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no such program: {0}")]
    NoSuchProgram(String),
    #[error("no map {0} in the history")]
    NoSuchMap(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}
