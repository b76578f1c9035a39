//! A thin, allocation-free wrapper over PCRE2 (through `pcre2-sys`).
//!
//! The `pcre2` crate hides the match context, so it cannot set a match limit;
//! a crafted log line must not stall a jail, so we talk to PCRE2 directly.
//! Each [`Regex`] owns its match data, match context and JIT stack: matching
//! takes `&mut self` and never allocates.

use std::collections::HashMap;
use std::ptr;

use pcre2_sys as ffi;

mod prefix;

/// Limits applied to every match.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// PCRE2 match limit (backtracking steps); with JIT it bounds the
    /// number of JIT calls and backtracks.
    pub match_limit: u32,
    /// Maximum JIT stack in bytes.
    pub jit_stack_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Measured: stock filters need well under 10k steps on real lines; a
        // million steps is a few milliseconds of JIT time at worst.
        Limits {
            match_limit: 1_000_000,
            jit_stack_max: 1 << 20,
        }
    }
}

/// Why a match attempt gave up without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchAbort {
    /// The match limit or the JIT stack was exhausted.
    Limit,
    /// Any other PCRE2 error code.
    Other(i32),
}

/// PCRE2's message for an error code.
pub fn error_message(code: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buffer and its length are valid; PCRE2 NUL-terminates.
    let n = unsafe { ffi::pcre2_get_error_message_8(code, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return format!("PCRE2 error {code}");
    }
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

/// What a PCRE2 match call's return code means: matched, not matched, or
/// stopped by a limit (counted as no match by callers, with a warning).
fn matched(rc: i32) -> Result<bool, MatchAbort> {
    match rc {
        rc if rc >= 0 => Ok(true),
        ffi::PCRE2_ERROR_NOMATCH => Ok(false),
        ffi::PCRE2_ERROR_MATCHLIMIT
        | ffi::PCRE2_ERROR_JIT_STACKLIMIT
        | ffi::PCRE2_ERROR_DEPTHLIMIT
        | ffi::PCRE2_ERROR_HEAPLIMIT => Err(MatchAbort::Limit),
        rc => Err(MatchAbort::Other(rc)),
    }
}

/// Byte span of group `i` in match data `md`.
///
/// # Safety
/// `md` must be live match data with more than `i` ovector pairs.
unsafe fn ovector_span(md: *mut ffi::pcre2_match_data_8, i: usize) -> Option<(usize, usize)> {
    let ov = ffi::pcre2_get_ovector_pointer_8(md);
    let (s, e) = (*ov.add(2 * i), *ov.add(2 * i + 1));
    (s != ffi::PCRE2_UNSET).then_some((s, e))
}

/// Subjects longer than this run on PCRE2's interpreter instead of its JIT
/// code. JIT code does not count single-character backtracking (a run of
/// `\S+` giving back one character at a time) against the match limit, so
/// a crafted line of 100,000 `(` keeps some stock prefregexes busy for
/// tens of seconds; the interpreter counts every step and stops at the
/// limit. Real log lines are far shorter and keep the JIT's speed.
const LONG_SUBJECT: usize = 4096;

/// A compiled, JIT-compiled pattern together with its matching state.
pub struct Regex {
    code: *mut ffi::pcre2_code_8,
    /// The same pattern compiled without UTF and Unicode properties (null
    /// when there is none), for subjects that are all ASCII: there both
    /// read every byte alike, and this one walks bytes instead of decoding
    /// characters and needs no Unicode tables for `\s`, `\w`, `.`...
    ascii_code: *mut ffi::pcre2_code_8,
    /// The pattern and options the ASCII twin is compiled from, on first
    /// use like the JIT code.
    twin: Option<(Box<str>, u32)>,
    /// Null until the first search.
    md: *mut ffi::pcre2_match_data_8,
    mctx: *mut ffi::pcre2_match_context_8,
    jit_stack: *mut ffi::pcre2_jit_stack_8,
    jit: bool,
    /// JIT compilation, the ASCII twin and the match data wait for the
    /// first search: most of a daemon's jails see few lines or none, and
    /// their JIT code (tens of KiB a pattern, twice with the twin) would
    /// otherwise be most of its memory.
    jit_pending: bool,
    jit_stack_max: usize,
    names: HashMap<String, usize>,
    group_count: usize,
    /// Set when every match must start at the start offset: the bytes a
    /// match can begin with. A filter tries a dozen anchored failregexes on
    /// each line and most fail on the first byte; answering that here saves
    /// a call into PCRE2 each.
    first: Option<Box<[bool; 256]>>,
    /// Set when every match must start at the start offset: literal
    /// prefixes one of which every match starts with. Many failregexes
    /// share their first byte ("User ...") and part a few bytes later.
    prefixes: Option<prefix::Prefixes>,
    /// PCRE2's lower bound on the length of a match, in characters.
    min_len: usize,
}

// SAFETY: the raw pointers are owned exclusively by this value; PCRE2 objects
// have no thread affinity. Matching needs `&mut self`, so no sharing happens.
unsafe impl Send for Regex {}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regex")
            .field("jit", &self.jit)
            .field("groups", &self.group_count)
            .finish()
    }
}

