//! One journal file, mapped read-only: its header, and its objects read
//! with every offset and length checked against the map.
//!
//! The layout is systemd's `journal-def.h` (format as of systemd 252):
//! a header, then 8-byte aligned objects, each a 16-byte object header
//! (type, flags, size) and a body. Compact files (incompatible flag 16)
//! store the offsets in entries and entry arrays as 32 bits.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::decompress;
use super::FileError;

const SIGNATURE: &[u8; 8] = b"LPKSHHRH";

pub(super) const INCOMPAT_XZ: u32 = 1;
pub(super) const INCOMPAT_LZ4: u32 = 2;
pub(super) const INCOMPAT_KEYED_HASH: u32 = 4;
pub(super) const INCOMPAT_ZSTD: u32 = 8;
pub(super) const INCOMPAT_COMPACT: u32 = 16;
// Every incompatible flag this reader understands; a file with another
// one is left to libsystemd.
const INCOMPAT_KNOWN: u32 =
    INCOMPAT_XZ | INCOMPAT_LZ4 | INCOMPAT_KEYED_HASH | INCOMPAT_ZSTD | INCOMPAT_COMPACT;

const OBJECT_DATA: u8 = 1;
const OBJECT_ENTRY: u8 = 3;
const OBJECT_ENTRY_ARRAY: u8 = 6;
const OBJECT_HEADER: u64 = 16;

// Header fields' offsets.
const H_INCOMPAT: usize = 12;
const H_SEQNUM_ID: usize = 72;
const H_HEADER_SIZE: usize = 88;
const H_TAIL_OBJECT: usize = 136;
const H_N_ENTRIES: usize = 152;
const H_ENTRY_ARRAY: usize = 176;
// The smallest header any journal file has (systemd 187's).
const MIN_HEADER: u64 = 208;

