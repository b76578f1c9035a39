//! A real fail3ban-server against a spray of distinct failing addresses
//! (issue 15, finding 6): the ids a jail tracks are capped by
//! `maxfailedids`, and so is the memory they take.

use std::fs;

use crate::util::{append, new_log, stamp, Server, Tree};

/// What one tracked IPv6 id cost before the cap, in bytes of VmRSS
/// (scripts/bench-failures.sh, benches/results/2026-12-07-failure-memory.md).
const BYTES_PER_ID_UNCAPPED: u64 = 983;

/// The server's resident memory, in bytes.
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// Appends one failure from each of `n` distinct 2001:db8:: addresses,
/// in writes of 10,000 lines.
fn spray(path: &std::path::Path, n: usize) {
    let stamp = stamp();
    for start in (0..n).step_by(10_000) {
        let text: String = (start..n.min(start + 10_000))
            .map(|i| {
                format!(
                    "{stamp} web1 test[4242]: auth failure from 2001:db8::{:x}:{:x}\n",
                    (i >> 16) + 1,
                    i & 0xffff
                )
            })
            .collect();
        append(path, &text);
    }
}

/// Finding 6: 100,000 distinct failing IPv6 addresses against a jail that
/// never bans them (maxretry far above one each) and keeps at most 10,000
/// ids: `status` never shows more than the cap, the server's memory grows
/// by well under what the spray cost before the cap (at most twice what
/// 10,000 ids cost then, a fifth of the uncapped growth), every line is
/// still counted in `Total failed`, and the dropping is logged.
#[test]
fn ipv6_spray_stays_under_the_cap() {
    const IDS: usize = 100_000;
    const CAP: usize = 10_000;
    let tree = Tree::new(&format!(
        "[spray]
enabled = true
filter = test
logpath = @T@/spray.log
maxretry = 1000
findtime = 1h
maxfailedids = {CAP}
"
    ));
    let log = tree.path("spray.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    assert_eq!(
        s.ok(&["get", "spray", "maxfailedids"]).trim(),
        CAP.to_string()
    );
    let (ok, out) = s.client(&["set", "spray", "maxfailedids", "-1"]);
    assert!(!ok, "a negative cap was taken: {out}");
    let before = rss(s.pid());
    spray(&log, IDS);
    s.wait("every line of the spray is counted", |s| {
        s.status("spray").total_failed == IDS
    });
    let grown = rss(s.pid()).saturating_sub(before);
    let status = s.status("spray");
    assert!(
        status.failed <= CAP,
        "{} ids tracked, over the cap of {CAP}",
        status.failed
    );
    let bound = 2 * CAP as u64 * BYTES_PER_ID_UNCAPPED;
    assert!(
        grown < bound,
        "VmRSS grew by {grown} bytes for {IDS} ids, over {bound} (uncapped: about {})",
        IDS as u64 * BYTES_PER_ID_UNCAPPED
    );
    let warnings: Vec<String> = tree
        .server_log()
        .lines()
        .filter(|l| l.contains("WARNING") && l.contains("maxfailedids"))
        .map(String::from)
        .collect();
    // At most once a minute: the spray takes seconds.
    assert_eq!(warnings.len(), 1, "{}", s.report());
    eprintln!("VmRSS grew by {grown} bytes; {}", warnings[0]);
}
