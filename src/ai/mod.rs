//! The AI rule generator: lines no filter knew become validated filter.d
//! files.
//!
//! The flow: [`prescreen`] keeps lines that name a remote address nobody
//! told us to ignore, [`template`] keys them by shape, the verdict cache in
//! the store answers shapes already judged, [`intake`] gathers samples of
//! a new shape (within caps of new shapes per address and per jail) until
//! [`shape`] has seen it from enough sources to tell which address is the
//! client, and keeps the backlog in order, [`client`] asks the model ([`prompt`]) about it
//! within the [`budget`], [`answer`] reads its reply strictly,
//! [`validate`] tries the proposed regex in our own filter engine against
//! its samples and the [`evidence`] kept of the log, and
//! [`writer`] writes the filter and its jail for the config watcher to load.
//! [`pipeline`] runs all of it on one task, fed by the jails through a
//! bounded channel; [`commands`] answers the `ai` commands. The model never names the address to ban and never
//! writes anything but a failregex.

pub mod answer;
pub mod budget;
pub mod client;
pub mod commands;
pub mod evidence;
pub mod intake;
mod metrics;
pub mod pipeline;
pub mod prescreen;
pub mod prompt;
mod records;
pub mod shape;
pub mod template;
pub mod validate;
pub mod writer;

pub use crate::config::ai::{Mode, Settings, SettingsError};
pub use pipeline::{AiHandle, Unmatched};

/// Lines are cut to this before anything else looks at them, so that a
/// 1 MiB line costs no more than a short one.
pub const MAX_LINE: usize = 4096;

/// Cuts `s` to at most `max` bytes, at a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
