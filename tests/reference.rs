//! The reference fail2ban (Debian's package, pinned), fetched by
//! scripts/fetch-reference.sh and run from where it was extracted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs one of the reference's programs (`fail2ban-client`, ...).
pub fn run(root: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("/usr/bin/python3")
        .arg(root.join("usr/bin").join(program))
        .args(args)
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .output()
        .expect("run /usr/bin/python3")
}

/// The reference's stock configuration tree.
pub fn stock_tree(root: &Path) -> PathBuf {
    root.join("etc/fail2ban")
}

/// The reference's Python package (sample logs, test filters, source).
pub fn package(root: &Path) -> PathBuf {
    root.join("usr/lib/python3/dist-packages/fail2ban")
}

/// What a differential test found against one reference fail2ban.
pub struct Tally {
    /// The reference's version (`1.0.2`, `1.1.0`).
    pub version: &'static str,
    /// How many things (trees, filters, queries, jobs) were compared.
    pub compared: usize,
    /// Each difference: what differs (a tree, a filter, a query: the key
    /// [`KNOWN`] names it by) and how.
    pub diffs: Vec<(String, String)>,
}

impl Tally {
    pub fn new(version: &'static str) -> Tally {
        Tally {
            version,
            compared: 0,
            diffs: Vec::new(),
        }
    }
}

/// A difference between fail3ban and one reference that is known and
/// explained, so that the differential tests stay exact elsewhere.
pub struct Known {
    /// The test that finds it (`regex::full_reports`).
    pub test: &'static str,
    /// The reference it is found against.
    pub version: &'static str,
    /// What differs, as the test keys it.
    pub key: &'static str,
    /// Why: which fail2ban fail3ban follows there, and what (in issue 17)
    /// will remove the entry.
    pub why: &'static str,
}