/// Compile options beyond the defaults (UTF, UCP, LF newlines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileFlags {
    pub caseless: bool,
    pub multiline: bool,
    pub dotall: bool,
    pub extended: bool,
    /// Python's `re.ASCII`: classes like `\w` are ASCII only.
    pub ascii: bool,
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// PCRE2 refused the pattern: its message and the offset of the problem.
    #[error("{message} at offset {offset}")]
    Syntax { message: String, offset: usize },
    /// PCRE2 could not allocate a context.
    #[error("out of memory")]
    OutOfMemory,
}

impl Regex {
    /// Compiles `pattern` (already in PCRE2 syntax).
    pub fn new(pattern: &str, flags: CompileFlags, limits: Limits) -> Result<Regex, CompileError> {
        let mut opts = ffi::PCRE2_UTF;
        if !flags.ascii {
            opts |= ffi::PCRE2_UCP;
        }
        if flags.caseless {
            opts |= ffi::PCRE2_CASELESS;
        }
        if flags.multiline {
            opts |= ffi::PCRE2_MULTILINE;
        }
        if flags.dotall {
            opts |= ffi::PCRE2_DOTALL;
        }
        if flags.extended {
            opts |= ffi::PCRE2_EXTENDED;
        }
        // SAFETY: all pointers are valid or null as PCRE2 allows; every
        // object created here is freed in Drop or on the error paths.
        unsafe {
            let code = compile_lf(pattern, opts)?;
            let twin = (pattern.is_ascii() && !pattern.contains("(*")).then(|| {
                (
                    Box::from(pattern),
                    opts & !(ffi::PCRE2_UTF | ffi::PCRE2_UCP),
                )
            });
            let mut re = Regex {
                code,
                ascii_code: ptr::null_mut(),
                twin,
                md: ptr::null_mut(),
                mctx: ptr::null_mut(),
                jit_stack: ptr::null_mut(),
                jit: false,
                jit_pending: true,
                jit_stack_max: limits.jit_stack_max,
                names: HashMap::new(),
                group_count: 0,
                first: None,
                prefixes: None,
                min_len: 0,
            };
            re.mctx = ffi::pcre2_match_context_create_8(ptr::null_mut());
            if re.mctx.is_null() {
                return Err(CompileError::OutOfMemory);
            }
            ffi::pcre2_set_match_limit_8(re.mctx, limits.match_limit);
            // The interpreter also honours these; JIT ignores the depth limit.
            ffi::pcre2_set_depth_limit_8(re.mctx, limits.match_limit.min(100_000));
            ffi::pcre2_set_heap_limit_8(re.mctx, 64 * 1024);
            re.group_count = capture_count(code);
            re.names = read_names(code);
            let anchored = is_anchored(code);
            if anchored {
                re.first = first_bytes(code);
            }
            // The prefix reader knows neither caseless nor extended
            // syntax, and `^` only anchors outside multi-line mode.
            if anchored && !flags.caseless && !flags.extended && !flags.multiline {
                re.prefixes = prefix::Prefixes::of(pattern);
            }
            let mut min_len: u32 = 0;
            ffi::pcre2_pattern_info_8(
                code,
                ffi::PCRE2_INFO_MINLENGTH,
                &mut min_len as *mut u32 as *mut _,
            );
            re.min_len = min_len as usize;
            Ok(re)
        }
    }

