//! The daemon: jails built from the configuration, run on tokio, driven
//! through the control socket.

pub mod log;
pub mod spec;
