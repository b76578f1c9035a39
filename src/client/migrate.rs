//! `fail3ban-client migrate`: from fail2ban to fail3ban on the same
//! /etc/fail2ban in one command, and back with `--undo`.
//!
//! The steps that can fail on the administrator's files come first (the
//! configuration test, the import of fail2ban's database, the default
//! file), and fail2ban is stopped only once they are done: a move that
//! stops half way leaves fail2ban running. Both daemons use the f2b-*
//! chains and sets, so they never run together: fail2ban is stopped before
//! fail3ban starts (the unit's `Conflicts=` says the same to systemd).
//! Nothing of fail2ban's is written, its tree is only read and its database
//! opened read-only, so that `--undo` finds it as it was. Every step sees
//! when its work is already done, which makes a second run harmless.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::ConfigError;
use crate::server::{configured_dbfile, own_path};
use crate::store::{import_fail2ban, ImportError, ImportStats, Settings, SqliteStore};

/// The fail2ban tree that fail3ban takes over.
pub const FAIL2BAN_CONF: &str = "/etc/fail2ban";
/// fail3ban's own tree, where `--undo` points the service back.
pub const FAIL3BAN_CONF: &str = "/etc/fail3ban";
/// The file fail3ban.service reads `FAIL3BAN_CONF` from.
pub const DEFAULT_FILE: &str = "/etc/default/fail3ban";
const FAIL2BAN_UNIT: &str = "fail2ban.service";
const FAIL3BAN_UNIT: &str = "fail3ban.service";
const CONF_KEY: &str = "FAIL3BAN_CONF=";

/// Why a migration stopped. Each names the file or command at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// There is no fail2ban tree to move from.
    #[error("no fail2ban configuration at {0}: nothing to migrate")]
    NoFail2ban(PathBuf),
    /// The tree cannot be read at all.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The tree reads, but fail3ban's configuration test finds problems.
    #[error(
        "{dir} does not pass the configuration test (fail3ban-client -c {dir} -t):\n{problems}"
    )]
    ConfigTest {
        /// The tree.
        dir: PathBuf,
        /// One problem a line.
        problems: String,
    },
    /// A dbfile other than fail2ban's default is used as it is by
    /// fail3ban: both daemons would write one file.
    #[error(
        "{path}, the dbfile of {dir}, would be fail3ban's database too: fail3ban keeps its own \
         only in place of fail2ban's default /var/lib/fail2ban/fail2ban.sqlite3"
    )]
    SharedDatabase {
        /// The tree.
        dir: PathBuf,
        /// Its dbfile.
        path: PathBuf,
    },
    /// The database to import from is the one it would go into.
    #[error("{0} is fail3ban's own database, not fail2ban's")]
    OwnDatabase(PathBuf),
    /// The import of fail2ban's database failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// fail3ban's database cannot be opened or created.
    #[error("opening fail3ban's database {path}: {source}")]
    Store {
        /// fail3ban's database.
        path: PathBuf,
        /// Why.
        source: crate::store::Error,
    },
    /// The default file names a directory migrate does not switch from.
    #[error(
        "{file} sets FAIL3BAN_CONF={value}: migrate switches only between {FAIL3BAN_CONF} and \
         {FAIL2BAN_CONF}; change it by hand"
    )]
    OwnConf {
        /// The default file.
        file: PathBuf,
        /// The directory it names.
        value: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// systemctl failed or the unit did not come up.
    #[error("`{command}` failed: {output}")]
    Systemctl {
        /// The command line.
        command: String,
        /// What it said, or the unit's state.
        output: String,
    },
}

/// What `migrate` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Print every step and what it would change, change nothing.
    pub dry_run: bool,
    /// Go back: the service on /etc/fail3ban, fail2ban enabled and running.
    pub undo: bool,
}

/// The system `migrate` moves: where its files are, and systemd if it runs
/// the system.
#[derive(Clone, Debug)]
pub struct System {
    root: PathBuf,
    systemctl: Option<PathBuf>,
}

impl System {
    /// This machine. Its services are switched where systemd runs it
    /// (`/run/systemd/system`, as sd_booted(3) checks); elsewhere (a
    /// container, a chroot) that step is skipped and says so.
    pub fn this_machine() -> Self {
        let booted = Path::new("/run/systemd/system").is_dir();
        System {
            root: PathBuf::from("/"),
            systemctl: booted.then(|| PathBuf::from("systemctl")),
        }
    }

