//! Errors of the jail options this module reads itself.

use super::formula::FormulaError;

/// A jail option that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `bantime.formula` or `bantime.factor` is not an accepted expression.
    #[error("{option} = {value:?}: {source}")]
    Formula {
        /// The option, e.g. `bantime.formula`.
        option: &'static str,
        /// Its value.
        value: String,
        /// Why it was refused.
        #[source]
        source: FormulaError,
    },
    /// A `bantime.multipliers` item is not an integer.
    #[error("bantime.multipliers = {value:?}: {item:?} is not an integer")]
    Multiplier {
        /// The option's value.
        value: String,
        /// The offending item.
        item: String,
    },
    /// A time option (`bantime.maxtime`, `bantime.rndtime`, `max-time`) is
    /// not a fail2ban time string.
    #[error("{option} = {value:?}: {msg}")]
    Time {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// Why.
        msg: crate::config::time::TimeError,
    },
    /// `ignorecache` could not be read.
    #[error("ignorecache = {value:?}: {msg}")]
    IgnoreCache {
        /// Its value.
        value: String,
        /// Why.
        msg: String,
    },
}
