//! The compressed data objects' payloads (xz, lz4, zstd), decoded with the
//! libraries libsystemd itself uses, loaded at run time like libsystemd
//! (so that building needs none of them): wherever libsystemd0 is
//! installed, liblzma5, liblz4-1 and libzstd1 are too.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use super::file::{INCOMPAT_LZ4, INCOMPAT_XZ, INCOMPAT_ZSTD};
use super::FileError;

// Data objects' compression flags.
const OBJ_XZ: u8 = 1;
const OBJ_LZ4: u8 = 2;
const OBJ_ZSTD: u8 = 4;

// The largest field journald stores (DATA_SIZE_MAX): a payload claiming
// more is corrupt.
const MAX_FIELD: usize = 64 << 20;

type ZstdSizeFn = unsafe extern "C" fn(*const c_void, usize) -> u64;
type ZstdDecompressFn = unsafe extern "C" fn(*mut c_void, usize, *const c_void, usize) -> usize;
type ZstdIsErrorFn = unsafe extern "C" fn(usize) -> u32;
type Lz4Fn = unsafe extern "C" fn(*const c_char, *mut c_char, c_int, c_int) -> c_int;
type XzFn = unsafe extern "C" fn(
    *mut u64,
    u32,
    *const c_void,
    *const u8,
    *mut usize,
    usize,
    *mut u8,
    *mut usize,
    usize,
) -> c_int;

struct Zstd {
    size: ZstdSizeFn,
    decompress: ZstdDecompressFn,
    is_error: ZstdIsErrorFn,
}

fn sym(lib: &CStr, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the handle is never
    // closed, so the symbol stays valid for the process's life.
    unsafe {
        let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if h.is_null() {
            return None;
        }
        let p = libc::dlsym(h, name.as_ptr());
        (!p.is_null()).then_some(p)
    }
}

fn zstd() -> Option<&'static Zstd> {
    static Z: OnceLock<Option<Zstd>> = OnceLock::new();
    Z.get_or_init(|| {
        let lib = c"libzstd.so.1";
        // SAFETY: each symbol is cast to its zstd.h type.
        unsafe {
            Some(Zstd {
                size: std::mem::transmute::<*mut c_void, ZstdSizeFn>(sym(
                    lib,
                    c"ZSTD_getFrameContentSize",
                )?),
                decompress: std::mem::transmute::<*mut c_void, ZstdDecompressFn>(sym(
                    lib,
                    c"ZSTD_decompress",
                )?),
                is_error: std::mem::transmute::<*mut c_void, ZstdIsErrorFn>(sym(
                    lib,
                    c"ZSTD_isError",
                )?),
            })
        }
    })
    .as_ref()
}

fn lz4() -> Option<Lz4Fn> {
    static L: OnceLock<Option<Lz4Fn>> = OnceLock::new();
    // SAFETY: cast to lz4.h's LZ4_decompress_safe type.
    *L.get_or_init(|| {
        sym(c"liblz4.so.1", c"LZ4_decompress_safe")
            .map(|p| unsafe { std::mem::transmute::<*mut c_void, Lz4Fn>(p) })
    })
}

fn xz() -> Option<XzFn> {
    static X: OnceLock<Option<XzFn>> = OnceLock::new();
    // SAFETY: cast to lzma/container.h's lzma_stream_buffer_decode type.
    *X.get_or_init(|| {
        sym(c"liblzma.so.5", c"lzma_stream_buffer_decode")
            .map(|p| unsafe { std::mem::transmute::<*mut c_void, XzFn>(p) })
    })
}

/// Whether the libraries a file's compression flags call for load.
pub(super) fn available(incompat: u32) -> Result<(), FileError> {
    let missing = [
        (INCOMPAT_ZSTD, "libzstd.so.1", zstd().is_some()),
        (INCOMPAT_LZ4, "liblz4.so.1", lz4().is_some()),
        (INCOMPAT_XZ, "liblzma.so.5", xz().is_some()),
    ]
    .into_iter()
    .find(|&(flag, _, ok)| incompat & flag != 0 && !ok);
    match missing {
        Some((_, lib, _)) => Err(FileError::Compression(lib)),
        None => Ok(()),
    }
}

/// Decodes a payload with object flags `flags` into `out` (cleared first).
pub(super) fn decode(flags: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
    out.clear();
    let bad = || FileError::Compressed;
    if flags & OBJ_ZSTD != 0 {
        let z = zstd().ok_or_else(|| FileError::Compression("libzstd.so.1"))?;
        // SAFETY: payload is a live slice; the size is only read.
        let n = unsafe { (z.size)(payload.as_ptr().cast(), payload.len()) };
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_FIELD)
            .ok_or_else(bad)?;
        out.resize(n, 0);
        // SAFETY: out has n writable bytes, payload is live.
        let got = unsafe {
            (z.decompress)(
                out.as_mut_ptr().cast(),
                n,
                payload.as_ptr().cast(),
                payload.len(),
            )
        };
        // SAFETY: a pure function of its argument.
        if unsafe { (z.is_error)(got) } != 0 || got > n {
            return Err(bad());
        }
        out.truncate(got);
    } else if flags & OBJ_LZ4 != 0 {
        let f = lz4().ok_or_else(|| FileError::Compression("liblz4.so.1"))?;
        let size = payload.get(..8).ok_or_else(bad)?;
        let n = u64::from_le_bytes(size.try_into().map_err(|_| bad())?);
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_FIELD)
            .ok_or_else(bad)?;
        let src = &payload[8..];
        out.resize(n, 0);
        let (Ok(src_len), Ok(cap)) = (c_int::try_from(src.len()), c_int::try_from(n)) else {
            return Err(bad());
        };
        // SAFETY: src and out are live with the lengths given.
        let got = unsafe { f(src.as_ptr().cast(), out.as_mut_ptr().cast(), src_len, cap) };
        let got = usize::try_from(got).map_err(|_| bad())?;
        out.truncate(got);
    } else if flags & OBJ_XZ != 0 {
        let f = xz().ok_or_else(|| FileError::Compression("liblzma.so.5"))?;
        let mut cap = (payload.len() * 4).max(4096);
        loop {
            out.resize(cap, 0);
            let mut memlimit = u64::MAX;
            let (mut in_pos, mut out_pos) = (0usize, 0usize);
            // SAFETY: every buffer is live with the length given.
            let rc = unsafe {
                f(
                    &mut memlimit,
                    0,
                    std::ptr::null(),
                    payload.as_ptr(),
                    &mut in_pos,
                    payload.len(),
                    out.as_mut_ptr(),
                    &mut out_pos,
                    cap,
                )
            };
            // LZMA_OK, or LZMA_BUF_ERROR: the output did not fit.
            match rc {
                0 => {
                    out.truncate(out_pos);
                    break;
                }
                10 if cap < MAX_FIELD => cap = (cap * 4).min(MAX_FIELD),
                _ => return Err(bad()),
            }
        }
    } else {
        out.extend_from_slice(payload);
    }
    Ok(())
}
