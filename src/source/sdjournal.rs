//! libsystemd's sd-journal, loaded at run time with dlopen.
//!
//! Loading `libsystemd.so.0` when a journal jail starts, rather than linking
//! it, means fail3ban builds without libsystemd-dev and its binaries run
//! where systemd is absent (containers, fail3ban-regex on a log file); only
//! a `backend = systemd` jail needs the library, and without it that jail
//! fails to start with a clear error, as fail2ban's does without
//! python3-systemd. The signatures below are those of `sd-journal.h`
//! (systemd 246 and later; Debian 12 ships 252).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::ptr;
use std::sync::OnceLock;

use super::SourceError;

#[repr(C)]
pub(crate) struct SdJournal {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Id128 {
    bytes: [u8; 16],
}

type OpenFn = unsafe extern "C" fn(*mut *mut SdJournal, c_int) -> c_int;
type OpenDirFn = unsafe extern "C" fn(*mut *mut SdJournal, *const c_char, c_int) -> c_int;
type OpenFilesFn = unsafe extern "C" fn(*mut *mut SdJournal, *const *const c_char, c_int) -> c_int;
type OpenNsFn = unsafe extern "C" fn(*mut *mut SdJournal, *const c_char, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut SdJournal);
type AddMatchFn = unsafe extern "C" fn(*mut SdJournal, *const c_void, usize) -> c_int;
type JFn = unsafe extern "C" fn(*mut SdJournal) -> c_int;
type SeekUsecFn = unsafe extern "C" fn(*mut SdJournal, u64) -> c_int;
type CursorFn = unsafe extern "C" fn(*mut SdJournal, *const c_char) -> c_int;
type GetCursorFn = unsafe extern "C" fn(*mut SdJournal, *mut *mut c_char) -> c_int;
type GetRealtimeFn = unsafe extern "C" fn(*mut SdJournal, *mut u64) -> c_int;
type GetMonotonicFn = unsafe extern "C" fn(*mut SdJournal, *mut u64, *mut Id128) -> c_int;
type ThresholdFn = unsafe extern "C" fn(*mut SdJournal, usize) -> c_int;
type RestartDataFn = unsafe extern "C" fn(*mut SdJournal);
type EnumerateFn = unsafe extern "C" fn(*mut SdJournal, *mut *const c_void, *mut usize) -> c_int;
type WaitFn = unsafe extern "C" fn(*mut SdJournal, u64) -> c_int;

struct Api {
    open: OpenFn,
    open_directory: OpenDirFn,
    open_files: OpenFilesFn,
    open_namespace: Option<OpenNsFn>,
    close: CloseFn,
    add_match: AddMatchFn,
    add_disjunction: JFn,
    next: JFn,
    previous: JFn,
    seek_head: JFn,
    seek_tail: JFn,
    seek_realtime_usec: SeekUsecFn,
    seek_cursor: CursorFn,
    test_cursor: CursorFn,
    get_cursor: GetCursorFn,
    get_realtime_usec: GetRealtimeFn,
    get_monotonic_usec: GetMonotonicFn,
    set_data_threshold: ThresholdFn,
    restart_data: RestartDataFn,
    enumerate_data: EnumerateFn,
    wait: WaitFn,
}

/// Why libsystemd's journal functions could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
enum LoadError {
    #[error("cannot load libsystemd.so.0 (package libsystemd0): {0}")]
    Open(String),
    #[error("libsystemd.so.0 lacks {0}")]
    Missing(String),
}

fn load() -> Result<&'static Api, SourceError> {
    static API: OnceLock<Result<Api, LoadError>> = OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the handle is
        // never closed, so the function pointers stay valid for the
        // process's life. Each symbol is cast to its sd-journal.h type.
        unsafe {
            let h = libc::dlopen(
                c"libsystemd.so.0".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            );
            if h.is_null() {
                let err = libc::dlerror();
                let msg = if err.is_null() {
                    "dlopen failed".to_string()
                } else {
                    CStr::from_ptr(err).to_string_lossy().into_owned()
                };
                return Err(LoadError::Open(msg));
            }
            let sym = |name: &CStr| -> Result<*mut c_void, LoadError> {
                let p = libc::dlsym(h, name.as_ptr());
                if p.is_null() {
                    Err(LoadError::Missing(name.to_string_lossy().into_owned()))
                } else {
                    Ok(p)
                }
            };
            macro_rules! f {
                ($name:literal, $ty:ty) => {
                    std::mem::transmute::<*mut c_void, $ty>(sym($name)?)
                };
            }
            Ok(Api {
                open: f!(c"sd_journal_open", OpenFn),
                open_directory: f!(c"sd_journal_open_directory", OpenDirFn),
                open_files: f!(c"sd_journal_open_files", OpenFilesFn),
                open_namespace: sym(c"sd_journal_open_namespace")
                    .ok()
                    .map(|p| std::mem::transmute::<*mut c_void, OpenNsFn>(p)),
                close: f!(c"sd_journal_close", CloseFn),
                add_match: f!(c"sd_journal_add_match", AddMatchFn),
                add_disjunction: f!(c"sd_journal_add_disjunction", JFn),
                next: f!(c"sd_journal_next", JFn),
                previous: f!(c"sd_journal_previous", JFn),
                seek_head: f!(c"sd_journal_seek_head", JFn),
                seek_tail: f!(c"sd_journal_seek_tail", JFn),
                seek_realtime_usec: f!(c"sd_journal_seek_realtime_usec", SeekUsecFn),
                seek_cursor: f!(c"sd_journal_seek_cursor", CursorFn),
                test_cursor: f!(c"sd_journal_test_cursor", CursorFn),
                get_cursor: f!(c"sd_journal_get_cursor", GetCursorFn),
                get_realtime_usec: f!(c"sd_journal_get_realtime_usec", GetRealtimeFn),
                get_monotonic_usec: f!(c"sd_journal_get_monotonic_usec", GetMonotonicFn),
                set_data_threshold: f!(c"sd_journal_set_data_threshold", ThresholdFn),
                restart_data: f!(c"sd_journal_restart_data", RestartDataFn),
                enumerate_data: f!(c"sd_journal_enumerate_data", EnumerateFn),
                wait: f!(c"sd_journal_wait", WaitFn),
            })
        }
    })
    .as_ref()
    .map_err(|e| SourceError::JournalUnavailable(e.to_string()))
}