    /// The bytes any match must start with, when PCRE2 can tell (ASCII
    /// letters of a caseless first unit in both cases).
    pub fn start_bytes(&self) -> Option<Box<[bool; 256]>> {
        // SAFETY: code is a valid compiled pattern owned by self.
        unsafe { first_bytes(self.code) }
    }

    /// The bytes a match must start with when the pattern is anchored at
    /// the start of the subject (`None`: any, as far as PCRE2 tells).
    pub(crate) fn anchored_start(&self) -> Option<&[bool; 256]> {
        self.first.as_deref()
    }

    /// The literal prefixes one of which every match starts with, when
    /// they could be read from the pattern (empty otherwise).
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.prefixes.iter().flat_map(prefix::Prefixes::iter)
    }

    /// Whether the pattern runs JIT-compiled (compiling it now if that
    /// was still pending).
    pub fn is_jit(&mut self) -> bool {
        self.ensure_jit();
        self.jit
    }

    /// Compiles the ASCII twin, JIT-compiles both and makes the match
    /// data, on first use. Where JIT is unavailable the interpreter runs
    /// the pattern itself, so the twin is dropped.
    ///
    /// Called before every search: the check is inlined, the work is not.
    #[inline]
    fn ensure_jit(&mut self) {
        if self.jit_pending {
            self.compile_jit();
        }
    }

    #[cold]
    #[inline(never)]
    fn compile_jit(&mut self) {
        self.jit_pending = false;
        // SAFETY: code and mctx are valid objects owned by self; every
        // object made here is owned by self and freed in Drop.
        unsafe {
            self.md = ffi::pcre2_match_data_create_from_pattern_8(self.code, ptr::null_mut());
            assert!(!self.md.is_null(), "out of memory");
            self.jit = ffi::pcre2_jit_compile_8(self.code, ffi::PCRE2_JIT_COMPLETE) == 0;
            if let (true, Some((pattern, opts))) = (self.jit, self.twin.take()) {
                let twin = compile_lf(&pattern, opts).unwrap_or(ptr::null_mut());
                // Only a twin with the same groups can stand in for the pattern.
                if !twin.is_null()
                    && (capture_count(twin) != self.group_count
                        || ffi::pcre2_jit_compile_8(twin, ffi::PCRE2_JIT_COMPLETE) != 0)
                {
                    ffi::pcre2_code_free_8(twin);
                } else {
                    self.ascii_code = twin;
                }
            }
            if !self.jit {
                tracing::debug!("PCRE2 JIT unavailable, using the interpreter");
                return;
            }
            self.jit_stack = ffi::pcre2_jit_stack_create_8(
                32 * 1024,
                self.jit_stack_max.max(32 * 1024),
                ptr::null_mut(),
            );
            if !self.jit_stack.is_null() {
                ffi::pcre2_jit_stack_assign_8(self.mctx, None, self.jit_stack as *mut _);
            }
        }
    }

    /// Number of capture groups (not counting the whole match).
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// Named groups and their numbers.
    pub fn names(&self) -> &HashMap<String, usize> {
        &self.names
    }

    /// Searches `subject` from its start. On a match the offsets are
    /// available through [`Regex::group`] until the next call.
    #[inline]
    pub fn search(&mut self, subject: &str) -> Result<bool, MatchAbort> {
        // Most searches end in the checks before PCRE2; only then is it
        // worth reading the whole subject for non-ASCII bytes.
        self.search_with(subject, |re| !re.ascii_code.is_null() && subject.is_ascii())
    }

    /// [`Regex::search`], told whether `subject` is all ASCII (`ascii` must
    /// be exactly `subject.is_ascii()`).
    #[inline]
    pub fn search_known(&mut self, subject: &str, ascii: bool) -> Result<bool, MatchAbort> {
        debug_assert!(!ascii || subject.is_ascii());
        self.search_with(subject, |_| ascii)
    }

    #[inline]
    fn search_with(
        &mut self,
        subject: &str,
        ascii: impl FnOnce(&Self) -> bool,
    ) -> Result<bool, MatchAbort> {
        self.ensure_jit();
        // These checks only answer "no match" where PCRE2 would too: a
        // match has at least `min_len` characters, each at least one byte,
        // and starts with one of the bytes or prefixes read at compile time.
        if subject.len() < self.min_len {
            return Ok(false);
        }
        // The first byte rules out most regexes for a table look-up; the
        // prefixes, dearer, are left for those it lets through.
        if let Some(first) = &self.first {
            match subject.as_bytes().first() {
                Some(&b) if first[usize::from(b)] => {}
                _ => return Ok(false),
            }
        }
        if let Some(prefixes) = &self.prefixes {
            if !prefixes.admits(subject.as_bytes()) {
                return Ok(false);
            }
        }
        let ascii = !self.ascii_code.is_null() && ascii(self);
        self.run(subject, ascii)
    }

    /// The PCRE2 call itself, kept out of line so that the checks before
    /// it inline into a filter's loop over its regexes: most searches end
    /// there, and a call with its register saves costs as much as they do.
    #[inline(never)]
    fn run(&mut self, subject: &str, ascii: bool) -> Result<bool, MatchAbort> {
        let code = if ascii { self.ascii_code } else { self.code };
        // SAFETY: subject is valid UTF-8 (it is a &str), so skipping PCRE2's
        // UTF check is sound; md and mctx belong to this pattern.
        // The JIT entry point skips the interpreter's option checks.
        let rc = unsafe {
            if self.jit && subject.len() <= LONG_SUBJECT {
                ffi::pcre2_jit_match_8(
                    code,
                    subject.as_ptr(),
                    subject.len(),
                    0,
                    0,
                    self.md,
                    self.mctx,
                )
            } else {
                ffi::pcre2_match_8(
                    self.code,
                    subject.as_ptr(),
                    subject.len(),
                    0,
                    ffi::PCRE2_NO_UTF_CHECK | ffi::PCRE2_NO_JIT,
                    self.md,
                    self.mctx,
                )
            }
        };
        matched(rc)
    }

    /// The offsets of the last successful search (start and end of each
    /// group, whole match first), to hand to a copy of this pattern with
    /// [`Regex::set_offsets`].
    pub(crate) fn offsets(&self) -> Option<&[usize]> {
        if self.md.is_null() {
            return None;
        }
        // SAFETY: the ovector has group_count + 1 pairs (match data was
        // created from this pattern) and lives as long as self.
        unsafe {
            let ov = ffi::pcre2_get_ovector_pointer_8(self.md);
            Some(std::slice::from_raw_parts(ov, 2 * (self.group_count + 1)))
        }
    }

    /// Makes `offsets`, taken from a copy of this pattern that searched
    /// the same subject, this pattern's last match, as if it had searched
    /// itself. Returns false (and changes nothing) when they do not fit.
    pub(crate) fn set_offsets(&mut self, offsets: &[usize]) -> bool {
        self.ensure_jit();
        if self.md.is_null() || offsets.len() != 2 * (self.group_count + 1) {
            return false;
        }
        // SAFETY: the ovector has group_count + 1 pairs, exactly the
        // length checked; only our own readers (ovector_span) look at it.
        unsafe {
            let ov = ffi::pcre2_get_ovector_pointer_8(self.md);
            std::ptr::copy_nonoverlapping(offsets.as_ptr(), ov, offsets.len());
        }
        true
    }

    /// Byte span of group `i` (0 = whole match) of the last successful search.
    pub fn group(&self, i: usize) -> Option<(usize, usize)> {
        if i > self.group_count || self.md.is_null() {
            return None;
        }
        // SAFETY: the ovector has group_count + 1 pairs (match data was
        // created from this pattern).
        unsafe { ovector_span(self.md, i) }
    }
}

