//! `fail3ban-client migrate` on a system laid out in a temporary directory:
//! the reference fail2ban's /etc/fail2ban with a jail.local, a database
//! its own code wrote, the package's /etc/default/fail3ban, and a
//! systemctl that records what it is asked and keeps the units' states in
//! files. (The package test runs the real command in Debian roots.)

use std::path::{Path, PathBuf};

use fail3ban::client::migrate::{run, MigrateError, Options, System};
use fail3ban::store::{Settings, SqliteStore, Store};

const SYSTEMCTL: &str = r#"#!/bin/sh
# systemctl for tests: logs every command; units/NAME holds its state.
d=$(dirname "$0")/units
echo "$*" >>"$(dirname "$0")/systemctl.log"
case "$1" in
show)
    [ -e "$d/$3" ] || { printf 'LoadState=not-found\nActiveState=inactive\n'; exit 0; }
    printf 'LoadState=loaded\nActiveState=%s\n' "$(cat "$d/$3")" ;;
disable) echo inactive >"$d/$3"; rm -f "$d/$3.enabled" ;;
enable)
    if [ "$2" = --now ]; then echo active >"$d/$3"; touch "$d/$3.enabled"; else touch "$d/$2.enabled"; fi ;;
restart)
    if [ -e "$d/$2.broken" ]; then echo failed >"$d/$2"; else echo active >"$d/$2"; fi ;;
esac
"#;

/// A system with fail2ban running on its own tree and database, and
/// fail3ban installed beside it, neither enabled nor started.
struct System2 {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl System2 {
    fn new(reference: &Path, jail_local: &str) -> System2 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc/default")).unwrap();
        std::fs::create_dir_all(root.join("var/lib/fail2ban")).unwrap();
        std::fs::create_dir_all(root.join("units")).unwrap();
        let st = std::process::Command::new("cp")
            .arg("-r")
            .arg(crate::reference::stock_tree(reference))
            .arg(root.join("etc/fail2ban"))
            .status()
            .unwrap();
        assert!(st.success());
        let logs = tmp.path().display().to_string();
        std::fs::write(tmp.path().join("auth.log"), "").unwrap();
        std::fs::write(tmp.path().join("fail2ban.log"), "").unwrap();
        std::fs::write(
            root.join("etc/fail2ban/jail.local"),
            jail_local.replace("@LOGS@", &logs),
        )
        .unwrap();
        crate::util::write_fail2ban_db(reference, &root.join("var/lib/fail2ban/fail2ban.sqlite3"));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("debian/default"),
            root.join("etc/default/fail3ban"),
        )
        .unwrap();
        std::fs::write(root.join("systemctl"), SYSTEMCTL).unwrap();
        std::fs::set_permissions(
            root.join("systemctl"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("units/fail2ban.service"), "active\n").unwrap();
        std::fs::write(root.join("units/fail2ban.service.enabled"), "").unwrap();
        std::fs::write(root.join("units/fail3ban.service"), "inactive\n").unwrap();
        System2 { _tmp: tmp, root }
    }

    fn system(&self, systemd: bool) -> System {
        System::under(&self.root, systemd.then(|| self.root.join("systemctl")))
    }