fn check(call: &'static str, rc: c_int) -> Result<c_int, SourceError> {
    if rc < 0 {
        Err(SourceError::Journal {
            call,
            source: io::Error::from_raw_os_error(-rc),
        })
    } else {
        Ok(rc)
    }
}

fn cstring(s: &str) -> Result<CString, SourceError> {
    CString::new(s).map_err(|_| SourceError::Journal {
        call: "argument",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// What `sd_journal_wait` saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    Nop,
    Append,
    Invalidate,
}

/// An open journal. Not thread-safe (sd-journal is not), but may move to
/// another thread between calls.
pub(crate) struct Journal {
    api: &'static Api,
    j: *mut SdJournal,
}

// SAFETY: sd-journal objects may be used from any one thread at a time;
// Journal has no shared references to it and is moved, not shared.
unsafe impl Send for Journal {}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: j came from a successful sd_journal_open* and is closed once.
        unsafe { (self.api.close)(self.j) }
    }
}

impl Journal {
    /// The local journal (`sd_journal_open`).
    pub(crate) fn open(flags: i32) -> Result<Journal, SourceError> {
        let api = load()?;
        let mut j = ptr::null_mut();
        // SAFETY: j is a valid out-pointer.
        check("sd_journal_open", unsafe { (api.open)(&mut j, flags) })?;
        Ok(Journal { api, j })
    }

    /// The journal files in a directory (`journalpath`).
    pub(crate) fn open_directory(path: &str, flags: i32) -> Result<Journal, SourceError> {
        let api = load()?;
        let p = cstring(path)?;
        let mut j = ptr::null_mut();
        // SAFETY: j is a valid out-pointer, p a NUL-terminated string.
        check("sd_journal_open_directory", unsafe {
            (api.open_directory)(&mut j, p.as_ptr(), flags)
        })?;
        Ok(Journal { api, j })
    }

