//! fail3ban's SQLite schema and its migrations.
//!
//! The ban tables have the columns of fail2ban's version 4 schema (same
//! names, same meaning) so that importing a fail2ban database is a copy of
//! rows. Differences, each on purpose:
//! - times are REAL: the caller's clock is `f64`, and an INTEGER column
//!   would round a ban's start away from the log line's time;
//! - `data` is TEXT holding JSON (fail2ban declares `JSON` but writes
//!   bytes); the reader takes either, so a copied row still reads;
//! - the journal cursor has its own table instead of being squeezed into
//!   `logs` as a fake path and md5.
//!
//! The version lives in `PRAGMA user_version` and the file is marked with
//! `PRAGMA application_id`, so that a database of another program (fail2ban
//! points at a file of the same layout) is recognised and left alone.

use rusqlite::{Connection, Transaction};

/// Marks a file as fail3ban's: "F3B" and a schema family number.
pub(crate) const APPLICATION_ID: i32 = 0x4633_4201;

/// One step from version `n - 1` to `n`, where `n` is its index plus one.
/// Steps are only ever appended: an installed database has run the ones
/// before its version and must find them unchanged.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the ban bookkeeping fail2ban also has, plus journal cursors.
    r#"
    CREATE TABLE jails(
        name TEXT NOT NULL PRIMARY KEY,
        enabled INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE logs(
        jail TEXT NOT NULL REFERENCES jails(name) ON DELETE CASCADE,
        path TEXT NOT NULL,
        firstlinemd5 TEXT,
        lastfilepos INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(jail, path)
    );
    CREATE TABLE journals(
        jail TEXT NOT NULL PRIMARY KEY REFERENCES jails(name) ON DELETE CASCADE,
        cursor TEXT NOT NULL
    );
    -- Every ban ever made (until purged): the source of <ipmatches> and
    -- <ipfailures>. `ip` holds the failure id, an address or any F-ID.
    CREATE TABLE bans(
        jail TEXT NOT NULL REFERENCES jails(name),
        ip TEXT NOT NULL,
        timeofban REAL NOT NULL,
        bantime REAL NOT NULL,
        bancount INTEGER NOT NULL DEFAULT 1,
        data TEXT
    );
    CREATE INDEX bans_jail_timeofban ON bans(jail, timeofban);
    CREATE INDEX bans_jail_ip ON bans(jail, ip);
    CREATE INDEX bans_ip ON bans(ip);
    -- The latest ban of each id in each jail: restored at start, and read
    -- by bantime.increment. Outlives `bans` so that repeat offenders are
    -- still known after the detailed history is purged.
    CREATE TABLE bips(
        ip TEXT NOT NULL,
        jail TEXT NOT NULL REFERENCES jails(name),
        timeofban REAL NOT NULL,
        bantime REAL NOT NULL,
        bancount INTEGER NOT NULL DEFAULT 1,
        data TEXT,
        PRIMARY KEY(ip, jail)
    );
    CREATE INDEX bips_timeofban ON bips(timeofban);
    "#,
    // 2: what the AI part keeps: its verdict cache and an audit trail.
    r#"
    CREATE TABLE ai_verdicts(
        template TEXT NOT NULL PRIMARY KEY,
        verdict TEXT NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0,
        model TEXT NOT NULL,
        tokens INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        expiry REAL NOT NULL
    );
    CREATE INDEX ai_verdicts_expiry ON ai_verdicts(expiry);
    CREATE TABLE ai_audit(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        jail TEXT,
        kind TEXT NOT NULL,
        template TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX ai_audit_time ON ai_audit(time);
    "#,
    // 3: the AI part's work queue (it outlives a restart) and its rules.
    r#"
    CREATE TABLE ai_queue(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        jail TEXT NOT NULL,
        template TEXT NOT NULL,
        addr TEXT NOT NULL,
        line TEXT NOT NULL
    );
    CREATE TABLE ai_rules(
        id TEXT NOT NULL PRIMARY KEY,
        jail TEXT NOT NULL,
        template TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        detail TEXT NOT NULL
    );
    "#,
    // 4: the AI part's evidence: a bounded sample of each jail's lines
    // (recent ones, and those of benign verdicts) that every candidate
    // rule is tested against, at creation and at every start.
    r#"
    CREATE TABLE ai_evidence(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        jail TEXT NOT NULL,
        kind TEXT NOT NULL,
        template TEXT NOT NULL,
        line TEXT NOT NULL,
        time REAL NOT NULL
    );
    CREATE INDEX ai_evidence_shape ON ai_evidence(jail, kind, template, id);
    CREATE INDEX ai_evidence_kind ON ai_evidence(jail, kind, id);
    "#,
    // 5: how many distinct addresses each queued shape came from, so that
    // a full backlog keeps the shapes many clients show.
    r#"
    ALTER TABLE ai_queue ADD COLUMN sources INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX ai_queue_sources ON ai_queue(sources, id);
    "#,
];

/// The version a database has once every migration ran.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

/// What a freshly opened file turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Ours, at this version (0: empty file, nothing created yet).
    Ours(u32),
    /// Someone else's tables.
    Foreign,
}

pub(crate) fn inspect(conn: &Connection) -> rusqlite::Result<Found> {
    let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if app == APPLICATION_ID {
        return Ok(Found::Ours(version));
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    if app == 0 && version == 0 && tables == 0 {
        Ok(Found::Ours(0))
    } else {
        Ok(Found::Foreign)
    }
}

/// Runs the steps after `from` up to `to`, each in its own transaction with
/// its version bump, so that a crash leaves the file at a known version.
pub(crate) fn migrate(conn: &mut Connection, from: u32, to: u32) -> rusqlite::Result<()> {
    for version in from + 1..=to {
        let tx = conn.transaction()?;
        step(&tx, version)?;
        tx.commit()?;
        if from > 0 {
            tracing::info!(from, to = version, "database schema upgraded");
        }
    }
    Ok(())
}

fn step(tx: &Transaction<'_>, version: u32) -> rusqlite::Result<()> {
    tx.execute_batch(MIGRATIONS[version as usize - 1])?;
    if version == 1 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    tx.pragma_update(None, "user_version", version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn empty_file_is_ours_at_zero() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Ours(0));
    }

    #[test]
    fn migrates_step_by_step() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, 0, 1).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Ours(1));
        assert!(!tables(&conn).contains(&"ai_verdicts".to_string()));
        conn.execute("INSERT INTO jails(name) VALUES('sshd')", [])
            .unwrap();
        migrate(&mut conn, 1, 3).unwrap();
        conn.execute(
            "INSERT INTO ai_queue(time, jail, template, addr, line) \
             VALUES(1, 'sshd', 't', '192.0.2.1', 'x')",
            [],
        )
        .unwrap();
        migrate(&mut conn, 3, LATEST).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Ours(LATEST));
        let sources: i64 = conn
            .query_row("SELECT sources FROM ai_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            sources, 1,
            "a queued line of version 3 was seen from one address"
        );
        assert!(tables(&conn).contains(&"ai_audit".to_string()));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM jails", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "data survives the upgrade");
    }

    #[test]
    fn fail2ban_layout_is_foreign() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE fail2banDb(version INTEGER); INSERT INTO fail2banDb VALUES(4);",
        )
        .unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Foreign);
    }
}
