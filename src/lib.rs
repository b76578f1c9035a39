//! fail3ban: a drop-in replacement for fail2ban.
//!
//! The library holds every part; the binaries in `src/bin` are glue.

pub mod action;
pub mod ai;
pub mod client;
pub mod config;
pub mod dns;
pub mod filter;
pub mod jail;
pub mod metrics;
pub mod netif;
pub mod pickle;
pub mod server;
pub mod source;
pub mod store;
pub mod untrusted_file;