    fn migrate(
        &self,
        systemd: bool,
        dry_run: bool,
        undo: bool,
    ) -> (Result<(), MigrateError>, String) {
        let mut out = Vec::new();
        let r = run(&self.system(systemd), Options { dry_run, undo }, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    /// Runs migrate, which must succeed and print each of `wants`.
    fn migrate_ok(&self, systemd: bool, dry_run: bool, undo: bool, wants: &[&str]) -> String {
        let (r, out) = self.migrate(systemd, dry_run, undo);
        r.unwrap_or_else(|e| panic!("{e}\n{out}"));
        println!("{out}");
        for want in wants {
            assert!(out.contains(want), "no {want:?} in:\n{out}");
        }
        out
    }

    /// systemctl's commands since the last call, `show` left out.
    fn systemctl_calls(&self) -> Vec<String> {
        let log = self.root.join("systemctl.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines()
            .filter(|l| !l.starts_with("show "))
            .map(str::to_string)
            .collect()
    }

    fn unit(&self, name: &str) -> (String, bool) {
        let dir = self.root.join("units");
        (
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .trim()
                .to_string(),
            dir.join(format!("{name}.enabled")).exists(),
        )
    }

    fn default_file(&self) -> String {
        std::fs::read_to_string(self.root.join("etc/default/fail3ban")).unwrap()
    }

    /// fail2ban's tree and database, byte for byte.
    fn fail2ban_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut all = crate::util::digest(&self.root.join("etc/fail2ban"));
        all.extend(crate::util::digest(&self.root.join("var/lib/fail2ban")));
        all
    }

    fn fail3ban_db(&self) -> PathBuf {
        self.root.join("var/lib/fail3ban/fail3ban.sqlite3")
    }

    fn active_bans(&self) -> Vec<(String, String)> {
        let store = SqliteStore::open(self.fail3ban_db(), Settings::default()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let mut bans: Vec<(String, String)> = store
            .current_bans(None, now)
            .unwrap()
            .into_iter()
            .map(|b| (b.jail, b.fid))
            .collect();
        bans.sort();
        bans
    }
}

const JAIL_LOCAL: &str = "[sshd]\nbackend = polling\nlogpath = @LOGS@/auth.log\n\n\
                          [recidive]\nenabled = true\nlogpath = @LOGS@/fail2ban.log\n";

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn migrate_moves_from_fail2ban_and_back_twice_harmlessly() {
    let reference = crate::prereq::reference();
    let sys = System2::new(reference, JAIL_LOCAL);
    let default_before = sys.default_file();
    let fail2ban_before = sys.fail2ban_files();

    // A dry run reads everything and changes nothing.
    sys.migrate_ok(
        true,
        true,
        false,
        &[
            "[1/4] (dry run) check",
            "OK: configuration test is successful; jails: sshd, recidive",
            "would import up to 5 bans (3 still active) of jails [recidive, sshd]",
            "would set FAIL3BAN_CONF=/etc/fail2ban (now /etc/fail3ban)",
            "would run `systemctl disable --now fail2ban.service` (the unit is active)",
            "would run `systemctl restart fail3ban.service`",
            "Dry run: nothing was changed",
        ],
    );
    assert_eq!(sys.default_file(), default_before);
    assert!(
        !sys.fail3ban_db().exists(),
        "a dry run made fail3ban's database"
    );
    assert_eq!(sys.systemctl_calls(), Vec::<String>::new());

    sys.migrate_ok(
        true,
        false,
        false,
        &[
            "[1/4] check",
            "Imported 5 bans (3 still active) of jails [recidive, sshd]",
            "FAIL3BAN_CONF=/etc/fail2ban (was /etc/fail3ban)",
            "bans fail2ban made since step 2: 0 imported",
            "Done: fail3ban.service runs /etc/fail2ban",
        ],
    );
    assert_eq!(
        sys.default_file(),
        default_before.replace("FAIL3BAN_CONF=/etc/fail3ban", "FAIL3BAN_CONF=/etc/fail2ban")
    );
    // fail2ban stopped before fail3ban starts: both use the f2b-* chains.
    assert_eq!(
        sys.systemctl_calls(),
        [
            "disable --now fail2ban.service",
            "enable fail3ban.service",
            "restart fail3ban.service"
        ]
    );
    assert_eq!(sys.unit("fail2ban.service"), ("inactive".into(), false));
    assert_eq!(sys.unit("fail3ban.service"), ("active".into(), true));
    assert_eq!(
        sys.active_bans(),
        [
            ("recidive".to_string(), "2001:db8::3".to_string()),
            ("sshd".into(), "192.0.2.1".into()),
            ("sshd".into(), "192.0.2.4".into())
        ]
    );

    // Again: nothing imported twice, no restart, the same state.
    sys.migrate_ok(
        true,
        false,
        false,
        &[
            "Imported 0 bans",
            "5 already there",
            "already FAIL3BAN_CONF=/etc/fail2ban",
            "fail3ban.service is running with this configuration already",
        ],
    );
    assert!(!sys
        .systemctl_calls()
        .iter()
        .any(|c| c.starts_with("restart")));
    assert_eq!(sys.active_bans().len(), 3);
    assert_eq!(
        sys.fail2ban_files(),
        fail2ban_before,
        "fail2ban's files changed"
    );

    // Back, twice.
    sys.migrate_ok(
        true,
        false,
        true,
        &["FAIL3BAN_CONF=/etc/fail3ban (was /etc/fail2ban)"],
    );
    assert_eq!(sys.default_file(), default_before);
    assert_eq!(
        sys.systemctl_calls(),
        [
            "disable --now fail3ban.service",
            "enable fail2ban.service",
            "restart fail2ban.service"
        ]
    );
    assert_eq!(sys.unit("fail2ban.service"), ("active".into(), true));
    assert_eq!(sys.unit("fail3ban.service"), ("inactive".into(), false));
    sys.migrate_ok(true, false, true, &["already FAIL3BAN_CONF=/etc/fail3ban"]);
    assert_eq!(sys.default_file(), default_before);
    assert_eq!(
        sys.fail2ban_files(),
        fail2ban_before,
        "fail2ban's files changed"
    );
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn migrate_stops_at_a_tree_that_fails_the_test_and_changes_nothing() {
    let reference = crate::prereq::reference();
    let sys = System2::new(reference, &format!("{JAIL_LOCAL}maxretry = often\n"));
    let default_before = sys.default_file();
    let (r, out) = sys.migrate(true, false, false);
    let err = r.expect_err(&out).to_string();
    assert!(
        out.contains("[1/4] check") && !out.contains("[2/4]"),
        "{out}"
    );
    assert!(
        err.contains("does not pass the configuration test")
            && err.contains("jail.local")
            && err.contains("recidive")
            && err.contains("maxretry"),
        "{err}"
    );
    assert_eq!(sys.default_file(), default_before);
    assert!(!sys.fail3ban_db().exists());
    assert_eq!(sys.systemctl_calls(), Vec::<String>::new());
    assert_eq!(sys.unit("fail2ban.service"), ("active".into(), true));
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn migrate_without_systemd_says_what_it_skipped() {
    let reference = crate::prereq::reference();
    let sys = System2::new(reference, JAIL_LOCAL);
    sys.migrate_ok(
        false,
        false,
        false,
        &[
            "skipped: systemd is not running here",
            "systemctl disable --now fail2ban.service",
            "Done: fail3ban.service will run /etc/fail2ban",
        ],
    );
    assert_eq!(sys.systemctl_calls(), Vec::<String>::new());
    assert!(sys
        .default_file()
        .contains("\nFAIL3BAN_CONF=/etc/fail2ban\n"));
    assert_eq!(sys.active_bans().len(), 3);
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn migrate_stops_when_fail3ban_does_not_start() {
    let reference = crate::prereq::reference();
    let sys = System2::new(reference, JAIL_LOCAL);
    std::fs::write(sys.root.join("units/fail3ban.service.broken"), "").unwrap();
    let (r, out) = sys.migrate(true, false, false);
    let err = r.expect_err(&out).to_string();
    assert!(
        err.contains("systemctl restart fail3ban.service") && err.contains("is failed"),
        "{err}"
    );
    assert!(!out.contains("Done"), "{out}");
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn migrate_leaves_a_default_file_set_by_hand_alone() {
    let reference = crate::prereq::reference();
    let sys = System2::new(reference, JAIL_LOCAL);
    let file = sys.root.join("etc/default/fail3ban");
    let own = sys.default_file().replace("=/etc/fail3ban", "=/srv/jails");
    std::fs::write(&file, &own).unwrap();
    let (r, out) = sys.migrate(true, false, false);
    let err = r.expect_err(&out).to_string();
    assert!(err.contains("sets FAIL3BAN_CONF=/srv/jails"), "{err}");
    assert_eq!(sys.default_file(), own);
    assert_eq!(sys.systemctl_calls(), Vec::<String>::new());
}

#[test]
fn migrate_without_fail2ban_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let r = run(
        &System::under(tmp.path(), None),
        Options::default(),
        &mut out,
    );
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("no fail2ban configuration at") && err.contains("etc/fail2ban"),
        "{err}"
    );
}