/// Compiles `pattern` with LF newlines; the error is PCRE2's message with
/// the offset of the problem.
///
/// # Safety
/// The caller owns the returned code and must free it.
unsafe fn compile_lf(pattern: &str, opts: u32) -> Result<*mut ffi::pcre2_code_8, CompileError> {
    let (mut errcode, mut erroff) = (0, 0usize);
    let cctx = ffi::pcre2_compile_context_create_8(ptr::null_mut());
    if cctx.is_null() {
        return Err(CompileError::OutOfMemory);
    }
    ffi::pcre2_set_newline_8(cctx, ffi::PCRE2_NEWLINE_LF);
    let code = ffi::pcre2_compile_8(
        pattern.as_ptr(),
        pattern.len(),
        opts,
        &mut errcode,
        &mut erroff,
        cctx,
    );
    ffi::pcre2_compile_context_free_8(cctx);
    if code.is_null() {
        return Err(CompileError::Syntax {
            message: error_message(errcode),
            offset: erroff,
        });
    }
    Ok(code)
}

/// # Safety
/// `code` must be a valid compiled pattern.
unsafe fn capture_count(code: *const ffi::pcre2_code_8) -> usize {
    let mut count: u32 = 0;
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_CAPTURECOUNT,
        &mut count as *mut u32 as *mut _,
    );
    count as usize
}

