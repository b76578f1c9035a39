//! Counting and ban decisions: failures per id within findtime, bans and
//! their times (bantime.increment included), and the ignore lists.
//!
//! Pure and synchronous. Time is passed in as unix seconds (`f64`), as
//! fail2ban's `MyTime` lets its tests do; nothing here sleeps, spawns a
//! process, resolves a name on its own or opens the database: the caller
//! runs what is asked of it and feeds the answers back.

pub mod ban_manager;
pub mod engine;
pub mod error;
pub mod fail_manager;
pub mod formula;
pub mod ignore;
pub mod increment;
pub mod status;
pub mod ticket;

pub use ban_manager::{BanManager, NotAdded};
pub use engine::{Engine, Event};
pub use error::Error;
pub use fail_manager::FailManager;
pub use ignore::{IgnoreList, Resolver};
pub use increment::{BanHistory, Increment, IncrementOptions, PrevBan};
pub use ticket::Ticket;
