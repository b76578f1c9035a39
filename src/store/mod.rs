//! Persistence: bans and their history, log positions, journal cursors, and
//! what the AI part keeps (verdict cache, audit trail).
//!
//! The data has the shapes of fail2ban's database (`jails`, `logs`, `bans`,
//! `bips`), so that importing one is a copy of rows. The store knows nothing
//! of jail logic: the caller passes the time in (`f64` unix seconds, from
//! its injected clock) and decides what a ban means, for instance how a
//! restored ban's time is corrected to the jail's current bantime.
//!
//! The API is synchronous; the async server calls it through
//! `spawn_blocking`. [`Store`] is the seam for a second backend (a database
//! shared by a fleet); [`SqliteStore`] is the local one.
//!
//! ```
//! use fail3ban::store::{Ban, SqliteStore, Settings, Store};
//!
//! let store = SqliteStore::open(":memory:", Settings::default()).unwrap();
//! store.add_jail("sshd").unwrap();
//! store.add_ban(&Ban::new("sshd", "192.0.2.1", 1000.0, 600.0)).unwrap();
//! assert_eq!(store.current_bans(Some("sshd"), 1200.0).unwrap().len(), 1);
//! assert!(store.current_bans(Some("sshd"), 1600.0).unwrap().is_empty());
//! ```

mod ai;
mod error;
mod import;
mod schema;
mod sqlite;

use serde::{Deserialize, Serialize};

pub use ai::{AiStore, EvidenceBound, EvidenceKind, EvidenceLine, QueuedLine, Rule, RuleStatus};
pub use error::Error;
pub use import::{import_fail2ban, ImportError, ImportStats, FAIL2BAN_SCHEMA};
pub use sqlite::SqliteStore;

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// fail2ban's default `dbpurgeage`: one day.
pub const DEFAULT_PURGE_AGE: f64 = 86_400.0;
/// fail2ban's default `dbmaxmatches`.
pub const DEFAULT_MAX_MATCHES: usize = 10;

/// The database options of fail2ban.conf, changeable at run time as
/// `set dbpurgeage` and `set dbmaxmatches` do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// `dbpurgeage`: bans older than this many seconds are purged.
    pub purge_age: f64,
    /// `dbmaxmatches`: how many matched lines a ban keeps; 0 keeps none.
    pub max_matches: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            purge_age: DEFAULT_PURGE_AGE,
            max_matches: DEFAULT_MAX_MATCHES,
        }
    }
}

/// What a ban carries besides its times, stored as JSON like fail2ban's
/// `data` column (`{"matches": [...], "failures": n, ...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BanData {
    /// The log lines that led to the ban, oldest first.
    #[serde(default)]
    pub matches: Vec<String>,
    /// How many failures led to the ban.
    #[serde(default = "one")]
    pub failures: u32,
    /// Anything else (values of `<F-*>` groups, keys fail2ban wrote), kept
    /// as found so that an imported row loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

impl Default for BanData {
    fn default() -> Self {
        BanData {
            matches: Vec::new(),
            failures: 1,
            extra: serde_json::Map::new(),
        }
    }
}

/// One ban of one failure id in one jail.
#[derive(Clone, Debug, PartialEq)]
pub struct Ban {
    /// The jail's name.
    pub jail: String,
    /// The failure id: an address, or whatever `<F-ID>` captured.
    pub fid: String,
    /// When the ban started, unix seconds.
    pub time: f64,
    /// Its length in seconds; negative (fail2ban writes -1) is permanent.
    pub bantime: f64,
    /// How many times this id has been banned, this ban included.
    pub bancount: u32,
    /// Matches, failures and the rest.
    pub data: BanData,
}

impl Ban {
    /// A first ban with no matches recorded.
    pub fn new(jail: &str, fid: &str, time: f64, bantime: f64) -> Self {
        Ban {
            jail: jail.to_owned(),
            fid: fid.to_owned(),
            time,
            bantime,
            bancount: 1,
            data: BanData::default(),
        }
    }

    /// True for a ban that never ends.
    pub fn is_permanent(&self) -> bool {
        self.bantime < 0.0
    }

    /// True when the ban is still in force at `now`.
    pub fn is_active(&self, now: f64) -> bool {
        self.is_permanent() || self.time + self.bantime > now
    }
}

/// What bantime.increment needs to know about an id's previous bans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BanHistory {
    /// Bans so far (summed over jails when asked across jails).
    pub bancount: u32,
    /// Start of the latest ban.
    pub time: f64,
    /// Length of the latest ban.
    pub bantime: f64,
}

/// All recorded bans of one id, merged, as fail2ban's `<ipmatches>`,
/// `<ipfailures>` and their per-jail variants want them.
#[derive(Clone, Debug, PartialEq)]
pub struct MergedBans {
    /// The failure id.
    pub fid: String,
    /// How many ban records were merged.
    pub bans: usize,
    /// Failures summed over those bans.
    pub failures: u32,
    /// The newest matches, oldest first, at most `dbmaxmatches`.
    pub matches: Vec<String>,
    /// Start of the latest ban.
    pub last_time: f64,
}

