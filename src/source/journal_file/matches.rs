//! journalmatch with sd-journal's semantics: within a term, values of the
//! same field are ORed and different fields ANDed; terms (split by
//! `sd_journal_add_disjunction`, fail2ban's `+`) are ORed.
//!
//! The data objects that carry a match's `FIELD=value` are found by
//! walking the file's objects once (and then only the ones appended),
//! which needs neither of the file's hash functions; an entry then matches
//! by the offsets of its data objects alone.

use super::file::JournalFile;
use super::FileError;

/// The journalmatch, as words.
pub(super) struct MatchSpec {
    // Each distinct `FIELD=value`, with the field's slot (a bit).
    values: Vec<(Vec<u8>, u32)>,
    // Each term: the mask of the field slots it needs.
    terms: Vec<u64>,
}

impl MatchSpec {
    /// `groups`: each a list of words ANDed, the groups ORed (each fail2ban
    /// journalmatch value split at `+`, as `add_matches` gives them to
    /// libsystemd).
    pub(super) fn new(groups: &[Vec<String>]) -> Result<MatchSpec, FileError> {
        let mut values: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut terms = Vec::new();
        let mut slots = 0u32;
        for g in groups {
            // Slots of this term by field name.
            let mut fields: Vec<(&str, u32)> = Vec::new();
            let mut mask = 0u64;
            for w in g {
                let field = w.split_once('=').map_or(w.as_str(), |(f, _)| f);
                let slot = match fields.iter().find(|(f, _)| *f == field) {
                    Some(&(_, s)) => s,
                    None => {
                        if slots == 64 {
                            return Err(FileError::TooManyFields);
                        }
                        fields.push((field, slots));
                        slots += 1;
                        slots - 1
                    }
                };
                mask |= 1 << slot;
                values.push((w.as_bytes().to_vec(), slot));
            }
            if mask != 0 {
                terms.push(mask);
            }
        }
        Ok(MatchSpec { values, terms })
    }
}

/// The journalmatch resolved in one file.
pub(super) struct FileMatches {
    // Empty: every entry matches.
    terms: Vec<u64>,
    values: Vec<(Vec<u8>, u32)>,
    // (data object offset, slot) of the objects found so far.
    found: Vec<(u64, u32)>,
    // Where the walk over the file's objects goes on.
    scan_at: u64,
    /// How many entries the file had when the walk last went on.
    pub(super) entries_seen: u64,
}

impl FileMatches {
    pub(super) fn new(spec: &MatchSpec) -> FileMatches {
        FileMatches {
            terms: spec.terms.clone(),
            values: spec.values.clone(),
            found: Vec::new(),
            scan_at: 0,
            entries_seen: 0,
        }
    }

    /// Looks at the data objects appended since the last call.
    pub(super) fn extend(&mut self, file: &JournalFile) -> Result<(), FileError> {
        if self.terms.is_empty() {
            return Ok(());
        }
        let values = &self.values;
        let found = &mut self.found;
        self.scan_at = file.scan_data(self.scan_at, |off, payload| {
            for (v, slot) in values {
                if v.as_slice() == payload {
                    found.push((off, *slot));
                }
            }
        })?;
        Ok(())
    }

    /// Whether the entry at `offset` matches.
    pub(super) fn entry_matches(&self, file: &JournalFile, offset: u64) -> Result<bool, FileError> {
        if self.terms.is_empty() {
            return Ok(true);
        }
        if self.found.is_empty() {
            return Ok(false);
        }
        let mut have = 0u64;
        file.entry_items(offset, |item| {
            for &(off, slot) in &self.found {
                if off == item {
                    have |= 1 << slot;
                }
            }
            true
        })?;
        Ok(self.terms.iter().any(|&t| t & !have == 0))
    }
}
