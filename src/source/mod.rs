//! Where log lines come from: log files (inotify or polling, glob logpaths,
//! rotation, positions kept across restarts) and the systemd journal
//! (journalmatch, cursor kept).
//!
//! A source yields batches of decoded lines, each with the position just
//! after it, over a bounded tokio channel: a slow jail slows the reader
//! down instead of letting memory grow. Positions are plain values
//! ([`FilePosition`], [`JournalPosition`]) that the caller persists and hands
//! back on the next start; this module never opens the store and never sees
//! a regex.
//!
//! Reading files and `sd_journal` calls block, so readers run on OS threads
//! of their own, off the runtime's workers, while the consumer side stays
//! async: one thread per journal source, and one thread shared by all file
//! sources (they are many, and each read is short).
//!
//! ```no_run
//! # async fn demo() -> Result<(), fail3ban::source::SourceError> {
//! use fail3ban::source::{FileSource, FileSourceOptions, LogPath};
//! let opts = FileSourceOptions::new("sshd", vec![LogPath::head("/var/log/auth.log")]);
//! let mut src = FileSource::spawn(opts)?;
//! while let Some(batch) = src.next().await {
//!     for line in &batch.lines {
//!         println!("{}", line.text);
//!     }
//!     let _save_me = batch.position();
//! }
//! # Ok(())
//! # }
//! ```

mod encoding;
mod error;
mod files;
mod hub;
mod journal;
mod journal_entries;
mod journal_file;
mod journal_files;
mod sdjournal;
mod tail;
mod waker;

pub use encoding::LogEncoding;
pub use error::SourceError;
pub use files::{Backend, FileBatch, FileSource, FileSourceOptions, LogPath, Start};
pub use journal::{
    format_entry, JournalBatch, JournalEntry, JournalLine, JournalOptions, JournalPosition,
    JournalSource, JournalStart,
};
pub use journal_file::FileError as JournalFileError;
pub use tail::{FilePosition, FileTail, TailLine, TailStart, DEFAULT_MAX_LINE};