/// Whether every match starts at the start offset (PCRE2 sets
/// `PCRE2_ANCHORED` for `^...` outside multi-line mode).
///
/// # Safety
/// `code` must be a valid compiled pattern.
unsafe fn is_anchored(code: *const ffi::pcre2_code_8) -> bool {
    let mut opts: u32 = 0;
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_ALLOPTIONS,
        &mut opts as *mut u32 as *mut _,
    );
    opts & ffi::PCRE2_ANCHORED != 0
}

/// The bytes a match can start with (at whatever position), from PCRE2's
/// first code unit or start bitmap; `None` when PCRE2 does not know.
unsafe fn first_bytes(code: *const ffi::pcre2_code_8) -> Option<Box<[bool; 256]>> {
    let mut kind: u32 = 0;
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_FIRSTCODETYPE,
        &mut kind as *mut u32 as *mut _,
    );
    let mut set = Box::new([false; 256]);
    if kind == 1 {
        let mut unit: u32 = 0;
        ffi::pcre2_pattern_info_8(
            code,
            ffi::PCRE2_INFO_FIRSTCODEUNIT,
            &mut unit as *mut u32 as *mut _,
        );
        // PCRE2 does not say whether the unit is caseless: allow both
        // cases, and give up on non-ASCII, whose other case may start with
        // another byte.
        let b = u8::try_from(unit).ok().filter(u8::is_ascii)?;
        set[usize::from(b.to_ascii_lowercase())] = true;
        set[usize::from(b.to_ascii_uppercase())] = true;
        return Some(set);
    }
    let mut bitmap: *const u8 = ptr::null();
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_FIRSTBITMAP,
        &mut bitmap as *mut *const u8 as *mut _,
    );
    if bitmap.is_null() {
        return None;
    }
    let bits = std::slice::from_raw_parts(bitmap, 32);
    for (b, slot) in set.iter_mut().enumerate() {
        *slot = bits[b / 8] & (1 << (b % 8)) != 0;
    }
    Some(set)
}

