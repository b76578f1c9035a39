//! The opt-in Prometheus/OpenMetrics endpoint (`metrics = ADDR:PORT` in
//! the [Definition] of fail3ban.conf or fail2ban.local).
//!
//! Off by default, and then nothing of it exists: no socket, no task, no
//! table. When on, a scrape reads what the server already counts (each
//! jail's totals, under its lock for one copy of a few integers) and the
//! process' own numbers from /proc. Only the action runs are timed where
//! they happen, because nothing else keeps their durations, and only the
//! file sources note how far they read (their lag is the file's size
//! beyond that, taken at scrape time).

pub mod actions;
pub mod address;
pub mod encode;
pub mod http;
pub mod process;
pub mod sample;

pub use actions::enabled;
pub use address::{parse_address, AddressError};
pub use http::{serve, Sampler};
pub use sample::{AiSample, JailSample, Snapshot, SourceLag};
