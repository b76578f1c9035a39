//! Which fail2ban a configuration tree was written for.
//!
//! fail2ban 1.0.2 and 1.1 differ in a few behaviours that a tree cannot
//! configure (the IPv6 group of `<HOST>`, fail2ban-regex's jail names).
//! fail3ban follows the version of the tree it reads when the tree tells it,
//! else the newer one. It is told from the stock `jail.conf` only: an
//! administrator changes `jail.local` and `jail.d/`, while `jail.conf` is the
//! package's file and comes with it.

use std::path::Path;

/// The fail2ban a tree was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TreeVersion {
    /// fail2ban 1.0.2 (Debian 12) and older.
    V1_0,
    /// fail2ban 1.1.0 and 1.1.1 (Debian 13), and any tree that cannot be
    /// told: fail3ban's own, a tree without `jail.conf`.
    #[default]
    V1_1,
}

/// Jails that 1.1's stock `jail.conf` has and 1.0.2's has not.
const JAILS_SINCE_1_1: &[&str] = &["[nginx-forbidden]", "[routeros-auth]", "[dante]"];

/// The backend 1.1 dropped; 1.0.2's `jail.conf` still lists it among the
/// backends in its comments.
const GAMIN_1_0: &str = r#""pyinotify", "gamin", "polling""#;

impl TreeVersion {
    /// The version of the tree under `basedir`, told from its `jail.conf`.
    pub fn of(basedir: &Path) -> TreeVersion {
        match std::fs::read_to_string(basedir.join("jail.conf")) {
            Ok(text) => TreeVersion::of_jail_conf(&text),
            Err(_) => TreeVersion::default(),
        }
    }

    /// The version a stock `jail.conf` text belongs to: 1.0 when it lists
    /// gamin among the backends and has none of 1.1's new jails.
    pub fn of_jail_conf(text: &str) -> TreeVersion {
        let has_new_jail = text
            .lines()
            .any(|l| JAILS_SINCE_1_1.contains(&l.trim_end()));
        if text.contains(GAMIN_1_0) && !has_new_jail {
            TreeVersion::V1_0
        } else {
            TreeVersion::V1_1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "[DEFAULT]\n# Available options are \"pyinotify\", \"gamin\", \"polling\", \"systemd\" and \"auto\".\n[sshd]\nport = ssh\n";

    #[test]
    fn gamin_in_the_backends_is_1_0() {
        assert_eq!(TreeVersion::of_jail_conf(OLD), TreeVersion::V1_0);
    }

    #[test]
    fn a_1_1_jail_makes_it_1_1() {
        let text = format!("{OLD}\n[dante]\nport = 1080\n");
        assert_eq!(TreeVersion::of_jail_conf(&text), TreeVersion::V1_1);
    }

    #[test]
    fn a_tree_that_cannot_be_told_is_1_1() {
        assert_eq!(
            TreeVersion::of_jail_conf("[sshd]\nenabled = true\n"),
            TreeVersion::V1_1
        );
        assert_eq!(
            TreeVersion::of(Path::new("/nonexistent/fail3ban")),
            TreeVersion::V1_1
        );
    }
}
