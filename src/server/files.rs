//! Opening the files the server writes itself: its log and its pid file.
//!
//! Their paths may lie where others can write too (`-p /tmp/...`, a log
//! directory an application shares). A symlink planted there would make
//! root create, truncate or write the file it names; a FIFO would block
//! the open; and a file another user owns or may write lets them forge
//! the lines the recidive jail bans on. So the last component is never
//! followed (`O_NOFOLLOW`), the open cannot block (`O_NONBLOCK`, cleared
//! once the file is known), and what was opened must be a regular file
//! owned by the server's user or root, or a device (only root makes
//! those: `/dev/null`). A regular file loses write access for group and
//! others, which an older server or a careless umask may have left.

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Opens `path` for appending, creating it (and its directory) with the
/// modes the umask leaves, after the checks above.
pub fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| explain(path, e))?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me && meta.uid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {}, who could write lines into it",
                    path.display(),
                    meta.uid()
                ),
            ));
        }
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & !0o022))?;
        }
    } else if !ft.is_char_device() {
        return Err(not_regular(path, ft));
    }
    crate::untrusted_file::clear_nonblocking(&file)?;
    Ok(file)
}

fn not_regular(path: &Path, ft: FileType) -> io::Error {
    let what = if ft.is_symlink() {
        "which fail3ban does not follow"
    } else {
        "not a regular file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a {}, {what}",
            path.display(),
            crate::untrusted_file::kind(ft)
        ),
    )
}

/// Names the cause when the open failed on a symlink (`ELOOP`) or on a
/// FIFO without a reader (`ENXIO`).
fn explain(path: &Path, e: io::Error) -> io::Error {
    if !matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) {
        return e;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) => not_regular(path, m.file_type()),
        Err(_) => e,
    }
}