    /// Given journal files (`journalfiles`).
    pub(crate) fn open_files(paths: &[String], flags: i32) -> Result<Journal, SourceError> {
        let api = load()?;
        let owned = paths
            .iter()
            .map(|p| cstring(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(ptr::null());
        let mut j = ptr::null_mut();
        // SAFETY: ptrs is a NULL-terminated array of NUL-terminated strings
        // that outlive the call.
        check("sd_journal_open_files", unsafe {
            (api.open_files)(&mut j, ptrs.as_ptr(), flags)
        })?;
        Ok(Journal { api, j })
    }

    /// A journal namespace (systemd 245+).
    pub(crate) fn open_namespace(ns: &str, flags: i32) -> Result<Journal, SourceError> {
        let api = load()?;
        let f = api.open_namespace.ok_or_else(|| {
            SourceError::JournalUnavailable("this libsystemd has no journal namespaces".into())
        })?;
        let n = cstring(ns)?;
        let mut j = ptr::null_mut();
        // SAFETY: j is a valid out-pointer, n a NUL-terminated string.
        check("sd_journal_open_namespace", unsafe {
            f(&mut j, n.as_ptr(), flags)
        })?;
        Ok(Journal { api, j })
    }

    pub(crate) fn add_match(&mut self, m: &str) -> Result<(), SourceError> {
        // SAFETY: data and length describe a live byte slice.
        let rc = unsafe { (self.api.add_match)(self.j, m.as_ptr().cast(), m.len()) };
        if rc < 0 {
            return Err(SourceError::JournalMatch {
                element: m.to_string(),
                source: io::Error::from_raw_os_error(-rc),
            });
        }
        Ok(())
    }

    pub(crate) fn add_disjunction(&mut self) -> Result<(), SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_add_disjunction", unsafe {
            (self.api.add_disjunction)(self.j)
        })
        .map(drop)
    }

    /// Moves to the next entry; false at the end.
    pub(crate) fn next(&mut self) -> Result<bool, SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_next", unsafe { (self.api.next)(self.j) }).map(|n| n > 0)
    }

    pub(crate) fn previous(&mut self) -> Result<bool, SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_previous", unsafe {
            (self.api.previous)(self.j)
        })
        .map(|n| n > 0)
    }

    pub(crate) fn seek_head(&mut self) -> Result<(), SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_seek_head", unsafe {
            (self.api.seek_head)(self.j)
        })
        .map(drop)
    }

    pub(crate) fn seek_tail(&mut self) -> Result<(), SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_seek_tail", unsafe {
            (self.api.seek_tail)(self.j)
        })
        .map(drop)
    }

    pub(crate) fn seek_realtime_usec(&mut self, usec: u64) -> Result<(), SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_seek_realtime_usec", unsafe {
            (self.api.seek_realtime_usec)(self.j, usec)
        })
        .map(drop)
    }

    pub(crate) fn seek_cursor(&mut self, cursor: &str) -> Result<(), SourceError> {
        let c = cstring(cursor)?;
        // SAFETY: self.j is open, c NUL-terminated.
        check("sd_journal_seek_cursor", unsafe {
            (self.api.seek_cursor)(self.j, c.as_ptr())
        })
        .map(drop)
    }

    /// Whether the current entry is the one `cursor` names.
    pub(crate) fn test_cursor(&mut self, cursor: &str) -> Result<bool, SourceError> {
        let c = cstring(cursor)?;
        // SAFETY: self.j is open, c NUL-terminated.
        check("sd_journal_test_cursor", unsafe {
            (self.api.test_cursor)(self.j, c.as_ptr())
        })
        .map(|n| n > 0)
    }

    pub(crate) fn cursor(&mut self) -> Result<String, SourceError> {
        let mut p: *mut c_char = ptr::null_mut();
        // SAFETY: p is a valid out-pointer; on success it points to a
        // malloc'd NUL-terminated string that we free once copied.
        unsafe {
            check(
                "sd_journal_get_cursor",
                (self.api.get_cursor)(self.j, &mut p),
            )?;
            // Cursors are ASCII: copied as they are, without a lossy pass.
            let bytes = CStr::from_ptr(p).to_bytes().to_vec();
            let s = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            libc::free(p.cast());
            Ok(s)
        }
    }

    pub(crate) fn realtime_usec(&mut self) -> Result<u64, SourceError> {
        let mut t = 0u64;
        // SAFETY: t is a valid out-pointer.
        check("sd_journal_get_realtime_usec", unsafe {
            (self.api.get_realtime_usec)(self.j, &mut t)
        })?;
        Ok(t)
    }

    pub(crate) fn monotonic_usec(&mut self) -> Result<u64, SourceError> {
        let mut t = 0u64;
        let mut boot = Id128::default();
        // SAFETY: t and boot are valid out-pointers.
        check("sd_journal_get_monotonic_usec", unsafe {
            (self.api.get_monotonic_usec)(self.j, &mut t, &mut boot)
        })?;
        Ok(t)
    }

    /// Bounds the size of each field value returned (0: no bound).
    pub(crate) fn set_data_threshold(&mut self, size: usize) -> Result<(), SourceError> {
        // SAFETY: self.j is open.
        check("sd_journal_set_data_threshold", unsafe {
            (self.api.set_data_threshold)(self.j, size)
        })
        .map(drop)
    }

    /// Calls `f` with each `FIELD=value` of the current entry.
    pub(crate) fn for_each_field(&mut self, mut f: impl FnMut(&[u8])) -> Result<(), SourceError> {
        // SAFETY: the data pointer returned by sd_journal_enumerate_data is
        // valid until the next call on self.j; it is used only within that
        // window, through a slice of the returned length.
        unsafe {
            (self.api.restart_data)(self.j);
            loop {
                let mut data: *const c_void = ptr::null();
                let mut len = 0usize;
                let rc = (self.api.enumerate_data)(self.j, &mut data, &mut len);
                // A field that cannot be read (corrupt, unknown compression)
                // ends the entry's fields instead of failing the entry;
                // retrying could loop on the same field.
                if rc < 0 {
                    tracing::debug!(error = %io::Error::from_raw_os_error(-rc), "journal entry field unreadable");
                    return Ok(());
                }
                if rc == 0 {
                    return Ok(());
                }
                f(std::slice::from_raw_parts(data.cast::<u8>(), len));
            }
        }
    }

    /// Waits up to `usec` for a change.
    pub(crate) fn wait(&mut self, usec: u64) -> Result<Wake, SourceError> {
        // SAFETY: self.j is open.
        let rc = check("sd_journal_wait", unsafe { (self.api.wait)(self.j, usec) })?;
        Ok(match rc {
            1 => Wake::Append,
            2 => Wake::Invalidate,
            _ => Wake::Nop,
        })
    }
}
