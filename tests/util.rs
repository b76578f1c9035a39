//! Helpers more than one test module uses.

use std::path::Path;
use std::process::Command;

/// Writes a schema-4 database with fail2ban's code: an active ban, an
/// expired one, a permanent one in another jail, and a repeat offender.
const WRITER: &str = r#"
import sys, time
from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import BanTicket
from fail2ban.tests.dummyjail import DummyJail
db = Fail2BanDb(sys.argv[1])
now = time.time()
jails = {n: DummyJail(name=n) for n in ('sshd', 'recidive')}
for j in jails.values():
    db.addJail(j)
def ban(jail, ip, t, bantime, count=1):
    tk = BanTicket(ip, t, ['%s failed from %s' % (int(t), ip)])
    tk.setBanTime(bantime)
    tk.setBanCount(count)
    tk.setAttempt(5)
    db.addBan(jails[jail], tk)
ban('sshd', '192.0.2.1', now - 60, 3600)
ban('sshd', '192.0.2.2', now - 7200, 600)
ban('recidive', '2001:db8::3', now - 30, -1)
ban('sshd', '192.0.2.4', now - 5000, 600, 1)
ban('sshd', '192.0.2.4', now - 100, 1200, 2)
print(db.getBansMerged('192.0.2.4').getAttempt())
"#;

/// A fail2ban database at `path`, written by the reference fail2ban under
/// `reference`: five bans of jails sshd and recidive, three still active
/// (192.0.2.1 and 192.0.2.4 in sshd, 2001:db8::3 in recidive).
pub fn write_fail2ban_db(reference: &Path, path: &Path) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(WRITER)
        .arg(path)
        .env(
            "PYTHONPATH",
            reference.join("usr/lib/python3/dist-packages"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::own_tree::text(&out));
}

/// Every file under `dir` (or `dir` itself) with its content, sorted by
/// path: two equal digests mean the same files, byte for byte.
pub fn digest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if p.exists() {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    files.sort();
    files
}
