//! The local store: one SQLite file (or `:memory:`).
//!
//! One connection behind a `Mutex`, rather than a connection per thread:
//! SQLite lets one writer in at a time whatever we do, every call here is
//! a short statement or two, and a single connection is the only way
//! `:memory:` is one database rather than one per thread. It also means
//! our own threads never see `SQLITE_BUSY`; the busy timeout is only for
//! other processes (an administrator's `sqlite3`, a second fail3ban) that
//! open the same file, which WAL mode lets read while we write.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::Serialize;

use super::schema::{self, Found, LATEST};
use super::{
    AuditEntry, Ban, BanData, BanHistory, Error, MergedBans, PurgeStats, Result, Settings, Store,
    Verdict,
};

const MEMORY: &str = ":memory:";

/// Long enough to ride out another process's write, short enough that a
/// stuck lock shows up as an error in the log instead of a hung jail.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// fail2ban keeps an id's latest ban this many bantimes past the purge age,
/// so that bantime.increment still knows recent repeat offenders.
const OUTDATED_FACTOR: f64 = 3.0;

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    settings: Settings,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory
    /// one for `":memory:"`, and brings its schema up to date.
    ///
    /// A file that is not a database or fails SQLite's quick integrity
    /// check is renamed to `PATH.corrupt-SECONDS` (with its `-wal`/`-shm`),
    /// logged as an error, and replaced by an empty database: losing ban
    /// history is better than a daemon that does not start.
    pub fn open(path: impl AsRef<Path>, settings: Settings) -> Result<Self> {
        let path = path.as_ref();
        if path.as_os_str() == MEMORY {
            return Self::connect(path, Connection::open_in_memory(), settings);
        }
        create_private(path)?;
        match Self::connect(path, Connection::open(path), settings) {
            Err(Error::Corrupt { source, .. }) => {
                let to = move_aside(path)?;
                create_private(path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %to.display(),
                    cause = %source,
                    "database is corrupt: moved it aside, starting with an empty database",
                );
                Self::connect(path, Connection::open(path), settings)
            }
            other => other,
        }
    }

    fn connect(
        path: &Path,
        conn: rusqlite::Result<Connection>,
        settings: Settings,
    ) -> Result<Self> {
        let e = |err| Error::from_sqlite(path, err);
        let mut conn = conn.map_err(e)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(e)?;
        // SQLite opens lazily: garbage only shows on the first read, so read
        // everything once now, while moving the file aside is still cheap.
        quick_check(&conn).map_err(e)?;
        // Decided before anything is written: switching to WAL already
        // rewrites the header of a file that may not be ours.
        let found = match schema::inspect(&conn).map_err(e)? {
            Found::Foreign => {
                return Err(Error::Foreign {
                    path: path.to_path_buf(),
                })
            }
            Found::Ours(found) if found > LATEST => {
                return Err(Error::FutureVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: LATEST,
                })
            }
            Found::Ours(found) => found,
        };
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("wal") && path.as_os_str() != MEMORY {
            tracing::warn!(path = %path.display(), mode, "database cannot use WAL mode");
        }
        // With WAL, NORMAL loses at most the last commits on power loss and
        // never corrupts; FULL would fsync on every log position update.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(e)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(e)?;
        schema::migrate(&mut conn, found, LATEST).map_err(e)?;
        tracing::info!(path = %path.display(), "connected to database");
        Ok(SqliteStore {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { conn, settings }),
        })
    }

    /// The database's path (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        self.read(|conn, _| conn.pragma_query_value(None, "user_version", |r| r.get(0)))
    }

    /// Caps the database's size; writes past it fail with [`Error::Full`]
    /// as they would on a full disk. SQLite never sets the cap below the
    /// current size. Returns the cap now in force, in bytes.
    pub fn set_max_size(&self, bytes: u64) -> Result<u64> {
        self.read(|conn, _| {
            let page: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            // Zero would only query the cap: SQLite ignores it as a new value.
            let want = (bytes / page).max(1);
            let pages: u64 =
                conn.pragma_update_and_check(None, "max_page_count", want, |r| r.get(0))?;
            Ok(pages * page)
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves no half-done write behind: an open
        // transaction is rolled back when unwinding drops it. So the
        // connection is as good as before and the poison can be ignored.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection, &Settings) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let inner = self.lock();
        f(&inner.conn, &inner.settings).map_err(|e| Error::from_sqlite(&self.path, e))
    }

    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &Settings) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut inner = self.lock();
        let Inner { conn, settings } = &mut *inner;
        // IMMEDIATE takes the write lock up front, so a concurrent writer in
        // another process makes us wait (busy timeout) instead of failing
        // half-way when a read lock cannot be upgraded.
        let run = || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx, settings)?;
            tx.commit()?;
            Ok(value)
        };
        run().map_err(|e| Error::from_sqlite(&self.path, e))
    }
}

