//! `fail3ban-client import-fail2ban-db`: a database written by the
//! reference fail2ban's own Fail2BanDb, imported, then restored by a real
//! fail3ban-server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fail3ban::store::{Settings, SqliteStore, Store};

const CLIENT: &str = env!("CARGO_BIN_EXE_fail3ban-client");
const SERVER: &str = env!("CARGO_BIN_EXE_fail3ban-server");

fn client(conf: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(CLIENT)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), crate::own_tree::text(&out))
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn bans_from_a_fail2ban_database() {
    let root = crate::prereq::reference();
    // fail3ban's own tree, with its files moved into the temp dir.
    let (tmp, conf) = crate::own_tree::tree_with(
        "[sshd]\nbackend = auto\nlogpath = @LOG@\naction = dummy[target=@T@/dummy]\n\
         [recidive]\nenabled = true\nlogpath = @T@/f3.log\naction = dummy[target=@T@/dummy6]\n",
    );
    let t = tmp.path();
    let td = t.display().to_string();
    let local = std::fs::read_to_string(conf.join("jail.local")).unwrap();
    std::fs::write(conf.join("jail.local"), local.replace("@T@", &td)).unwrap();
    std::fs::write(
        conf.join("fail3ban.local"),
        format!("[Definition]\nlogtarget = {td}/f3.log\nsocket = {td}/f3.sock\npidfile = {td}/f3.pid\ndbfile = {td}/f3.sqlite3\n"),
    )
    .unwrap();
    let f2b_db = t.join("fail2ban.sqlite3");
    crate::util::write_fail2ban_db(root, &f2b_db);
    let f2b_before = std::fs::read(&f2b_db).unwrap();

    let (ok, out) = client(&conf, &["import-fail2ban-db", f2b_db.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Imported 5 bans (3 still active) of jails [recidive, sshd]"),
        "{out}"
    );
    // Again: nothing new, nothing doubled.
    let (ok, out) = client(&conf, &["import-fail2ban-db", f2b_db.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Imported 0 bans") && out.contains("5 already there"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&f2b_db).unwrap(),
        f2b_before,
        "fail2ban's file changed"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    {
        let store = SqliteStore::open(t.join("f3.sqlite3"), Settings::default()).unwrap();
        let active: Vec<(String, String, f64, u32)> = store
            .current_bans(None, now)
            .unwrap()
            .into_iter()
            .map(|b| (b.jail, b.fid, b.bantime, b.bancount))
            .collect();
        assert_eq!(
            active,
            vec![
                ("sshd".into(), "192.0.2.1".into(), 3600.0, 1),
                ("sshd".into(), "192.0.2.4".into(), 1200.0, 2),
                ("recidive".into(), "2001:db8::3".into(), -1.0, 1),
            ]
        );
        // History kept for bantime.increment, the expired ban included.
        let h = store
            .previous_ban("192.0.2.20", Some("sshd"))
            .unwrap()
            .unwrap();
        assert_eq!((h.bancount, h.bantime), (1, 600.0));
        let m = store
            .merged_bans("192.0.2.4", Some("sshd"))
            .unwrap()
            .unwrap();
        assert_eq!((m.bans, m.failures), (2, 10), "{m:?}");
        assert_eq!(m.matches.len(), 2, "{m:?}");
    }

    // Errors name the file.
    let (ok, out) = client(
        &conf,
        &["import-fail2ban-db", t.join("missing.db").to_str().unwrap()],
    );
    assert!(!ok && out.contains("missing.db"), "{out}");
    let (ok, out) = client(
        &conf,
        &["import-fail2ban-db", t.join("f3.sqlite3").to_str().unwrap()],
    );
    assert!(!ok && out.contains("fail3ban's own database"), "{out}");

    // A real server restores the imported bans and runs their actions.
    let _server = Kill(
        Command::new(SERVER)
            .args(["-f", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (ok, out) = client(&conf, &["status", "sshd"]);
        last = out;
        if ok && last.contains("192.0.2.1") && last.contains("192.0.2.4") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        last.contains("192.0.2.1") && last.contains("192.0.2.4"),
        "{last}"
    );
    assert!(!last.contains("192.0.2.20"), "{last}");
    let (_, out) = client(&conf, &["status", "recidive"]);
    assert!(out.contains("2001:db8::3"), "{out}");
    let dummy = std::fs::read_to_string(t.join("dummy")).unwrap_or_default();
    assert!(dummy.contains("ban 192.0.2.1"), "{dummy}");
    let (ok, out) = client(&conf, &["stop"]);
    assert!(ok, "{out}");
}