/// Every known difference, in one place. A test fails on a difference not
/// listed here and on a listed one that no longer occurs, so the list
/// cannot go stale. Where 1.0.2 and 1.1.0 disagree, fail3ban follows one of
/// them and the entry (against the other) says which and why.
pub const KNOWN: &[Known] = &[
    Known {
        test: "server_compat::ignoreself_and_interface_addresses",
        version: "1.0.2",
        key: "status alpha",
        why: IGNORESELF,
    },
    Known {
        test: "server_compat::ignoreself_and_interface_addresses",
        version: "1.0.2",
        key: "banned 192.0.2.77",
        why: IGNORESELF,
    },
    Known {
        test: "server_compat::ignoreself_and_interface_addresses",
        version: "1.0.2",
        key: "status alpha (fail2ban-client)",
        why: IGNORESELF,
    },
    Known {
        test: "server_compat::ignoreself_and_interface_addresses",
        version: "1.0.2",
        key: "banned 192.0.2.77 (fail2ban-client)",
        why: IGNORESELF,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get alpha failregex",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get beta failregex",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get gamma failregex",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: r"set gamma addfailregex ^ bad user <F-USER>\S+</F-USER> from <ADDR>$",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "set gamma delfailregex 0",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status alpha stats",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all basic",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all short",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all cymru",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all nope",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all stats",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "stats",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "statistic",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "statistics",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "stats x",
        why: V11_STATUS,
    },
    Known {
        test: "regex::prefregex_groups_take_part_in_the_failure",
        version: "1.0.2",
        key: "summary",
        why: FILTER_FILE_HEADER,
    },
    Known {
        test: "regex::prefregex_groups_take_part_in_the_failure",
        version: "1.0.2",
        key: "-v",
        why: FILTER_FILE_HEADER,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get alpha failregex (fail2ban-client)",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get beta failregex (fail2ban-client)",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "get gamma failregex (fail2ban-client)",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: r"set gamma addfailregex ^ bad user <F-USER>\S+</F-USER> from <ADDR>$ (fail2ban-client)",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "set gamma delfailregex 0 (fail2ban-client)",
        why: IPV6_TEMPLATE,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status alpha stats (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all basic (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all short (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all cymru (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all nope (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "status --all stats (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "stats (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "statistic (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "statistics (fail2ban-client)",
        why: V11_STATUS,
    },
    Known {
        test: "server_compat::client_output_like_fail2ban_client",
        version: "1.0.2",
        key: "stats x (fail2ban-client)",
        why: V11_STATUS,
    },
];

/// fail2ban 1.1's `status --all [FLAVOR]`, `stats` (`statistic`,
/// `statistics`) and the `stats` flavour.
const V11_STATUS: &str = "fail2ban 1.1 added `status --all [FLAVOR]` (every jail's status after \
    the server's), `stats`/`statistic`/`statistics` (a table of each jail's backend and counts) \
    and the `stats` flavour of `status <jail>`; 1.0.2's server takes `--all` for a jail's name \
    (`Sorry but the jail '--all' does not exist`), refuses `stats` (`Invalid command`) and \
    answers `status <jail> stats` as `basic`. fail3ban follows 1.1 (issue 17)";

/// fail2ban-regex 1.1's header for a filter given as a file.
const FILTER_FILE_HEADER: &str = "fail2ban-regex 1.1 prints `Use      filter file : PATH` for a \
    filter file outside a tree where 1.0.2 prints `Use   failregex file : PATH`, and its report \
    prints the prefregex's `<ADDR>` with 1.1's IPv6 group (IPV6_TEMPLATE); a file outside a \
    tree does not tell its version, so fail3ban follows the newer, 1.1 (src/config/version.rs, \
    issue 17)";

/// 1.1's IPv6 group of `<HOST>`/`<ADDR>`, in a tree that does not tell
/// its version.
const IPV6_TEMPLATE: &str = "1.1's <HOST>/<ADDR> write the IPv6 group as \
    `(?:[0-9a-fA-F]{1,4}::?|:){1,7}`, 1.0.2's as `(?:[0-9a-fA-F]{1,4}::?|::){1,7}`, so `get JAIL \
    failregex`, `addfailregex` and `delfailregex` print different regexes, and 1.1's also takes \
    `::` (the unspecified address) for a host. fail3ban follows the version of the tree it \
    reads (src/config/version.rs: a jail.conf that lists gamin among the backends and has none \
    of 1.1's new jails is 1.0.2's); this test's tree is its own and tells neither, so fail3ban \
    follows the newer, 1.1 (issue 17)";

/// Runs a differential test's comparison against each reference (its
/// version and root) and [`settle`]s what they found.
#[track_caller]
pub fn against_each(test: &str, what: &str, compare: impl Fn(&'static str, &Path) -> Tally) {
    let tallies: Vec<Tally> = crate::prereq::references()
        .iter()
        .map(|r| compare(r.version, r.root()))
        .collect();
    settle(test, what, &tallies);
}

/// Prints a differential test's counts per reference ("1.0.2: 92/92
/// filters identical; 1.1.0: ...") and fails on a difference [`KNOWN`]
/// does not list, or on a listed one the test no longer finds.
#[track_caller]
pub fn settle(test: &str, what: &str, tallies: &[Tally]) {
    settle_against(KNOWN, test, what, tallies);
}

#[track_caller]
fn settle_against(known_list: &[Known], test: &str, what: &str, tallies: &[Tally]) {
    let mut unexpected = Vec::new();
    let mut summary = Vec::new();
    for t in tallies {
        let listed: Vec<&Known> = known_list
            .iter()
            .filter(|k| k.test == test && k.version == t.version)
            .collect();
        let mut known = 0;
        for (key, detail) in &t.diffs {
            match listed.iter().find(|k| k.key == key) {
                Some(k) => {
                    known += 1;
                    println!("{test}: {}: known difference {key}: {}", t.version, k.why);
                }
                None => unexpected.push(format!("{} {key}:\n{detail}", t.version)),
            }
        }
        for k in &listed {
            if !t.diffs.iter().any(|(key, _)| key == k.key) {
                unexpected.push(format!(
                    "{} {}: listed in reference::KNOWN but no longer differs: remove it",
                    t.version, k.key
                ));
            }
        }
        summary.push(format!(
            "{}: {}/{} {what} identical{}",
            t.version,
            t.compared - t.diffs.len(),
            t.compared,
            if known > 0 {
                format!(" ({known} known differences)")
            } else {
                String::new()
            }
        ));
    }
    println!("{test}: {}", summary.join("; "));
    assert!(
        unexpected.is_empty(),
        "{test}: differences from the reference not in reference::KNOWN:\n\n{}",
        unexpected.join("\n\n")
    );
}

/// 1.1's `ignoreself` and the host's interface addresses.
const IGNORESELF: &str = "fail2ban 1.1's ignoreself also covers every address of the host's \
    interfaces (DNSUtils.getNetIntrfIPs, getifaddrs; gh-3132); 1.0.2's covers loopback and what \
    the host's names resolve to, so 1.0.2 bans 192.0.2.77 on the interface, 1.1 and fail3ban \
    do not. No option or tree ties it to a version, and never banning the host's own address \
    is the safer: fail3ban follows 1.1 (issue 17)";

#[cfg(test)]
mod settles {
    use super::*;

    const LISTED: &[Known] = &[Known {
        test: "t",
        version: "1.1.0",
        key: "k",
        why: "because",
    }];

    fn tally(version: &'static str, keys: &[&str]) -> Tally {
        Tally {
            version,
            compared: 3,
            diffs: keys.iter().map(|k| (k.to_string(), "how".into())).collect(),
        }
    }

    #[test]
    fn a_listed_difference_passes() {
        settle_against(
            LISTED,
            "t",
            "things",
            &[tally("1.0.2", &[]), tally("1.1.0", &["k"])],
        );
    }

    #[test]
    #[should_panic(expected = "not in reference::KNOWN")]
    fn an_unlisted_difference_fails() {
        settle_against(
            LISTED,
            "t",
            "things",
            &[tally("1.0.2", &["k"]), tally("1.1.0", &["k"])],
        );
    }

    #[test]
    #[should_panic(expected = "no longer differs")]
    fn a_listed_difference_that_no_longer_occurs_fails() {
        settle_against(
            LISTED,
            "t",
            "things",
            &[tally("1.0.2", &[]), tally("1.1.0", &[])],
        );
    }
}
