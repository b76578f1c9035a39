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
        match Self::connect(path, Connection::open(path), settings) {
            Err(Error::Corrupt { source, .. }) => {
                let to = move_aside(path)?;
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
        match schema::inspect(&conn).map_err(e)? {
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
            Found::Ours(found) => schema::migrate(&mut conn, found, LATEST).map_err(e)?,
        }
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
            let pages: u64 =
                conn.pragma_update_and_check(None, "max_page_count", bytes / page, |r| r.get(0))?;
            Ok(pages * page)
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves no half-done write behind: an open
        // transaction is rolled back when unwinding drops it. So the
        // connection is as good as before and the poison can be ignored.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection, &Settings) -> rusqlite::Result<T>) -> Result<T> {
        let inner = self.lock();
        f(&inner.conn, &inner.settings).map_err(|e| Error::from_sqlite(&self.path, e))
    }

    fn write<T>(
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
            .execute(params![e.time, e.jail, e.kind, e.template, e.detail.to_string()])?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn audit_entries(&self, since: f64, limit: usize) -> Result<Vec<(i64, AuditEntry)>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT id, time, jail, kind, template, detail FROM ai_audit \
                 WHERE time >= ?1 ORDER BY time, id LIMIT ?2",
            )?
            .query_map(params![since, limit], |r| {
                let detail: String = r.get(5)?;
                let detail = serde_json::from_str(&detail)
                    .unwrap_or(serde_json::Value::String(detail));
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