/// Reads PCRE2's name table.
unsafe fn read_names(code: *const ffi::pcre2_code_8) -> HashMap<String, usize> {
    let mut names = HashMap::new();
    let mut count: u32 = 0;
    let mut entry: u32 = 0;
    let mut table: *const u8 = ptr::null();
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_NAMECOUNT,
        &mut count as *mut u32 as *mut _,
    );
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_NAMEENTRYSIZE,
        &mut entry as *mut u32 as *mut _,
    );
    ffi::pcre2_pattern_info_8(
        code,
        ffi::PCRE2_INFO_NAMETABLE,
        &mut table as *mut *const u8 as *mut _,
    );
    if table.is_null() {
        return names;
    }
    for i in 0..count as usize {
        let e = std::slice::from_raw_parts(table.add(i * entry as usize), entry as usize);
        let num = ((e[0] as usize) << 8) | e[1] as usize;
        let name = &e[2..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        names.insert(String::from_utf8_lossy(&name[..end]).into_owned(), num);
    }
    names
}

impl Drop for Regex {
    fn drop(&mut self) {
        // SAFETY: each pointer was created by PCRE2 and is freed once; the
        // free functions accept null.
        unsafe {
            ffi::pcre2_match_data_free_8(self.md);
            ffi::pcre2_match_context_free_8(self.mctx);
            if !self.jit_stack.is_null() {
                ffi::pcre2_jit_stack_free_8(self.jit_stack);
            }
            ffi::pcre2_code_free_8(self.code);
            if !self.ascii_code.is_null() {
                ffi::pcre2_code_free_8(self.ascii_code);
            }
        }
    }
}

/// A compiled, JIT-compiled pattern that threads may share (date templates
/// live in a process-wide list); the matching state is a [`MatchState`]
/// owned by each user. Matching goes straight to the JIT entry point: the
/// `pcre2` crate's path checks options and the subject's UTF-8 on every
/// call, which costs more than a failed anchored match itself.
pub struct SharedCode {
    code: *mut ffi::pcre2_code_8,
    /// Whether JIT compilation succeeded; it runs on the first search, so
    /// that templates no log ever uses cost no JIT memory.
    jit: std::sync::OnceLock<bool>,
    group_count: usize,
}

// SAFETY: a compiled (and JIT-compiled) pattern is read-only; PCRE2
// documents it as shareable between threads. The pointer is owned.
unsafe impl Send for SharedCode {}
// SAFETY: as above, nothing mutates the code after construction.
unsafe impl Sync for SharedCode {}

impl std::fmt::Debug for SharedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCode")
            .field("jit", &self.jit.get())
            .field("groups", &self.group_count)
            .finish()
    }
}

impl SharedCode {
    /// Compiles `pattern` (PCRE2 syntax, newlines LF), in UTF mode with
    /// Unicode properties when `utf`, else byte by byte with ASCII classes.
    pub fn new(pattern: &str, utf: bool) -> Result<SharedCode, CompileError> {
        let opts = if utf {
            ffi::PCRE2_UTF | ffi::PCRE2_UCP
        } else {
            0
        };
        // SAFETY: the code is owned here and freed in Drop.
        unsafe {
            let code = compile_lf(pattern, opts)?;
            Ok(SharedCode {
                code,
                jit: std::sync::OnceLock::new(),
                group_count: capture_count(code),
            })
        }
    }

    /// Number of capture groups (not counting the whole match).
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// JIT-compiles the code once, whichever thread searches first.
    fn jit(&self) -> bool {
        // SAFETY: the OnceLock runs this once and makes every other thread
        // wait for it, so no search reads the code while PCRE2 adds the JIT
        // code to it.
        *self.jit.get_or_init(|| unsafe {
            ffi::pcre2_jit_compile_8(self.code, ffi::PCRE2_JIT_COMPLETE) == 0
        })
    }

