//! Bans and ban history from a fail2ban database (schema version 4, what
//! fail2ban 0.11 to 1.x write, Debian 12's included) into a fail3ban store.
//!
//! The fail2ban file is opened read-only and never changed, so that the
//! administrator can go back to fail2ban. Rows are added in time order
//! through [`Store::add_ban`], so fail3ban's own "latest ban per address"
//! (what is restored at start, and what bantime.increment reads) ends up
//! as fail2ban had it.

use std::path::{Path, PathBuf};

use rusqlite::{types::Value, Connection, OpenFlags};

use super::{Ban, BanData, Store};

/// The only fail2ban schema read: bans with bantime and bancount, and bips.
pub const FAIL2BAN_SCHEMA: i64 = 4;

/// Why an import failed. Each names the fail2ban database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file cannot be opened or read as an SQLite database.
    #[error("cannot read fail2ban database {path}: {source}")]
    Read {
        /// The fail2ban database.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An SQLite database, but not fail2ban's.
    #[error("{path} is not a fail2ban database (no fail2banDb table)")]
    NotFail2ban {
        /// The file.
        path: PathBuf,
    },
    /// A fail2ban database of a schema this import does not read.
    #[error("fail2ban database {path} has schema version {found}; only version {FAIL2BAN_SCHEMA} (fail2ban 0.11 and later) can be imported")]
    Schema {
        /// The fail2ban database.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// Writing to fail3ban's store failed.
    #[error(transparent)]
    Store(#[from] super::Error),
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportStats {
    /// Ban rows added to fail3ban's history.
    pub imported: usize,
    /// Rows fail3ban already had (an earlier import, or newer bans of its own).
    pub skipped: usize,
    /// Of the imported, bans still in force at `now` (restored at start).
    pub active: usize,
    /// Jails the bans belong to, sorted.
    pub jails: Vec<String>,
}

/// Imports every ban of the fail2ban database at `src` into `dst`.
pub fn import_fail2ban(src: &Path, dst: &dyn Store, now: f64) -> Result<ImportStats, ImportError> {
    let read = |source| ImportError::Read {
        path: src.to_path_buf(),
        source,
    };
    // Opening read-only never creates the file: a wrong path is an error.
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(read)?;
    let has_version_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'fail2banDb'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(read)?
        > 0;
    if !has_version_table {
        return Err(ImportError::NotFail2ban {
            path: src.to_path_buf(),
        });
    }
    let version: i64 = conn
        .query_row("SELECT version FROM fail2banDb LIMIT 1", [], |r| r.get(0))
        .map_err(read)?;
    if version != FAIL2BAN_SCHEMA {
        return Err(ImportError::Schema {
            path: src.to_path_buf(),
            found: version,
        });
    }
    // bips keeps the latest ban of an address after fail2ban purged its
    // history rows: both tables, one row per (jail, ip, time).
    let mut stmt = conn
        .prepare(
            "SELECT jail, ip, timeofban, MAX(bantime), MAX(bancount), MAX(data) FROM ( \
               SELECT jail, ip, timeofban, bantime, bancount, data FROM bans \
               UNION ALL SELECT jail, ip, timeofban, bantime, bancount, data FROM bips) \
             GROUP BY jail, ip, timeofban ORDER BY timeofban, jail, ip",
        )
        .map_err(read)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Value>(5)?,
            ))
        })
        .map_err(read)?;
    let mut stats = ImportStats::default();
    for row in rows {
        let (jail, fid, time, bantime, bancount, data) = row.map_err(read)?;
        if dst
            .previous_ban(&fid, Some(&jail))?
            .is_some_and(|h| h.time >= time)
        {
            stats.skipped += 1;
            continue;
        }
        let mut ban = Ban::new(&jail, &fid, time, bantime);
        ban.bancount = u32::try_from(bancount.max(1)).unwrap_or(u32::MAX);
        ban.data = ban_data(data);
        dst.add_ban(&ban)?;
        stats.imported += 1;
        if ban.is_active(now) {
            stats.active += 1;
        }
        if !stats.jails.contains(&jail) {
            stats.jails.push(jail);
        }
    }
    stats.jails.sort();
    Ok(stats)
}

/// fail2ban's `data` column: JSON text (`{"matches": [...], "failures": N}`)
/// or NULL. Anything unreadable becomes an empty record rather than
/// stopping the import: the ban itself is what matters.
fn ban_data(v: Value) -> BanData {
    let text = match v {
        Value::Text(t) => t,
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return BanData::default(),
    };
    serde_json::from_str(&text).unwrap_or_default()
}
