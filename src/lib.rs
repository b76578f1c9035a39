//! fail3ban: a drop-in replacement for fail2ban.
//!
//! The library holds every part; the binaries in `src/bin` are glue.

pub mod config;
pub mod filter;
pub mod source;
