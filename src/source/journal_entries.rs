//! A journal source's entries: read by the native reader
//! ([`super::journal_file`]) when it can read every file the source opens,
//! else by libsystemd. libsystemd's handle stays open either way: it
//! checks the journalmatch and waits for new entries (inotify).

use std::path::PathBuf;

use super::journal_file::NativeJournal;
use super::sdjournal::{Journal, Wake};
use super::SourceError;

pub(crate) struct Entries {
    sd: Journal,
    native: Option<NativeJournal>,
}

impl Entries {
    /// libsystemd alone.
    pub(crate) fn sd(sd: Journal) -> Entries {
        Entries { sd, native: None }
    }

    /// The native reader on `paths` (the files `sd` has open), or
    /// libsystemd with a log line saying why not.
    pub(crate) fn native(
        sd: Journal,
        paths: &[PathBuf],
        groups: &[Vec<String>],
        threshold: usize,
    ) -> Entries {
        let native = match NativeJournal::open(paths, groups, threshold) {
            Ok(n) => {
                tracing::debug!(files = ?n.paths().collect::<Vec<_>>(), "journal files read natively");
                Some(n)
            }
            Err(e) => {
                tracing::info!(error = %e, "journal read through libsystemd (the native reader cannot read it)");
                None
            }
        };
        Entries { sd, native }
    }

    pub(crate) fn is_native(&self) -> bool {
        self.native.is_some()
    }

    pub(crate) fn next(&mut self) -> Result<bool, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.next()?),
            None => self.sd.next(),
        }
    }

    pub(crate) fn previous(&mut self) -> Result<bool, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.previous()?),
            None => self.sd.previous(),
        }
    }

    pub(crate) fn seek_head(&mut self) -> Result<(), SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.seek_head()?),
            None => self.sd.seek_head(),
        }
    }

    pub(crate) fn seek_tail(&mut self) -> Result<(), SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.seek_tail()?),
            None => self.sd.seek_tail(),
        }
    }

    pub(crate) fn seek_realtime_usec(&mut self, usec: u64) -> Result<(), SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.seek_realtime_usec(usec)?),
            None => self.sd.seek_realtime_usec(usec),
        }
    }

    pub(crate) fn seek_cursor(&mut self, c: &str) -> Result<(), SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.seek_cursor(c)?),
            None => self.sd.seek_cursor(c),
        }
    }

    pub(crate) fn test_cursor(&mut self, c: &str) -> Result<bool, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.test_cursor(c)?),
            None => self.sd.test_cursor(c),
        }
    }

    pub(crate) fn cursor(&mut self) -> Result<String, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.cursor()?),
            None => self.sd.cursor(),
        }
    }

    pub(crate) fn realtime_usec(&mut self) -> Result<u64, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.location()?.realtime),
            None => self.sd.realtime_usec(),
        }
    }

    pub(crate) fn monotonic_usec(&mut self) -> Result<u64, SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.location()?.monotonic),
            None => self.sd.monotonic_usec(),
        }
    }

    pub(crate) fn for_each_field(&mut self, f: impl FnMut(&[u8])) -> Result<(), SourceError> {
        match &mut self.native {
            Some(n) => Ok(n.for_each_field(f)?),
            None => self.sd.for_each_field(f),
        }
    }

    pub(crate) fn wait(&mut self, usec: u64) -> Result<Wake, SourceError> {
        self.sd.wait(usec)
    }
}
