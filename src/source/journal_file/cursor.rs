//! Where an entry stands among the entries of several journal files, in
//! libsystemd's order, and its cursor in libsystemd's exact format
//! (`s=…;i=…;b=…;m=…;t=…;x=…`), so that a cursor saved by either reader
//! is found by the other.

use std::cmp::Ordering;
use std::fmt::Write;

/// An entry's location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) seqnum_id: [u8; 16],
    pub(crate) seqnum: u64,
    pub(crate) boot_id: [u8; 16],
    pub(crate) monotonic: u64,
    pub(crate) realtime: u64,
    pub(crate) xor_hash: u64,
}

/// The fields a cursor gives (libsystemd accepts any of them, in any
/// order, and tests only those given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) seqnum_id: Option<[u8; 16]>,
    pub(crate) seqnum: Option<u64>,
    pub(crate) boot_id: Option<[u8; 16]>,
    pub(crate) monotonic: Option<u64>,
    pub(crate) realtime: Option<u64>,
    pub(crate) xor_hash: Option<u64>,
}

fn push_id(s: &mut String, id: &[u8; 16]) {
    for b in id {
        let _ = write!(s, "{b:02x}");
    }
}

fn parse_id(v: &str) -> Option<[u8; 16]> {
    if v.len() != 32 || !v.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

impl Location {
    /// The cursor libsystemd's `sd_journal_get_cursor` writes.
    pub(crate) fn cursor(&self) -> String {
        let mut s = String::with_capacity(128);
        s.push_str("s=");
        push_id(&mut s, &self.seqnum_id);
        let _ = write!(s, ";i={:x};b=", self.seqnum);
        push_id(&mut s, &self.boot_id);
        let _ = write!(
            s,
            ";m={:x};t={:x};x={:x}",
            self.monotonic, self.realtime, self.xor_hash
        );
        s
    }

    /// libsystemd's order of entries of different files (journal-file.c,
    /// `journal_file_compare_locations`): by sequence number within one
    /// sequence, else by monotonic time within one boot, else by wall
    /// time, else by content hash.
    pub(crate) fn compare(&self, other: &Location) -> Ordering {
        if self == other {
            return Ordering::Equal;
        }
        if self.seqnum_id == other.seqnum_id {
            let o = self.seqnum.cmp(&other.seqnum);
            if o.is_ne() {
                return o;
            }
        }
        if self.boot_id == other.boot_id {
            let o = self.monotonic.cmp(&other.monotonic);
            if o.is_ne() {
                return o;
            }
        }
        self.realtime
            .cmp(&other.realtime)
            .then(self.xor_hash.cmp(&other.xor_hash))
    }

    /// Whether this is the entry `c` names (`sd_journal_test_cursor`).
    pub(crate) fn is(&self, c: &Cursor) -> bool {
        c.seqnum_id.is_none_or(|v| v == self.seqnum_id)
            && c.seqnum.is_none_or(|v| v == self.seqnum)
            && c.boot_id.is_none_or(|v| v == self.boot_id)
            && c.monotonic.is_none_or(|v| v == self.monotonic)
            && c.realtime.is_none_or(|v| v == self.realtime)
            && c.xor_hash.is_none_or(|v| v == self.xor_hash)
    }

    /// Where an entry stands against a cursor's location, as libsystemd
    /// seeks one: by sequence number when the sequence is the same, else
    /// by monotonic time in the same boot, else by wall time.
    pub(crate) fn compare_cursor(&self, c: &Cursor) -> Ordering {
        if let (Some(id), Some(n)) = (c.seqnum_id, c.seqnum) {
            if id == self.seqnum_id {
                return self.seqnum.cmp(&n);
            }
        }
        if let (Some(b), Some(m)) = (c.boot_id, c.monotonic) {
            if b == self.boot_id {
                return self.monotonic.cmp(&m);
            }
        }
        match c.realtime {
            Some(t) => self.realtime.cmp(&t),
            None => Ordering::Less,
        }
    }
}

impl Cursor {
    /// Parses a cursor as `sd_journal_seek_cursor` does: `;`-separated
    /// `k=v` pairs, unknown keys ignored; None if it names nothing.
    pub(crate) fn parse(s: &str) -> Option<Cursor> {
        let mut c = Cursor::default();
        let mut any = false;
        for part in s.split(';') {
            let (k, v) = part.split_once('=')?;
            let hex = || u64::from_str_radix(v, 16).ok();
            match k {
                "s" => c.seqnum_id = Some(parse_id(v)?),
                "i" => c.seqnum = Some(hex()?),
                "b" => c.boot_id = Some(parse_id(v)?),
                "m" => c.monotonic = Some(hex()?),
                "t" => c.realtime = Some(hex()?),
                "x" => c.xor_hash = Some(hex()?),
                _ => continue,
            }
            any = true;
        }
        any.then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let l = Location {
            seqnum_id: [0xab; 16],
            seqnum: 0x1f,
            boot_id: [1; 16],
            monotonic: 5,
            realtime: 0x6000,
            xor_hash: u64::MAX,
        };
        let s = l.cursor();
        assert_eq!(
            s,
            "s=abababababababababababababababab;i=1f;b=01010101010101010101010101010101;m=5;t=6000;x=ffffffffffffffff"
        );
        let c = Cursor::parse(&s).unwrap();
        assert!(l.is(&c));
        assert_eq!(l.compare_cursor(&c), Ordering::Equal);
        assert!(Cursor::parse("junk").is_none());
        assert!(Cursor::parse("i=zz").is_none());
    }
}
