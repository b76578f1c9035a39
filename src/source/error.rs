//! Errors of the sources. Problems with one log file (missing, unreadable,
//! a directory) are not errors: they are logged and retried.

use std::io;

/// What can stop a source from being built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// `logencoding` names no encoding we know.
    #[error("unknown logencoding {0:?}")]
    UnknownEncoding(String),
    /// `logencoding` is known but lines cannot be split on a `\n` byte in it
    /// (UTF-16, UTF-32, ISO-2022-JP).
    #[error("logencoding {0:?} is not supported (not ASCII-compatible)")]
    UnsupportedEncoding(String),
    /// `backend` is not one of auto, pyinotify, gamin, polling, systemd.
    #[error("unknown backend {0:?}")]
    UnknownBackend(String),
    /// The reader thread could not be started.
    #[error("cannot start the {what} reader thread: {source}")]
    Thread {
        /// Which reader.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// libsystemd (`libsystemd.so.0`) could not be loaded.
    #[error("systemd journal unavailable: {0}")]
    JournalUnavailable(String),
    /// An sd-journal call failed.
    #[error("systemd journal: {call} failed: {source}")]
    Journal {
        /// The sd-journal function.
        call: &'static str,
        /// The errno it returned.
        source: io::Error,
    },
    /// A journalmatch element was rejected by sd-journal.
    #[error("journalmatch {element:?} rejected: {source}")]
    JournalMatch {
        /// The element, e.g. `_SYSTEMD_UNIT=sshd.service`.
        element: String,
        /// The errno sd-journal returned.
        source: io::Error,
    },
    /// Reading a journal file without libsystemd failed.
    #[error("systemd journal: {0}")]
    JournalFile(#[from] super::JournalFileError),
    /// journalfiles was given but its patterns name no file.
    #[error("journalfiles {0:?} match no file")]
    NoJournalFiles(Vec<String>),
}