    /// The system whose files are under `root`, its services switched by
    /// `systemctl` when one is given. The configuration test reads the log
    /// paths the tree names as they are written.
    pub fn under(root: impl Into<PathBuf>, systemctl: Option<PathBuf>) -> Self {
        System {
            root: root.into(),
            systemctl,
        }
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

/// Runs the migration (or its undo) on `sys`, one line per step and result
/// to `out`; stops at the first problem and returns it.
pub fn run(sys: &System, opts: Options, out: &mut dyn Write) -> Result<(), MigrateError> {
    let mut p = Printer {
        out,
        dry_run: opts.dry_run,
    };
    if opts.undo {
        undo(sys, &mut p)
    } else {
        migrate(sys, &mut p)
    }
}

fn migrate(sys: &System, p: &mut Printer) -> Result<(), MigrateError> {
    let conf = sys.path(FAIL2BAN_CONF);
    p.step(
        1,
        4,
        &format!(
            "check {} as `fail3ban-client -c {0} -t` does",
            conf.display()
        ),
    )?;
    let jails = check(&conf)?;
    p.result(&format!(
        "OK: configuration test is successful; jails: {}",
        jails.join(", ")
    ))?;

    p.step(2, 4, "import fail2ban's bans and ban history")?;
    let dbs = databases(sys, &conf)?;
    let imported = match &dbs {
        Some((src, dst)) => import_step(src, dst, p)?,
        None => 0,
    };

    p.step(
        3,
        4,
        &format!(
            "point {} at {FAIL2BAN_CONF}",
            sys.path(DEFAULT_FILE).display()
        ),
    )?;
    let repointed = point_default(sys, FAIL2BAN_CONF, FAIL3BAN_CONF, p)?;

    p.step(
        4,
        4,
        &format!("stop and disable {FAIL2BAN_UNIT}, then enable and start {FAIL3BAN_UNIT}"),
    )?;
    // Once fail2ban has stopped: the bans it made since step 2.
    let catch_up = |p: &mut Printer, was_active: bool| match &dbs {
        Some((src, dst)) if was_active && !p.dry_run => {
            let stats = import_database(src, dst)?;
            p.result(&format!(
                "bans fail2ban made since step 2: {} imported",
                stats.imported
            ))?;
            Ok(stats.imported > 0)
        }
        _ => Ok(false),
    };
    let changed = repointed || imported > 0;
    let where_ = if switch_units(sys, FAIL2BAN_UNIT, FAIL3BAN_UNIT, p, catch_up, changed)? {
        format!("{FAIL3BAN_UNIT} runs {FAIL2BAN_CONF}")
    } else {
        format!("{FAIL3BAN_UNIT} will run {FAIL2BAN_CONF}")
    };
    p.done(&format!(
        "{where_}. fail2ban's configuration and database are as they were; \
         `fail3ban-client migrate --undo` goes back"
    ))
}

fn undo(sys: &System, p: &mut Printer) -> Result<(), MigrateError> {
    p.step(
        1,
        2,
        &format!(
            "point {} back at {FAIL3BAN_CONF}",
            sys.path(DEFAULT_FILE).display()
        ),
    )?;
    point_default(sys, FAIL3BAN_CONF, FAIL2BAN_CONF, p)?;
    p.step(
        2,
        2,
        &format!("stop and disable {FAIL3BAN_UNIT}, then enable and start {FAIL2BAN_UNIT}"),
    )?;
    switch_units(
        sys,
        FAIL3BAN_UNIT,
        FAIL2BAN_UNIT,
        p,
        |_, _| Ok(false),
        false,
    )?;
    p.done("back to fail2ban; fail3ban's database keeps the bans it imported")
}

/// The configuration test `-t` runs; the jails it would start.
fn check(conf: &Path) -> Result<Vec<String>, MigrateError> {
    if !conf.is_dir() {
        return Err(MigrateError::NoFail2ban(conf.to_path_buf()));
    }
    let tree = crate::config::read_tree(&conf.to_string_lossy(), true)?;
    if !tree.problems.is_empty() {
        let problems: Vec<String> = tree
            .problems
            .iter()
            .map(|e| format!("ERROR: {e}"))
            .collect();
        return Err(MigrateError::ConfigTest {
            dir: conf.to_path_buf(),
            problems: problems.join("\n"),
        });
    }
    Ok(tree
        .stream
        .iter()
        .filter(|c| c.len() >= 2 && c[0].as_str() == Some("add"))
        .map(|c| c[1].to_text())
        .collect())
}

/// fail2ban's database and fail3ban's for the tree, when fail2ban keeps one.
fn databases(sys: &System, conf: &Path) -> Result<Option<(PathBuf, PathBuf)>, MigrateError> {
    let Some(db) = configured_dbfile(&conf.to_string_lossy())? else {
        return Ok(None);
    };
    let ours = own_path(&db);
    if ours == db {
        return Err(MigrateError::SharedDatabase {
            dir: conf.to_path_buf(),
            path: PathBuf::from(db),
        });
    }
    Ok(Some((sys.path(&db), sys.path(&ours))))
}

fn import_step(src: &Path, dst: &Path, p: &mut Printer) -> Result<usize, MigrateError> {
    if !src.is_file() {
        p.result(&format!(
            "no fail2ban database at {}: no bans to import",
            src.display()
        ))?;
        return Ok(0);
    }
    if p.dry_run {
        // Into a database in memory: fail2ban's is read all the same.
        let store = SqliteStore::open(":memory:", Settings::default()).map_err(|source| {
            MigrateError::Store {
                path: dst.to_path_buf(),
                source,
            }
        })?;
        let stats = import_fail2ban(src, &store, now())?;
        p.result(&format!(
            "would import up to {} bans ({} still active) of jails [{}] from {} into {}",
            stats.imported,
            stats.active,
            stats.jails.join(", "),
            src.display(),
            dst.display()
        ))?;
        return Ok(stats.imported);
    }
    let stats = import_database(src, dst)?;
    p.result(&import_summary(&stats, src, dst))?;
    Ok(stats.imported)
}

/// Imports fail2ban's database `src` into fail3ban's `dst` (made, with its
/// directory, if need be); importing twice adds nothing.
pub fn import_database(src: &Path, dst: &Path) -> Result<ImportStats, MigrateError> {
    if dst.exists() && std::fs::canonicalize(src).ok() == std::fs::canonicalize(dst).ok() {
        return Err(MigrateError::OwnDatabase(src.to_path_buf()));
    }
    if let Some(dir) = dst.parent() {
        use std::os::unix::fs::DirBuilderExt;
        // Ban records hold log lines: only root reads them.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| MigrateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let store =
        SqliteStore::open(dst, Settings::default()).map_err(|source| MigrateError::Store {
            path: dst.to_path_buf(),
            source,
        })?;
    Ok(import_fail2ban(src, &store, now())?)
}

/// What an import did, in one line.
pub fn import_summary(stats: &ImportStats, src: &Path, dst: &Path) -> String {
    format!(
        "Imported {} bans ({} still active) of jails [{}] from {} into {}; {} already there",
        stats.imported,
        stats.active,
        stats.jails.join(", "),
        src.display(),
        dst.display(),
        stats.skipped
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sets `FAIL3BAN_CONF=to` in the default file, when it names `from` (or
/// nothing); whether the file changed.
fn point_default(
    sys: &System,
    to: &str,
    from: &str,
    p: &mut Printer,
) -> Result<bool, MigrateError> {
    let file = sys.path(DEFAULT_FILE);
    let io = |source| MigrateError::Io {
        path: file.clone(),
        source,
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let current = conf_of(&text);
    match current.as_deref() {
        Some(v) if v == to => {
            p.result(&format!("already {CONF_KEY}{to}"))?;
            return Ok(false);
        }
        Some(v) if v != from => {
            return Err(MigrateError::OwnConf {
                file,
                value: v.to_string(),
            })
        }
        _ => {}
    }
    let was = current.unwrap_or_else(|| "unset".into());
    if p.dry_run {
        p.result(&format!("would set {CONF_KEY}{to} (now {was})"))?;
        return Ok(true);
    }
    write_atomically(&file, &with_conf(&text, to)).map_err(io)?;
    p.result(&format!("{CONF_KEY}{to} (was {was})"))?;
    Ok(true)
}

/// The value of the last `FAIL3BAN_CONF=` assignment, unquoted.
fn conf_of(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(CONF_KEY))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .next_back()
}

/// `text` with its last `FAIL3BAN_CONF=` line set to `to` (added if none).
fn with_conf(text: &str, to: &str) -> String {
    let last = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(CONF_KEY))
        .map(|(i, _)| i)
        .last();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match last {
        Some(i) => lines[i] = format!("{CONF_KEY}{to}"),
        None => lines.push(format!("{CONF_KEY}{to}")),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Replaces `file` by `text` in one rename, keeping its mode, so that the
/// service never reads half a file.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = file.with_file_name(format!(".{}.migrate", name.unwrap_or_default()));
    std::fs::write(&tmp, text)?;
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions())
        .unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o644));
    std::fs::set_permissions(&tmp, mode)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Stops and disables `from`, runs `between` (told whether `from` was
/// running), then enables `to` and (re)starts it when `changed`, when
/// `between` says so or when it is not running. False when systemd does not
/// run the system and nothing was done.
fn switch_units(
    sys: &System,
    from: &str,
    to: &str,
    p: &mut Printer,
    between: impl FnOnce(&mut Printer, bool) -> Result<bool, MigrateError>,
    changed: bool,
) -> Result<bool, MigrateError> {
    let Some(systemctl) = sys.systemctl.as_deref() else {
        p.result(&format!(
            "skipped: systemd is not running here, so neither `systemctl disable --now {from}` \
             nor `systemctl enable {to}` and its start ran; stop {} before starting {} by hand: \
             both use the f2b-* chains and sets",
            daemon(from),
            daemon(to)
        ))?;
        return Ok(false);
    };
    let ctl = Systemctl { program: systemctl };
    let before = ctl.state(from)?;
    let was_active = before.active == "active";
    if before.load == "not-found" {
        p.result(&format!("{from}: no such unit, nothing to stop"))?;
    } else {
        p.run(&ctl, &["disable", "--now", from], &before.active)?;
    }
    let changed = between(p, was_active)? || changed;
    let state = ctl.state(to)?;
    if state.load == "not-found" {
        return Err(MigrateError::Systemctl {
            command: format!("systemctl enable {to}"),
            output: format!("{to} is not installed"),
        });
    }
    p.run(&ctl, &["enable", to], &state.active)?;
    if state.active == "active" && !changed {
        p.result(&format!("{to} is running with this configuration already"))?;
        return Ok(true);
    }
    p.run(&ctl, &["restart", to], &state.active)?;
    if !p.dry_run {
        let after = ctl.state(to)?;
        if after.active != "active" {
            return Err(MigrateError::Systemctl {
                command: format!("systemctl restart {to}"),
                output: format!("{to} is {} (journalctl -u {to} says why)", after.active),
            });
        }
    }
    Ok(true)
}

fn daemon(unit: &str) -> &str {
    unit.strip_suffix(".service").unwrap_or(unit)
}

struct Systemctl<'a> {
    program: &'a Path,
}

struct UnitState {
    load: String,
    active: String,
}

impl Systemctl<'_> {
    fn line(&self, args: &[&str]) -> String {
        format!("systemctl {}", args.join(" "))
    }

    fn call(&self, args: &[&str]) -> Result<String, MigrateError> {
        let out = Command::new(self.program)
            .args(args)
            .output()
            .map_err(|e| MigrateError::Systemctl {
                command: self.line(args),
                output: e.to_string(),
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(MigrateError::Systemctl {
                command: self.line(args),
                output: text.trim().to_string(),
            })
        }
    }

    fn state(&self, unit: &str) -> Result<UnitState, MigrateError> {
        let text = self.call(&["show", "--property=LoadState,ActiveState", unit])?;
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        Ok(UnitState {
            load: get("LoadState="),
            active: get("ActiveState="),
        })
    }
}

/// The lines `migrate` prints, with what a dry run would do.
struct Printer<'a> {
    out: &'a mut dyn Write,
    dry_run: bool,
}

impl Printer<'_> {
    fn line(&mut self, text: &str) -> Result<(), MigrateError> {
        writeln!(self.out, "{text}").map_err(|source| MigrateError::Io {
            path: PathBuf::from("standard output"),
            source,
        })
    }

    fn step(&mut self, n: usize, of: usize, what: &str) -> Result<(), MigrateError> {
        let dry = if self.dry_run { " (dry run)" } else { "" };
        self.line(&format!("[{n}/{of}]{dry} {what}"))
    }

    fn result(&mut self, what: &str) -> Result<(), MigrateError> {
        self.line(&format!("      {what}"))
    }

    /// Runs a systemctl command, or says it would; `state` is the unit's
    /// before.
    fn run(&mut self, ctl: &Systemctl, args: &[&str], state: &str) -> Result<(), MigrateError> {
        let line = ctl.line(args);
        if self.dry_run {
            return self.result(&format!("would run `{line}` (the unit is {state})"));
        }
        ctl.call(args)?;
        self.result(&format!("ran `{line}` (the unit was {state})"))
    }

    fn done(&mut self, what: &str) -> Result<(), MigrateError> {
        if self.dry_run {
            self.line("Dry run: nothing was changed")
        } else {
            self.line(&format!("Done: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str =
        "# Read by fail3ban.service.\nFAIL3BAN_CONF=/etc/fail3ban\n\n# More.\nFAIL3BAN_OPTS=\n";

    #[test]
    fn the_default_file_keeps_all_but_its_conf_line() {
        assert_eq!(conf_of(DEFAULT).as_deref(), Some("/etc/fail3ban"));
        let moved = with_conf(DEFAULT, "/etc/fail2ban");
        assert_eq!(moved, DEFAULT.replace("=/etc/fail3ban", "=/etc/fail2ban"));
        assert_eq!(with_conf(&moved, "/etc/fail3ban"), DEFAULT);
        assert_eq!(conf_of("# FAIL3BAN_CONF=/x\n"), None);
        assert_eq!(
            conf_of("FAIL3BAN_CONF=\"/etc/fail2ban\"\n").as_deref(),
            Some("/etc/fail2ban")
        );
        assert_eq!(
            with_conf("", "/etc/fail2ban"),
            "FAIL3BAN_CONF=/etc/fail2ban\n"
        );
    }
}