    /// The bytes any match must start with, when PCRE2 can tell.
    pub fn start_bytes(&self) -> Option<Box<[bool; 256]>> {
        // SAFETY: code is a valid compiled pattern owned by self.
        unsafe { first_bytes(self.code) }
    }
}

impl Drop for SharedCode {
    fn drop(&mut self) {
        // SAFETY: created by PCRE2, freed once.
        unsafe { ffi::pcre2_code_free_8(self.code) }
    }
}

/// Match data for searches with a [`SharedCode`] of at most `groups`
/// capture groups.
pub struct MatchState {
    md: *mut ffi::pcre2_match_data_8,
    groups: usize,
}

// SAFETY: the match data is owned exclusively; matching needs `&mut self`.
unsafe impl Send for MatchState {}
// SAFETY: through `&self` the match data is only read (`group`), and
// writing it needs `&mut self`.
unsafe impl Sync for MatchState {}

impl std::fmt::Debug for MatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchState")
            .field("groups", &self.groups)
            .finish()
    }
}

impl MatchState {
    /// Room for `groups` capture groups plus the whole match, allocated
    /// on the first search (a daemon's date detectors keep one per
    /// template, and most templates never see a line).
    pub fn new(groups: usize) -> MatchState {
        MatchState {
            md: ptr::null_mut(),
            groups,
        }
    }

    /// Searches `subject` from byte `start` (a char boundary; the regex may
    /// look behind it). Returns the whole match; groups are then available
    /// through [`MatchState::group`]. Compiled-in limits (`(*LIMIT_MATCH=)`)
    /// apply; the JIT uses its default machine stack, as the `pcre2` crate
    /// does.
    pub fn search_at(
        &mut self,
        code: &SharedCode,
        subject: &str,
        start: usize,
    ) -> Result<Option<(usize, usize)>, MatchAbort> {
        if start > subject.len() || code.group_count > self.groups {
            return Ok(None);
        }
        if self.md.is_null() {
            let pairs = u32::try_from(self.groups + 1).unwrap_or(u32::MAX);
            // SAFETY: a null general context means malloc/free.
            self.md = unsafe { ffi::pcre2_match_data_create_8(pairs, ptr::null_mut()) };
            assert!(!self.md.is_null(), "out of memory");
        }
        // SAFETY: subject is valid UTF-8 (a &str) and start is within it,
        // so skipping the UTF check is sound; md has room for every group
        // of code (checked above).
        let jit = code.jit();
        let rc = unsafe {
            if jit {
                ffi::pcre2_jit_match_8(
                    code.code,
                    subject.as_ptr(),
                    subject.len(),
                    start,
                    0,
                    self.md,
                    ptr::null_mut(),
                )
            } else {
                ffi::pcre2_match_8(
                    code.code,
                    subject.as_ptr(),
                    subject.len(),
                    start,
                    ffi::PCRE2_NO_UTF_CHECK,
                    self.md,
                    ptr::null_mut(),
                )
            }
        };
        Ok(if matched(rc)? { self.group(0) } else { None })
    }

    /// Byte span of group `i` (0 = whole match) of the last successful
    /// search.
    pub fn group(&self, i: usize) -> Option<(usize, usize)> {
        if i > self.groups || self.md.is_null() {
            return None;
        }
        // SAFETY: the ovector has groups + 1 pairs.
        unsafe { ovector_span(self.md, i) }
    }
}