/// A mapping of a file, unmapped on drop.
struct Map {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by one Map.
unsafe impl Send for Map {}

impl Drop for Map {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: ptr/len come from a successful mmap, unmapped once.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

impl Map {
    fn new(file: &File, len: usize) -> Result<Map, std::io::Error> {
        if len == 0 {
            return Ok(Map {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh shared read-only mapping of an open file; the
        // result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Map { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the mapping is len bytes long and lives as long as self.
        // journald only appends to a file it writes (and updates header
        // and tail fields in place), so bytes read here are either
        // complete objects or are checked again before use.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

/// A data object: its payload (maybe compressed) and compression flags.
pub(super) struct Data<'a> {
    pub(super) payload: &'a [u8],
    pub(super) flags: u8,
}

/// An entry's fixed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryHead {
    pub(super) seqnum: u64,
    pub(super) realtime: u64,
    pub(super) monotonic: u64,
    pub(super) boot_id: [u8; 16],
    pub(super) xor_hash: u64,
}

/// An open journal file.
pub(super) struct JournalFile {
    path: PathBuf,
    file: File,
    map: Map,
    compact: bool,
    pub(super) seqnum_id: [u8; 16],
}

fn le64(b: &[u8], at: usize) -> Result<u64, FileError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
        .ok_or_else(|| FileError::Bounds(at as u64))
}

fn le32(b: &[u8], at: usize) -> Result<u32, FileError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
        .ok_or_else(|| FileError::Bounds(at as u64))
}

fn id128(b: &[u8], at: usize) -> Result<[u8; 16], FileError> {
    b.get(at..at + 16)
        .map(|s| s.try_into().unwrap_or_default())
        .ok_or_else(|| FileError::Bounds(at as u64))
}

impl JournalFile {
    /// Opens and maps `path`; an error for anything this reader does not
    /// read (the caller falls back to libsystemd).
    pub(super) fn open(path: &Path) -> Result<JournalFile, FileError> {
        // Non-blocking: a FIFO put where a journal file was must not stall
        // the reader on open.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(FileError::Io)?;
        let meta = file.metadata().map_err(FileError::Io)?;
        // A mapped file that someone shortens takes the pages under the map
        // with it (SIGBUS, which would end the daemon); libsystemd survives
        // that, so it reads any file that someone other than root can write.
        if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(FileError::Untrusted);
        }
        let len = meta.len();
        let map = Map::new(
            &file,
            usize::try_from(len).map_err(|_| FileError::Bounds(len))?,
        )
        .map_err(FileError::Io)?;
        let mut f = JournalFile {
            path: path.to_path_buf(),
            file,
            map,
            compact: false,
            seqnum_id: [0; 16],
        };
        let b = f.map.bytes();
        if b.get(..8) != Some(SIGNATURE.as_slice()) {
            return Err(FileError::Signature);
        }
        let incompat = le32(b, H_INCOMPAT)?;
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(FileError::Incompatible(incompat & !INCOMPAT_KNOWN));
        }
        if incompat & (INCOMPAT_XZ | INCOMPAT_LZ4 | INCOMPAT_ZSTD) != 0 {
            decompress::available(incompat)?;
        }
        let header_size = le64(b, H_HEADER_SIZE)?;
        if header_size < MIN_HEADER || header_size > len {
            return Err(FileError::Bounds(header_size));
        }
        f.compact = incompat & INCOMPAT_COMPACT != 0;
        f.seqnum_id = id128(b, H_SEQNUM_ID)?;
        Ok(f)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the file again if it grew (journald extends it as it writes).
    pub(super) fn refresh(&mut self) -> Result<(), FileError> {
        let len = self.file.metadata().map_err(FileError::Io)?.len();
        let len = usize::try_from(len).map_err(|_| FileError::Bounds(len))?;
        if len != self.map.len {
            self.map = Map::new(&self.file, len).map_err(FileError::Io)?;
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    pub(super) fn n_entries(&self) -> Result<u64, FileError> {
        le64(self.bytes(), H_N_ENTRIES)
    }

    /// The object at `offset` of `kind`: its whole bytes (header included),
    /// checked to lie inside the map.
    fn object(&self, offset: u64, kind: u8) -> Result<&[u8], FileError> {
        let b = self.bytes();
        if offset % 8 != 0 || offset < MIN_HEADER {
            return Err(FileError::Bounds(offset));
        }
        let at = usize::try_from(offset).map_err(|_| FileError::Bounds(offset))?;
        let head = b
            .get(at..at + OBJECT_HEADER as usize)
            .ok_or_else(|| FileError::Bounds(offset))?;
        if head[0] != kind {
            return Err(FileError::ObjectType {
                offset,
                kind: head[0],
            });
        }
        let size = le64(head, 8)?;
        if size < OBJECT_HEADER {
            return Err(FileError::Bounds(offset));
        }
        let end = offset
            .checked_add(size)
            .ok_or_else(|| FileError::Bounds(offset))?;
        let end = usize::try_from(end).map_err(|_| FileError::Bounds(offset))?;
        b.get(at..end).ok_or_else(|| FileError::Bounds(offset))
    }

    /// The offset of the `i`-th entry (in the file's order) through the
    /// file's global entry array chain, starting from a remembered array
    /// (`hint`: the array's offset and the index of its first item) so
    /// that reading entries in order does not walk the chain each time.
    pub(super) fn entry_offset(&self, i: u64, hint: &mut (u64, u64)) -> Result<u64, FileError> {
        if hint.0 == 0 || i < hint.1 {
            *hint = (le64(self.bytes(), H_ENTRY_ARRAY)?, 0);
        }
        let width = if self.compact { 4 } else { 8 };
        // Bounded by the number of arrays that fit in the file.
        for _ in 0..self.map.len / 24 + 1 {
            let (off, first) = *hint;
            if off == 0 {
                return Err(FileError::Bounds(i));
            }
            let o = self.object(off, OBJECT_ENTRY_ARRAY)?;
            let n = (o.len() as u64 - 24) / width;
            if i < first + n {
                let at = 24 + ((i - first) * width) as usize;
                let e = if self.compact {
                    u64::from(le32(o, at)?)
                } else {
                    le64(o, at)?
                };
                if e == 0 {
                    return Err(FileError::Bounds(i));
                }
                return Ok(e);
            }
            let next = le64(o, 16)?;
            if next != 0 && next <= off {
                return Err(FileError::Bounds(next));
            }
            *hint = (next, first + n);
        }
        Err(FileError::Bounds(i))
    }

    pub(super) fn entry_head(&self, offset: u64) -> Result<EntryHead, FileError> {
        let o = self.object(offset, OBJECT_ENTRY)?;
        Ok(EntryHead {
            seqnum: le64(o, 16)?,
            realtime: le64(o, 24)?,
            monotonic: le64(o, 32)?,
            boot_id: id128(o, 40)?,
            xor_hash: le64(o, 56)?,
        })
    }

    /// Calls `f` with the offset of each data object of the entry at
    /// `offset`; stops early when `f` returns false.
    pub(super) fn entry_items(
        &self,
        offset: u64,
        mut f: impl FnMut(u64) -> bool,
    ) -> Result<(), FileError> {
        let o = self.object(offset, OBJECT_ENTRY)?;
        let items = &o[64.min(o.len())..];
        if self.compact {
            for c in items.chunks_exact(4) {
                if !f(u64::from(u32::from_le_bytes(
                    c.try_into().unwrap_or_default(),
                ))) {
                    break;
                }
            }
        } else {
            for c in items.chunks_exact(16) {
                if !f(u64::from_le_bytes(c[..8].try_into().unwrap_or_default())) {
                    break;
                }
            }
        }
        Ok(())
    }

    pub(super) fn data(&self, offset: u64) -> Result<Data<'_>, FileError> {
        let o = self.object(offset, OBJECT_DATA)?;
        let start = if self.compact { 72 } else { 64 };
        let payload = o.get(start..).ok_or_else(|| FileError::Bounds(offset))?;
        Ok(Data {
            payload,
            flags: o[1],
        })
    }

    /// Calls `f` with the offset and (uncompressed) payload of every data
    /// object from `from` (an object's offset, or 0 for the first) up to
    /// the file's last object; returns where to continue next time.
    pub(super) fn scan_data(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Result<u64, FileError> {
        let b = self.bytes();
        let tail = le64(b, H_TAIL_OBJECT)?;
        let mut at = if from == 0 {
            le64(b, H_HEADER_SIZE)?
        } else {
            from
        };
        while at != 0 && at <= tail {
            let a = usize::try_from(at).map_err(|_| FileError::Bounds(at))?;
            let head = b.get(a..a + 16).ok_or_else(|| FileError::Bounds(at))?;
            let size = le64(head, 8)?;
            if size < OBJECT_HEADER {
                return Err(FileError::Bounds(at));
            }
            if head[0] == OBJECT_DATA && head[1] == 0 {
                let d = self.data(at)?;
                f(at, d.payload);
            }
            let next = at
                .checked_add(size.div_ceil(8) * 8)
                .ok_or_else(|| FileError::Bounds(at))?;
            if at == tail {
                return Ok(next);
            }
            at = next;
        }
        Ok(at)
    }
}