fn quick_check(conn: &Connection) -> rusqlite::Result<()> {
    let first: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if first == "ok" {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(first),
        ))
    }
}

/// Creates the file owner-only if it does not exist yet: bans keep the
/// matched log lines (user names, requests), which the logs themselves
/// often hide from other users. SQLite gives its `-wal`/`-shm` the same
/// mode.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames a corrupt database out of the way, keeping it for a post-mortem.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut to = with_suffix(path, &format!(".corrupt-{secs}"));
    let mut n = 1;
    while to.exists() {
        to = with_suffix(path, &format!(".corrupt-{secs}.{n}"));
        n += 1;
    }
    let failed = |to: &Path, source| Error::MoveAside {
        path: path.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    std::fs::rename(path, &to).map_err(|e| failed(&to, e))?;
    // A write-ahead log left behind would be replayed into the new, empty
    // database, so it must go with the file it belongs to.
    for side in ["-wal", "-shm"] {
        let from = with_suffix(path, side);
        if from.exists() {
            let dest = with_suffix(&to, side);
            if std::fs::rename(&from, &dest).is_err() {
                std::fs::remove_file(&from).map_err(|e| failed(&dest, e))?;
            }
        }
    }
    Ok(to)
}

/// `BanData` cut to the newest `max` matches, serialised without copying.
#[derive(Serialize)]
struct DataOut<'a> {
    matches: &'a [String],
    failures: u32,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

fn data_json(data: &BanData, max: usize) -> rusqlite::Result<String> {
    let skip = data.matches.len().saturating_sub(max);
    serde_json::to_string(&DataOut {
        matches: &data.matches[skip..],
        failures: data.failures,
        extra: &data.extra,
    })
    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Reads `data` leniently, like fail2ban: a bad value costs the matches of
/// one ban, never the ban itself. Text and blob both, as fail2ban writes
/// bytes and an import copies them as they are.
fn data_from(value: ValueRef<'_>) -> BanData {
    let bytes = match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        _ => return BanData::default(),
    };
    serde_json::from_slice(bytes).unwrap_or_else(|err| {
        tracing::warn!(cause = %err, "ignoring unreadable ban data in database");
        BanData::default()
    })
}

const BAN_COLUMNS: &str = "jail, ip, timeofban, bantime, bancount, data";

fn ban_from(row: &Row<'_>) -> rusqlite::Result<Ban> {
    Ok(Ban {
        jail: row.get(0)?,
        fid: row.get(1)?,
        time: row.get(2)?,
        bantime: row.get(3)?,
        bancount: row.get(4)?,
        data: data_from(row.get_ref(5)?),
    })
}

fn verdict_from(row: &Row<'_>) -> rusqlite::Result<Verdict> {
    Ok(Verdict {
        template: row.get(0)?,
        verdict: row.get(1)?,
        hits: row.get(2)?,
        model: row.get(3)?,
        tokens: row.get(4)?,
        created: row.get(5)?,
        expiry: row.get(6)?,
    })
}

fn ensure_jail(tx: &Transaction<'_>, jail: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO jails(name) VALUES(?1)")?
        .execute([jail])?;
    Ok(())
}

impl Store for SqliteStore {
    fn settings(&self) -> Settings {
        self.lock().settings
    }

