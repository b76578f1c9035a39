//! What the source (followed logs) and the server (its own log, pid file
//! and socket) share when they open paths that others may control: a
//! name for what a path turned out to be, and the `O_NONBLOCK` flag they
//! open with (so that a FIFO cannot block the open) cleared once the file
//! is known to be one that is safe to use.

use std::fs::{File, FileType};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;

/// What kind of file a path is, for messages.
pub fn kind(ft: FileType) -> &'static str {
    if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "character device"
    }
}

/// Clears `O_NONBLOCK` on `file`: reads of a regular file never wait
/// anyway, and a device written to must not drop lines.
pub fn clear_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns, reading and setting its
    // status flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
