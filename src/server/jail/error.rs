//! Why a jail could not be built, started, reconfigured or could not open
//! its source.

use crate::filter::FilterError;
use crate::source::SourceError;

/// Why a jail could not be built, started or reconfigured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JailError {
    /// Its filter does not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Its counting options (bantime.increment and the like) do not hold.
    #[error(transparent)]
    Counting(#[from] crate::jail::error::Error),
    /// Its source could not be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A task building it off the runtime ended abnormally.
    #[error("building the jail: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// It is the jail of an AI rule that may not be loaded.
    #[error("not started: {0}")]
    AiRule(String),
}

/// Why a jail's source could not be opened, with the jail's name.
#[derive(Debug, thiserror::Error)]
#[error("[{jail}] cannot {what}: {source}")]
pub struct OpenError {
    pub jail: String,
    /// "read the journal" or "follow its logs".
    pub what: &'static str,
    pub source: JailError,
}