    fn set_settings(&self, settings: Settings) {
        self.lock().settings = settings;
    }

    fn add_jail(&self, jail: &str) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO jails(name, enabled) VALUES(?1, 1) \
                 ON CONFLICT(name) DO UPDATE SET enabled = 1",
            )?
            .execute([jail])?;
            Ok(())
        })
    }

    fn del_jail(&self, jail: &str) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached("UPDATE jails SET enabled = 0 WHERE name = ?1")?
                .execute([jail])?;
            Ok(())
        })
    }

    fn jails(&self, enabled: Option<bool>) -> Result<Vec<String>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT name FROM jails WHERE ?1 IS NULL OR enabled = ?1 ORDER BY name",
            )?
            .query_map([enabled], |r| r.get(0))?
            .collect()
        })
    }

    fn log_position(&self, jail: &str, path: &str, first_line_md5: &str) -> Result<Option<u64>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT lastfilepos FROM logs WHERE jail = ?1 AND path = ?2 AND firstlinemd5 = ?3",
            )?
            .query_row([jail, path, first_line_md5], |r| r.get(0))
            .optional()
        })
    }

    fn set_log_position(
        &self,
        jail: &str,
        path: &str,
        first_line_md5: &str,
        pos: u64,
    ) -> Result<()> {
        self.write(|tx, _| {
            ensure_jail(tx, jail)?;
            tx.prepare_cached(
                "INSERT INTO logs(jail, path, firstlinemd5, lastfilepos) VALUES(?1, ?2, ?3, ?4) \
                 ON CONFLICT(jail, path) DO UPDATE \
                 SET firstlinemd5 = excluded.firstlinemd5, lastfilepos = excluded.lastfilepos",
            )?
            .execute(params![jail, path, first_line_md5, pos])?;
            Ok(())
        })
    }

    fn log_paths(&self, jail: &str) -> Result<Vec<String>> {
        self.read(|conn, _| {
            conn.prepare_cached("SELECT path FROM logs WHERE jail = ?1 ORDER BY path")?
                .query_map([jail], |r| r.get(0))?
                .collect()
        })
    }

    fn log_positions(&self, jail: &str) -> Result<Vec<(String, String, u64)>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT path, firstlinemd5, lastfilepos FROM logs WHERE jail = ?1 ORDER BY path",
            )?
            .query_map([jail], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })
    }

    fn journal_cursor(&self, jail: &str) -> Result<Option<String>> {
        self.read(|conn, _| {
            conn.prepare_cached("SELECT cursor FROM journals WHERE jail = ?1")?
                .query_row([jail], |r| r.get(0))
                .optional()
        })
    }

    fn set_journal_cursor(&self, jail: &str, cursor: &str) -> Result<()> {
        self.write(|tx, _| {
            ensure_jail(tx, jail)?;
            tx.prepare_cached(
                "INSERT INTO journals(jail, cursor) VALUES(?1, ?2) \
                 ON CONFLICT(jail) DO UPDATE SET cursor = excluded.cursor",
            )?
            .execute([jail, cursor])?;
            Ok(())
        })
    }

    fn add_ban(&self, ban: &Ban) -> Result<()> {
        self.write(|tx, settings| {
            let data = data_json(&ban.data, settings.max_matches)?;
            let values = params![ban.jail, ban.fid, ban.time, ban.bantime, ban.bancount, data];
            ensure_jail(tx, &ban.jail)?;
            tx.prepare_cached(&format!(
                "INSERT INTO bans({BAN_COLUMNS}) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(values)?;
            // A ban written late (a restored or replayed one) must not hide a
            // newer one, so only a ban at least as recent replaces the row.
            tx.prepare_cached(&format!(
                "INSERT INTO bips({BAN_COLUMNS}) VALUES(?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT(ip, jail) DO UPDATE SET timeofban = excluded.timeofban, \
                 bantime = excluded.bantime, bancount = excluded.bancount, data = excluded.data \
                 WHERE excluded.timeofban >= bips.timeofban"
            ))?
            .execute(values)?;
            Ok(())
        })
    }

    fn remove_bans(&self, jail: &str, fid: Option<&str>) -> Result<usize> {
        self.write(|tx, _| {
            let filter = "jail = ?1 AND (?2 IS NULL OR ip = ?2)";
            tx.prepare_cached(&format!("DELETE FROM bans WHERE {filter}"))?
                .execute(params![jail, fid])?;
            tx.prepare_cached(&format!("DELETE FROM bips WHERE {filter}"))?
                .execute(params![jail, fid])
        })
    }

    fn current_bans(&self, jail: Option<&str>, now: f64) -> Result<Vec<Ban>> {
        self.read(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {BAN_COLUMNS} FROM bips \
                 WHERE (?1 IS NULL OR jail = ?1) AND (bantime < 0 OR timeofban + bantime > ?2) \
                 ORDER BY ip, jail"
            ))?
            .query_map(params![jail, now], ban_from)?
            .collect()
        })
    }

    fn previous_ban(&self, fid: &str, jail: Option<&str>) -> Result<Option<BanHistory>> {
        self.read(|conn, _| {
            let history = |r: &Row<'_>| {
                Ok(BanHistory {
                    bancount: r.get(0)?,
                    time: r.get(1)?,
                    bantime: r.get(2)?,
                })
            };
            match jail {
                Some(jail) => conn
                    .prepare_cached(
                        "SELECT bancount, timeofban, bantime FROM bips WHERE ip = ?1 AND jail = ?2",
                    )?
                    .query_row([fid, jail], history),
                None => conn
                    .prepare_cached(
                        "SELECT (SELECT sum(bancount) FROM bips WHERE ip = ?1), timeofban, bantime \
                         FROM bips WHERE ip = ?1 ORDER BY timeofban DESC LIMIT 1",
                    )?
                    .query_row([fid], history),
            }
            .optional()
        })
    }

    fn merged_bans(&self, fid: &str, jail: Option<&str>) -> Result<Option<MergedBans>> {
        self.read(|conn, settings| {
            let mut st = conn.prepare_cached(
                "SELECT timeofban, data FROM bans WHERE ip = ?1 AND (?2 IS NULL OR jail = ?2) \
                 ORDER BY timeofban DESC",
            )?;
            let mut rows = st.query(params![fid, jail])?;
            let mut merged: Option<MergedBans> = None;
            // Newest bans first: their matches win the room left.
            let mut chunks = Vec::new();
            let mut room = settings.max_matches;
            while let Some(row) = rows.next()? {
                let time: f64 = row.get(0)?;
                let mut data = data_from(row.get_ref(1)?);
                let m = merged.get_or_insert_with(|| MergedBans {
                    fid: fid.to_owned(),
                    bans: 0,
                    failures: 0,
                    matches: Vec::new(),
                    last_time: time,
                });
                m.bans += 1;
                m.failures = m.failures.saturating_add(data.failures);
                let take = data.matches.len().min(room);
                room -= take;
                chunks.push(data.matches.split_off(data.matches.len() - take));
            }
            if let Some(m) = merged.as_mut() {
                chunks.reverse();
                m.matches = chunks.concat();
            }
            Ok(merged)
        })
    }

    fn purge(&self, now: f64) -> Result<PurgeStats> {
        self.write(|tx, settings| {
            let before = now - settings.purge_age;
            let bans = tx
                .prepare_cached("DELETE FROM bans WHERE timeofban < ?1")?
                .execute([before])?;
            let bips = tx
                .prepare_cached(
                    "DELETE FROM bips WHERE timeofban < ?1 AND bantime >= 0 \
                     AND timeofban + bantime * ?2 < ?1",
                )?
                .execute([before, OUTDATED_FACTOR])?;
            let jails = tx
                .prepare_cached(
                    "DELETE FROM jails WHERE enabled = 0 \
                     AND NOT EXISTS(SELECT 1 FROM bans WHERE jail = jails.name) \
                     AND NOT EXISTS(SELECT 1 FROM bips WHERE jail = jails.name)",
                )?
                .execute([])?;
            let verdicts = tx
                .prepare_cached("DELETE FROM ai_verdicts WHERE expiry <= ?1")?
                .execute([now])?;
            Ok(PurgeStats {
                bans,
                bips,
                jails,
                verdicts,
            })
        })
    }

    fn put_verdict(&self, v: &Verdict) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO ai_verdicts\
                 (template, verdict, hits, model, tokens, created, expiry) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                v.template, v.verdict, v.hits, v.model, v.tokens, v.created, v.expiry
            ])?;
            Ok(())
        })
    }

    fn lookup_verdict(&self, template: &str, now: f64) -> Result<Option<Verdict>> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE ai_verdicts SET hits = hits + 1 WHERE template = ?1 AND expiry > ?2 \
                 RETURNING template, verdict, hits, model, tokens, created, expiry",
            )?
            .query_row(params![template, now], verdict_from)
            .optional()
        })
    }

    fn add_audit(&self, e: &AuditEntry) -> Result<i64> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO ai_audit(time, jail, kind, template, detail) \
                 VALUES(?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                e.time,
                e.jail,
                e.kind,
                e.template,
                e.detail.to_string()
            ])?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn ai(&self) -> Option<&dyn super::AiStore> {
        Some(self)
    }

    fn audit_entries(&self, since: f64, limit: usize) -> Result<Vec<(i64, AuditEntry)>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT id, time, jail, kind, template, detail FROM ai_audit \
                 WHERE time >= ?1 ORDER BY time, id LIMIT ?2",
            )?
            .query_map(params![since, limit], |r| {
                let detail: String = r.get(5)?;
                let detail =
                    serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail));
                Ok((
                    r.get(0)?,
                    AuditEntry {
                        time: r.get(1)?,
                        jail: r.get(2)?,
                        kind: r.get(3)?,
                        template: r.get(4)?,
                        detail,
                    },
                ))
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> SqliteStore {
        SqliteStore::open(MEMORY, Settings::default()).unwrap()
    }

    fn ban(jail: &str, fid: &str, time: f64, bantime: f64, matches: &[&str]) -> Ban {
        let mut b = Ban::new(jail, fid, time, bantime);
        b.data.matches = matches.iter().map(|m| m.to_string()).collect();
        b.data.failures = matches.len().max(1) as u32;
        b
    }

    #[test]
    fn jails_enable_disable() {
        let s = mem();
        s.add_jail("sshd").unwrap();
        s.add_jail("nginx").unwrap();
        s.del_jail("sshd").unwrap();
        assert_eq!(s.jails(None).unwrap(), ["nginx", "sshd"]);
        assert_eq!(s.jails(Some(true)).unwrap(), ["nginx"]);
        assert_eq!(s.jails(Some(false)).unwrap(), ["sshd"]);
        s.add_jail("sshd").unwrap();
        assert_eq!(s.jails(Some(true)).unwrap(), ["nginx", "sshd"]);
    }

    #[test]
    fn log_position_follows_first_line() {
        let s = mem();
        assert_eq!(
            s.log_position("sshd", "/var/log/auth.log", "aa").unwrap(),
            None
        );
        s.set_log_position("sshd", "/var/log/auth.log", "aa", 1234)
            .unwrap();
        assert_eq!(
            s.log_position("sshd", "/var/log/auth.log", "aa").unwrap(),
            Some(1234)
        );
        // Same path, other first line: the file was replaced.
        assert_eq!(
            s.log_position("sshd", "/var/log/auth.log", "bb").unwrap(),
            None
        );
        // Positions are per jail.
        assert_eq!(
            s.log_position("other", "/var/log/auth.log", "aa").unwrap(),
            None
        );
        s.set_log_position("sshd", "/var/log/auth.log", "bb", 10)
            .unwrap();
        assert_eq!(
            s.log_position("sshd", "/var/log/auth.log", "bb").unwrap(),
            Some(10)
        );
        assert_eq!(s.log_paths("sshd").unwrap(), ["/var/log/auth.log"]);
        assert_eq!(s.jails(None).unwrap(), ["sshd"], "jail recorded on the way");
    }

    #[test]
    fn journal_cursor() {
        let s = mem();
        assert_eq!(s.journal_cursor("sshd").unwrap(), None);
        s.set_journal_cursor("sshd", "s=1;i=2").unwrap();
        s.set_journal_cursor("sshd", "s=1;i=3").unwrap();
        assert_eq!(
            s.journal_cursor("sshd").unwrap().as_deref(),
            Some("s=1;i=3")
        );
    }

    #[test]
    fn matches_capped_by_dbmaxmatches() {
        let s = mem();
        s.set_settings(Settings {
            max_matches: 2,
            ..Settings::default()
        });
        s.add_ban(&ban("sshd", "192.0.2.1", 100.0, 600.0, &["a", "b", "c"]))
            .unwrap();
        let got = s.current_bans(Some("sshd"), 100.0).unwrap();
        assert_eq!(got[0].data.matches, ["b", "c"], "the newest are kept");
        assert_eq!(got[0].data.failures, 3);
        s.set_settings(Settings {
            max_matches: 0,
            ..Settings::default()
        });
        s.add_ban(&ban("sshd", "192.0.2.1", 200.0, 600.0, &["d"]))
            .unwrap();
        let got = s.current_bans(Some("sshd"), 200.0).unwrap();
        assert!(got[0].data.matches.is_empty());
    }

    #[test]
    fn current_bans_active_and_permanent() {
        let s = mem();
        s.add_ban(&ban("sshd", "192.0.2.1", 1000.0, 600.0, &[]))
            .unwrap();
        s.add_ban(&ban("sshd", "192.0.2.2", 1000.0, -1.0, &[]))
            .unwrap();
        s.add_ban(&ban("sshd", "192.0.2.3", 100.0, 600.0, &[]))
            .unwrap();
        s.add_ban(&ban("web", "192.0.2.1", 1000.0, 60.0, &[]))
            .unwrap();
        let fids = |jail, now| -> Vec<String> {
            s.current_bans(jail, now)
                .unwrap()
                .into_iter()
                .map(|b| format!("{}/{}", b.jail, b.fid))
                .collect()
        };
        assert_eq!(
            fids(Some("sshd"), 1100.0),
            ["sshd/192.0.2.1", "sshd/192.0.2.2"]
        );
        assert_eq!(
            fids(None, 1030.0),
            ["sshd/192.0.2.1", "web/192.0.2.1", "sshd/192.0.2.2"]
        );
        // The end of a ban is exclusive, as in fail2ban.
        assert_eq!(fids(Some("sshd"), 1600.0), ["sshd/192.0.2.2"]);
        assert_eq!(fids(Some("sshd"), 1e12), ["sshd/192.0.2.2"]);
    }

    #[test]
    fn latest_ban_wins_in_bips() {
        let s = mem();
        let mut b = ban("sshd", "192.0.2.1", 2000.0, 1200.0, &[]);
        b.bancount = 2;
        s.add_ban(&b).unwrap();
        // Written late but older: must not replace the newer one.
        s.add_ban(&ban("sshd", "192.0.2.1", 1000.0, 600.0, &[]))
            .unwrap();
        let h = s.previous_ban("192.0.2.1", Some("sshd")).unwrap().unwrap();
        assert_eq!((h.bancount, h.time, h.bantime), (2, 2000.0, 1200.0));
    }

    #[test]
    fn previous_ban_per_jail_and_overall() {
        let s = mem();
        assert_eq!(s.previous_ban("192.0.2.1", None).unwrap(), None);
        let mut a = ban("sshd", "192.0.2.1", 1000.0, 600.0, &[]);
        a.bancount = 3;
        let mut b = ban("web", "192.0.2.1", 2000.0, 60.0, &[]);
        b.bancount = 2;
        s.add_ban(&a).unwrap();
        s.add_ban(&b).unwrap();
        let h = s.previous_ban("192.0.2.1", Some("sshd")).unwrap().unwrap();
        assert_eq!((h.bancount, h.time, h.bantime), (3, 1000.0, 600.0));
        let h = s.previous_ban("192.0.2.1", None).unwrap().unwrap();
        assert_eq!((h.bancount, h.time, h.bantime), (5, 2000.0, 60.0));
        assert_eq!(s.previous_ban("192.0.2.1", Some("none")).unwrap(), None);
    }

    #[test]
    fn merged_bans_newest_matches() {
        let s = mem();
        s.set_settings(Settings {
            max_matches: 3,
            ..Settings::default()
        });
        s.add_ban(&ban("sshd", "192.0.2.1", 100.0, 10.0, &["a1", "a2"]))
            .unwrap();
        s.add_ban(&ban("sshd", "192.0.2.1", 200.0, 10.0, &["b1", "b2"]))
            .unwrap();
        s.add_ban(&ban("web", "192.0.2.1", 300.0, 10.0, &["c1"]))
            .unwrap();
        let m = s.merged_bans("192.0.2.1", None).unwrap().unwrap();
        assert_eq!(m.matches, ["b1", "b2", "c1"]);
        assert_eq!((m.bans, m.failures, m.last_time), (3, 5, 300.0));
        let m = s.merged_bans("192.0.2.1", Some("sshd")).unwrap().unwrap();
        assert_eq!(m.matches, ["a2", "b1", "b2"]);
        assert_eq!((m.bans, m.failures, m.last_time), (2, 4, 200.0));
        assert_eq!(s.merged_bans("192.0.2.9", None).unwrap(), None);
    }

    #[test]
    fn remove_bans_one_or_all() {
        let s = mem();
        for fid in ["192.0.2.1", "192.0.2.2"] {
            s.add_ban(&ban("sshd", fid, 100.0, -1.0, &[])).unwrap();
        }
        s.add_ban(&ban("web", "192.0.2.1", 100.0, -1.0, &[]))
            .unwrap();
        assert_eq!(s.remove_bans("sshd", Some("192.0.2.1")).unwrap(), 1);
        assert_eq!(s.current_bans(Some("sshd"), 100.0).unwrap().len(), 1);
        assert_eq!(s.merged_bans("192.0.2.1", Some("sshd")).unwrap(), None);
        assert_eq!(s.remove_bans("sshd", None).unwrap(), 1);
        assert_eq!(
            s.current_bans(None, 100.0).unwrap().len(),
            1,
            "web untouched"
        );
    }

    #[test]
    fn purge_like_fail2ban() {
        let s = mem();
        s.set_settings(Settings {
            purge_age: 1000.0,
            ..Settings::default()
        });
        let now = 10_000.0;
        // Ban history older than the purge age goes...
        s.add_ban(&ban("sshd", "old", 8000.0, 100.0, &[])).unwrap();
        // ...the latest-ban row too once 3 bantimes past it...
        s.add_ban(&ban("sshd", "long", 8000.0, 500.0, &[])).unwrap();
        // ...but not when still within 3 bantimes, and never a permanent one.
        s.add_ban(&ban("sshd", "perm", 8000.0, -1.0, &[])).unwrap();
        s.add_ban(&ban("sshd", "fresh", 9500.0, 100.0, &[]))
            .unwrap();
        s.add_jail("gone").unwrap();
        s.set_log_position("gone", "/var/log/x", "md5", 5).unwrap();
        s.del_jail("gone").unwrap();
        s.put_verdict(&Verdict {
            template: "t".into(),
            verdict: "benign".into(),
            hits: 0,
            model: "m".into(),
            tokens: 1,
            created: 0.0,
            expiry: 9000.0,
        })
        .unwrap();
        let stats = s.purge(now).unwrap();
        assert_eq!(
            stats,
            PurgeStats {
                bans: 3,
                bips: 1,
                jails: 1,
                verdicts: 1
            }
        );
        assert!(s.previous_ban("old", Some("sshd")).unwrap().is_none());
        assert!(s.previous_ban("long", Some("sshd")).unwrap().is_some());
        assert!(s.previous_ban("perm", Some("sshd")).unwrap().is_some());
        assert!(s.merged_bans("fresh", None).unwrap().is_some());
        assert_eq!(s.jails(None).unwrap(), ["sshd"]);
        assert!(s.log_paths("gone").unwrap().is_empty(), "logs cascade");
    }

    #[test]
    fn reads_fail2ban_rows() {
        // fail2ban writes integer times and its JSON as bytes; an import
        // copies them as they are.
        let s = mem();
        s.add_jail("sshd").unwrap();
        s.read(|conn, _| {
            conn.execute(
                "INSERT INTO bips(ip, jail, timeofban, bantime, bancount, data) \
                 VALUES('192.0.2.7', 'sshd', 1000, -1, 4, ?1)",
                [br#"{"matches": ["x"], "failures": 7, "user": "root"}"#.as_slice()],
            )?;
            conn.execute(
                "INSERT INTO bips(ip, jail, timeofban, bantime, bancount, data) \
                 VALUES('192.0.2.8', 'sshd', 1000, -1, 1, 'not json')",
                [],
            )
        })
        .unwrap();
        let got = s.current_bans(Some("sshd"), 2000.0).unwrap();
        assert_eq!(got[0].time, 1000.0);
        assert_eq!(got[0].bancount, 4);
        assert_eq!(got[0].data.matches, ["x"]);
        assert_eq!(got[0].data.failures, 7);
        assert_eq!(got[0].data.extra["user"], "root");
        assert_eq!(got[1].data, BanData::default(), "bad data costs only data");
        // Extra keys survive a round trip.
        let mut again = got[0].clone();
        again.time = 1500.0;
        s.add_ban(&again).unwrap();
        let got = s.current_bans(Some("sshd"), 2000.0).unwrap();
        assert_eq!(got[0].data.extra["user"], "root");
    }

    #[test]
    fn verdict_cache() {
        let s = mem();
        let v = Verdict {
            template: "sshd: Invalid user <*> from <HOST>".into(),
            verdict: "attack".into(),
            hits: 0,
            model: "gpt-x".into(),
            tokens: 321,
            created: 100.0,
            expiry: 1000.0,
        };
        s.put_verdict(&v).unwrap();
        let got = s.lookup_verdict(&v.template, 500.0).unwrap().unwrap();
        assert_eq!(got.hits, 1);
        assert_eq!(
            s.lookup_verdict(&v.template, 600.0).unwrap().unwrap().hits,
            2
        );
        assert_eq!(
            s.lookup_verdict(&v.template, 1000.0).unwrap(),
            None,
            "expired"
        );
        assert_eq!(s.lookup_verdict("other", 500.0).unwrap(), None);
    }

    #[test]
    fn audit_trail() {
        let s = mem();
        let entry = |time: f64, kind: &str| AuditEntry {
            time,
            jail: Some("sshd".into()),
            kind: kind.into(),
            template: None,
            detail: serde_json::json!({"file": "ai-sshd.conf"}),
        };
        let a = s.add_audit(&entry(10.0, "filter-written")).unwrap();
        let b = s.add_audit(&entry(20.0, "filter-rejected")).unwrap();
        assert!(b > a);
        let got = s.audit_entries(15.0, 10).unwrap();
        assert_eq!(got, [(b, entry(20.0, "filter-rejected"))]);
        assert_eq!(s.audit_entries(0.0, 1).unwrap().len(), 1);
    }

    #[test]
    fn size_cap_reports_full_and_recovers() {
        let s = mem();
        s.add_jail("sshd").unwrap();
        let cap = s.set_max_size(0).unwrap();
        assert!(cap > 0, "never below the current size");
        let big = ban("sshd", "192.0.2.1", 1.0, 1.0, &[&"x".repeat(100_000)]);
        let err = s.add_ban(&big).unwrap_err();
        assert!(err.is_full(), "{err}");
        assert!(s.current_bans(None, 0.0).unwrap().is_empty(), "rolled back");
        s.set_max_size(1 << 30).unwrap();
        s.add_ban(&big).unwrap();
    }
}