impl Drop for MatchState {
    fn drop(&mut self) {
        // SAFETY: created by PCRE2 (or null, which PCRE2 accepts), freed once.
        unsafe { ffi::pcre2_match_data_free_8(self.md) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_matches_and_names() {
        let mut re = Regex::new(
            r"from (?P<ip>\d+\.\d+)(?: (?P<x>y))?",
            CompileFlags::default(),
            Limits::default(),
        )
        .unwrap();
        assert!(re.is_jit());
        assert_eq!(re.names()["ip"], 1);
        assert!(re.search("login from 1.2 ok").unwrap());
        assert_eq!(re.group(1), Some((11, 14)));
        assert_eq!(re.group(2), None);
        assert!(!re.search("nothing").unwrap());
    }

    #[test]
    fn anchored_prefilter_agrees_with_pcre2() {
        let flags = CompileFlags::default();
        let mut re = Regex::new(r"^Failed (\S+)", flags, Limits::default()).unwrap();
        assert!(re.first.is_some());
        assert!(re.search("Failed x").unwrap());
        assert!(!re.search("failed x").unwrap());
        assert!(!re.search("Fail").unwrap());
        let caseless = CompileFlags {
            caseless: true,
            ..flags
        };
        let mut re = Regex::new(r"^failed", caseless, Limits::default()).unwrap();
        assert!(re.search("FAILED").unwrap());
        let mut re = Regex::new(r"^(?:[iI]nvalid|ille)", flags, Limits::default()).unwrap();
        assert!(re.search("Invalid").unwrap() && re.search("ille").unwrap());
        assert!(!re.search("Jnvalid").unwrap());
        // Not anchored in multi-line mode: no first-byte shortcut.
        let ml = CompileFlags {
            multiline: true,
            ..flags
        };
        let mut re = Regex::new(r"^b", ml, Limits::default()).unwrap();
        assert!(re.first.is_none());
        assert!(re.search("a\nb").unwrap());
        let mut re = Regex::new(r"^(?:é|x)", flags, Limits::default()).unwrap();
        assert!(re.search("é").unwrap());
    }

    /// On ASCII subjects the byte-mode twin answers as the UTF regex does.
    #[test]
    fn ascii_twin_agrees_with_utf() {
        let pats = [
            r"^\s*(?:\S+ )?sshd(?:\[\d+\])?:\s+(?P<c>.+)$",
            r"\bfor (?P<u>\w+) from (?P<h>[\d.]+)\b",
            r"(?i)^failed [[:alpha:]]+ (?P<x>\W+)",
            r"(?<=a)b\Bc|\p{Lu}\d",
        ];
        let subjects = [
            "host sshd[12]: Failed password for root from 1.2.3.4 port 22",
            " sshd: x",
            "FAILED Password --",
            "abc Z9",
            "",
            "tab\there\x0b\x0c\r",
        ];
        for p in pats {
            let mut re = Regex::new(p, CompileFlags::default(), Limits::default()).unwrap();
            assert!(re.is_jit());
            assert!(!re.ascii_code.is_null(), "{p}");
            for s in subjects {
                let fast = re.search_known(s, true).unwrap();
                let fast_groups: Vec<_> = (0..=re.group_count()).map(|i| re.group(i)).collect();
                let slow = re.search_known(s, false).unwrap();
                let slow_groups: Vec<_> = (0..=re.group_count()).map(|i| re.group(i)).collect();
                assert_eq!((fast, fast_groups), (slow, slow_groups), "{p} on {s:?}");
            }
        }
        // Not built from a non-ASCII pattern.
        let mut re = Regex::new("é+", CompileFlags::default(), Limits::default()).unwrap();
        assert!(re.is_jit());
        assert!(re.ascii_code.is_null());
    }

    #[test]
    fn bad_pattern_is_an_error() {
        let e = Regex::new("(a", CompileFlags::default(), Limits::default()).unwrap_err();
        assert!(matches!(e, CompileError::Syntax { offset: 2, .. }), "{e}");
    }

    #[test]
    fn catastrophic_backtracking_is_bounded() {
        let mut re = Regex::new(r"^(a+)+$", CompileFlags::default(), Limits::default()).unwrap();
        let s = format!("{}b", "a".repeat(64));
        let t = std::time::Instant::now();
        assert_eq!(re.search(&s), Err(MatchAbort::Limit));
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }
}