/// Rows removed by [`Store::purge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Ban history rows.
    pub bans: usize,
    /// Latest-ban rows (kept longer: three times their bantime past the
    /// purge age; permanent ones never).
    pub bips: usize,
    /// Disabled jails left with no bans.
    pub jails: usize,
    /// Expired AI verdicts.
    pub verdicts: usize,
}

/// A cached AI verdict for one normalised line template.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The normalised template key.
    pub template: String,
    /// The verdict as the AI part encodes it.
    pub verdict: String,
    /// How often the cache answered for this template.
    pub hits: u64,
    /// The model that gave the verdict.
    pub model: String,
    /// Tokens spent on it.
    pub tokens: u64,
    /// When it was given.
    pub created: f64,
    /// When it stops being trusted.
    pub expiry: f64,
}

/// One entry of the AI audit trail.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// When it happened.
    pub time: f64,
    /// The jail concerned, if any.
    pub jail: Option<String>,
    /// What happened (the AI part names its kinds).
    pub kind: String,
    /// The template concerned, if any.
    pub template: Option<String>,
    /// Everything else, as JSON.
    pub detail: serde_json::Value,
}

/// Persistence for the daemon. Every method is a short blocking call; the
/// implementation keeps its own locking, so a `Store` is shared as
/// `Arc<dyn Store>` by all jails.
pub trait Store: Send + Sync {
    /// The current `dbpurgeage` and `dbmaxmatches`.
    fn settings(&self) -> Settings;
    /// Changes them; they apply to the following calls.
    fn set_settings(&self, settings: Settings);

    /// Records a jail as enabled (again).
    fn add_jail(&self, jail: &str) -> Result<()>;
    /// Marks a jail disabled; its bans stay until purged, like fail2ban.
    fn del_jail(&self, jail: &str) -> Result<()>;
    /// Jail names, all or only those enabled or disabled, sorted.
    fn jails(&self, enabled: Option<bool>) -> Result<Vec<String>>;

    /// Where reading `path` stopped last time, if the file still starts with
    /// the same line. `None`: never read, or replaced since (different first
    /// line), so the caller starts afresh.
    fn log_position(&self, jail: &str, path: &str, first_line_md5: &str) -> Result<Option<u64>>;
    /// Records where reading `path` stopped.
    fn set_log_position(
        &self,
        jail: &str,
        path: &str,
        first_line_md5: &str,
        pos: u64,
    ) -> Result<()>;
    /// Log paths recorded for a jail, sorted.
    fn log_paths(&self, jail: &str) -> Result<Vec<String>>;

    /// Every saved position of a jail: (path, first-line md5, offset).
    fn log_positions(&self, jail: &str) -> Result<Vec<(String, String, u64)>>;

    /// The systemd journal cursor a jail stopped at.
    fn journal_cursor(&self, jail: &str) -> Result<Option<String>>;
    /// Records the journal cursor a jail stopped at.
    fn set_journal_cursor(&self, jail: &str, cursor: &str) -> Result<()>;

    /// Records a ban, in the history and as the id's latest ban in its jail.
    /// Matches are cut to the newest `dbmaxmatches`. The jail is recorded if
    /// unknown.
    fn add_ban(&self, ban: &Ban) -> Result<()>;
    /// Forgets the bans of one id in a jail, or all bans of the jail
    /// (`fid = None`). Returns how many ids had a latest ban there.
    fn remove_bans(&self, jail: &str, fid: Option<&str>) -> Result<usize>;
    /// Latest bans still in force at `now` (permanent ones always), of one
    /// jail or of all, ordered by id: what is restored at start.
    fn current_bans(&self, jail: Option<&str>, now: f64) -> Result<Vec<Ban>>;
    /// An id's previous ban in one jail, or across all jails (bancount
    /// summed, latest ban's times) for `bantime.overalljails`.
    fn previous_ban(&self, fid: &str, jail: Option<&str>) -> Result<Option<BanHistory>>;
    /// An id's recorded bans, in one jail or all, merged.
    fn merged_bans(&self, fid: &str, jail: Option<&str>) -> Result<Option<MergedBans>>;
    /// Removes what is older than `dbpurgeage` at `now`, as fail2ban does,
    /// and expired verdicts.
    fn purge(&self, now: f64) -> Result<PurgeStats>;

    /// Stores (or replaces) a verdict.
    fn put_verdict(&self, verdict: &Verdict) -> Result<()>;
    /// A verdict still valid at `now`, counting the hit.
    fn lookup_verdict(&self, template: &str, now: f64) -> Result<Option<Verdict>>;
    /// Appends to the audit trail; returns the entry's id.
    fn add_audit(&self, entry: &AuditEntry) -> Result<i64>;
    /// Audit entries at or after `since`, oldest first, at most `limit`.
    fn audit_entries(&self, since: f64, limit: usize) -> Result<Vec<(i64, AuditEntry)>>;

    /// The AI part's queue and rules, if this backend keeps them.
    fn ai(&self) -> Option<&dyn AiStore> {
        None
    }
}
