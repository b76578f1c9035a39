//! fail3ban-regex's `systemd-journal[OPTIONS]` log: the journal read from
//! its head to its end by the jails' own journal source, so that each entry
//! becomes the line (and time) a jail with `backend = systemd` would see.
//! The options are the backend's (journalfiles, journalpath, journalflags,
//! namespace); journalmatch is taken there too, as `-m` is.

use crate::config::options::{extract_options, shlex_split};
use crate::server::spec::{BackendError, JournalBackend};
use crate::source::{
    JournalLine, JournalOptions, JournalSource, JournalStart, LogEncoding, SourceError,
};

/// Why the journal could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalLogError {
    /// `systemd-journal[...]` does not parse.
    #[error("systemd-journal: {0}")]
    Syntax(String),
    /// An option the systemd backend does not take.
    #[error("systemd-journal: unknown option {0:?} (journalfiles, journalpath, journalflags, namespace, journalmatch)")]
    Unknown(String),
    /// journalflags is no number.
    #[error("systemd-journal: {0}")]
    Backend(#[from] BackendError),
    /// A journalmatch does not split into words (an open quote).
    #[error("journalmatch {text:?}: {why}")]
    Match { text: String, why: String },
    /// The journal could not be opened or read.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// The report could not be written.
    #[error("{0}")]
    Output(std::io::Error),
    /// The runtime the reader hands its batches over on.
    #[error("cannot start the journal reader: {0}")]
    Runtime(std::io::Error),
}

/// `systemd-journal[...]` as given on the command line.
#[derive(Debug, Default)]
pub struct JournalLog {
    backend: JournalBackend,
    /// `journalmatch=` among the options, as words.
    pub journalmatch: Option<Vec<String>>,
}

/// Splits a journalmatch as fail2ban does (`shlex.split`).
pub fn match_words(text: &str) -> Result<Vec<String>, JournalLogError> {
    shlex_split(text).map_err(|why| JournalLogError::Match {
        text: text.to_string(),
        why,
    })
}

impl JournalLog {
    /// Parses `systemd-journal[name=value, ...]` (whatever follows
    /// `systemd-journal` before the brackets is ignored, as fail2ban-regex
    /// ignores it).
    pub fn parse(log: &str) -> Result<JournalLog, JournalLogError> {
        let (_, params) =
            extract_options(log).map_err(|e| JournalLogError::Syntax(e.to_string()))?;
        let mut j = JournalLog::default();
        for (k, v) in params {
            if k == "journalmatch" {
                j.journalmatch = Some(match_words(&v)?);
            } else if !j.backend.set(&k, v)? {
                return Err(JournalLogError::Unknown(k));
            }
        }
        Ok(j)
    }

    /// Hands `each` every entry that `journalmatch` (words, `+` between
    /// OR'ed groups) selects, oldest first, formatted as the systemd
    /// backend formats it; stops at the end of the journal or when `each`
    /// says false.
    pub fn read(
        &self,
        journalmatch: Option<&[String]>,
        encoding: LogEncoding,
        mut each: impl FnMut(&JournalLine) -> std::io::Result<bool>,
    ) -> Result<(), JournalLogError> {
        let mut opts = JournalOptions::new("fail2ban-regex");
        self.backend.apply(&mut opts);
        opts.matches = journalmatch.map(|m| vec![m.to_vec()]).unwrap_or_default();
        opts.start = JournalStart::Head;
        opts.follow = false;
        opts.encoding = encoding;
        // The reader hands batches over a tokio channel; this thread only
        // waits on it, so a runtime without threads of its own does.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(JournalLogError::Runtime)?;
        let mut src = JournalSource::spawn(opts)?;
        while let Some(batch) = rt.block_on(src.next()) {
            for line in &batch.lines {
                if !each(line).map_err(JournalLogError::Output)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_the_systemd_backend() {
        let j = JournalLog::parse(
            "systemd-journal[journalfiles=/a/x.journal /b/*.journal, journalflags=1, journalmatch='_COMM=sshd + _PID=1']",
        )
        .unwrap();
        assert_eq!(j.backend.files, ["/a/x.journal", "/b/*.journal"]);
        assert_eq!(j.backend.flags, Some(1));
        assert_eq!(
            j.journalmatch.as_deref(),
            Some(&["_COMM=sshd".to_string(), "+".into(), "_PID=1".into()][..])
        );
        assert!(JournalLog::parse("systemd-journal")
            .unwrap()
            .journalmatch
            .is_none());
        assert!(matches!(
            JournalLog::parse("systemd-journal[bogus=1]"),
            Err(JournalLogError::Unknown(k)) if k == "bogus"
        ));
        assert!(matches!(
            JournalLog::parse("systemd-journal[journalflags=x]"),
            Err(JournalLogError::Backend(_))
        ));
    }
}
